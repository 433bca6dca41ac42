"""Benchmark: what test-time augmentation costs, whether its uncertainty points at the wrong objects,
and whether images unlike the training set are flagged, in one run.

Run::

    .venv/bin/python benchmarks/bench_uncertainty.py [--n-train 4] [--n-test 6] [--size 256] [--epochs 3] [--steps-per-epoch 15]

What it does (see benchmarks/README.md):

1. trains a U-Net on ``--n-train`` synthetic micrographs (cavities only, seed 0; a deliberately
   short run, 3 epochs of 15 steps, so that it makes mistakes to find) and predicts ``--n-test``
   new ones (seed 1) without and with ``tta=True``: seconds per image, foreground pixel IoU,
   object F1 (one-to-one at IoU >= 0.5, :func:`defectlab.measurement.evaluate.match_instances`);
2. for every predicted object of the TTA run, whether it matches a true one: the AUROC with which
   its uncertainty (``Prediction.object_uncertainty``) separates the wrong objects from the right
   ones, beside the baseline, 1 − the object's mean probability of its class
   (``Prediction.scores``, what every prediction has), on the same objects; 0.5 is chance;
3. the test images as they are, and the same images 16× brighter (16-bit) and noisier
   (Gaussian noise of 25 grey levels ×16): the share flagged as unlike the training images
   (``Prediction.unlike``, :mod:`defectlab.dl.reference`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def auroc(wrong: np.ndarray, right: np.ndarray) -> float:
    """P(a wrong object's value > a right one's), ties counted half (Mann–Whitney)."""
    if not len(wrong) or not len(right):
        return float("nan")
    w, r = np.asarray(wrong)[:, None], np.asarray(right)[None, :]
    return float(((w > r).sum() + 0.5 * (w == r).sum()) / (w.size * r.size))


def wrong_objects(instances: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int]:
    """(N,) bool: predicted object ``i + 1`` matches no true object; and the number of true objects."""
    from defectlab.measurement.evaluate import match_instances

    n_p, n_t = int(instances.max()), int(truth.max())
    joint = np.bincount(instances.ravel().astype(np.int64) * (n_t + 1) + truth.ravel(),
                        minlength=(n_p + 1) * (n_t + 1)).reshape(n_p + 1, n_t + 1)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    matched = {i for i, _, _ in match_instances(iou)} if n_p and n_t else set()
    return np.array([i not in matched for i in range(n_p)], dtype=bool), n_t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=4)
    ap.add_argument("--n-test", type=int, default=6)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps-per-epoch", type=int, default=15)
    args = ap.parse_args()

    import defectlab.api as dl
    from defectlab.imaging.io import read_image
    from defectlab.raster import instance_labels

    work = Path(tempfile.mkdtemp(prefix="bench_uncertainty_"))
    synth = dict(size=args.size, n_loops=0, n_precipitates=0, n_lines=0)
    train = dl.synthetic(work / "train", n=args.n_train, seed=0, **synth)
    t0 = time.perf_counter()
    run = dl.train_unet(train, work / "model", epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                        tile_size=128, lr=2e-3, progress=False, plot=False)
    print(f"trained {args.epochs} epochs x {args.steps_per_epoch} steps in {time.perf_counter() - t0:.0f} s "
          f"(validation IoU {run.best['val_mean_iou']:.3f})")
    test = dl.synthetic(work / "test", n=args.n_test, seed=1, **synth)
    model = run.model
    rows = {False: [], True: []}
    unc, conf, wrong = [], [], []
    flagged_in, flagged_out = 0, 0
    rng = np.random.default_rng(0)
    for tta in (False, True):  # warm up: the ONNX export and session are made on the first call
        model.predict(read_image(test.items[0].image), tta=tta)
    for item in test.items:
        image = read_image(item.image)
        truth = instance_labels(item)
        for tta in (False, True):
            t = time.perf_counter()
            pred = model.predict(image, tta=tta)
            s = time.perf_counter() - t
            fg, tf = pred.semantic > 0, truth > 0
            bad, n_true = wrong_objects(pred.instances, truth)
            tp = int((~bad).sum())
            rows[tta].append((s, (fg & tf).sum() / max((fg | tf).sum(), 1), tp, len(bad), n_true))
            if tta:
                unc += pred.object_uncertainty.tolist()
                conf += (1.0 - pred.scores).tolist()
                wrong += bad.tolist()
                flagged_in += bool(pred.unlike is not None and pred.unlike.flagged)
        odd = np.clip(image.astype(np.float64) * 16 + rng.normal(0, 25 * 16, image.shape[:2] + image.shape[2:]),
                      0, 65535).astype(np.uint16)
        p_odd = model.predict(odd)
        flagged_out += bool(p_odd.unlike is not None and p_odd.unlike.flagged)
    print(f"\n{args.n_test} held-out synthetic images {args.size}x{args.size}, engine {pred.engine}")
    print(f"{'':<14}{'s/image':>9}{'pixel IoU':>11}{'object F1':>11}")
    for tta, label in ((False, "no TTA"), (True, "TTA (8 views)")):
        r = np.array(rows[tta], dtype=np.float64)
        f1 = 2 * r[:, 2].sum() / max(r[:, 3].sum() + r[:, 4].sum(), 1)
        print(f"{label:<14}{r[:, 0].mean():>9.3f}{r[:, 1].mean():>11.3f}{f1:>11.3f}")
    u, c, w_ = np.array(unc), np.array(conf), np.array(wrong, dtype=bool)
    print(f"\nwrong objects among the TTA run's predictions: {int(w_.sum())} of {len(w_)}")
    print(f"AUROC wrong vs right, TTA object uncertainty: {auroc(u[w_], u[~w_]):.3f}")
    print(f"AUROC wrong vs right, baseline 1 - mean class probability: {auroc(c[w_], c[~w_]):.3f}")
    print(f"flagged unlike the training set: {flagged_in} of {args.n_test} held-out images, "
          f"{flagged_out} of {args.n_test} 16x brighter and noisier copies")


if __name__ == "__main__":
    main()
