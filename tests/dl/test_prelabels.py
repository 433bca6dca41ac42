"""Pre-labels: predicted instances -> simplified polygons -> CVAT XML -> read back -> the same
pixels (rasterized here independently with skimage's point-in-polygon at pixel centers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.measure import points_in_poly

from defectlab.dl.prelabels import DEFAULT_MAX_AREA_CHANGE, prediction_item, prelabels_dataset, write_cvat_prelabels
from defectlab.formats.cvat_xml import read_cvat
from defectlab.model import Label, Mask, Polygon
from defectlab.raster import mask_to_polygons

H, W = 160, 220
YY, XX = np.mgrid[:H, :W] + 0.5
CLASSES = {1: "cavity", 2: "precipitate"}


def polygon_pixels(points_xy: np.ndarray) -> np.ndarray:
    """Pixels whose center is inside the polygon (even-odd, skimage), independent of defectlab."""
    centers = np.stack([XX.ravel(), YY.ravel()], axis=1)
    return points_in_poly(centers, np.asarray(points_xy)).reshape(H, W)


def predicted_instances() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (semantic, instances, classes) prediction: discs and ellipses of many sizes, a blob,
    two touching squares, a 3-pixel speck."""
    inst = np.zeros((H, W), np.int32)
    classes = []
    rng = np.random.default_rng(4)
    shapes = []
    for k, r in enumerate([2.2, 3.5, 5.0, 8.0, 12.5, 20.0]):
        shapes.append(((XX - (20 + 34 * k)) ** 2 + (YY - 30.3) ** 2 <= r * r, 1))
    for k, (rx, ry, rot) in enumerate([(14, 6, 20), (9, 4, 75), (25, 12, 140)]):
        t = math.radians(rot)
        u = (XX - (40 + 60 * k)) * math.cos(t) + (YY - 85) * math.sin(t)
        v = -(XX - (40 + 60 * k)) * math.sin(t) + (YY - 85) * math.cos(t)
        shapes.append(((u / rx) ** 2 + (v / ry) ** 2 <= 1, 2))
    ang = np.arctan2(YY - 135, XX - 60)
    blob = np.hypot(XX - 60, YY - 135) <= 14 + 3 * np.sin(5 * ang) + rng.normal(0, 0.3, (H, W))
    shapes.append((blob, 2))
    sq = np.zeros((H, W), bool)
    sq[125:140, 110:125] = True
    shapes.append((sq, 1))
    sq2 = np.zeros((H, W), bool)
    sq2[125:140, 125:140] = True  # touches the first square along an edge
    shapes.append((sq2, 1))
    speck = np.zeros((H, W), bool)
    speck[150, 200:203] = True
    shapes.append((speck, 1))
    for i, (m, c) in enumerate(shapes, start=1):
        inst[m & (inst == 0)] = i
        classes.append(c)
    lut = np.array([0, *classes], np.uint8)
    return lut[inst], inst, np.array(classes, np.uint8)


def test_prelabels_read_back_with_the_same_pixels(tmp_path):
    sem, inst, classes = predicted_instances()
    item, notes = prediction_item(sem, inst, classes, "images/a.png", CLASSES, tolerance=0.5)
    assert notes == []
    ds = prelabels_dataset([item], [Label("cavity", color="#1f77b4", edge="inner"), Label("precipitate")])
    xml = tmp_path / "annotations.xml"
    write_cvat_prelabels(ds, xml)
    back = read_cvat(xml)
    assert [lab.name for lab in back.labels] == ["cavity", "precipitate"]
    assert len(back) == 1 and back[0].name == "images/a.png" and back[0].id == 0
    shapes = back[0].shapes
    assert len(shapes) == classes.size
    exact_vertices = 0
    for i, shape in enumerate(shapes, start=1):
        assert isinstance(shape, Polygon) and shape.source == "auto"
        assert shape.label == CLASSES[int(classes[i - 1])]
        truth = inst == i
        drawn = polygon_pixels(shape.points_xy)
        n = truth.sum()
        assert abs(drawn.sum() - n) <= DEFAULT_MAX_AREA_CHANGE * n, (i, drawn.sum(), n)
        assert (drawn & truth).sum() / (drawn | truth).sum() >= 0.95, i
        exact_vertices += len(mask_to_polygons(truth)[0][0])
    # simplification pays: far fewer vertices than the exact trace
    assert sum(len(s.points_xy) for s in shapes) < 0.5 * exact_vertices


@pytest.mark.parametrize("tolerance", [0.0, 0.5, 2.0, 5.0])
def test_area_guarantee_holds_for_any_tolerance(tolerance):
    sem, inst, classes = predicted_instances()
    item, _ = prediction_item(sem, inst, classes, "a.png", CLASSES, tolerance=tolerance, max_area_change=0.01)
    for i, shape in enumerate(item.shapes, start=1):
        truth = inst == i
        drawn = polygon_pixels(shape.points_xy)
        assert abs(int(drawn.sum()) - int(truth.sum())) <= 0.01 * truth.sum()
        if tolerance == 0:  # the exact trace gives back the very same pixels
            assert np.array_equal(drawn, truth)


def test_an_instance_with_a_hole_becomes_a_mask(tmp_path):
    inst = np.zeros((H, W), np.int32)
    ring = (np.hypot(XX - 50, YY - 50) <= 15) & (np.hypot(XX - 50, YY - 50) > 8)
    inst[ring] = 1
    item, notes = prediction_item(inst.astype(np.uint8), inst, np.array([1], np.uint8), "r.png", {1: "loop"})
    assert isinstance(item.shapes[0], Mask) and [n.code for n in notes] == ["prelabel-mask"]
    assert "hole" in notes[0].message
    xml = tmp_path / "r.xml"
    write_cvat_prelabels(prelabels_dataset([item], [Label("loop")]), xml)
    mask = read_cvat(xml)[0].shapes[0]
    full = np.zeros((H, W), bool)
    full[mask.top:mask.top + mask.bitmap.shape[0], mask.left:mask.left + mask.bitmap.shape[1]] = mask.bitmap
    assert np.array_equal(full, ring)


def test_names_ids_and_classes_for_cvat():
    sem, inst, classes = predicted_instances()

    class Pred:  # the attributes prelabels_dataset reads from a Prediction
        semantic, instances, instance_classes = sem, inst, classes

    from defectlab.dl.model_io import ClassInfo

    infos = [ClassInfo(0, "background"), ClassInfo(1, "cavity", "#112233", "inner"), ClassInfo(2, "precipitate")]
    ds = prelabels_dataset([("b.png", Pred()), ("a.png", Pred())], infos)
    assert [lab.name for lab in ds.labels] == ["cavity", "precipitate"]
    assert ds.labels[0].color == "#112233" and ds.labels[0].edge == "inner"
    assert [(it.name, it.id) for it in ds.items] == [("b.png", 1), ("a.png", 0)]  # id = position by name
    with pytest.raises(ValueError, match="max_area_change"):
        prediction_item(sem, inst, classes, "a", CLASSES, max_area_change=1.5)
