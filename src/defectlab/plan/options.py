"""The options of ``defectlab plan``: every choice the plan makes can be given instead.

A field left at ``None`` is decided from the data; a value given is used as it is (and the
plan says so). The names are those of the training options they stand for (``tile_size``,
``batch_size``, ``augment`` …), so ``train --auto`` can pass a user's options through.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ..options import Options, option

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
    """Seconds in ``"90s"``, ``"10min"``, ``"1.5h"``, ``"1h30min"``; a number is seconds (as it is).

    Examples
    --------
    >>> parse_duration("10min"), parse_duration("1h30m"), parse_duration(45)
    (600.0, 5400.0, 45.0)
    >>> parse_duration("10")
    Traceback (most recent call last):
    ...
    ValueError: expected a duration with a unit such as 90s, 10min or 1h, got '10'
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        pos, seconds = 0, 0.0
        while pos < len(text):
            m = _PART.match(text, pos)
            if m is None or m.group(2) not in _UNITS:
                raise ValueError(f"expected a duration with a unit such as 90s, 10min or 1h, got {value!r}")
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text:
            raise ValueError(f"expected a duration with a unit such as 90s, 10min or 1h, got {value!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"expected a duration > 0, got {value!r}")
    return seconds


def _whole(value: Any) -> int:
    """A whole number (``"192"`` from the command line, or 192)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


def _real(value: Any) -> float:
    """A finite number (``"0.8"`` from the command line, or 0.8)."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _pixel_size(value: Any) -> float:
    from ..imaging.micrograph import parse_length

    return parse_length(value, what="pixel size")


def _device_kind(value: Any) -> str:
    """``"cpu"`` or ``"gpu"`` from a device as ``defectlab train --device`` spells it (cuda, cuda:N, mps)."""
    text = str(value).strip().lower()
    return "gpu" if text.startswith("cuda") or text == "mps" else text


def _augment_spec(value: Any) -> str:
    from ..preparation.augment import Augment

    Augment.parse(str(value))  # raises ValueError naming the bad part
    return str(value)


@dataclass(frozen=True, slots=True)
class PlanOptions(Options):
    """What the plan decides from the data unless given, and how it decides.

    Examples
    --------
    >>> PlanOptions(tile_size="192", time_budget_s="10min").tile_size, PlanOptions(time_budget_s="10min").time_budget_s
    (192, 600.0)
    >>> PlanOptions(arch="maskrcnn")
    Traceback (most recent call last):
    ...
    ValueError: plan: arch: expected one of unet, stardist; got 'maskrcnn'
    """

    verb: ClassVar[str] = "plan"

    tile_size: int | None = option(
        None, help="Training crop and prediction tile, px (default: from the largest defects, with context).",
        cli="--tile", convert=_whole, min=32, metavar="PX")
    overlap: int | None = option(
        None, help="Least overlap of prediction tiles, px (default: the largest defect, so none is cut).",
        convert=_whole, min=0, metavar="PX")
    normalization: str | None = option(
        None, help="Intensity normalization (default: percentile clipping per image, full bit depth kept).",
        choices=NORMALIZATIONS)
    augment: str | None = option(
        None, help="Augmentations, e.g. flip,rot90,gamma=0.8:1.25 (default: what suits the data).",
        convert=_augment_spec, metavar="SPEC")
    arch: str | None = option(
        None, help="Architecture (default: stardist when many defects touch, else unet).", choices=ARCHITECTURES)
    init: str | None = option(
        None, help="Starting weights: synthetic (the shipped pretrained U-Net), scratch, or a model folder "
                   "(default: synthetic for a U-Net of defects it learned, else scratch).", metavar="MODEL")
    batch_size: int | None = option(
        None, help="Crops per training step (default: about half a megapixel on a CPU).", convert=_whole, min=1,
        metavar="N")
    steps: int | None = option(
        None, help="Training steps (default: what the time budget holds).", convert=_whole, min=1, metavar="N")
    time_budget_s: float | None = option(
        None, help="Training time budget: 90s, 10min, 1h (default: 10min on a CPU, 20min on a GPU).", cli="--time",
        convert=parse_duration, metavar="DURATION")
    device: str = option(
        "cpu", help="What the training runs on: cpu or gpu (cuda, cuda:N and mps count as gpu).",
        choices=DEVICES, convert=_device_kind)
    step_seconds: float | None = option(
        None, help="Measured seconds per training step at the planned tile and batch (default: estimated).",
        convert=_real, above=0, metavar="S")
    context: float = option(
        3.0, help="The tile is at least this many times the largest defect's extent.", min=1.0)
    touching: float = option(
        0.15, help="Share of touching or overlapping defects from which the instance model is chosen.", min=0.0,
        max=1.0)
    pixel_size: float | None = option(
        None, help="Pixel size, overriding the files' calibration: 0.38nm, 3.8Å (a bare number is nm).",
        convert=_pixel_size, metavar="LENGTH")
    line_width: float = option(3.0, help="Width in px of polyline (dislocation line) masks.", above=0, metavar="PX")

    def given(self) -> dict[str, Any]:
        """The choices given (not left to the data): name -> value."""
        return {name: getattr(self, name) for name in _CHOICES if getattr(self, name) is not None}


#: The fields that are choices of the plan (None: decided from the data).
_CHOICES = ("tile_size", "overlap", "normalization", "augment", "arch", "init", "batch_size", "steps",
            "time_budget_s")
