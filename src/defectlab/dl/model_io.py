"""A trained model is a folder: ``config.json`` + ``weights.pt`` (+ what training adds).

Layout::

    MODEL/config.json          what the net is and how to feed it (below)
    MODEL/weights.pt           the net's state dict (torch.save; loaded with weights_only=True)
    MODEL/history.json         (training) loss and IoU per epoch
    MODEL/training_curve.png   (training) the same as a picture
    MODEL/checkpoint.pt        (training) last epoch's weights and optimizer state
    MODEL/calibration.npy      (training of an exportable net, e.g. a U-Net) 16 normalized
                               training crops, (16, 1, h, w) float16: what the opt-in int8
                               engine calibrates on

``config.json``::

    {
      "format": "defectlab-model", "config_version": 1, "defectlab_version": "0.1.0",
      "architecture": {"name": "unet", "params": {"n_classes": 3, "base_filters": 16, ...}},
      "classes": [{"index": 0, "name": "background", "color": "#000000", "edge": null, "type": "any"},
                  {"index": 1, "name": "cavity", "color": "#1f77b4", "edge": "inner", "type": "ellipse"}, ...],
      "normalization": {"method": "minmax", "scope": "image", "channels": 1},
      "tile_size": 256, "overlap": 64,
      "training": {"data_manifest_sha256": "…", "n_train": 8, "n_val": 2, "epochs": 40, ...}
    }

Normalization ``minmax``/``image``: each whole image is scaled to [0, 1] by its own minimum
and maximum (:class:`defectlab.imaging.io.MinMax`), color images converted to gray first — in
training and in prediction alike; ``percentile``/``image`` (what ``train --auto`` plans), or
``minmax`` with ``"percentiles": [low, high]``: by those percentiles of its own values instead
(computed in float32, so 16-bit images keep their depth), clipped to [0, 1]. ``channels`` is what the net takes: 1, or 3 (the gray
image repeated, for Mask R-CNN).

``architecture`` names a registered architecture (:mod:`defectlab.dl.archs`), which checks its
``params`` and builds the net from them; nothing here knows any architecture.

:func:`load_model` checks all of it and says what is wrong, naming the file and the
place: a missing file, JSON that does not parse, a config written by a newer defectlab,
classes that do not fit the weights, weights of another architecture.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.dl.archs import unet
>>> net = unet.UNet(unet.UNetConfig(n_classes=2, base_filters=4, depth=1, bottleneck_dilations=(1,)))
>>> config = unet.model_config(net.config, classes=[ClassInfo(1, "cavity", edge="inner")], tile_size=64)
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "model"
>>> model = save_model(Model(net, config), folder)
>>> load_model(folder).classes
{1: 'cavity'}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from .._output import output_dir
from ..errors import FormatError, ParseError
from ..imaging.io import MinMax
from ..model import DEFAULT_COLORS
from . import archs
from .options import PredictOptions
from .predict import predict_image

if TYPE_CHECKING:  # pragma: no cover
    from .archs.base import Architecture
    from .predict import Prediction

__all__ = [
    "CONFIG_VERSION", "ClassInfo", "Model", "ModelConfig", "ModelError", "build_net", "load_model",
    "read_config", "read_weights", "resolve_device", "save_model", "with_training", "write_model_files",
]

#: The version of ``config.json`` this defectlab writes and reads.
CONFIG_VERSION = 1
FORMAT_NAME = "defectlab-model"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
#: Normalized training crops, (N, 1, h, w) float16, for int8 calibration.
CALIBRATION_FILE = "calibration.npy"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class ModelError(FormatError):
    """A model folder is missing, incomplete, or does not fit together (config vs weights)."""


def _version() -> str:
    from .. import __version__

    return __version__


@dataclass(frozen=True, slots=True)
class ClassInfo:
    """One output class of a model: its index (0 = background), name, color, edge convention and
    the shape type its labels were drawn as (``"polyline"`` for dislocation lines: prediction
    does not split such a class's objects at necks)."""

    index: int
    name: str
    color: str | None = None
    edge: str | None = None
    type: str = "any"

    @property
    def is_line(self) -> bool:
        return self.type == "polyline"

    def to_dict(self) -> dict[str, Any]:
        color = self.color or ("#000000" if self.index == 0 else DEFAULT_COLORS[(self.index - 1) % len(DEFAULT_COLORS)])
        return {"index": self.index, "name": self.name, "color": color, "edge": self.edge, "type": self.type}

    def rgb(self) -> tuple[int, int, int]:
        c = self.to_dict()["color"]
        return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


@dataclass(frozen=True)
class ModelConfig:
    """Everything but the weights: see the module docstring for the JSON form.

    ``classes`` always starts with the background (index 0): :meth:`with_background`.
    An architecture makes its configs (e.g. :func:`defectlab.dl.archs.unet.model_config`).
    """

    architecture: str
    params: dict[str, Any]
    classes: tuple[ClassInfo, ...]
    tile_size: int
    overlap: int = 64
    normalization: dict[str, Any] = field(default_factory=lambda: {"method": "minmax", "scope": "image", "channels": 1})
    training: dict[str, Any] = field(default_factory=dict)
    defectlab_version: str = field(default_factory=_version)
    config_version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if not (isinstance(self.tile_size, int) and isinstance(self.overlap, int)
                and self.tile_size >= 1 and 0 <= self.overlap < self.tile_size):
            raise ValueError(f"model config: expected tile_size >= 1 and 0 <= overlap < tile_size, got "
                             f"{self.tile_size!r}, {self.overlap!r}")

    @staticmethod
    def with_background(classes: Sequence[ClassInfo]) -> tuple[ClassInfo, ...]:
        """``classes`` (the foreground, from index 1) with the background class 0 in front."""
        classes = tuple(classes)
        if classes and classes[0].index == 0:
            return classes
        return (ClassInfo(0, "background", "#000000", None, "any"), *classes)

    # -- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "config_version": self.config_version,
            "defectlab_version": self.defectlab_version,
            "architecture": {"name": self.architecture, "params": self.params},
            "classes": [c.to_dict() for c in self.classes],
            "normalization": self.normalization,
            "tile_size": self.tile_size,
            "overlap": self.overlap,
            "training": self.training,
        }

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = CONFIG_FILE) -> "ModelConfig":
        """Validate a parsed ``config.json``; errors name ``path`` and a JSON pointer."""

        def need(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
            if not isinstance(obj, dict) or key not in obj:
                raise ParseError(path, f"missing {key!r}", where=where or "/")
            value = obj[key]
            if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
                names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                raise ParseError(path, f"expected {names} for {key!r}, got {value!r}", where=f"{where}/{key}")
            return value

        if not isinstance(data, dict):
            raise ParseError(path, f"expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != FORMAT_NAME:
            raise ModelError(f"{path}: not a defectlab model config (\"format\" is {fmt!r}, expected {FORMAT_NAME!r})")
        version = need(data, "config_version", int, "")
        written_by = data.get("defectlab_version", "?")
        if version > CONFIG_VERSION:
            raise ModelError(
                f"{path}: written by defectlab {written_by} as config version {version}; this defectlab "
                f"({_version()}) reads version {CONFIG_VERSION} — upgrade defectlab to load this model"
            )
        if version < 1:
            raise ParseError(path, f"expected config_version >= 1, got {version}", where="/config_version")
        arch = need(data, "architecture", dict, "")
        name = need(arch, "name", str, "/architecture")
        if name not in archs.names():
            raise ModelError(f"{path}: unknown architecture {name!r}; known: {', '.join(archs.names())}")
        params = need(arch, "params", dict, "/architecture")
        raw_classes = need(data, "classes", list, "")
        classes = []
        for i, c in enumerate(raw_classes):
            where = f"/classes/{i}"
            index = need(c, "index", int, where)
            cname = need(c, "name", str, where)
            color = c.get("color")
            if color is not None and (not isinstance(color, str) or not _COLOR.match(color)):
                raise ParseError(path, f"expected a color like '#61b21f', got {color!r}", where=f"{where}/color")
            edge = c.get("edge")
            if edge not in (None, "inner", "outer"):
                raise ParseError(path, f"expected edge 'inner', 'outer' or null, got {edge!r}", where=f"{where}/edge")
            ctype = c.get("type", "any")  # absent in configs written before it was added
            if not isinstance(ctype, str) or not ctype:
                raise ParseError(path, f"expected a shape type like 'polygon' or 'polyline', got {ctype!r}",
                                 where=f"{where}/type")
            classes.append(ClassInfo(index, cname, color, edge, ctype))
        if [c.index for c in classes] != list(range(len(classes))) or len(classes) < 2:
            raise ParseError(path, f"expected classes with indices 0, 1, …, N (0 = background, N >= 1), got "
                             f"{[c.index for c in classes]}", where="/classes")
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ParseError(path, f"class name {dup!r} appears twice", where="/classes")
        tile = need(data, "tile_size", int, "")
        overlap = need(data, "overlap", int, "")
        if tile < 1 or not 0 <= overlap < tile:
            raise ParseError(path, f"expected tile_size >= 1 and 0 <= overlap < tile_size, got {tile}, {overlap}",
                             where="/tile_size")
        norm = need(data, "normalization", dict, "")
        if norm.get("method") not in ("minmax", "percentile") or norm.get("scope", "image") != "image":
            raise ModelError(f"{path}: unknown normalization {norm!r}; this defectlab knows "
                             "{'method': 'minmax' or 'percentile', 'scope': 'image'}")
        if norm["method"] == "percentile" and "percentiles" not in norm:
            raise ParseError(path, "expected 'percentiles': [low, high] for the percentile normalization",
                             where="/normalization")
        if "percentiles" in norm:
            try:
                MinMax.fit(np.zeros((1, 1), np.float32), percentiles=tuple(norm["percentiles"]))
            except (TypeError, ValueError) as err:
                raise ParseError(path, f"expected percentiles [low, high] with 0 <= low < high <= 100, got "
                                 f"{norm['percentiles']!r}", where="/normalization/percentiles") from err
        training = data.get("training", {})
        if not isinstance(training, dict):
            raise ParseError(path, f"expected an object for 'training', got {training!r}", where="/training")
        config = cls(name, params, tuple(classes), tile, overlap, dict(norm), training, str(written_by), version)
        archs.get(name).check_config(config, path)
        return config

    # -- information ----------------------------------------------------------------------

    @property
    def class_names(self) -> dict[int, str]:
        """Class index -> name, from 1 (the background is not listed)."""
        return {c.index: c.name for c in self.classes if c.index}

    @property
    def colors_rgb(self) -> list[tuple[int, int, int]]:
        """Color of class ``k`` at ``[k - 1]`` (what :func:`defectlab.viz.overlay` takes)."""
        return [c.rgb() for c in self.classes[1:]]

    def normalizer(self, image: np.ndarray) -> MinMax:
        """How ``image`` is scaled for the net (``normalization``, the same in training and prediction)."""
        return MinMax.fit(image, percentiles=tuple(self.normalization.get("percentiles", (0.0, 100.0))))


# ---------------------------------------------------------------------------------------------
# Nets and devices


def build_net(config: ModelConfig, *, pretrained: bool = False) -> nn.Module:
    """The untrained net ``config`` describes, built by its architecture (``pretrained``:
    starting weights where the architecture has them, e.g. torchvision's; needs internet)."""
    return archs.get(config.architecture).build_net(config, pretrained=pretrained)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else Apple MPS, else CPU; or the device named.

    Raises ValueError for an unknown name and a clear error for one that is not available.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"expected device auto, cpu, cuda, cuda:N or mps, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but torch sees no CUDA GPU here; use --device auto or cpu")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ModelError(f"device {device!r} asked for, but Apple MPS is not available here; use --device auto or cpu")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# The model object


class Model:
    """A net with its config: what :func:`load_model` returns and :meth:`predict` uses.

    Parameters
    ----------
    net : torch.nn.Module
        The net of ``config``'s architecture (a :class:`~defectlab.dl.archs.unet.UNet`, a
        torchvision ``MaskRCNN``, …).
    config : ModelConfig
    path : Path, optional
        The folder it was loaded from.
    device : str or torch.device
        Where the net runs (``"auto"``: CUDA > MPS > CPU).
    calibration : (N, 1, h, w) array, optional
        Normalized crops of the training images (``calibration.npy``), what the
        ``onnxruntime-int8`` engine calibrates its quantization on.
    """

    def __init__(self, net: nn.Module, config: ModelConfig, *, path: str | Path | None = None,
                 device: str | torch.device = "cpu", calibration: np.ndarray | None = None) -> None:
        self.calibration = calibration
        self.config = config
        self.path = Path(path) if path is not None else None
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()

    @property
    def architecture(self) -> str:
        return self.config.architecture

    @property
    def arch(self) -> "Architecture":
        """The registered architecture of this model (:func:`defectlab.dl.archs.get`)."""
        return archs.get(self.config.architecture)

    @property
    def classes(self) -> dict[int, str]:
        """Class index -> name, from 1."""
        return self.config.class_names

    def to(self, device: str | torch.device) -> "Model":
        """Move the net to ``device`` (in place); returns self."""
        self.device = resolve_device(device)
        self.net.to(self.device)
        return self

    def check_classes(self, names: Iterable[str]) -> None:
        """Raise ModelError unless the model predicts exactly ``names`` (in this order)."""
        names = list(names)
        have = list(self.classes.values())
        if names != have:
            raise ModelError(
                f"classes mismatch: the model{' at ' + str(self.path) if self.path else ''} predicts {have}, "
                f"but {names} were expected"
            )

    def predict(self, image: "np.ndarray | str | Path", options: PredictOptions | None = None,
                **changes: Any) -> "Prediction":
        """Predict one image of any size; see :func:`defectlab.dl.predict.predict_image`."""
        return predict_image(self, image, options, **changes)

    def __repr__(self) -> str:
        where = f" from {str(self.path)!r}" if self.path else ""
        return f"Model({self.architecture}{where}, classes={self.classes}, device={self.device})"


# ---------------------------------------------------------------------------------------------
# Saving and loading


def write_model_files(folder: str | Path, net: nn.Module, config: ModelConfig,
                      calibration: np.ndarray | None = None) -> None:
    """Write ``config.json``, ``weights.pt`` and (given) ``calibration.npy`` into an existing
    folder (no atomicity here)."""
    folder = Path(folder)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    state = {k: v.detach().to("cpu") for k, v in net.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    if calibration is not None:
        np.save(folder / CALIBRATION_FILE, np.asarray(calibration, dtype=np.float16))


def save_model(model: Model, path: str | Path, *, overwrite: bool = False) -> Model:
    """Write ``model`` as a folder (atomically; an existing one replaced only with ``overwrite``)."""
    with output_dir(path, overwrite=overwrite) as tmp:
        write_model_files(tmp, model.net, model.config, model.calibration)
    model.path = Path(path)
    return model


def read_config(path: str | Path) -> ModelConfig:
    """The validated :class:`ModelConfig` of a model folder (or of a ``config.json`` file)."""
    path = Path(path)
    folder = path.parent if path.name == CONFIG_FILE and path.is_file() else path
    if not folder.exists():
        raise ModelError(f"{folder}: no such model folder")
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a folder; a trained model is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}")
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise ModelError(f"{folder}: no {CONFIG_FILE}; a trained model is a folder holding {CONFIG_FILE} and "
                         f"{WEIGHTS_FILE} (as `defectlab train` writes it)")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ParseError(cfg_path, f"not valid JSON: {err.msg}", line=err.lineno, column=err.colno) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f"{cfg_path}: cannot be read ({err})") from err
    return ModelConfig.from_dict(data, cfg_path)


def load_model(path: str | Path, *, device: str | torch.device = "auto",
               classes: Iterable[str] | None = None) -> Model:
    """Load a model folder written by training or :func:`save_model`, checking everything; an
    ensemble folder (``train --folds``: ``ensemble.json`` and a folder per member) gives an
    :class:`~defectlab.dl.ensemble.EnsembleModel`.

    Parameters
    ----------
    path : path
        The model folder.
    device : str or torch.device
        ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    classes : iterable of str, optional
        The class names (without background) the caller expects, in order.

    Raises
    ------
    ModelError
        The folder or a file is missing, the config was written by a newer defectlab, the
        classes do not fit the architecture or the weights, or the weights are of another net.
    ParseError
        ``config.json`` is not valid JSON or misses a field (the message gives a JSON pointer).
    """
    folder = Path(path)
    from .ensemble import ENSEMBLE_FILE, load_ensemble

    if (folder / ENSEMBLE_FILE).is_file() and not (folder / CONFIG_FILE).is_file():  # train --folds
        return load_ensemble(folder, device=device, classes=classes)
    config = read_config(path)
    folder = folder.parent if folder.name == CONFIG_FILE else folder
    weights = folder / WEIGHTS_FILE
    state = read_weights(folder)
    net = build_net(config)
    _load_state(net, state, weights, config)
    model = Model(net, config, path=folder, device=device, calibration=_read_calibration(folder / CALIBRATION_FILE))
    model = archs.get(config.architecture).on_load(model, folder)
    if classes is not None:
        model.check_classes(classes)
    return model


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a model folder's ``weights.pt``, on the CPU (``weights_only``: no code runs).

    Raises
    ------
    ModelError
        The file is missing, not readable by torch, or not a state dict of tensors.
    """
    weights = Path(folder) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: missing; the model folder holds {CONFIG_FILE} but no weights "
                         "(was training interrupted before the first epoch ended?)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a corrupt file
        raise ModelError(f"{weights}: not readable as torch weights ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{weights}: expected a state dict of tensors (torch.save(net.state_dict()))")
    return state


def _read_calibration(path: Path) -> np.ndarray | None:
    """``calibration.npy`` if the folder has one (models written before it existed do not)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: not readable as a numpy array ({err})") from err
    if arr.ndim != 4 or arr.shape[1] != 1 or not np.issubdtype(arr.dtype, np.floating) or not len(arr):
        raise ModelError(f"{path}: expected (N, 1, h, w) floating-point crops, got {arr.dtype} {arr.shape}")
    return arr


def _load_state(net: nn.Module, state: dict[str, torch.Tensor], weights: Path, config: ModelConfig) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ModelError(
            f"{weights}: the weights are not those of the {config.architecture} described in {CONFIG_FILE} "
            f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            hint = ""
            if config.architecture in archs.names() and key == archs.get(config.architecture).class_weights:
                hint = (f": the weights predict {state[key].shape[0]} classes but {CONFIG_FILE} lists "
                        f"{len(config.classes)} (background + {len(config.classes) - 1}) — classes mismatch")
            raise ModelError(
                f"{weights}: {key} has shape {list(state[key].shape)} but the net described in {CONFIG_FILE} "
                f"needs {list(tensor.shape)}{hint}"
            )
    net.load_state_dict(state)


def with_training(config: ModelConfig, **info: Any) -> ModelConfig:
    """A copy of ``config`` with ``training`` updated by ``info``."""
    return replace(config, training={**config.training, **info})
