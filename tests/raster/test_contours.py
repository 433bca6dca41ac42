"""Tracing pixels back to polygons: exact for tolerance 0, holes flagged, areas kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from defectlab.model import Box, Ellipse, Mask, Points, Polygon, Polyline
from defectlab.raster import polygon_crop, rasterize
from defectlab.raster.contours import ellipse_polygon, mask_to_polygons, shape_polygons


def fill(rings, size):
    out = np.zeros(size, bool)
    for r in rings:
        out |= polygon_crop(r, size).to_full(size)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_traced_rings_rasterize_back_to_the_same_pixels(seed):
    rng = np.random.default_rng(seed)
    size = (30, 40)
    bm = ndimage.binary_opening(rng.random(size) < 0.6)  # blobs of random shape, hole-free after fill
    bm = ndimage.binary_fill_holes(bm)
    rings, holes = mask_to_polygons(bm)
    assert not holes
    _, n_regions = ndimage.label(bm, structure=np.ones((3, 3)))
    assert len(rings) == n_regions
    assert np.array_equal(fill(rings, size), bm)


def test_offset_and_holes():
    donut = np.ones((5, 5), bool)
    donut[2, 2] = False
    rings, holes = mask_to_polygons(donut, x0=7, y0=3)
    assert holes and len(rings) == 1
    assert np.array_equal(fill(rings, (10, 14))[3:8, 7:12], np.ones((5, 5), bool))


def test_simplification_keeps_pixels_close():
    crop = rasterize(Ellipse(label="c", cx=30.3, cy=28.9, rx=20, ry=12, rotation_deg=25), (64, 64))
    exact, _ = mask_to_polygons(crop.bitmap, x0=crop.x0, y0=crop.y0)
    simple, _ = mask_to_polygons(crop.bitmap, x0=crop.x0, y0=crop.y0, tolerance=0.5)
    assert len(simple[0]) < len(exact[0]) / 2
    diff = fill(simple, (64, 64)) ^ crop.to_full((64, 64))
    assert diff.sum() < 0.05 * crop.area


@pytest.mark.parametrize("rx,ry,rot", [(3, 3, 0), (10, 5, 30), (200, 40, 77)])
def test_ellipse_polygon_keeps_area_and_stays_within_tolerance(rx, ry, rot):
    e = Ellipse(label="c", cx=5.5, cy=-3.25, rx=rx, ry=ry, rotation_deg=rot)
    p = ellipse_polygon(e, tolerance=0.05)
    x, y = p[:, 0], p[:, 1]
    area = abs((x * np.roll(y, -1) - y * np.roll(x, -1)).sum()) / 2
    assert area == pytest.approx(math.pi * rx * ry, rel=1e-9)
    # every vertex within tolerance of the ellipse: its implicit value stays near 1
    t = math.radians(rot)
    u = ((x - 5.5) * math.cos(t) + (y + 3.25) * math.sin(t)) / rx
    v = (-(x - 5.5) * math.sin(t) + (y + 3.25) * math.cos(t)) / ry
    radial = np.sqrt(u * u + v * v)
    assert np.all(np.abs(radial - 1) * max(rx, ry) < 0.05)


def test_shape_polygons_for_every_kind():
    size = (64, 64)
    rings, _ = shape_polygons(Polygon(label="p", points_xy=[(1, 1), (9, 1), (5, 7)]), size)
    assert rings[0].tolist() == [[1, 1], [9, 1], [5, 7]]
    rings, _ = shape_polygons(Box(label="b", xyxy=(10, 10, 20, 14), rotation_deg=90), size)
    assert np.allclose(np.sort(rings[0][:, 0]), [13, 13, 17, 17])
    line = Polyline(label="l", points_xy=[(5, 40.5), (50, 40.5)])
    rings, holes = shape_polygons(line, size, line_width=3)
    assert not holes and np.array_equal(fill(rings, size), rasterize(line, size, line_width=3).to_full(size))
    bm = np.zeros((6, 6), bool)
    bm[1:5, 2:4] = True
    rings, _ = shape_polygons(Mask(label="m", bitmap=bm, left=30, top=30), size)
    assert fill(rings, size).sum() == 8
    assert shape_polygons(Points(label="x", points_xy=[(1, 1)]), size) == ([], False)
