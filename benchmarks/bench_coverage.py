"""Benchmark: do the 95 % intervals of a *predicted* density hold the true density? (issue 17)

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_coverage.py [--repeats 20] [--budget 240] [--model DIR] [--folds K]

The truth is known because the micrographs are synthetic and their defects are a Poisson
process: each image draws its number of cavities, loops and precipitates from a Poisson
distribution of mean ``--cavities`` / ``--loops`` / ``--precipitates`` per 512², so the true
density of each class is that mean over the area (what a scientist wants to know about the
material, not the count that happened to fall into these images).

1. A U-Net is trained once on ``--n-train`` such images (seed 0) as a user would:
   ``defectlab.train_unet(export, model, time_budget_s=--budget)`` (the defaults; the
   post-processing is chosen on its validation images) — or ``--model DIR`` is used. With
   ``--folds K``: ``train_unet(..., folds=K)``, an ensemble of K cross-validation models in the
   same budget, whose predictions average the members' and whose members' own pre-labels
   (``prelabels/members/``) ``measure`` then draws on for model uncertainty.
2. ``--repeats`` times (held-out seeds 1000 + r): ``--n-images`` new micrographs; ``predict``
   writes CVAT pre-labels; ``measure`` of the pre-labels gives each class's density with its
   95 % interval (:func:`defectlab.measurement.uncertainty.intervals`: Poisson bootstrap over
   defects, cluster bootstrap over images, the wider of the two).

Printed per class, over the repeats: how often the interval holds the true density
(*coverage*; the goal is ≥ 90 %), the mean bias of the predicted density against the density
labeled in the same images, and the mean relative half-width of the interval — beside two
baselines measured on the same images: the same interval computed on the **true labels** (what a
perfect model would report: it should cover about 95 %), and the **Poisson interval of the
predicted count alone** (``count ± √count``-style counting statistics, what is usually
published).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import image_paths  # noqa: E402

CLASSES = ("cavity", "loop", "precipitate")


def poisson_set(out: Path, n_images: int, size: int, means: dict[str, float], seed: int) -> Any:
    """A CVAT export of ``n_images`` synthetic micrographs whose defect counts are Poisson draws."""
    from defectlab.formats.cvat_xml import write_cvat
    from defectlab.imaging.io import write_image
    from defectlab.model import Dataset, ImageSource, Item
    from defectlab.preparation.synthetic import SYNTHETIC_LABELS, SyntheticConfig, synthetic_item

    (out / "images").mkdir(parents=True)
    scale = size * size / 512 ** 2
    items = []
    for i, stream in enumerate(np.random.SeedSequence(seed).spawn(n_images)):
        rng = np.random.default_rng(stream)
        counts = {c: int(rng.poisson(means[c] * scale)) for c in CLASSES}
        cfg = SyntheticConfig(size_hw=(size, size), n_cavities=counts["cavity"], n_loops=counts["loop"],
                              n_precipitates=counts["precipitate"], n_lines=0)
        image, item = synthetic_item(rng, cfg, name=f"img_{i:03d}.png")
        placed = {c: sum(s.label == c for s in item.shapes) for c in CLASSES}
        if placed != counts:
            raise SystemExit(f"seed {seed} image {i}: placed {placed} of {counts}: lower the densities")
        write_image(out / "images" / item.name, image)
        items.append(Item(item.name, item.size_hw, item.shapes, image=ImageSource(out / "images" / item.name), id=i))
    ds = Dataset(labels=SYNTHETIC_LABELS, items=tuple(items))
    write_cvat(ds, out / "annotations.xml")
    return ds


def densities(ds: Any) -> dict[str, tuple[float, float, float, float]]:
    """label -> (density, lo, hi, count) per px², from ``defectlab.measure`` of ``ds`` (a path of
    pre-labels: with the ensemble members' pre-labels beside it, if any)."""
    import defectlab

    m = defectlab.measure(ds, figures=False, progress=False)
    return {r["label"]: (float(r["density_per_px2"]), float(r["density_per_px2_lo"]),
                         float(r["density_per_px2_hi"]), float(r["count"])) for r in m.intervals.rows()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--n-images", type=int, default=4, help="held-out micrographs per repeat")
    p.add_argument("--n-train", type=int, default=6)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--cavities", type=float, default=14.0, help="mean cavities per 512²")
    p.add_argument("--loops", type=float, default=6.0, help="mean loops per 512²")
    p.add_argument("--precipitates", type=float, default=6.0, help="mean precipitates per 512²")
    p.add_argument("--budget", type=float, default=240.0, help="training budget, s (train_unet's time_budget_s)")
    p.add_argument("--model", type=Path, help="a trained model folder to use instead of training one")
    p.add_argument("--tta", action="store_true", help="predict with test-time augmentation")
    p.add_argument("--folds", type=int, help="train an ensemble of this many cross-validation models instead")
    p.add_argument("--workdir", type=Path, help="keep every file here (default: a temporary folder)")
    args = p.parse_args(argv)
    import defectlab
    from defectlab.measurement.uncertainty import poisson_interval

    means = {"cavity": args.cavities, "loop": args.loops, "precipitate": args.precipitates}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="defectlab-bench-coverage-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        model = args.model
        t0 = time.perf_counter()
        if model is None:
            train = poisson_set(work / "train", args.n_train, args.size, means, seed=0)
            model = defectlab.train_unet(train, work / "model", time_budget_s=args.budget, progress=False,
                                         plot=False, folds=args.folds).model
        train_s = time.perf_counter() - t0
        area = args.n_images * args.size ** 2
        hits = {c: {"pred": 0, "labels": 0, "poisson": 0} for c in CLASSES}
        bias: dict[str, list[float]] = {c: [] for c in CLASSES}
        width: dict[str, list[float]] = {c: [] for c in CLASSES}
        t1 = time.perf_counter()
        for r in range(args.repeats):
            rep = work / f"repeat_{r:02d}"
            truth = poisson_set(rep / "truth", args.n_images, args.size, means, seed=1000 + r)
            report = defectlab.predict(model, image_paths(truth), rep / "pred", prelabels="cvat", tta=args.tta,
                                       progress=False, overwrite=True)
            pred, true = densities(report.prelabels), densities(truth)  # members/ beside: model uncertainty
            line = []
            for c in CLASSES:
                lam = means[c] / 512 ** 2
                if c in pred:
                    d, lo, hi, n = pred[c]
                else:  # no defect of the class predicted: the interval of a zero count
                    d, lo, hi, n = 0.0, 0.0, poisson_interval(0)[1] / area, 0.0
                td, tlo, thi, _ = true[c]
                hits[c]["pred"] += lo <= lam <= hi
                hits[c]["labels"] += tlo <= lam <= thi
                plo, phi = (v / area for v in poisson_interval(n))
                hits[c]["poisson"] += plo <= lam <= phi
                bias[c].append(d / td - 1 if td else float("nan"))
                width[c].append((hi - lo) / 2 / d if d else float("nan"))
                line.append(f"{c} {d * 512 ** 2:5.1f} [{lo * 512 ** 2:5.1f}, {hi * 512 ** 2:5.1f}] "
                            f"labels {td * 512 ** 2:5.1f}")
            print(f"  repeat {r:2d}: per 512²: " + "; ".join(line), flush=True)
            if args.workdir is None:
                shutil.rmtree(rep, ignore_errors=True)
        predict_s = time.perf_counter() - t1
        print(f"\n{args.repeats} repeats of {args.n_images} held-out {args.size}² images; training "
              f"{'given' if args.model else f'{train_s / 60:.1f} min'}; predict + measure {predict_s / 60:.1f} min; "
              f"load average {os.getloadavg()[0]:.1f}; TTA {'on' if args.tta else 'off'}; "
              f"{f'an ensemble of {args.folds} folds' if args.folds else 'one model'}")
        print(f"{'class':<12} {'true /512²':>10} {'coverage: ours':>14} {'true labels':>11} {'Poisson only':>12} "
              f"{'bias vs labels':>14} {'half-width':>10}")
        for c in CLASSES:
            h = hits[c]
            print(f"{c:<12} {means[c]:>10.1f} {h['pred'] / args.repeats:>14.0%} {h['labels'] / args.repeats:>11.0%} "
                  f"{h['poisson'] / args.repeats:>12.0%} {np.nanmean(bias[c]):>+14.1%} {np.nanmean(width[c]):>10.1%}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
