"""Pixels → polygons, and any shape → polygons, for formats that only know polygons.

:func:`mask_to_polygons` traces a bitmap with marching squares at level 0.5 (scikit-image's
``find_contours``): every vertex lies halfway between a set and an unset pixel center, so
rasterizing the traced polygon with our center rule gives back the very same pixels
(``tolerance=0``). A positive ``tolerance`` simplifies the ring (Douglas–Peucker) so that no
vertex moves more than that many pixels — fewer vertices, nearly the same pixels.

:func:`shape_polygons` turns any area shape into polygon rings: a polygon as drawn, an
ellipse as an *area-preserving* polygon within ``tolerance`` px of the ellipse, a box as its
rotated corners, a polyline (e.g. a dislocation line, which COCO and YOLO cannot express) as
the outline of its line mask, a mask as its traced contours.
"""

from __future__ import annotations

import math

import numpy as np

from ..model.shapes import Box, Ellipse, Mask, Polygon, Polyline, Shape
from .shapes import DEFAULT_LINE_WIDTH, rasterize

__all__ = ["mask_to_polygons", "ellipse_polygon", "shape_polygons"]


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0


def mask_to_polygons(
    bitmap: np.ndarray, *, x0: int = 0, y0: int = 0, tolerance: float = 0.0
) -> tuple[list[np.ndarray], bool]:
    """Outer boundary rings of the regions of a bool bitmap, in image coordinates.

    Parameters
    ----------
    bitmap : (h, w) bool array
        The pixels; its top-left pixel is column ``x0``, row ``y0`` of the image.
    x0, y0 : int
        Offset of the bitmap in the image.
    tolerance : float
        Douglas–Peucker tolerance in px (0 keeps every vertex: exact).

    Returns
    -------
    rings : list of (N, 2) float64 arrays
        One closed ring (not repeated at the end) per 8-connected region, largest first.
    has_holes : bool
        True when some region encloses background: the rings alone cannot express it.

    Examples
    --------
    >>> import numpy as np
    >>> rings, holes = mask_to_polygons(np.ones((2, 3), bool), x0=10, y0=5)
    >>> len(rings), holes, rings[0].min(axis=0).tolist(), rings[0].max(axis=0).tolist()
    (1, False, [10.0, 5.0], [13.0, 7.0])
    """
    from skimage.measure import approximate_polygon, find_contours

    bm = np.asarray(bitmap, dtype=bool)
    if not bm.any():
        return [], False
    padded = np.pad(bm, 1).astype(np.float64)
    outer: list[tuple[float, np.ndarray]] = []
    has_holes = False
    # fully_connected="high": diagonal neighbours join one region, as 8-connectivity does
    for contour in find_contours(padded, 0.5, fully_connected="high"):
        ring = contour[:-1, ::-1] + np.array([x0 - 0.5, y0 - 0.5])  # (row, col) in padded -> (x, y)
        if tolerance > 0 and len(ring) > 4:
            simplified = approximate_polygon(np.vstack([ring, ring[:1]]), tolerance)[:-1]
            ring = simplified if len(simplified) >= 3 else ring
        area = _signed_area(ring)
        # find_contours walks around foreground with it on the left of a y-up view: outer rings
        # and holes come out with opposite orientation
        if area > 0:
            outer.append((area, ring))
        elif area < 0:
            has_holes = True
    outer.sort(key=lambda t: -t[0])
    return [ring for _, ring in outer], has_holes


def ellipse_polygon(ellipse: Ellipse, *, tolerance: float = 0.05) -> np.ndarray:
    """An (N, 2) polygon with the ellipse's exact area, no point farther than ``tolerance`` px.

    The vertex count makes the sagitta ``r (1 - cos(pi / n))`` of the larger radius at most
    ``tolerance``; the vertices lie on the ellipse scaled by ``sqrt(2 pi / (n sin(2 pi / n)))``
    so that the polygon's area equals ``pi rx ry``.

    Examples
    --------
    >>> import math
    >>> from defectlab.model import Ellipse
    >>> p = ellipse_polygon(Ellipse(label="c", cx=0, cy=0, rx=10, ry=5))
    >>> x, y = p[:, 0], p[:, 1]
    >>> round(abs(float((x * np.roll(y, -1) - y * np.roll(x, -1)).sum())) / 2 / (math.pi * 50), 9)
    1.0
    """
    r = max(ellipse.rx, ellipse.ry)
    n = 16 if r <= tolerance else max(16, math.ceil(math.pi / math.acos(max(1 - tolerance / r, -1.0))))
    scale = math.sqrt(2 * math.pi / (n * math.sin(2 * math.pi / n)))
    t = 2 * math.pi * np.arange(n) / n
    u, v = scale * ellipse.rx * np.cos(t), scale * ellipse.ry * np.sin(t)
    a = math.radians(ellipse.rotation_deg)
    ca, sa = math.cos(a), math.sin(a)
    return np.stack([ellipse.cx + u * ca - v * sa, ellipse.cy + u * sa + v * ca], axis=1)


def shape_polygons(
    shape: Shape,
    size_hw: tuple[int, int],
    *,
    line_width: float = DEFAULT_LINE_WIDTH,
    tolerance: float = 0.05,
) -> tuple[list[np.ndarray], bool]:
    """Polygon rings for any area shape or polyline; ``([], False)`` for points and tags.

    Returns ``(rings, has_holes)`` as :func:`mask_to_polygons` does. Polygons, ellipses and
    boxes keep their geometry (not clipped to the image); polylines and masks are traced
    from their pixels in an image of ``size_hw``.
    """
    if isinstance(shape, Polygon):
        return [np.array(shape.points_xy)], False
    if isinstance(shape, Ellipse):
        return [ellipse_polygon(shape, tolerance=tolerance)], False
    if isinstance(shape, Box):
        return [shape.corners_xy()], False
    if isinstance(shape, (Polyline, Mask)):
        crop = rasterize(shape, size_hw, line_width=line_width)
        return mask_to_polygons(crop.bitmap, x0=crop.x0, y0=crop.y0)
    return [], False
