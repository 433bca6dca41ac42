"""The star-convex model as a folder, and the object that predicts with it.

The folder is the one every defectlab model is (:mod:`defectlab.dl.model_io`), with
architecture ``"stardist"`` and one more file::

    MODEL/config.json       architecture {"name": "stardist", "params": StarNetConfig}, classes
                            (a class of type "polyline" is a line class), tile_size, overlap, …
    MODEL/weights.pt        the net's state dict
    MODEL/thresholds.json   {"prob": 0.55, "nms": 0.4, …}: tuned on the validation images
                            after training (absent: StarDist's defaults 0.5 / 0.4, with a note)
    MODEL/history.json, training_curve.png, checkpoint.pt   (training)

Until the architecture registry of :mod:`defectlab.dl` knows ``"stardist"``,
:func:`load_star_model` reads such a folder itself (reusing ``ModelConfig``'s validation of
everything but the architecture's parameters, which :class:`StarNetConfig` checks).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ...errors import ParseError
from ..model_io import (CONFIG_FILE, WEIGHTS_FILE, ClassInfo, Model, ModelConfig, ModelError, _load_state,
                        write_model_files)
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
    return ModelConfig(ARCHITECTURE, net.to_dict(), ModelConfig._with_background(classes), int(tile_size),
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

    def predict(self, image: "np.ndarray | str | Path", *, tile: int | None = None, overlap: int | None = None,
                prob_thresh: float | None = None, nms_thresh: float | None = None, min_area_px: int = 4,
                batch_size: int = 1, progress: bool = False, **ignored: Any) -> StarPrediction:
        """Predict one image of any size (:mod:`defectlab.dl.stardist.predict`).

        ``prob_thresh`` / ``nms_thresh`` default to the model's tuned thresholds; ``tile``
        to the larger of 1024 px and the training tile; ``overlap`` to the model's.
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
        fwd = star_forward(self.net, self.device)
        return predict_stars(
            fwd, arr, n_rays=cfg.n_rays, n_classes=cfg.n_classes, grid=cfg.grid, multiple=m,
            classes=self.classes, line_classes=self.line_classes, tile=t, overlap=ov,
            prob_thresh=self.thresholds["prob"] if prob_thresh is None else prob_thresh,
            nms_thresh=self.thresholds["nms"] if nms_thresh is None else nms_thresh,
            min_area_px=min_area_px, batch_size=batch_size, progress=progress)


#: Options of the U-Net / Mask R-CNN predictor a caller may pass to every model; a star model
#: has no use for them and says nothing.
_SHARED_OPTIONS = ("engine", "probabilities", "probabilities_dtype", "margin", "split", "neck_ratio",
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


def _read_config(folder: Path) -> ModelConfig:
    cfg_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such model folder")
    if not cfg_path.is_file():
        raise ModelError(f"{folder}: no {CONFIG_FILE}; a trained model is a folder holding {CONFIG_FILE} and "
                         f"{WEIGHTS_FILE}")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ParseError(cfg_path, f"not valid JSON: {err.msg}", line=err.lineno, column=err.colno) from err
    arch = data.get("architecture") if isinstance(data, dict) else None
    name = arch.get("name") if isinstance(arch, dict) else None
    if name != ARCHITECTURE:
        raise ModelError(f"{cfg_path}: architecture {name!r}, not {ARCHITECTURE!r}; load it with "
                         "defectlab.dl.model_io.load_model")
    params = arch.get("params")
    if not isinstance(params, dict):
        raise ParseError(cfg_path, f"expected an object for 'params', got {params!r}", where="/architecture/params")
    n_classes = len(data.get("classes", [])) if isinstance(data.get("classes"), list) else 0
    # everything but the architecture is ModelConfig's to check: let it check a stand-in
    probe = dict(data, architecture={"name": "maskrcnn", "params": {"backbone": "resnet18", "num_classes": n_classes}})
    base = ModelConfig.from_dict(probe, cfg_path)
    try:
        net_cfg = StarNetConfig.from_dict(params)
    except (TypeError, ValueError) as err:
        raise ParseError(cfg_path, str(err), where="/architecture/params") from err
    if net_cfg.n_classes != len(base.classes):
        raise ModelError(f"{cfg_path}: classes mismatch: 'classes' lists {len(base.classes)} (background + "
                         f"{len(base.classes) - 1}) but the net has n_classes {net_cfg.n_classes}")
    return replace(base, architecture=ARCHITECTURE, params=net_cfg.to_dict())


def load_star_model(path: str | Path, *, device: str | torch.device = "auto") -> StarModel:
    """Load a ``"stardist"`` model folder, checking everything (as :func:`~defectlab.dl.model_io.load_model`).

    Raises
    ------
    ModelError
        Missing folder or file, another architecture, classes that do not fit the net, weights
        of another net.
    ParseError
        ``config.json`` or ``thresholds.json`` is not valid JSON or holds a bad value.
    """
    folder = Path(path)
    folder = folder.parent if folder.name == CONFIG_FILE else folder
    config = _read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: missing; the model folder holds {CONFIG_FILE} but no weights")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a corrupt file
        raise ModelError(f"{weights}: not readable as torch weights ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{weights}: expected a state dict of tensors (torch.save(net.state_dict()))")
    net = StarNet(StarNetConfig.from_dict(config.params))
    _load_state(net, state, weights, config)
    thresholds, note = read_thresholds(folder / THRESHOLDS_FILE)
    model = StarModel(net, config, thresholds=thresholds, path=folder, device=device)
    model.notes = [note] if note else []
    return model
