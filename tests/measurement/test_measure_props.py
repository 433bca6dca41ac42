"""Per-defect measurements against analytic values of discs, ellipses and boxes drawn at known
sub-pixel positions, in a known calibration; and the workshop's polygons against their exact areas."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import defectlab
from defectlab.measurement import DEFECT_COLUMNS, measure_item
from defectlab.model import Box, Ellipse, Item, Polygon, Polyline

PX = 0.38  # nm per pixel


def one(shape, size_hw=(128, 128), **kw):
    table, notes = measure_item(Item("a.png", size_hw, (shape,)), **kw)
    assert not notes and len(table) == 1
    return {k: table[k][0] for k in table.columns}


def test_columns_are_the_documented_ones():
    table, _ = measure_item(Item("a.png", (32, 32), (Ellipse(label="c", cx=16, cy=16, rx=4, ry=4),)))
    assert table.columns == list(DEFECT_COLUMNS)


@pytest.mark.parametrize("r", [4.0, 8.0, 20.0])
def test_disc_area_and_diameter_in_nm(r):
    """Mean over random sub-pixel centers: pixel sampling is unbiased, so the means approach
    the analytic πr² and 2r (scatter of one disc ~ its perimeter / √12 px)."""
    rng = np.random.default_rng(int(r))
    rows = [one(Ellipse(label="cavity", cx=64 + dx, cy=64 + dy, rx=r, ry=r), pixel_size_nm=PX)
            for dx, dy in rng.uniform(0, 1, (60, 2))]
    area = np.mean([row["area_nm2"] for row in rows])
    diam = np.mean([row["diameter_nm"] for row in rows])
    assert area == pytest.approx(math.pi * r * r * PX * PX, rel=0.01)
    assert diam == pytest.approx(2 * r * PX, rel=0.005)
    for row in rows:
        assert row["area_nm2"] == pytest.approx(row["area_px"] * PX * PX)
        assert row["minor_axis_px"] / row["major_axis_px"] > 0.85 and row["solidity"] > 0.9


@pytest.mark.parametrize("rot", [0.0, 30.0, 75.0, 90.0, 120.0, 165.0])
def test_rotated_ellipse_axes_orientation_and_eccentricity(rot):
    a, b = 24.0, 9.0
    row = one(Ellipse(label="loop", cx=64.3, cy=63.7, rx=a, ry=b, rotation_deg=rot), pixel_size_nm=PX)
    # Axes of the ellipse with the same second moments: 2a and 2b for a uniform ellipse.
    assert row["major_axis_nm"] == pytest.approx(2 * a * PX, rel=0.01)
    assert row["minor_axis_nm"] == pytest.approx(2 * b * PX, rel=0.02)
    # Orientation in the Ellipse convention: degrees clockwise on screen from +x, in [0, 180).
    diff = (row["orientation_deg"] - rot + 90.0) % 180.0 - 90.0
    assert abs(diff) < 0.5
    assert 0.0 <= row["orientation_deg"] < 180.0
    assert row["eccentricity"] == pytest.approx(math.sqrt(1 - (b / a) ** 2), abs=0.005)
    assert row["area_px"] == pytest.approx(math.pi * a * b, rel=0.02)


def test_orientation_matches_the_ellipse_rotation_on_screen():
    """A long ellipse rotated 45° clockwise on screen runs from top-left to bottom-right (y down):
    its pixels at larger x have larger y."""
    e = Ellipse(label="loop", cx=64, cy=64, rx=30, ry=4, rotation_deg=45)
    row = one(e)
    assert row["orientation_deg"] == pytest.approx(45.0, abs=0.5)
    mask = defectlab.rasterize(e, (128, 128)).to_full((128, 128))
    ys, xs = np.nonzero(mask)
    assert np.corrcoef(xs, ys)[0, 1] > 0.9


def test_centroid_in_image_coordinates():
    """(0, 0) is the top-left corner of the top-left pixel: a box from x=10 to x=20 has its
    centroid at x=15, not 14.5."""
    row = one(Box(label="p", xyxy=(10, 30, 20, 50)), pixel_size_nm=PX)
    assert (row["centroid_x_px"], row["centroid_y_px"]) == (15.0, 40.0)
    assert row["centroid_x_nm"] == pytest.approx(15.0 * PX)
    assert (row["bbox_x1_px"], row["bbox_y1_px"], row["bbox_x2_px"], row["bbox_y2_px"]) == (10, 30, 20, 50)
    assert row["area_px"] == 200 and row["solidity"] == 1.0


@pytest.mark.parametrize("cx, cy", [(40.25, 61.5), (70.8, 33.1)])
def test_ellipse_centroid(cx, cy):
    row = one(Ellipse(label="c", cx=cx, cy=cy, rx=12, ry=7, rotation_deg=20))
    assert row["centroid_x_px"] == pytest.approx(cx, abs=0.05)
    assert row["centroid_y_px"] == pytest.approx(cy, abs=0.05)


def test_concave_polygon_solidity():
    # An L: a 20×20 square without its 10×10 top-right quarter: area 300, convex hull 350.
    L = Polygon(label="p", points_xy=[(10, 10), (20, 10), (20, 20), (30, 20), (30, 30), (10, 30)])
    row = one(L)
    assert row["area_px"] == 300
    assert row["solidity"] == pytest.approx(300 / 350, abs=0.03)


def test_border_touching_flag():
    item = Item("a.png", (64, 64), (
        Ellipse(label="c", cx=2, cy=30, rx=6, ry=6),  # cut by the left edge
        Ellipse(label="c", cx=32, cy=32, rx=6, ry=6),
        Box(label="c", xyxy=(50, 0, 60, 8)),  # touches the top row
        Box(label="c", xyxy=(54, 54, 64, 64)),  # touches the bottom-right corner
        Box(label="c", xyxy=(40, 1, 45, 6)),  # one pixel from the top: inside
    ))
    table, _ = measure_item(item)
    assert table["touches_border"].tolist() == [True, False, True, True, False]


def test_no_pixel_size_gives_nan_nm_columns():
    row = one(Ellipse(label="c", cx=30, cy=30, rx=5, ry=5))
    assert math.isnan(row["diameter_nm"]) and math.isnan(row["pixel_size_nm"])
    assert row["diameter_px"] > 0


def test_mean_intensity_against_numpy():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (64, 80)).astype(np.uint8)
    e = Ellipse(label="c", cx=30.2, cy=25.7, rx=9, ry=5, rotation_deg=33)
    mask = defectlab.rasterize(e, (64, 80)).to_full((64, 80))
    row = one(e, size_hw=(64, 80), image=image)
    assert row["mean_intensity"] == pytest.approx(image[mask].mean())


def test_polyline_length_from_its_geometry():
    line = Polyline(label="dislocation line", points_xy=[(10, 10), (40, 50), (70, 50)])
    row = one(line, pixel_size_nm=2.0)
    assert row["length_px"] == pytest.approx(50.0 + 30.0)
    assert row["length_nm"] == pytest.approx(160.0)
    assert row["kind"] == "polyline"


def test_scores_from_attributes():
    item = Item("a.png", (64, 64), (
        Ellipse(label="c", cx=20, cy=20, rx=5, ry=5, attributes={"score": "0.9"}),
        Ellipse(label="c", cx=40, cy=40, rx=5, ry=5, attributes={"confidence": "0.25"}),
        Ellipse(label="c", cx=20, cy=45, rx=5, ry=5),
    ))
    table, _ = measure_item(item)
    assert table["score"][:2].tolist() == [0.9, 0.25] and math.isnan(table["score"][2])


def test_degenerate_shapes_are_noted_not_measured():
    item = Item("a.png", (64, 64), (Ellipse(label="c", cx=20.0, cy=20.0, rx=0.2, ry=0.2),
                                    Ellipse(label="c", cx=40, cy=40, rx=5, ry=5)))
    table, notes = measure_item(item)
    assert len(table) == 1 and table["shape_index"].tolist() == [1]
    assert [n.code for n in notes] == ["degenerate-instance"]


def test_workshop_polygons_areas_match_their_shoelace_areas(shared_data):
    """The workshop's 37 hand-drawn bubble polygons: our pixel areas against the exact polygon
    areas (shoelace, parsed here with ElementTree)."""
    path = shared_data / "workshop" / "DL_for_Microscopy_Train_Lab_1.xml"
    polys = [np.array([[float(v) for v in p.split(",")] for p in el.get("points").split(";")])
             for el in ET.parse(path).getroot().iter("polygon")]
    exact = np.array([0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1)))
                      for p in polys])
    ds = defectlab.read(path)
    table, _ = measure_item(ds[0], ds.class_index())
    assert len(table) == 37
    ratio = table["area_px"].astype(float).sum() / exact.sum()
    assert ratio == pytest.approx(1.0, abs=0.01)
    # Equivalent diameters from the exact areas, per bubble (pixel sampling: small scatter).
    np.testing.assert_allclose(table["diameter_px"].astype(float), np.sqrt(4 * exact / np.pi), rtol=0.08)


def test_every_defect_measured_whole_even_when_overlapping():
    """Against scikit-image on a full-image mask per defect (the slow, obvious way), for random
    overlapping ellipses with an intensity image."""
    from skimage.measure import regionprops_table

    rng = np.random.default_rng(11)
    size_hw = (90, 120)
    shapes = tuple(Ellipse(label="c", cx=rng.uniform(0, 120), cy=rng.uniform(0, 90), rx=rng.uniform(1, 15),
                           ry=rng.uniform(1, 15), rotation_deg=rng.uniform(0, 180)) for _ in range(30))
    image = rng.uniform(0, 1, size_hw)
    table, notes = measure_item(Item("a.png", size_hw, shapes), image=image, pixel_size_nm=PX)
    measured = table["shape_index"].tolist()
    assert len(measured) + len(notes) == 30
    for row, i in zip(table.rows(), measured):
        full = defectlab.rasterize(shapes[i], size_hw).to_full(size_hw).astype(np.uint8)
        ref = {k: float(v[0]) for k, v in regionprops_table(full, intensity_image=image, properties=(
            "area", "axis_major_length", "axis_minor_length", "solidity", "centroid", "intensity_mean",
            "eccentricity")).items()}
        assert row["area_px"] == ref["area"]
        assert row["major_axis_px"] == pytest.approx(ref["axis_major_length"], abs=1e-9)
        assert row["minor_axis_px"] == pytest.approx(ref["axis_minor_length"], abs=1e-9)
        assert row["solidity"] == pytest.approx(ref["solidity"], abs=1e-9)
        assert row["eccentricity"] == pytest.approx(ref["eccentricity"], abs=1e-9)
        assert row["mean_intensity"] == pytest.approx(ref["intensity_mean"], abs=1e-12)
        assert row["centroid_x_px"] == pytest.approx(ref["centroid-1"] + 0.5, abs=1e-9)
        assert row["centroid_y_px"] == pytest.approx(ref["centroid-0"] + 0.5, abs=1e-9)
