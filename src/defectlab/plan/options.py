"""The options of ``defectlab plan``: every choice the plan makes can be given instead.

A field left at ``None`` is decided from the data; a value given is used as it is (and the
plan says so). The names are those of the training options they stand for (``tile_size``,
``batch_size``, ``augment`` …), so ``train --auto`` can pass a user's options through.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["PlanOptions", "parse_duration", "NORMALIZATIONS", "ARCHITECTURES", "DEVICES"]

#: Normalizations a plan can choose or be given.
NORMALIZATIONS: tuple[str, ...] = ("percentile", "minmax", "meanstd", "none")
#: Architectures a plan chooses between: a semantic U-Net, or the instance model (issue #16).
ARCHITECTURES: tuple[str, ...] = ("unet", "stardist")
#: What the plan is made for: a CPU or a GPU.
DEVICES: tuple[str, ...] = ("cpu", "gpu")

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "m": 60.0, "min": 60.0, "mins": 60.0,
          "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0}
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)\s*")


def parse_duration(value: str | float) -> float:
    """Seconds in ``"90s"``, ``"10min"``, ``"1.5h"``, ``"1h30min"``; a number is seconds.

    Examples
    --------
    >>> parse_duration("10min"), parse_duration("1h30m"), parse_duration(45)
    (600.0, 5400.0, 45.0)
    >>> parse_duration("10")
    Traceback (most recent call last):
    ...
    ValueError: --time: expected a duration with a unit such as 90s, 10min or 1h, got '10'
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        pos, seconds = 0, 0.0
        while pos < len(text):
            m = _PART.match(text, pos)
            if m is None or m.group(2) not in _UNITS:
                raise ValueError(f"--time: expected a duration with a unit such as 90s, 10min or 1h, got {value!r}")
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text:
            raise ValueError(f"--time: expected a duration with a unit such as 90s, 10min or 1h, got {value!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"--time: expected a duration > 0, got {value!r}")
    return seconds


def _device_kind(value: str) -> str:
    """``"cpu"`` or ``"gpu"`` from a device as ``defectlab train --device`` spells it (cuda, cuda:N, mps)."""
    text = str(value).strip().lower()
    if text.startswith("cuda") or text == "mps":
        return "gpu"
    return text


def _augment_spec(value: str) -> str:
    from ..preparation.augment import Augment

    Augment.parse(value)  # raises ValueError naming the bad part
    return value


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What the plan decides from the data unless given, and how it decides.

    Examples
    --------
    >>> PlanOptions(tile_size=192).tile_size
    192
    >>> PlanOptions(arch="maskrcnn")
    Traceback (most recent call last):
    ...
    ValueError: plan: expected arch in ('unet', 'stardist'), got 'maskrcnn'
    """

    tile_size: int | None = field(default=None, metadata={
        "help": "Training crop and prediction tile, px (default: from the largest defects, with context).",
        "cli": "--tile", "min": 32})
    overlap: int | None = field(default=None, metadata={
        "help": "Least overlap of prediction tiles, px (default: the largest defect, so none is cut).",
        "cli": "--overlap", "min": 0})
    normalization: str | None = field(default=None, metadata={
        "help": "Intensity normalization (default: percentile clipping, full bit depth kept).",
        "cli": "--normalization", "choices": NORMALIZATIONS})
    augment: str | None = field(default=None, metadata={
        "help": "Augmentations, e.g. flip,rot90,gamma=0.8:1.25 (default: what suits the data).",
        "cli": "--augment", "parse": _augment_spec})
    arch: str | None = field(default=None, metadata={
        "help": "Architecture (default: stardist when many defects touch, else unet).",
        "cli": "--arch", "choices": ARCHITECTURES})
    batch_size: int | None = field(default=None, metadata={
        "help": "Crops per training step (default: about half a megapixel on a CPU).", "cli": "--batch-size",
        "min": 1})
    steps: int | None = field(default=None, metadata={
        "help": "Training steps (default: what the time budget holds).", "cli": "--steps", "min": 1})
    time_budget_s: float | None = field(default=None, metadata={
        "help": "Training time budget: 90s, 10min, 1h (default: 10min on a CPU, 20min on a GPU).",
        "cli": "--time", "parse": parse_duration})
    device: str = field(default="cpu", metadata={
        "help": "What the training runs on: cpu or gpu (cuda, cuda:N and mps count as gpu).", "cli": "--device",
        "choices": DEVICES, "parse": _device_kind})
    step_seconds: float | None = field(default=None, metadata={
        "help": "Measured seconds per training step at the planned tile and batch (default: estimated).",
        "cli": "--step-seconds", "min": 0.001})
    context: float = field(default=3.0, metadata={
        "help": "The tile is at least this many times the largest defect's extent.", "cli": "--context",
        "min": 1.0})
    touching: float = field(default=0.15, metadata={
        "help": "Share of touching or overlapping defects from which the instance model is chosen.",
        "cli": "--touching", "min": 0.0, "max": 1.0})
    pixel_size: str | None = field(default=None, metadata={
        "help": "Pixel size overriding the files' calibration: 0.38nm, 3.8Å.", "cli": "--pixel-size"})
    line_width: float = field(default=3.0, metadata={
        "help": "Width in px of polyline (dislocation line) masks.", "cli": "--line-width", "min": 0.5})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            object.__setattr__(self, f.name, _checked(f.name, value, f.type, f.metadata))

    def given(self) -> dict[str, Any]:
        """The choices given (not left to the data): name -> value."""
        return {name: getattr(self, name) for name in _CHOICES if getattr(self, name) is not None}


#: The fields that are choices of the plan (None: decided from the data).
_CHOICES = ("tile_size", "overlap", "normalization", "augment", "arch", "batch_size", "steps", "time_budget_s")


def _checked(name: str, value: Any, kind: Any, meta: Any) -> Any:
    if "parse" in meta and isinstance(value, str):
        try:
            value = meta["parse"](value)
        except ValueError as err:
            raise ValueError(f"plan: {err}") from None
    kind = str(kind)
    if kind.startswith("int"):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"plan: expected a whole number for {name}, got {value!r}")
        value = int(value)
    elif kind.startswith("float"):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"plan: expected a finite {name}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"plan: expected {name} in {choices}, got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise ValueError(f"plan: expected {name} >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ValueError(f"plan: expected {name} <= {meta['max']}, got {value!r}")
    return value
