"""Benchmark: ``train unet --auto`` (the plan from the data, opt-in) beside today's fixed
defaults (``--no-auto``) at the same time budget, in one run.

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_auto.py [--budget 300] [--skip-synthetic] [--workshop XML]

Two tasks, both methods trained with ``defectlab.train_unet`` straight on the labeled export
(as ``defectlab train unet DATA --out M`` does), with the same wall-clock ``--time`` budget
(``time_budget_s``: the training loop fits its epochs, and a one-cycle schedule, to it), then
``defectlab.predict`` with CVAT pre-labels, scored by ``defectlab.evaluate`` (IoU ≥ 0.5):

1. **workshop**: the real 512×512 TEM image with its 37 labeled, partly overlapping bubbles,
   cut at x = 384 as ``bench_train.py`` cuts it; trained on the left three quarters, scored on
   the right quarter, which training never saw;
2. **synthetic**: ``--n-train`` micrographs of the default synthetic recipe (cavities, loops,
   precipitates, dislocation lines; seed 0) and ``--n-test`` held-out ones (seed 1).

Methods: **auto** (``train_unet(data, out, time_budget_s=B)``: tile, overlap, percentile
normalization, augmentations, batch size and one-cycle schedule from the plan) and
**defaults** (``auto=False``: 256 px crops, batch 8, min–max, flips/turns, plateau schedule).
Both keep every other default (50 epochs at most, patience 10, seed 0). **nnU-Net v2**
(``nnunetv2``, its 2-D configuration): not run — it is not installed here (see
benchmarks/README.md).

Printed per task and method: per-class pixel IoU and object F1, count error
``(n_pred − n_true) / n_true``, mean-size error (relative error of the mean equivalent
diameter), training minutes, epochs, and for auto the plan's tile, batch and normalization.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_instances import workshop  # noqa: E402
from bench_train import WORKSHOP_LABELS, image_paths, score  # noqa: E402

#: Both methods: evaluate reads sizes in nm; 1 nm/px makes them px.
PIXEL_SIZE = "1nm"


def scores(pred: Any, truth: Any) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per class and over all: pixel IoU, object F1, count error, mean-size error."""
    e = score(pred, truth, PIXEL_SIZE)
    per = {}
    for r in e.per_class.rows():
        if not r["n_true"]:
            continue
        per[r["label"]] = {"iou": r["pixel_iou"], "f1": r["f1"],
                           "count_error": (r["n_pred"] - r["n_true"]) / r["n_true"],
                           "size_error": r["size_mean_error_percent"] / 100.0, "n_true": r["n_true"],
                           "n_pred": r["n_pred"]}
    o = e.overall
    n_true, n_pred = o["tp"] + o["fn"], o["tp"] + o["fp"]
    sizes = [abs(v["size_error"]) for v in per.values() if math.isfinite(v["size_error"])]
    overall = {"iou": o["pixel_iou"], "f1": o["f1"], "count_error": (n_pred - n_true) / n_true if n_true else math.nan,
               "size_error": float(np.mean(sizes)) if sizes else math.nan, "n_true": n_true, "n_pred": n_pred}
    return per, overall


def run(method: str, train_ds: Any, test_ds: Any, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import defectlab

    out = work / method
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = defectlab.train_unet(train_ds, out / "model", time_budget_s=args.budget, seed=args.seed,
                                      device=args.device, auto=method == "auto", progress=False, plot=False)
    train_s = time.perf_counter() - t0
    report = defectlab.predict(result.model, image_paths(test_ds), out / "pred", prelabels="cvat", progress=False)
    per, overall = scores(defectlab.read(report.prelabels), test_ds)
    t = result.model.config.training
    plan = result.plan
    how = (f"tile {result.model.config.tile_size}, batch {t['batch_size']}, {result.model.config.normalization['method']}, "
           f"{t['schedule']}, {t['augmentations']}")
    print(f"  {method}: {len(result.history)} epochs, {t['steps_per_epoch']} steps each, best {result.best_epoch}, "
          f"{train_s / 60:.1f} min; {how}" + (f"; plan steps {plan.steps}" if plan is not None else ""), flush=True)
    return {"method": method, "per": per, "overall": overall, "minutes": train_s / 60, "epochs": len(result.history)}


def synthetic(work: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    cfg = SyntheticConfig(size_hw=(args.size, args.size))
    train = make_synthetic_dataset(work / "train", n_images=args.n_train, config=cfg, seed=args.seed)
    test = make_synthetic_dataset(work / "test", n_images=args.n_test, config=cfg, seed=args.seed + 1)
    return train, test


def table(task: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [f"{task}", f"  {'method':9} {'class':18} {'IoU':>6} {'F1':>6} {'count err':>10} {'size err':>9} "
                        f"{'n pred/true':>12} {'min':>5}"]
    for r in rows:
        for name, s in [*r["per"].items(), ("(all)", r["overall"])]:
            lines.append(f"  {r['method']:9} {name:18} {s['iou']:6.3f} {s['f1']:6.3f} {s['count_error']:+10.1%} "
                         f"{s['size_error']:+9.1%} {s['n_pred']:>5}/{s['n_true']:<6} {r['minutes']:5.1f}")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per method and task (wall clock)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-train", type=int, default=4)
    p.add_argument("--n-test", type=int, default=3)
    p.add_argument("--size", type=int, default=384, help="synthetic image side, px")
    p.add_argument("--workshop", type=Path, default=WORKSHOP_LABELS)
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--skip-workshop", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    print(f"bench_auto: budget {args.budget:g} s per method and task, device {args.device}, "
          f"{torch.get_num_threads()} torch threads", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_auto_"))
    lines: list[str] = []
    try:
        tasks = []
        if not args.skip_workshop:
            tasks.append(("workshop held-out 1/4", *workshop(work / "workshop", args.workshop)))
        if not args.skip_synthetic:
            tasks.append((f"synthetic {args.n_test} held-out {args.size}² images", *synthetic(work / "synth", args)))
        for task, train_ds, test_ds in tasks:
            print(task, flush=True)
            rows = [run(m, train_ds, test_ds, work / task.split()[0], args) for m in ("auto", "defaults")]
            lines += table(task, rows)
        lines.append("nnU-Net v2 (2-D): not run (nnunetv2 is not installed here; an optional bench extra)")
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
