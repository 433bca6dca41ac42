"""Training: a U-Net (semantic segmentation) or a torchvision Mask R-CNN (instances).

Both write a model folder (:mod:`defectlab.dl.model_io`) atomically, with the training
history, a training-curve picture and a last-epoch checkpoint beside the best weights.

U-Net
-----
* **data**: a ``write_unet`` folder (``images/``, ``masks/``, ``classes.json``), a
  :class:`~defectlab.model.Dataset`, or any labeling export ``defectlab.read`` knows
  (rasterized on the fly). Images are min-max normalized per whole image
  (:func:`~defectlab.imaging.io.normalize_minmax`), as prediction does.
* **split**: ``val_split`` of the images (at least one) are held out, chosen by the seed; with
  a single image, or ``val_split=0``, the training images are also the validation images
  (and the history says so).
* **samples**: random crops of ``tile_size`` px (smaller images: their size, rounded down to a
  multiple of ``2 ** depth``), drawn in proportion to image area, randomly flipped and rotated
  by multiples of 90°. An epoch is about one pass over the training pixels, at least
  ``min_steps`` batches.
* **loss**: ``"ce"`` (cross-entropy), ``"dice"`` (1 − mean soft Dice over the foreground
  classes), or ``"ce+dice"`` (their sum, the default). Adam, learning rate halved when the
  validation IoU stalls.
* **validation** after every epoch: the held-out images are predicted whole, exactly as
  :func:`~defectlab.dl.predict.predict_image` does (its tiles, on PyTorch), and the IoU of each class is
  computed over all their pixels (a class absent from both truth and prediction is left out
  of the mean). **Early stopping** after ``patience`` epochs without a better mean IoU; the
  weights of the best epoch are the ones saved. Ctrl-C stops training and saves the best so far.
* **seeded**: the same seed gives the same split, crops and initial weights (on a GPU,
  cuDNN may still differ in the last digits).

Mask R-CNN
----------
``torchvision`` Mask R-CNN with a ResNet-50-FPN (``backbone="resnet50"``: the layout of
``maskrcnn_resnet50_fpn``, state dicts interchangeable) or a lighter ResNet-18-FPN backbone, on :class:`~defectlab.dl.MaskRCNNDataset` samples cropped to
``tile_size``. Offline by default: ``pretrained=False`` trains **from scratch** (and says so);
``pretrained=True`` starts from torchvision's COCO (ResNet-50) or ImageNet (ResNet-18)
weights, downloaded once — for users who are online. Validation: class IoU of the masks
and object F1 (a prediction matches a true object at mask IoU >= 0.5).

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> cfg = SyntheticConfig(size_hw=(64, 64), n_cavities=3, n_loops=0, n_precipitates=0, n_lines=0)
>>> ds = make_synthetic_dataset(tmp / "export", n_images=2, config=cfg)
>>> result = train_unet(ds, tmp / "model", epochs=1, steps_per_epoch=1, batch_size=2, tile_size=64,
...                     base_filters=4, progress=False, plot=False)
>>> sorted(p.name for p in (tmp / "model").iterdir())
['calibration.npy', 'checkpoint.pt', 'config.json', 'history.json', 'weights.pt']
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from .._output import output_dir
from ..errors import DatasetError, FormatError, ImageError, ParseError
from ..formats._training import read_classes
from ..imaging.io import normalize_minmax, read_image
from ..model import Dataset, ImageSource, Label
from ..raster import DEFAULT_LINE_WIDTH, semantic_mask
from .model_io import (ClassInfo, Model, ModelConfig, build_net, default_maskrcnn_params, resolve_device,
                       write_model_files)
from .predict import _predict_maskrcnn, unet_semantic
from .unet import UNet, UNetConfig, count_parameters

__all__ = [
    "LOSSES", "TrainResult", "train_unet", "train_maskrcnn", "class_iou", "object_f1", "seed_everything",
]

#: The U-Net loss choices.
LOSSES = ("ce", "dice", "ce+dice")
#: Training crops kept in a U-Net model folder (``calibration.npy``) for int8 calibration.
CALIBRATION_CROPS = 16
#: Learning-rate schedules of :func:`train_unet`.
SCHEDULES = ("plateau", "onecycle")
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


# ---------------------------------------------------------------------------------------------
# Results and metrics


@dataclass
class TrainResult:
    """What training produced.

    Attributes
    ----------
    model : Model
        The best epoch's net, in eval mode, ready to ``predict``.
    path : Path
        The model folder.
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (U-Net), ``val_iou`` (class name ->
        IoU), ``val_mean_iou``, ``lr``, ``seconds`` (and ``val_f1`` for Mask R-CNN).
    best_epoch : int
        1-based epoch whose weights were saved.
    stopped_early, interrupted : bool
        Early stopping triggered; Ctrl-C stopped training.
    notes : list of str
        What the user should know (validation on training images, training from scratch, …).
    """

    model: Model
    path: Path
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool = False
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        return self.history[self.best_epoch - 1]

    def __str__(self) -> str:
        how = " (stopped early)" if self.stopped_early else " (interrupted)" if self.interrupted else ""
        return (f"{len(self.history)} epochs{how}; best epoch {self.best_epoch}: mean IoU "
                f"{self.best['val_mean_iou']:.3f} -> {self.path}")


def class_iou(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> dict[int, float]:
    """IoU of each class 1..n_classes-1 over all pixels; classes absent from both are left out.

    Examples
    --------
    >>> class_iou(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), 3)
    {1: 0.6666666666666666}
    """
    inter, union = _iou_counts(pred, truth, n_classes)
    return {c: float(inter[c] / union[c]) for c in range(1, n_classes) if union[c] > 0}


def _iou_counts(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.int64).ravel()
    t = np.asarray(truth, dtype=np.int64).ravel()
    conf = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    return inter, union.astype(np.float64)


def object_f1(pred_instances: np.ndarray, true_instances: np.ndarray, *, iou: float = 0.5) -> dict[str, float]:
    """Object-level precision, recall and F1: objects match one-to-one at IoU >= ``iou``.

    With ``iou >= 0.5`` a match is unique by construction (two objects cannot both overlap
    one by more than half), so no assignment problem is solved.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` (1.0 when both are empty).

    Examples
    --------
    >>> a = np.zeros((4, 8), int); a[:, :3] = 1; a[:, 5:] = 2
    >>> b = np.zeros((4, 8), int); b[:, :3] = 7
    >>> object_f1(a, b)["f1"]
    0.6666666666666666
    """
    p = np.asarray(pred_instances, dtype=np.int64).ravel()
    t = np.asarray(true_instances, dtype=np.int64).ravel()
    p_ids, p_area = np.unique(p[p > 0], return_counts=True)
    t_ids, t_area = np.unique(t[t > 0], return_counts=True)
    both = (p > 0) & (t > 0)
    pairs, inter = np.unique(np.stack([p[both], t[both]]), axis=1, return_counts=True)
    pa = dict(zip(p_ids.tolist(), p_area.tolist()))
    ta = dict(zip(t_ids.tolist(), t_area.tolist()))
    tp = 0
    for (pi, ti), n in zip(pairs.T.tolist(), inter.tolist()):
        if n / (pa[pi] + ta[ti] - n) >= iou:
            tp += 1
    fp, fn = len(p_ids) - tp, len(t_ids) - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and GPUs) and return a numpy Generator for the rest."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# U-Net data: a write_unet folder, a Dataset, or any export


@dataclass
class _Sample:
    name: str
    image: np.ndarray  # (H, W) float32 in [0, 1]
    mask: np.ndarray  # (H, W) uint8


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(entries: Iterable[tuple[str, str, str]]) -> str:
    """sha256 of the sorted lines ``name  sha256(image file)  sha256(mask)``."""
    lines = sorted(f"{n}\t{a}\t{b}" for n, a, b in entries)
    return _sha256("\n".join(lines).encode())


def _find_image(images_dir: Path, key: str) -> Path:
    hits = [images_dir / f"{key}{s}" for s in _IMAGE_SUFFIXES if (images_dir / f"{key}{s}").is_file()]
    hits += [images_dir / f"{key}{s.upper()}" for s in _IMAGE_SUFFIXES if (images_dir / f"{key}{s.upper()}").is_file()]
    if not hits:
        raise ImageError(f"{images_dir}: no image {key}.<ext> for the mask {key}.png "
                         f"(looked for {', '.join(_IMAGE_SUFFIXES)})")
    return hits[0]


def _class_info(index: int, label: Label) -> ClassInfo:
    return ClassInfo(index, label.name, "#{:02x}{:02x}{:02x}".format(*label.rgb(index - 1)), label.edge, label.type)


def _classes_from_json(path: Path) -> list[ClassInfo]:
    try:
        raw = read_classes(path)
        classes = [ClassInfo(i, str(v["name"]), v.get("color"), v.get("edge"), str(v.get("type") or "any"))
                   for i, v in sorted(raw.items()) if i]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ParseError(path, f"expected {{index: {{\"name\": ...}}}} as written by write_unet ({err})") from err
    if [c.index for c in classes] != list(range(1, len(classes) + 1)):
        raise ParseError(path, f"expected class indices 1..N, got {[c.index for c in classes]}")
    return classes


def _is_unet_folder(path: Path) -> bool:
    return path.is_dir() and (path / "classes.json").is_file() and (path / "masks").is_dir()


def _is_maskrcnn_folder(path: Path) -> bool:
    return path.is_dir() and (path / "classes.json").is_file() and (path / "targets").is_dir()


def _read_export(data: str | Path, images: str | Path | None) -> Dataset:
    from ..formats import read

    return read(data, images=images) if images is not None else read(data)


def load_unet_samples(
    data: Dataset | str | Path, *, images: str | Path | None = None, line_width: float = DEFAULT_LINE_WIDTH,
) -> tuple[list[_Sample], list[ClassInfo], str, str]:
    """``(samples, classes, manifest_sha256, description)`` of U-Net training data.

    ``data``: a ``write_unet`` folder, a Dataset, or an export path (read and rasterized).
    This small internal reader can give way to ``defectlab.dl.segmentation.SegmentationDataset``.
    """
    if isinstance(data, (str, Path)) and _is_unet_folder(Path(data)):
        root = Path(data)
        classes = _classes_from_json(root / "classes.json")
        samples, entries = [], []
        masks = sorted((root / "masks").rglob("*.png"))
        if not masks:
            raise DatasetError(f"{root / 'masks'}: no mask files; expected the output of write_unet")
        for mpath in masks:
            key = mpath.relative_to(root / "masks").with_suffix("").as_posix()
            ipath = _find_image(root / "images", key)
            mask = read_image(ImageSource(mpath))
            if mask.ndim != 2:
                raise ImageError(f"{mpath}: expected a single-channel class-index mask, got shape {mask.shape}")
            image = read_image(ImageSource(ipath))
            if image.shape[:2] != mask.shape:
                raise ImageError(f"{ipath}: image is {image.shape[1]}x{image.shape[0]} (WxH) but its mask "
                                 f"{mpath.name} is {mask.shape[1]}x{mask.shape[0]}")
            if int(mask.max()) > len(classes):
                raise DatasetError(f"{mpath}: class index {int(mask.max())} but classes.json lists "
                                   f"{len(classes)} classes")
            samples.append(_Sample(key, normalize_minmax(image), mask.astype(np.uint8)))
            entries.append((key, _sha256(ipath.read_bytes()), _sha256(mpath.read_bytes())))
        return samples, classes, _manifest(entries), f"U-Net folder {root}"
    if isinstance(data, (str, Path)) and _is_maskrcnn_folder(Path(data)):
        raise FormatError(f"{data}: a Mask R-CNN folder (targets/); train a U-Net on the labeling export or on a "
                          "write_unet folder, or train maskrcnn on this one")
    ds = data if isinstance(data, Dataset) else _read_export(data, images)
    missing = [it.name for it in ds.items if it.image is None]
    if missing:
        raise ImageError(f"{len(missing)} image file(s) not found, e.g. {missing[:3]}; point to them with "
                         "--images DIR (images=...) or copy them beside the export")
    if not ds.items:
        raise DatasetError("the dataset has no images to train on")
    index = ds.class_index()
    classes = [_class_info(i, lab) for i, lab in enumerate(ds.labels, start=1)]
    samples, entries = [], []
    for item in ds.items:
        image = read_image(item.image)
        if image.shape[:2] != item.size_hw:
            raise ImageError(f"{item.image}: image is {image.shape[1]}x{image.shape[0]} (WxH) but the labels of "
                             f"{item.name!r} are for {item.size_hw[1]}x{item.size_hw[0]}")
        mask = semantic_mask(item, index, line_width=line_width)
        samples.append(_Sample(item.key, normalize_minmax(image), mask))
        entries.append((item.key, _sha256(item.image.read_bytes()), _sha256(mask.tobytes())))
    return samples, classes, _manifest(entries), f"dataset {ds.source or '(in memory)'}"


def _split(n: int, val_split: float, rng: np.random.Generator) -> tuple[list[int], list[int], bool]:
    """(train indices, val indices, validated on the training images)."""
    if not 0 <= val_split < 1:
        raise ValueError(f"expected 0 <= val_split < 1, got {val_split!r}")
    if n < 2 or val_split == 0:
        return list(range(n)), list(range(n)), True
    n_val = min(n - 1, max(1, round(n * val_split)))
    order = rng.permutation(n).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val]), False


def _crop_batch(samples: Sequence[_Sample], weights: np.ndarray, crop_hw: tuple[int, int], batch_size: int,
                rng: np.random.Generator, augment: bool) -> tuple[np.ndarray, np.ndarray]:
    ch, cw = crop_hw
    xs = np.empty((batch_size, 1, ch, cw), dtype=np.float32)
    ys = np.empty((batch_size, ch, cw), dtype=np.int64)
    for b in range(batch_size):
        s = samples[int(rng.choice(len(samples), p=weights))]
        h, w = s.mask.shape
        r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        img, msk = s.image[r0:r0 + ch, c0:c0 + cw], s.mask[r0:r0 + ch, c0:c0 + cw]
        if augment:
            if rng.random() < 0.5:
                img, msk = img[:, ::-1], msk[:, ::-1]
            if ch == cw:
                k = int(rng.integers(0, 4))
                img, msk = np.rot90(img, k), np.rot90(msk, k)
            elif rng.random() < 0.5:
                img, msk = img[::-1], msk[::-1]
        xs[b, 0], ys[b] = img, msk
    return xs, ys


def _loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    total = logits.new_zeros(())
    if kind in ("ce", "ce+dice"):
        total = total + F.cross_entropy(logits, target)
    if kind in ("dice", "ce+dice"):
        probs = torch.softmax(logits, dim=1)[:, 1:]
        onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
        inter = (probs * onehot).sum(dim=(0, 2, 3))
        denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
        total = total + 1 - ((2 * inter + 1) / (denom + 1)).mean()
    return total


def _loss_np(probs: np.ndarray, mask: np.ndarray, kind: str) -> float:
    """The same loss on predicted probabilities (C, H, W) of a whole image."""
    total = 0.0
    if kind in ("ce", "ce+dice"):
        p = np.take_along_axis(probs, mask[None].astype(np.int64), axis=0)[0]
        total += float(-np.log(np.clip(p, 1e-7, 1)).mean())
    if kind in ("dice", "ce+dice"):
        dice = []
        for c in range(1, probs.shape[0]):
            t = mask == c
            inter = float((probs[c] * t).sum())
            dice.append((2 * inter + 1) / (float(probs[c].sum()) + float(t.sum()) + 1))
        total += 1 - float(np.mean(dice))
    return total


# ---------------------------------------------------------------------------------------------
# Plots and bookkeeping


def _plot_history(history: list[dict[str, Any]], path: Path, title: str) -> None:
    # a Figure with its own Agg canvas: no pyplot, no global backend switch (keeps notebooks' inline plots)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax1.plot(epochs, [h.get("val_loss", math.nan) for h in history], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax1.legend()
    names = sorted({k for h in history for k in h["val_iou"]})
    for name in names:
        ax2.plot(epochs, [h["val_iou"].get(name, math.nan) for h in history], ".-", label=name)
    ax2.plot(epochs, [h["val_mean_iou"] for h in history], "k-", lw=2, label="mean")
    if any("val_f1" in h for h in history):
        ax2.plot(epochs, [h.get("val_f1", math.nan) for h in history], "k--", label="object F1")
    ax2.set(xlabel="epoch", ylabel="IoU", ylim=(0, 1), title="validation")
    ax2.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def _finish(tmp: Path, net: torch.nn.Module, config: ModelConfig, history: list[dict[str, Any]],
            checkpoint: dict[str, Any], plot: bool, title: str, calibration: np.ndarray | None = None) -> None:
    write_model_files(tmp, net, config, calibration)
    (tmp / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    torch.save(checkpoint, tmp / "checkpoint.pt")
    if plot:
        try:
            _plot_history(history, tmp / "training_curve.png", title)
        except ImportError:
            warnings.warn("matplotlib is not installed: no training_curve.png (pip install 'defectlab[plot]')",
                          UserWarning, stacklevel=3)


def _epoch_bar(epochs: int, progress: bool, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc=desc, unit="epoch")


# ---------------------------------------------------------------------------------------------
# U-Net


def train_unet(
    data: Dataset | str | Path,
    out: str | Path,
    *,
    epochs: int = 50,
    batch_size: int = 8,
    lr: float = 1e-3,
    loss: str = "ce+dice",
    val_split: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    tile_size: int = 256,
    overlap: int | None = None,
    base_filters: int = 16,
    depth: int = 3,
    bottleneck_dilations: Sequence[int] = (1, 2, 4),
    patience: int = 10,
    min_steps: int = 8,
    steps_per_epoch: int | None = None,
    schedule: str = "plateau",
    augment: bool = True,
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plot: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a U-Net and write it as a model folder (the Python twin of ``defectlab train unet``).

    Parameters
    ----------
    data : Dataset, or path
        A ``write_unet`` folder, a Dataset (images found), or a labeling export.
    out : path
        The model folder to write (atomically; replaced only with ``overwrite``).
    epochs : int
        Most epochs (early stopping may end sooner).
    batch_size : int
        Crops per step.
    lr : float
        Adam learning rate.
    loss : {"ce", "dice", "ce+dice"}
        See the module docstring.
    val_split : float
        Fraction of images held out for validation (0: validate on the training images).
    seed : int
        Seeds the split, the crops and the initial weights.
    device : str
        ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    tile_size : int
        Crop size in training and the default tile in prediction, px (a multiple of ``2**depth``).
    overlap : int, optional
        Default tile overlap in prediction (``min(64, tile_size // 4)`` rounded to ``2**depth``).
    base_filters, depth, bottleneck_dilations
        The net (:class:`~defectlab.dl.unet.UNetConfig`): 16, 3, (1, 2, 4) give ~0.63 M parameters.
    patience : int
        Epochs without a better validation IoU before stopping.
    min_steps : int
        Least batches per epoch.
    steps_per_epoch : int, optional
        Batches per epoch (default: about one pass over the training pixels, >= ``min_steps``).
    schedule : {"plateau", "onecycle"}
        Learning rate: ``"plateau"`` keeps ``lr`` and halves it when the validation IoU
        stalls; ``"onecycle"`` warms up to ``lr`` over the first 30 % of all planned steps
        and anneals it to almost 0 (``OneCycleLR``): the better choice for a short,
        fixed budget of steps.
    augment : bool
        Random flips and 90° rotations.
    images : path, optional
        Where the image files of an export are, if not beside it.
    overwrite, progress, plot : bool
        Replace ``out``; show a progress bar; write ``training_curve.png``.
    callback : callable, optional
        Called with each epoch's history entry.

    Returns
    -------
    TrainResult
    """
    if loss not in LOSSES:
        raise ValueError(f"expected loss one of {', '.join(LOSSES)}, got {loss!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience), ("min_steps", min_steps)):
        if int(v) < 1:
            raise ValueError(f"expected {name} >= 1, got {v!r}")
    if not lr > 0:
        raise ValueError(f"expected lr > 0, got {lr!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"expected schedule one of {', '.join(SCHEDULES)}, got {schedule!r}")
    dev = resolve_device(device)
    rng = seed_everything(seed)
    samples, classes, manifest, source = load_unet_samples(data, images=images)
    n_classes = len(classes) + 1
    unet_cfg = UNetConfig(n_classes=n_classes, base_filters=base_filters, depth=depth,
                          bottleneck_dilations=tuple(bottleneck_dilations))
    m = 2**depth
    if tile_size % m:
        raise ValueError(f"expected tile_size a multiple of {m} (2**depth), got {tile_size}")
    train_idx, val_idx, same = _split(len(samples), val_split, rng)
    notes = []
    if same:
        notes.append("validation on the training images (one image, or val_split=0): the IoU is not a "
                     "held-out score")
    train_s = [samples[i] for i in train_idx]
    val_s = [samples[i] for i in val_idx]
    min_h = min(s.mask.shape[0] for s in train_s)
    min_w = min(s.mask.shape[1] for s in train_s)
    crop_hw = (min(tile_size, min_h // m * m), min(tile_size, min_w // m * m))
    if min(crop_hw) < m:
        raise DatasetError(f"training images must be at least {m}x{m} px for a U-Net of depth {depth}; "
                           f"the smallest is {min_w}x{min_h}")
    if overlap is None:
        overlap = min(64, tile_size // 4 // m * m)
    areas = np.array([s.mask.size for s in train_s], dtype=np.float64)
    weights = areas / areas.sum()
    steps = steps_per_epoch or max(min_steps, math.ceil(areas.sum() / (crop_hw[0] * crop_hw[1] * batch_size)))

    net = UNet(unet_cfg).to(dev)
    channels_last = dev.type == "cpu"  # oneDNN trains it ~1.6x faster in this layout
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    if schedule == "onecycle":
        step_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.3)
    else:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                             patience=max(1, patience // 2))
    names = {c.index: c.name for c in classes}
    val_model = Model(net, ModelConfig.for_unet(unet_cfg, classes=classes, tile_size=tile_size, overlap=overlap),
                      device=dev)
    history: list[dict[str, Any]] = []
    best_iou, best_epoch, best_state = -1.0, 0, None
    stopped_early = interrupted = False
    bar = _epoch_bar(epochs, progress, "train U-Net")
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            net.train()
            losses = []
            for _ in range(steps):
                xb, yb = _crop_batch(train_s, weights, crop_hw, batch_size, rng, augment)
                x, y = torch.from_numpy(xb).to(dev), torch.from_numpy(yb).to(dev)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                opt.zero_grad(set_to_none=True)
                value = _loss(net(x), y, loss)
                value.backward()
                opt.step()
                if schedule == "onecycle":
                    step_sched.step()
                losses.append(float(value.detach()))
            net.eval()
            inter = np.zeros(n_classes)
            union = np.zeros(n_classes)
            val_losses = []
            for s in val_s:  # as Model.predict does it (its tiles, on PyTorch): the IoU it will give
                sem, _, probs, _ = unet_semantic(val_model, s.image, engine="torch", probabilities=True)
                i_, u_ = _iou_counts(sem, s.mask, n_classes)
                inter += i_
                union += u_
                val_losses.append(_loss_np(probs, s.mask, loss))
            ious = {names[c]: float(inter[c] / union[c]) for c in range(1, n_classes) if union[c] > 0}
            mean_iou = float(np.mean(list(ious.values()))) if ious else 0.0
            entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": float(np.mean(val_losses)),
                     "val_iou": ious, "val_mean_iou": mean_iou, "lr": opt.param_groups[0]["lr"],
                     "steps": steps, "seconds": round(time.perf_counter() - t0, 3)}
            history.append(entry)
            if callback is not None:
                callback(entry)
            if schedule == "plateau":
                plateau.step(mean_iou)
            if mean_iou > best_iou + 1e-4:
                best_iou, best_epoch = mean_iou, epoch
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{entry['train_loss']:.3f}", val_iou=f"{mean_iou:.3f}", best=best_epoch)
            if epoch - best_epoch >= patience:
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
    last_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    training = {
        "data": source, "data_manifest_sha256": manifest, "n_train": len(train_s), "n_val": len(val_s),
        "validated_on_training_images": same, "train_images": [s.name for s in train_s],
        "val_images": [s.name for s in val_s], "epochs_run": len(history), "best_epoch": best_epoch,
        "best_val_mean_iou": best_iou, "best_val_iou": history[best_epoch - 1]["val_iou"],
        "loss": loss, "lr": lr, "schedule": schedule, "batch_size": batch_size, "crop_hw": list(crop_hw),
        "steps_per_epoch": steps,
        "seed": seed, "device": str(dev), "parameters": count_parameters(net), "augment": augment,
        "stopped_early": stopped_early, "interrupted": interrupted, "notes": notes,
        "torch_version": torch.__version__,
    }
    config = ModelConfig.for_unet(unet_cfg, classes=classes, tile_size=tile_size, overlap=overlap, training=training)
    checkpoint = {"epoch": len(history), "net": last_state, "optimizer": opt.state_dict(), "history": history}
    # what an int8 engine calibrates on: crops of the training images, as the net saw them
    calibration, _ = _crop_batch(train_s, weights, crop_hw, CALIBRATION_CROPS, np.random.default_rng(seed), False)
    calibration = calibration.astype(np.float16)
    with output_dir(out, overwrite=overwrite, inputs=[data] if isinstance(data, (str, Path)) else ()) as tmp:
        _finish(tmp, net, config, history, checkpoint, plot, f"U-Net, {len(train_s)} training images", calibration)
    model = Model(net, config, path=Path(out), device=dev, calibration=calibration)
    return TrainResult(model, Path(out), history, best_epoch, stopped_early, interrupted, notes)


# ---------------------------------------------------------------------------------------------
# Mask R-CNN


class _RandomCrop:
    """Crop an (image, target) sample to ``size`` px, flip at random; boxes recomputed from masks."""

    def __init__(self, size: int, rng: np.random.Generator, augment: bool) -> None:
        self.size, self.rng, self.augment = size, rng, augment

    def __call__(self, image: Any, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        image = torch.as_tensor(image).as_subclass(torch.Tensor)
        masks = torch.as_tensor(target["masks"]).as_subclass(torch.Tensor)
        h, w = image.shape[-2:]
        s = self.size
        r0 = int(self.rng.integers(0, h - s + 1)) if h > s else 0
        c0 = int(self.rng.integers(0, w - s + 1)) if w > s else 0
        image, masks = image[:, r0:r0 + s, c0:c0 + s], masks[:, r0:r0 + s, c0:c0 + s]
        if self.augment:
            if self.rng.random() < 0.5:
                image, masks = image.flip(-1), masks.flip(-1)
            if self.rng.random() < 0.5:
                image, masks = image.flip(-2), masks.flip(-2)
        keep = masks.flatten(1).bool().any(1) if len(masks) else torch.zeros(0, dtype=torch.bool)
        masks = masks[keep]
        labels = torch.as_tensor(target["labels"]).as_subclass(torch.Tensor)[keep]
        boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
        for i, mk in enumerate(masks):
            rows = torch.nonzero(mk.any(1)).flatten()
            cols = torch.nonzero(mk.any(0)).flatten()
            boxes[i] = torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)
        out = {"boxes": boxes, "labels": labels, "masks": masks.contiguous(),
               "image_id": target["image_id"], "area": masks.flatten(1).sum(1).float() if len(masks)
               else torch.zeros(0), "iscrowd": torch.zeros(len(masks), dtype=torch.int64)}
        return image.contiguous(), out


def _truth(target: dict[str, Any], size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(semantic uint8, instances int32) painted from a Mask R-CNN target."""
    sem = np.zeros(size_hw, dtype=np.uint8)
    inst = np.zeros(size_hw, dtype=np.int32)
    masks = np.asarray(target["masks"]).astype(bool)
    labels = np.asarray(target["labels"])
    for i, (mk, lab) in enumerate(zip(masks, labels), start=1):
        sem[mk] = lab
        inst[mk] = i
    return sem, inst


def train_maskrcnn(
    data: Dataset | str | Path,
    out: str | Path,
    *,
    epochs: int = 20,
    batch_size: int = 2,
    lr: float = 1e-4,
    val_split: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    backbone: str = "resnet50",
    pretrained: bool = False,
    tile_size: int = 512,
    overlap: int = 64,
    patience: int = 5,
    min_steps: int = 8,
    steps_per_epoch: int | None = None,
    max_steps: int | None = None,
    augment: bool = True,
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plot: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a torchvision Mask R-CNN and write it as a model folder (``defectlab train maskrcnn``).

    Parameters
    ----------
    data : Dataset, or path
        A ``write_maskrcnn`` folder, a Dataset (images found), or a labeling export.
    backbone : {"resnet50", "resnet18"}
        ResNet-50-FPN (torchvision's ``maskrcnn_resnet50_fpn`` layout) or the lighter ResNet-18-FPN.
    pretrained : bool
        Start from torchvision's weights (COCO Mask R-CNN for ResNet-50, ImageNet for
        ResNet-18), downloaded on first use — needs internet. False (default): from scratch.
    tile_size : int
        Training crops and prediction tiles, px (never resized; images smaller than it make
        it smaller, rounded down to a multiple of 32).
    max_steps : int, optional
        Stop after this many optimizer steps in all (e.g. a smoke test).

    Other parameters are as for :func:`train_unet`; ``lr`` is AdamW's.
    """
    from .maskrcnn import MaskRCNNDataset

    dev = resolve_device(device)
    rng = seed_everything(seed)
    notes: list[str] = []
    if isinstance(data, (str, Path)) and _is_maskrcnn_folder(Path(data)):
        root = Path(data)
        source, base = f"Mask R-CNN folder {root}", MaskRCNNDataset(root)
        classes = _classes_from_json(root / "classes.json")
        manifest = _manifest((p.relative_to(root).as_posix(), _sha256(p.read_bytes()), "")
                             for p in sorted(root.rglob("*")) if p.is_file())
    else:
        if isinstance(data, (str, Path)) and _is_unet_folder(Path(data)):
            raise FormatError(f"{data}: a U-Net folder (masks/) has no instances; train maskrcnn on the labeling "
                              "export or on a write_maskrcnn folder")
        ds = data if isinstance(data, Dataset) else _read_export(data, images)
        if not ds.items:
            raise DatasetError("the dataset has no images to train on")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate shapes are reported in notes below
            base = MaskRCNNDataset(ds)
            skipped = base.collect_notes()
        if skipped:
            notes.append(f"{len(skipped)} shape(s) cover no pixel center and are not instances")
        source = f"dataset {ds.source or '(in memory)'}"
        classes = [_class_info(i, lab) for i, lab in enumerate(ds.labels, start=1)]
        manifest = _manifest((it.key, _sha256(it.image.read_bytes()), "") for it in ds.items if it.image)
    n = len(base)
    if n == 0:
        raise DatasetError("the dataset has no images to train on")
    sizes = [base.get_height_and_width(i) for i in range(n)]
    smallest = min(min(s) for s in sizes)
    tile = min(int(tile_size), smallest // 32 * 32)
    if tile < 32:
        raise DatasetError(f"Mask R-CNN needs images of at least 32x32 px; the smallest is {smallest} px")
    params = default_maskrcnn_params(len(classes) + 1, backbone=backbone, tile_size=tile, pretrained=pretrained)
    config = ModelConfig.for_maskrcnn(params, classes=classes, tile_size=tile, overlap=min(overlap, tile // 2 // 32 * 32))
    if pretrained:
        try:
            net = build_net(config, pretrained=True)
        except Exception as err:  # download errors come in many types
            raise FormatError(
                f"could not get torchvision's pretrained {backbone} weights ({type(err).__name__}: {err}); they are "
                "downloaded once and need internet — train without --pretrained to start from scratch"
            ) from err
        notes.append(f"started from torchvision's pretrained weights ({'COCO' if backbone == 'resnet50' else 'ImageNet'})")
    else:
        net = build_net(config)
        notes.append(f"trained from scratch (no pretrained weights: offline default); {backbone}-FPN "
                     "learns slower this way — use pretrained=True (--pretrained) when online")
        warnings.warn("Mask R-CNN: training from scratch (pretrained=False); pass pretrained=True when online "
                      "for faster, better training", UserWarning, stacklevel=2)
    net.to(dev)
    train_idx, val_idx, same = _split(n, val_split, rng)
    if same:
        notes.append("validation on the training images (one image, or val_split=0): not a held-out score")
    crop = _RandomCrop(tile, rng, augment)
    params_to_train = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params_to_train, lr=lr, weight_decay=1e-4)
    area = sum(sizes[i][0] * sizes[i][1] for i in train_idx)
    steps = steps_per_epoch or max(min_steps, math.ceil(area / (tile * tile * batch_size)))
    if max_steps is not None:
        steps = min(steps, int(max_steps))
    history: list[dict[str, Any]] = []
    best, best_epoch, best_state = -1.0, 0, None
    stopped_early = interrupted = False
    done_steps = 0
    bar = _epoch_bar(epochs, progress, f"train Mask R-CNN ({backbone})")
    model = Model(net, config, device=dev)
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            net.train()
            losses = []
            for _ in range(steps):
                picks = rng.choice(len(train_idx), size=batch_size, replace=True)
                batch = [crop(*base[train_idx[int(p)]]) for p in picks]
                imgs = [b[0].to(dev) for b in batch]
                tgts = [{k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in b[1].items()} for b in batch]
                loss_dict = net(imgs, tgts)
                value = sum(loss_dict.values())
                if not torch.isfinite(value):
                    raise FloatingPointError(f"Mask R-CNN loss became {float(value)} at epoch {epoch}; "
                                             f"lower the learning rate (now {lr})")
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                losses.append(float(value.detach()))
                done_steps += 1
                if max_steps is not None and done_steps >= max_steps:
                    break
            net.eval()
            inter = np.zeros(len(classes) + 1)
            union = np.zeros(len(classes) + 1)
            f1s = []
            for i in val_idx:
                image, target = base[i]
                gray = image[0].numpy()
                sem, inst, _, _ = _predict_maskrcnn(model, gray, overlap=config.overlap, score_threshold=0.5,
                                                    mask_threshold=0.5, progress=False)
                tsem, tinst = _truth(target, gray.shape)
                i_, u_ = _iou_counts(sem, tsem, len(classes) + 1)
                inter += i_
                union += u_
                f1s.append(object_f1(inst, tinst)["f1"])
            ious = {c.name: float(inter[c.index] / union[c.index]) for c in classes if union[c.index] > 0}
            mean_iou = float(np.mean(list(ious.values()))) if ious else 0.0
            entry = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan, "val_loss": None,
                     "val_iou": ious, "val_mean_iou": mean_iou, "val_f1": float(np.mean(f1s)),
                     "lr": opt.param_groups[0]["lr"], "steps": len(losses),
                     "seconds": round(time.perf_counter() - t0, 3)}
            history.append(entry)
            if callback is not None:
                callback(entry)
            score = mean_iou + entry["val_f1"]
            if score > best + 1e-4 or best_state is None:
                best, best_epoch = score, epoch
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{entry['train_loss']:.3f}", iou=f"{mean_iou:.3f}", f1=f"{entry['val_f1']:.3f}")
            if epoch - best_epoch >= patience:
                stopped_early = True
                break
            if max_steps is not None and done_steps >= max_steps:
                break
    except KeyboardInterrupt:
        interrupted = True
        if best_state is None:
            raise
        notes.append(f"interrupted during epoch {len(history) + 1}; saved the best of {len(history)} epochs")
    finally:
        if bar is not None:
            bar.close()
    last_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    training = {
        "data": source, "data_manifest_sha256": manifest, "n_train": len(train_idx), "n_val": len(val_idx),
        "validated_on_training_images": same, "epochs_run": len(history), "best_epoch": best_epoch,
        "best_val_mean_iou": history[best_epoch - 1]["val_mean_iou"], "best_val_f1": history[best_epoch - 1]["val_f1"],
        "best_val_iou": history[best_epoch - 1]["val_iou"], "lr": lr, "batch_size": batch_size,
        "steps_per_epoch": steps, "seed": seed, "device": str(dev), "backbone": backbone, "pretrained": pretrained,
        "parameters": count_parameters(net), "stopped_early": stopped_early, "interrupted": interrupted,
        "notes": notes, "torch_version": torch.__version__,
    }
    config = ModelConfig.for_maskrcnn(params, classes=classes, tile_size=tile, overlap=config.overlap,
                                      training=training)
    checkpoint = {"epoch": len(history), "net": last_state, "optimizer": opt.state_dict(), "history": history}
    with output_dir(out, overwrite=overwrite, inputs=[data] if isinstance(data, (str, Path)) else ()) as tmp:
        _finish(tmp, net, config, history, checkpoint, plot, f"Mask R-CNN ({backbone}), {len(train_idx)} images")
    model = Model(net, config, path=Path(out), device=dev)
    return TrainResult(model, Path(out), history, best_epoch, stopped_early, interrupted, notes)
