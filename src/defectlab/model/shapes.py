"""Shape types: the geometry a labeler drew, exactly as it was written.

Coordinates are absolute float64 pixels, x to the right, y down; ``(0, 0)`` is the
top-left corner of the top-left pixel, so pixel (column ``c``, row ``r``) covers
``[c, c+1) x [r, r+1)`` and its center is ``(c + 0.5, r + 0.5)``. Nothing is rounded
on read. Rotations are in degrees, clockwise as seen on screen (y down), about the
shape's center — the convention of CVAT.

Every shape carries the same annotation fields (all keyword-only):

``label``       the label (class) name
``z_order``     drawing order; higher is on top
``occluded``    the labeler marked the object as partly hidden
``group``       group id (objects drawn as parts of one), or None
``source``      who drew it ("manual", "auto", "semi-auto", "file", ...)
``attributes``  attribute name -> value, as strings

Examples
--------
>>> import numpy as np
>>> p = Polygon(label="cavity", points_xy=[(0, 0), (4, 0), (4, 3)])
>>> p.area()
6.0
>>> Ellipse(label="loop", cx=10, cy=10, rx=3, ry=2, rotation_deg=90).bbox_xyxy()
(8.0, 7.0, 12.0, 13.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping

import numpy as np

__all__ = [
    "Shape",
    "Polygon",
    "Polyline",
    "Points",
    "Ellipse",
    "Box",
    "Mask",
    "Tag",
    "SHAPE_KINDS",
]


def _points_array(value: Any, kind: str, min_points: int) -> np.ndarray:
    arr = np.array(value, dtype=np.float64, copy=True)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{kind}: expected points_xy of shape (N, 2), got shape {arr.shape}")
    if len(arr) < min_points:
        raise ValueError(f"{kind}: expected at least {min_points} points, got {len(arr)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{kind}: expected finite coordinates, got {arr[~np.isfinite(arr).all(1)][0].tolist()}")
    arr.setflags(write=False)
    return arr


def _finite(kind: str, **values: float) -> None:
    for name, v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"{kind}: expected a finite number for {name}, got {v!r}")


def _rotate_xy(x: np.ndarray, y: np.ndarray, cx: float, cy: float, deg: float):
    """Rotate points clockwise on screen (y down) by ``deg`` degrees about (cx, cy)."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    dx, dy = x - cx, y - cy
    return cx + dx * c - dy * s, cy + dx * s + dy * c


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Shape:
    """Base of all shapes; holds the annotation fields common to every shape."""

    kind: ClassVar[str] = "shape"
    #: True when the shape covers an area (it has pixels in a mask).
    is_area: ClassVar[bool] = False

    label: str
    z_order: int = 0
    occluded: bool = False
    group: int | None = None
    source: str = "manual"
    attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str):
            raise ValueError(f"{self.kind}: expected a label name (str), got {self.label!r}")
        object.__setattr__(self, "attributes", dict(self.attributes))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not (np.shape(a) == np.shape(b) and np.array_equal(a, b)):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # shapes hold arrays

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        """Tight bounds ``(x1, y1, x2, y2)`` of the geometry, in pixels (float)."""
        raise NotImplementedError

    def area(self) -> float:
        """Exact geometric area in px² (0 for shapes that are not areas)."""
        return 0.0

    def replace(self, **changes: Any) -> "Shape":
        """A copy with some fields changed, e.g. ``shape.replace(label="void")``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return type(self)(**values)


def _bounds(points: np.ndarray) -> tuple[float, float, float, float]:
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Polygon(Shape):
    """A closed polygon. ``points_xy``: (N, 2) float64, N >= 3, not repeated at the end."""

    kind: ClassVar[str] = "polygon"
    is_area: ClassVar[bool] = True
    points_xy: np.ndarray

    def __post_init__(self) -> None:
        Shape.__post_init__(self)
        object.__setattr__(self, "points_xy", _points_array(self.points_xy, self.kind, 3))

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        return _bounds(self.points_xy)

    def area(self) -> float:
        """Area by the shoelace formula (absolute value; self-intersecting parts may cancel)."""
        x, y = self.points_xy[:, 0], self.points_xy[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Polyline(Shape):
    """An open line through ``points_xy`` (N, 2), N >= 2: e.g. a dislocation line."""

    kind: ClassVar[str] = "polyline"
    points_xy: np.ndarray

    def __post_init__(self) -> None:
        Shape.__post_init__(self)
        object.__setattr__(self, "points_xy", _points_array(self.points_xy, self.kind, 2))

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        return _bounds(self.points_xy)

    def length(self) -> float:
        """Length of the line in px."""
        d = np.diff(self.points_xy, axis=0)
        return float(np.hypot(d[:, 0], d[:, 1]).sum())


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Points(Shape):
    """Single points (N, 2), N >= 1. ``names``: optional per-point names (skeleton nodes)."""

    kind: ClassVar[str] = "points"
    points_xy: np.ndarray
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        Shape.__post_init__(self)
        object.__setattr__(self, "points_xy", _points_array(self.points_xy, self.kind, 1))
        if self.names is not None:
            names = tuple(self.names)
            if len(names) != len(self.points_xy):
                raise ValueError(
                    f"points: expected one name per point ({len(self.points_xy)}), got {len(names)}"
                )
            object.__setattr__(self, "names", names)

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        return _bounds(self.points_xy)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Ellipse(Shape):
    """An ellipse with center ``(cx, cy)``, radii ``rx`` (along x before rotation), ``ry``,
    rotated clockwise on screen by ``rotation_deg`` about its center."""

    kind: ClassVar[str] = "ellipse"
    is_area: ClassVar[bool] = True
    cx: float
    cy: float
    rx: float
    ry: float
    rotation_deg: float = 0.0

    def __post_init__(self) -> None:
        Shape.__post_init__(self)
        for name in ("cx", "cy", "rx", "ry", "rotation_deg"):
            object.__setattr__(self, name, float(getattr(self, name)))
        _finite(self.kind, cx=self.cx, cy=self.cy, rx=self.rx, ry=self.ry, rotation_deg=self.rotation_deg)
        if self.rx < 0 or self.ry < 0:
            raise ValueError(f"ellipse: expected radii >= 0, got rx={self.rx}, ry={self.ry}")

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        t = math.radians(self.rotation_deg)
        hw = math.hypot(self.rx * math.cos(t), self.ry * math.sin(t))
        hh = math.hypot(self.rx * math.sin(t), self.ry * math.cos(t))
        return self.cx - hw, self.cy - hh, self.cx + hw, self.cy + hh

    def area(self) -> float:
        return math.pi * self.rx * self.ry


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Box(Shape):
    """An axis-aligned box ``xyxy = (x1, y1, x2, y2)`` (x1 <= x2, y1 <= y2), rotated
    clockwise on screen by ``rotation_deg`` about its center."""

    kind: ClassVar[str] = "box"
    is_area: ClassVar[bool] = True
    xyxy: tuple[float, float, float, float]
    rotation_deg: float = 0.0

    def __post_init__(self) -> None:
        Shape.__post_init__(self)
        if len(tuple(self.xyxy)) != 4:
            raise ValueError(f"box: expected xyxy with 4 numbers, got {self.xyxy!r}")
        x1, y1, x2, y2 = (float(v) for v in self.xyxy)
        object.__setattr__(self, "xyxy", (x1, y1, x2, y2))
        object.__setattr__(self, "rotation_deg", float(self.rotation_deg))
        _finite(self.kind, x1=x1, y1=y1, x2=x2, y2=y2, rotation_deg=self.rotation_deg)
        if x2 < x1 or y2 < y1:
            raise ValueError(f"box: expected x1 <= x2 and y1 <= y2, got xyxy={self.xyxy}")

    def corners_xy(self) -> np.ndarray:
        """The 4 corners (4, 2) after rotation, clockwise on screen from the top-left one."""
        x1, y1, x2, y2 = self.xyxy
        x = np.array([x1, x2, x2, x1])
        y = np.array([y1, y1, y2, y2])
        if self.rotation_deg:
            x, y = _rotate_xy(x, y, (x1 + x2) / 2, (y1 + y2) / 2, self.rotation_deg)
        return np.stack([x, y], axis=1)

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        if not self.rotation_deg:
            return self.xyxy
        return _bounds(self.corners_xy())

    def area(self) -> float:
        x1, y1, x2, y2 = self.xyxy
        return (x2 - x1) * (y2 - y1)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Mask(Shape):
    """A bitmap ``bitmap`` (h, w) bool whose top-left pixel is at column ``left``, row ``top``."""

    kind: ClassVar[str] = "mask"
    is_area: ClassVar[bool] = True
    bitmap: np.ndarray
    left: int = 0
    top: int = 0

    def __post_init__(self) -> None:
        Shape.__post_init__(self)
        bm = np.array(self.bitmap, dtype=bool, copy=True)
        if bm.ndim != 2:
            raise ValueError(f"mask: expected a 2-D bitmap, got shape {bm.shape}")
        bm.setflags(write=False)
        object.__setattr__(self, "bitmap", bm)
        for name in ("left", "top"):
            v = getattr(self, name)
            if int(v) != v:
                raise ValueError(f"mask: expected an integer {name}, got {v!r}")
            object.__setattr__(self, name, int(v))

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        h, w = self.bitmap.shape
        return float(self.left), float(self.top), float(self.left + w), float(self.top + h)

    def area(self) -> float:
        return float(np.count_nonzero(self.bitmap))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Tag(Shape):
    """An image-level tag: a label with no geometry."""

    kind: ClassVar[str] = "tag"

    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        raise ValueError("tag: an image-level tag has no geometry")


#: Every shape type by its kind name.
SHAPE_KINDS: dict[str, type[Shape]] = {
    cls.kind: cls for cls in (Polygon, Polyline, Points, Ellipse, Box, Mask, Tag)
}
