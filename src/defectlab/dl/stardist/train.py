"""Training of the star-convex model, from scratch, on a CPU in minutes.

* **data**: a Dataset or any labeling export (:func:`~defectlab.dl.stardist.data.load_star_samples`:
  exact targets per instance, overlaps kept; lines train the class head only, and a note says so).
* **split**: ``val_split`` of the images held out (at least one); a single image is split
  spatially instead — its last ``val_split`` along the longer side is the validation part
  (crops never reach into it), and the notes say so; with ``val_split=0`` the training
  images are also the validation images.
* **samples**: random crops of ``tile_size`` px, flipped and rotated by multiples of 90°
  with the rays permuted to match (exact targets for every crop).
* **loss** (StarDist's): binary cross-entropy of the object probability, plus
  ``lambda_dist`` × the mean absolute error of the ray distances weighted by the true
  probability (the centers of objects count most), plus ``lambda_class`` × the
  cross-entropy of the class head.
* **schedule**: Adam, learning rate warmed up over the first 5 % and annealed by a cosine to
  0 over the run — the run being ``epochs`` × ``steps_per_epoch`` steps or, with
  ``time_budget_s``, that many seconds of training, whichever ends first.
* **validation** after every epoch: the validation images are predicted whole (tiled, as in
  prediction) with the default thresholds and scored by object F1 at IoU 0.5
  (:func:`~defectlab.dl.stardist.thresholds.match_stars`); the best epoch's weights are kept.
* **thresholds**: then tuned on the validation images (:func:`~defectlab.dl.stardist.thresholds.optimize_thresholds`)
  and written to ``thresholds.json``; :attr:`TrainResult.notes` and the history say what was found.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> ds = make_synthetic_dataset(tmp / "export", n_images=2, config=SyntheticConfig.bubbles((64, 64)))
>>> run = train_stardist(ds, tmp / "model", epochs=1, steps_per_epoch=1, batch_size=1, tile_size=64,
...                      base_filters=4, head_filters=8, progress=False, plot=False)
>>> sorted(p.name for p in (tmp / "model").iterdir())
['checkpoint.pt', 'config.json', 'history.json', 'thresholds.json', 'weights.pt']
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..._output import output_dir
from ...errors import DatasetError
from ...model import Dataset
from ...raster import Crop
from ..model_io import resolve_device
from ..train import TrainResult, _epoch_bar, _finish, _split, seed_everything
from ..unet import count_parameters
from .data import StarSample, crop_batch, line_class_indices, load_star_samples
from .model import THRESHOLDS_FILE, StarModel, star_model_config
from .net import GRIDS, StarNet, StarNetConfig, star_forward
from .predict import DEFAULT_PROB_THRESH, assemble, star_candidates
from .thresholds import f1_score, match_stars, optimize_thresholds
from ...raster.nms import DEFAULT_NMS_THRESH

__all__ = ["StarTrainOptions", "train_stardist", "star_loss"]


def _positive(name: str, v: Any, *, integer: bool = True) -> None:
    ok = (isinstance(v, int) and not isinstance(v, bool)) if integer else isinstance(v, (int, float))
    if not ok or not v > 0:
        raise ValueError(f"star training options: expected {name} > 0{' (an integer)' if integer else ''}, got {v!r}")


@dataclass(frozen=True, slots=True)
class StarTrainOptions:
    """Options of :func:`train_stardist` (``defectlab train stardist``)."""

    epochs: int = field(default=30, metadata={"help": "Most epochs.", "min": 1})
    steps_per_epoch: int = field(default=50, metadata={"help": "Batches per epoch.", "cli": "--steps-per-epoch",
                                                        "min": 1})
    time_budget_s: float | None = field(default=None, metadata={
        "help": "Stop training after this many seconds (the schedule anneals to it); thresholds are tuned after.",
        "cli": "--time-budget"})
    batch_size: int = field(default=4, metadata={"help": "Crops per step.", "cli": "--batch-size", "min": 1})
    lr: float = field(default=3e-3, metadata={"help": "Adam's peak learning rate (cosine schedule)."})
    tile_size: int = field(default=256, metadata={"help": "Training crop, px (a multiple of grid * 2**depth).",
                                                  "cli": "--tile"})
    overlap: int = field(default=128, metadata={"help": "Least tile overlap in prediction, px."})
    val_split: float = field(default=0.2, metadata={"help": "Fraction of the images (of one image: of its longer "
                                                             "side) held out for validation.", "cli": "--val-split"})
    seed: int = field(default=0, metadata={"help": "Random seed (split, crops, initial weights)."})
    device: str = field(default="auto", metadata={"help": "auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps."})
    n_rays: int = field(default=32, metadata={"help": "Rays per star (a multiple of 4).", "cli": "--rays"})
    grid: int = field(default=2, metadata={"help": "Output subsampling (1, 2 or 4).", "choices": GRIDS})
    base_filters: int = field(default=16, metadata={"help": "Filters of the backbone's first level.",
                                                    "cli": "--base-filters"})
    depth: int = field(default=3, metadata={"help": "Poolings of the backbone U-Net."})
    head_filters: int = field(default=64, metadata={"help": "Features before the heads.", "cli": "--head-filters"})
    lambda_dist: float = field(default=0.2, metadata={"help": "Weight of the ray-distance loss.",
                                                      "cli": "--lambda-dist"})
    lambda_class: float = field(default=1.0, metadata={"help": "Weight of the class-head loss.",
                                                       "cli": "--lambda-class"})
    patience: int | None = field(default=None, metadata={"help": "Epochs without a better validation F1 before "
                                                                 "stopping (default: never)."})
    augment: bool = field(default=True, metadata={"help": "Random flips and 90-degree rotations."})
    optimize_thresholds: bool = field(default=True, metadata={
        "help": "Tune the probability and NMS thresholds on the validation images.", "cli": "--optimize-thresholds"})

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size", "tile_size", "n_rays", "base_filters", "depth",
                     "head_filters"):
            _positive(name, getattr(self, name))
        for name in ("lr", "lambda_dist"):
            _positive(name, getattr(self, name), integer=False)
        if not (isinstance(self.lambda_class, (int, float)) and self.lambda_class >= 0):
            raise ValueError(f"star training options: expected lambda_class >= 0, got {self.lambda_class!r}")
        if self.time_budget_s is not None:
            _positive("time_budget_s", self.time_budget_s, integer=False)
        if self.patience is not None:
            _positive("patience", self.patience)
        if not 0 <= self.val_split < 1:
            raise ValueError(f"star training options: expected 0 <= val_split < 1, got {self.val_split!r}")
        if self.grid not in GRIDS:
            raise ValueError(f"star training options: expected grid in {GRIDS}, got {self.grid!r}")
        if self.n_rays % 4:
            raise ValueError(f"star training options: expected n_rays a multiple of 4, got {self.n_rays}")
        m = self.grid * 2**self.depth
        if self.tile_size % m:
            raise ValueError(f"star training options: expected tile_size a multiple of {m} (grid * 2**depth), "
                             f"got {self.tile_size}")
        if self.overlap < 0:
            raise ValueError(f"star training options: expected overlap >= 0, got {self.overlap!r}")


def star_loss(out: torch.Tensor, prob: torch.Tensor, dist: torch.Tensor, classes: torch.Tensor, *,
              lambda_dist: float = 0.2, lambda_class: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss (module docstring) of raw net outputs (B, 1 + K + C, h, w) and targets
    ``prob`` (B, h, w), ``dist`` (B, K, h, w), ``classes`` (B, h, w) int64; and its parts."""
    k = dist.shape[1]
    l_prob = F.binary_cross_entropy_with_logits(out[:, 0], prob)
    weight = prob[:, None]
    l_dist = (weight * (out[:, 1:1 + k] - dist).abs()).sum() / (weight.sum() * k + 1e-6)
    l_cls = F.cross_entropy(out[:, 1 + k:], classes)
    total = l_prob + lambda_dist * l_dist + lambda_class * l_cls
    return total, {"prob": float(l_prob.detach()), "dist": float(l_dist.detach()), "class": float(l_cls.detach())}


# ---------------------------------------------------------------------------------------------
# Splits


def _window(s: StarSample, rows: slice, cols: slice) -> StarSample:
    """The part of a sample in a window; its instances clipped to it (for validation)."""
    crops, kinds = [], []
    for crop, c in zip(s.crops, s.crop_classes):
        full_r = slice(max(rows.start, crop.y0), min(rows.stop, crop.y0 + crop.bitmap.shape[0]))
        full_c = slice(max(cols.start, crop.x0), min(cols.stop, crop.x0 + crop.bitmap.shape[1]))
        if full_r.stop <= full_r.start or full_c.stop <= full_c.start:
            continue
        bm = crop.bitmap[full_r.start - crop.y0:full_r.stop - crop.y0, full_c.start - crop.x0:full_c.stop - crop.x0]
        if bm.any():
            crops.append(Crop(full_c.start - cols.start, full_r.start - rows.start, bm).tight())
            kinds.append(c)
    return StarSample(s.name, s.image[rows, cols], s.prob[rows, cols], s.dist[rows, cols], s.classes[rows, cols],
                      crops, np.asarray(kinds, np.uint8))


def _split_samples(samples: list[StarSample], val_split: float, multiple: int,
                   rng: np.random.Generator) -> tuple[list[StarSample], list[StarSample], list[str], bool]:
    if len(samples) > 1 or val_split == 0:
        tr, va, same = _split(len(samples), val_split, rng)
        notes = ["validation on the training images (val_split=0): not a held-out score"] if same else []
        return [samples[i] for i in tr], [samples[i] for i in va], notes, same
    s = samples[0]
    h, w = s.prob.shape
    along_x = w >= h
    length = w if along_x else h
    cut = int(round(length * (1 - val_split)))
    if cut < multiple or length - cut < multiple:
        return samples, samples, ["one image too small to split: validation on the training image"], True
    a, b = (slice(0, h), slice(0, cut)), (slice(0, h), slice(cut, w))
    if not along_x:
        a, b = (slice(0, cut), slice(0, w)), (slice(cut, h), slice(0, w))
    side = "right" if along_x else "bottom"
    return [_window(s, *a)], [_window(s, *b)], [
        f"one image: its {side} {length - cut} px (val_split {val_split:g}) are the validation part"], False


# ---------------------------------------------------------------------------------------------
# Validation


def _validate(net: StarNet, dev: torch.device, val: list[StarSample], classes: dict[int, str],
              lines: list[int], tile: int, overlap: int, thresholds: tuple[float, float] | None = None,
              keep_candidates: bool = False) -> tuple[dict[str, Any], list[Any]]:
    cfg = net.config
    fwd = star_forward(net, dev)
    tp = fp = fn = 0
    inter = union = 0
    cands = []
    prob_t, nms_t = thresholds or (DEFAULT_PROB_THRESH, DEFAULT_NMS_THRESH)
    for s in val:
        cand = star_candidates(fwd, s.image, n_rays=cfg.n_rays, n_classes=cfg.n_classes, grid=cfg.grid,
                               multiple=cfg.multiple, tile=tile, overlap=overlap)
        pred = assemble(cand, classes, line_classes=lines, prob_thresh=prob_t, nms_thresh=nms_t)
        m = match_stars(pred.points_xy, pred.distances, s.crops, s.prob.shape)
        tp, fp, fn = tp + m["tp"], fp + m["fp"], fn + m["fn"]
        fg = pred.instances > 0
        truth = s.classes > 0
        inter += int(np.count_nonzero(fg & truth))
        union += int(np.count_nonzero(fg | truth))
        if keep_candidates:
            cands.append(cand)
    iou = inter / union if union else 1.0
    return {"val_f1": f1_score(tp, fp, fn), "val_tp": tp, "val_fp": fp, "val_fn": fn,
            "val_iou": {"objects": iou}, "val_mean_iou": iou}, cands


# ---------------------------------------------------------------------------------------------
# Training


def train_stardist(
    data: Dataset | str | Path,
    out: str | Path,
    options: StarTrainOptions | None = None,
    *,
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plot: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    **changes: Any,
) -> TrainResult:
    """Train the star-convex model and write its folder (module docstring; ``defectlab train stardist``).

    Parameters
    ----------
    data : Dataset, or path
        A Dataset (images found) or a labeling export.
    out : path
        The model folder (written atomically; replaced only with ``overwrite``).
    options : StarTrainOptions, optional
        All training options; ``changes`` (field names) override single ones.
    images : path, optional
        Where the images of an export are, if not beside it.
    progress, plot : bool
        Progress bar; ``training_curve.png``.
    callback : callable, optional
        Called with each epoch's history entry.

    Returns
    -------
    TrainResult
        ``model`` is a :class:`~defectlab.dl.stardist.model.StarModel` with its tuned thresholds.
    """
    opt = dataclasses.replace(options or StarTrainOptions(), **changes)
    dev = resolve_device(opt.device)
    rng = seed_everything(opt.seed)
    samples, class_infos, notes, ds = load_star_samples(data, n_rays=opt.n_rays, images=images)
    net_cfg = StarNetConfig(n_rays=opt.n_rays, n_classes=len(class_infos) + 1, grid=opt.grid,
                            base_filters=opt.base_filters, depth=opt.depth, head_filters=opt.head_filters)
    m = net_cfg.multiple
    train_s, val_s, split_notes, same = _split_samples(samples, opt.val_split, m, rng)
    notes += split_notes
    if not any(s.crops for s in train_s):
        raise DatasetError("no star-convex instance in the training images: nothing for this architecture to learn "
                           "(line classes alone train the U-Net: defectlab train unet)")
    min_h = min(s.prob.shape[0] for s in train_s)
    min_w = min(s.prob.shape[1] for s in train_s)
    crop_hw = (min(opt.tile_size, max(m, min_h // m * m)), min(opt.tile_size, max(m, min_w // m * m)))
    areas = np.array([s.prob.size for s in train_s], dtype=np.float64)
    weights = areas / areas.sum()
    classes = {c.index: c.name for c in class_infos}
    lines = line_class_indices(class_infos)
    tile = max(opt.tile_size, 1024 // m * m)
    # the model's tile_size is the training crop (as a U-Net's); the overlap must stay below it
    overlap = min(int(math.ceil(opt.overlap / m) * m), max(crop_hw) - m)

    net = StarNet(net_cfg)
    fg = np.concatenate([s.dist[s.prob > 0].astype(np.float32).ravel() for s in train_s if (s.prob > 0).any()])
    net.init_distances(float(fg.mean()) if fg.size else 1.0)
    net.to(dev)
    channels_last = dev.type == "cpu"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    adam = torch.optim.Adam(net.parameters(), lr=opt.lr)
    total_steps = opt.epochs * opt.steps_per_epoch
    history: list[dict[str, Any]] = []
    best_key, best_epoch, best_state = None, 0, None
    stopped_early = interrupted = out_of_time = False
    bar = _epoch_bar(opt.epochs, progress, "train stardist")
    t_start = time.perf_counter()
    step = 0

    def lr_at(step: int) -> float:
        done = step / total_steps
        if opt.time_budget_s is not None:
            done = max(done, (time.perf_counter() - t_start) / opt.time_budget_s)
        warm = 0.05
        if done < warm:
            return opt.lr * (0.1 + 0.9 * done / warm)
        return opt.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (done - warm) / (1 - warm))))

    try:
        for epoch in range(1, opt.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            losses, parts = [], []
            for _ in range(opt.steps_per_epoch):
                xb, pb, db, cb = crop_batch(train_s, weights, crop_hw, opt.batch_size, net_cfg.grid, rng, opt.augment)
                x = torch.from_numpy(xb).to(dev)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                for group in adam.param_groups:
                    group["lr"] = lr_at(step)
                adam.zero_grad(set_to_none=True)
                value, part = star_loss(net(x), torch.from_numpy(pb).to(dev), torch.from_numpy(db).to(dev),
                                        torch.from_numpy(cb).to(dev), lambda_dist=opt.lambda_dist,
                                        lambda_class=opt.lambda_class)
                if not torch.isfinite(value):
                    raise FloatingPointError(f"star loss became {float(value)} at epoch {epoch}; lower the learning "
                                             f"rate (now {opt.lr})")
                value.backward()
                adam.step()
                step += 1
                losses.append(float(value.detach()))
                parts.append(part)
                if opt.time_budget_s is not None and time.perf_counter() - t_start >= opt.time_budget_s:
                    out_of_time = True
                    break
            train_s_seconds = time.perf_counter() - t0
            scores, _ = _validate(net, dev, val_s, classes, lines, tile, overlap)
            entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": None,
                     "loss_parts": {k: float(np.mean([p[k] for p in parts])) for k in parts[0]},
                     **scores, "lr": lr_at(step), "steps": len(losses),
                     "seconds": round(time.perf_counter() - t0, 3), "train_seconds": round(train_s_seconds, 3)}
            history.append(entry)
            if callback is not None:
                callback(entry)
            key = (round(entry["val_f1"], 6), round(entry["val_mean_iou"], 6))
            if best_key is None or key > best_key:
                best_key, best_epoch = key, epoch
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{entry['train_loss']:.3f}", f1=f"{entry['val_f1']:.3f}", best=best_epoch)
            if out_of_time:
                notes.append(f"time budget of {opt.time_budget_s:g} s reached in epoch {epoch}")
                break
            if opt.patience is not None and epoch - best_epoch >= opt.patience:
                stopped_early = True
                break
    except KeyboardInterrupt:
        interrupted = True
        if best_state is None:
            raise
        notes.append(f"interrupted during epoch {len(history) + 1}; saved the best of {len(history)} epochs")
    finally:
        if bar is not None:
            bar.close()
    train_seconds = time.perf_counter() - t_start
    last_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    thresholds: dict[str, Any] = {"prob": DEFAULT_PROB_THRESH, "nms": DEFAULT_NMS_THRESH, "tuned": False}
    if opt.optimize_thresholds:
        t0 = time.perf_counter()
        _, cands = _validate(net, dev, val_s, classes, lines, tile, overlap, keep_candidates=True)
        found = optimize_thresholds(cands, [s.crops for s in val_s])
        thresholds = {"prob": found["prob"], "nms": found["nms"], "tuned": True, "val_f1": found["f1"],
                      "val_f1_default": found["f1_default"], "n_val_images": found["n_images"],
                      "n_val_objects": found["n_true"], "on_training_images": same,
                      "seconds": round(time.perf_counter() - t0, 3)}
        notes.append(f"thresholds tuned on the validation images: prob {found['prob']:g}, nms {found['nms']:g} "
                     f"(object F1 {found['f1']:.3f}; {found['f1_default']:.3f} at the defaults 0.5 / 0.4)")
    training = {
        "data": f"dataset {ds.source or '(in memory)'}", "n_train": len(train_s), "n_val": len(val_s),
        "validated_on_training_images": same, "train_images": [s.name for s in train_s],
        "val_images": [s.name for s in val_s], "epochs_run": len(history), "steps": step,
        "best_epoch": best_epoch, "best_val_f1": history[best_epoch - 1]["val_f1"],
        "best_val_mean_iou": history[best_epoch - 1]["val_mean_iou"], "crop_hw": list(crop_hw),
        "train_seconds": round(train_seconds, 1), "options": dataclasses.asdict(opt), "device": str(dev),
        "parameters": count_parameters(net), "stopped_early": stopped_early, "interrupted": interrupted,
        "notes": notes, "torch_version": torch.__version__,
    }
    config = star_model_config(net_cfg, classes=class_infos, tile_size=max(crop_hw), overlap=overlap,
                               training=training)
    model = StarModel(net, config, thresholds=thresholds, device=dev)
    checkpoint = {"epoch": len(history), "net": last_state, "optimizer": adam.state_dict(), "history": history}
    inputs = [data] if isinstance(data, (str, Path)) else ()
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        _finish(tmp, net, config, history, checkpoint, plot, f"stardist, {len(train_s)} training images")
        import json

        (tmp / THRESHOLDS_FILE).write_text(json.dumps(thresholds, indent=2) + "\n", encoding="utf-8")
    model.path = Path(out)
    return TrainResult(model, Path(out), history, best_epoch, stopped_early, interrupted, notes)
