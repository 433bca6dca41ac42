"""The options of ``train`` and ``predict``, declared once (light: no torch at import).

:class:`TrainOptions` holds what every architecture's training takes; each architecture
adds its own (the net's shape, its loss: ``Architecture.Params``, e.g.
:class:`defectlab.dl.archs.unet.UNetParams`) and sets the defaults that depend on it
(``Architecture.defaults``: a U-Net trains 50 epochs by default, a Mask R-CNN 20). A field
left at None here means "the architecture's default"; ``defectlab train ARCH --help`` shows
the values. :class:`PredictOptions` holds what prediction takes, for every architecture.

The library (:func:`defectlab.dl.train.train`, :func:`defectlab.dl.predict.predict_image`),
the Python API (:func:`defectlab.train_unet`, :func:`defectlab.predict`) and the command line
all take these, or their fields by name.

Examples
--------
>>> TrainOptions(epochs=5, tile_size="128").tile_size
128
>>> PredictOptions(engine="tensorrt")
Traceback (most recent call last):
...
ValueError: predict: engine: expected one of auto, torch, onnxruntime, onnxruntime-int8; got 'tensorrt'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..options import Options, flag, option
from ..raster.split import DEFAULT_NECK_RATIO

__all__ = ["ENGINES", "LOSSES", "SCHEDULES", "NO_BUDGET", "TRAIN_NORMALIZATIONS", "PredictOptions", "TrainOptions", "integer", "number",
           "time_budget"]

#: What can run a net in prediction (see :mod:`defectlab.dl.engine`).
ENGINES = ("auto", "torch", "onnxruntime", "onnxruntime-int8")
#: Learning-rate schedules of training.
SCHEDULES = ("plateau", "onecycle", "constant")
#: Losses of the per-pixel classifiers (U-Net and the like).
LOSSES = ("ce", "dice", "ce+dice")
#: Intensity normalizations of training (and so of prediction): min-max or percentile clipping, per image.
TRAIN_NORMALIZATIONS = ("minmax", "percentile")


def _as(kind: type, value: Any) -> Any:
    what = "an integer" if kind is int else "a number"
    try:
        f = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        f = None
    if f is None or f != f or f in (float("inf"), float("-inf")) or (kind is int and not f.is_integer()):
        raise ValueError(f"expected {what}, got {value!r}")
    return int(f) if kind is int else f


def integer(value: Any) -> int:
    """An integer from an int, an integral float or a string (``"64"``); ValueError otherwise.

    Examples
    --------
    >>> integer("64"), integer(64.0)
    (64, 64)
    """
    return _as(int, value)


def number(value: Any) -> float:
    """A finite float from a number or a string (``"1e-3"``); ValueError otherwise."""
    return _as(float, value)


#: Spellings of "no time budget".
NO_BUDGET = ("off", "none", "inf")


def time_budget(value: Any) -> float:
    """Seconds of a time budget: ``"90s"``, ``"10min"``, ``"1h"``, a number of seconds, or
    ``"off"`` (no budget: infinity).

    Examples
    --------
    >>> time_budget("10min"), time_budget("off"), time_budget(30)
    (600.0, inf, 30.0)
    """
    if isinstance(value, str) and value.strip().lower() in NO_BUDGET:
        return math.inf
    if isinstance(value, float) and value == math.inf:
        return value
    from ..plan.options import parse_duration

    try:
        return parse_duration(value)
    except ValueError as err:
        raise ValueError(f"{err} (or off)") from None


def _augment_spec(value: Any) -> str:
    from ..preparation.augment import Augment

    return str(Augment.parse(str(value)))  # raises ValueError naming the bad part


@dataclass(frozen=True, slots=True)
class TrainOptions(Options):
    """How to train, for every architecture (its own options: ``Architecture.Params``).

    None: the architecture's default (``Architecture.defaults``), resolved by
    :meth:`Architecture.train_options <defectlab.dl.archs.base.Architecture.train_options>`.
    """

    verb: ClassVar[str] = "train"

    epochs: int | None = option(None, help="Most epochs (early stopping may end sooner).", convert=integer,
                                min=1, metavar="N")
    batch_size: int | None = option(None, help="Samples per optimizer step.", cli="--batch-size", convert=integer,
                                    min=1, metavar="N")
    lr: float | None = option(None, help="Learning rate of the architecture's optimizer.", convert=number, above=0,
                              metavar="LR")
    schedule: str | None = option(
        None, help="Learning rate: plateau (halve it when the validation score stalls), onecycle (warm up to --lr, "
                   "then anneal: best for short runs) or constant.", choices=SCHEDULES)
    val_split: float = option(0.2, help="Share of the images held out for validation (0: validate on the training "
                                        "images); a prepared folder's val/ is used instead.", cli="--val-split",
                              min=0, max=0.95)
    seed: int = option(0, help="Random seed: split, crops and initial weights.")
    device: str = option("auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.", metavar="DEVICE")
    tile_size: int | None = option(None, help="Training crop and prediction tile, px.", cli="--tile",
                                   convert=integer, min=1, metavar="PX")
    overlap: int | None = option(None, help="Least overlap of the tiles in prediction, px (the model's default).",
                                 convert=integer, min=0, metavar="PX")
    patience: int | None = option(None, help="Epochs without a better validation score before stopping (a one-cycle "
                                       "schedule is not stopped early unless this is given).",
                                  convert=integer, min=1, metavar="N")
    min_steps: int = option(8, help="Least batches per epoch.", cli="--min-steps", min=1, metavar="N")
    steps_per_epoch: int | None = option(
        None, help="Batches per epoch (default: about one pass over the training pixels, at least --min-steps).",
        cli="--steps-per-epoch", convert=integer, min=1, metavar="N")
    max_steps: int | None = option(None, help="Stop after this many optimizer steps in all (a quick trial).",
                                   cli="--max-steps", convert=integer, min=1, metavar="N")
    augment: bool = flag(True, help="Augment the training crops: flips and rotations by 90 degrees of square crops, "
                                    "or --augmentations (with --auto: the plan's).", cli="--augment/--no-augment")
    augmentations: str | None = option(
        None, help="Augmentations of the training crops, e.g. flip,rot90,gamma=0.8:1.25,noise=0:0.03 (names as in "
                   "prepare --augment; default: flip,rot90, or with --auto the plan's).", convert=_augment_spec,
        metavar="SPEC")
    normalization: str | None = option(
        None, help="Intensity normalization per image, the same in prediction: minmax or percentile (clipped to "
                   "the image's own 0.5 and 99.5 percentiles, full bit depth kept; default: minmax, or with --auto "
                   "the plan's).", choices=TRAIN_NORMALIZATIONS)
    auto: bool = flag(True, help="Measure the labeled data and plan first (tile, overlap, normalization, "
                                 "augmentations, batch size, schedule, starting weights); options given explicitly "
                                 "win over the plan. --no-auto trains with the architecture's fixed defaults.",
                      cli="--auto/--no-auto")
    time_budget_s: float | None = option(
        None, help="Time budget of the whole run: 90s, 10min, 1h, or off (default: 10min on a CPU, 20min on a "
                   "GPU). Epochs, the one-cycle schedule and stopping are fitted to it.", cli="--time",
        convert=time_budget, metavar="DURATION")
    folds: int | None = option(
        None, help="Cross-validation: train K models, each validated on its own fold of the images (one image: on "
                   "its own strip across the longer side), the time budget shared; their scores pooled, and the "
                   "folder predicts as their ensemble (probabilities averaged; uncertainty maps from their "
                   "disagreement). Per-pixel architectures (unet).", convert=integer, min=2, metavar="K")
    init: str | None = option(
        None, help="Start from trained weights: 'synthetic' (the U-Net pretrained on defectlab's synthetic "
                   "micrographs, shipped with the package), a model folder of the same architecture and net "
                   "shape, or 'scratch' (fresh weights; the default, but with --auto the plan's: synthetic for "
                   "defects it learned). Head rows of classes of the same kind are kept (a bubble or a void is a "
                   "cavity).",
        cli="--init", metavar="MODEL")

    def missing(self) -> list[str]:
        """The fields still None that an architecture must give a default for."""
        return [name for name in ("epochs", "batch_size", "lr", "schedule", "tile_size", "patience")
                if getattr(self, name) is None]


@dataclass(frozen=True, slots=True)
class PredictOptions(Options):
    """How to predict, for every architecture (options of one kind of model say so)."""

    verb: ClassVar[str] = "predict"

    tile_size: int | None = option(
        None, help="Largest tile, px. U-Net: any multiple of 2**depth (default: 1024, or the model's training tile "
                   "if larger). Mask R-CNN: always its training tile.", cli="--tile", convert=integer, min=1,
        metavar="PX")
    overlap: int | None = option(None, help="Least overlap of neighboring tiles, px (default: the model's).",
                                 convert=integer, min=0, metavar="PX")
    margin: int | None = option(None, help="U-Net: zero-weight border of a tile where it overlaps a neighbor, px "
                                           "(default: a quarter of the overlap).", convert=integer, min=0,
                                metavar="PX")
    batch_size: int | None = option(None, help="Tiles through the net at once (default: about a megapixel's worth).",
                                    cli="--batch-size", convert=integer, min=1, metavar="N")
    engine: str = option("auto", help="What runs the net: auto is ONNX Runtime on a CPU if installed (8-bit where "
                                      "the CPU has VNNI/AMX and the model calibration crops), else PyTorch (the "
                                      "environment variable DEFECTLAB_ENGINE overrides auto); onnxruntime-int8 is "
                                      "8-bit: faster with VNNI/AMX, slightly different.", choices=ENGINES)
    probabilities: bool = flag(help="Also give every class's probabilities, (C, H, W) (written as float16 "
                                    "probabilities/<stem>.npy).", cli="--probabilities")
    tta: bool = flag(help="Test-time augmentation (U-Net): average the 8 flips and rotations by 90 degrees of each "
                          "tile, and write how unsure their mean is (uncertainty/<stem>.tif and .png, a reliability "
                          "per image, an uncertainty per object); 8 times the work.", cli="--tta")
    members: bool = flag(True, help="With an ensemble (a model trained with --folds) and --prelabels cvat: also "
                                    "write each member's own pre-labels (prelabels/members/<fold>/annotations.xml), "
                                    "which measure uses for model uncertainty; one more prediction per member.",
                         cli="--members/--no-members")
    split: bool = flag(True, help="Split touching objects at necks (not those of line classes).", cli=False)
    min_area_px: int | None = option(
        None, help="Objects under this many pixels get no instance; they stay in the class mask (default: the "
                   "model's, chosen on its validation images by count and size error; else 4).", cli="--min-area",
        convert=integer, min=1, metavar="PX")
    neck_ratio: float = option(DEFAULT_NECK_RATIO, help="Split touching objects whose neck is narrower than this "
                                                        "times the smaller one's radius (higher splits more; "
                                                        "overlapping bubbles: 0.9).", cli="--neck-ratio", min=0.01,
                               max=1.0)
    score_threshold: float = option(0.5, help="Mask R-CNN: least detection score kept.", cli="--score-threshold",
                                    min=0, max=1)
    mask_threshold: float = option(0.5, help="Mask R-CNN: mask probability cut.", cli="--mask-threshold", min=0,
                                   max=1)
    prob_thresh: float | None = option(
        None, help="StarDist: least object probability of a kept star (default: the model's, tuned on its "
                   "validation images, thresholds.json). Lower finds more faint or small defects.",
        cli="--prob-thresh", convert=number, min=0, max=1, metavar="P")
    nms_thresh: float | None = option(
        None, help="StarDist: largest overlap (intersection over the smaller star) of two kept stars (default: the "
                   "model's, thresholds.json). Higher keeps more overlapping defects.", cli="--nms-thresh",
        convert=number, min=0, max=1, metavar="T")
    tolerance: float = option(0.5, help="Pre-labels: polygon simplification tried first, px (halved until the "
                                        "polygon keeps the instance's pixels).", min=0, metavar="PX")
    max_area_change: float = option(0.01, help="Pre-labels: largest relative change of an instance's pixel count "
                                               "that simplifying its polygon may cause.", cli="--max-area-change",
                                    min=0, max=0.5)
