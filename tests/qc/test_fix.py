"""``defectlab check --fix`` / :func:`defectlab.qc.fix`: holes filled, shapes clipped to the image,
duplicates dropped, every change listed, the input never modified — and a check of the repaired
copy no longer finds what was fixed (nor anything new)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from typer.testing import CliRunner

import defectlab
from defectlab.cli import app
from defectlab.errors import OutputError
from defectlab.formats.coco_json import write_coco
from defectlab.formats.cvat_xml import write_cvat
from defectlab.formats.yolo_txt import write_yolo
from defectlab.model import Box, Dataset, Ellipse, Item, Label, Mask, Points, Polygon, Polyline
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
from defectlab.qc import FIXABLE, check, fix
from defectlab.qc.repair import CHANGES_FILE, clip_shape
from defectlab.raster import ellipse_polygon, rasterize
from defectlab.raster.clip import clip_polyline, clip_ring

runner = CliRunner()
FIXED = set(FIXABLE)


def disc(cx: float, cy: float, r: float, label: str = "precipitate") -> Polygon:
    return Polygon(label=label, points_xy=ellipse_polygon(Ellipse(label=label, cx=cx, cy=cy, rx=r, ry=r)))


def pixels(shape, size_hw) -> np.ndarray:
    return rasterize(shape, size_hw).to_full(size_hw)


def union(shapes, size_hw) -> np.ndarray:
    out = np.zeros(size_hw, bool)
    for s in shapes:
        if s.is_area:
            out |= pixels(s, size_hw)
    return out


def shoelace(ring) -> float:
    x, y = np.asarray(ring, float).T
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def keyed(findings) -> set:
    return {(f.image, f.code, f.shape) for f in findings}


# ---------------------------------------------------------------------------------------------
# Clipping geometry
# ---------------------------------------------------------------------------------------------

_coord = st.integers(min_value=-40, max_value=80).map(lambda v: v / 2)


@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.tuples(_coord, _coord), min_size=3, max_size=9))
def test_clip_ring_keeps_the_pixels_inside_the_image(points):
    """Sutherland–Hodgman against the image changes no pixel center inside it but those lying
    exactly on the outline (the raster module, which clips to the image by itself, is the
    independent reference)."""
    size_hw = (24, 32)
    ring = np.array(points, float)
    clipped = clip_ring(ring, 32, 24)
    expected = pixels(Polygon(label="c", points_xy=ring), size_hw)
    if len(clipped) < 3:
        assert not expected.any()
        return
    assert clipped[:, 0].min() >= 0 and clipped[:, 0].max() <= 32
    assert clipped[:, 1].min() >= 0 and clipped[:, 1].max() <= 24
    got = pixels(Polygon(label="c", points_xy=clipped), size_hw)
    # a center lying exactly on a cut edge may go either way (the crossing point is rounded)
    for r, c in zip(*np.nonzero(got != expected)):
        assert _distance_to_outline((c + 0.5, r + 0.5), ring) < 1e-9, (r, c)


def _distance_to_outline(p, ring) -> float:
    a, b = ring, np.roll(ring, -1, axis=0)
    d = b - a
    t = np.clip(((p - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-300), 0, 1)
    return float(np.hypot(*(a + t[:, None] * d - p).T).min())


def test_clip_ring_analytic_areas():
    # a triangle with its apex 10 px above the image: the part inside is a trapezoid
    tri = np.array([[0, 10], [20, 10], [10, -10]], float)
    # width at height y (0 <= y <= 10) is (y + 10); area inside = integral 0..10 of (y + 10) dy = 150
    assert shoelace(clip_ring(tri, 64, 64)) == pytest.approx(150)
    # a square around the whole image: the image itself
    big = np.array([[-5, -5], [70, -5], [70, 70], [-5, 70]], float)
    assert sorted(map(tuple, clip_ring(big, 64, 48).tolist())) == [(0, 0), (0, 48), (64, 0), (64, 48)]
    # entirely outside: nothing
    assert len(clip_ring(np.array([[-9, 1], [-2, 1], [-2, 5]], float), 64, 64)) == 0


@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.tuples(_coord, _coord), min_size=2, max_size=6))
def test_clip_polyline_keeps_the_part_inside(points):
    """The pieces lie on the line and inside the rectangle, and their total length is the length of
    the line inside it, measured independently by sampling the line densely."""
    w, h = 32.0, 24.0
    pts = np.array(points, float)
    pieces = clip_polyline(pts, w, h)
    inside_len = 0.0
    for a, b in zip(pts[:-1], pts[1:]):
        t = (np.arange(20000) + 0.5) / 20000
        xy = a + t[:, None] * (b - a)
        ok = (xy[:, 0] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] >= 0) & (xy[:, 1] <= h)
        inside_len += ok.mean() * float(np.hypot(*(b - a)))
    total = sum(float(np.hypot(*np.diff(p, axis=0).T).sum()) for p in pieces)
    assert total == pytest.approx(inside_len, abs=0.01 * max(1.0, inside_len))
    for p in pieces:
        assert len(p) >= 2 and (p[:, 0] >= 0).all() and (p[:, 0] <= w).all()
        assert (p[:, 1] >= 0).all() and (p[:, 1] <= h).all()


def test_clip_shape_of_every_kind():
    size = (64, 64)
    # an axis-aligned box stays a box
    (box,), _ = clip_shape(Box(label="l", xyxy=(-10, 5, 20, 70)), size)
    assert isinstance(box, Box) and box.xyxy == (0, 5, 20, 64)
    # a rotated box becomes a polygon with the same pixels inside the image
    rot = Box(label="l", xyxy=(-10, 10, 20, 30), rotation_deg=30)
    (poly,), what = clip_shape(rot, size)
    assert isinstance(poly, Polygon) and "polygon" in what
    np.testing.assert_array_equal(pixels(poly, size), pixels(rot, size))
    # an ellipse cut in half by the left edge: half its area, pi rx ry / 2
    half, _ = clip_shape(Ellipse(label="c", cx=0, cy=32, rx=10, ry=6), size)
    assert shoelace(half[0].points_xy) == pytest.approx(math.pi * 60 / 2, rel=2e-3)
    assert half[0].points_xy[:, 0].min() == 0
    # a mask is cropped to its pixels inside
    bm = np.zeros((10, 10), bool)
    bm[2:8, 3:9] = True
    (mask,), _ = clip_shape(Mask(label="c", bitmap=bm, left=60, top=-4), size)
    assert (mask.left, mask.top, mask.bitmap.shape, int(mask.bitmap.sum())) == (63, 0, (4, 1), 4)
    # a polyline leaving and re-entering the image comes out in two pieces
    parts, what = clip_shape(Polyline(label="d", points_xy=[(10, 10), (10, 80), (20, 10)]), size)
    assert len(parts) == 2 and "2 pieces" in what
    assert parts[0].points_xy.tolist() == [[10, 10], [10, 64]]
    # points outside are removed (with their names)
    (pts,), _ = clip_shape(Points(label="p", points_xy=[(1, 1), (-1, 5), (3, 70)], names=("a", "b", "c")), size)
    assert pts.points_xy.tolist() == [[1, 1]] and pts.names == ("a",)
    # nothing inside: no piece left
    assert clip_shape(Polygon(label="c", points_xy=[(-9, 1), (-2, 1), (-2, 5)]), size)[0] == []


def test_clip_of_a_concave_outline_that_leaves_and_reenters_is_a_mask():
    """A U whose two arms cross the left edge and whose bottom lies outside: inside the image
    the arms are two separate parts, which one clipped ring joins by zero-width edges along the
    border (a self-touching polygon); a mask holds the pixels exactly instead."""
    u = Polygon(label="c", points_xy=[(10, 5), (10, 15), (-10, 15), (-10, 25), (10, 25), (10, 35),
                                      (-20, 35), (-20, 5)])
    (piece,), what = clip_shape(u, (64, 64))
    assert isinstance(piece, Mask) and "mask" in what
    np.testing.assert_array_equal(pixels(piece, (64, 64)), pixels(u, (64, 64)))
    # a label declared as polygons only cannot take a mask: the clip is refused, with the reason
    with pytest.raises(ValueError, match="declared as type 'polygon'"):
        clip_shape(u, (64, 64), Label("c", type="polygon"))


# ---------------------------------------------------------------------------------------------
# fix() on the planted dataset (tests/qc/conftest.py)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_fix(planted):
    ds, _ = planted
    return ds, fix(ds)


def test_fix_lists_exactly_the_fixable_problems(planted_fix):
    ds, result = planted_fix
    got = sorted((c.image, c.shape, c.action, c.code) for c in result.changes if c.image)
    filled = [c for c in result.changes if c.action == "filled-hole"]
    assert len(filled) == 1 and filled[0].shape in (0, 1, 2, 3)  # one of the four discs around the pocket
    assert got == sorted([("planted.png", 6, "dropped", "shape-duplicate"),
                          ("planted.png", 11, "clipped", "shape-outside-image"),
                          ("planted.png", filled[0].shape, "filled-hole", "overlap-hole")])
    # the undeclared label 'dirt' is declared so that the copy can be written
    assert [(c.action, c.image) for c in result.changes if c.image is None] == [("declared-label", None)]
    assert "dirt" in [lab.name for lab in result.dataset.labels]
    assert result.skipped == []
    assert "shape-self-intersecting" in result.not_fixable and "label-undeclared" not in result.not_fixable
    # the input is untouched
    assert ds[0].shapes[6] is not None and len(ds[0].shapes) == 17 and ds[0].shapes[11].points_xy.min() == -6


def test_fix_geometry_of_each_change(planted_fix):
    ds, result = planted_fix
    before, after = ds[0], result.dataset[0]
    size = before.size_hw
    assert len(after.shapes) == len(before.shapes) - 1
    new_index = {i: i - (i > 6) for i in range(len(before.shapes)) if i != 6}
    # the duplicate's twin is kept as it was
    assert after.shapes[new_index[5]] == before.shapes[5]
    # clipped: the rectangle x 0..15, y 160..180 (area 300), same pixels
    clipped = after.shapes[new_index[11]]
    assert shoelace(clipped.points_xy) == pytest.approx(15 * 20)
    assert clipped.bbox_xyxy() == (0, 160, 15, 180)
    np.testing.assert_array_equal(pixels(clipped, size), pixels(before.shapes[11], size))
    # the pocket, found independently by scipy's hole filling, is now covered
    kept = [s for i, s in enumerate(before.shapes) if i != 6]
    mask_before = union(kept, size)
    pocket = ndimage.binary_fill_holes(mask_before) & ~mask_before
    assert pocket.sum() == 4
    np.testing.assert_array_equal(union(after.shapes, size), mask_before | pocket)
    # ... by one disc grown over it; every other shape is unchanged
    grown = next(c.shape for c in result.changes if c.action == "filled-hole")
    np.testing.assert_array_equal(pixels(after.shapes[grown], size), pixels(before.shapes[grown], size) | pocket)
    assert isinstance(after.shapes[grown], Polygon)  # 'precipitate' is declared as polygons
    for i, k in new_index.items():
        if i not in (11, grown):
            assert after.shapes[k] == before.shapes[i]
    # the other images are the same objects
    assert all(a is b for a, b in zip(result.dataset.items[1:], ds.items[1:]))


def test_check_of_the_fixed_dataset_finds_nothing_fixed_and_nothing_new(planted_fix):
    ds, result = planted_fix
    before = check(ds, outlier_z=100).findings
    after = check(result.dataset, outlier_z=100).findings
    assert not [f for f in after if f.code in FIXED]

    def shift(f):  # shape indices of planted.png after shape 6 was dropped
        if f.image != "planted.png" or f.shape is None:
            return f.shape
        return f.shape - (f.shape > 6)

    expected = {(f.image, f.code, shift(f)) for f in before
                if f.code not in FIXED and f.code != "label-undeclared"}
    assert keyed(after) == expected


def test_fix_only_the_findings_given(planted):
    ds, _ = planted
    result = check(ds, outlier_z=100)
    dup = [f for f in result.findings if f.code == "shape-duplicate"]
    only = fix(ds, dup)
    assert [(c.action, c.shape) for c in only.changes if c.image] == [("dropped", 6)]
    assert only.dataset[0].shapes[10].points_xy.min() == -6  # shape 11, not clipped: not asked for
    # a CheckResult is accepted as the findings
    assert [c.to_dict() for c in fix(ds, result).changes] == [c.to_dict() for c in fix(ds).changes]


def test_fix_is_refused_where_it_would_break_the_label_type():
    """A cavity declared as ellipses (CVAT label type) reaching outside is left alone, with the
    reason; the same cavity under a label of any type becomes a clipped polygon."""
    size = (64, 64)
    cav = Ellipse(label="cavity", cx=2, cy=30, rx=8, ry=6)
    for label, changed in ((Label("cavity", type="ellipse"), False), (Label("cavity"), True)):
        ds = Dataset((label,), (Item("a.png", size, (cav,)),))
        result = fix(ds)
        assert bool(result.changes) is changed
        if changed:
            (shape,) = result.dataset[0].shapes
            assert isinstance(shape, Polygon) and shape.points_xy[:, 0].min() == 0
            assert not [f for f in check(result.dataset, use_images=False).findings if f.code in FIXED]
        else:
            ((f, why),) = result.skipped
            assert f.code == "shape-outside-image" and "declared as type 'ellipse'" in why
            assert result.dataset[0].shapes == (cav,)


def test_fix_a_hole_between_ellipses_grows_one_into_a_polygon_of_its_pixels():
    size = (64, 64)
    shapes = tuple(Ellipse(label="cavity", cx=cx, cy=cy, rx=10, ry=10) for cx, cy in
                   ((22, 22), (38, 22), (22, 38), (38, 38)))
    ds = Dataset((Label("cavity"),), (Item("a.png", size, shapes),))
    before = union(shapes, size)
    pocket = ndimage.binary_fill_holes(before) & ~before
    assert 0 < pocket.sum() <= 100
    result = fix(ds)
    (change,) = result.changes
    assert change.action == "filled-hole" and "traced from its pixels" in change.message
    np.testing.assert_array_equal(union(result.dataset[0].shapes, size), before | pocket)
    assert not [f for f in check(result.dataset, use_images=False).findings if f.code in FIXED]


def test_fix_names_images_of_a_project_export_by_subset():
    """Items called alike in two subsets are told apart as the check names them ("Test/a.png")."""
    size = (64, 64)
    d = Ellipse(label="cavity", cx=30, cy=30, rx=6, ry=6)
    ds = Dataset((Label("cavity"),), (Item("a.png", size, (d,), subset="Train"),
                                      Item("a.png", size, (d, d), subset="Test")))
    result = fix(ds)
    assert [(c.image, c.shape, c.action) for c in result.changes] == [("Test/a.png", 1, "dropped")]
    assert [len(it.shapes) for it in result.dataset] == [1, 1]
    assert [it.name for it in result.dataset] == ["a.png", "a.png"]


# ---------------------------------------------------------------------------------------------
# Exports on disk: CVAT (through the CLI), COCO, YOLO
# ---------------------------------------------------------------------------------------------

CFG = SyntheticConfig(size_hw=(128, 128), n_cavities=3, n_loops=1, n_precipitates=1, n_lines=1)


def _planted_items(ds: Dataset) -> Dataset:
    """The first image gets a hole between four discs, a duplicate and a polygon outside the image."""
    first = ds[0]
    extra = (disc(80, 80, 10), disc(96, 80, 10), disc(80, 96, 10), disc(96, 96, 10),
             Polygon(label="precipitate", points_xy=[(-5, 100), (12, 100), (12, 116), (-5, 116)]))
    shapes = first.shapes + extra + first.shapes[:1]
    return ds.with_items([Item(first.name, first.size_hw, shapes, image=first.image, subset=first.subset,
                               id=first.id), *ds.items[1:]])


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cvat_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("fix_cvat")
    export = root / "export"
    make_synthetic_dataset(export, n_images=2, config=CFG, seed=3)
    ds = _planted_items(defectlab.read(export))
    (export / "annotations.xml").unlink()
    write_cvat(ds, export / "annotations.xml")
    return root, export


def test_cli_fix_writes_a_repaired_copy_and_lists_every_change(cvat_export):
    root, export = cvat_export
    before = _digest(export)
    out = root / "fixed_json"
    res = runner.invoke(app, ["check", str(export), "--fix", str(out), "--json"])
    assert res.exit_code == 2, res.output  # the input has a duplicate (an error)
    payload = json.loads(res.stdout)
    fixed = payload["fix"]
    assert sorted((c["action"], c["code"]) for c in fixed["changes"]) == [
        ("clipped", "shape-outside-image"), ("dropped", "shape-duplicate"), ("filled-hole", "overlap-hole")]
    assert fixed["written_format"] == "cvat" and fixed["out"] == str(out)
    assert json.loads((out / CHANGES_FILE).read_text()) == fixed
    assert _digest(export) == before  # the input is never modified
    # the copy: the same format, every image copied byte for byte
    assert sorted(p.name for p in out.iterdir()) == ["annotations.xml", CHANGES_FILE, "images"]
    copied = _digest(out / "images")
    assert copied and all(copied[name] == before[f"images/{name}"] for name in copied)
    back = defectlab.read(out)
    assert back.format == "cvat" and len(back) == 2 and all(it.image is not None for it in back)
    # checking the copy: nothing fixed is found again, and nothing else changed
    res2 = runner.invoke(app, ["check", str(out), "--json", "--fail-on", "never"])
    after = json.loads(res2.stdout)["findings"]
    assert not [f for f in after if f["code"] in FIXED]
    codes_before = sorted(f["code"] for f in payload["findings"] if f["code"] not in FIXED)
    assert sorted(f["code"] for f in after) == codes_before


def test_cli_fix_terminal_output(cvat_export):
    root, export = cvat_export
    out = root / "fixed_terminal"
    res = runner.invoke(app, ["check", str(export), "--fix", str(out), "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "Repaired copy (cvat)" in text and CHANGES_FILE in text
    for action in ("dropped", "clipped", "filled-hole"):
        assert f"{action} synthetic_000.png shape" in text


def test_cli_fix_refuses_to_touch_the_input(cvat_export):
    root, export = cvat_export
    before = _digest(export)
    for out, message in ((export, "is the input export"), (export / "fixed", "inside the input export"),
                         (root, "holds the input export"), (export / "annotations.xml", "is the input export")):
        res = runner.invoke(app, ["check", str(export / "annotations.xml") if out.suffix else str(export),
                                  "--fix", str(out), "--overwrite"])
        assert res.exit_code == 1 and message in " ".join(res.output.split()), (out, res.output)
    assert _digest(export) == before
    # an existing copy is replaced only with --overwrite
    out = root / "again"
    assert runner.invoke(app, ["check", str(export), "--fix", str(out), "--fail-on", "never"]).exit_code == 0
    res = runner.invoke(app, ["check", str(export), "--fix", str(out), "--fail-on", "never"])
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert runner.invoke(app, ["check", str(export), "--fix", str(out), "--fail-on", "never",
                               "--overwrite"]).exit_code == 0
    with pytest.raises(OutputError, match="inside the input export"):
        fix(export, out=export / "sub")


def test_fix_coco_export_is_written_back_as_coco(cvat_export, tmp_path):
    _, export = cvat_export
    coco = tmp_path / "coco"
    write_coco(defectlab.read(export), coco)
    result = fix(coco, out=tmp_path / "coco_fixed")
    assert sorted(c.action for c in result.changes) == ["clipped", "dropped", "filled-hole"]
    back = defectlab.read(tmp_path / "coco_fixed")  # changes.json beside annotations/ does not confuse detection
    assert back.format == "coco" and result.written_format == "coco"
    assert (tmp_path / "coco_fixed" / CHANGES_FILE).is_file()
    assert not [f for f in check(back).findings if f.code in FIXED]


def test_fix_yolo_segment_export_is_written_back_as_yolo(cvat_export, tmp_path):
    _, export = cvat_export
    ds = defectlab.read(export)
    ds = ds.with_items([Item(it.name, it.size_hw, it.shapes, image=it.image, subset="train") for it in ds])
    yolo = tmp_path / "yolo"
    write_yolo(ds, yolo, task="segment")
    result = fix(yolo, out=tmp_path / "yolo_fixed")
    # YOLO's writer clipped the outside polygon already: a duplicate and a hole are left to fix
    assert sorted(c.action for c in result.changes) == ["dropped", "filled-hole"]
    back = defectlab.read(tmp_path / "yolo_fixed")
    assert back.format == "yolo" and (tmp_path / "yolo_fixed" / "data.yaml").is_file()
    assert not [f for f in check(back).findings if f.code in FIXED]
    assert sum(len(it.shapes) for it in back) == sum(len(it.shapes) for it in defectlab.read(yolo)) - 1


def test_fix_of_a_format_that_cannot_be_written_gives_cvat(planted, tmp_path):
    ds, _ = planted
    result = fix(ds, out=tmp_path / "out")
    assert result.written_format == "cvat"
    assert any("CVAT XML" in n for n in result.notes) and any("missing.png" in n for n in result.notes)
    back = defectlab.read(tmp_path / "out")
    assert [it.name for it in back] == [it.name for it in ds]
    assert [it.image is not None for it in back] == [it.name != "missing.png" for it in ds]
