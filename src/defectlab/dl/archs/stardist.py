"""The star-convex instance architecture (``defectlab train stardist``): counts touching and
overlapping defects.

The net, its targets, prediction and threshold tuning are in :mod:`defectlab.dl.stardist`;
this module fits them to the one training loop (:func:`defectlab.dl.train.train`) and the
one model folder (:mod:`defectlab.dl.model_io`):

* **data**: a labeling export or a Dataset (the targets need the labels' shapes, so a written
  training folder is refused); each image's star targets for ``n_rays`` rays.
* **step**: random crops (flips, 90-degree rotations, rays permuted to match), the star loss
  (:func:`~defectlab.dl.stardist.train.star_loss`); Adam.
* **validation**: each validation image predicted whole (tiled), object F1 at IoU >= 0.5 and
  the foreground IoU; the best epoch has the highest F1 (then IoU). A single image is split
  spatially (:meth:`StarArchitecture.hold_out`): its last ``val_split`` along the longer side
  is the validation strip, and the training crops come from the rest only.
* **after training**: the probability and NMS thresholds tuned on the validation images,
  written to ``thresholds.json`` beside ``config.json`` and ``weights.pt`` (and said in a note).
* **prediction**: :class:`~defectlab.dl.stardist.model.StarModel` (what
  :func:`~defectlab.dl.model_io.load_model` gives for such a folder): polygons kept as
  polygons, overlaps included; line classes come from the class head as connected components.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from ...errors import DatasetError, FormatError, ImageError
from ...model import Dataset
from ...options import Options, flag, option
from ...raster import DEFAULT_LINE_WIDTH
from ..data import Source, TrainingData, sha256
from ..model_io import ModelConfig
from ..options import PredictOptions
from ..postprocess import DEFAULT_MIN_AREA_PX
from ..predict import Prediction
from ..stardist.data import crop_batch, item_sample, line_class_indices, star_classes, window_sample
from ..stardist.model import THRESHOLDS_FILE, StarModel, read_thresholds
from ..stardist.net import GRIDS, StarNet, StarNetConfig
from ..stardist.train import star_loss, validate_stars
from ..stardist.thresholds import optimize_thresholds
from . import register
from .base import Architecture, Job, ParamError, Setup, hold_out_windows

if TYPE_CHECKING:  # pragma: no cover
    from ..model_io import Model

__all__ = ["StarArchitecture", "StarParams"]


@dataclass(frozen=True, slots=True)
class StarParams(Options):
    """The star-convex model's own training options."""

    verb: ClassVar[str] = "train stardist"

    n_rays: int = option(32, help="Rays per star (a multiple of 4).", cli="--rays", min=4, metavar="N")
    grid: int = option(2, help="Output subsampling: 1, 2 or 4.", min=1, max=4, metavar="N")
    base_filters: int = option(16, help="Filters of the backbone's first level.", cli="--base-filters", min=1, metavar="N")
    depth: int = option(3, help="Poolings of the backbone U-Net.", min=1, metavar="N")
    head_filters: int = option(64, help="Features before the heads.", cli="--head-filters", min=1, metavar="N")
    lambda_dist: float = option(0.2, help="Weight of the ray-distance loss.", cli="--lambda-dist", above=0)
    lambda_class: float = option(1.0, help="Weight of the class-head loss.", cli="--lambda-class", min=0)
    optimize_thresholds: bool = flag(True, help="Tune the probability and NMS thresholds on the validation images "
                                                "(else StarDist's 0.5 / 0.4).",
                                     cli="--optimize-thresholds/--default-thresholds")

    def _validate(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"{self.verb}: grid: expected one of {', '.join(map(str, GRIDS))}, got {self.grid}")
        if self.n_rays % 4:
            raise ValueError(f"{self.verb}: n_rays: expected a multiple of 4, got {self.n_rays}")


@dataclass
class _Pending:
    """An image of the training data, its targets computed when the number of rays is known;
    with a ``window`` (rows, cols), only that part of it (the targets computed on the whole image)."""

    item: Any
    index: dict[str, int]
    line_width: float
    window: tuple[slice, slice] | None = None

    def sample(self, n_rays: int) -> Any:
        s = item_sample(self.item, self.index, n_rays=n_rays, line_width=self.line_width)[0]
        return s if self.window is None else window_sample(s, *self.window)


class _StarJob(Job):
    def __init__(self, arch: "StarArchitecture", setup: Setup) -> None:
        options, params = setup.options, setup.params
        self.params = params
        self.notes = setup.notes
        self.train_s = [p.sample(params.n_rays) for p in setup.train]  # type: ignore[attr-defined]
        self.val_s = [p.sample(params.n_rays) for p in setup.val]  # type: ignore[attr-defined]
        self.same = setup.train is setup.val or ([s.name for s in self.train_s] == [s.name for s in self.val_s]
                                                 and not any(p.window for p in setup.val))  # type: ignore[attr-defined]
        if not any(s.crops for s in self.train_s):
            raise DatasetError("no star-convex instance in the training images: nothing for this architecture to "
                               "learn (line classes alone train the U-Net: defectlab train unet)")
        net_cfg = StarNetConfig(n_rays=params.n_rays, n_classes=len(setup.classes) + 1,  # type: ignore[attr-defined]
                                grid=params.grid, base_filters=params.base_filters,  # type: ignore[attr-defined]
                                depth=params.depth, head_filters=params.head_filters)  # type: ignore[attr-defined]
        m = net_cfg.multiple
        if options.tile_size % m:
            raise ValueError(f"train stardist: tile_size: expected a multiple of {m} (grid * 2**depth), "
                             f"got {options.tile_size}")
        min_h = min(s.prob.shape[0] for s in self.train_s)
        min_w = min(s.prob.shape[1] for s in self.train_s)
        if min(min_h, min_w) < m:
            raise DatasetError(f"training images must be at least {m}x{m} px for this net; the smallest is "
                               f"{min_w}x{min_h}")
        self.crop_hw = (min(options.tile_size, min_h // m * m), min(options.tile_size, min_w // m * m))
        areas = np.array([s.prob.size for s in self.train_s], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.classes = {c.index: c.name for c in setup.classes}
        self.lines = line_class_indices(setup.classes)
        self.tile = max(options.tile_size, 1024 // m * m)
        overlap = 128 if options.overlap is None else int(options.overlap)
        self.overlap = max(0, min(-(-overlap // m) * m, max(self.crop_hw) - m))
        self.config = arch.model_config(net_cfg.to_dict(), classes=setup.classes, tile_size=max(self.crop_hw),
                                        overlap=self.overlap)
        net = StarNet(net_cfg)
        fg = [s.dist[s.prob > 0].astype(np.float32).ravel() for s in self.train_s if (s.prob > 0).any()]
        net.init_distances(float(np.concatenate(fg).mean()) if fg else 1.0)
        self.device = setup.device
        self.channels_last = setup.device.type == "cpu"
        net = net.to(setup.device)
        self.net = net.to(memory_format=torch.channels_last) if self.channels_last else net
        self.title = "StarDist"
        self.sample_pixels = self.crop_hw[0] * self.crop_hw[1]
        self.augment = options.augment
        self.thresholds: dict[str, Any] = {}

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, ...]:
        xb, pb, db, cb = crop_batch(self.train_s, self.weights, self.crop_hw, batch_size, self.net.config.grid, rng,
                                    self.augment)
        x = torch.from_numpy(xb).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, *(torch.from_numpy(a).to(self.device) for a in (pb, db, cb))

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, prob, dist, cls = batch
        p = self.params
        return star_loss(self.net(x), prob, dist, cls, lambda_dist=p.lambda_dist,  # type: ignore[attr-defined]
                         lambda_class=p.lambda_class)[0]  # type: ignore[attr-defined]

    def validate(self, model: Model) -> dict[str, Any]:
        scores, _ = validate_stars(model.net, self.device, self.val_s, self.classes, self.lines, self.tile,
                                   self.overlap)
        return {"val_loss": None, **scores}

    def score(self, entry: dict[str, Any]) -> float:
        return float(entry["val_f1"]) + 1e-3 * float(entry["val_mean_iou"])

    def info(self) -> dict[str, Any]:
        return {"crop_hw": list(self.crop_hw), "lambda_dist": self.params.lambda_dist,  # type: ignore[attr-defined]
                "lambda_class": self.params.lambda_class}  # type: ignore[attr-defined]

    def finish(self, model: Model) -> ModelConfig:
        if not self.params.optimize_thresholds:  # type: ignore[attr-defined]
            from ...raster.nms import DEFAULT_NMS_THRESH
            from ..stardist.predict import DEFAULT_PROB_THRESH

            self.thresholds = {"prob": DEFAULT_PROB_THRESH, "nms": DEFAULT_NMS_THRESH, "tuned": False}
            self.notes.append(f"thresholds: StarDist's defaults prob {DEFAULT_PROB_THRESH:g}, nms "
                              f"{DEFAULT_NMS_THRESH:g} (not tuned) -> {THRESHOLDS_FILE}")
            return model.config
        _, cands = validate_stars(model.net, self.device, self.val_s, self.classes, self.lines, self.tile, self.overlap,
                             keep_candidates=True)
        found = optimize_thresholds(cands, [s.crops for s in self.val_s])
        self.thresholds = {"prob": found["prob"], "nms": found["nms"], "tuned": True, "val_f1": found["f1"],
                           "val_f1_default": found["f1_default"], "n_val_images": found["n_images"],
                           "n_val_objects": found["n_true"], "on_training_images": self.same}
        self.notes.append(f"thresholds tuned on the validation images -> {THRESHOLDS_FILE}: prob {found['prob']:g}, "
                          f"nms {found['nms']:g} (object F1 {found['f1']:.3f}; {found['f1_default']:.3f} at the "
                          "defaults 0.5 / 0.4)")
        return model.config

    def files(self) -> dict[str, bytes]:
        return {THRESHOLDS_FILE: (json.dumps(self.thresholds, indent=2) + "\n").encode("utf-8")}


def _min_area_px(options: PredictOptions) -> int:
    """The minimum object area: ``options``' if given, else the fixed default (a star model
    keeps no ``postprocess.json``: its thresholds are tuned instead)."""
    return int(options.min_area_px) if options.min_area_px is not None else DEFAULT_MIN_AREA_PX


def _star_options(options: PredictOptions) -> dict[str, Any]:
    """What :meth:`~defectlab.dl.stardist.model.StarModel.predict_star` takes of ``options``
    (thresholds left at None: the model's)."""
    return {"tile": options.tile_size, "overlap": options.overlap, "prob_thresh": options.prob_thresh,
            "nms_thresh": options.nms_thresh, "min_area_px": _min_area_px(options),
            "batch_size": options.batch_size or 1, "engine": options.engine}


def _no_probabilities(options: PredictOptions) -> None:
    if options.probabilities:
        raise ValueError("a star-convex model gives polygons with scores, not per-pixel class probabilities; "
                         "use a U-Net model for probabilities")


@register
class StarArchitecture(Architecture):
    """``stardist``: star-convex polygons per object (see the module docstring)."""

    name: ClassVar[str] = "stardist"
    title: ClassVar[str] = "StarDist"
    summary: ClassVar[str] = ("Star-convex polygons (StarDist's idea): counts touching and overlapping defects; "
                              "tunes its thresholds.")
    Params: ClassVar[type[Options]] = StarParams
    defaults: ClassVar[Mapping[str, Any]] = {"epochs": 30, "batch_size": 4, "lr": 3e-3, "schedule": "onecycle",
                                             "tile_size": 256, "patience": 30}
    class_weights: ClassVar[str | None] = None
    reads: ClassVar[str] = "export"

    def check_params(self, params: Mapping[str, Any]) -> int:
        try:
            return StarNetConfig.from_dict(dict(params)).n_classes
        except (TypeError, ValueError) as err:
            raise ParamError(str(err)) from err

    def build_net(self, config: ModelConfig, *, pretrained: bool = False) -> nn.Module:
        return StarNet(StarNetConfig.from_dict(dict(config.params)))

    def on_load(self, model: Model, folder: Path) -> Model:
        thresholds, note = read_thresholds(folder / THRESHOLDS_FILE)
        star = StarModel(model.net, model.config, thresholds=thresholds, path=folder, device=model.device)
        star.notes = [note] if note else []
        return star

    def load_data(self, source: Source, *, line_width: float = DEFAULT_LINE_WIDTH) -> TrainingData:
        if source.folder is not None:
            raise FormatError(f"{source.folder}: a prepared training folder; the star-convex model computes its "
                              "targets from the labels' shapes: train it on the labeling export (or a Dataset)")
        ds: Dataset = source.dataset  # type: ignore[assignment]
        if not ds.items:
            raise DatasetError(f"{source.description}: no images to train on")
        missing = [it.name for it in ds.items if it.image is None]
        if missing:
            raise ImageError(f"{len(missing)} image file(s) not found, e.g. {missing[:3]}; point to them with "
                             "--images DIR (images=...) or copy them beside the export")
        classes, notes = star_classes(ds)
        index = ds.class_index()
        samples = [_Pending(it, index, line_width) for it in ds.items]
        entries = [(it.key, sha256(it.image.read_bytes()), "") for it in ds.items]
        return TrainingData(samples, [it.key for it in ds.items], [it.size_hw for it in ds.items], classes, entries,
                            source.description, notes)

    def start(self, setup: Setup) -> Job:
        return _StarJob(self, setup)

    #: A single image is validated on a strip of it by default (the U-Net's validates on itself).
    spatial_validation: ClassVar[bool] = True

    def hold_out(self, data: TrainingData, span: tuple[float, float]) -> tuple[TrainingData, TrainingData, str] | None:
        """One image split spatially (:func:`~defectlab.dl.archs.base.hold_out_windows`): training
        crops are drawn from the training windows only, so they never reach into the validation strip."""
        return hold_out_windows(data, span, lambda p, w: _Pending(p.item, p.index, p.line_width, w))

    def predict(self, model: Model, image: np.ndarray, options: PredictOptions, *,
                probabilities_dtype: Any = np.float32, progress: bool = False) -> Prediction:
        _no_probabilities(options)
        if not isinstance(model, StarModel):
            model = self.on_load(model, Path(model.path)) if model.path is not None else StarModel(
                model.net, model.config, device=model.device)
        return model.predict_star(image, **_star_options(options), progress=progress)

    def predict_images(self, model: Model, images: Any, out: Any, options: PredictOptions, *,
                       prelabels: Any = None, overwrite: bool = False, progress: bool = True) -> Any:
        """What :func:`~defectlab.dl.predict.predict_images` writes, plus ``polygons/<stem>.json``;
        pre-labels straight from the polygons (ellipse classes as fitted ellipses), see
        :func:`~defectlab.dl.stardist.outputs.predict_star_images`."""
        from ..stardist.outputs import predict_star_images

        _no_probabilities(options)
        return predict_star_images(model, images, out, prelabels=prelabels, overwrite=overwrite, progress=progress,
                                   **_star_options(options))
