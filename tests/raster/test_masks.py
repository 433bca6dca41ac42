"""Semantic masks, instance ids and instance crops: z-order, visibility, degenerate shapes."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.errors import DatasetError
from defectlab.model import Box, Ellipse, Item, Points, Polygon, Polyline, Tag
from defectlab.raster import instance_labels, instances, semantic_mask


def square(x1, y1, x2, y2):
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], float)


def region(size, x1, y1, x2, y2):
    m = np.zeros(size, bool)
    m[y1:y2, x1:x2] = True
    return m


CLASSES = {"cavity": 1, "loop": 2, "line": 3}


def test_semantic_mask_paints_higher_z_on_top_ties_in_file_order():
    size = (20, 20)
    item = Item("a.png", size, (
        Polygon(label="loop", points_xy=square(2, 2, 12, 12), z_order=5),
        Polygon(label="cavity", points_xy=square(6, 6, 16, 16), z_order=1),   # under the loop
        Polygon(label="line", points_xy=square(0, 14, 4, 18), z_order=0),
        Polygon(label="cavity", points_xy=square(2, 14, 6, 18), z_order=0),   # same z, later: on top
        Points(label="cavity", points_xy=[(19, 19)]),
        Tag(label="loop"),
    ))
    m = semantic_mask(item, CLASSES)
    expected = np.zeros(size, np.uint8)
    expected[region(size, 6, 6, 16, 16)] = 1
    expected[region(size, 2, 2, 12, 12)] = 2
    expected[region(size, 0, 14, 4, 18)] = 3
    expected[region(size, 2, 14, 6, 18)] = 1
    assert m.dtype == np.uint8 and m.shape == size
    assert np.array_equal(m, expected)


def test_instance_labels_hold_topmost_shape_index():
    size = (10, 10)
    item = Item("a.png", size, (
        Polygon(label="cavity", points_xy=square(0, 0, 6, 6), z_order=2),
        Polygon(label="cavity", points_xy=square(3, 3, 9, 9), z_order=0),
    ))
    lab = instance_labels(item)
    assert lab.dtype == np.int32
    assert lab[1, 1] == 1 and lab[4, 4] == 1 and lab[8, 8] == 2 and lab[0, 9] == 0


def test_instances_full_extent_and_visible_only():
    size = (10, 10)
    item = Item("a.png", size, (
        Polygon(label="cavity", points_xy=square(0, 0, 6, 6), z_order=0),
        Polygon(label="loop", points_xy=square(3, 3, 9, 9), z_order=1),
    ))
    full_inst, notes = instances(item, CLASSES)
    assert notes == []
    assert [i.class_id for i in full_inst] == [1, 2]
    assert np.array_equal(full_inst[0].crop.to_full(size), region(size, 0, 0, 6, 6))
    vis, _ = instances(item, CLASSES, visible_only=True)
    expected = region(size, 0, 0, 6, 6) & ~region(size, 3, 3, 9, 9)
    assert np.array_equal(vis[0].crop.to_full(size), expected)
    assert vis[0].box_xyxy == (0, 0, 6, 6)
    assert np.array_equal(vis[1].crop.to_full(size), region(size, 3, 3, 9, 9))


def test_degenerate_instances_are_reported_not_dropped_silently():
    size = (10, 10)
    item = Item("a.png", size, (
        Ellipse(label="cavity", cx=5.0, cy=5.0, rx=0.3, ry=0.3),  # covers no pixel center
        Box(label="loop", xyxy=(20, 20, 30, 30)),                  # outside the image
        Polygon(label="cavity", points_xy=square(1, 1, 4, 4), z_order=0),
        Polygon(label="cavity", points_xy=square(0, 0, 5, 5), z_order=3),  # hides the one before
    ))
    inst, notes = instances(item, CLASSES)
    assert [i.index for i in inst] == [2, 3]
    assert [n.where for n in notes] == ["shape 0", "shape 1"]
    assert all(n.code == "degenerate-instance" and n.item == "a.png" for n in notes)
    _, notes_vis = instances(item, CLASSES, visible_only=True)
    assert "shape 2" in [n.where for n in notes_vis]
    assert "fully covered" in [n for n in notes_vis if n.where == "shape 2"][0].message


def test_polyline_is_painted_with_its_width():
    size = (20, 40)
    item = Item("a.png", size, (Polyline(label="line", points_xy=[(5, 10.5), (35, 10.5)]),))
    m = semantic_mask(item, CLASSES, line_width=5)
    cols = np.nonzero(m[:, 20])[0]
    assert cols.tolist() == [8, 9, 10, 11, 12]


def test_unknown_class_is_a_clear_error():
    item = Item("a.png", (8, 8), (Polygon(label="void", points_xy=square(1, 1, 3, 3)),))
    with pytest.raises(DatasetError, match="a.png.*'void'"):
        semantic_mask(item, CLASSES)


def test_semantic_mask_paints_the_crops_it_is_handed_and_rasterizes_the_others():
    from defectlab.raster import Crop, rasterize

    size = (12, 12)
    item = Item("a.png", size, (Polygon(label="cavity", points_xy=square(1, 1, 5, 5)),
                                Ellipse(label="loop", cx=8, cy=8, rx=2, ry=2, z_order=1)))
    ell = np.zeros(size, np.uint8)
    ell[rasterize(item.shapes[1], size).to_full(size)] = 2
    handed = semantic_mask(item, CLASSES, crops={0: Crop(9, 0, np.ones((2, 3), bool))})  # not the square
    expect = ell.copy()
    expect[0:2, 9:12] = 1
    assert np.array_equal(handed, expect)
    tight = {i: rasterize(s, size).tight() for i, s in enumerate(item.shapes)}
    assert np.array_equal(semantic_mask(item, CLASSES, crops=tight), semantic_mask(item, CLASSES))


def test_instance_labels_paint_the_crops_they_are_handed():
    from defectlab.raster import Crop, rasterize

    size = (12, 12)
    item = Item("a.png", size, (Polygon(label="cavity", points_xy=square(1, 1, 5, 5)),
                                Ellipse(label="loop", cx=8, cy=8, rx=2, ry=2)))
    ids = instance_labels(item, crops={0: Crop(9, 0, np.ones((2, 3), bool))})
    assert np.array_equal(ids == 1, Crop(9, 0, np.ones((2, 3), bool)).to_full(size))
    assert np.array_equal(ids == 2, rasterize(item.shapes[1], size).to_full(size))
    tight = {i: rasterize(s, size).tight() for i, s in enumerate(item.shapes)}
    assert np.array_equal(instance_labels(item, crops=tight), instance_labels(item))
