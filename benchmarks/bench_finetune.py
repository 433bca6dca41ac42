"""Benchmark: fine-tuning the shipped synthetic-pretrained U-Net (``--init synthetic``) beside
training from scratch, at the same CPU budget, in one run.

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_finetune.py [--budget 300] [--skip-synthetic]

Both methods follow ``bench_instances.py``'s U-Net recipe (``prepare``: tiles 256, stride 128,
flip/rot90; ``train_unet`` lr 2e-3, 10 steps between validations) and stop at the first
validation past ``--budget`` CPU seconds of the training process (fair on a shared machine);
the only difference is ``init="synthetic"``. Tasks:

1. **workshop**: the real 512×512 TEM image, 37 labeled bubbles, trained on the left three
   quarters and scored on the right quarter (``bench_train.py``'s cut). Its class is
   ``bubble``: the pretrained head's ``cavity`` row is its start (``SAME_KIND``).
2. **synthetic**: ``--n-train`` default synthetic micrographs (cavities, loops, precipitates,
   lines; seed 0) to train on, ``--n-test`` held out (seed 1).

Scores (``bench_instances.scores``, class-agnostic, matching at IoU ≥ 0.5): pixel IoU, object
F1, count error, mean equivalent-diameter error of matched pairs; and the training minutes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_instances import UNET_NECK_RATIO, budget_callback, scores, workshop  # noqa: E402
from bench_train import image_paths  # noqa: E402


def run(train_ds: Any, test_ds: Any, work: Path, init: str | None, budget: float, neck_ratio: float | None,
        seed: int) -> dict:
    import defectlab

    t0, c0 = time.perf_counter(), time.process_time()
    split = (1.0, 0.0, 0.0) if len(train_ds) == 1 else (0.8, 0.2, 0.0)
    defectlab.prepare(train_ds, work / "tiles", to="unet", tile=256, stride=128, augment="flip,rot90", split=split,
                      seed=seed, progress=False)
    result = defectlab.train_unet(work / "tiles" / "train", work / "model", epochs=10_000, steps_per_epoch=10,
                                  lr=2e-3, seed=seed, progress=False, plot=False, time_budget_s=float("inf"),
                                  init=init, callback=budget_callback(budget))
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    extra = {} if neck_ratio is None else {"neck_ratio": neck_ratio}
    report = defectlab.predict(result.model, image_paths(test_ds), work / "pred", prelabels="cvat", progress=False,
                               **extra)
    s = scores(defectlab.read(report.prelabels), test_ds)
    return {**s, "train_min": train_s / 60, "train_cpu_min": train_cpu / 60, "epochs": len(result.history),
            "best_epoch": result.best_epoch}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=300.0, help="training budget per method, CPU seconds")
    p.add_argument("--n-train", type=int, default=4)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--skip-workshop", action="store_true")
    args = p.parse_args(argv)
    import os

    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    work = Path(tempfile.mkdtemp(prefix="defectlab-bench-finetune-"))
    try:
        tasks = []
        if not args.skip_workshop:
            tasks.append(("workshop", *workshop(work / "workshop"), UNET_NECK_RATIO))
        if not args.skip_synthetic:
            cfg = SyntheticConfig(size_hw=(512, 512))
            tasks.append(("synthetic", make_synthetic_dataset(work / "s_train", n_images=args.n_train, config=cfg,
                                                              seed=args.seed),
                          make_synthetic_dataset(work / "s_test", n_images=args.n_test, config=cfg,
                                                 seed=args.seed + 1), None))
        rows = []
        for name, train_ds, test_ds, neck in tasks:
            for method, init in (("from scratch", None), ("--init synthetic", "synthetic")):
                r = run(train_ds, test_ds, work / name / method.strip("-").replace(" ", "_"), init, args.budget, neck,
                        args.seed)
                rows.append((name, method, r))
                print(f"  {name} {method}: {r['epochs']} validations, best {r['best_epoch']}", flush=True)
        print(f"\nbudget {args.budget:.0f} CPU-s per method; load average {os.getloadavg()[0]:.1f}")
        print(f"{'task':<10} {'method':<17} {'pixel IoU':>9} {'F1':>6} {'count err':>9} {'diam err':>8} "
              f"{'n pred/true':>11} {'train min':>9} {'cpu min':>7}")
        for name, method, r in rows:
            print(f"{name:<10} {method:<17} {r['pixel_iou']:>9.3f} {r['f1']:>6.3f} {r['count_error']:>+9.1%} "
                  f"{r['diameter_error']:>8.1%} {r['n_pred']:>5}/{r['n_true']:<5} {r['train_min']:>9.1f} "
                  f"{r['train_cpu_min']:>7.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
