"""check() on synthetic exports: a clean export gives no findings; every planted problem is
found, and nothing else."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import points_in_poly

import defectlab
from defectlab.model import Dataset, Ellipse, Item, Label
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
from defectlab.qc import CHECKS, check


def _centers(size_hw):
    h, w = size_hw
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def _pixels(points_xy, size_hw):
    """Pixel centers inside a simple polygon (scikit-image's even-odd test), (H, W) bool."""
    return points_in_poly(_centers(size_hw), np.asarray(points_xy)).reshape(size_hw)


def test_clean_export_gives_no_findings(clean_export):
    path, written = clean_export
    result = check(path)
    assert result.findings == []
    assert not result.failed("warning")
    assert result.images_read == len(written)
    # CVAT stores no edge convention: it is guessed from the label names, and says so
    assert result.edges == {"cavity": ("inner", "guess"), "loop": ("outer", "guess"),
                            "precipitate": (None, "unknown"), "dislocation line": (None, "unknown")}
    counts = Counter(s.label for it in written for s in it.shapes)
    assert {n: s.n_shapes for n, s in result.stats.items()} == dict(counts)
    # every cavity and loop boundary was measured, within 1 px of its convention
    for name in ("cavity", "loop"):
        offsets = result.stats[name].edge_offset_px
        assert offsets.size == counts[name]
        assert np.abs(offsets).max() < 1.0


def test_clean_default_synthetic_images_give_no_findings(tmp_path):
    ds = make_synthetic_dataset(tmp_path / "s", n_images=2, config=SyntheticConfig(size_hw=(512, 512)), seed=2)
    assert check(ds).findings == []


def test_every_planted_problem_is_found_and_nothing_else(planted):
    ds, expected = planted
    result = check(ds, outlier_z=100)  # size outliers are tested on their own
    got = {(f.image, f.code, f.shape) for f in result.findings}
    assert got == expected
    assert result.failed("error") and result.failed("warning") and not result.failed("never")
    # findings come most serious first
    ranks = [("error", "warning", "info").index(f.severity) for f in result.findings]
    assert ranks == sorted(ranks)


def test_every_finding_is_short_and_says_where(planted):
    """#14.10: a finding carries its (x, y) and a short message; the long explanation lives once in
    CHECKS (34 workshop findings used to repeat the same 300 characters)."""
    ds, _ = planted
    result = check(ds)
    by_name = {it.name: it for it in ds}
    for f in result.findings:
        assert len(f.message) <= 120, f
        assert CHECKS[f.code].explanation not in f.message
        if f.shape is not None and by_name[f.image].shapes[f.shape].kind != "tag":
            assert f.xy is not None and f"at ({round(f.xy[0], 1):g}, {round(f.xy[1], 1):g})" in str(f), f
            x1, y1, x2, y2 = f.box_xyxy
            assert f.xy == ((x1 + x2) / 2, (y1 + y2) / 2)
            loc = f.to_dict()["location"]
            assert (loc["x"], loc["y"]) == (round(f.xy[0], 3), round(f.xy[1], 3))


def test_planted_hole_and_overlaps_against_independent_pixels(planted):
    ds, _ = planted
    item = next(it for it in ds if it.name == "planted.png")
    result = check(ds, outlier_z=100)
    found = {(f.code, f.shape): f for f in result.for_image("planted.png")}
    shapes = item.shapes  # conftest.planted_shapes()
    size = item.size_hw
    masks = [_pixels(shapes[i].points_xy, size) for i in range(4)]
    union = np.any(masks, axis=0)
    pocket = ndimage.binary_fill_holes(union) & ~union
    hole = found[("overlap-hole", None)]
    assert hole.value == pocket.sum() > 0
    assert hole.related == (0, 1, 2, 3)
    rows, cols = np.nonzero(pocket)
    assert hole.box_xyxy == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    a, b = _pixels(shapes[5].points_xy, size), _pixels(shapes[6].points_xy, size)
    assert found[("shape-duplicate", 6)].value == pytest.approx((a & b).sum() / (a | b).sum())
    assert found[("shape-duplicate", 6)].related == (5,)
    a, b = _pixels(shapes[15].points_xy, size), _pixels(shapes[16].points_xy, size)
    assert found[("overlap-heavy", 16)].value == pytest.approx((a & b).sum() / min(a.sum(), b.sum()))


def test_thresholds_switch_checks_off(planted):
    ds, _ = planted
    result = check(ds, outlier_z=100, hole_area_px=0, duplicate_iou=1.0, overlap=1.0, solidity=0.5,
                   edge_tolerance=5.0)
    codes = {f.code for f in result.findings}
    assert not codes & {"overlap-hole", "shape-duplicate", "overlap-heavy", "shape-concave", "edge-off-convention"}
    # a duplicate is never also a heavy overlap; with the duplicate IoU at 1 it is one
    assert {(f.code, f.shape) for f in check(ds, outlier_z=100, duplicate_iou=1.0).for_image("planted.png")
            if f.code == "overlap-heavy"} == {("overlap-heavy", 6), ("overlap-heavy", 16)}


def test_edges_given_override_the_guess_and_the_export(planted):
    ds, _ = planted
    default = check(ds, outlier_z=100)
    assert default.edges["loop"] == ("outer", "label")
    shrunk = {f.shape for f in default.for_image("edges.png") if f.code == "edge-off-convention"
              and f.label == "loop"}
    assert len(shrunk) == 2
    # declared "inner", the two loops drawn 3 px inside their outer edge (rings 2-3 px thick) are right,
    # and the ring of every other loop lies inside its boundary by the ring's width
    result = check(ds, edges={"loop": "inner"}, outlier_z=100)
    assert result.edges["loop"] == ("inner", "given")
    flagged = {f.shape for f in result.for_image("edges.png") if f.code == "edge-off-convention"}
    assert not flagged & shrunk
    offsets = {r.shape: r.edge_offset_px for r in result.records if r.image == "edges.png" and r.label == "loop"}
    assert all(abs(offsets[i]) <= 1.0 for i in shrunk)
    assert all(-3.5 < offsets[i] < -1.5 for i in set(offsets) - shrunk)
    with pytest.raises(ValueError, match="no label 'void'"):
        check(ds, edges={"void": "inner"})
    with pytest.raises(ValueError, match="expected 'inner' or 'outer'"):
        check(ds, edges={"loop": "middle"})


def test_size_outliers_against_an_independent_robust_z():
    rng = np.random.default_rng(0)
    radii = rng.uniform(6, 9, 30).tolist() + [40.0, 1.5]
    shapes = tuple(Ellipse(label="cavity", cx=50 + 90 * (k % 8), cy=50 + 90 * (k // 8), rx=r, ry=r)
                   for k, r in enumerate(radii))
    ds = Dataset((Label("cavity", edge="inner"),), (Item("a.png", (800, 800), shapes),))
    result = check(ds, use_images=False)
    areas = np.array([defectlab.rasterize(s, (800, 800)).area for s in shapes], float)
    log = np.log(areas)
    mad = np.median(np.abs(log - np.median(log)))
    z = (log - np.median(log)) / (1.4826 * mad)
    assert {f.shape for f in result.findings if f.code == "size-outlier"} == set(np.flatnonzero(np.abs(z) > 4))
    assert {30, 31} <= set(np.flatnonzero(np.abs(z) > 4))
    assert {(f.code, f.shape) for f in result.findings if f.code != "size-outlier"} == {("shape-tiny", 31)}


def test_result_to_json_and_the_check_table():
    ds = Dataset((Label("cavity"),), (Item("a.png", (32, 32), (Ellipse(label="cavity", cx=10, cy=10, rx=5, ry=5),
                                                               Ellipse(label="cavity", cx=10, cy=10, rx=5, ry=5))),))
    result = check(ds)  # the image file is missing
    d = json.loads(json.dumps(result.to_dict()))
    assert [(f["code"], f["severity"], f["image"], f["shape"]) for f in d["findings"]] == [
        ("image-missing", "error", "a.png", None), ("shape-duplicate", "error", "a.png", 1)]
    assert d["findings"][1]["location"] == {"x": 10.0, "y": 10.0, "box_xyxy": [5.0, 5.0, 15.0, 15.0]}
    assert str(result.findings[1]) == "error: [shape-duplicate] a.png shape 1 at (10, 10): same label and pixel IoU 1.000 with shape 0"
    assert d["counts"] == {"error": 2, "warning": 0, "info": 0}
    assert d["edges"] == [{"label": "cavity", "edge": "inner", "how": "guess"}]
    for code, spec in CHECKS.items():
        assert spec.code == code and spec.severity in ("error", "warning", "info") and spec.explanation and spec.fix


def test_an_image_name_in_several_subsets_is_named_with_its_subset():
    disc = Ellipse(label="cavity", cx=10, cy=10, rx=5, ry=5)
    ds = Dataset((Label("cavity"),), (Item("a.png", (32, 32), (disc,), subset="Train"),
                                      Item("a.png", (32, 32), (disc, disc), subset="Test"),
                                      Item("b.png", (32, 32), (disc,), subset="Test")))
    result = check(ds, use_images=False)
    assert [(f.image, f.code, f.shape) for f in result.findings] == [("Test/a.png", "shape-duplicate", 1)]
    with pytest.raises(ValueError, match="images= is for reading an export"):
        check(ds, images="imgs")
