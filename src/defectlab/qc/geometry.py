"""Geometry checks of single shapes: too few vertices, zero area, no pixels, self-intersection,
coordinates outside the image, tiny shapes.

Self-intersection is tested exactly on the drawn outline (not on pixels) by
:func:`self_intersections`: every pair of edges, vectorized, with the orientation test of
computational geometry — O(n²) for n vertices, which is fast for the n < 200 of hand-drawn
outlines.
"""

from __future__ import annotations

import numpy as np

from ..model import Box, Ellipse, Mask, Points, Polygon, Polyline, Shape
from .context import ItemData
from .findings import Finding

__all__ = ["distinct_vertices", "self_intersections", "geometry_findings"]

_EPS = 1e-9  # relative tolerance of the collinearity tests


def distinct_vertices(points_xy: np.ndarray) -> np.ndarray:
    """The vertices without consecutive repeats (the ring's closing repeat included).

    Examples
    --------
    >>> distinct_vertices(np.array([[0, 0], [0, 0], [1, 0], [1, 1], [0, 0]], float)).tolist()
    [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    if len(pts) < 2:
        return pts
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    if not keep.any():  # every vertex is the same point
        return pts[:1]
    return pts[keep]


def _cross(ox: np.ndarray, oy: np.ndarray, ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


def self_intersections(points_xy: np.ndarray) -> np.ndarray:
    """Pairs of edges of a closed polygon that cross or touch, other than at their shared vertex.

    Edge ``i`` runs from vertex ``i`` to vertex ``i + 1`` (the last one back to vertex 0).
    Consecutive repeated vertices are removed first. Two edges *cross* when each one's
    endpoints lie strictly on opposite sides of the other; they *touch* when an endpoint of
    one lies on the other (a polygon passing through one of its own vertices or edges).
    Adjacent edges that fold back over each other (a spike) also count.

    Parameters
    ----------
    points_xy : (N, 2) float array

    Returns
    -------
    (K, 2) int64 array
        Index pairs ``(i, j)``, ``i < j``, into the de-duplicated vertices' edges.

    Examples
    --------
    A bow tie crosses itself once; a square does not:

    >>> self_intersections(np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float)).tolist()
    [[0, 2]]
    >>> self_intersections(np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)).shape
    (0, 2)
    """
    pts = distinct_vertices(points_xy)
    n = len(pts)
    if n < 3:
        return np.empty((0, 2), dtype=np.int64)
    scale = float(np.ptp(pts, axis=0).max()) or 1.0
    eps = _EPS * scale * scale
    # all pairs at once for hand-drawn outlines; in blocks of rows for long traced ones
    rows = max(1, _MAX_PAIRS // n)
    found = [_pairs_hitting(pts, np.arange(i0, min(i0 + rows, n)), eps) for i0 in range(0, n, rows)]
    return np.concatenate(found).astype(np.int64) if found else np.empty((0, 2), dtype=np.int64)


_MAX_PAIRS = 250_000  # edge pairs tested at once (bounds the memory of long outlines)


def _pairs_hitting(pts: np.ndarray, first: np.ndarray, eps: float) -> np.ndarray:
    """The (i, j) pairs, ``i`` in ``first`` and ``j > i``, whose edges cross or touch."""
    n = len(pts)
    ax, ay = pts[:, 0], pts[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    # only edges whose bounding boxes meet can cross or touch: test those
    x_lo, x_hi = np.minimum(ax, bx) - eps, np.maximum(ax, bx) + eps
    y_lo, y_hi = np.minimum(ay, by) - eps, np.maximum(ay, by) + eps
    f = first[:, None]
    later = np.arange(n)[None, :] > f
    meet = later & (x_lo[f] <= x_hi[None, :]) & (x_lo[None, :] <= x_hi[f]) \
        & (y_lo[f] <= y_hi[None, :]) & (y_lo[None, :] <= y_hi[f])
    rows, j = np.nonzero(meet)
    i = first[rows]
    # orientation of each endpoint of edge j against edge i, and vice versa
    o1 = _cross(ax[i], ay[i], bx[i], by[i], ax[j], ay[j])
    o2 = _cross(ax[i], ay[i], bx[i], by[i], bx[j], by[j])
    o3 = _cross(ax[j], ay[j], bx[j], by[j], ax[i], ay[i])
    o4 = _cross(ax[j], ay[j], bx[j], by[j], bx[i], by[i])
    s1, s2, s3, s4 = (np.where(np.abs(o) <= eps, 0, np.sign(o)) for o in (o1, o2, o3, o4))
    crossing = (s1 * s2 < 0) & (s3 * s4 < 0)

    def on_segment(px, py, qx, qy, rx, ry):  # point r on segment p-q, given collinear
        return ((np.minimum(px, qx) - eps <= rx) & (rx <= np.maximum(px, qx) + eps)
                & (np.minimum(py, qy) - eps <= ry) & (ry <= np.maximum(py, qy) + eps))

    adjacent = (j == i + 1) | ((i == 0) & (j == n - 1))
    # for adjacent edges, the shared vertex touches trivially: only the far endpoints count
    share_ai_bj = (i == 0) & (j == n - 1)  # edge n-1 ends at vertex 0 where edge 0 starts
    t1 = (s1 == 0) & on_segment(ax[i], ay[i], bx[i], by[i], ax[j], ay[j]) & ~(adjacent & ~share_ai_bj)
    t2 = (s2 == 0) & on_segment(ax[i], ay[i], bx[i], by[i], bx[j], by[j]) & ~share_ai_bj
    t3 = (s3 == 0) & on_segment(ax[j], ay[j], bx[j], by[j], ax[i], ay[i]) & ~share_ai_bj
    t4 = (s4 == 0) & on_segment(ax[j], ay[j], bx[j], by[j], bx[i], by[i]) & ~(adjacent & ~share_ai_bj)
    hit = crossing | t1 | t2 | t3 | t4
    return np.stack([i[hit], j[hit]], axis=1)


def _collinear(points_xy: np.ndarray) -> bool:
    """True when all points lie on one line (or are one point)."""
    pts = np.asarray(points_xy, dtype=np.float64)
    d = pts - pts[0]
    far = d[np.argmax(np.hypot(d[:, 0], d[:, 1]))]
    length = float(np.hypot(*far))
    if length == 0:
        return True
    cross = np.abs(d[:, 0] * far[1] - d[:, 1] * far[0])
    return bool(cross.max() <= _EPS * length * length)


def _geometry_box(shape: Shape) -> tuple[float, float, float, float]:
    if isinstance(shape, Mask):  # the set pixels, not the bitmap's frame
        rows = np.flatnonzero(shape.bitmap.any(axis=1))
        cols = np.flatnonzero(shape.bitmap.any(axis=0))
        if rows.size == 0:
            return shape.bbox_xyxy()
        return (float(shape.left + cols[0]), float(shape.top + rows[0]),
                float(shape.left + cols[-1] + 1), float(shape.top + rows[-1] + 1))
    return shape.bbox_xyxy()


def geometry_findings(data: ItemData, *, min_area_px: float, outside_tolerance_px: float) -> list[Finding]:
    """Geometry findings of every shape of one item.

    Returns ``shape-too-few-vertices``, ``shape-zero-area``, ``shape-no-pixels``,
    ``shape-self-intersecting``, ``shape-outside-image`` and ``shape-tiny`` findings, at most
    one of the first three per shape (the most specific). Shapes found degenerate or
    self-intersecting are added to ``data.skip_edges``.
    """
    item = data.item
    h, w = item.size_hw
    out: list[Finding] = []
    for index, shape in enumerate(item.shapes):
        if shape.kind == "tag":
            continue
        label = shape.label
        box = _geometry_box(shape)

        def add(code: str, message: str, value: float | None = None, related=()) -> None:
            out.append(Finding(code, item.name, message, shape=index, label=label, related=related,
                               box_xyxy=box, value=value))

        degenerate = False
        if isinstance(shape, (Polygon, Polyline)):
            need = 3 if isinstance(shape, Polygon) else 2
            n_distinct = len(np.unique(shape.points_xy, axis=0))
            if n_distinct < need:
                add("shape-too-few-vertices",
                    f"{shape.kind} with {n_distinct} distinct vertices (needs {need})", float(n_distinct))
                degenerate = True
        if not degenerate and shape.is_area:
            if isinstance(shape, Polygon):
                zero = _collinear(shape.points_xy)
            elif isinstance(shape, (Ellipse, Box, Mask)):
                zero = shape.area() <= 0
            else:  # pragma: no cover - every area shape is listed above
                zero = False
            if zero:
                add("shape-zero-area", f"{shape.kind} encloses no area", 0.0)
                degenerate = True
            elif data.area_px(index) == 0:
                add("shape-no-pixels", f"{shape.kind} of area {shape.area():.2f} px² covers no pixel center "
                    "(too thin or outside the image)", 0.0)
                degenerate = True
            elif data.area_px(index) < min_area_px:
                add("shape-tiny", f"covers {data.area_px(index)} px, fewer than {min_area_px:g}",
                    float(data.area_px(index)))
        if isinstance(shape, Polyline) and not degenerate and data.area_px(index) == 0:
            add("shape-no-pixels", "polyline covers no pixel center (outside the image)", 0.0)
            degenerate = True
        if isinstance(shape, Polygon) and not degenerate:
            pairs = self_intersections(shape.points_xy)
            if len(pairs):
                add("shape-self-intersecting",
                    f"the outline crosses or touches itself at {len(pairs)} place(s) "
                    f"(edges {', '.join(f'{a}/{b}' for a, b in pairs[:3].tolist())}"
                    f"{', …' if len(pairs) > 3 else ''})", float(len(pairs)))
                data.skip_edges.add(index)
        if degenerate:
            data.skip_edges.add(index)
        if isinstance(shape, (Points, Polygon, Polyline)):
            xs, ys = shape.points_xy[:, 0], shape.points_xy[:, 1]
            overshoot = float(max(0.0, -xs.min(), -ys.min(), xs.max() - w, ys.max() - h))
        else:
            x1, y1, x2, y2 = box
            overshoot = float(max(0.0, -x1, -y1, x2 - w, y2 - h))
        if overshoot > outside_tolerance_px:
            add("shape-outside-image", f"reaches {overshoot:.1f} px outside the image ({w}x{h}, WxH)", overshoot)
    return out
