"""Geometry clipped to the image rectangle ``[0, w] x [0, h]`` (px, y down).

Clipping to the image edges does not change which pixel centers a shape covers inside the
image: the edges lie on whole numbers, the centers on halves. So a clipped shape
rasterizes to the same pixels as the original (see :mod:`defectlab.raster.shapes`) — but for
a center lying exactly on an edge that is cut, where the rounding of the crossing point
decides.

:func:`clip_ring`      a polygon ring, Sutherland–Hodgman (one ring out; where a concave
                       polygon leaves and re-enters the image, the pieces stay joined by
                       zero-width edges along the image border, which cover no pixel center)
:func:`clip_polyline`  an open line, Liang–Barsky per segment (a line that leaves and
                       re-enters the image comes out as several pieces)
"""

from __future__ import annotations

import numpy as np

__all__ = ["clip_ring", "clip_polyline"]


def clip_ring(ring: np.ndarray, w: float, h: float) -> np.ndarray:
    """The ring clipped to the image rectangle [0, w] x [0, h] (Sutherland–Hodgman).

    Parameters
    ----------
    ring : (N, 2) float array
        Polygon vertices ``x, y`` in px, not repeated at the end.
    w, h : float
        Image width and height in px.

    Returns
    -------
    (M, 2) float64 array
        The clipped ring without consecutive repeated vertices (nor vertices within 1e-9 of
        the image size of the previous one); empty (0, 2) when nothing of the polygon lies
        inside.

    Examples
    --------
    >>> clip_ring(np.array([[-6, 2], [4, 2], [4, 8], [-6, 8]], float), 10, 10).tolist()
    [[0.0, 2.0], [4.0, 2.0], [4.0, 8.0], [0.0, 8.0]]
    """
    pts = np.asarray(ring, dtype=np.float64)
    for axis, bound, keep_above in ((0, 0.0, True), (0, w, False), (1, 0.0, True), (1, h, False)):
        if len(pts) == 0:
            break
        inside = pts[:, axis] >= bound if keep_above else pts[:, axis] <= bound
        if inside.all():
            continue
        out = []
        prev, prev_in = pts[-1], inside[-1]
        for cur, cur_in in zip(pts, inside):
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = prev + t * (cur - prev)
                cross[axis] = bound
                out.append(cross)
            if cur_in:
                out.append(cur)
            prev, prev_in = cur, cur_in
        pts = np.array(out, dtype=np.float64).reshape(-1, 2)
    if len(pts):
        # consecutive repeats, and near-repeats where a vertex a rounding error inside an edge
        # meets its own crossing point (they would read as the outline touching itself)
        step = np.abs(pts - np.roll(pts, 1, axis=0)).max(axis=1)
        keep = step > 1e-9 * max(float(w), float(h), 1.0)
        pts = pts[keep] if keep.any() else pts[:1]
    return pts


def _clip_segment(a: np.ndarray, b: np.ndarray, w: float, h: float) -> tuple[float, float] | None:
    """Liang–Barsky: the parameter range ``[t0, t1]`` of segment a→b inside the rectangle, or None."""
    d = b - a
    t0, t1 = 0.0, 1.0
    for p, q in ((-d[0], a[0]), (d[0], w - a[0]), (-d[1], a[1]), (d[1], h - a[1])):
        if p == 0:
            if q < 0:  # parallel to this edge and outside it
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return t0, t1


def clip_polyline(points_xy: np.ndarray, w: float, h: float) -> list[np.ndarray]:
    """The parts of an open line inside the image rectangle [0, w] x [0, h].

    Parameters
    ----------
    points_xy : (N, 2) float array
        The line's vertices in px.
    w, h : float
        Image width and height in px.

    Returns
    -------
    list of (M, 2) float64 arrays
        The pieces inside, in order along the line, each with at least 2 distinct
        vertices (pieces that only touch the border in one point are left out).

    Examples
    --------
    The line leaves the image at the bottom and comes back:

    >>> [p.tolist() for p in clip_polyline(np.array([[-5, 5], [5, 5], [5, 15], [7, 5]], float), 10, 10)]
    [[[0.0, 5.0], [5.0, 5.0], [5.0, 10.0]], [[6.0, 10.0], [7.0, 5.0]]]
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    pieces: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    for a, b in zip(pts[:-1], pts[1:]):
        span = _clip_segment(a, b, w, h)
        if span is None:
            if current:
                pieces.append(current)
                current = []
            continue
        t0, t1 = span
        # crossing points lie on the border: clamp away the rounding that would put them a hair outside
        start = a if t0 == 0 else np.clip(a + t0 * (b - a), 0.0, (w, h))
        end = b if t1 == 1 else np.clip(a + t1 * (b - a), 0.0, (w, h))
        if current and t0 > 0:
            pieces.append(current)  # the line left the image between the two segments
            current = []
        if not current:
            current = [start]
        current.append(end)
        if t1 < 1:
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    out = []
    for piece in pieces:
        arr = np.array(piece, dtype=np.float64).reshape(-1, 2)
        keep = np.concatenate([[True], np.any(arr[1:] != arr[:-1], axis=1)])
        arr = arr[keep]
        if len(arr) >= 2:
            out.append(arr)
    return out
