"""Holes between shapes, duplicates, heavy overlaps and solidity, on shapes built in code."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import convex_hull_image

from defectlab.model import Box, Dataset, Ellipse, Item, Label, Mask, Polygon
from defectlab.qc import check


def _ds(*shapes, size_hw=(80, 80)):
    return Dataset((Label("precipitate"),), (Item("a.png", size_hw, shapes),))


def _found(ds, **kw):
    return {(f.code, f.shape): f for f in check(ds, use_images=False, **kw).findings}


def test_hole_inside_a_ring_of_boxes_and_none_against_the_border():
    frame = (Box(label="precipitate", xyxy=(20, 20, 40, 24)), Box(label="precipitate", xyxy=(20, 30, 40, 34)),
             Box(label="precipitate", xyxy=(20, 20, 24, 34)), Box(label="precipitate", xyxy=(36, 20, 40, 34)))
    found = _found(_ds(*frame))
    hole = found[("overlap-hole", None)]
    assert hole.value == 12 * 6  # columns 24..35, rows 24..29
    assert hole.box_xyxy == (24, 24, 36, 30)
    assert hole.related == (0, 1, 2, 3)
    assert set(found) == {("overlap-hole", None)}
    # the same frame open on one side is no hole; pushed against the image border, neither
    assert not _found(_ds(*frame[:3]))
    # without its left side, pushed against the image's left border: open to the border, no hole
    against = tuple(b.replace(xyxy=(b.xyxy[0] - 20, b.xyxy[1], b.xyxy[2] - 20, b.xyxy[3]))
                    for k, b in enumerate(frame) if k != 2)
    assert against[0].xyxy[0] == 0
    assert ("overlap-hole", None) not in _found(_ds(*against))
    # a larger pocket than the threshold is left alone
    assert not _found(_ds(*frame), hole_area_px=71)
    assert ("overlap-hole", None) in _found(_ds(*frame), hole_area_px=72)


def test_hole_inside_one_mask():
    ring = np.ones((9, 9), bool)
    ring[3:6, 3:6] = False
    hole = _found(_ds(Mask(label="precipitate", bitmap=ring, left=10, top=10)))[("overlap-hole", None)]
    assert hole.value == 9 and hole.related == (0,) and hole.box_xyxy == (13, 13, 16, 16)


def test_duplicates_and_heavy_overlaps_need_the_same_label():
    a = Ellipse(label="precipitate", cx=30, cy=30, rx=10, ry=8)
    ds = Dataset((Label("precipitate"), Label("cavity")), (Item("a.png", (80, 80), (
        a, a.replace(cx=30.2), a.replace(label="cavity"), a.replace(cx=35, label="cavity", occluded=True))),))
    found = _found(ds)
    assert set(found) == {("shape-duplicate", 1)}  # cavity 2 vs 3: 3 is occluded; different labels: not compared
    assert found[("shape-duplicate", 1)].related == (0,)


@pytest.mark.parametrize("gap, flagged", [(14, True), (0, False)])
def test_concave_dumbbell(gap, flagged):
    # two 12 px squares joined by a 2 px bridge of length `gap` (0: one 24 x 12 bar)
    pts = [(10, 10), (22, 10), (22, 15), (22 + gap, 15), (22 + gap, 10), (34 + gap, 10), (34 + gap, 22),
           (22 + gap, 22), (22 + gap, 17), (22, 17), (22, 22), (10, 22)]
    shape = Polygon(label="precipitate", points_xy=pts)
    from defectlab.raster import rasterize

    crop = rasterize(shape, (80, 80)).tight()
    solidity = crop.bitmap.sum() / convex_hull_image(crop.bitmap).sum()
    found = _found(_ds(shape))
    assert (("shape-concave", 0) in found) == flagged
    if flagged:
        assert found[("shape-concave", 0)].value == pytest.approx(solidity)
        assert solidity < 0.75
        # marked occluded, or below a lower threshold: not flagged
        assert not _found(_ds(shape.replace(occluded=True)))
        assert not _found(_ds(shape), solidity=solidity - 0.01)
