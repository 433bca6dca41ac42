"""Star-convex geometry: ray distances, polygons, targets of overlapping instances, NMS.

Expected values are analytic: the distance from a point to an ellipse along a ray (the
root of a quadratic), the lens area of two discs, and masks drawn by the exact rasterizer
of ``raster.shapes`` from the analytic shapes (not by the code under test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectlab.raster import ellipse_crop, polygon_crop
from defectlab.raster.nms import greedy_keep, nms_stars, star_overlaps
from defectlab.raster.stars import (
    paint_stars,
    ray_angles,
    star_areas,
    star_distances,
    star_pixels,
    star_polygons,
    star_targets,
)


def ellipse_ray_distance(px, py, cx, cy, rx, ry, rot_deg, phi):
    """Analytic distance from (px, py) along angles ``phi`` to the ellipse boundary."""
    t = math.radians(rot_deg)
    c, s = math.cos(t), math.sin(t)
    # the point and the ray direction in the ellipse's own axes
    qx, qy = (px - cx) * c + (py - cy) * s, (py - cy) * c - (px - cx) * s
    ux, uy = np.cos(phi) * c + np.sin(phi) * s, np.sin(phi) * c - np.cos(phi) * s
    a = (ux / rx) ** 2 + (uy / ry) ** 2
    b = 2 * (qx * ux / rx**2 + qy * uy / ry**2)
    k = (qx / rx) ** 2 + (qy / ry) ** 2 - 1
    return (-b + np.sqrt(b * b - 4 * a * k)) / (2 * a)


def center_pixel_rays(cx, cy, rx, ry, rot, n_rays=32, size=96):
    crop = ellipse_crop(cx, cy, rx, ry, rot, (size, size))
    col, row = int(math.floor(cx)), int(math.floor(cy))  # the pixel holding the center
    d = star_distances(crop.bitmap, n_rays=n_rays, rows=np.array([row - crop.y0]), cols=np.array([col - crop.x0]))[0]
    true = ellipse_ray_distance(col + 0.5, row + 0.5, cx, cy, rx, ry, rot, ray_angles(n_rays))
    return d, true, crop


@pytest.mark.parametrize("r", [3.0, 5.0, 8.0, 12.5, 20.0, 31.0])
@pytest.mark.parametrize("offset", [(0.5, 0.5), (0.3, 0.62), (0.91, 0.07)])
def test_disc_rays_equal_radius(r: float, offset: tuple[float, float]) -> None:
    cx, cy = 40 + offset[0], 41 + offset[1]
    d, true, _ = center_pixel_rays(cx, cy, r, r, 0.0)
    # 1e-3: float32 distances; a pixel center exactly on the circle (integer r, centered
    # on a pixel) puts the boundary halfway to the next center, exactly 0.5 px out
    assert np.all(np.abs(d - true) <= 0.5 + 1e-3), (d - true)
    if offset == (0.5, 0.5):  # centered on a pixel: every ray is the radius
        assert np.all(np.abs(d - r) <= 0.5 + 1e-3)


def test_ellipse_rays_within_half_a_pixel() -> None:
    """200 random ellipses (radii 3-30 px, any rotation and sub-pixel center): from the
    center pixel, 99 % of rays within 0.5 px of the analytic distance, all within 0.65 px
    (measured worst 0.60: an oblique ray crosses the pixel lattice between an inside and an
    outside center that are more than 1 px apart), no bias."""
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(200):
        rx = rng.uniform(3, 30)
        ry = rx * rng.uniform(0.5, 1.0)
        d, true, _ = center_pixel_rays(*rng.uniform(40, 50, 2), rx, ry, rng.uniform(0, 180))
        errors.append(d - true)
    e = np.abs(np.concatenate(errors))
    assert np.quantile(e, 0.99) <= 0.5
    assert e.max() <= 0.65
    assert abs(float(np.concatenate(errors).mean())) < 0.05


def test_interior_pixels_rays() -> None:
    """Every pixel of the inner half of a disc, not only its center."""
    cx, cy, r = 30.3, 29.8, 12.0
    crop = ellipse_crop(cx, cy, r, r, 0, (64, 64))
    rr, cc = np.nonzero(crop.bitmap)
    px, py = crop.x0 + cc + 0.5, crop.y0 + rr + 0.5
    inner = np.hypot(px - cx, py - cy) <= r / 2
    d = star_distances(crop.bitmap, rows=rr[inner], cols=cc[inner])
    true = np.stack([ellipse_ray_distance(x, y, cx, cy, r, r, 0, ray_angles(32)) for x, y in
                     zip(px[inner], py[inner])])
    assert np.abs(d - true).max() <= 0.6
    assert np.abs(d - true).mean() <= 0.25


def test_whole_bitmap_is_zero_outside() -> None:
    crop = ellipse_crop(10, 10, 5, 4, 20, (20, 20))
    d = star_distances(crop.bitmap, n_rays=16)
    assert d.shape == (*crop.bitmap.shape, 16)
    assert np.all(d[~crop.bitmap] == 0) and np.all(d[crop.bitmap] > 0)


def test_first_exit_of_a_non_star_shape() -> None:
    """A U: the ray from the left arm to the right stops at the gap."""
    bm = np.zeros((12, 12), bool)
    bm[1:11, 1:4] = bm[1:11, 8:11] = bm[8:11, 1:11] = True
    d = star_distances(bm, n_rays=4, rows=np.array([3]), cols=np.array([2]))[0]
    # ray 0 points right (+x): from x = 2.5 to the 0.5 level at x = 4 (1.5 px), not across to 11
    assert d[0] == pytest.approx(1.5, abs=0.3)


@pytest.mark.parametrize("r", [5.0, 7.0, 10.0, 16.0, 25.0])
def test_polygon_from_perfect_distances_reproduces_instance(r: float) -> None:
    rng = np.random.default_rng(int(r))
    for _ in range(10):
        cx, cy = rng.uniform(40, 41, 2)
        ry = r * rng.uniform(0.6, 1.0)
        rot = rng.uniform(0, 180)
        d, _, crop = center_pixel_rays(cx, cy, r, ry, rot)
        col, row = math.floor(cx), math.floor(cy)
        poly = star_polygons(np.array([[col + 0.5, row + 0.5]]), d[None])[0]
        got = polygon_crop(poly, (96, 96)).to_full((96, 96))
        want = crop.to_full((96, 96))
        iou = (got & want).sum() / (got | want).sum()
        assert iou >= 0.95, (r, ry, rot, iou)


def test_star_polygon_vertices_and_area() -> None:
    d = np.array([[2.0, 3.0, 2.0, 3.0]])
    poly = star_polygons(np.array([[10.0, 5.0]]), d)[0]
    assert poly.round(9).tolist() == [[12.0, 5.0], [10.0, 8.0], [8.0, 5.0], [10.0, 2.0]]
    x, y = poly[:, 0], poly[:, 1]
    shoelace = abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2
    assert star_areas(d)[0] == pytest.approx(shoelace)


def test_star_pixels_match_the_rasterizer() -> None:
    """The polar test sets the same pixel centers as raster.shapes' polygon rasterizer."""
    rng = np.random.default_rng(3)
    pts = rng.uniform(10, 54, (30, 2))
    d = rng.uniform(2, 12, (30, 32))
    star, cell = star_pixels(pts, d, (64, 64))
    polys = star_polygons(pts, d)
    for i in range(30):
        want = polygon_crop(polys[i], (64, 64)).to_full((64, 64))
        got = np.zeros(64 * 64, bool)
        got[cell[star == i]] = True
        assert np.array_equal(got.reshape(64, 64), want), i


def test_paint_stars_surest_on_top() -> None:
    pts = np.array([[20.0, 20.0], [28.0, 20.0]])
    d = np.full((2, 32), 7.0)
    lab = paint_stars(pts, d, (40, 50), scores=np.array([0.2, 0.9]))
    assert lab[20, 24] == 2  # the overlap belongs to the surer star
    lab = paint_stars(pts, d, (40, 50), scores=np.array([0.9, 0.2]))
    assert lab[20, 24] == 1
    polys = star_polygons(pts, d)
    assert (lab == 1).sum() == polygon_crop(polys[0], (40, 50)).area


# ---------------------------------------------------------------------------------------------
# Targets of overlapping instances


def test_targets_of_two_overlapping_discs() -> None:
    size = (48, 64)
    a = ellipse_crop(22, 24, 10, 10, 0, size)
    b = ellipse_crop(36, 24, 10, 10, 0, size)  # 14 px apart: they overlap
    t = star_targets([a, b], size, n_rays=32)
    # each disc's center owns its own rays, run through the overlap to its own far side
    assert t.owner[24, 22] == 0 and t.owner[24, 36] == 1
    right = 0  # ray 0 points to +x
    assert t.dist[24, 22, right] == pytest.approx(32 - 22.5, abs=0.5)  # a's edge, not b's
    assert t.dist[24, 36, 16] == pytest.approx(36.5 - 26, abs=0.5)  # ray 16 points to -x: b's left edge
    # a pixel in the overlap belongs to the instance it is deeper in
    assert t.owner[24, 28] == 0 and t.owner[24, 30] == 1
    assert t.prob[24, 22] == pytest.approx(1.0, abs=0.02) and t.prob[24, 36] == pytest.approx(1.0, abs=0.02)
    # background
    assert t.owner[2, 2] == -1 and t.prob[2, 2] == 0 and np.all(t.dist[2, 2] == 0)
    # no pixel of either disc is left without a target
    union = a.to_full(size) | b.to_full(size)
    assert np.array_equal(t.owner >= 0, union)


def test_targets_on_a_grid() -> None:
    size = (40, 50)
    a = ellipse_crop(21, 19, 9, 6, 30, size)
    full = star_targets([a], size, n_rays=16)
    sub = star_targets([a], size, n_rays=16, grid=2)
    assert sub.prob.shape == (20, 25) and sub.grid == 2
    assert np.array_equal(sub.prob, full.prob[::2, ::2])
    assert np.array_equal(sub.dist, full.dist[::2, ::2])


def test_targets_reject_bad_order() -> None:
    a = ellipse_crop(10, 10, 4, 4, 0, (20, 20))
    with pytest.raises(ValueError, match="permutation"):
        star_targets([a], (20, 20), order=[1])


# ---------------------------------------------------------------------------------------------
# Non-maximum suppression


def lens_area(r: float, d: float) -> float:
    """Area of the intersection of two discs of radius r, centers d apart."""
    if d >= 2 * r:
        return 0.0
    return 2 * r * r * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r * r - d * d)


def disc_overlap_distance(r: float, fraction: float) -> float:
    """Center distance at which two discs of radius r overlap by ``fraction`` of their area."""
    lo, hi = 0.0, 2 * r
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if lens_area(r, mid) > fraction * math.pi * r * r else (lo, mid)
    return (lo + hi) / 2


def test_overlaps_match_lens_area() -> None:
    r = 10.0
    for fraction in (0.1, 0.3, 0.5, 0.8):
        gap = disc_overlap_distance(r, fraction)
        pts = np.array([[40.0, 40.0], [40.0 + gap, 40.0]])
        d = np.full((2, 64), r)
        ov = star_overlaps(pts, d, np.array([1.0, 0.5]), (80, 100))
        # 64-gons inscribed in the disc, counted on pixel centers: within 0.03
        assert ov.overlap[0] == pytest.approx(fraction, abs=0.03)


def test_nms_keeps_two_discs_overlapping_30_percent_and_drops_a_duplicate() -> None:
    r = 9.0
    gap = disc_overlap_distance(r, 0.30)
    pts = np.array([[30.0, 30.0], [30.0 + gap, 30.0], [30.6, 30.4], [30.0 + gap, 30.9]])
    d = np.full((4, 32), r)
    d[2] *= 0.95  # second guesses of the same two discs, a little off
    d[3] *= 1.05
    scores = np.array([0.95, 0.9, 0.8, 0.7])
    assert sorted(nms_stars(pts, d, scores, (60, 60), nms_thresh=0.4).tolist()) == [0, 1]
    # the duplicates would be kept only by a threshold above their overlap
    assert sorted(nms_stars(pts, d, scores, (60, 60), nms_thresh=1.0).tolist()) == [0, 1, 2, 3]


def test_nms_keeps_the_surest_and_respects_candidates() -> None:
    pts = np.array([[20.0, 20.0], [20.5, 20.0], [50.0, 20.0]])
    d = np.full((3, 32), 6.0)
    scores = np.array([0.5, 0.9, 0.7])
    ov = star_overlaps(pts, d, scores, (40, 70))
    assert greedy_keep(ov, 0.4).tolist() == [1, 2]  # surest first
    assert greedy_keep(ov, 0.4, candidates=np.array([True, False, True])).tolist() == [2, 0]


def test_nms_stars_outside_the_image_are_dropped() -> None:
    pts = np.array([[-30.0, -30.0], [10.0, 10.0]])
    d = np.full((2, 16), 3.0)
    assert nms_stars(pts, d, np.array([0.9, 0.8]), (20, 20)).tolist() == [1]


def test_nms_empty() -> None:
    assert nms_stars(np.zeros((0, 2)), np.zeros((0, 32)), np.zeros(0), (10, 10)).tolist() == []
