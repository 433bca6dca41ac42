"""The star-convex model as a folder, and the object that predicts with it.

The folder is the one every defectlab model is (:mod:`defectlab.dl.model_io`), with
architecture ``"stardist"`` and one more file::

    MODEL/config.json       architecture {"name": "stardist", "params": StarNetConfig}, classes
                            (a class of type "polyline" is a line class), tile_size, overlap, …
    MODEL/weights.pt        the net's state dict
    MODEL/thresholds.json   {"prob": 0.55, "nms": 0.4, …}: tuned on the validation images
                            after training (absent: StarDist's defaults 0.5 / 0.4, with a note)
    MODEL/history.json, training_curve.png, checkpoint.pt   (training)

:func:`defectlab.dl.model_io.load_model` loads such a folder as a :class:`StarModel`
(:mod:`defectlab.dl.archs.stardist`); :func:`load_star_model` is that, for a star folder only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ...errors import ParseError
from ..model_io import ClassInfo, Model, ModelConfig, ModelError, write_model_files
from .net import StarNet, StarNetConfig, star_forward
from .predict import DEFAULT_PROB_THRESH, StarPrediction, default_tile, predict_stars, round_overlap
from ...raster.nms import DEFAULT_NMS_THRESH

__all__ = ["ARCHITECTURE", "THRESHOLDS_FILE", "StarModel", "star_model_config", "save_star_model",
           "load_star_model", "read_thresholds"]

ARCHITECTURE = "stardist"
THRESHOLDS_FILE = "thresholds.json"


def star_model_config(net: StarNetConfig, *, classes: Iterable[ClassInfo], tile_size: int, overlap: int = 128,
                      training: dict[str, Any] | None = None) -> ModelConfig:
    """The :class:`~defectlab.dl.model_io.ModelConfig` of a star net (``classes`` from index 1)."""
    classes = tuple(classes)
    if net.n_classes != len(classes) + 1:
        raise ValueError(f"the net has {net.n_classes} class outputs but {len(classes)} classes + background "
                         "were given")
    return ModelConfig(ARCHITECTURE, net.to_dict(), ModelConfig.with_background(classes), int(tile_size),
                       int(overlap), training=dict(training or {}))


class StarModel(Model):
    """A trained star-convex model: the net, its config and its thresholds.

    ``thresholds``: ``{"prob": …, "nms": …}`` as in ``thresholds.json``.
    """

    def __init__(self, net: StarNet, config: ModelConfig, *, thresholds: dict[str, Any] | None = None,
                 path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__(net, config, path=path, device=device)
        self.thresholds = dict(thresholds or {"prob": DEFAULT_PROB_THRESH, "nms": DEFAULT_NMS_THRESH})

    @property
    def net_config(self) -> StarNetConfig:
        return self.net.config

    @property
    def line_classes(self) -> list[int]:
        """Classes labeled as polylines: predicted from the class head, not as polygons."""
        return [c.index for c in self.config.classes[1:] if c.is_line]

    def forward(self, engine: str = "auto"):
        """The net's forward for ``engine`` (see :func:`~defectlab.dl.stardist.net.star_forward`),
        made once and kept until the weights or the device change."""
        from ..engine import _weights_key

        key = (engine, *_weights_key(self.net, self.device))
        cached = self.__dict__.get("_star_forward")
        if cached is None or cached[0] != key:
            fwd = star_forward(self.net, self.device, engine=engine)
            cached = ((engine, *_weights_key(self.net, self.device)), fwd)  # after channels-last: its own key
            self.__dict__["_star_forward"] = cached
        return cached[1]

    def predict_star(self, image: "np.ndarray | str | Path", *, tile: int | None = None, overlap: int | None = None,
                     prob_thresh: float | None = None, nms_thresh: float | None = None, min_area_px: int = 4,
                     batch_size: int = 1, engine: str = "auto", progress: bool = False,
                     **ignored: Any) -> StarPrediction:
        """Predict one image of any size (:mod:`defectlab.dl.stardist.predict`); what
        ``predict`` (:func:`defectlab.dl.predict.predict_image`) does for a star model, with
        the thresholds open to change.

        ``prob_thresh`` / ``nms_thresh`` default to the model's tuned thresholds; ``tile``
        to the larger of 1024 px and the training tile; ``overlap`` to the model's;
        ``engine``: ``"auto"`` (ONNX Runtime on a CPU when installed), ``"torch"``, ``"onnxruntime"``.
        """
        from ..predict import _as_image

        unknown = sorted(k for k in ignored if k not in _SHARED_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected option {unknown[0]!r} for a star-convex model")
        arr = _as_image(image)
        cfg = self.net_config
        m = cfg.multiple
        t = default_tile(m, tile, self.config.tile_size)
        ov = round_overlap(self.config.overlap if overlap is None else overlap, m, t)
        fwd = self.forward(engine)
        return predict_stars(
            fwd, arr, n_rays=cfg.n_rays, n_classes=cfg.n_classes, grid=cfg.grid, multiple=m,
            classes=self.classes, line_classes=self.line_classes, tile=t, overlap=ov,
            prob_thresh=self.thresholds["prob"] if prob_thresh is None else prob_thresh,
            nms_thresh=self.thresholds["nms"] if nms_thresh is None else nms_thresh,
            min_area_px=min_area_px, batch_size=batch_size, progress=progress, engine=fwd.engine)


#: Options of the U-Net / Mask R-CNN predictor a caller may pass to every model; a star model
#: has no use for them and says nothing.
_SHARED_OPTIONS = ("probabilities", "probabilities_dtype", "margin", "split", "neck_ratio",
                   "score_threshold", "mask_threshold")


def save_star_model(model: StarModel, folder: str | Path) -> None:
    """Write ``config.json``, ``weights.pt`` and ``thresholds.json`` into an existing folder."""
    folder = Path(folder)
    write_model_files(folder, model.net, model.config)
    (folder / THRESHOLDS_FILE).write_text(json.dumps(model.thresholds, indent=2) + "\n", encoding="utf-8")


def read_thresholds(path: Path) -> tuple[dict[str, Any], str | None]:
    """``(thresholds, note)``: the file's, or StarDist's defaults and a note when it is missing."""
    if not path.is_file():
        return ({"prob": DEFAULT_PROB_THRESH, "nms": DEFAULT_NMS_THRESH},
                f"{path.name} missing: using the default thresholds prob {DEFAULT_PROB_THRESH}, nms {DEFAULT_NMS_THRESH}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ParseError(path, f"not valid JSON: {err.msg}", line=err.lineno, column=err.colno) from err
    for key in ("prob", "nms"):
        v = data.get(key) if isinstance(data, dict) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ParseError(path, f"expected a number in [0, 1] for {key!r}, got {v!r}", where=f"/{key}")
    return data, None


def load_star_model(path: str | Path, *, device: str | torch.device = "auto") -> StarModel:
    """Load a ``"stardist"`` model folder, checking everything (:func:`~defectlab.dl.model_io.load_model`).

    Raises
    ------
    ModelError
        Missing folder or file, another architecture, classes that do not fit the net, weights
        of another net.
    ParseError
        ``config.json`` or ``thresholds.json`` is not valid JSON or holds a bad value.
    """
    from ..model_io import load_model, read_config

    config = read_config(path)
    if config.architecture != ARCHITECTURE:
        raise ModelError(f"{path}: architecture {config.architecture!r}, not {ARCHITECTURE!r}; load it with "
                         "defectlab.dl.model_io.load_model")
    return load_model(path, device=device)  # type: ignore[return-value]
