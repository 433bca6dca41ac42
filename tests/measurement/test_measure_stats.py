"""Statistics on hand-computable configurations: boxes of exact pixel areas in images of known size
and pixel size; every expected number is worked out here from the geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from defectlab.imaging.micrograph import CalibrationWarning
from defectlab.measurement import ImageInfo, measure, measure_item, statistics, swelling
from defectlab.measurement.table import Table
from defectlab.model import Box, Dataset, Item, Label, Polyline

CAVITY_AREAS = (100, 200, 36)  # px, the three cavities inside the image


@pytest.fixture(scope="module")
def dataset():
    """One 200×100 image (W×H): 3 cavities inside, 1 cut by the left edge, 1 loop."""
    shapes = (
        Box(label="cavity", xyxy=(20, 20, 30, 30)),  # 100 px
        Box(label="cavity", xyxy=(50, 50, 70, 60)),  # 200 px
        Box(label="cavity", xyxy=(100, 40, 106, 46)),  # 36 px
        Box(label="cavity", xyxy=(0, 70, 8, 80)),  # 80 px, touches the border
        Box(label="loop", xyxy=(150, 10, 160, 20)),  # 100 px
    )
    return Dataset((Label("cavity"), Label("loop")), (Item("a.png", (100, 200), shapes),))


@pytest.fixture(scope="module")
def result(dataset):
    return measure(dataset, pixel_size="2nm", thickness="50nm")


def row_of(table, label):
    rows = [r for r in table.rows() if r["label"] == label]
    assert len(rows) == 1
    return rows[0]


def test_counts_and_densities(result):
    cav = row_of(result.per_set, "cavity")
    assert (cav["count"], cav["count_border"], cav["count_sized"]) == (4, 1, 3)
    # A = 100 × 200 px × (2 nm)² = 80 000 nm² = 0.08 µm²; t = 50 nm.
    assert cav["image_area_um2"] == pytest.approx(0.08)
    assert cav["density_per_um2"] == pytest.approx(4 / 0.08)
    assert cav["density_per_px2"] == pytest.approx(4 / 20000)
    assert cav["density_per_m3"] == pytest.approx(4 / (80000e-18 * 50e-9))  # 1e21 m⁻³
    loop = row_of(result.per_set, "loop")
    assert loop["count"] == 1 and loop["density_per_um2"] == pytest.approx(1 / 0.08)


def test_size_distribution_without_the_border_cavity(result):
    cav = row_of(result.per_set, "cavity")
    d_nm = np.sqrt(4 * np.array(CAVITY_AREAS) / np.pi) * 2.0
    assert cav["size_measure"] == "diameter"
    assert cav["size_mean_nm"] == pytest.approx(d_nm.mean())
    assert cav["size_std_nm"] == pytest.approx(d_nm.std(ddof=1))
    assert cav["size_sem_nm"] == pytest.approx(scipy.stats.sem(d_nm))
    assert cav["size_median_nm"] == pytest.approx(np.median(d_nm))
    assert cav["size_mean_px"] == pytest.approx(d_nm.mean() / 2)
    h = result.histograms["cavity"]
    assert h["unit"] == "nm" and sum(h["counts"]) == 3


def test_area_fraction(result):
    assert row_of(result.per_set, "cavity")["area_fraction"] == pytest.approx((100 + 200 + 36 + 80) / 20000)
    assert row_of(result.per_set, "loop")["area_fraction"] == pytest.approx(100 / 20000)


def test_swelling(result):
    d_nm = np.sqrt(4 * np.array(CAVITY_AREAS) / np.pi) * 2.0
    v = sum(math.pi * d**3 / 6 for d in d_nm)
    expected = 100 * v / (80000 * 50 - v)
    assert row_of(result.per_set, "cavity")["swelling_percent"] == pytest.approx(expected)
    assert row_of(result.per_image, "cavity")["swelling_percent"] == pytest.approx(expected)
    assert math.isnan(row_of(result.per_set, "loop")["swelling_percent"])  # not a cavity


def test_swelling_function_on_round_numbers():
    # One 10 nm cavity (V = 523.599 nm³) in 100 nm × 100 nm × 10 nm = 1e5 nm³.
    v = math.pi * 1000 / 6
    assert swelling([10.0], area_nm2=1e4, thickness_nm=10.0) == pytest.approx(v / (1e5 - v))


def test_include_border(dataset):
    m = measure(dataset, pixel_size="2nm", include_border=True)
    cav = row_of(m.per_set, "cavity")
    assert cav["count_sized"] == 4
    d_px = np.sqrt(4 * np.array(CAVITY_AREAS + (80,)) / np.pi)
    assert cav["size_mean_px"] == pytest.approx(d_px.mean())


def test_overlapping_defects_cover_their_union_once():
    item = Item("a.png", (50, 50), (Box(label="cavity", xyxy=(10, 10, 20, 20)), Box(label="cavity", xyxy=(15, 15, 25, 25))))
    m = measure(Dataset((Label("cavity"),), (item,)), pixel_size=1.0)
    assert row_of(m.per_set, "cavity")["area_fraction"] == pytest.approx((100 + 100 - 25) / 2500)


def test_set_pools_images_with_their_own_pixel_sizes():
    a = Item("a.png", (100, 100), (Box(label="cavity", xyxy=(10, 10, 20, 20)), Box(label="cavity", xyxy=(40, 40, 45, 45))))
    b = Item("b.png", (50, 50), (Box(label="cavity", xyxy=(10, 10, 14, 14)),))
    ta, _ = measure_item(a, {"cavity": 1}, pixel_size_nm=1.0)
    tb, _ = measure_item(b, {"cavity": 1}, pixel_size_nm=2.0)
    infos = [ImageInfo("a", (100, 100), 1.0, {"cavity": 125}), ImageInfo("b", (50, 50), 2.0, {"cavity": 16})]
    per_image, per_set = statistics(Table.concat([ta, tb]), infos, ["cavity"], thickness_nm=10.0)
    s = per_set.rows()[0]
    area_nm2 = 100 * 100 * 1.0 + 50 * 50 * 4.0  # 20 000 nm²
    assert s["density_per_um2"] == pytest.approx(3 / area_nm2 * 1e6)
    d_nm = np.array([math.sqrt(4 * 100 / math.pi), math.sqrt(4 * 25 / math.pi), 2 * math.sqrt(4 * 16 / math.pi)])
    assert s["size_mean_nm"] == pytest.approx(d_nm.mean())
    v = float(np.sum(np.pi * d_nm**3 / 6))
    assert s["swelling_percent"] == pytest.approx(100 * v / (area_nm2 * 10.0 - v))
    assert s["area_fraction"] == pytest.approx((125 + 16) / (10000 + 2500))
    assert [r["count"] for r in per_image.rows()] == [2, 1]


def test_a_set_with_an_uncalibrated_image_has_no_nm_values():
    a = Item("a.png", (40, 40), (Box(label="cavity", xyxy=(10, 10, 20, 20)),))
    t, _ = measure_item(a, {"cavity": 1}, pixel_size_nm=1.0)
    infos = [ImageInfo("a", (40, 40), 1.0, {"cavity": 100}), ImageInfo("b", (40, 40), None, {})]
    _, per_set = statistics(t, infos, ["cavity"])
    s = per_set.rows()[0]
    assert math.isnan(s["density_per_um2"]) and math.isnan(s["size_mean_nm"])
    assert s["density_per_px2"] == pytest.approx(1 / 3200)


def test_without_calibration_results_are_in_px_with_a_warning(dataset):
    with pytest.warns(CalibrationWarning, match="no pixel size calibration.*in px only"):
        m = measure(dataset)
    cav = row_of(m.per_set, "cavity")
    assert math.isnan(cav["size_mean_nm"]) and cav["size_mean_px"] > 0
    assert m.histograms["cavity"]["unit"] == "px"
    assert [n.code for n in m.notes] == ["no-calibration"]


def test_major_axis_size_and_line_lengths():
    item = Item("a.png", (100, 100), (
        Box(label="loop", xyxy=(10, 10, 30, 14)),  # a 20×4 box: major axis from its moments
        Polyline(label="line", points_xy=[(50, 50), (80, 90)]),  # 50 px long
    ))
    m = measure(Dataset((Label("loop"), Label("line")), (item,)), pixel_size=1.0, size_measure="major_axis")
    loop, line = row_of(m.per_set, "loop"), row_of(m.per_set, "line")
    # A uniform w×h rectangle has variance (w² − 1)/12 along w on the pixel grid; axis = 4·sqrt(var).
    assert loop["size_measure"] == "major_axis"
    assert loop["size_mean_nm"] == pytest.approx(4 * math.sqrt((20**2 - 1) / 12))
    assert line["size_measure"] == "length" and line["size_mean_nm"] == pytest.approx(50.0)


def test_bad_size_measure():
    with pytest.raises(ValueError, match="expected size_measure in"):
        statistics(Table(), [], [], size_measure="radius")
    with pytest.raises(ValueError, match="size_measure: expected one of diameter, major_axis"):
        measure(Dataset((Label("loop"),), ()), size_measure="radius")


def test_images_without_defects_count_in_the_area():
    busy = Item("a.png", (100, 100), (Box(label="cavity", xyxy=(10, 10, 20, 20)),))
    empty = Item("b.png", (100, 100), ())
    m = measure(Dataset((Label("cavity"), Label("loop")), (busy, empty)), pixel_size=1.0)
    cav, loop = row_of(m.per_set, "cavity"), row_of(m.per_set, "loop")
    assert cav["density_per_um2"] == pytest.approx(1 / (2 * 100 * 100) * 1e6)
    assert cav["area_fraction"] == pytest.approx(100 / 20000)
    assert (loop["count"], loop["density_per_um2"], loop["area_fraction"]) == (0, 0.0, 0.0)  # declared, none found
    assert math.isnan(loop["size_mean_nm"])
