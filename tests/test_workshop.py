"""The workshop's real CVAT job exports: our masks against the exact polygon geometry and
against the mask the workshop's own notebook made (int-truncated vertices + filled contours)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from skimage.measure import points_in_poly

import defectlab


def polygons_from_xml(path):
    """Independent parse of the polygons' vertices with the standard library."""
    root = ET.parse(path).getroot()
    return [np.array([[float(v) for v in p.split(",")] for p in el.get("points").split(";")])
            for el in root.iter("polygon")]


def shoelace(p):
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def polygon_centroid(p):
    x, y = p[:, 0], p[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = cross.sum() / 2
    return ((x + xn) * cross).sum() / (6 * a), ((y + yn) * cross).sum() / (6 * a)


@pytest.fixture(scope="module")
def lab1(shared_data):
    return shared_data / "workshop" / "DL_for_Microscopy_Train_Lab_1.xml"


def test_lab1_reads_37_bubbles_with_their_image(lab1):
    ds = defectlab.read(lab1)
    assert len(ds) == 1
    item = ds[0]
    assert item.size_hw == (512, 512)
    assert [lab.name for lab in ds.labels] == ["bubble"]
    assert len(item.shapes) == 37 and {s.kind for s in item.shapes} == {"polygon"}
    assert item.image is not None and item.image.path.name == "DL_for_Microscopy_Train_Img_1.png"


def union_area_supersampled(polys, size_hw, k=8):
    """Area of the union of polygons from a k x k sub-pixel grid (skimage's point test)."""
    covered = np.zeros((size_hw[0] * k, size_hw[1] * k), bool)
    for p in polys:
        x1, y1 = np.maximum(np.floor(p.min(0) * k).astype(int), 0)
        x2, y2 = np.minimum(np.ceil(p.max(0) * k).astype(int) + 1, [size_hw[1] * k, size_hw[0] * k])
        yy, xx = np.mgrid[y1:y2, x1:x2]
        pts = np.stack([(xx.ravel() + 0.5) / k, (yy.ravel() + 0.5) / k], axis=1)
        covered[y1:y2, x1:x2] |= points_in_poly(pts, p).reshape(xx.shape)
    return covered.sum() / k**2


def test_lab1_mask_area_matches_exact_polygons_and_workshop_mask_does_not(lab1, shared_data, capsys):
    """The semantic mask is the union of the (partly overlapping) bubbles."""
    polys = polygons_from_xml(lab1)
    exact = union_area_supersampled(polys, (512, 512))
    ds = defectlab.read(lab1)
    ours = int((defectlab.semantic_mask(ds[0], ds.class_index()) > 0).sum())
    workshop = np.load(shared_data / "workshop" / "DL_for_Microscopy_Train_Img_1_unet_mask.npy")
    theirs = int((workshop[0] > 0).sum())
    with capsys.disabled():
        print(f"\nworkshop Lab_1 area vs exact polygons: ours {ours / exact - 1:+.2%}, "
              f"workshop notebook {theirs / exact - 1:+.2%}")
    assert abs(ours / exact - 1) < 0.005
    assert theirs / exact - 1 > 0.02


def test_lab1_instances_keep_area_and_centroid(lab1):
    polys = polygons_from_xml(lab1)
    ds = defectlab.read(lab1)
    inst, _ = defectlab.instances(ds[0], ds.class_index())
    total = sum(i.crop.area for i in inst)
    assert abs(total / sum(shoelace(p) for p in polys) - 1) < 0.002
    ds = defectlab.read(lab1)
    inst, notes = defectlab.instances(ds[0], ds.class_index())
    assert notes == [] and len(inst) == 37
    errs = []
    for poly, ins in zip(polys, inst):
        ys, xs = np.nonzero(ins.crop.bitmap)
        cx, cy = polygon_centroid(poly)
        errs.append(math.hypot(xs.mean() + ins.crop.x0 + 0.5 - cx, ys.mean() + ins.crop.y0 + 0.5 - cy))
        assert abs(len(xs) - shoelace(poly)) <= 0.5 * math.sqrt(shoelace(poly)) + 2
    assert np.mean(errs) < 0.1


def test_example_export_keeps_the_ellipse(shared_data):
    path = shared_data / "workshop" / "DL_for_Microscopy_Train_eg_lab.xml"
    ds = defectlab.read(path)
    kinds = [s.kind for s in ds[0].shapes]
    assert kinds == ["ellipse", "polygon"]
    el = ET.parse(path).getroot().find("image/ellipse")
    rx, ry = float(el.get("rx")), float(el.get("ry"))
    inst, _ = defectlab.instances(ds[0], ds.class_index())
    assert abs(inst[0].crop.area / (math.pi * rx * ry) - 1) < 0.01
    img = np.asarray(Image.open(ds[0].image.path))
    assert img.shape[:2] == ds[0].size_hw
