"""What an architecture declares, and what the per-pixel classifiers (U-Net and the like) share.

An :class:`Architecture` says everything defectlab needs to train, save, load and predict
with a kind of net; the one training loop (:func:`defectlab.dl.train.train`) and the one
prediction path (:func:`defectlab.dl.predict.predict_image`) call nothing else:

==========================  =================================================================
declared                    what for
==========================  =================================================================
``name``, ``title``,        the registry and the command line (``defectlab train <name>``),
``summary``                 progress bars, plots and messages
``Params``, ``defaults``    its own training options (an :class:`~defectlab.options.Options`
                            dataclass: the net's shape, its loss…) and its defaults of the
                            common ones (:class:`~defectlab.dl.options.TrainOptions`: epochs,
                            learning rate, tile…)
:meth:`check_params`,       model folders: ``config.json``'s ``architecture.params`` checked
:meth:`build_net`           (the number of classes the net outputs) and the net built from them
:meth:`load_data`           the dataset: a :class:`~defectlab.dl.data.Source` read into samples
:meth:`start` → :class:`Job`  one training run: the net and its config, the optimizer, a batch,
                            the loss of a batch (the step), the validation metrics, the score
                            that picks the best epoch, what the model folder records
:meth:`predict`             prediction of a whole image, post-processing included (instances)
``exportable``,             whether ONNX Runtime can run the net, and the forward it runs
:meth:`forward`             (:mod:`defectlab.dl.engine`)
==========================  =================================================================

:class:`SemanticArchitecture` implements all of it for nets that give per-pixel class logits
(B, C, H, W) of a (B, 1, H, W) image: random crops, cross-entropy/Dice, IoU on the validation
images predicted whole, tiled blended prediction (:mod:`defectlab.dl.tiles`), instances split
from the class mask, ONNX export. Such an architecture declares only its net: how the
training options become ``params`` (:meth:`SemanticArchitecture.net_params`), the net of
``params``, and the classes they say (a U-Net: :mod:`defectlab.dl.archs.unet`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from ...errors import DatasetError, ImageError, ParseError
from ...imaging.io import MinMax, read_image, to_gray
from ...model import Dataset, ImageSource
from ...options import Options, option
from ...preparation.augment import Augment
from ...raster import DEFAULT_LINE_WIDTH, semantic_mask
from ...raster.split import split_instances
from ..data import Source, TrainingData, class_info, classes_from_json, sha256
from ..engine import Forward, model_forward, softmax_forward
from ..metrics import iou_counts
from ..model_io import ClassInfo, ModelConfig, ModelError
from ..options import LOSSES, PredictOptions, TrainOptions
from ..postprocess import POSTPROCESS_FILE, choose_min_area, min_areas, read_postprocess
from ..predict import Prediction
from ..tiles import predict_semantic, round_up

if TYPE_CHECKING:  # pragma: no cover
    from ..model_io import Model

__all__ = [
    "BATCH_PIXELS", "CALIBRATION_CROPS", "MIN_SPLIT_PX", "PREDICT_TILE", "Architecture", "Job", "NoParams", "ParamError",
    "SemanticArchitecture", "SemanticParams", "Setup", "augment_crop", "count_parameters", "crop_augment",
    "hold_out_windows", "instance_scores", "strip_windows",
]

#: A per-pixel classifier predicts in tiles of up to this many px (or its training tile size,
#: if larger): a fully convolutional net gives the same result in the interior of any tile,
#: and larger tiles waste less on overlaps (a 1024² image is one tile, not 25 of 256 px).
PREDICT_TILE = 1024
#: By default a batch of tiles holds about this many pixels (one 1024² tile, sixteen of
#: 256²): the memory prediction needs is set by it, not by the image.
BATCH_PIXELS = 1024 * 1024
#: Training crops kept in a model folder (``calibration.npy``) for int8 calibration.
CALIBRATION_CROPS = 16
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def count_parameters(net: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require a gradient)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


class ParamError(ValueError):
    """A bad value in ``architecture.params``; ``key`` names it (for the JSON pointer)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class NoParams(Options):
    """An architecture without options of its own."""

    verb: ClassVar[str] = "train"


@dataclass
class Setup:
    """What one training run starts from (made by the training loop for :meth:`Architecture.start`).

    ``train`` and ``val`` are the samples (of the architecture's :class:`TrainingData`) to
    train and validate on; ``notes`` collects what the user should know.
    """

    train: Sequence[Any]
    val: Sequence[Any]
    train_sizes_hw: list[tuple[int, int]]
    val_sizes_hw: list[tuple[int, int]]
    classes: list[ClassInfo]
    options: TrainOptions
    params: Options
    device: torch.device
    notes: list[str] = field(default_factory=list)


class Job:
    """One training run of an architecture: what the training loop asks of it.

    Attributes
    ----------
    title : str
        What is trained, for the progress bar and the training curve (``"U-Net"``).
    net : torch.nn.Module
        The net being trained, on the device.
    config : ModelConfig
        The model's config (the loop adds what training did to ``training``).
    sample_pixels : int
        Pixels of one training sample: an epoch is about one pass over the training pixels.
    """

    title: str
    net: nn.Module
    config: ModelConfig
    sample_pixels: int

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The optimizer at learning rate ``lr`` (Adam)."""
        return torch.optim.Adam(self.net.parameters(), lr=lr)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Any:
        """A random training batch (drawn with ``rng``: seeded runs are identical)."""
        raise NotImplementedError

    def loss(self, batch: Any) -> torch.Tensor:
        """The scalar loss of ``batch`` (the net is in training mode)."""
        raise NotImplementedError

    def validate(self, model: Model) -> dict[str, Any]:
        """Validation of ``model`` (this job's net, in eval mode): ``val_loss`` (or None),
        ``val_iou`` (class name -> IoU), ``val_mean_iou``, and any further ``val_*`` metric."""
        raise NotImplementedError

    def score(self, entry: dict[str, Any]) -> float:
        """The number that picks the best epoch and stops early (higher is better)."""
        return float(entry["val_mean_iou"])

    def info(self) -> dict[str, Any]:
        """What the model folder's ``training`` records about this architecture's run."""
        return {}

    def finish(self, model: Model) -> ModelConfig:
        """The config saved with the best epoch's net (``model``): ``model.config``, or one
        with settings tuned on the validation images (e.g. thresholds, in ``params``)."""
        return model.config

    def files(self) -> dict[str, bytes]:
        """Further files the model folder holds (name -> contents), beside ``config.json``."""
        return {}

    def calibration(self, seed: int) -> np.ndarray | None:
        """Normalized training crops (N, C, h, w) for int8 calibration, or None."""
        return None


class Architecture:
    """A kind of net defectlab trains and predicts with; see the module docstring.

    Subclass it (or :class:`SemanticArchitecture`) and register it with
    :func:`defectlab.dl.archs.register`.
    """

    #: Its name in the registry, ``config.json`` and the command line.
    name: ClassVar[str] = ""
    #: How messages and pictures call it.
    title: ClassVar[str] = ""
    #: One line for ``defectlab train --help``.
    summary: ClassVar[str] = ""
    #: Its own training options.
    Params: ClassVar[type[Options]] = NoParams
    #: Its defaults of the :class:`~defectlab.dl.options.TrainOptions` left at None there.
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: The image channels its net takes (the gray image repeated).
    channels: ClassVar[int] = 1
    #: Whether ONNX Runtime can run its net (then :meth:`forward` gives the forward).
    exportable: ClassVar[bool] = False
    #: Whether its :meth:`predict` does test-time augmentation (``PredictOptions.tta``).
    tta: ClassVar[bool] = False
    #: The state-dict key whose first dimension is the number of classes (for messages).
    class_weights: ClassVar[str | None] = None
    #: The kind of written folder it trains on (``"unet"`` or ``"maskrcnn"``, see :mod:`defectlab.dl.data`).
    reads: ClassVar[str] = "unet"
    #: The choices of a plan (:mod:`defectlab.plan`) its training takes with ``train --auto``: some of
    #: ``tile_size``, ``overlap``, ``normalization``, ``augment``, ``batch_size``, ``schedule``. Those
    #: not listed keep its defaults; ``normalization`` and ``augment`` not listed also refuse the
    #: options ``normalization`` and ``augmentations`` (see :mod:`defectlab.dl.auto`).
    planned: ClassVar[tuple[str, ...]] = ()

    _options_classes: ClassVar[dict[type, type]] = {}

    # -- options -------------------------------------------------------------------------

    @classmethod
    def options_class(cls) -> type[TrainOptions]:
        """:class:`~defectlab.dl.options.TrainOptions` with this architecture's defaults (what
        ``defectlab train <name>`` shows in ``--help``)."""
        made = Architecture._options_classes.get(cls)
        if made is None:
            known = {f.name: f for f in dataclasses.fields(TrainOptions)}
            unknown = sorted(set(cls.defaults) - set(known))
            if unknown:
                raise TypeError(f"architecture {cls.name!r}: defaults for unknown options {unknown}")
            fields = [(name, known[name].type, dataclasses.field(default=value, metadata=known[name].metadata))
                      for name, value in cls.defaults.items()]
            made = dataclasses.make_dataclass(f"{cls.__name__}TrainOptions", fields, bases=(TrainOptions,),
                                              frozen=True, slots=True)
            made.verb = f"train {cls.name}"
            missing = made().missing()
            if missing:
                raise TypeError(f"architecture {cls.name!r}: no default for {missing}")
            Architecture._options_classes[cls] = made
        return made

    def train_options(self, options: TrainOptions | Mapping[str, Any] | None = None, /,
                      **changes: Any) -> TrainOptions:
        """``options`` (or the defaults) with ``changes``, this architecture's defaults in
        place of the values left at None."""
        cls = self.options_class()
        if isinstance(options, TrainOptions) and not isinstance(options, cls):
            options = {f.name: getattr(options, f.name) for f in dataclasses.fields(TrainOptions)
                       if getattr(options, f.name) is not None}
        return cls.build(options, **changes)

    def split_options(self, options: TrainOptions | None, params: Options | None,
                      changes: Mapping[str, Any]) -> tuple[TrainOptions, Options]:
        """The training options and this architecture's ``Params`` from keyword ``changes``
        (each name belongs to one of them); a TypeError names an unknown keyword."""
        common = {f.name for f in dataclasses.fields(TrainOptions)}
        own = {f.name for f in dataclasses.fields(self.Params)}
        unknown = sorted(set(changes) - common - own)
        if unknown:
            raise TypeError(f"train {self.name}: no option {unknown[0]!r}; the options are "
                            f"{', '.join(sorted(common | own))}")
        opts = self.train_options(options, **{k: v for k, v in changes.items() if k in common})
        return opts, self.Params.build(params, **{k: v for k, v in changes.items() if k in own})

    # -- model folders ---------------------------------------------------------------------

    def check_params(self, params: Mapping[str, Any]) -> int:
        """Check ``config.json``'s ``architecture.params``; return the number of classes the
        net outputs (background included). Raise :class:`ParamError` (or ValueError) for a
        bad value."""
        raise NotImplementedError

    def check_config(self, config: ModelConfig, path: str | Path) -> None:
        """A loaded config's params, checked (errors name ``path`` and a JSON pointer)."""
        try:
            n = self.check_params(config.params)
        except (TypeError, ValueError) as err:
            key = getattr(err, "key", None)
            raise ParseError(path, str(err), where="/architecture/params" + (f"/{key}" if key else "")) from err
        if n != len(config.classes):
            k = len(config.classes)
            raise ModelError(f"{path}: classes mismatch: 'classes' lists {k} (background + {k - 1}) but the "
                             f"{self.title} outputs {n!r} (architecture/params)")

    def build_net(self, config: ModelConfig, *, pretrained: bool = False) -> nn.Module:
        """The untrained net of ``config`` (``pretrained``: downloaded starting weights, if any)."""
        raise NotImplementedError

    def on_load(self, model: Model, folder: Path) -> Model:
        """``model`` as :func:`~defectlab.dl.model_io.load_model` loaded it from ``folder``, with
        what the folder's further files hold (those :meth:`Job.files` wrote), checked."""
        return model

    def model_config(self, params: Mapping[str, Any], *, classes: Sequence[ClassInfo], tile_size: int,
                     overlap: int, training: Mapping[str, Any] | None = None,
                     normalization: Mapping[str, Any] | None = None) -> ModelConfig:
        """The config of a model of this architecture; ``classes`` are the foreground ones;
        ``normalization``: what :meth:`normalization` gives (default: min-max)."""
        norm = dict(normalization) if normalization is not None else self.normalization()
        return ModelConfig(self.name, dict(params), ModelConfig.with_background(classes), int(tile_size),
                           int(overlap), normalization=norm, training=dict(training or {}))

    def normalization(self, method: str | None = None) -> dict[str, Any]:
        """The ``normalization`` its model folders record: ``"minmax"`` (the default: each image's
        own minimum and maximum) or ``"percentile"`` (each image clipped to its own
        :data:`~defectlab.plan.planner.PERCENTILE_LEVELS` percentiles, computed in float32 from
        its own values: 16-bit data keep their depth); what :class:`~defectlab.imaging.io.MinMax` does."""
        if method in (None, "minmax"):
            return {"method": "minmax", "scope": "image", "channels": self.channels}
        if method != "percentile":
            raise ValueError(f"normalization: expected minmax or percentile, got {method!r}")
        from ...plan.planner import PERCENTILE_LEVELS

        return {"method": "percentile", "scope": "image", "channels": self.channels,
                "percentiles": list(PERCENTILE_LEVELS)}

    # -- training --------------------------------------------------------------------------

    def load_data(self, source: Source, *, line_width: float = DEFAULT_LINE_WIDTH) -> TrainingData:
        """The training samples of ``source`` (a Dataset, or a written folder of kind ``reads``).
        An architecture that plans ``normalization`` also takes ``normalization=`` (a
        :meth:`normalization` dict) and normalizes its samples so."""
        raise NotImplementedError

    def start(self, setup: Setup) -> Job:
        """One training run on ``setup``."""
        raise NotImplementedError

    #: Whether a single image is validated on a strip of it by default (:meth:`hold_out`); the
    #: U-Net's validates on itself unless cross-validation (``folds``) asks for its cells.
    spatial_validation: ClassVar[bool] = False

    def hold_out(self, data: TrainingData, span: tuple[float, float]) -> tuple[TrainingData, TrainingData, str] | None:
        """A single image's spatial split: ``(train, val, where)``, the validation part the strip
        from ``span[0]`` to ``span[1]`` of the image's longer side (fractions: ``(0.8, 1)`` is
        its last fifth; :func:`strip_windows`), which no training sample reaches into; None (the
        default): this architecture cannot split an image."""
        return None

    # -- prediction ------------------------------------------------------------------------

    #: The :class:`~defectlab.dl.options.PredictOptions` only some architectures take (default
    #: None), and the architectures that do; another refuses them (:meth:`check_predict_options`).
    own_predict_options: ClassVar[Mapping[str, str]] = {"prob_thresh": "stardist", "nms_thresh": "stardist"}

    def check_predict_options(self, options: PredictOptions) -> None:
        """ValueError if ``options`` sets one that is another architecture's own."""
        for name, owner in self.own_predict_options.items():
            if owner != self.name and getattr(options, name) is not None:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) is for {owner} models; this is a "
                                 f"{self.title or self.name} model")

    def predict(self, model: Model, image: np.ndarray, options: PredictOptions, *,
                probabilities_dtype: Any = np.float32, progress: bool = False) -> Prediction:
        """``model``'s prediction of a checked (H, W) or (H, W, 3) ``image`` (instances included)."""
        raise NotImplementedError

    def forward(self, model: Model, *, engine: str = "auto") -> Forward:
        """The forward an engine runs for ``model`` (exportable architectures)."""
        raise ValueError(f"the {self.name} architecture predicts without a forward of its own")


#: The least size of the validation strip of a single image split spatially, and of a training
#: part of it (a thinner one is left out), px.
MIN_SPLIT_PX = 32

Window = tuple[slice, slice]


def strip_windows(size_hw: tuple[int, int], span: tuple[float, float]) -> tuple[list[Window], Window, str] | None:
    """``(training windows, validation window, where)`` of an image of ``size_hw`` (H, W) cut
    across its longer side: the validation strip from ``span[0]`` to ``span[1]`` of its length
    (fractions), the training windows the parts before and after it (those of at least
    :data:`MIN_SPLIT_PX`); None if the strip or every training part would be thinner.

    Examples
    --------
    >>> strip_windows((100, 200), (0.8, 1.0))[1:]
    ((slice(0, 100, None), slice(160, 200, None)), 'x in [160, 200)')
    >>> [w[1] for w in strip_windows((100, 200), (0.25, 0.5))[0]]
    [slice(0, 50, None), slice(100, 200, None)]
    """
    h, w = size_hw
    along_x = w >= h
    length = w if along_x else h
    a, b = (int(round(length * f)) for f in span)
    if not 0 <= a < b <= length or b - a < MIN_SPLIT_PX:
        return None
    parts = [(s, e) for s, e in ((0, a), (b, length)) if e - s >= MIN_SPLIT_PX]
    if not parts:
        return None

    def window(s: int, e: int) -> Window:
        return (slice(0, h), slice(s, e)) if along_x else (slice(s, e), slice(0, w))

    return [window(s, e) for s, e in parts], window(a, b), f"{'x' if along_x else 'y'} in [{a}, {b})"


def hold_out_windows(data: TrainingData, span: tuple[float, float],
                     cut: Any) -> tuple[TrainingData, TrainingData, str] | None:
    """:meth:`Architecture.hold_out` of a single image by :func:`strip_windows`: ``cut(sample,
    window)`` is the architecture's own sample of the image's one sample within a window."""
    split = strip_windows(data.sizes_hw[0], span)
    if split is None:
        return None
    train_ws, val_w, where = split
    (sample,) = data.samples

    def part(windows: list[Window]) -> TrainingData:
        return TrainingData([cut(sample, w) for w in windows], [data.names[0]] * len(windows),
                            [(r.stop - r.start, c.stop - c.start) for r, c in windows], data.classes,
                            list(data.manifest), data.description, [])

    return part(train_ws), part([val_w]), where


# ---------------------------------------------------------------------------------------------
# Per-pixel classifiers


@dataclass(frozen=True, slots=True)
class SemanticParams(Options):
    """The options of every per-pixel classifier."""

    verb: ClassVar[str] = "train"

    loss: str = option("ce+dice", help="Loss: ce (cross-entropy), dice (1 - mean soft Dice over the foreground "
                                       "classes) or ce+dice (their sum).", choices=LOSSES)


@dataclass
class _Sample:
    name: str
    image: np.ndarray  # (H, W) float32, normalized
    mask: np.ndarray  # (H, W) uint8


def _find_image(images_dir: Path, key: str) -> Path:
    hits = [images_dir / f"{key}{s}" for s in _IMAGE_SUFFIXES if (images_dir / f"{key}{s}").is_file()]
    hits += [images_dir / f"{key}{s.upper()}" for s in _IMAGE_SUFFIXES if (images_dir / f"{key}{s.upper()}").is_file()]
    if not hits:
        raise ImageError(f"{images_dir}: no image {key}.<ext> for the mask {key}.png "
                         f"(looked for {', '.join(_IMAGE_SUFFIXES)})")
    return hits[0]


def crop_augment(options: TrainOptions, crop_hw: tuple[int, int]) -> Augment | bool:
    """How the training crops are augmented: False (``augment`` off), True (today's flips and
    90° turns, drawn as they always were: seeded runs repeat), or the :class:`Augment` of
    ``augmentations`` (``rot90`` left out of non-square crops, whose shape it would change)."""
    if not options.augment:
        return False
    if options.augmentations is None:
        return True
    aug = Augment.parse(options.augmentations)
    if crop_hw[0] != crop_hw[1]:
        aug = Augment(tuple(op for op in aug.ops if op.name != "rot90"))
    return aug


def augment_crop(image: np.ndarray, mask: np.ndarray, aug: Augment,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One normalized crop (h, w) float32 in [0, 1] and its class mask, augmented by ``aug``.

    Geometric augmentations move the mask with the image (flips and 90° turns exactly; a zoom
    about the crop's center: the image bilinear, the mask by the center rule, no new class
    values; a zoom out fills the rim with the crop's median gray and background); intensity ones (contrast, gamma, noise, blur…)
    change the image only, in units of the crop's own range, and the result is clipped to
    [0, 1], the range of every normalized image.

    Returns
    -------
    (image (h, w) float32 in [0, 1], mask (h, w) of the mask's dtype)
    """
    out = aug(np.ascontiguousarray(image, dtype=np.float32), rng=rng, mask=mask)
    return np.clip(out.image, 0.0, 1.0).astype(np.float32, copy=False), out.mask


def _crop_batch(samples: Sequence[_Sample], weights: np.ndarray, crop_hw: tuple[int, int], batch_size: int,
                rng: np.random.Generator, augment: Augment | bool) -> tuple[np.ndarray, np.ndarray]:
    ch, cw = crop_hw
    xs = np.empty((batch_size, 1, ch, cw), dtype=np.float32)
    ys = np.empty((batch_size, ch, cw), dtype=np.int64)
    for b in range(batch_size):
        s = samples[int(rng.choice(len(samples), p=weights))]
        h, w = s.mask.shape
        r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        img, msk = s.image[r0:r0 + ch, c0:c0 + cw], s.mask[r0:r0 + ch, c0:c0 + cw]
        if isinstance(augment, Augment):
            img, msk = augment_crop(img, msk, augment, rng)
        elif augment:
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


def instance_scores(instances: np.ndarray, n: int, confidence: np.ndarray) -> np.ndarray:
    """(n,) float32: each instance's mean confidence (uint8 ×255) as a probability."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    from scipy import ndimage

    mean = ndimage.mean(confidence.astype(np.float32), instances, index=np.arange(1, n + 1))
    return (np.asarray(mean, dtype=np.float32) / 255.0).astype(np.float32)


#: Scales nothing: validation predicts the training samples, already normalized.
_NORMALIZED = MinMax(0.0, 1.0)


class SemanticArchitecture(Architecture):
    """A net that maps a (B, 1, H, W) image to per-pixel class logits (B, C, H, W).

    A subclass declares ``name``, ``title``, its ``Params`` (a subclass of
    :class:`SemanticParams`), and implements :meth:`net_params`, :meth:`build_net`,
    :meth:`check_params` and, if its input size must be a multiple of something,
    :meth:`multiple`. Training, validation, prediction and ONNX export come from here.
    """

    Params: ClassVar[type[Options]] = SemanticParams
    defaults: ClassVar[Mapping[str, Any]] = {"epochs": 50, "batch_size": 8, "lr": 1e-3, "schedule": "plateau",
                                             "tile_size": 256, "patience": 10}
    exportable: ClassVar[bool] = True
    tta: ClassVar[bool] = True
    class_weights: ClassVar[str | None] = "head.weight"
    reads: ClassVar[str] = "unet"
    planned: ClassVar[tuple[str, ...]] = ("tile_size", "overlap", "normalization", "augment", "batch_size",
                                          "schedule", "init")

    # -- what a subclass declares -----------------------------------------------------------

    def net_params(self, n_classes: int, params: Options) -> dict[str, Any]:
        """``config.json``'s ``architecture.params`` of a net for ``n_classes`` classes
        (background included), from the training options ``params``."""
        raise NotImplementedError

    def multiple(self, params: Mapping[str, Any]) -> int:
        """Input height and width must be multiples of this (1: any size)."""
        return 1

    # -- training ----------------------------------------------------------------------------

    def load_data(self, source: Source, *, line_width: float = DEFAULT_LINE_WIDTH,
                  normalization: Mapping[str, Any] | None = None) -> TrainingData:
        """Normalized images and class masks of a ``write_unet`` folder or a Dataset (rasterized);
        ``normalization``: a :meth:`normalization` dict (default: min-max)."""
        norm = dict(normalization) if normalization is not None else self.normalization()
        percentiles = tuple(norm.get("percentiles", (0.0, 100.0)))

        def normalized(image: np.ndarray) -> np.ndarray:
            return MinMax.fit(image, percentiles=percentiles)(to_gray(image))

        if source.folder is not None:
            if source.kind != self.reads:
                raise source.refuse(self.title, self.reads)
            return self._load_folder(source, normalized)
        ds: Dataset = source.dataset  # type: ignore[assignment]
        missing = [it.name for it in ds.items if it.image is None]
        if missing:
            raise ImageError(f"{len(missing)} image file(s) not found, e.g. {missing[:3]}; point to them with "
                             "--images DIR (images=...) or copy them beside the export")
        if not ds.items:
            raise DatasetError(f"{source.description}: no images to train on")
        index = ds.class_index()
        samples, entries = [], []
        for item in ds.items:
            image = read_image(item.image)
            if image.shape[:2] != item.size_hw:
                raise ImageError(f"{item.image}: image is {image.shape[1]}x{image.shape[0]} (WxH) but the labels "
                                 f"of {item.name!r} are for {item.size_hw[1]}x{item.size_hw[0]}")
            mask = semantic_mask(item, index, line_width=line_width)
            samples.append(_Sample(item.key, normalized(image), mask))
            entries.append((item.key, sha256(item.image.read_bytes()), sha256(mask.tobytes())))
        classes = [class_info(i, lab) for i, lab in enumerate(ds.labels, start=1)]
        return TrainingData(samples, [s.name for s in samples], [s.mask.shape for s in samples], classes, entries,
                            source.description)

    def _load_folder(self, source: Source, normalized: Any) -> TrainingData:
        root = source.folder
        classes = classes_from_json(root / "classes.json")
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
            samples.append(_Sample(key, normalized(image), mask.astype(np.uint8)))
            entries.append((key, sha256(ipath.read_bytes()), sha256(mpath.read_bytes())))
        return TrainingData(samples, [s.name for s in samples], [s.mask.shape for s in samples], classes, entries,
                            source.description)

    def start(self, setup: Setup) -> Job:
        return _SemanticJob(self, setup)

    def hold_out(self, data: TrainingData, span: tuple[float, float]) -> tuple[TrainingData, TrainingData, str] | None:
        """One image's windows (:func:`strip_windows`) cut out of its normalized image and mask:
        training crops are drawn inside the training windows, so none reaches into the strip."""
        return hold_out_windows(data, span, lambda s, w: _Sample(s.name, s.image[w], s.mask[w]))

    # -- prediction --------------------------------------------------------------------------

    def tile(self, model: Model, tile_size: int | None = None) -> int:
        """The largest tile ``model`` predicts in: ``tile_size`` if given, else the larger of
        :data:`PREDICT_TILE` (rounded down to :meth:`multiple`) and its training tile."""
        if tile_size is not None:
            return int(tile_size)
        m = self.multiple(model.config.params)
        return max(model.config.tile_size, PREDICT_TILE // m * m)

    def semantic(self, model: Model, image: np.ndarray, options: PredictOptions, *,
                 normalizer: MinMax | None = None, probabilities_dtype: Any = np.float32,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
        """``(semantic, confidence, probabilities, engine)`` of ``image``: tiled, blended
        (:func:`~defectlab.dl.tiles.predict_semantic`) with the model's defaults.

        ``normalizer``: how the image is scaled (default: the model's normalization of it).
        Training validates through here too, so its IoU is the one ``Model.predict`` gives.
        """
        sem, conf, probs, _, used, _ = self._semantic(model, image, options, normalizer=normalizer,
                                                      probabilities_dtype=probabilities_dtype, progress=progress)
        return sem, conf, probs, used

    def _semantic(self, model: Model, image: np.ndarray, options: PredictOptions, *,
                  normalizer: MinMax | None = None, probabilities_dtype: Any = np.float32,
                  progress: bool = False, members_wanted: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, str, Any]:
        """:meth:`semantic`, the (H, W) float32 uncertainty with ``options.tta`` or an ensemble
        (its members' probabilities averaged, :mod:`defectlab.dl.ensemble`), else None; and with
        ``members_wanted`` (an ensemble), each member's own (K, H, W) class mask and confidence
        from the same net passes, else None."""
        cfg = model.config
        m = self.multiple(cfg.params)
        t = self.tile(model, options.tile_size)
        overlap = cfg.overlap if options.overlap is None else options.overlap
        batch_size = options.batch_size
        if batch_size is None:
            side = min(t, round_up(max(image.shape[:2]), m))  # a small image's one tile is smaller
            batch_size = max(1, BATCH_PIXELS // (side * side))
        members = getattr(model, "members", None)  # an ensemble (train --folds): its members' mean
        want = bool(members) and members_wanted
        if members:
            from ..uncertainty import mean_forward

            forwards = [model_forward(m, options.engine) for m in members]
            forward, used = mean_forward([f for f, _ in forwards], members=want), forwards[0][1]
        else:
            forward, used = model_forward(model, options.engine)
        unsure = options.tta or bool(members)
        if options.tta:
            from ..uncertainty import tta_forward

            forward = tta_forward(forward, len(cfg.classes))
        elif members:
            from ..uncertainty import entropy_forward

            forward = entropy_forward(forward, len(cfg.classes))
        out = predict_semantic(
            forward, image, n_classes=len(cfg.classes), multiple=m, tile=t, overlap=overlap, margin=options.margin,
            batch_size=batch_size, probabilities=options.probabilities, probabilities_dtype=probabilities_dtype,
            normalizer=normalizer if normalizer is not None else cfg.normalizer(image), progress=progress,
            extra=1 if unsure else 0, groups=len(members) if want else 0,
        )
        uncertainty = out[3][0] if unsure else None
        return out[0], out[1], out[2], uncertainty, used, (out[4:6] if want else None)

    def predict(self, model: Model, image: np.ndarray, options: PredictOptions, *,
                probabilities_dtype: Any = np.float32, progress: bool = False, members: bool = False) -> Prediction:
        """Class mask, confidence, instances split from the mask (line classes stay whole:
        a neck along a dislocation line is not two objects), each instance's mean confidence;
        with ``options.tta``, the uncertainty, the image's reliability and each instance's
        uncertainty (:mod:`defectlab.dl.uncertainty`). ``members`` (an ensemble): each member's
        own prediction too, post-processed as that member alone is, in ``Prediction.members``."""
        cfg = model.config
        sem, conf, probs, unc, used, own = self._semantic(model, image, options, probabilities_dtype=probabilities_dtype,
                                                          progress=progress, members_wanted=members)
        pred = self._instances(model, options, sem, conf, used)
        pred.probabilities = probs
        if own is not None:
            pred.members = [self._instances(member, options, s, c, used)
                            for member, s, c in zip(model.members, *own)]  # type: ignore[attr-defined]
        if unc is not None:
            from ..uncertainty import object_uncertainty, reliability

            pred.uncertainty = unc
            pred.reliability = reliability(sem, unc, len(cfg.classes))
            pred.object_uncertainty = object_uncertainty(pred.instances, pred.n_instances, unc)
        return pred

    def _instances(self, model: Model, options: PredictOptions, sem: np.ndarray, conf: np.ndarray,
                   engine: str) -> Prediction:
        """The prediction of a class mask and its confidence: instances split from it with
        ``model``'s minimum areas (line classes whole), each instance's mean confidence."""
        cfg = model.config
        split = [c.index for c in cfg.classes[1:] if not c.is_line] if options.split else False
        least, by_class = self.min_areas(model, options)
        inst, cls = split_instances(sem, split=split, min_area_px=least, min_area_by_class=by_class,
                                    neck_ratio=options.neck_ratio)
        scores = instance_scores(inst, len(cls), conf)
        return Prediction(sem, inst, cls.astype(np.uint8), scores, cfg.class_names, confidence=conf, engine=engine)

    def min_areas(self, model: Model, options: PredictOptions) -> tuple[int, dict[int, int]]:
        """The minimum object area, and class index -> its own: ``options.min_area_px`` for every
        class if given, else those training chose on the validation images (``postprocess.json``),
        else the fixed default."""
        if options.min_area_px is not None:
            return int(options.min_area_px), {}
        return min_areas(getattr(model, "postprocess", {}))

    def on_load(self, model: Model, folder: Path) -> Model:
        model.postprocess = read_postprocess(folder)  # type: ignore[attr-defined]
        return model

    def forward(self, model: Model, *, engine: str = "auto") -> Forward:
        m = self.multiple(model.config.params)
        return softmax_forward(model.net, model.device, engine=engine, example_shape=(1, self.channels, 4 * m, 4 * m),
                               calibration=model.calibration)


class _SemanticJob(Job):
    """Random crops of the training images, the loss of their logits, IoU of whole validation images."""

    def __init__(self, arch: SemanticArchitecture, setup: Setup) -> None:
        options, params = setup.options, setup.params
        self.arch, self.options, self.loss_kind = arch, options, params.loss  # type: ignore[attr-defined]
        n_classes = len(setup.classes) + 1
        net_params = arch.net_params(n_classes, params)
        m = arch.multiple(net_params)
        tile_size = options.tile_size
        if tile_size % m:
            raise ValueError(f"expected tile_size a multiple of {m} (the net's input multiple), got {tile_size}")
        self.train_s: Sequence[_Sample] = setup.train
        self.val_s: Sequence[_Sample] = setup.val
        min_h = min(h for h, _ in setup.train_sizes_hw)
        min_w = min(w for _, w in setup.train_sizes_hw)
        self.crop_hw = (min(tile_size, min_h // m * m), min(tile_size, min_w // m * m))
        if min(self.crop_hw) < m:
            raise DatasetError(f"training images must be at least {m}x{m} px for this {arch.title}; "
                               f"the smallest is {min_w}x{min_h}")
        overlap = options.overlap if options.overlap is not None else min(64, tile_size // 4) // m * m
        self.title = arch.title
        self.config = arch.model_config(net_params, classes=setup.classes, tile_size=tile_size, overlap=overlap,
                                        normalization=arch.normalization(options.normalization))
        self.net = arch.build_net(self.config).to(setup.device)
        self.device = setup.device
        self.channels_last = setup.device.type == "cpu"  # oneDNN trains conv nets ~1.6x faster in this layout
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        areas = np.array([h * w for h, w in setup.train_sizes_hw], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.sample_pixels = self.crop_hw[0] * self.crop_hw[1]
        self.n_classes = n_classes
        self.augment = crop_augment(options, self.crop_hw)

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = _crop_batch(self.train_s, self.weights, self.crop_hw, batch_size, rng, self.augment)
        x, y = torch.from_numpy(xb).to(self.device), torch.from_numpy(yb).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return _loss(self.net(x), y, self.loss_kind)

    def validate(self, model: Model) -> dict[str, Any]:
        inter = np.zeros(self.n_classes)
        union = np.zeros(self.n_classes)
        losses = []
        options = PredictOptions(engine="torch", probabilities=True)
        for s in self.val_s:  # as Model.predict does it (its tiles, on PyTorch): the IoU it will give
            sem, _, probs, _ = self.arch.semantic(model, s.image, options, normalizer=_NORMALIZED)
            i_, u_ = iou_counts(sem, s.mask, self.n_classes)
            inter += i_
            union += u_
            losses.append(_loss_np(probs, s.mask, self.loss_kind))
        names = {c.index: c.name for c in self.config.classes}
        ious = {names[c]: float(inter[c] / union[c]) for c in range(1, self.n_classes) if union[c] > 0}
        return {"val_loss": float(np.mean(losses)), "val_iou": ious,
                "val_mean_iou": float(np.mean(list(ious.values()))) if ious else 0.0}

    def info(self) -> dict[str, Any]:
        shown = (str(self.augment) if isinstance(self.augment, Augment) else "flip,rot90" if self.augment else None)
        return {"loss": self.loss_kind, "crop_hw": list(self.crop_hw), "augmentations": shown}

    def finish(self, model: Model) -> ModelConfig:
        """Choose the minimum object area on the validation images (:mod:`defectlab.dl.postprocess`)."""
        options = PredictOptions(engine="torch")
        split = [c.index for c in self.config.classes[1:] if not c.is_line]
        pairs = [(self.arch.semantic(model, s.image, options, normalizer=_NORMALIZED)[0], s.mask) for s in self.val_s]
        self.postprocess = choose_min_area(pairs, split=split, neck_ratio=options.neck_ratio)
        return model.config

    def files(self) -> dict[str, bytes]:
        import json

        chosen = getattr(self, "postprocess", None)
        return {} if chosen is None else {POSTPROCESS_FILE: (json.dumps(chosen, indent=2) + "\n").encode()}

    def calibration(self, seed: int) -> np.ndarray:
        """Crops of the training images, as the net saw them (what an int8 engine calibrates on)."""
        crops, _ = _crop_batch(self.train_s, self.weights, self.crop_hw, CALIBRATION_CROPS,
                               np.random.default_rng(seed), False)
        return crops.astype(np.float16)
