"""Benchmark: how good is a U-Net trained the demo's way, beside a classical baseline, in one run.

Run::

    .venv/bin/python benchmarks/bench_train.py [--epochs 8] [--steps-per-epoch 40] [--lr 2e-3] [--n-train 6] [--n-test 8]

What it does (see benchmarks/README.md):

1. **synthetic**: the recipe of ``make demo`` through the Python API — ``synthetic(n=6, size=512,
   seed=0)``, ``prepare(tile=256, stride=128, split=0.8,0.2,0, augment=flip,rot90, to=unet)``,
   ``train_unet(tiles/train, epochs=8, steps_per_epoch=40, lr=2e-3)`` — then ``--n-test`` new micrographs
   (seed ``--seed`` + 1), ``predict(..., prelabels="cvat")`` and ``evaluate(pre-labels, labels)``;
2. **workshop**: the real 512×512 TEM image with its 37 labeled bubbles, cut at x = 384 at the
   geometry level (:func:`defectlab.preparation.tiling.tile_item`, ``min_visible=0``: a bubble cut by
   the line is clipped, its pieces kept on both sides); the same recipe trains on the left three
   quarters (``split=1,0,0``: one image would otherwise be split spatially and half of it left
   for validation) and predicts the right quarter, which training never saw; the training
   quarters are scored too (optimistic, as the workshop's own figure);
3. **baseline** on the same test images: Gaussian smoothing + Otsu threshold (scikit-image), the
   polarity (bright or dark objects), the smoothing and hole filling chosen on the training
   images by their foreground IoU, objects under ``MIN_OBJECT_PX`` removed, connected
   components as instances. It cannot name classes, so on the synthetic data it is scored
   class-agnostically, beside the U-Net scored the same way.

Every score is :func:`defectlab.evaluate`'s (one-to-one matching at IoU ≥ 0.5); both methods'
instances go through the same tracing into polygons (:func:`defectlab.dl.prelabels.prediction_item`,
what ``defectlab predict --prelabels cvat`` writes).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from defectlab.raster.split import DEFAULT_NECK_RATIO

ROOT = Path(__file__).resolve().parents[1]
#: The workshop's labeled image (its PNG lies beside it), in the shared data beside the repository.
WORKSHOP_LABELS = ROOT.parent / "shared" / "data" / "workshop" / "DL_for_Microscopy_Train_Lab_1.xml"
#: Column where the held-out quarter of the workshop image starts.
WORKSHOP_SPLIT_X = 384

#: The demo's data preparation (``defectlab prepare … --tile 256 --stride 128 --augment flip,rot90``).
PREPARE = dict(to="unet", tile=256, stride=128, augment="flip,rot90")
#: Pixel size the demo gives ``defectlab evaluate`` for synthetic images (only the science numbers use it).
SYNTH_PIXEL_SIZE = "0.5nm"
#: Baseline: connected components smaller than this are removed (the check's ``min_area_px``).
MIN_OBJECT_PX = 10
#: Baseline settings tried on the training images: Gaussian sigma (px), polarity, hole filling.
BASELINE_GRID = dict(sigma=(1.0, 2.0, 4.0), polarity=("bright", "dark"), fill_holes=(False, True))
#: Neck ratios tried for the workshop's touching bubbles (``split_instances``; default 0.7).
NECK_RATIOS = (0.6, 0.7, 0.8, 0.9, 1.0)
#: Name of the single class of class-agnostic scores.
ANY = "defect"


@dataclasses.dataclass
class Row:
    """One line of the result table."""

    task: str
    method: str
    iou: float
    precision: float
    recall: float
    f1: float
    train_s: float
    predict_s: float
    n_true: int


# ---------------------------------------------------------------------------------------------
# Scoring


def class_agnostic(ds: Any) -> Any:
    """The dataset with every instance relabeled ``ANY``: foreground vs background."""
    from defectlab.model import Label

    def relabel(item: Any) -> Any:
        shapes = tuple(s.replace(label=ANY) if (s.is_area or s.kind == "polyline") else s for s in item.shapes)
        return dataclasses.replace(item, shapes=shapes)

    return dataclasses.replace(ds, labels=(Label(ANY),), items=tuple(relabel(it) for it in ds.items))


def score(pred: Any, truth: Any, pixel_size: str | None) -> Any:
    """``defectlab.evaluate`` (IoU ≥ 0.5), quiet about images without a calibration."""
    import defectlab
    from defectlab.imaging.micrograph import CalibrationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)  # px scores only; no size in nm is reported
        return defectlab.evaluate(pred, truth, iou=0.5, pixel_size=pixel_size, progress=False)


def row(task: str, method: str, e: Any, train_s: float, predict_s: float) -> Row:
    o = e.overall
    return Row(task, method, o["pixel_iou"], o["precision"], o["recall"], o["f1"], train_s, predict_s,
               o["tp"] + o["fn"])


def recall_by_class(e: Any, truth: Any) -> dict[str, tuple[int, int]]:
    """Label -> (found, total) of the true objects of a class-agnostic evaluation ``e``.

    ``e`` scored :func:`class_agnostic` copies of ``truth``; a true object's class is read back
    from ``truth`` by its image and shape index (the copies keep the shapes' order).
    """
    by_key = {it.key: it for it in truth.items}
    out: dict[str, list[int]] = {lab.name: [0, 0] for lab in truth.labels}
    t = e.true_defects
    for key, index, matched in zip(t["image"], t["shape_index"], t["matched"]):
        label = by_key[key].shapes[int(index)].label
        out[label][0] += int(matched) >= 0
        out[label][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Ours: the demo's recipe


def train_ours(export: Any, work: Path, *, split: Sequence[float], args: argparse.Namespace) -> tuple[Any, float, dict]:
    """``prepare`` + ``train_unet`` as ``make demo`` runs them; the model, seconds, tile counts."""
    import defectlab

    t0 = time.perf_counter()
    report = defectlab.prepare(export, work / "tiles", split=split, seed=args.seed, progress=False, **PREPARE)
    run = defectlab.train_unet(work / "tiles" / "train", work / "model", epochs=args.epochs,
                               steps_per_epoch=args.steps_per_epoch, seed=args.seed, device=args.device,
                               lr=args.lr, schedule=args.schedule, batch_size=args.batch_size,
                               tile_size=args.tile, progress=False, plot=False)
    return run.model, time.perf_counter() - t0, {s: c["tiles"] for s, c in report.counts.items()}


def predict_ours(model: Any, images: Sequence[Path], out: Path, **options: Any) -> tuple[Any, float]:
    """``defectlab.predict`` with CVAT pre-labels, read back; mean seconds per image (net + instances)."""
    import defectlab

    report = defectlab.predict(model, list(images), out, prelabels="cvat", progress=False, **options)
    seconds = [im["seconds"] for im in report.images]
    return defectlab.read(report.prelabels), float(np.mean(seconds))


# ---------------------------------------------------------------------------------------------
# Baseline: Gaussian + Otsu + connected components


def _remove_small(fg: np.ndarray, min_px: int) -> np.ndarray:
    import skimage
    from skimage.morphology import remove_small_objects

    major, minor = (int(v) for v in skimage.__version__.split(".")[:2])
    size = {"max_size": min_px - 1} if (major, minor) >= (0, 26) else {"min_size": min_px}  # renamed in 0.26
    return remove_small_objects(fg, connectivity=2, **size)


def otsu_instances(image: np.ndarray, sigma: float, polarity: str, fill_holes: bool) -> np.ndarray:
    """(H, W) int32 instance ids of the classical pipeline, 0 = background.

    Gaussian smoothing (``sigma`` px), Otsu's threshold of the smoothed image, objects brighter
    (``polarity="bright"``) or darker than it, holes filled on request, components under
    ``MIN_OBJECT_PX`` px removed, 8-connected components as instances.
    """
    from scipy import ndimage
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label

    smooth = gaussian(np.asarray(image, dtype=np.float64), sigma=sigma, preserve_range=True)
    t = threshold_otsu(smooth)
    fg = smooth > t if polarity == "bright" else smooth < t
    if fill_holes:
        fg = ndimage.binary_fill_holes(fg)
    return label(_remove_small(fg, MIN_OBJECT_PX), connectivity=2).astype(np.int32)


def fit_baseline(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[dict, float, float]:
    """The grid setting with the best pooled foreground IoU on ``(image, true foreground)`` pairs.

    Returns the setting, its training IoU and the seconds the search took.
    """
    t0 = time.perf_counter()
    best, best_iou = {}, -1.0
    keys = list(BASELINE_GRID)
    for values in itertools.product(*BASELINE_GRID.values()):
        params = dict(zip(keys, values))
        inter = union = 0
        for image, truth in pairs:
            fg = otsu_instances(image, **params) > 0
            inter += int(np.count_nonzero(fg & truth))
            union += int(np.count_nonzero(fg | truth))
        iou = inter / union if union else math.nan
        if iou > best_iou:
            best, best_iou = params, iou
    return best, best_iou, time.perf_counter() - t0


def predict_baseline(params: dict, images: Sequence[Path], label: str) -> tuple[Any, float]:
    """The baseline's instances as a Dataset of traced polygons (as pre-labels); mean seconds per image."""
    from defectlab.dl.prelabels import prelabels_dataset, prediction_item
    from defectlab.imaging.io import read_image, to_gray
    from defectlab.model import Label

    items, seconds = [], []
    for path in images:
        image = to_gray(read_image(path))
        t0 = time.perf_counter()
        inst = otsu_instances(image, **params)
        seconds.append(time.perf_counter() - t0)
        n = int(inst.max())
        item, _ = prediction_item((inst > 0).astype(np.uint8), inst, np.ones(n, np.uint8), path.name, {1: label})
        items.append(item)
    return prelabels_dataset(items, [Label(label)]), float(np.mean(seconds))


def foreground_pairs(ds: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(gray image, true foreground mask)`` of every item of ``ds``."""
    from defectlab.imaging.io import read_image, to_gray
    from defectlab.raster import semantic_mask

    index = ds.class_index()
    return [(to_gray(read_image(it.image)), semantic_mask(it, index) > 0) for it in ds.items]


def describe(params: dict, iou: float) -> str:
    return (f"sigma {params['sigma']:g} px, {params['polarity']} objects, holes "
            f"{'filled' if params['fill_holes'] else 'kept'}, >= {MIN_OBJECT_PX} px (training IoU {iou:.3f})")


# ---------------------------------------------------------------------------------------------
# The two tasks


def image_paths(ds: Any) -> list[Path]:
    return [Path(str(it.image)) for it in ds.items]


def synthetic_task(args: argparse.Namespace, work: Path) -> tuple[list[Row], list[str]]:
    import defectlab

    train_ds = defectlab.synthetic(work / "export", n=args.n_train, size=512, seed=args.seed)
    test_ds = defectlab.synthetic(work / "test", n=args.n_test, size=512, seed=args.seed + 1)
    model, train_s, tiles = train_ours(train_ds, work, split=(0.8, 0.2, 0.0), args=args)
    pred, predict_s = predict_ours(model, image_paths(test_ds), work / "predictions")
    params, fit_iou, fit_s = fit_baseline(foreground_pairs(train_ds))
    base, base_s = predict_baseline(params, image_paths(test_ds), ANY)

    truth_any = class_agnostic(test_ds)
    ours = score(pred, test_ds, SYNTH_PIXEL_SIZE)
    ours_any = score(class_agnostic(pred), truth_any, SYNTH_PIXEL_SIZE)
    base_any = score(base, truth_any, SYNTH_PIXEL_SIZE)
    task = f"synthetic ({args.n_test} img)"
    rows = [row(task, "U-Net, per class", ours, train_s, predict_s),
            row(task, "U-Net, any class", ours_any, train_s, predict_s),
            row(task, "Otsu, any class", base_any, fit_s, base_s)]

    found_ours, found_base = recall_by_class(ours_any, test_ds), recall_by_class(base_any, test_ds)
    lines = [f"synthetic: {args.n_train} training images (seed {args.seed}) -> tiles {tiles}; "
             f"{args.n_test} test images (seed {args.seed + 1})",
             f"baseline setting chosen on the training images: {describe(params, fit_iou)}",
             "",
             "synthetic, per class   U-Net per class                       recall, any class",
             f"{'class':<18} {'n true':>6} {'IoU':>7} {'prec':>7} {'recall':>7} {'F1':>7}   {'U-Net':>7} {'Otsu':>7}",
             "-" * 80]
    for r in ours.per_class.rows():
        name = r["label"]
        (fo, n), (fb, _) = found_ours[name], found_base[name]
        lines.append(f"{name:<18} {n:>6} {r['pixel_iou']:>7.3f} {r['precision']:>7.3f} {r['recall']:>7.3f} "
                     f"{r['f1']:>7.3f}   {_ratio(fo, n):>7.3f} {_ratio(fb, n):>7.3f}")
    return rows, lines


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def crop_dataset(ds: Any, windows: dict[str, Any], out: Path) -> dict[str, Any]:
    """One single-item Dataset per window of ``ds``'s only image, labels clipped, image cut and written.

    Shapes cut by a window's border become masks of their visible pixels (``min_visible=0``:
    every piece kept), so each side holds exactly its own label pixels.
    """
    from defectlab.imaging.io import read_image, write_image
    from defectlab.model import ImageSource, Item
    from defectlab.preparation.tiling import tile_image, tile_item

    (item,) = ds.items
    image = read_image(item.image)
    tiles, notes = tile_item(item, list(windows.values()), min_visible=0.0)
    if notes:
        raise RuntimeError(f"{ds.source}: {notes[0]}")
    result = {}
    for (name, win), tile in zip(windows.items(), tiles):
        path = out / name / "images" / f"workshop_{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, tile_image(image, win))
        cut = Item(path.name, tile.item.size_hw, tile.item.shapes, image=ImageSource(path))
        result[name] = ds.with_items([cut])
    return result


def workshop_task(args: argparse.Namespace, work: Path) -> tuple[list[Row], list[str]]:
    import defectlab
    from defectlab.preparation.tiling import Window

    full = defectlab.read(args.workshop)
    h, w = full[0].size_hw
    parts = crop_dataset(full, {"train": Window(0, 0, h, WORKSHOP_SPLIT_X),
                                "test": Window(WORKSHOP_SPLIT_X, 0, h, w - WORKSHOP_SPLIT_X)}, work / "crops")
    train_ds, test_ds = parts["train"], parts["test"]
    label = full.labels[0].name
    model, train_s, tiles = train_ours(train_ds, work, split=(1.0, 0.0, 0.0), args=args)
    params, fit_iou, fit_s = fit_baseline(foreground_pairs(train_ds))
    # the bubbles overlap (their labels too): how readily touching objects are split apart is
    # chosen on the training quarters by object F1, as the baseline's settings are
    f1_by_ratio = {r: score(predict_ours(model, image_paths(train_ds), work / f"neck_{r}", neck_ratio=r)[0],
                            train_ds, None).overall["f1"] for r in NECK_RATIOS}
    neck = max(NECK_RATIOS, key=lambda r: (f1_by_ratio[r], -abs(r - DEFAULT_NECK_RATIO)))
    rows = []
    for name, ds in (("held-out 1/4", test_ds), ("training 3/4", train_ds)):
        for ratio, method in ((DEFAULT_NECK_RATIO, "U-Net"), (neck, f"U-Net, neck {neck:g}")):
            if method != "U-Net" and ratio == DEFAULT_NECK_RATIO:
                continue
            pred, predict_s = predict_ours(model, image_paths(ds), work / f"predictions_{name[:4]}_{ratio}",
                                           neck_ratio=ratio)
            rows.append(row(f"workshop {name}", method, score(pred, ds, None), train_s, predict_s))
        base, base_s = predict_baseline(params, image_paths(ds), label)
        rows.append(row(f"workshop {name}", "Otsu", score(base, ds, None), fit_s, base_s))
    clipped = sum(s.attributes.get("clipped") == "1" for it in test_ds.items for s in it.shapes)
    lines = [f"workshop: {args.workshop.name}, {len(full[0].shapes)} bubbles, cut at x = {WORKSHOP_SPLIT_X}: "
             f"training 3/4 {len(train_ds[0].shapes)} objects -> tiles {tiles}; held-out 1/4 "
             f"{len(test_ds[0].shapes)} objects ({clipped} cut by the line or clipped, counted whole as evaluate does)",
             f"baseline setting chosen on the training 3/4: {describe(params, fit_iou)}",
             "U-Net neck ratio chosen on the training 3/4 by object F1: " + ", ".join(
                 f"{r:g} -> {f1_by_ratio[r]:.3f}" for r in NECK_RATIOS) + f" => {neck:g}"]
    return rows, lines


# ---------------------------------------------------------------------------------------------
# Output


def table(rows: Sequence[Row]) -> list[str]:
    head = (f"{'task':<22} {'method':<17} {'n true':>6} {'pixel IoU':>9} {'precision':>9} {'recall':>7} "
            f"{'F1':>7} {'train s':>8} {'predict s/image':>15}")
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(f"{r.task:<22} {r.method:<17} {r.n_true:>6} {r.iou:>9.3f} {r.precision:>9.3f} {r.recall:>7.3f} "
                   f"{r.f1:>7.3f} {r.train_s:>8.1f} {r.predict_s:>15.3f}")
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=8, help="U-Net epochs (the demo's 8)")
    p.add_argument("--steps-per-epoch", type=int, default=40, help="batches per epoch (the demo's 40)")
    p.add_argument("--lr", type=float, default=2e-3, help="U-Net learning rate (the demo's 2e-3)")
    p.add_argument("--schedule", default="plateau", choices=("plateau", "onecycle"), help="learning-rate schedule")
    p.add_argument("--batch-size", type=int, default=8, help="U-Net crops per step")
    p.add_argument("--tile", type=int, default=256, help="U-Net training crop, px")
    p.add_argument("--n-train", type=int, default=6, help="synthetic training images (the demo's 6)")
    p.add_argument("--n-test", type=int, default=8, help="synthetic held-out images (the demo predicts 2)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the training images, tiles and net; the test images use seed + 1")
    p.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, mps")
    p.add_argument("--workdir", type=Path, help="keep every file here (default: a temporary folder, removed)")
    p.add_argument("--workshop", type=Path, default=WORKSHOP_LABELS,
                   help="the workshop's CVAT XML, its image beside it (default: ../shared/data/workshop/…Lab_1.xml)")
    p.add_argument("--skip-synthetic", action="store_true", help="only the workshop task")
    p.add_argument("--skip-workshop", action="store_true", help="only the synthetic task")
    args = p.parse_args(argv)
    for name in ("epochs", "steps_per_epoch", "n_train", "n_test"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.skip_workshop and not args.workshop.is_file():
        p.error(f"--workshop {args.workshop}: no such file; the workshop data lives in ../shared/data "
                "(see its README), or run with --skip-workshop")
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        p.error(f"--workdir {args.workdir}: exists and is not empty; give a new or empty folder")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from defectlab.dl.model_io import resolve_device

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"U-Net recipe: prepare tile 256 stride 128 flip,rot90 -> train_unet epochs {args.epochs} x "
          f"{args.steps_per_epoch} steps of {args.batch_size} x {args.tile} px, lr {args.lr:g} {args.schedule}, on "
          f"{resolve_device(args.device)}; scores: defectlab.evaluate, IoU >= 0.5", flush=True)
    rows, lines = [], []
    try:
        if not args.skip_synthetic:
            r, l = synthetic_task(args, work / "synthetic")
            rows += r
            lines += l + [""]
        if not args.skip_workshop:
            r, l = workshop_task(args, work / "workshop")
            rows += r
            lines += l + [""]
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("\n".join(lines + table(rows)))
    print("\n'per class': an object matches only one of its class; pixel IoU pools the classes' intersections and "
          "unions.\n'any class': every object relabeled one class (foreground vs background IoU, matching across "
          "classes); Otsu cannot name classes.\n'train s': prepare + training for the U-Net, the setting search for "
          "Otsu. 'predict s/image': net + instances (U-Net), smoothing + threshold + components (Otsu); tracing not "
          "timed.")
    print(f"total {time.perf_counter() - t0:.0f} s" + (f"; files kept in {work}" if args.workdir else ""))


if __name__ == "__main__":
    main()
