"""ImageJ / Fiji ROIs: written by us and read by roifile (Fiji's format as another library reads
it), made by roifile's own writer or packed byte by byte after ImageJ's ``RoiEncoder.java``
and read by us, with ImageJ's two coordinate conventions checked against pixels.

Expected values come from the geometry written, from ImageJ's own rules re-implemented here
(``OvalRoi.getMask``, ``RotatedRectRoi.makeRectangle``), or from roifile's decoding.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import roifile
from PIL import Image
from typer.testing import CliRunner

import defectlab
from defectlab.cli import app
from defectlab.errors import DatasetError, ParseError
from defectlab.formats import detect_format
from defectlab.formats.imagej_roi import read_imagej_roi, write_imagej_roi
from defectlab.model import Box, Dataset, Ellipse, Item, Label, Mask, Points, Polygon, Polyline, Tag
from defectlab.raster import rasterize, semantic_mask

T, S = roifile.ROI_TYPE, roifile.ROI_SUBTYPE
H, W = 80, 120


def _image(folder: Path, name: str = "a.png", size_hw=(H, W)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.fromarray(np.full(size_hw, 128, np.uint8)).save(path)
    return path


def _every_shape() -> Dataset:
    blob = np.zeros((6, 7), bool)
    blob[1:5, 2:6] = True
    shapes = (
        Polygon(label="cavity", points_xy=[(10.25, 10.5), (30.125, 12.0), (25.0, 31.75)], attributes={"faint": "yes"}),
        Box(label="loop", xyxy=(40.5, 5.25, 60.0, 20.5)),
        Box(label="loop", xyxy=(70.0, 40.0, 90.0, 50.0), rotation_deg=30.0),
        Ellipse(label="cavity", cx=20.5, cy=50.25, rx=6.0, ry=4.5),
        Ellipse(label="loop", cx=60.0, cy=60.0, rx=8.0, ry=3.0, rotation_deg=35.0, group=2, source="auto"),
        Ellipse(label="loop", cx=95.0, cy=20.0, rx=3.0, ry=7.0, rotation_deg=10.0),
        Polyline(label="dislocation", points_xy=[(5.0, 70.0), (40.5, 75.25), (60.0, 72.0)]),
        Points(label="cavity", points_xy=[(100.5, 70.5), (3.0, 4.0)]),
        Mask(label="cavity", bitmap=blob, left=100, top=50),
    )
    labels = (Label("cavity", color="#ff0000", edge="inner"), Label("loop", color="#00ff00", edge="outer"),
              Label("dislocation", color="#0000ff", type="polyline"))
    return Dataset(labels, (Item("a.png", (H, W), shapes),))


def _ellipse_key(e: Ellipse) -> tuple[float, ...]:
    """Center, major and minor radius, and the major axis's direction mod 180° (none for circles)."""
    if e.rx >= e.ry:
        major, minor, angle = e.rx, e.ry, e.rotation_deg
    else:
        major, minor, angle = e.ry, e.rx, e.rotation_deg + 90
    angle = 0.0 if math.isclose(major, minor) else angle % 180
    return e.cx, e.cy, major, minor, angle


def _same_geometry(a, b, tol: float = 0.01) -> None:
    if isinstance(a, Mask):  # written as its traced outline: the same pixels
        assert isinstance(b, Polygon)
        ra, rb = rasterize(a, (H, W)), rasterize(b, (H, W))
        assert ra.area == rb.area and np.array_equal(semantic_mask(Item("x", (H, W), (a,)), {a.label: 1}),
                                                      semantic_mask(Item("x", (H, W), (b,)), {b.label: 1}))
        return
    assert type(a) is type(b)
    if isinstance(a, Ellipse):
        np.testing.assert_allclose(_ellipse_key(b), _ellipse_key(a), atol=tol)
    elif isinstance(a, Box):
        np.testing.assert_allclose(np.sort(b.corners_xy(), axis=0), np.sort(a.corners_xy(), axis=0), atol=tol)
    else:
        np.testing.assert_allclose(b.points_xy, a.points_xy, atol=tol)


# ---------------------------------------------------------------------------------------------
# Ours -> roifile, and back


def test_written_rois_read_by_roifile_with_the_same_vertices(tmp_path: Path) -> None:
    ds = _every_shape()
    report = write_imagej_roi(ds, tmp_path / "out", copy_images=False)
    assert report.n_instances == len(ds[0].shapes)
    rois = roifile.roiread(tmp_path / "out" / "a.zip")
    assert [(r.roitype, r.subtype) for r in rois] == [
        (T.POLYGON, S.UNDEFINED), (T.RECT, S.UNDEFINED), (T.FREEHAND, S.ROTATED_RECT), (T.OVAL, S.UNDEFINED),
        (T.FREEHAND, S.ELLIPSE), (T.FREEHAND, S.ELLIPSE), (T.POLYLINE, S.UNDEFINED), (T.POINT, S.UNDEFINED),
        (T.TRACED, S.UNDEFINED)]
    shapes = ds[0].shapes
    # area ROIs: pixel-corner coordinates, as ours
    np.testing.assert_allclose(rois[0].coordinates(), shapes[0].points_xy, atol=1e-4)
    assert (rois[1].xd, rois[1].yd, rois[1].widthd, rois[1].heightd) == (40.5, 5.25, 19.5, 15.25)
    np.testing.assert_allclose(np.sort(rois[2].coordinates(), 0), np.sort(shapes[2].corners_xy(), 0), atol=1e-4)
    assert (rois[3].xd, rois[3].yd, rois[3].widthd, rois[3].heightd) == (14.5, 45.75, 12.0, 9.0)
    # line and point ROIs: pixel-center coordinates, 0.5 px up-left of ours
    np.testing.assert_allclose(rois[6].coordinates(), shapes[6].points_xy - 0.5, atol=1e-4)
    np.testing.assert_allclose(rois[7].coordinates(), shapes[7].points_xy - 0.5, atol=1e-4)
    # names, groups (class index), colors and the label property
    assert [r.name for r in rois[:3]] == ["cavity-0001", "loop-0002", "loop-0003"]
    assert [r.group for r in rois] == [1, 2, 2, 1, 2, 2, 3, 1, 1]
    assert rois[0].hexcolor(rois[0].stroke_color) == "#ff0000"
    assert rois[0].properties["label"] == "cavity" and rois[0].properties["attribute.faint"] == "yes"
    # the integer bounds enclose the sub-pixel ones
    r = rois[0]
    xy = r.coordinates()
    assert r.left <= xy[:, 0].min() and r.right >= xy[:, 0].max() and r.top <= xy[:, 1].min()


def test_round_trip_within_a_hundredth_of_a_pixel(tmp_path: Path) -> None:
    ds = _every_shape()
    write_imagej_roi(ds, tmp_path / "out", copy_images=False)
    assert detect_format(tmp_path / "out") == "imagej-roi"
    back = defectlab.read(tmp_path / "out")
    assert back.format == "imagej-roi"
    assert [(lab.name, lab.color, lab.edge, lab.type) for lab in back.labels] == \
        [(lab.name, lab.color, lab.edge, lab.type) for lab in ds.labels]
    assert back[0].name == "a.png" and back[0].size_hw == (H, W)
    assert len(back[0].shapes) == len(ds[0].shapes)
    for a, b in zip(ds[0].shapes, back[0].shapes):
        _same_geometry(a, b)
        assert b.label == a.label
    assert back[0].shapes[0].attributes == {"faint": "yes"}
    assert (back[0].shapes[4].group, back[0].shapes[4].source) == (2, "auto")
    classes = {lab.name: i for i, lab in enumerate(ds.labels, start=1)}
    np.testing.assert_array_equal(semantic_mask(back[0], classes), semantic_mask(ds[0], classes))


def test_images_copied_beside_their_roi_sets_and_subsets_kept(tmp_path: Path) -> None:
    img = _image(tmp_path / "src", "b.png")
    item = Item("b.png", (H, W), (Polygon(label="cavity", points_xy=[(1, 1), (9, 1), (9, 9)]),),
                image=defectlab.model.ImageSource(img), subset="train")
    ds = Dataset((Label("cavity"),), (item,))
    write_imagej_roi(ds, tmp_path / "out")
    assert (tmp_path / "out" / "train" / "b.png").is_file() and (tmp_path / "out" / "train" / "b.zip").is_file()
    back = read_imagej_roi(tmp_path / "out")
    assert (back[0].name, back[0].subset) == ("b.png", "train")
    assert back[0].image is not None and back[0].image.path == tmp_path / "out" / "train" / "b.png"


def test_what_imagej_cannot_hold_is_noted(tmp_path: Path) -> None:
    holed = np.ones((5, 5), bool)
    holed[2, 2] = False
    shapes = (Tag(label="cavity"), Mask(label="cavity", bitmap=holed, left=3, top=3),
              Points(label="cavity", points_xy=[(1, 1), (2, 2)], names=("a", "b")))
    report = write_imagej_roi(Dataset((Label("cavity"),), (Item("a.png", (20, 20), shapes),)), tmp_path / "o",
                              copy_images=False)
    text = " ".join(str(n) for n in report.notes)
    assert "tag" in text and "holes" in text and "point names" in text
    assert report.n_instances == 2


def test_coordinates_imagej_cannot_hold_are_refused(tmp_path: Path) -> None:
    ds = Dataset((Label("c"),), (Item("a.png", (10, 10), (Polygon(label="c", points_xy=[(0, 0), (70000, 0), (0, 5)]),)),))
    with pytest.raises(DatasetError, match="-5000 to 60535"):
        write_imagej_roi(ds, tmp_path / "o", copy_images=False)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# ImageJ-made ROIs -> ours: integer (Fiji's default) and sub-pixel coordinates


def _zip(path: Path, rois: list) -> Path:
    roifile.roiwrite(path, rois, mode="w")
    return path


def _int_roi(kind, xy, name: str, **kw) -> roifile.ImagejRoi:
    """A ROI as Fiji draws it: integer coordinates relative to integer bounds, no sub-pixel."""
    roi = roifile.ImagejRoi.frompoints(np.asarray(xy, dtype=np.int32), name=name)
    roi.roitype = kind
    roi.options = roifile.ROI_OPTIONS.NONE
    for k, v in kw.items():
        setattr(roi, k, v)
    return roi


def test_integer_rois_as_fiji_draws_them(tmp_path: Path) -> None:
    _image(tmp_path)
    point = _int_roi(T.POINT, [[5, 7], [0, 0]], "cavity-1")
    square = _int_roi(T.POLYGON, [[2, 2], [6, 2], [6, 5], [2, 5]], "loop 2")
    line = _int_roi(T.POLYLINE, [[10, 10], [20, 10]], "dislocation(3)")
    oval = roifile.ImagejRoi(roitype=T.OVAL, left=30, top=20, right=37, bottom=25, name="cavity-0004")
    rect = roifile.ImagejRoi(roitype=T.RECT, left=50, top=30, right=54, bottom=33, name="0031-0052")
    ds = read_imagej_roi(_zip(tmp_path / "a.zip", [point, square, line, oval, rect]))
    assert ds[0].name == "a.png" and ds[0].size_hw == (H, W)
    p, poly, pl, e, b = ds[0].shapes
    assert [s.label for s in ds[0].shapes] == ["cavity", "loop", "dislocation", "cavity", "defect"]
    assert [n.code for n in ds.notes] == ["imagej-unnamed"]
    # points and lines: ImageJ's integer coordinate is the pixel's center
    assert p.points_xy.tolist() == [[5.5, 7.5], [0.5, 0.5]]
    assert np.floor(p.points_xy[0]).tolist() == [5, 7]  # the center of pixel (5, 7): it lies in no other
    assert pl.points_xy.tolist() == [[10.5, 10.5], [20.5, 10.5]]
    # area ROIs: pixel corners; a 4 x 3 square covers exactly pixels cols 2..5, rows 2..4
    assert poly.points_xy.tolist() == [[2, 2], [6, 2], [6, 5], [2, 5]]
    expected = np.zeros((H, W), np.uint8)
    expected[2:5, 2:6] = 1
    np.testing.assert_array_equal(semantic_mask(Item("x", (H, W), (poly,)), {"loop": 1}), expected)
    assert b.xyxy == (50.0, 30.0, 54.0, 33.0) and rasterize(b, (H, W)).area == 12
    # an oval: ImageJ's OvalRoi.getMask (pixel x in the mask if (x - a + 0.5)² / a² + … <= 1)
    assert (e.cx, e.cy, e.rx, e.ry) == (33.5, 22.5, 3.5, 2.5)
    w, h = 7, 5
    a, bb = w / 2.0, h / 2.0
    yy, xx = np.mgrid[0:h, 0:w]
    imagej = ((xx - (a - 0.5)) ** 2 / a**2 + (yy - (bb - 0.5)) ** 2 / bb**2) <= 1.0
    ours = semantic_mask(Item("x", (H, W), (e,)), {"cavity": 1})[20:25, 30:37].astype(bool)
    np.testing.assert_array_equal(ours, imagej)


def test_subpixel_rois_read_exactly(tmp_path: Path) -> None:
    poly = roifile.ImagejRoi.frompoints([[1.25, 2.5], [10.75, 2.5], [6.0, 9.125]], name="cavity")
    poly.roitype = T.POLYGON
    pts = roifile.ImagejRoi.frompoints([[3.25, 4.75]], name="loop")
    pts.roitype = T.POINT
    ds = read_imagej_roi(_zip(tmp_path / "rois.zip", [poly, pts]), size_hw=(20, 20))
    a, b = ds[0].shapes
    assert a.points_xy.tolist() == [[1.25, 2.5], [10.75, 2.5], [6.0, 9.125]]
    assert b.points_xy.tolist() == [[3.75, 5.25]]
    assert ds[0].size_hw == (20, 20) and ds[0].image is None


def _encoded(kind: int, subtype: int, x1y1x2y2, param: float, corners, name: str) -> bytes:
    """A ROI packed byte by byte as ImageJ's RoiEncoder writes an EllipseRoi / RotatedRectRoi
    (big-endian; header 64 bytes, polygon, header2 64 bytes, name UTF-16)."""
    corners = np.asarray(corners, dtype=np.float64)
    left, top = np.floor(corners.min(0)).astype(int)
    right, bottom = np.ceil(corners.max(0)).astype(int)
    n = len(corners)
    head = bytearray(64)
    head[0:4] = b"Iout"
    struct.pack_into(">hBxhhhhH", head, 4, 228, kind, top, left, bottom, right, n)
    struct.pack_into(">ffff", head, 18, *x1y1x2y2)
    struct.pack_into(">hh", head, 48, subtype, 128)  # subtype, options = SUB_PIXEL_RESOLUTION
    struct.pack_into(">f", head, 52, param)  # RoiDecoder.FLOAT_PARAM: aspect ratio or rect width
    ints = np.floor(corners).astype(int) - [left, top]
    coords = struct.pack(f">{n}h{n}h", *ints[:, 0], *ints[:, 1])
    floats = struct.pack(f">{n}f{n}f", *corners[:, 0], *corners[:, 1])
    hdr2_offset = 64 + len(coords) + len(floats)
    struct.pack_into(">i", head, 60, hdr2_offset)
    hdr2 = bytearray(64)
    struct.pack_into(">ii", hdr2, 16, hdr2_offset + 64, len(name))  # name offset, length
    return bytes(head) + coords + floats + bytes(hdr2) + name.encode("utf-16-be")


def test_ellipse_and_rotated_rectangle_packed_as_imagej_writes_them(tmp_path: Path) -> None:
    # EllipseRoi: major axis from (10, 20) to (30, 20) rotated by 30° about (20, 20), aspect 0.4
    t = math.radians(30)
    x1, y1, x2, y2 = 20 - 10 * math.cos(t), 20 - 10 * math.sin(t), 20 + 10 * math.cos(t), 20 + 10 * math.sin(t)
    ell = _encoded(7, 3, (x1, y1, x2, y2), 0.4, [(x1, y1), (x2, y2), (20, 24), (20, 16)], "cavity")
    # RotatedRectRoi(x1, y1, x2, y2, width) after RotatedRectRoi.makeRectangle
    rx1, ry1, rx2, ry2, width = 50.0, 40.0, 62.0, 49.0, 6.0
    angle = math.atan((rx2 - rx1) / (ry2 - ry1))
    wsa, wca = width / 2 * math.sin(math.pi / 2 + angle), width / 2 * math.cos(math.pi / 2 + angle)
    corners = [(rx1 + wsa, ry1 + wca), (rx2 + wsa, ry2 + wca), (rx2 - wsa, ry2 - wca), (rx1 - wsa, ry1 - wca)]
    rect = _encoded(7, 5, (rx1, ry1, rx2, ry2), width, corners, "loop")
    with zipfile.ZipFile(tmp_path / "rois.zip", "w") as zf:
        zf.writestr("cavity.roi", ell)
        zf.writestr("loop.roi", rect)
    ds = read_imagej_roi(tmp_path / "rois.zip", size_hw=(H, W))
    e, b = ds[0].shapes
    assert isinstance(e, Ellipse) and isinstance(b, Box)
    np.testing.assert_allclose([e.cx, e.cy, e.rx, e.ry, e.rotation_deg], [20, 20, 10, 4, 30], atol=1e-4)
    np.testing.assert_allclose(np.sort(b.corners_xy(), 0), np.sort(np.array(corners), 0), atol=1e-4)
    np.testing.assert_allclose([b.xyxy[2] - b.xyxy[0], b.xyxy[3] - b.xyxy[1]], [15.0, 6.0], atol=1e-4)
    # pixels: every pixel center inside the rotated ellipse (analytic test) is in the mask
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    u = (xx - 20) * math.cos(t) + (yy - 20) * math.sin(t)
    v = -(xx - 20) * math.sin(t) + (yy - 20) * math.cos(t)
    inside = (u / 10) ** 2 + (v / 4) ** 2 < 1
    ours = semantic_mask(Item("x", (H, W), (e,)), {"cavity": 1}).astype(bool)
    assert np.count_nonzero(ours ^ inside) == 0


def test_labels_from_groups(tmp_path: Path) -> None:
    rois = [_int_roi(T.POLYGON, [[1, 1], [5, 1], [5, 5]], f"0001-000{k}", group=g) for k, g in enumerate((1, 2, 1))]
    ds = read_imagej_roi(_zip(tmp_path / "r.zip", rois), size_hw=(10, 10), groups={1: "cavity"})
    assert [s.label for s in ds[0].shapes] == ["cavity", "group 2", "cavity"]


def test_a_folder_of_fiji_roi_sets_named_after_their_images(tmp_path: Path) -> None:
    for stem in ("a", "b"):
        _image(tmp_path, f"{stem}.png", (30, 40))
    _zip(tmp_path / "a_RoiSet.zip", [_int_roi(T.POLYGON, [[1, 1], [5, 1], [5, 5]], "cavity")])
    roifile.roiwrite(tmp_path / "b.roi", _int_roi(T.POINT, [[3, 3]], "loop"))
    assert detect_format(tmp_path) == "imagej-roi"
    ds = defectlab.read(tmp_path)
    assert [(it.name, it.size_hw, [s.kind for s in it.shapes]) for it in ds] == \
        [("a.png", (30, 40), ["polygon"]), ("b.png", (30, 40), ["points"])]


def test_a_roi_set_beside_one_image_is_that_images(tmp_path: Path) -> None:
    _image(tmp_path, "micrograph.tif")
    ds = read_imagej_roi(_zip(tmp_path / "RoiSet.zip", [_int_roi(T.POLYGON, [[1, 1], [5, 1], [5, 5]], "c")]))
    assert ds[0].name == "micrograph.tif" and [n.code for n in ds.notes] == ["imagej-image"]


# ---------------------------------------------------------------------------------------------
# Bad input: a clear error naming the file


def test_not_an_imagej_roi(tmp_path: Path) -> None:
    bad = tmp_path / "x.roi"
    bad.write_bytes(b"NOPE" + bytes(60))
    with pytest.raises(ParseError, match=r"x\.roi: not an ImageJ ROI"):
        read_imagej_roi(bad, size_hw=(5, 5))


def test_a_broken_member_is_named(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as zf:
        zf.writestr("good.roi", _int_roi(T.POINT, [[1, 1]], "c").tobytes())
        zf.writestr("bad.roi", b"Iout" + bytes(10))
    with pytest.raises(ParseError, match=r"s\.zip!bad\.roi: not a readable ImageJ ROI"):
        read_imagej_roi(tmp_path / "s.zip", size_hw=(5, 5))


def test_no_image_size_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    path = _zip(tmp_path / "cells.zip", [_int_roi(T.POINT, [[1, 1]], "c")])
    with pytest.raises(ParseError, match=r"cells\.zip: cannot tell the image size.*size_hw"):
        read_imagej_roi(path)


def test_a_bad_ellipse_aspect_ratio(tmp_path: Path) -> None:
    (tmp_path / "e.roi").write_bytes(_encoded(7, 3, (0, 0, 10, 0), 3.5, [(0, 0), (10, 0), (5, 2)], "c"))
    with pytest.raises(ParseError, match=r"e\.roi.*aspect ratio in \(0, 1\], got 3\.5"):
        read_imagej_roi(tmp_path / "e.roi", size_hw=(20, 20))


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_convert_to_and_from_imagej_roi(tmp_path: Path) -> None:
    runner = CliRunner()
    export = tmp_path / "export"
    defectlab.synthetic(export, n=2, size=96, seed=3)
    r = runner.invoke(app, ["convert", str(export), "--to", "imagej-roi", "--out", str(tmp_path / "rois")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["convert", str(tmp_path / "rois"), "--from", "imagej-roi", "--to", "cvat",
                            "--out", str(tmp_path / "back.xml")])
    assert r.exit_code == 0, r.output
    a, b = defectlab.read(export), defectlab.read(tmp_path / "back.xml")
    classes = a.class_index()
    for ia, ib in zip(a, b):
        np.testing.assert_array_equal(semantic_mask(ia, classes), semantic_mask(ib, classes))
    r = runner.invoke(app, ["info", str(tmp_path / "nothing.zip")])
    assert r.exit_code == 1
