"""Benchmark: counting touching and overlapping defects — the star-convex model beside the others.

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_instances.py [--budget 300] [--skip-maskrcnn] [--skip-synthetic]

Two tasks, the same splits and the same training budget for every method (CPU seconds of the
training process, all its threads — fair on a machine others share; ``--budget``):

1. **workshop**: the real 512×512 TEM image with its 37 labeled, partly overlapping bubbles,
   cut at x = 384 as ``bench_train.py`` cuts it (``crop_dataset``: shapes clipped, nothing
   dropped); every method trains on the left three quarters and predicts the right quarter.
2. **synthetic, overlapping**: ``SyntheticConfig.bubbles()`` — crowded cavities and loops, 60 %
   placed against another (overlapping to touching), exact labels; ``--n-train`` training
   images (seed 0), ``--n-test`` held-out images (seed 1).

Methods:

* **stardist** (ours): the one training loop, :func:`defectlab.dl.train.train` of ``"stardist"``
  (one-cycle schedule fitted to its wall-clock ``time_budget_s``: the budget divided by the CPU
  seconds per wall second a short probe measures just before, so that the schedule anneals
  about when the CPU budget ends; the budget's epoch callback stops it at the CPU budget in
  any case), thresholds tuned on its validation part (a single image: its held-out strip);
  predicted polygons are the pre-labels (overlaps kept).
* **U-Net + watershed** (today's ``defectlab train unet`` + predict): ``bench_train.py``'s
  recipe — ``prepare`` (tiles 256, stride 128, flip/rot90) then ``train_unet`` (lr 2e-3), stopped at
  the budget (an epoch callback), then ``predict`` with CVAT pre-labels (watershed split, neck
  ratio 0.9 — the value ``bench_train`` chose for the workshop bubbles).
* **U-Net --auto** (``unet-auto``; today's default ``defectlab train unet DATA --time B``): the
  plan from the data, its schedule fitted to the budget, post-processing chosen on validation,
  ``predict`` with the model folder's own settings.
* **Mask R-CNN from scratch** (``train_maskrcnn``, ResNet-18-FPN, no pretrained weights: offline),
  stopped at the budget the same way.
* **StarDist (TensorFlow)** (``stardist-tf``, with ``--stardist-python``): StarDist's own
  implementation in its own environment (``make bench-stardist-env``), trained with its defaults
  on the same images at the same CPU budget by ``peer_stardist.py``, its thresholds tuned on
  its validation part as ours are, its polygons scored as ours.

Scores (all from :func:`defectlab.evaluate`, one-to-one matching at IoU ≥ 0.5, overlapping
instances kept on both sides, class-agnostic): pixel IoU, object F1, count error
``(n_pred − n_true) / n_true``, the mean relative error of the equivalent diameter over
matched pairs, and the true objects found per equivalent-diameter bin (where the misses are).
Timings: training wall and CPU seconds, and the prediction of one 1024² image
(four synthetic 512² tiles' worth of bubbles), split into net and NMS for ours.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import WORKSHOP_LABELS, WORKSHOP_SPLIT_X, class_agnostic, crop_dataset, image_paths, score  # noqa: E402

#: The U-Net's neck ratio for overlapping bubbles (what bench_train chose on the workshop image).
UNET_NECK_RATIO = 0.9


class _OutOfBudget(KeyboardInterrupt):
    """Raised from an epoch callback: training stops and keeps its best epoch (as on Ctrl-C)."""


def budget_callback(budget_s: float) -> Callable[[dict], None]:
    """Stops training at the first epoch end past the budget, from the second epoch on (the
    trainers call it before they keep an epoch's weights: the first must be kept)."""
    start = time.process_time()

    def callback(entry: dict) -> None:
        if entry["epoch"] >= 2 and time.process_time() - start >= budget_s:
            raise _OutOfBudget()

    return callback


def scores(pred: Any, truth: Any) -> dict[str, float]:
    """Pixel IoU, object F1, count error and mean diameter error (class-agnostic)."""
    e = score(class_agnostic(pred), class_agnostic(truth), None)
    o = e.overall
    n_true, n_pred = o["tp"] + o["fn"], o["tp"] + o["fp"]
    m = e.matches
    if len(m):
        p, t = np.asarray(m["pred_size_px"], float), np.asarray(m["true_size_px"], float)
        diam = float(np.mean(np.abs(p - t) / t))
    else:
        diam = math.nan
    return {"pixel_iou": o["pixel_iou"], "f1": o["f1"], "count_error": (n_pred - n_true) / n_true if n_true else math.nan,
            "diameter_error": diam, "n_true": n_true, "n_pred": n_pred, "recall_by_size": recall_by_size(e.true_defects)}


#: Equivalent-diameter bins (px) of the per-size recall.
SIZE_BINS = (0, 10, 15, 20, 30, 50, math.inf)


def recall_by_size(true_defects: Any) -> str:
    """Recall of the true objects per equivalent-diameter bin: ``"d 10-15: 12/49"`` … (where the
    misses are: small, faint or large objects)."""
    rows = true_defects.rows()
    d = np.array([r["diameter_px"] for r in rows], float)
    hit = np.array([r["matched"] >= 0 for r in rows], bool)
    parts = []
    for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        m = (d >= lo) & (d < hi)
        if m.any():
            parts.append(f"d {lo}-{hi if math.isfinite(hi) else ''}: {int(hit[m].sum())}/{int(m.sum())}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# The methods: each returns (predictions as a Dataset of shapes, train wall s, train CPU s, predict s/image)


def cpu_per_wall(seconds: float = 2.0) -> float:
    """CPU seconds this process gets per wall second now (torch's threads on a shared machine):
    a short convolution probe, timed on both clocks."""
    import torch

    x = torch.randn(4, 16, 128, 128)
    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        conv(x).sum().backward()
    return max(0.1, (time.process_time() - c0) / (time.perf_counter() - t0))


def run_stardist(train_ds: Any, test_ds: Any, work: Path, args: argparse.Namespace) -> tuple[Any, float, float, float]:
    import defectlab
    from defectlab.dl.stardist.outputs import predict_star_images
    from defectlab.dl.train import train

    ratio = cpu_per_wall()
    t0, c0 = time.perf_counter(), time.process_time()
    run = train("stardist", train_ds, work / "model", epochs=10_000, steps_per_epoch=args.steps_per_epoch,
                time_budget_s=args.budget / ratio, patience=10_000, seed=args.seed, device=args.device,
                progress=False, plot=False, base_filters=args.base_filters, lr=args.lr, batch_size=args.batch_size,
                grid=args.grid, callback=budget_callback(args.budget))
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = sum(h["steps"] for h in run.history)
    print(f"  stardist: {len(run.history)} epochs, {steps} steps (wall budget {args.budget / ratio:.0f} s at "
          f"{ratio:.2f} CPU s per s); " + "; ".join(run.notes), flush=True)
    report = predict_star_images(run.model, image_paths(test_ds), work / "pred", prelabels="cvat", progress=False)
    return defectlab.read(report.prelabels), train_s, train_cpu, float(np.mean([i["seconds"] for i in report.images])), run.model


def run_unet(train_ds: Any, test_ds: Any, work: Path, args: argparse.Namespace) -> tuple[Any, float, float, float]:
    import defectlab

    t0, c0 = time.perf_counter(), time.process_time()
    split = (1.0, 0.0, 0.0) if len(train_ds) == 1 else (0.8, 0.2, 0.0)
    defectlab.prepare(train_ds, work / "tiles", to="unet", tile=256, stride=128, augment="flip,rot90", split=split,
                      seed=args.seed, progress=False)
    run = defectlab.train_unet(work / "tiles" / "train", work / "model", epochs=10_000, steps_per_epoch=10, lr=2e-3, seed=args.seed, device=args.device, progress=False,
                               plot=False, callback=budget_callback(args.budget))
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"  U-Net: {len(run.history)} epochs; best {run.best_epoch}", flush=True)
    report = defectlab.predict(run.model, image_paths(test_ds), work / "pred", prelabels="cvat", progress=False,
                               neck_ratio=UNET_NECK_RATIO)
    return defectlab.read(report.prelabels), train_s, train_cpu, float(np.mean([i["seconds"] for i in report.images]))


def run_unet_auto(train_ds: Any, test_ds: Any, work: Path, args: argparse.Namespace) -> tuple[Any, float, float, float]:
    """Today's default, ``defectlab train unet DATA --time B``: the plan from the data (tile,
    normalization, batch, starting weights, post-processing chosen on validation), its schedule
    fitted to the wall-clock budget (the CPU budget over the probe's CPU s per s, as for stardist)."""
    import defectlab

    ratio = cpu_per_wall()
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        run = defectlab.train_unet(train_ds, work / "model", time_budget_s=args.budget / ratio, seed=args.seed,
                                   device=args.device, progress=False, plot=False,
                                   callback=budget_callback(args.budget))
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    plan = run.plan
    print(f"  U-Net --auto: {len(run.history)} epochs; best {run.best_epoch}; tile {run.model.config.tile_size}"
          + (f", init {plan.init}" if plan is not None else ""), flush=True)
    report = defectlab.predict(run.model, image_paths(test_ds), work / "pred", prelabels="cvat", progress=False)
    return defectlab.read(report.prelabels), train_s, train_cpu, float(np.mean([i["seconds"] for i in report.images]))


def run_maskrcnn(train_ds: Any, test_ds: Any, work: Path, args: argparse.Namespace) -> tuple[Any, float, float, float]:
    import defectlab

    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "training from scratch": that is the point here
        run = defectlab.train_maskrcnn(train_ds, work / "model", epochs=10_000, steps_per_epoch=5,
                                       backbone="resnet18", tile_size=256, seed=args.seed, device=args.device,
                                       val_split=0.0 if len(train_ds) == 1 else 0.2, progress=False, plot=False,
                                       callback=budget_callback(args.budget))
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"  Mask R-CNN: {len(run.history)} epochs; best {run.best_epoch}", flush=True)
    report = defectlab.predict(run.model, image_paths(test_ds), work / "pred", prelabels="cvat", progress=False)
    return defectlab.read(report.prelabels), train_s, train_cpu, float(np.mean([i["seconds"] for i in report.images]))


def export_for_stardist(train_ds: Any, test_ds: Any, folder: Path) -> None:
    """``folder/{train/images,train/labels,test/images}/*.tif``: what ``peer_stardist.py`` reads
    (gray images; labels: instance ids painted in z-order, areas only — a label image holds no
    overlaps, which is what StarDist trains on)."""
    import dataclasses

    import tifffile

    from defectlab.imaging.io import read_image, to_gray
    from defectlab.raster import instance_labels

    for ds, sub in ((train_ds, "train"), (test_ds, "test")):
        for part in ("images", "labels") if sub == "train" else ("images",):
            (folder / sub / part).mkdir(parents=True, exist_ok=True)
        for item in ds.items:
            tifffile.imwrite(folder / sub / "images" / f"{item.key}.tif", to_gray(read_image(item.image)))
            if sub == "train":
                areas = dataclasses.replace(item, shapes=tuple(sh for sh in item.shapes if sh.is_area))
                tifffile.imwrite(folder / sub / "labels" / f"{item.key}.tif", instance_labels(areas))


def run_stardist_tf(train_ds: Any, test_ds: Any, work: Path, args: argparse.Namespace) -> tuple[Any, float, float, float]:
    """StarDist's own TensorFlow implementation (``peer_stardist.py`` under ``--stardist-python``),
    its polygons read back as shapes (overlaps kept, as ours)."""
    import json
    import subprocess

    from defectlab.model import Dataset, Item, Polygon

    if args.stardist_python is None:
        raise RuntimeError("stardist-tf needs --stardist-python (make bench-stardist-env: .venv-stardist/bin/python)")
    data, out = work / "data", work / "out"
    export_for_stardist(train_ds, test_ds, data)
    peer = Path(__file__).resolve().parent / "peer_stardist.py"
    done = subprocess.run([str(args.stardist_python), str(peer), str(data), "--out", str(out), "--budget",
                           f"{args.budget:g}", "--seed", str(args.seed)], capture_output=True, text=True)
    (work / "peer.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RuntimeError(f"peer_stardist.py exited {done.returncode}:\n{tail}")
    summary = json.loads((out / "summary.json").read_text())
    print(f"  stardist-tf: {summary['steps']} steps ({summary['epochs']} epochs of {args.steps_per_epoch}), patch "
          f"{summary['patch']}, batch {summary['batch_size']}; thresholds {summary['thresholds']} (tuning "
          f"{summary['tune_s']:.0f} s); {summary['versions']}", flush=True)
    label = train_ds.labels[0].name
    items = []
    for item in test_ds.items:
        polys = json.loads((out / "polygons" / f"{item.key}.json").read_text())
        items.append(Item(item.name, item.size_hw, tuple(Polygon(label=label, points_xy=np.asarray(p))
                                                         for p in polys if len(p) >= 3)))
    pred = Dataset(labels=train_ds.labels, items=tuple(items))
    return pred, summary["train_s"], summary["train_cpu_s"], summary["predict_s_per_image"]


# ---------------------------------------------------------------------------------------------
# Tasks


def workshop(work: Path, labels: Path = WORKSHOP_LABELS) -> tuple[Any, Any]:
    """(left 3/4, right 1/4) of the workshop image ``labels`` as single-item Datasets, cut into ``work``."""
    import defectlab
    from defectlab.preparation.tiling import Window

    full = defectlab.read(labels)
    h, w = full[0].size_hw
    parts = crop_dataset(full, {"train": Window(0, 0, h, WORKSHOP_SPLIT_X),
                                "test": Window(WORKSHOP_SPLIT_X, 0, h, w - WORKSHOP_SPLIT_X)}, work / "crops")
    return parts["train"], parts["test"]


def synthetic(work: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    cfg = SyntheticConfig.bubbles((512, 512))
    train = make_synthetic_dataset(work / "train", n_images=args.n_train, config=cfg, seed=args.seed)
    test = make_synthetic_dataset(work / "test", n_images=args.n_test, config=cfg, seed=args.seed + 1)
    return train, test


def timing_1024(model: Any, work: Path, repeats: int = 3) -> str:
    """Prediction of one 1024² bubbles image: total, and the part the NMS and outputs take."""
    from defectlab.dl.stardist.net import star_forward
    from defectlab.dl.stardist.predict import assemble, star_candidates
    from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item

    image, item = synthetic_item(np.random.default_rng(7), SyntheticConfig.bubbles((1024, 1024)))
    cfg = model.net_config
    fwd = star_forward(model.net, model.device)
    totals, nets, rests, n_cand, n_kept = [], [], [], 0, 0
    model.predict(image)  # warm-up (oneDNN primitives)
    for _ in range(repeats):
        t0 = time.perf_counter()
        cand = star_candidates(fwd, image, n_rays=cfg.n_rays, n_classes=cfg.n_classes, grid=cfg.grid,
                               multiple=cfg.multiple, tile=1024, overlap=model.config.overlap)
        t1 = time.perf_counter()
        pred = assemble(cand, model.classes, line_classes=model.line_classes, prob_thresh=model.thresholds["prob"],
                        nms_thresh=model.thresholds["nms"])
        t2 = time.perf_counter()
        totals.append(t2 - t0)
        nets.append(t1 - t0)
        rests.append(t2 - t1)
        n_cand, n_kept = len(cand.prob), pred.n_stars
    return (f"1024² image ({len(item.shapes)} true defects): {np.median(totals):.2f} s median of {repeats} "
            f"(net + candidates {np.median(nets):.2f} s, NMS + polygons + masks {np.median(rests):.2f} s; "
            f"{n_cand} candidates -> {n_kept} kept)")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=600.0, help="training budget per method, CPU seconds")
    p.add_argument("--n-train", type=int, default=6)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps-per-epoch", type=int, default=50, help="stardist: steps between validations")
    p.add_argument("--base-filters", type=int, default=16, help="stardist backbone width")
    p.add_argument("--grid", type=int, default=2, help="stardist output subsampling (1, 2 or 4)")
    p.add_argument("--batch-size", type=int, default=4, help="stardist crops per step")
    p.add_argument("--lr", type=float, default=3e-3, help="stardist peak learning rate")
    p.add_argument("--methods", default="stardist,unet,unet-auto,maskrcnn")
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--skip-workshop", action="store_true")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--stardist-python", type=Path,
                   help="the Python of .venv-stardist (make bench-stardist-env): adds the stardist-tf method")
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.stardist_python is not None and "stardist-tf" not in methods:
        methods.append("stardist-tf")
    runners = {"stardist": run_stardist, "unet": run_unet, "unet-auto": run_unet_auto, "maskrcnn": run_maskrcnn,
               "stardist-tf": run_stardist_tf}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_instances_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"budget {args.budget:g} CPU s per method; torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}; "
          f"load {os.getloadavg()[0]:.1f} at start", flush=True)
    rows, timing = [], None
    tasks = []
    if not args.skip_workshop:
        tasks.append(("workshop right 1/4", lambda: workshop(work / "workshop")))
    if not args.skip_synthetic:
        tasks.append((f"synthetic bubbles ({args.n_test} img)", lambda: synthetic(work / "synthetic", args)))
    try:
        for task, make in tasks:
            train_ds, test_ds = make()
            print(f"{task}: {sum(len(it.shapes) for it in train_ds.items)} training objects, "
                  f"{sum(len(it.shapes) for it in test_ds.items)} test objects", flush=True)
            for name in methods:
                try:
                    out = runners[name](train_ds, test_ds, work / task.split()[0] / name, args)
                except (Exception, _OutOfBudget) as err:  # noqa: BLE001 - one failing must not lose the others' rows
                    print(f"  {name}: FAILED {type(err).__name__}: {err}", flush=True)
                    continue
                pred, train_s, train_cpu, pred_s = out[:4]
                s = scores(pred, test_ds)
                rows.append((task, name, s, train_s, train_cpu, pred_s))
                print(f"  {name}: F1 {s['f1']:.3f}, IoU {s['pixel_iou']:.3f}, count {s['count_error']:+.1%}, "
                      f"diameter {s['diameter_error']:.1%}; train {train_s:.0f} s ({train_cpu:.0f} CPU s)", flush=True)
                print(f"    found by equivalent diameter (px): {s['recall_by_size']}", flush=True)
                if name == "stardist" and task.startswith("synthetic"):
                    timing = timing_1024(out[4], work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    head = (f"{'task':<24} {'method':<10} {'n true':>6} {'n pred':>6} {'pixel IoU':>9} {'F1':>6} {'count err':>9} "
            f"{'diam err':>8} {'train s':>8} {'CPU s':>7} {'pred s/img':>10}")
    print("\n" + head + "\n" + "-" * len(head))
    for task, name, s, train_s, train_cpu, pred_s in rows:
        print(f"{task:<24} {name:<10} {s['n_true']:>6} {s['n_pred']:>6} {s['pixel_iou']:>9.3f} {s['f1']:>6.3f} "
              f"{s['count_error']:>+9.1%} {s['diameter_error']:>8.1%} {train_s:>8.0f} {train_cpu:>7.0f} {pred_s:>10.2f}")
    if timing:
        print("\nstardist " + timing)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
