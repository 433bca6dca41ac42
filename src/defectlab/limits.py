"""Limits on what defectlab reads from an export: image sizes, coordinates, nesting, file sizes.

Exports come from strangers, hand edits and truncated downloads. Each limit below has a
default that no honest labeling export comes near, and stops a file that would make
defectlab allocate terabytes, recurse without end or compute with meaningless numbers.
Going over a limit is a :class:`~defectlab.errors.ParseError` naming the file, the place,
the limit and how to raise it.

=========================  ===============  ====================================================
limit                      default          what it bounds
=========================  ===============  ====================================================
``max_image_side``         65,536 px        the width or height of an image or mask, declared
                                            in an export or read from an image header
``max_image_pixels``       1,000,000,000    width × height of one image or mask (1 Gpx: a
                                            uint8 mask of it is 1 GB, int32 instance ids 4 GB)
``max_coordinate``         10,000,000       the absolute value of a coordinate, radius or
                                            size in px, and of a rotation in degrees
``max_nesting_depth``      100              nesting of JSON arrays/objects and XML elements
                                            (COCO, LabelMe, Labelbox, VIA and CVAT need < 10)
``max_file_bytes``         1 GiB            one annotation file (or zip member) read whole
``max_classes``            10,000           classes declared by a count or a largest index
                                            (YOLO ``nc``, class indices without ``names``)
``max_compression_ratio``  200              uncompressed / compressed size of a zip member
                                            over 1 MiB (real XML/JSON: 5–50; zip bombs ~1000)
=========================  ===============  ====================================================

Pillow refuses PNG/JPEG images over its own decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``, about 179 Mpx) before these limits are consulted; raise
that one in Pillow if your label images are larger.

Raising a limit
---------------
For a block of code (thread- and task-local)::

    import defectlab
    from defectlab import limits
    with limits.override(max_image_pixels=4_000_000_000, max_image_side=100_000):
        ds = defectlab.read("huge_montage.xml")

For the whole session (a notebook): ``limits.configure(max_image_side=100_000)``; for the
command line, environment variables named ``DEFECTLAB_`` + the upper-case name::

    DEFECTLAB_MAX_IMAGE_PIXELS=4000000000 defectlab convert export.zip --to unet --out unet

Examples
--------
>>> current().max_image_side
65536
>>> with override(max_image_side=100_000):
...     current().max_image_side
100000
>>> check_size_hw((600, 800))
>>> check_size_hw((10**6, 10**6))
Traceback (most recent call last):
...
ValueError: an image of 1000000 x 1000000 px (W x H) is over the limit of 65536 px per side (defectlab.limits: raise max_image_side with defectlab.limits.override(max_image_side=...) or the environment variable DEFECTLAB_MAX_IMAGE_SIDE)
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from typing import Any, Iterator

import numpy as np

from .errors import DefectlabError

__all__ = [
    "Limits", "DEFAULTS", "current", "override", "configure", "reset",
    "check_size_hw", "check_shape", "check_file_bytes", "nesting_depth", "hint",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force (see the module's table). All values are positive."""

    max_image_side: int = 65_536
    max_image_pixels: int = 1_000_000_000
    max_coordinate: float = 1e7
    max_nesting_depth: int = 100
    max_file_bytes: int = 1 << 30
    max_classes: int = 10_000
    max_compression_ratio: float = 200.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:
                raise ValueError(f"limits: expected a positive number for {f.name}, got {value!r}")


#: The built-in defaults (before environment variables and :func:`configure`).
DEFAULTS = Limits()

_ENV_PREFIX = "DEFECTLAB_"
_session: Limits | None = None
_local: ContextVar[Limits | None] = ContextVar("defectlab_limits", default=None)


def _from_env() -> Limits:
    changes: dict[str, Any] = {}
    for f in fields(Limits):
        text = os.environ.get(_ENV_PREFIX + f.name.upper())
        if text is None or not text.strip():
            continue
        try:
            value: float = float(text.replace("_", ""))
        except ValueError:
            raise DefectlabError(
                f"environment variable {_ENV_PREFIX + f.name.upper()}: expected a number, got {text!r}"
            ) from None
        changes[f.name] = int(value) if isinstance(getattr(DEFAULTS, f.name), int) and value.is_integer() else value
    try:
        return replace(DEFAULTS, **changes)
    except ValueError as err:
        raise DefectlabError(f"environment variables {_ENV_PREFIX}*: {err}") from None


def current() -> Limits:
    """The limits in force here: an :func:`override` block's, else the session's."""
    local = _local.get()
    if local is not None:
        return local
    global _session
    if _session is None:
        _session = _from_env()
    return _session


def _changed(base: Limits, changes: dict[str, Any]) -> Limits:
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"limits: unknown limit {unknown[0]!r}; the limits are {sorted(known)}")
    return replace(base, **changes)


@contextmanager
def override(**changes: Any) -> Iterator[Limits]:
    """Change limits for the ``with`` block (this thread / task only); yields the limits in force.

    Examples
    --------
    >>> with override(max_coordinate=1e9) as lim:
    ...     lim.max_coordinate, current().max_coordinate
    (1000000000.0, 1000000000.0)
    >>> current().max_coordinate
    10000000.0
    """
    token = _local.set(_changed(current(), changes))
    try:
        yield _local.get()  # type: ignore[misc]
    finally:
        _local.reset(token)


def configure(**changes: Any) -> Limits:
    """Change limits for the rest of the session (every thread); returns the new limits.

    Examples
    --------
    >>> old = current()
    >>> configure(max_nesting_depth=200).max_nesting_depth
    200
    >>> _ = configure(max_nesting_depth=old.max_nesting_depth)
    """
    global _session
    _session = _changed(_session or _from_env(), changes)
    return _session


def reset() -> Limits:
    """Back to the defaults (and the ``DEFECTLAB_*`` environment variables)."""
    global _session
    _session = _from_env()
    return _session


def hint(name: str) -> str:
    """How to raise the limit ``name`` (appended to every limit message)."""
    env = _ENV_PREFIX + name.upper()
    return (f"defectlab.limits: raise {name} with defectlab.limits.override({name}=...) "
            f"or the environment variable {env}")


def check_size_hw(size_hw: tuple[int, int], what: str = "an image") -> None:
    """Refuse an image (or mask) size over ``max_image_side`` or ``max_image_pixels``.

    Parameters
    ----------
    size_hw : (int, int)
        Height and width in px.
    what : str
        What has that size, for the message (``"an image"``, ``"a mask"``).

    Raises
    ------
    ValueError
        Over a limit; the message names the size, the limit and how to raise it.
    """
    lim = current()
    h, w = (int(v) for v in size_hw)
    if max(h, w) > lim.max_image_side:
        raise ValueError(f"{what} of {w} x {h} px (W x H) is over the limit of {lim.max_image_side} px "
                         f"per side ({hint('max_image_side')})")
    if h * w > lim.max_image_pixels:
        raise ValueError(f"{what} of {w} x {h} px (W x H) = {h * w:,} px is over the limit of "
                         f"{lim.max_image_pixels:,} px ({hint('max_image_pixels')})")


def check_shape(shape: Any) -> None:
    """Refuse a shape whose coordinates, radii, sizes or angle exceed ``max_coordinate``.

    Raises
    ------
    ValueError
        The first value over the limit, by name (``cx``, ``points_xy``, ``rotation_deg``, ...).

    Examples
    --------
    >>> from defectlab.model import Ellipse
    >>> check_shape(Ellipse(label="a", cx=5, cy=5, rx=1e300, ry=2))
    Traceback (most recent call last):
    ...
    ValueError: rx = 1e+300 is over the limit of 1e+07 in absolute value (defectlab.limits: raise max_coordinate with defectlab.limits.override(max_coordinate=...) or the environment variable DEFECTLAB_MAX_COORDINATE)
    """
    limit = current().max_coordinate
    for name in ("points_xy", "xyxy", "cx", "cy", "rx", "ry", "rotation_deg", "left", "top"):
        value = getattr(shape, name, None)
        if value is None:
            continue
        arr = np.asarray(value, dtype=np.float64)
        if arr.size and float(np.abs(arr).max()) > limit:
            worst = float(arr.ravel()[int(np.argmax(np.abs(arr)))])
            raise ValueError(f"{name} = {worst:g} is over the limit of {limit:g} in absolute value "
                             f"({hint('max_coordinate')})")
    bitmap = getattr(shape, "bitmap", None)
    if bitmap is not None:
        check_size_hw(bitmap.shape[:2], "a mask")


def check_file_bytes(n_bytes: int, what: str = "the file") -> None:
    """Refuse reading ``n_bytes`` into memory when over ``max_file_bytes``."""
    limit = current().max_file_bytes
    if n_bytes > limit:
        raise ValueError(f"{what} holds {n_bytes:,} bytes, over the limit of {limit:,} "
                         f"({hint('max_file_bytes')})")


def nesting_depth(value: Any, stop: int | None = None) -> int:
    """The nesting depth of JSON-like lists and dicts (a scalar is 0), without recursion.

    Stops counting once ``stop`` is passed (returns ``stop + 1``).

    >>> nesting_depth({"a": [1, [2]]}), nesting_depth(3)
    (3, 0)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if stop is not None and deepest > stop:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest
