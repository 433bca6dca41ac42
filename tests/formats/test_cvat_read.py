"""Reading CVAT XML: real exports, zips, and one test per kind of bad input.

Expected values come from the files themselves, parsed here with ``xml.etree.ElementTree``
and plain Python, or from the documentation of the sample data — never from the reader.
"""

from __future__ import annotations

import io
import shutil
import stat
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest

from defectlab.errors import ParseError
from defectlab import safe_zip
from defectlab.formats.cvat_xml import read_cvat, sniff_cvat
from defectlab.model import Box, Ellipse, ImageSource, Mask, Points, Polygon, Polyline, Tag

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CVAT = SHARED / "formats" / "cvat"
WORKSHOP = SHARED / "workshop"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared test data at {SHARED}")


# ---------------------------------------------------------------------------------------------
# An independent description of the shapes in a file, with ElementTree
# ---------------------------------------------------------------------------------------------


def _pairs(text: str) -> list[tuple[float, float]]:
    out = []
    for pair in text.split(";"):
        x, y = pair.split(",")
        out.append((float(x), float(y)))
    return out


def _et_shape(el: ET.Element) -> tuple:
    """(kind, label, geometry) of a CVAT shape element, from ElementTree."""
    a = el.attrib
    if el.tag in ("polygon", "polyline", "points"):
        return (el.tag, a["label"], _pairs(a["points"]))
    if el.tag == "ellipse":
        geo = tuple(float(a[k]) for k in ("cx", "cy", "rx", "ry")) + (float(a.get("rotation", 0)),)
        return ("ellipse", a["label"], geo)
    if el.tag == "box":
        geo = tuple(float(a[k]) for k in ("xtl", "ytl", "xbr", "ybr")) + (float(a.get("rotation", 0)),)
        return ("box", a["label"], geo)
    if el.tag == "mask":
        runs = [int(t) for t in a["rle"].split(",")]
        geo = (int(a["left"]), int(a["top"]), int(a["width"]), int(a["height"]), sum(runs[1::2]))
        return ("mask", a["label"], geo)
    if el.tag == "tag":
        return ("tag", a["label"], None)
    raise AssertionError(el.tag)


def _our_shape(shape) -> tuple:
    if isinstance(shape, (Polygon, Polyline, Points)):
        return (shape.kind, shape.label, [tuple(p) for p in shape.points_xy.tolist()])
    if isinstance(shape, Ellipse):
        return ("ellipse", shape.label, (shape.cx, shape.cy, shape.rx, shape.ry, shape.rotation_deg))
    if isinstance(shape, Box):
        return ("box", shape.label, (*shape.xyxy, shape.rotation_deg))
    if isinstance(shape, Mask):
        h, w = shape.bitmap.shape
        return ("mask", shape.label, (shape.left, shape.top, w, h, int(shape.bitmap.sum())))
    if isinstance(shape, Tag):
        return ("tag", shape.label, None)
    raise AssertionError(shape)


def _et_expectations(xml: Path):
    root = ET.parse(xml).getroot()
    labels = [
        lab.findtext("name")
        for lab in root.iter("label")
        if lab.find("name") is not None and not (lab.findtext("parent") or "").strip()
    ]
    images = []
    for im in root.findall("image"):
        shapes = [_et_shape(el) for el in im if el.get("label") != ""]
        images.append(
            (im.get("name"), (int(im.get("height")), int(im.get("width"))), im.get("subset"), int(im.get("id")), shapes)
        )
    return labels, images


IMAGE_EXPORTS = [
    "formats/cvat/all_shapes/annotations.xml",
    "formats/cvat/task_export/train.xml",
    "formats/cvat/project_export/annotations.xml",
    "workshop/DL_for_Microscopy_Train_eg_lab.xml",
    "workshop/DL_for_Microscopy_Train_Lab_1.xml",
]


@needs_shared
@pytest.mark.parametrize("rel", IMAGE_EXPORTS)
def test_real_image_exports_match_elementtree(rel: str) -> None:
    xml = SHARED / rel
    labels, images = _et_expectations(xml)
    ds = read_cvat(xml)
    assert ds.format == "cvat" and ds.source == str(xml)
    assert [lab.name for lab in ds.labels] == labels
    assert len(ds) == len(images)
    for item, (name, size_hw, subset, image_id, shapes) in zip(ds, images):
        assert (item.name, item.size_hw, item.subset, item.id) == (name, size_hw, subset, image_id)
        assert [_our_shape(s) for s in item.shapes] == shapes


@needs_shared
def test_all_shapes_details() -> None:
    ds = read_cvat(CVAT / "all_shapes")  # the folder form
    assert [lab.name for lab in ds.labels] == ["cavity", "loop", "precipitate", "dislocation line"]
    loop = ds.label("loop")
    assert loop.color == "#ff0000" and loop.type == "any"
    (habit,) = loop.attributes
    assert (habit.name, habit.input_type, habit.default, habit.values, habit.mutable) == (
        "habit", "select", "111", ("111", "100"), False,
    )
    assert ds.label("dislocation line").type == "polyline"

    a, b = ds.items
    assert (a.name, a.size_hw, a.id) == ("frame_a.png", (1024, 1024), 0)
    assert (b.name, b.shapes, b.id) == ("frame_b.png", (), 1)  # an image without shapes
    ell, ell2, box, line, pts, mask, poly, tag = a.shapes
    assert isinstance(ell, Ellipse) and (ell.cx, ell.cy, ell.rx, ell.ry) == (100.5, 200.25, 20.0, 12.5)
    assert ell.rotation_deg == 30.0 and not ell.occluded and ell.z_order == 0 and ell.source == "manual"
    assert ell2.occluded and ell2.z_order == 1 and ell2.attributes == {"habit": "100"}
    assert ell2.rotation_deg == 0.0
    assert isinstance(box, Box) and box.xyxy == (600.0, 100.0, 660.0, 130.0) and box.rotation_deg == 45.0
    assert isinstance(line, Polyline) and line.label == "dislocation line"
    assert line.points_xy.tolist() == [[10.0, 900.0], [200.5, 850.25], [420.0, 870.0]]
    assert isinstance(pts, Points) and pts.points_xy.tolist() == [[800.0, 800.0], [810.0, 805.0]]
    assert pts.names is None
    assert isinstance(poly, Polygon) and poly.group == 1 and poly.z_order == 3
    assert all(s.group is None for s in a.shapes if s is not poly)
    assert isinstance(tag, Tag) and tag.label == "cavity"
    assert isinstance(mask, Mask) and mask.z_order == 2


@needs_shared
def test_all_shapes_mask_decodes_to_the_documented_blob() -> None:
    xml = CVAT / "all_shapes" / "annotations.xml"
    el = next(ET.parse(xml).getroot().iter("mask"))
    # decode by hand: runs alternate, background first, row-major in the width x height box
    runs = [int(t) for t in el.get("rle").split(",")]
    width, height = int(el.get("width")), int(el.get("height"))
    flat, value = [], 0
    for run in runs:
        flat += [value] * run
        value = 1 - value
    expected = [flat[r * width : (r + 1) * width] for r in range(height)]

    mask = read_cvat(xml).items[0].shapes[5]
    assert isinstance(mask, Mask)
    assert (mask.left, mask.top) == (707, 888)
    assert mask.bitmap.shape == (15, 13) and mask.bitmap.dtype == bool
    assert mask.bitmap.astype(int).tolist() == expected
    assert int(mask.bitmap.sum()) == 149
    assert mask.bbox_xyxy() == (707.0, 888.0, 720.0, 903.0)
    # a disc-like blob: every row and every column is one run, it touches all four sides,
    # and its row widths rise to the full width and fall again
    for line in [*mask.bitmap, *mask.bitmap.T]:
        on = np.flatnonzero(line)
        assert len(on) and on[-1] - on[0] + 1 == len(on)
    widths = mask.bitmap.sum(axis=1).tolist()
    assert widths == [5, 7, 9, 11, 11, 12, 12, 13, 13, 12, 12, 11, 9, 7, 5]
    peak = widths.index(13)
    assert widths[: peak + 1] == sorted(widths[: peak + 1])
    assert widths[peak:] == sorted(widths[peak:], reverse=True)


@needs_shared
def test_all_shapes_missing_images_are_notes() -> None:
    ds = read_cvat(CVAT / "all_shapes" / "annotations.xml")
    assert all(item.image is None for item in ds)
    missing = [n for n in ds.notes if n.code == "missing-image"]
    assert [n.item for n in missing] == ["frame_a.png", "frame_b.png"]


@needs_shared
def test_images_dir_option(tmp_path: Path) -> None:
    xml = tmp_path / "export" / "annotations.xml"
    xml.parent.mkdir()
    shutil.copy(CVAT / "all_shapes" / "annotations.xml", xml)
    pics = tmp_path / "pics"
    pics.mkdir()
    (pics / "frame_a.png").write_bytes(b"not really a png")
    ds = read_cvat(xml, images=pics)
    assert ds.items[0].image == ImageSource(pics / "frame_a.png")
    assert ds.items[1].image is None
    assert [n.item for n in ds.notes if n.code == "missing-image"] == ["frame_b.png"]


@needs_shared
def test_task_export_skips_unlabeled_shapes_with_notes() -> None:
    xml = CVAT / "task_export" / "train.xml"
    lines = xml.read_text().splitlines()
    blank = [i + 1 for i, line in enumerate(lines) if 'label=""' in line]
    assert len(blank) == 2
    ds = read_cvat(xml)
    notes = [n for n in ds.notes if n.code == "unlabeled-shape"]
    assert [(n.item, n.where) for n in notes] == [("img0.jpg", f"line {blank[0]}"), ("img1.jpg", f"line {blank[1]}")]
    assert [s.kind for s in ds.items[0].shapes] == ["box"]
    assert [s.kind for s in ds.items[1].shapes] == ["points"]
    box = ds.items[0].shapes[0]
    assert box.attributes == {"a1": "true", "a2": "v3", "a3": "0003", "a4": "2.4"}
    assert box.occluded and box.z_order == 1
    label1 = ds.label("label1")
    assert [(a.name, a.values) for a in label1.attributes] == [
        ("a1", ("false", "true")), ("a2", ("v1", "v2", "v3")), ("a3", ("0001", "0002", "0003")),
        ("a4", ("2.4", "1", "-5.6")),
    ]
    assert ds.label("label2").color is None
    for item in ds:
        assert item.image == ImageSource(CVAT / "task_export" / "images" / item.name)


@needs_shared
def test_project_export_subsets_and_images() -> None:
    ds = read_cvat(CVAT / "project_export")
    assert len(ds) == 6
    assert ds.subsets() == ["Test", "Train", "Validation"]
    assert [(it.subset, it.name) for it in ds] == [
        (s, n) for s in ("Test", "Train", "Validation") for n in ("img0.jpg", "img1.jpg")
    ]
    for item in ds:
        assert item.image == ImageSource(CVAT / "project_export" / "images" / item.subset / item.name)
    assert not [n for n in ds.notes if n.code == "missing-image"]
    assert len({it.key for it in ds}) == 6


@needs_shared
def test_video_export() -> None:
    folder = CVAT / "video_export"
    root = ET.parse(folder / "annotations.xml").getroot()
    task = root.find("meta/task")
    start, stop = int(task.findtext("start_frame")), int(task.findtext("stop_frame"))
    step = int(task.findtext("frame_filter").split("=")[1])
    size_hw = (int(task.findtext("original_size/height")), int(task.findtext("original_size/width")))
    frames = list(range(start, stop + 1, step))
    assert frames == [10, 13, 16, 19] and len(frames) == int(task.findtext("size"))

    ds = read_cvat(folder)
    assert [it.id for it in ds] == frames
    assert all(it.size_hw == size_hw for it in ds)
    # expected shapes per frame: every track element not outside
    expected: dict[int, list[tuple]] = {f: [] for f in frames}
    for track in root.findall("track"):
        for el in track:
            if el.get("outside") == "1":
                continue
            el.set("label", track.get("label"))
            expected[int(el.get("frame"))].append(_et_shape(el))
    for item in ds:
        assert sorted(map(repr, map(_our_shape, item.shapes))) == sorted(map(repr, expected[item.id]))
    assert [len(it.shapes) for it in ds] == [2, 1, 0, 0]
    box = ds.items[0].shapes[0]
    assert isinstance(box, Box) and box.occluded and box.label == "II"
    assert ds.items[0].shapes[1].attributes == {"hgl": "hgkf"}
    # frame 16: track 0 and track 2 are outside, so no shape
    for item in ds.items[:3]:
        assert item.name == f"frame_{item.id:06d}.png"
        assert item.image == ImageSource(folder / "images" / item.name)
    last = ds.items[3]
    assert last.image is None and last.name.startswith("frame_000019")
    assert [n.item for n in ds.notes if n.code == "missing-image"] == [last.name]


@needs_shared
def test_workshop_exports_find_their_image() -> None:
    for xml in sorted(WORKSHOP.glob("*.xml")):
        ds = read_cvat(xml)
        (item,) = ds.items
        assert item.image == ImageSource(WORKSHOP / item.name)
        assert item.size_hw == (512, 512)
    ds = read_cvat(WORKSHOP / "DL_for_Microscopy_Train_Lab_1.xml")
    assert ds.shape_counts() == {("bubble", "polygon"): 37}
    assert not ds.notes


# ---------------------------------------------------------------------------------------------
# Zip archives
# ---------------------------------------------------------------------------------------------


def _zip_folder(folder: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, prefix + file.relative_to(folder).as_posix())
    return target


@needs_shared
def test_zip_project_export(tmp_path: Path) -> None:
    archive = _zip_folder(CVAT / "project_export", tmp_path / "project.zip")
    ds = read_cvat(archive)
    assert len(ds) == 6 and ds.subsets() == ["Test", "Train", "Validation"]
    for item in ds:
        member = f"images/{item.subset}/{item.name}"
        assert item.image == ImageSource(archive, member)
        assert item.image.read_bytes() == (CVAT / "project_export" / member).read_bytes()
    assert sniff_cvat(archive)


@needs_shared
def test_zip_with_a_top_folder_and_errors_name_the_member(tmp_path: Path) -> None:
    archive = _zip_folder(CVAT / "video_export", tmp_path / "video.zip", prefix="job_5/")
    ds = read_cvat(archive)
    assert ds.items[0].image == ImageSource(archive, "job_5/images/frame_000010.png")
    assert ds.items[0].image.read_bytes() == (CVAT / "video_export/images/frame_000010.png").read_bytes()

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("annotations.xml", "<annotations>\n<image name='a' width='0' height='3'/>\n</annotations>")
    with pytest.raises(ParseError, match=r"bad\.zip!annotations\.xml, line 2\b.*width"):
        read_cvat(bad)


def test_zip_member_climbing_out_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations.xml", "<annotations/>")
        zf.writestr("../evil.xml", "<annotations/>")
    with pytest.raises(ParseError, match=r"evil\.zip!\.\./evil\.xml.*'\.\.'"):
        read_cvat(archive)
    assert not sniff_cvat(archive)


def test_zip_absolute_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "abs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations.xml", "<annotations/>")
        zf.writestr("/etc/evil.xml", "<annotations/>")
    with pytest.raises(ParseError, match=r"abs\.zip!/etc/evil\.xml.*absolute"):
        read_cvat(archive)


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations.xml", "<annotations/>")
        info = zipfile.ZipInfo("images/a.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ParseError, match=r"link\.zip!images/a\.png.*symbolic link"):
        read_cvat(archive)


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations.xml", b"<annotations>" + b" " * 20_000_000 + b"</annotations>")
    info = zipfile.ZipFile(archive).getinfo("annotations.xml")
    assert info.file_size / info.compress_size > safe_zip.MAX_COMPRESSION_RATIO  # a real bomb
    start = time.process_time()
    with pytest.raises(ParseError, match=r"bomb\.zip!annotations\.xml.*compressed \d+:1"):
        read_cvat(archive)
    assert time.process_time() - start < 1.0  # refused before decompressing


def test_zip_member_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("annotations.xml", "<annotations>" + "<!-- x -->" * 300 + "</annotations>")
    monkeypatch.setattr(safe_zip, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(ParseError, match=r"big\.zip!annotations\.xml.*limit is 1000"):
        read_cvat(archive)


def test_not_a_zip_nor_xml(tmp_path: Path) -> None:
    path = tmp_path / "junk.zip"
    path.write_bytes(b"PK\x03\x04 truncated garbage")
    with pytest.raises(ParseError, match=r"junk\.zip"):
        read_cvat(path)


# ---------------------------------------------------------------------------------------------
# One test per kind of bad input
# ---------------------------------------------------------------------------------------------

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><job><labels>
    <label><name>cavity</name><color>#61b21f</color><type>any</type></label>
    <label><name>loop</name></label>
  </labels></job></meta>
"""


def _write_bad(tmp_path: Path, body: str, header: str = HEADER) -> tuple[Path, int]:
    """Write a file whose body's line holding ``@`` is the bad one; return (path, that line)."""
    text = header + body + "\n</annotations>\n"
    lines = text.splitlines()
    bad_line = next(i + 1 for i, line in enumerate(lines) if "@" in line)
    path = tmp_path / "bad.xml"
    path.write_text(text.replace("@", ""), encoding="utf-8")
    return path, bad_line


IMAGE = '  <image id="0" name="a.png" width="64" height="48">\n{}\n  </image>'


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ('<blob@ label="cavity"/>', r"unknown shape element <blob>.*<polygon>.*<ellipse>"),
        ('<ellipse@ label="cavity" cx="1" cy="2" ry="3"/>', r"<ellipse> attribute 'rx'.*missing attribute 'rx'"),
        ('<ellipse@ label="cavity" cx="abc" cy="2" rx="1" ry="3"/>', r"'cx'.*expected a number.*'abc'"),
        ('<ellipse@ label="cavity" cx="1" cy="2" rx="inf" ry="3"/>', r"'rx'.*finite.*'inf'"),
        ('<polygon@ label="cavity" points="1,2;NaN,3;4,5"/>', r"'points'.*finite"),
        ('<polygon@ label="cavity" points="1,2;x,3;4,5"/>', r"'points'.*'x'"),
        ('<polyline@ label="cavity" points="1,2,3;4"/>', r"'points'.*x0,y0"),
        ('<polygon@ label="cavity" points="1,2;3,4"/>', r"invalid <polygon>: polygon: expected at least 3 points, got 2"),
        ('<polyline@ label="cavity" points="1,2"/>', r"invalid <polyline>: .*at least 2 points, got 1"),
        ('<box@ label="cavity" xtl="5" ytl="0" xbr="1" ybr="4"/>', r"invalid <box>: .*x1 <= x2"),
        ('<box@ label="void" xtl="0" ytl="0" xbr="1" ybr="4"/>', r"undeclared label 'void'.*\['cavity', 'loop'\]"),
        ('<mask@ label="cavity" rle="1, 2, 3" left="0" top="0" width="2" height="2"/>', r"'rle'.*sum to 6.*2 \* 2 = 4"),
        ('<mask@ label="cavity" rle="1, x" left="0" top="0" width="1" height="1"/>', r"'rle'.*whole numbers"),
        ('<mask@ label="cavity" rle="1" left="0" top="0" width="0" height="1"/>', r"positive mask width"),
        ('<ellipse@ label="cavity" cx="1" cy="2" rx="1" ry="1" occluded="maybe"/>', r"'occluded'.*0 or 1"),
        ('<box@ label="cavity" xtl="0" ytl="0" xbr="1" ybr="4" z_order="top"/>', r"'z_order'.*whole number"),
    ],
)
def test_bad_shapes(tmp_path: Path, shape: str, match: str) -> None:
    path, line = _write_bad(tmp_path, IMAGE.format("    " + shape))
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*" + match) as info:
        read_cvat(path)
    assert info.value.line == line
    if "invalid <" in match:
        assert isinstance(info.value.__cause__, ValueError)  # chained from the model's error


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ('<image@ id="0" name="a.png" width="0" height="48"/>', r"positive image width, got 0"),
        ('<image@ id="0" name="a.png" width="64" height="-3"/>', r"positive image height, got -3"),
        ('<image@ id="0" name="a.png" width="64"/>', r"missing attribute 'height'"),
        ('<image@ id="0" width="64" height="48"/>', r"missing attribute 'name'"),
        ('<image@ id="zero" name="a.png" width="64" height="48"/>', r"'id'.*whole number"),
    ],
)
def test_bad_images(tmp_path: Path, image: str, match: str) -> None:
    path, line = _write_bad(tmp_path, "  " + image)
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*" + match):
        read_cvat(path)


def test_truncated_file(tmp_path: Path) -> None:
    text = HEADER + IMAGE.format('    <ellipse label="cavity" cx="1" cy="2" rx="1" ry="1"/>') + "\n</annotations>\n"
    cut = text[: text.index('ry="1"')]
    path = tmp_path / "bad.xml"
    path.write_text(cut)
    line = cut.count("\n") + 1
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*truncated"):
        read_cvat(path)


def test_mismatched_tags(tmp_path: Path) -> None:
    path, line = _write_bad(tmp_path, '  <image id="0" name="a.png" width="4" height="4">\n  </imgae@>')
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*malformed XML: mismatched tag"):
        read_cvat(path)


def test_root_is_not_annotations(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text('<?xml version="1.0"?>\n<annotation>\n  <filename>a.png</filename>\n</annotation>\n')
    with pytest.raises(ParseError, match=r"bad\.xml, line 2\b.*not a CVAT XML export.*<annotation>"):
        read_cvat(path)
    assert not sniff_cvat(path)


def test_bad_label_color(tmp_path: Path) -> None:
    header = HEADER.replace("<color>#61b21f</color>", "<color>green</color>")
    path, _ = _write_bad(tmp_path, "<!--@-->", header=header)
    line = next(i + 1 for i, t in enumerate(header.splitlines()) if "green" in t)
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*#61b21f.*'green'"):
        read_cvat(path)


def test_duplicate_label(tmp_path: Path) -> None:
    header = HEADER.replace("<name>loop</name>", "<name>cavity</name>")
    path, _ = _write_bad(tmp_path, "<!--@-->", header=header)
    line = next(i + 1 for i, t in enumerate(header.splitlines()) if "<label><name>cavity</name></label>" in t)
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*'cavity' is declared twice"):
        read_cvat(path)


def test_cuboid_is_skipped_with_a_note(tmp_path: Path) -> None:
    body = IMAGE.format(
        '    <cuboid@ label="cavity" xtl1="0" ytl1="0" xbl1="0" ybl1="1" xtr1="1" ytr1="0" xbr1="1" ybr1="1"'
        ' xtl2="0" ytl2="0" xbl2="0" ybl2="1" xtr2="1" ytr2="0" xbr2="1" ybr2="1"/>\n'
        '    <ellipse label="cavity" cx="1" cy="2" rx="1" ry="1"/>'
    )
    path, line = _write_bad(tmp_path, body)
    ds = read_cvat(path)
    assert [s.kind for s in ds.items[0].shapes] == ["ellipse"]
    (note,) = [n for n in ds.notes if n.code == "skipped-cuboid"]
    assert (note.item, note.where) == ("a.png", f"line {line}")


def test_skeleton_becomes_named_points(tmp_path: Path) -> None:
    header = HEADER.replace(
        "  </labels>",
        "    <label><name>s1</name><type>skeleton</type></label>\n"
        "    <label><name>head</name><type>points</type><parent>s1</parent></label>\n"
        "    <label><name>tail</name><type>points</type><parent>s1</parent></label>\n"
        "    <label><name>mid</name><type>points</type><parent>s1</parent></label>\n  </labels>",
    )
    body = IMAGE.format(
        '    <skeleton label="s1" source="manual" z_order="2" group_id="4">\n'
        '      <points label="head" occluded="0" source="manual" outside="0" points="54.47,94.81"/>\n'
        '      <points label="mid" occluded="0" source="manual" outside="1" points="1,1"/>\n'
        '      <points label="tail" occluded="1" source="manual" outside="0" points="68.02,162.34"/>\n'
        '      <attribute name="pose">up</attribute>\n'
        "    </skeleton>\n"
        '    <skeleton@ label="s1"><points label="head" outside="1" points="1,1"/></skeleton>'
    )
    path, line = _write_bad(tmp_path, body, header=header)
    ds = read_cvat(path)
    assert [lab.name for lab in ds.labels] == ["cavity", "loop", "s1"]  # nodes are not classes
    (skel,) = ds.items[0].shapes
    assert isinstance(skel, Points) and skel.label == "s1"
    assert skel.names == ("head", "tail")
    assert skel.points_xy.tolist() == [[54.47, 94.81], [68.02, 162.34]]
    assert (skel.z_order, skel.group, skel.attributes) == (2, 4, {"pose": "up"})
    (note,) = [n for n in ds.notes if n.code == "empty-skeleton"]
    assert note.where == f"line {line}"


def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)
    ]
    text = (
        '<?xml version="1.0"?>\n<!DOCTYPE annotations [\n'
        + "\n".join(entities)
        + "\n]>\n<annotations><version>&lol9;</version></annotations>\n"
    )
    path = tmp_path / "bad.xml"
    path.write_text(text)
    start = time.process_time()
    with pytest.raises(ParseError, match=r"bad\.xml, line 2\b.*DOCTYPE"):
        read_cvat(path)
    assert time.process_time() - start < 0.5
    assert not sniff_cvat(path)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file://{secret}">]>',
        '<!DOCTYPE annotations [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>',
        '<!DOCTYPE annotations SYSTEM "file://{secret}">',
    ],
)
def test_external_entities_are_refused(tmp_path: Path, doctype: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4821")
    text = (
        '<?xml version="1.0"?>\n'
        + doctype.format(secret=secret)
        + '\n<annotations><meta><job><labels><label><name>&xxe;</name></label></labels></job></meta>'
        '<image id="0" name="&xxe;" width="1" height="1"/></annotations>\n'
    )
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(ParseError, match=r"bad\.xml, line 2\b.*DOCTYPE") as info:
        read_cvat(path)
    assert "TOPSECRET" not in str(info.value)


def test_undefined_entity_without_doctype(tmp_path: Path) -> None:
    path, line = _write_bad(tmp_path, '  <image id="0" name="&xxe;@" width="1" height="1"/>')
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*undefined entity"):
        read_cvat(path)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"nope\.xml: no such file"):
        read_cvat(tmp_path / "nope.xml")
    with pytest.raises(ParseError, match=r"no annotations\.xml"):
        read_cvat(tmp_path)


# ---------------------------------------------------------------------------------------------
# Sniffing and speed
# ---------------------------------------------------------------------------------------------


@needs_shared
def test_sniff(tmp_path: Path) -> None:
    assert sniff_cvat(CVAT / "all_shapes")
    assert sniff_cvat(CVAT / "task_export" / "train.xml")
    assert sniff_cvat(WORKSHOP / "DL_for_Microscopy_Train_eg_lab.xml")
    assert sniff_cvat(_zip_folder(CVAT / "all_shapes", tmp_path / "a.zip"))
    assert not sniff_cvat(SHARED / "formats" / "via" / "via1_unit_test_annotation2.json")
    assert sniff_cvat(CVAT / "task_export")  # its single .xml, as read_cvat reads it
    assert not sniff_cvat(SHARED / "formats" / "coco" / "instances")
    assert not sniff_cvat(WORKSHOP)  # two .xml files: ambiguous
    assert not sniff_cvat(tmp_path / "missing.xml")
    assert not sniff_cvat(WORKSHOP / "DL_for_Microscopy_Train_eg_img.png")


def test_sniff_reads_only_the_start(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b'<?xml version="1.0"?>\n<annotations>' + b"<broken" * 100_000)
    assert sniff_cvat(path)  # the broken rest is never read
    with pytest.raises(ParseError):
        read_cvat(path)


def test_a_benchmark_sized_export_reads_whole(tmp_path: Path) -> None:
    """50 images x 200 polygons of 12 vertices: the benchmark's size."""
    rng = np.random.default_rng(0)
    parts = [HEADER]
    for i in range(50):
        parts.append(f'  <image id="{i}" name="img_{i}.png" width="512" height="512">')
        for _ in range(200):
            pts = ";".join(f"{x:.2f},{y:.2f}" for x, y in rng.uniform(0, 512, (12, 2)))
            parts.append(f'    <polygon label="cavity" source="manual" occluded="0" points="{pts}" z_order="0"></polygon>')
        parts.append("  </image>")
    parts.append("</annotations>")
    path = tmp_path / "big.xml"
    path.write_text("\n".join(parts))
    ds = read_cvat(path)  # its speed is measured in benchmarks/bench_convert.py, not asserted here
    assert sum(len(it.shapes) for it in ds) == 10_000
    assert all(len(s.points_xy) == 12 for it in ds for s in it.shapes)


def test_io_bytes_source_is_not_needed_for_zip_reading(tmp_path: Path) -> None:
    """Zip reading goes through the archive in place: nothing is extracted beside it."""
    archive = tmp_path / "x.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("annotations.xml", HEADER + '<image id="0" name="a.png" width="4" height="4"/></annotations>')
        zf.writestr("images/a.png", b"png bytes")
    archive.write_bytes(buf.getvalue())
    ds = read_cvat(archive)
    assert ds.items[0].image == ImageSource(archive, "images/a.png")
    assert ds.items[0].image.read_bytes() == b"png bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zip"]


# ---------------------------------------------------------------------------------------------
# Smaller corners: video tracks, skeleton nodes, options
# ---------------------------------------------------------------------------------------------

VIDEO_HEADER = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task>
    <size>3</size><mode>interpolation</mode>
    <start_frame>0</start_frame><stop_frame>2</stop_frame><frame_filter></frame_filter>
    <labels>
      <label><name>loop</name></label>
      <label><name>s1</name><type>skeleton</type></label>
      <label><name>a</name><type>points</type><parent>s1</parent></label>
      <label><name>b</name><type>points</type><parent>s1</parent></label>
    </labels>
    {size}
  </task></meta>
"""
SIZE = "<original_size><width>30</width><height>20</height></original_size>"


def test_video_tracks_of_every_kind(tmp_path: Path) -> None:
    body = (
        '  <track id="0" label="loop" source="auto" group_id="3">\n'
        '    <mask frame="1" outside="0" occluded="1" keyframe="1" rle="1, 2, 1" left="4" top="5" width="2"'
        ' height="2" z_order="2"/>\n'
        "  </track>\n"
        '  <track id="1" label="s1">\n'
        '    <skeleton frame="0" keyframe="1" z_order="0">\n'
        '      <points label="a" keyframe="1" outside="0" occluded="0" points="1.5,2.5"/>\n'
        '      <points label="b" keyframe="1" outside="1" occluded="0" points="3,4"/>\n'
        "    </skeleton>\n"
        "  </track>\n"
        '  <track id="2" label="">\n'
        '    <box@ frame="2" outside="0" occluded="0" keyframe="1" xtl="0" ytl="0" xbr="1" ybr="1" z_order="0"/>\n'
        "  </track>"
    )
    path, line = _write_bad(tmp_path, body, header=VIDEO_HEADER.format(size=SIZE))
    ds = read_cvat(path)
    assert [(it.id, it.name, it.size_hw) for it in ds] == [
        (0, "frame_000000", (20, 30)), (1, "frame_000001", (20, 30)), (2, "frame_000002", (20, 30)),
    ]
    (skel,) = ds.items[0].shapes
    assert isinstance(skel, Points) and skel.names == ("a",) and skel.points_xy.tolist() == [[1.5, 2.5]]
    (mask,) = ds.items[1].shapes
    assert isinstance(mask, Mask) and mask.bitmap.tolist() == [[False, True], [True, False]]
    assert (mask.left, mask.top, mask.occluded, mask.z_order, mask.group, mask.source) == (4, 5, True, 2, 3, "auto")
    assert ds.items[2].shapes == ()
    (note,) = [n for n in ds.notes if n.code == "unlabeled-shape"]
    assert (note.item, note.where) == ("frame_000002", f"line {line}")
    assert len([n for n in ds.notes if n.code == "missing-image"]) == 3


def test_video_without_frame_size(tmp_path: Path) -> None:
    body = '  <track id="0" label="loop">\n    <box frame="0" outside="0" xtl="0" ytl="0" xbr="1" ybr="1"/>\n  </track>'
    path, _ = _write_bad(tmp_path, "<!--@-->\n" + body, header=VIDEO_HEADER.format(size=""))
    line = next(i + 1 for i, t in enumerate(VIDEO_HEADER.splitlines()) if "<meta><task>" in t)
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*original_size"):
        read_cvat(path)


def test_unknown_frame_filter_is_a_note(tmp_path: Path) -> None:
    header = VIDEO_HEADER.format(size=SIZE).replace("<frame_filter></frame_filter>", "<frame_filter>odd</frame_filter>")
    body = '  <track id="0" label="loop">\n    <box frame="7" outside="0" xtl="0" ytl="0" xbr="1" ybr="1"/>\n  </track>'
    path, _ = _write_bad(tmp_path, "<!--@-->\n" + body, header=header)
    ds = read_cvat(path)
    assert [it.id for it in ds] == [7]  # only the frames seen
    assert [n.code for n in ds.notes if n.code != "missing-image"] == ["unknown-frame-filter"]


def test_undeclared_skeleton_node(tmp_path: Path) -> None:
    body = (
        '  <image id="0" name="a.png" width="8" height="8">\n'
        '    <skeleton label="s1"><points@ label="c" outside="0" points="1,1"/></skeleton>\n'
        "  </image>"
    )
    path, line = _write_bad(tmp_path, body, header=VIDEO_HEADER.format(size=SIZE))
    with pytest.raises(ParseError, match=rf"bad\.xml, line {line}\b.*node 'c'.*'s1'.*\['a', 'b'\]"):
        read_cvat(path)


def test_skeleton_node_attributes_are_reported(tmp_path: Path) -> None:
    body = (
        '  <image id="0" name="a.png" width="8" height="8">\n'
        '    <skeleton label="s1">\n'
        '      <points@ label="a" outside="0" points="1,1"><attribute name="x">1</attribute></points>\n'
        "    </skeleton>\n"
        "  </image>"
    )
    path, line = _write_bad(tmp_path, body, header=VIDEO_HEADER.format(size=SIZE))
    ds = read_cvat(path)
    (note,) = [n for n in ds.notes if n.code == "ignored-element"]
    assert (note.item, note.where) == ("a.png", f"line {line}") and "'a'" in note.message


def test_images_option_must_be_a_folder(tmp_path: Path) -> None:
    from defectlab.errors import ImageError

    path, _ = _write_bad(tmp_path, "<!--@-->")
    with pytest.raises(ImageError, match=r"nowhere: no such folder"):
        read_cvat(path, images=tmp_path / "nowhere")
