"""Exact rasterization of one shape into a bitmap cropped to its bounding box.

The rule
--------
A pixel (column ``c``, row ``r``) belongs to a shape exactly when its center
``(c + 0.5, r + 0.5)`` lies inside the shape. A center lying exactly on an edge:

* polygons and boxes (the "top-left" rule of GPU rasterizers): a center on a *left* or
  *top* edge is inside, on a *right* or *bottom* edge outside. Two shapes that share an
  edge therefore cover every pixel center along it exactly once — no gaps, no double
  counting. Inside means a non-zero winding number (the SVG default that CVAT draws
  with), so self-touching and self-overlapping polygons are filled the way they look.
* ellipses: centers on the boundary are inside (``(u/rx)² + (v/ry)² <= 1``).
* polylines: centers whose distance to the line is at most ``line_width / 2``.
* masks: their own pixels. Points and tags have no area and give an empty bitmap.

Why not an existing rasterizer: ``cv2.fillPoly`` and the workshop notebook truncate
vertices to integers and add boundary pixels (+21 % area on a 5 px cavity); pycocotools
rasterizes at 5× upsampling with its own sub-pixel offsets; ``skimage.draw.polygon`` has
no stated rule for centers on an edge and tests every pixel against every edge. This
module is exact, O(pixels in the bounding box + edge crossings), and vectorized.

Every function works inside the shape's bounding box only, clipped to the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.shapes import Box, Ellipse, Mask, Points, Polygon, Polyline, Shape, Tag

__all__ = ["Crop", "rasterize", "polygon_crop", "ellipse_crop", "ellipse_window", "polyline_crop", "DEFAULT_LINE_WIDTH"]

#: Default width in px of the mask drawn for a polyline (e.g. a dislocation line).
DEFAULT_LINE_WIDTH = 3.0


@dataclass(frozen=True, slots=True)
class Crop:
    """A bool ``bitmap`` (h, w) whose top-left pixel is column ``x0``, row ``y0`` of the image.

    Examples
    --------
    >>> import numpy as np
    >>> c = Crop(2, 3, np.ones((2, 4), bool))
    >>> c.area, c.box_xyxy()
    (8, (2, 3, 6, 5))
    """

    x0: int
    y0: int
    bitmap: np.ndarray

    @property
    def area(self) -> int:
        """Number of pixels set."""
        return int(np.count_nonzero(self.bitmap))

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the image that the bitmap covers."""
        h, w = self.bitmap.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def box_xyxy(self) -> tuple[int, int, int, int] | None:
        """Pixel-edge bounds ``(x1, y1, x2, y2)`` of the set pixels (x2, y2 exclusive); None if empty."""
        rows = np.flatnonzero(self.bitmap.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(self.bitmap.any(axis=0))
        return (
            self.x0 + int(cols[0]), self.y0 + int(rows[0]),
            self.x0 + int(cols[-1]) + 1, self.y0 + int(rows[-1]) + 1,
        )

    def tight(self) -> "Crop":
        """The same pixels in the smallest bitmap that holds them (an empty crop stays empty)."""
        box = self.box_xyxy()
        if box is None:
            return _EMPTY
        x1, y1, x2, y2 = box
        bm = self.bitmap[y1 - self.y0 : y2 - self.y0, x1 - self.x0 : x2 - self.x0]
        return Crop(x1, y1, bm)

    def to_full(self, size_hw: tuple[int, int]) -> np.ndarray:
        """The bitmap placed in an (H, W) bool image."""
        out = np.zeros(size_hw, dtype=bool)
        out[self.slices] = self.bitmap
        return out


_EMPTY = Crop(0, 0, np.zeros((0, 0), dtype=bool))


def _centers_in(x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
    """First and last column and row ``(c0, r0, c1, r1)`` whose centers lie in [x1, x2] x [y1, y2]."""
    return math.ceil(x1 - 0.5), math.ceil(y1 - 0.5), math.floor(x2 - 0.5), math.floor(y2 - 0.5)


def _window(x1: float, y1: float, x2: float, y2: float, size_hw: tuple[int, int]):
    """Columns/rows whose centers lie in [x1, x2] x [y1, y2], clipped to the image.

    Returns (c0, r0, w, h) with w or h <= 0 when nothing is inside.
    """
    h_img, w_img = size_hw
    c0, r0, c1, r1 = _centers_in(x1, y1, x2, y2)
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, w_img - 1), min(r1, h_img - 1)
    return c0, r0, c1 - c0 + 1, r1 - r0 + 1


def _ellipse_extent(rx: float, ry: float, rotation_deg: float) -> tuple[float, float, float, float]:
    """Half width and half height of the rotated ellipse's bounding box, and cos, sin of the rotation."""
    t = math.radians(rotation_deg)
    cos_t, sin_t = math.cos(t), math.sin(t)
    return math.hypot(rx * cos_t, ry * sin_t), math.hypot(rx * sin_t, ry * cos_t), cos_t, sin_t


def ellipse_window(cx: float, cy: float, rx: float, ry: float, rotation_deg: float) -> tuple[int, int, int, int]:
    """The pixels :func:`ellipse_crop` tests, not clipped to an image: first and last column
    and row ``(c0, r0, c1, r1)`` whose centers lie in the ellipse's bounding box.

    Whether a center inside this window belongs to the ellipse depends only on the
    differences ``center - (cx, cy)``, so an ellipse moved by whole pixels, with its center's
    coordinates moved exactly, and whose window moved by the same pixels, covers the same
    pixels moved (what tiling relies on instead of rasterizing it again).

    >>> ellipse_window(10.0, 10.0, 3.0, 2.0, 0.0)
    (7, 8, 12, 11)
    """
    hw, hh, _, _ = _ellipse_extent(rx, ry, rotation_deg)
    return _centers_in(cx - hw, cy - hh, cx + hw, cy + hh)


def polygon_crop(points_xy: np.ndarray, size_hw: tuple[int, int]) -> Crop:
    """Pixels whose centers are inside the polygon (non-zero winding, top-left edge rule).

    Parameters
    ----------
    points_xy : (N, 2) float array
        Vertices in pixel coordinates, N >= 3 (the polygon is closed implicitly).
    size_hw : (int, int)
        Image height and width; the result is clipped to it.

    Examples
    --------
    >>> import numpy as np
    >>> polygon_crop(np.array([[1.0, 1.0], [4.0, 1.0], [4.0, 3.0], [1.0, 3.0]]), (8, 8)).area
    6
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    c0, r0, w, h = _window(lo[0], lo[1], hi[0], hi[1], size_hw)
    if w <= 0 or h <= 0:
        return _EMPTY
    xa, ya = pts[:, 0], pts[:, 1]
    xb, yb = np.concatenate((xa[1:], xa[:1])), np.concatenate((ya[1:], ya[:1]))  # np.roll(-1), cheaper
    down = yb > ya  # edge direction gives the sign of its winding contribution
    ylo, yhi = np.minimum(ya, yb), np.maximum(ya, yb)
    # rows whose center yc satisfies ylo <= yc < yhi (half-open: top edges in, bottom edges out)
    first = np.maximum(np.ceil(ylo - 0.5).astype(np.int64), r0)
    last = np.minimum(np.ceil(yhi - 0.5).astype(np.int64) - 1, r0 + h - 1)
    counts = np.maximum(last - first + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return Crop(c0, r0, np.zeros((h, w), dtype=bool))
    edge = np.repeat(np.arange(len(pts)), counts)
    starts = np.cumsum(counts) - counts
    rows = first[edge] + (np.arange(total) - starts[edge])
    yc = rows + 0.5
    # interpolate from the edge's upper end, so an edge shared by two polygons (traversed in
    # opposite directions) gives bit-identical crossings and the tie rule stays exact
    x_top = np.where(down, xa, xb)
    x_bot = np.where(down, xb, xa)
    e_xt, e_yt = x_top[edge], ylo[edge]
    xc = e_xt + (yc - e_yt) * ((x_bot[edge] - e_xt) / (yhi[edge] - e_yt))
    # a crossing at x counts for every pixel whose center is at or right of it: c >= ceil(x - 0.5)
    col = np.clip(np.ceil(xc - 0.5) - c0, 0, w).astype(np.int64)
    weight = np.where(down[edge], 1.0, -1.0)
    acc = np.bincount((rows - r0) * (w + 1) + col, weights=weight, minlength=h * (w + 1))
    winding = np.cumsum(acc.reshape(h, w + 1)[:, :w], axis=1)
    return Crop(c0, r0, winding != 0)


def ellipse_crop(
    cx: float, cy: float, rx: float, ry: float, rotation_deg: float, size_hw: tuple[int, int]
) -> Crop:
    """Pixels whose centers satisfy ``(u/rx)² + (v/ry)² <= 1`` in the ellipse's own axes.

    The ellipse is rotated clockwise on screen (y down) by ``rotation_deg`` about its center.

    Examples
    --------
    >>> ellipse_crop(10.0, 10.0, 3.0, 3.0, 0.0, (32, 32)).area   # lattice points in a radius-3 disc
    32
    """
    if rx <= 0 or ry <= 0:
        return _EMPTY
    hw, hh, cos_t, sin_t = _ellipse_extent(rx, ry, rotation_deg)
    c0, r0, w, h = _window(cx - hw, cy - hh, cx + hw, cy + hh, size_hw)
    if w <= 0 or h <= 0:
        return _EMPTY
    dx = (np.arange(c0, c0 + w, dtype=np.float64) + 0.5 - cx)[None, :]
    dy = (np.arange(r0, r0 + h, dtype=np.float64) + 0.5 - cy)[:, None]
    # inverse rotation: (u, v) are the center's coordinates along the ellipse's own axes
    u = (dx * cos_t + dy * sin_t) / rx
    v = (dy * cos_t - dx * sin_t) / ry
    return Crop(c0, r0, u * u + v * v <= 1.0)


def polyline_crop(points_xy: np.ndarray, width: float, size_hw: tuple[int, int]) -> Crop:
    """Pixels whose centers lie within ``width / 2`` of the polyline (round caps and joins).

    Examples
    --------
    >>> import numpy as np
    >>> polyline_crop(np.array([[2.0, 4.5], [12.0, 4.5]]), 1.0, (10, 20)).area  # 10 px + a round cap at each end
    12
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    r = width / 2.0
    if r <= 0:
        return _EMPTY
    lo, hi = pts.min(axis=0) - r, pts.max(axis=0) + r
    c0, r0, w, h = _window(lo[0], lo[1], hi[0], hi[1], size_hw)
    if w <= 0 or h <= 0:
        return _EMPTY
    out = np.zeros((h, w), dtype=bool)
    for (xa, ya), (xb, yb) in zip(pts[:-1], pts[1:]):
        sc0, sr0, sw, sh = _window(min(xa, xb) - r, min(ya, yb) - r, max(xa, xb) + r, max(ya, yb) + r, size_hw)
        if sw <= 0 or sh <= 0:
            continue
        px = (np.arange(sc0, sc0 + sw, dtype=np.float64) + 0.5)[None, :]
        py = (np.arange(sr0, sr0 + sh, dtype=np.float64) + 0.5)[:, None]
        dx, dy = xb - xa, yb - ya
        length2 = dx * dx + dy * dy
        if length2 > 0:
            s = np.clip(((px - xa) * dx + (py - ya) * dy) / length2, 0.0, 1.0)
        else:
            s = np.zeros((1, 1))
        ex, ey = px - (xa + s * dx), py - (ya + s * dy)
        out[sr0 - r0 : sr0 - r0 + sh, sc0 - c0 : sc0 - c0 + sw] |= ex * ex + ey * ey <= r * r
    return Crop(c0, r0, out)


def _mask_crop(shape: Mask, size_hw: tuple[int, int]) -> Crop:
    h_img, w_img = size_hw
    bh, bw = shape.bitmap.shape
    x1, y1 = max(shape.left, 0), max(shape.top, 0)
    x2, y2 = min(shape.left + bw, w_img), min(shape.top + bh, h_img)
    if x2 <= x1 or y2 <= y1:
        return _EMPTY
    bm = shape.bitmap[y1 - shape.top : y2 - shape.top, x1 - shape.left : x2 - shape.left]
    return Crop(x1, y1, bm)


def rasterize(shape: Shape, size_hw: tuple[int, int], *, line_width: float = DEFAULT_LINE_WIDTH) -> Crop:
    """The pixels of ``shape`` in an image of ``size_hw``, as a :class:`Crop`.

    Parameters
    ----------
    shape : Shape
        Any shape; points and tags give an empty crop (they have no area).
    size_hw : (int, int)
        Image height and width; the crop is clipped to the image.
    line_width : float
        Width in px of the mask of a polyline.

    Returns
    -------
    Crop
        A bool bitmap over the shape's bounding box (clipped), with its offset.

    Examples
    --------
    >>> from defectlab.model import Ellipse
    >>> rasterize(Ellipse(label="cavity", cx=8, cy=8, rx=5, ry=5), (16, 16)).area
    80
    """
    if isinstance(shape, Polygon):
        return polygon_crop(shape.points_xy, size_hw)
    if isinstance(shape, Ellipse):
        return ellipse_crop(shape.cx, shape.cy, shape.rx, shape.ry, shape.rotation_deg, size_hw)
    if isinstance(shape, Box):
        return polygon_crop(shape.corners_xy(), size_hw)
    if isinstance(shape, Mask):
        return _mask_crop(shape, size_hw)
    if isinstance(shape, Polyline):
        return polyline_crop(shape.points_xy, line_width, size_hw)
    if isinstance(shape, (Points, Tag)):
        return _EMPTY
    raise TypeError(f"rasterize: expected a Shape, got {type(shape).__name__}")
