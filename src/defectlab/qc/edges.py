"""Edge convention: where each drawn boundary sits relative to the defect's dark contrast band.

The workshop's convention: a cavity (bubble, void) is drawn along the **inner** edge of its
dark Fresnel rim (the rim lies just *outside* the label); a dislocation loop is drawn along
the **outer** edge of its dark strain ring (the ring lies just *inside* the label). A label
drawn at the other edge is off by the band's width (2–3 px), which is enough to bias every
size a model learns.

How a boundary's position is measured
-------------------------------------
1. The shape's outline (an ellipse as a fine polygon, a mask as its traced contour) is
   resampled every ``step_px`` along its length, with the outward unit normal at each sample.
2. The image is sampled (bilinear, :func:`scipy.ndimage.map_coordinates`) along every normal
   at offsets ``t`` from ``-reach_in`` to ``+reach_out`` px (``t > 0``: outside the shape);
   the profiles are averaged into one profile per shape, so noise averages out over the
   whole boundary.
3. The profile's minimum (the dark band) is located, refined by a parabola through the
   three samples around it; a minimum at the end of the search range is no band, and
   the shape is not measured (nor is one whose band is less than 3 % darker). Its
   *half-depth* crossings on either side, where the profile has risen halfway back from the
   minimum to the brightest level on that side, are the band's inner and outer edges (the
   true edges for a band wider than the blur; a little outside them for a narrower one).
4. ``inner`` convention: the drawn boundary should be at the band's inner edge, so
   ``offset_px`` = inner edge − 0; ``outer``: ``offset_px`` = outer edge − 0. A shape is
   off its label's convention when ``|offset_px| > edge_tolerance``.

Positive ``offset_px``: the band's relevant edge is outside the drawn boundary (the shape was
drawn too small); negative: drawn too large.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model import Box, Ellipse, Label, Mask, Polygon, Shape

__all__ = ["EdgeEstimate", "EDGE_GUESSES", "guess_edge", "resolve_edges", "boundary_normals", "edge_profile",
           "estimate_edge", "shape_edge_estimate", "edge_findings"]

#: Label-name fragments (lower case) and the convention guessed from them.
EDGE_GUESSES: tuple[tuple[str, str], ...] = (
    ("bubble", "inner"), ("cavit", "inner"), ("void", "inner"), ("loop", "outer"),
)


def guess_edge(label_name: str) -> str | None:
    """The edge convention guessed from a label's name, or None.

    ``bubble``, ``cavity``/``cavities``, ``void`` → ``"inner"``; ``loop`` → ``"outer"``.

    Examples
    --------
    >>> guess_edge("He bubble"), guess_edge("dislocation loop"), guess_edge("precipitate")
    ('inner', 'outer', None)
    """
    name = label_name.lower()
    for fragment, edge in EDGE_GUESSES:
        if fragment in name:
            return edge
    return None


def resolve_edges(labels: tuple[Label, ...], given: dict[str, str] | None = None) -> dict[str, tuple[str | None, str]]:
    """Label name -> ``(edge, how)``; ``how`` is ``"given"`` (the ``edges`` argument),
    ``"label"`` (declared by the export), ``"guess"`` (from the name) or ``"unknown"``.

    Raises ValueError for an unknown label or a value other than inner/outer.

    Examples
    --------
    >>> resolve_edges((Label("bubble"), Label("loop", edge="outer"), Label("precipitate")))
    {'bubble': ('inner', 'guess'), 'loop': ('outer', 'label'), 'precipitate': (None, 'unknown')}
    """
    given = dict(given or {})
    names = [lab.name for lab in labels]
    for name, edge in given.items():
        if name not in names:
            raise ValueError(f"edges: no label {name!r}; labels are {names}")
        if edge not in ("inner", "outer"):
            raise ValueError(f"edges: expected 'inner' or 'outer' for {name!r}, got {edge!r}")
    out: dict[str, tuple[str | None, str]] = {}
    for lab in labels:
        if lab.name in given:
            out[lab.name] = (given[lab.name], "given")
        elif lab.edge is not None:
            out[lab.name] = (lab.edge, "label")
        else:
            guess = guess_edge(lab.name)
            out[lab.name] = (guess, "guess") if guess else (None, "unknown")
    return out


def _outline(shape: Shape, size_hw: tuple[int, int]) -> np.ndarray | None:
    from ..raster import ellipse_polygon, mask_to_polygons, rasterize

    if isinstance(shape, Polygon):
        return np.asarray(shape.points_xy, dtype=np.float64)
    if isinstance(shape, Ellipse):
        return ellipse_polygon(shape, tolerance=0.02)
    if isinstance(shape, Box):
        return shape.corners_xy()
    if isinstance(shape, Mask):
        crop = rasterize(shape, size_hw)
        rings, _ = mask_to_polygons(crop.bitmap, x0=crop.x0, y0=crop.y0)
        return rings[0] if rings else None
    return None


def boundary_normals(ring_xy: np.ndarray, *, step_px: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step_px`` along a closed ring, and the outward unit normal at each.

    Parameters
    ----------
    ring_xy : (N, 2) float array
        A closed polygon (not repeated at the end), either orientation.
    step_px : float
        Spacing of the samples along the outline, px.

    Returns
    -------
    points_xy, normals_xy : (M, 2) float64 arrays
        ``M = max(8, round(perimeter / step_px))``; the normals point away from the interior.

    Examples
    --------
    >>> pts, nrm = boundary_normals(np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]]))
    >>> len(pts), pts[1].tolist(), nrm[1].tolist()
    (16, [1.0, 0.0], [0.0, -1.0])
    """
    ring = np.asarray(ring_xy, dtype=np.float64)
    closed = np.vstack([ring, ring[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    keep = np.concatenate([[True], seg > 0])
    closed = closed[keep]
    seg = seg[seg > 0]
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    perimeter = float(cum[-1])
    m = max(8, int(round(perimeter / step_px)))
    s = np.arange(m) * (perimeter / m)
    idx = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    frac = ((s - cum[idx]) / seg[idx])[:, None]
    a, b = closed[idx], closed[idx + 1]
    points = a + frac * (b - a)
    # tangent by central differences of the resampled outline (np.roll by slices: the same values, less overhead)
    tangent = np.empty_like(points)
    tangent[1:-1] = points[2:] - points[:-2]
    tangent[0] = points[1] - points[-1]
    tangent[-1] = points[0] - points[-2]
    x, y = ring[:, 0], ring[:, 1]
    signed = float(np.dot(x[:-1], y[1:]) + x[-1] * y[0] - (np.dot(y[:-1], x[1:]) + y[-1] * x[0]))
    sign = 1.0 if signed > 0 else -1.0
    normals = sign * np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    length = np.hypot(normals[:, 0], normals[:, 1])
    length[length == 0] = 1.0
    return points, normals / length[:, None]


def edge_profile(
    image: np.ndarray, points_xy: np.ndarray, normals_xy: np.ndarray, offsets_px: np.ndarray
) -> np.ndarray:
    """The image sampled along each normal, averaged: one value per offset.

    Parameters
    ----------
    image : (H, W) float array
        Grayscale; pixel (row r, column c) is the value at the point ``(c + 0.5, r + 0.5)``.
    points_xy, normals_xy : (M, 2) float arrays
        Boundary points and outward unit normals (:func:`boundary_normals`).
    offsets_px : (T,) float array
        Offsets along the normal, px (positive: outside).

    Returns
    -------
    (T,) float64
        The mean intensity at each offset over the samples that fall inside the image
        (NaN where none does).
    """
    xs, ys = _sample_xy(points_xy, normals_xy, offsets_px)
    return _mean_profile(_sample(image, xs.ravel(), ys.ravel()).reshape(xs.shape))


def _sample_xy(points_xy: np.ndarray, normals_xy: np.ndarray, offsets_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, T) x and y of the samples along each normal."""
    xs = points_xy[:, 0][:, None] + offsets_px[None, :] * normals_xy[:, 0][:, None]
    ys = points_xy[:, 1][:, None] + offsets_px[None, :] * normals_xy[:, 1][:, None]
    return xs, ys


def _sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at the points (xs, ys) (1-D arrays); NaN outside the pixel centers' hull."""
    from scipy.ndimage import map_coordinates

    vals = map_coordinates(image, [ys - 0.5, xs - 0.5], order=1, mode="constant", cval=np.nan, prefilter=False)
    h, w = image.shape
    vals[(xs < 0.5) | (ys < 0.5) | (xs > w - 0.5) | (ys > h - 0.5)] = np.nan
    return vals


def _mean_profile(vals: np.ndarray) -> np.ndarray:
    """(M, T) samples -> (T,) mean over the non-NaN ones (NaN where none is)."""
    with np.errstate(invalid="ignore"):
        count = np.sum(~np.isnan(vals), axis=0)
        total = np.nansum(vals, axis=0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass(frozen=True, slots=True)
class EdgeEstimate:
    """Where a shape's dark contrast band lies relative to its drawn boundary (px, + = outside).

    ``minimum_px``: the darkest offset; ``band_inner_px`` / ``band_outer_px``: the band's
    half-depth edges (NaN when the profile does not rise back on that side within reach);
    ``depth``: how much darker the minimum is than the brighter of the two sides' levels,
    as a fraction of that level; ``resolved``: the minimum lies strictly inside the search
    range (at its end, the band was not found: the profile only falls or only rises).
    """

    minimum_px: float
    band_inner_px: float
    band_outer_px: float
    depth: float
    resolved: bool = True

    def offset(self, edge: str) -> float:
        """The band's edge that the convention ``edge`` puts on the boundary ("inner" | "outer")."""
        return self.band_inner_px if edge == "inner" else self.band_outer_px


def _crossing(t: np.ndarray, p: np.ndarray, i0: int, level: float, direction: int) -> float:
    """First offset from index ``i0`` going ``direction`` (-1 | +1) where ``p`` reaches ``level``."""
    i = i0
    while 0 <= i + direction < len(p):
        j = i + direction
        if p[j] >= level:
            # linear interpolation between samples i and j
            frac = (level - p[i]) / (p[j] - p[i]) if p[j] != p[i] else 0.0
            return float(t[i] + frac * (t[j] - t[i]))
        i = j
    return math.nan


def estimate_edge(offsets_px: np.ndarray, profile: np.ndarray, *, search_px: tuple[float, float]) -> EdgeEstimate:
    """The dark band of an averaged profile: its minimum and half-depth edges.

    Parameters
    ----------
    offsets_px : (T,) float array
        Increasing offsets along the outward normal, px.
    profile : (T,) float array
        Mean intensity at each offset (:func:`edge_profile`).
    search_px : (float, float)
        The range of offsets in which to look for the minimum.

    Examples
    --------
    A dark band from 1 to 3 px outside the boundary (at half depth), with 1 px ramps:

    >>> t = np.arange(-4, 8.01, 0.25)
    >>> p = np.interp(t, [0.5, 1.5, 2.5, 3.5], [1.0, 0.5, 0.5, 1.0])
    >>> e = estimate_edge(t, p, search_px=(-3, 5))
    >>> round(e.band_inner_px, 2), round(e.band_outer_px, 2), round(e.depth, 2)
    (1.0, 3.0, 0.5)
    """
    t = np.asarray(offsets_px, dtype=np.float64)
    p = np.asarray(profile, dtype=np.float64)
    nan = math.nan
    ok = ~np.isnan(p)
    window = ok & (t >= search_px[0]) & (t <= search_px[1])
    if not window.any():
        return EdgeEstimate(nan, nan, nan, nan, False)
    cand = np.flatnonzero(window)
    i = int(cand[np.argmin(p[cand])])
    resolved = bool(cand[0] < i < cand[-1])
    t_min = float(t[i])
    if 0 < i < len(p) - 1 and ok[i - 1] and ok[i + 1]:
        denom = p[i - 1] - 2 * p[i] + p[i + 1]
        if denom > 0:
            t_min += 0.5 * (p[i - 1] - p[i + 1]) / denom * (t[i + 1] - t[i])
    inner_side = p[: i + 1][ok[: i + 1]]
    outer_side = p[i:][ok[i:]]
    level_in = float(inner_side.max()) if inner_side.size else nan
    level_out = float(outer_side.max()) if outer_side.size else nan
    p_min = float(p[i])
    pf = np.where(ok, p, -np.inf)
    band_in = _crossing(t, pf, i, (p_min + level_in) / 2, -1) if level_in > p_min else nan
    band_out = _crossing(t, pf, i, (p_min + level_out) / 2, +1) if level_out > p_min else nan
    ref = max(level_in, level_out)
    depth = (ref - p_min) / abs(ref) if ref and math.isfinite(ref) else nan
    return EdgeEstimate(t_min, band_in, band_out, depth, resolved)


_STEP_PX = 1.0  # spacing of the normals along the outline
_SAMPLE_PX = 0.25  # spacing of the samples along each normal
_REACH_OUT_PX = 10.0  # how far outside the boundary the profile reaches (real rims: up to ~9 px)
_REACH_IN_PX = 6.0  # how far inside, at most (less for small shapes)
_MIN_DEPTH = 0.03  # a band less than 3 % darker than its surroundings is no band


def shape_edge_estimate(image: np.ndarray, shape: Shape, size_hw: tuple[int, int], area_px: int) -> EdgeEstimate | None:
    """The :class:`EdgeEstimate` of one area shape on its (H, W) grayscale image, or None when
    the shape is too small to have an inside profile (inscribed radius under 1.25 px).

    The profile reaches ``0.8 ×`` the shape's mean inner radius ``2 · area / perimeter`` inside
    (at most 6 px), so it does not cross to the opposite side, and 10 px outside; the band's
    minimum is looked for up to 9 px outside.
    """
    geometry = _profile_geometry(shape, size_hw, area_px)
    if geometry is None:
        return None
    points, normals, t = geometry
    return _estimate(t, edge_profile(image, points, normals, t))


def _profile_geometry(shape: Shape, size_hw: tuple[int, int], area_px: int):
    """``(points, normals, offsets)`` of a shape's edge profile, or None (see :func:`shape_edge_estimate`)."""
    ring = _outline(shape, size_hw)
    if ring is None or len(ring) < 3:
        return None
    points, normals = boundary_normals(ring, step_px=_STEP_PX)
    perimeter = len(points) * _STEP_PX
    reach_in = min(_REACH_IN_PX, 0.8 * 2.0 * area_px / perimeter)
    if reach_in < 1.0:
        return None
    return points, normals, np.arange(-reach_in, _REACH_OUT_PX + 1e-9, _SAMPLE_PX)


def _estimate(t: np.ndarray, profile: np.ndarray) -> EdgeEstimate:
    return estimate_edge(t, profile, search_px=(t[0] + 0.5, _REACH_OUT_PX - 1.0))


def shape_edge_estimates(image: np.ndarray, shapes: dict[int, tuple[Shape, int]],
                         size_hw: tuple[int, int]) -> dict[int, EdgeEstimate | None]:
    """:func:`shape_edge_estimate` of many shapes of one image, with one sampling call for all.

    ``shapes`` maps an index to ``(shape, area_px)``; the estimates are the same numbers as one
    :func:`shape_edge_estimate` per shape (the same samples, averaged in the same order), without
    a Python round trip into scipy per shape.
    """
    out: dict[int, EdgeEstimate | None] = {}
    todo: list[tuple[int, np.ndarray, tuple[int, int]]] = []
    xs_all, ys_all = [], []
    for i, (shape, area_px) in shapes.items():
        geometry = _profile_geometry(shape, size_hw, area_px)
        if geometry is None:
            out[i] = None
            continue
        points, normals, t = geometry
        xs, ys = _sample_xy(points, normals, t)
        todo.append((i, t, xs.shape))
        xs_all.append(xs.ravel())
        ys_all.append(ys.ravel())
    if not todo:
        return out
    vals = _sample(image, np.concatenate(xs_all), np.concatenate(ys_all))
    start = 0
    for i, t, shape_mt in todo:
        n = shape_mt[0] * shape_mt[1]
        out[i] = _estimate(t, _mean_profile(vals[start:start + n].reshape(shape_mt)))
        start += n
    return out


def edge_findings(data, conventions: dict[str, tuple[str | None, str]], *, tolerance_px: float):
    """``edge-off-convention`` findings of one item, and every measured offset by shape index.

    Parameters
    ----------
    data : ItemData
        The item, its crops and its image (no findings without an image).
    conventions : dict
        Label name -> ``(edge, how)`` from :func:`resolve_edges`.
    tolerance_px : float
        Largest allowed ``|offset_px|``.

    Returns
    -------
    findings : list of Finding
    offsets : dict int -> float
        ``offset_px`` of each shape that has a convention and a clear dark band.
    """
    from .findings import Finding

    item = data.item
    found: list = []
    offsets: dict[int, float] = {}
    if data.image is None:
        return found, offsets
    wanted: dict[int, tuple[Shape, int]] = {}
    for i, shape in enumerate(item.shapes):
        edge, how = conventions.get(shape.label, (None, "unknown"))
        if edge is None or not shape.is_area or i in data.skip_edges:
            continue
        crop = data.crops[i]
        if crop is None or crop.area == 0:
            continue
        wanted[i] = (shape, crop.area)
    estimates = shape_edge_estimates(data.image, wanted, item.size_hw)
    for i, (shape, _) in wanted.items():
        edge = conventions[shape.label][0]
        est = estimates[i]
        if est is None or not est.resolved or not (est.depth >= _MIN_DEPTH):
            continue
        off = est.offset(edge)
        if math.isnan(off):
            continue
        offsets[i] = off
        if abs(off) > tolerance_px:
            side = "outside" if off > 0 else "inside"
            looks = "too small" if off > 0 else "too large"
            # short: the convention (and whether it was guessed) is said once, in result.edges
            found.append(Finding(
                "edge-off-convention", item.name, f"{edge} edge {abs(off):.1f} px {side} the outline: {looks}",
                shape=i, label=shape.label, box_xyxy=tuple(map(float, shape.bbox_xyxy())), value=off))
    return found, offsets
