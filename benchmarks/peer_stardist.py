"""StarDist's own TensorFlow implementation (``stardist`` 0.9 on TensorFlow 2 / Keras 3) with a CPU
training budget: the peer of ``bench_instances.py --stardist-python``.

Run with the Python of ``.venv-stardist`` (``make bench-stardist-env``), never the project's: this
file imports stardist and tensorflow, nothing of defectlab::

    .venv-stardist/bin/python benchmarks/peer_stardist.py DATA --out OUT --budget 1200

``DATA`` holds ``train/images/*.tif`` (gray), ``train/labels/*.tif`` (the same names; instance id
per pixel, 0 = background — a label image cannot hold overlaps: where two labeled objects
overlap, the later one's pixels are kept, which is what StarDist itself trains on) and
``test/images/*.tif``. The script

1. normalizes every image as StarDist's examples do (``csbdeep.utils.normalize``, percentiles 1
   and 99.8) and fills small holes of each label (``stardist.fill_label_holes``);
2. holds out its validation part as ours does: with one training image its bottom strip
   (``--val-fraction`` of the rows; padded with its median and no objects up to the patch size,
   since StarDist validates on patches of that size), else the last ``--val-fraction`` of the
   images (at least one);
3. trains ``StarDist2D`` with StarDist's own defaults (32 rays, grid 2 × 2, U-Net of 32 base
   filters, depth 3, Adam at 3e-4, ReduceLROnPlateau, best weights by validation loss, the
   flips/rotations and intensity augmenter of StarDist's training notebook) on 256² patches in
   batches of 4, with a callback that stops it once ``--budget`` CPU seconds of this process (all
   TensorFlow's threads) have passed since training began; StarDist then loads its best weights;
4. tunes the probability and NMS thresholds on the validation part (``optimize_thresholds``, as
   StarDist's notebook does; its time is reported, not counted in the budget: ours tunes after
   its budget too);
5. predicts ``test/images`` (``predict_instances``) and writes ``OUT/polygons/<name>.json``
   (the kept polygons, ``[[x, y], ...]`` each: overlaps kept, as ours are scored) and
   ``OUT/summary.json`` (steps, epochs, minutes, thresholds, versions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path, help="folder with train/images, train/labels, test/images (*.tif)")
    p.add_argument("--out", type=Path, required=True, help="output folder (polygons/, summary.json, model/)")
    p.add_argument("--budget", type=float, required=True, help="training budget, CPU seconds of this process")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")),
                   help="TensorFlow's intra-op threads (default: OMP_NUM_THREADS or 2)")
    p.add_argument("--patch", type=int, default=256, help="training patch size, px")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps-per-epoch", type=int, default=50, help="steps between validations (checkpoints)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def read_folder(folder: Path) -> dict[str, "object"]:
    from tifffile import imread

    return {p.stem: imread(p) for p in sorted(folder.glob("*.tif"))}


def augmenter(x, y):
    """StarDist's training notebook's augmenter: a random flip/rotation of image and labels alike,
    then a random intensity change of the image."""
    import numpy as np

    perm = tuple(np.random.permutation(x.ndim))
    x, y = x.transpose(perm), y.transpose(perm)
    for ax in range(x.ndim):
        if np.random.rand() > 0.5:
            x, y = np.flip(x, axis=ax), np.flip(y, axis=ax)
    x = x * np.random.uniform(0.6, 2) + np.random.uniform(-0.2, 0.2)
    return x, y


def split(images: list, labels: list, fraction: float) -> tuple[list, list, list, list]:
    """(train images, train labels, validation images, validation labels), see the module docstring."""
    if len(images) == 1:
        h = images[0].shape[0]
        cut = h - max(1, round(fraction * h))
        return [images[0][:cut]], [labels[0][:cut]], [images[0][cut:]], [labels[0][cut:]]
    n_val = max(1, round(fraction * len(images)))
    return images[:-n_val], labels[:-n_val], images[-n_val:], labels[-n_val:]


def pad_to(images: list, labels: list, size: int) -> tuple[list, list]:
    """Validation images smaller than a patch (a single image's strip) padded to it with their
    median and no objects: StarDist draws validation patches of the training patch size."""
    import numpy as np

    out_x, out_y = [], []
    for x, y in zip(images, labels):
        pad = [(0, max(0, size - n)) for n in x.shape[:2]]
        out_x.append(np.pad(x, pad, constant_values=float(np.median(x))))
        out_y.append(np.pad(y, pad))
    return out_x, out_y


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from csbdeep.utils import normalize
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    train_x = read_folder(args.data / "train" / "images")
    train_y = read_folder(args.data / "train" / "labels")
    test_x = read_folder(args.data / "test" / "images")
    if sorted(train_x) != sorted(train_y) or not train_x:
        sys.exit(f"{args.data}: expected the same names in train/images and train/labels")
    names = sorted(train_x)
    X = [normalize(train_x[n].astype(np.float32), 1, 99.8, axis=(0, 1)) for n in names]
    Y = [fill_label_holes(train_y[n].astype(np.int32)) for n in names]
    Xt, Yt, Xv, Yv = split(X, Y, args.val_fraction)
    patch = min([args.patch] + [min(x.shape[:2]) // 16 * 16 for x in Xt])
    Xv, Yv = pad_to(Xv, Yv, patch)
    config = Config2D(n_rays=32, grid=(2, 2), n_channel_in=1, train_patch_size=(patch, patch),
                      train_batch_size=args.batch_size, train_epochs=100_000,
                      train_steps_per_epoch=args.steps_per_epoch, train_tensorboard=False)
    args.out.mkdir(parents=True, exist_ok=True)
    model = StarDist2D(config, name="model", basedir=str(args.out))

    class Budget(keras.callbacks.Callback):
        """Stops training once the CPU budget is spent (checked after every step)."""

        def __init__(self) -> None:
            super().__init__()
            self.start, self.steps = time.process_time(), 0

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.steps += 1
            if time.process_time() - self.start >= args.budget:
                self.model.stop_training = True

    budget = Budget()
    model.prepare_for_training()
    model.callbacks.append(budget)
    t0, c0 = time.perf_counter(), time.process_time()
    history = model.train(Xt, Yt, validation_data=(Xv, Yv), augmenter=augmenter,
                          epochs=config.train_epochs, steps_per_epoch=config.train_steps_per_epoch)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    t1 = time.perf_counter()
    model.optimize_thresholds(Xv, Yv)
    tune_s = time.perf_counter() - t1
    (args.out / "polygons").mkdir(exist_ok=True)
    t2 = time.perf_counter()
    for name, img in test_x.items():
        x = normalize(img.astype(np.float32), 1, 99.8, axis=(0, 1))
        _, details = model.predict_instances(x)
        polys = [np.stack([c[1], c[0]], axis=1).round(3).tolist() for c in details["coord"]]  # (2, K) y, x -> [x, y]
        (args.out / "polygons" / f"{name}.json").write_text(json.dumps(polys))
    predict_s = (time.perf_counter() - t2) / max(1, len(test_x))
    import stardist

    summary = {"steps": budget.steps, "epochs": len(history.history.get("loss", [])), "patch": patch,
               "batch_size": args.batch_size, "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1),
               "tune_s": round(tune_s, 1), "predict_s_per_image": round(predict_s, 2),
               "thresholds": {"prob": float(model.thresholds.prob), "nms": float(model.thresholds.nms)},
               "versions": {"stardist": stardist.__version__, "tensorflow": tf.__version__}}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
