"""Star-convex polygons: ray distances from instance masks, and polygons back to pixels.

A *star* is a polygon given by a center and ``K`` distances along rays at the fixed angles
``phi_k = 2 pi k / K`` (:func:`ray_angles`): vertex ``k`` is
``(cx + d_k cos phi_k, cy + d_k sin phi_k)``, x right and y down, so the vertices turn
clockwise on screen. This is the object representation of StarDist (Schmidt et al., MICCAI
2018); the code here is our own, numpy and scipy only (no torch).

Ray distances (:func:`star_distances`)
--------------------------------------
For a pixel of an instance, ``d_k`` is the distance from the pixel's center along ray ``k``
to where the instance ends. "Where it ends" is the 0.5 level of the instance's bitmap,
bilinearly interpolated between pixel centers (the same boundary the marching-squares trace
of :func:`~defectlab.raster.mask_to_polygons` follows, halfway between an inside and an
outside center), found by stepping along the ray in ``step_px`` steps and interpolating
linearly between the last sample inside and the first outside. For the pixel masks of
analytic discs and ellipses this is the analytic distance within 0.5 px (tested). A ray
ends at the first exit: an object that is not star-convex from that pixel is cut there.

Overlapping instances (:func:`star_targets`)
--------------------------------------------
Labels may overlap: a pixel under two instances belongs to both. Targets are therefore
computed **per instance, from that instance's own full mask**, never from a flattened label
image, so the rays of an instance run through the part that another one covers and its
polygon keeps its whole outline. Each pixel still has one target (one probability, one set
of distances): that of the instance it is *deepest* in — the larger normalized distance to
its boundary (distance transform of the instance's own mask divided by its maximum, the
StarDist object probability), ties to the instance painted later (higher z order). Every
instance's center region is deep inside it and in no other, so every instance keeps pixels
that predict its whole polygon, and the net learns to find both members of an overlapping
pair.

Examples
--------
>>> import numpy as np
>>> yy, xx = np.mgrid[:21, :21] + 0.5
>>> disc = (xx - 10.5) ** 2 + (yy - 10.5) ** 2 <= 7.6 ** 2
>>> d = star_distances(disc, n_rays=8)
>>> bool(np.all(np.abs(d[10, 10] - 7.6) < 0.5))
True
>>> poly = star_polygons(np.array([[10.5, 10.5]]), d[10:11, 10])[0]
>>> poly.shape
(8, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .shapes import Crop

__all__ = [
    "DEFAULT_N_RAYS", "StarTargets", "ray_angles", "star_distances", "star_polygons", "star_targets",
    "star_pixels", "star_areas", "paint_stars",
]

#: Rays per star by default (StarDist's 2D default).
DEFAULT_N_RAYS = 32

#: Step along a ray when looking for the boundary, px.
_STEP_PX = 0.5


def ray_angles(n_rays: int = DEFAULT_N_RAYS) -> np.ndarray:
    """(K,) float64 ray angles ``2 pi k / K`` in radians (x right, y down: clockwise on screen).

    Examples
    --------
    >>> ray_angles(4).tolist() == [0.0, math.pi / 2, math.pi, 3 * math.pi / 2]
    True
    """
    if isinstance(n_rays, bool) or int(n_rays) != n_rays or n_rays < 3:
        raise ValueError(f"expected an integer number of rays >= 3, got {n_rays!r}")
    return 2 * math.pi * np.arange(int(n_rays)) / int(n_rays)


def star_distances(
    bitmap: np.ndarray,
    *,
    n_rays: int = DEFAULT_N_RAYS,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    step_px: float = _STEP_PX,
) -> np.ndarray:
    """Distances along ``n_rays`` rays from pixel centers to the boundary of one instance.

    Parameters
    ----------
    bitmap : (h, w) bool array
        One instance's pixels (its whole mask, overlaps included).
    n_rays : int
        ``K``, rays at :func:`ray_angles`.
    rows, cols : (P,) int arrays, optional
        The pixels to compute, in the bitmap's frame. Default: every pixel, giving an
        ``(h, w, K)`` array that is 0 outside the instance.
    step_px : float
        Step along the rays, px (the crossing is interpolated between steps).

    Returns
    -------
    (h, w, K) or (P, K) float32
        Distances in px; 0 for pixels outside the instance.
    """
    bm = np.asarray(bitmap, dtype=bool)
    if bm.ndim != 2:
        raise ValueError(f"expected an (h, w) bitmap, got shape {bm.shape}")
    angles = ray_angles(n_rays)
    whole = rows is None
    if whole:
        rr, cc = np.nonzero(bm)
    else:
        rr, cc = np.asarray(rows, dtype=np.int64).ravel(), np.asarray(cols, dtype=np.int64).ravel()
    out = np.zeros((len(rr), len(angles)), dtype=np.float32)
    if len(rr):
        inside = bm[rr, cc]
        out[inside] = _march(bm, rr[inside], cc[inside], angles, float(step_px))
    if not whole:
        return out
    full = np.zeros((*bm.shape, len(angles)), dtype=np.float32)
    full[rr, cc] = out
    return full


def _march(bm: np.ndarray, rr: np.ndarray, cc: np.ndarray, angles: np.ndarray, step: float) -> np.ndarray:
    """(P, K) distances from the centers of pixels (rr, cc) (all inside) to the zero level of
    the instance's signed distance, bilinearly interpolated.

    The rays advance together in blocks of steps; a ray leaves the computation at the block
    where it crosses, so the work is the rays' lengths, not the crop's diagonal.
    """
    from scipy import ndimage

    if not step > 0:
        raise ValueError(f"expected a step > 0, got {step!r}")
    padded = np.pad(bm, 1)  # index (i, j) is pixel (i - 1, j - 1) of bm; the border is outside
    # > 0 inside (distance to the nearest outside center), < 0 outside: zero halfway between
    sdf = (ndimage.distance_transform_edt(padded) - ndimage.distance_transform_edt(~padded)).astype(np.float32)
    n_steps = int(math.ceil(math.hypot(*bm.shape) / step)) + 2
    k = len(angles)
    sin = np.tile(np.sin(angles).astype(np.float32), len(rr))
    cos = np.tile(np.cos(angles).astype(np.float32), len(rr))
    r0 = np.repeat((rr + 1).astype(np.float32), k)
    c0 = np.repeat((cc + 1).astype(np.float32), k)
    prev = np.repeat(sdf[rr + 1, cc + 1], k)  # the value at the last step taken (t = 0: the start)
    out = np.empty(len(r0), dtype=np.float32)
    alive = np.arange(len(r0))
    block = 8
    for s0 in range(0, n_steps, block):
        if not len(alive):
            break
        t = step * np.arange(s0 + 1, min(s0 + block, n_steps) + 1, dtype=np.float32)
        coords = np.stack([r0[alive, None] + sin[alive, None] * t, c0[alive, None] + cos[alive, None] * t])
        v = ndimage.map_coordinates(sdf, coords.reshape(2, -1), order=1, mode="nearest",
                                    prefilter=False).reshape(len(alive), len(t))
        crossed = v <= 0
        done = crossed.any(axis=1)
        first = np.argmax(crossed, axis=1)
        rows = np.flatnonzero(done)
        f = first[rows]
        before = np.where(f > 0, v[rows, np.maximum(f - 1, 0)], prev[alive[rows]])
        here = v[rows, f]
        frac = before / np.maximum(before - here, 1e-6)  # linear between the last sample inside and the first out
        out[alive[rows]] = step * (s0 + f + frac)
        prev[alive] = v[:, -1]
        alive = alive[~done]
    if len(alive):  # cannot happen: beyond the padded border the distance stays negative
        out[alive] = step * n_steps
    return out.reshape(len(rr), k)


def star_polygons(points_xy: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(N, K, 2) float64 vertices of stars centered at ``points_xy`` (N, 2) with ``distances`` (N, K).

    Examples
    --------
    >>> star_polygons(np.array([[5.0, 5.0]]), np.full((1, 4), 2.0)).round(6).tolist()
    [[[7.0, 5.0], [5.0, 7.0], [3.0, 5.0], [5.0, 3.0]]]
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != len(pts):
        raise ValueError(f"expected distances of shape ({len(pts)}, K), got {d.shape}")
    phi = ray_angles(d.shape[1])
    return np.stack([pts[:, :1] + d * np.cos(phi), pts[:, 1:] + d * np.sin(phi)], axis=-1)


# ---------------------------------------------------------------------------------------------
# Training targets


@dataclass(frozen=True, slots=True)
class StarTargets:
    """What a net learns to predict at every ``grid``-th pixel of an image.

    Attributes
    ----------
    prob : (h, w) float32
        Object probability: the normalized distance to the owning instance's boundary, in
        (0, 1]; 0 on the background.
    dist : (h, w, K) float32
        Ray distances (px, full resolution) to the owning instance's boundary; 0 on the background.
    owner : (h, w) int32
        Index of the owning instance in the list given, -1 on the background.
    grid : int
        Pixel ``(i, j)`` of these maps is pixel ``(grid i, grid j)`` of the image; ``h, w =
        ceil(H / grid), ceil(W / grid)``.
    """

    prob: np.ndarray
    dist: np.ndarray
    owner: np.ndarray
    grid: int


def star_targets(
    crops: Sequence[Crop],
    size_hw: tuple[int, int],
    *,
    n_rays: int = DEFAULT_N_RAYS,
    grid: int = 1,
    order: Sequence[int] | None = None,
) -> StarTargets:
    """Probability and ray-distance targets of an image's instances (see the module docstring).

    Parameters
    ----------
    crops : sequence of Crop
        Each instance's full mask (overlaps included), e.g. ``Instance.crop`` from
        :func:`defectlab.raster.instances`.
    size_hw : (int, int)
        The image's height and width.
    n_rays : int
        ``K``.
    grid : int
        Targets at every ``grid``-th pixel (rows and columns 0, grid, 2 grid, …).
    order : sequence of int, optional
        Paint order (e.g. :func:`~defectlab.raster.paint_order`): on a tie of depth the
        instance later in it owns the pixel. Default: list order.

    Examples
    --------
    >>> import numpy as np
    >>> from defectlab.raster import ellipse_crop
    >>> a = ellipse_crop(12, 16, 8, 8, 0, (32, 40)); b = ellipse_crop(24, 16, 8, 8, 0, (32, 40))
    >>> t = star_targets([a, b], (32, 40), n_rays=8)
    >>> sorted(np.unique(t.owner).tolist()), float(t.prob.max()) == 1.0
    ([-1, 0, 1], True)
    >>> round(float(t.dist[15, 20, 0]), 1)   # from x = 20.5 to b's right edge at x = 32
    11.5
    """
    from scipy import ndimage

    h, w = size_hw
    g = int(grid)
    if g < 1:
        raise ValueError(f"expected grid >= 1, got {grid!r}")
    k = len(ray_angles(n_rays))
    gh, gw = -(-h // g), -(-w // g)
    prob = np.zeros((gh, gw), dtype=np.float32)
    dist = np.zeros((gh, gw, k), dtype=np.float32)
    owner = np.full((gh, gw), -1, dtype=np.int32)
    sequence = list(range(len(crops))) if order is None else [int(i) for i in order]
    if sorted(sequence) != list(range(len(crops))):
        raise ValueError(f"expected order to be a permutation of 0..{len(crops) - 1}, got {list(order or ())}")
    for i in sequence:
        crop = crops[i]
        bm = np.asarray(crop.bitmap, dtype=bool)
        if not bm.any():
            continue
        # grid pixels of the crop: image rows y0 + r with (y0 + r) % g == 0
        r_first, c_first = (-crop.y0) % g, (-crop.x0) % g
        sub = bm[r_first::g, c_first::g]
        sr, sc = np.nonzero(sub)
        if not len(sr):
            continue
        rr, cc = r_first + sr * g, c_first + sc * g  # in the crop's frame
        edt = ndimage.distance_transform_edt(np.pad(bm, 1))[1:-1, 1:-1]
        depth = (edt[rr, cc] / edt.max()).astype(np.float32)
        gi, gj = (crop.y0 + rr) // g, (crop.x0 + cc) // g
        take = depth >= prob[gi, gj]  # later instances win ties
        if not take.any():
            continue
        rr, cc, gi, gj = rr[take], cc[take], gi[take], gj[take]
        prob[gi, gj] = depth[take]
        dist[gi, gj] = star_distances(bm, n_rays=k, rows=rr, cols=cc)
        owner[gi, gj] = i
    return StarTargets(prob, dist, owner, g)


# ---------------------------------------------------------------------------------------------
# Stars back to pixels


def star_pixels(
    points_xy: np.ndarray,
    distances: np.ndarray,
    size_hw: tuple[int, int],
    *,
    spacing: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Lattice points inside each star, all stars at once (no loop over stars).

    The rule is :func:`~defectlab.raster.polygon_crop`'s — a point is inside when its
    winding number is non-zero, a point exactly on a left or top edge is inside — and so is
    the algorithm, run for every edge of every star in one pass: each edge adds ±1 at the
    first lattice point right of where it crosses each lattice row, and a running sum along
    the rows gives the winding numbers (a row's crossings add up to 0, so one cumulative
    sum over all the stars' rows, laid end to end, is exact). The cost is the stars' boxes,
    with no trigonometry per point. With ``spacing=1`` the points are the pixel centers
    ``polygon_crop`` sets for the same polygons.

    Parameters
    ----------
    points_xy : (N, 2) float
        Centers.
    distances : (N, K) float
        Ray distances, px.
    size_hw : (int, int)
        The image; points outside it are not returned.
    spacing : float
        Lattice step in px: ``1`` is the pixel centers, ``1 / s`` gives ``s x s`` points per
        pixel (for areas of small stars). The lattice point ``(i, j)`` is at
        ``((j + 0.5) spacing, (i + 0.5) spacing)``.

    Returns
    -------
    star : (M,) int64
        Which star each inside point belongs to (sorted).
    cell : (M,) int64
        The point's lattice index ``i * W_l + j``, ``W_l = ceil(W / spacing)``.
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != len(pts):
        raise ValueError(f"expected distances of shape ({len(pts)}, K), got {d.shape}")
    if not spacing > 0:
        raise ValueError(f"expected spacing > 0, got {spacing!r}")
    h, w = size_hw
    hl, wl = int(math.ceil(h / spacing)), int(math.ceil(w / spacing))
    empty = np.zeros(0, dtype=np.int64)
    n, k = d.shape
    if n == 0:
        return empty, empty
    verts = star_polygons(pts, np.maximum(d, 0.0)) / spacing  # lattice units: point (i, j) at (j + .5, i + .5)
    lo, hi = verts.min(axis=1), verts.max(axis=1)
    c0 = np.maximum(np.ceil(lo[:, 0] - 0.5), 0).astype(np.int64)
    c1 = np.minimum(np.floor(hi[:, 0] - 0.5), wl - 1).astype(np.int64)
    r0 = np.maximum(np.ceil(lo[:, 1] - 0.5), 0).astype(np.int64)
    r1 = np.minimum(np.floor(hi[:, 1] - 0.5), hl - 1).astype(np.int64)
    bw, bh = np.maximum(c1 - c0 + 1, 0), np.maximum(r1 - r0 + 1, 0)
    bh = np.where(bw > 0, bh, 0)
    stride = bw + 1  # one extra column per row collects crossings right of the box
    size = bh * stride
    base = np.cumsum(size) - size
    total = int(size.sum())
    if total == 0:
        return empty, empty
    xa, ya = verts[..., 0].ravel(), verts[..., 1].ravel()
    xb = np.roll(verts[..., 0], -1, axis=1).ravel()
    yb = np.roll(verts[..., 1], -1, axis=1).ravel()
    owner = np.repeat(np.arange(n), k)
    down = yb > ya
    ylo, yhi = np.minimum(ya, yb), np.maximum(ya, yb)
    first = np.maximum(np.ceil(ylo - 0.5).astype(np.int64), r0[owner])
    last = np.minimum(np.ceil(yhi - 0.5).astype(np.int64) - 1, r1[owner])
    counts = np.maximum(last - first + 1, 0)
    counts[bh[owner] == 0] = 0
    m = int(counts.sum())
    if m == 0:
        return empty, empty
    edge = np.repeat(np.arange(len(owner)), counts)
    rows = first[edge] + (np.arange(m) - np.repeat(np.cumsum(counts) - counts, counts))
    # interpolate from the edge's upper end, as polygon_crop does (shared edges cross identically)
    x_top = np.where(down, xa, xb)[edge]
    x_bot = np.where(down, xb, xa)[edge]
    y_top = ylo[edge]
    xc = x_top + (rows + 0.5 - y_top) * ((x_bot - x_top) / (yhi[edge] - y_top))
    st = owner[edge]
    col = np.clip(np.ceil(xc - 0.5).astype(np.int64) - c0[st], 0, bw[st])
    weight = np.where(down[edge], 1, -1)
    acc = np.bincount(base[st] + (rows - r0[st]) * stride[st] + col, weights=weight, minlength=total)
    flat = np.flatnonzero(np.cumsum(acc) != 0)
    star = np.searchsorted(base, flat, side="right") - 1
    local = flat - base[star]
    rr, cc = local // stride[star], local % stride[star]
    return star, (r0[star] + rr) * wl + c0[star] + cc


def star_areas(distances: np.ndarray) -> np.ndarray:
    """(N,) float64 exact polygon areas of stars with ``distances`` (N, K): ``½ sin(2π/K) Σ d_k d_{k+1}``.

    Examples
    --------
    >>> float(star_areas(np.full((1, 4), 1.0))[0])   # a unit square rotated 45 degrees
    2.0
    """
    d = np.asarray(distances, dtype=np.float64)
    k = d.shape[-1]
    return 0.5 * math.sin(2 * math.pi / k) * np.sum(d * np.roll(d, -1, axis=-1), axis=-1)


def paint_stars(
    points_xy: np.ndarray,
    distances: np.ndarray,
    size_hw: tuple[int, int],
    *,
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) int32 instance ids of stars (star ``i`` is ``i + 1``), the surest on top.

    Where stars overlap a pixel holds the one with the highest score (ties: the earlier one;
    without scores: the later one); an instance image cannot hold both, the polygons do.

    Examples
    --------
    >>> lab = paint_stars(np.array([[8.0, 8.0], [12.0, 8.0]]), np.full((2, 8), 3.0), (16, 24),
    ...                   scores=np.array([0.9, 0.5]))
    >>> sorted(np.unique(lab).tolist()), int(lab[7, 10])
    ([0, 1, 2], 1)
    """
    h, w = size_hw
    n = len(np.asarray(points_xy).reshape(-1, 2))
    out = np.zeros(h * w, dtype=np.int32)
    if n == 0:
        return out.reshape(h, w)
    star, cell = star_pixels(points_xy, distances, size_hw)
    # rank: by score, ties to the earlier star (the order NMS keeps them in); no scores: later on top
    rank = np.arange(n) if scores is None else np.argsort(np.lexsort((-np.arange(n), np.asarray(scores))))
    # the highest rank wins each cell: sort by (cell, rank) and keep each cell's last entry
    by = np.lexsort((rank[star], cell))
    cell, star = cell[by], star[by]
    last = np.append(cell[1:] != cell[:-1], True)
    out[cell[last]] = star[last] + 1
    return out.reshape(h, w)
