"""Benchmark: ``train unet --auto`` (the plan from the data, the default) beside the fixed
defaults (``--no-auto``) at the same time budget, in one run.

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_auto.py [--budget 300] [--skip-synthetic] [--workshop XML]
    make bench-nnunet-env && nice -n 10 .venv/bin/python benchmarks/bench_auto.py --budget 600 \
        --nnunet .venv-nnunet/bin/python [--nnunet-3x] [--skip-ours]

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
normalization, augmentations, batch size, one-cycle schedule and starting weights from the plan) and
**defaults** (``auto=False``: 256 px crops, batch 8, min–max, flips/turns, plateau schedule).
Both keep every other default (50 epochs at most, patience 10, seed 0).

**nnU-Net v2** (``--nnunet PYTHON``, the Python of ``.venv-nnunet``: ``make bench-nnunet-env``):
its ``2d`` configuration, fold ``all``, on the same training images, trained for the same
``--budget`` (``--nnunet-3x``: once more with three times it) by ``benchmarks/peer_nnunet.py`` in
a subprocess of that Python (nnU-Net's own plan, patch, augmentation and loss; only the stopping
changes). It gets the training images as PNG and their class-index masks
(:func:`defectlab.raster.semantic_mask`, what ``write_unet`` writes), and gives back a class
mask per test image. Those masks become objects exactly as ours do in ``defectlab.predict``:
:func:`~defectlab.raster.split.split_instances` (touching objects split at necks, default neck
ratio; line classes never split), objects under the default minimum area (4 px) dropped — ours
use the minimum area their training chose on the validation images, nnU-Net has no such step —,
traced into polygons by :func:`~defectlab.dl.prelabels.prediction_item`, then scored by the same
``score``. Its minutes are training only (planning, preprocessing and prediction are printed apart).

Printed per task and method: per-class pixel IoU and object F1, count error
``(n_pred − n_true) / n_true``, mean-size error (relative error of the mean equivalent
diameter), training minutes, epochs, and for auto the plan's tile, batch and normalization.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
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


def export_for_nnunet(train_ds: Any, test_ds: Any, folder: Path) -> None:
    """``folder/{train/images,train/masks,test/images}/*.png`` and ``classes.json``: what
    ``peer_nnunet.py`` reads (gray images; masks: class index, 0 = background)."""
    from defectlab.imaging.io import read_image, to_gray, write_image
    from defectlab.raster import semantic_mask

    index = train_ds.class_index()
    for ds, sub in ((train_ds, "train"), (test_ds, "test")):
        for sub_folder in ("images", "masks") if sub == "train" else ("images",):
            (folder / sub / sub_folder).mkdir(parents=True, exist_ok=True)
        for item in ds.items:
            write_image(folder / sub / "images" / f"{item.key}.png", to_gray(read_image(item.image)))
            if sub == "train":
                write_image(folder / sub / "masks" / f"{item.key}.png", semantic_mask(item, index))
    (folder / "classes.json").write_text(json.dumps(index))


def masks_as_prelabels(masks: Path, train_ds: Any, test_ds: Any) -> Any:
    """The class masks ``masks/<key>.png`` of the test images as a Dataset of traced objects, made
    as ``defectlab.predict`` makes ours from its class mask (see the module docstring)."""
    from defectlab.dl.postprocess import DEFAULT_MIN_AREA_PX
    from defectlab.dl.prelabels import prediction_item, prelabels_dataset
    from defectlab.imaging.io import read_image
    from defectlab.raster.split import DEFAULT_NECK_RATIO, split_instances

    index = train_ds.class_index()
    names = {i: name for name, i in index.items()}
    lines = {index[lab.name] for lab in train_ds.labels if lab.name in index and lab.type == "polyline"}
    items = []
    for item in test_ds.items:
        sem = np.asarray(read_image(masks / f"{item.key}.png"))
        if sem.shape != tuple(item.size_hw):
            raise RuntimeError(f"{masks / item.key}.png: shape {sem.shape}, expected {tuple(item.size_hw)}")
        sem = sem.astype(np.uint8)
        inst, cls = split_instances(sem, split=sorted(set(names) - lines), min_area_px=DEFAULT_MIN_AREA_PX,
                                    neck_ratio=DEFAULT_NECK_RATIO)
        items.append(prediction_item(sem, inst, cls, item.name, names, source="nnunet")[0])
    return prelabels_dataset(items, list(train_ds.labels))


def run_nnunet(python: Path, budget: float, train_ds: Any, test_ds: Any, work: Path, args: argparse.Namespace,
               label: str = "nnU-Net") -> dict[str, Any]:
    """``peer_nnunet.py`` under ``python`` with a ``budget`` of training seconds; its masks scored."""
    data, out = work / "nnunet_data", work / f"nnunet_{budget:g}"
    if not data.is_dir():
        export_for_nnunet(train_ds, test_ds, data)
    peer = Path(__file__).resolve().parent / "peer_nnunet.py"
    cmd = [str(python), str(peer), str(data), "--out", str(out), "--budget", f"{budget:g}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / f"nnunet_{budget:g}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RuntimeError(f"peer_nnunet.py exited {done.returncode}:\n{tail}")
    summary = json.loads((out / "summary.json").read_text())
    per, overall = scores(masks_as_prelabels(out / "masks", train_ds, test_ds), test_ds)
    print(f"  {label}: {summary['iterations']} iterations ({summary['epochs']} full epochs of "
          f"{summary['iterations_per_epoch']}; default {summary['default_epochs']}), {summary['train_minutes']:.1f} min "
          f"training; patch {summary['patch_size']}, batch {summary['batch_size']}; planning + preprocessing "
          f"{summary['preprocess_minutes']:.1f} min, prediction {summary['predict_minutes']:.1f} min; "
          f"{wall / 60:.1f} min in all", flush=True)
    return {"method": label, "per": per, "overall": overall, "minutes": summary["train_minutes"],
            "epochs": summary["epochs"], "iterations": summary["iterations"]}


def synthetic(work: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    cfg = SyntheticConfig(size_hw=(args.size, args.size))
    train = make_synthetic_dataset(work / "train", n_images=args.n_train, config=cfg, seed=args.seed)
    test = make_synthetic_dataset(work / "test", n_images=args.n_test, config=cfg, seed=args.seed + 1)
    return train, test


def table(task: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [f"{task}", f"  {'method':12} {'class':18} {'IoU':>6} {'F1':>6} {'count err':>10} {'size err':>9} "
                        f"{'n pred/true':>12} {'min':>5}"]
    for r in rows:
        for name, s in [*r["per"].items(), ("(all)", r["overall"])]:
            lines.append(f"  {r['method']:12} {name:18} {s['iou']:6.3f} {s['f1']:6.3f} {s['count_error']:+10.1%} "
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
    p.add_argument("--nnunet", type=Path, metavar="PYTHON",
                   help="also nnU-Net v2 (2d), run by this Python (.venv-nnunet/bin/python: make bench-nnunet-env)")
    p.add_argument("--nnunet-3x", action="store_true",
                   help="with --nnunet: once more with 3x the budget, on the workshop task only")
    p.add_argument("--skip-ours", action="store_true", help="only nnU-Net (with --nnunet)")
    args = p.parse_args(argv)
    if args.nnunet is not None and not args.nnunet.is_file():
        p.error(f"--nnunet {args.nnunet}: no such file; give the Python of .venv-nnunet (make bench-nnunet-env)")
    if (args.nnunet_3x or args.skip_ours) and args.nnunet is None:
        p.error("--nnunet-3x and --skip-ours need --nnunet PYTHON")
    if not args.skip_workshop and not args.workshop.is_file():
        p.error(f"--workshop {args.workshop}: no such file; the workshop data lives in ../shared/data, "
                "or run with --skip-workshop")
    return args


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
            folder = work / task.split()[0]
            jobs = [] if args.skip_ours else [lambda m=m: run(m, train_ds, test_ds, folder, args)
                                              for m in ("auto", "defaults")]
            if args.nnunet is not None:
                jobs.append(lambda: run_nnunet(args.nnunet, args.budget, train_ds, test_ds, folder, args))
                if args.nnunet_3x and task.startswith("workshop"):
                    jobs.append(lambda: run_nnunet(args.nnunet, 3 * args.budget, train_ds, test_ds, folder, args,
                                                   label="nnU-Net 3x"))
            rows = []
            for job in jobs:
                rows.append(job())
                print("\n".join(table(task, rows[-1:])[1:]), flush=True)  # each method's rows as soon as it is done
            lines += table(task, rows)
        if args.nnunet is None:
            lines.append("nnU-Net v2 (2-D): not run (give --nnunet .venv-nnunet/bin/python; make bench-nnunet-env)")
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
