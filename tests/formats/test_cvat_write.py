"""Writing CVAT XML: the file is valid, exact, atomic, and reads back to an equal dataset."""

from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defectlab.errors import DatasetError, OutputError
from defectlab.formats.cvat_xml import read_cvat, write_cvat
from defectlab.model import (
    AttributeSpec,
    Box,
    Dataset,
    Ellipse,
    Item,
    Label,
    Mask,
    Points,
    Polygon,
    Polyline,
    Tag,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CVAT = SHARED / "formats" / "cvat"

ODD = 0.1 + 0.2  # 0.30000000000000004
WEIRD = 'défaut <α> & "β"'


def _full_dataset() -> Dataset:
    labels = (
        Label("cavity", color="#61b21f", type="ellipse"),
        Label(
            "loop",
            color="#FF0000",
            attributes=(
                AttributeSpec("habit", input_type="select", default="111", values=("111", "100"), mutable=False),
                AttributeSpec("note", input_type="text", default="a & b", values=("single crystal",), mutable=True),
            ),
        ),
        Label(WEIRD),
        Label("dislocation line", type="polyline"),
        Label("pose", type="skeleton"),
    )
    disc = np.hypot(*np.mgrid[-7:8, -6:7]) <= 6.2  # 15 x 13, first pixel background
    corner = np.zeros((3, 4), bool)
    corner[0, 0] = corner[2, 3] = True  # first pixel foreground
    shapes_a = (
        Polygon(label="cavity", points_xy=[(ODD, 1e-7), (123456.789, 0.0), (5.5, -2.25)], z_order=3, group=7),
        Polyline(label="dislocation line", points_xy=[(10, 900), (200.5, 850.25)], source="auto"),
        Points(label="cavity", points_xy=[(800, 800), (810.125, 805)], occluded=True),
        Points(label="pose", points_xy=[(1, 2), (3.5, 4.25), (5, 6)], names=("head", "mid", "tail")),
        Ellipse(label="cavity", cx=100.5, cy=200.25, rx=20, ry=12.5, rotation_deg=30),
        Ellipse(label="loop", cx=ODD, cy=1 / 3, rx=math.pi, ry=1e-7, attributes={"habit": "100", "note": "<&>\"'", " odd\tkey ": " a\tb\nc\r\n "}),
        Box(label=WEIRD, xyxy=(600, 100, 660.0000001, 130), rotation_deg=-45.5),
        Box(label="loop", xyxy=(0, 0, 0, 0)),
        Mask(label="loop", bitmap=disc, left=707, top=888, z_order=2),
        Mask(label=WEIRD, bitmap=corner, left=0, top=5),
        Tag(label=WEIRD, attributes={"by": "Zoë"}),
    )
    items = (
        Item("a.png", (1024, 1000), shapes_a, subset="Train", id=0),
        Item("sub/ünï & <b>.tif", (7, 9), (), subset="Train", id=1),
        Item("a.png", (1024, 1000), (Tag(label="cavity"),), subset="Validation", id=0),
    )
    return Dataset(labels, items)


def _assert_same(back: Dataset, ds: Dataset) -> None:
    assert back.labels == ds.labels
    assert len(back) == len(ds)
    for got, want in zip(back, ds):
        assert (got.name, got.size_hw, got.subset, got.id) == (want.name, want.size_hw, want.subset, want.id)
        assert got.shapes == want.shapes


def test_round_trip_every_shape(tmp_path: Path) -> None:
    ds = _full_dataset()
    path = tmp_path / "out.xml"
    write_cvat(ds, path)
    back = read_cvat(path)
    _assert_same(back, ds)
    assert back.format == "cvat"
    assert {n.code for n in back.notes} == {"missing-image"}  # nothing else was skipped


def test_written_file_is_cvat_shaped(tmp_path: Path) -> None:
    ds = _full_dataset()
    path = tmp_path / "out.xml"
    write_cvat(ds, path)
    root = ET.parse(path).getroot()  # an independent parser reads it
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    # two subsets: a project export, as CVAT writes one (#14.11: never <job>, which datumaro refuses)
    assert root.find("meta/job") is None and root.find("meta/task") is None
    project = root.find("meta/project")
    tasks = project.findall("tasks/task")
    assert [(tk.findtext("id"), tk.findtext("subset"), tk.findtext("size"), tk.findtext("mode")) for tk in tasks] == [
        ("1", "Train", "2", "annotation"), ("2", "Validation", "1", "annotation")]
    assert project.findtext("subsets").split("\n") == ["Train", "Validation"]
    labels = project.findall("labels/label")
    classes = [lab for lab in labels if lab.find("parent") is None]
    assert [lab.findtext("name") for lab in classes] == [lab.name for lab in ds.labels]
    assert [lab.findtext("color") for lab in classes] == ["#61b21f", "#FF0000", None, None, None]
    assert [lab.findtext("type") for lab in classes] == ["ellipse", "any", "any", "polyline", "skeleton"]
    habit = classes[1].find("attributes/attribute")
    assert [habit.findtext(k) for k in ("name", "mutable", "input_type", "default_value", "values")] == [
        "habit", "False", "select", "111", "111\n100",
    ]
    nodes = [(lab.findtext("name"), lab.findtext("parent")) for lab in labels if lab.find("parent") is not None]
    assert nodes == [("head", "pose"), ("mid", "pose"), ("tail", "pose")]

    images = root.findall("image")
    assert [(im.get("name"), im.get("subset"), im.get("width"), im.get("height")) for im in images] == [
        ("a.png", "Train", "1000", "1024"), ("sub/ünï & <b>.tif", "Train", "9", "7"), ("a.png", "Validation", "1000", "1024"),
    ]
    assert [im.get("task_id") for im in images] == ["1", "1", "2"]
    first = list(images[0])
    assert [el.tag for el in first] == [
        "polygon", "polyline", "points", "skeleton", "ellipse", "ellipse", "box", "box", "mask", "mask", "tag",
    ]
    polygon, _, _, skeleton, ell_rot, ell, box_rot, box, mask, _, tag = first
    # exact floats, as the shortest decimal that reads back to the same float64
    pts = [tuple(map(float, p.split(","))) for p in polygon.get("points").split(";")]
    assert pts == [(ODD, 1e-7), (123456.789, 0.0), (5.5, -2.25)]
    assert polygon.get("group_id") == "7" and polygon.get("z_order") == "3"
    assert float(ell.get("cx")) == ODD and float(ell.get("cy")) == 1 / 3 and float(ell.get("rx")) == math.pi
    # rotation only when non-zero
    assert float(ell_rot.get("rotation")) == 30.0 and "rotation" not in ell.attrib
    assert float(box_rot.get("rotation")) == -45.5 and "rotation" not in box.attrib
    assert float(box_rot.get("xbr")) == 660.0000001
    assert box_rot.get("label") == WEIRD  # escaped and unescaped correctly
    assert {a.get("name"): a.text for a in ell.findall("attribute")} == {"habit": "100", "note": "<&>\"'", " odd\tkey ": " a\tb\nc\r\n "}
    assert [(p.get("label"), p.get("points"), p.get("outside")) for p in skeleton.findall("points")] == [
        ("head", "1.0,2.0", "0"), ("mid", "3.5,4.25", "0"), ("tail", "5.0,6.0", "0"),
    ]
    assert tag.get("label") == WEIRD and tag.find("attribute").text == "Zoë"
    # the mask: decode by hand (background first, row-major) and compare
    runs = [int(t) for t in mask.get("rle").split(",")]
    w, h = int(mask.get("width")), int(mask.get("height"))
    assert (int(mask.get("left")), int(mask.get("top")), w, h) == (707, 888, 13, 15)
    flat, value = [], False
    for run in runs:
        flat += [value] * run
        value = not value
    assert np.array_equal(np.array(flat).reshape(h, w), ds.items[0].shapes[8].bitmap)


def test_mask_starting_with_foreground_writes_a_zero_run(tmp_path: Path) -> None:
    ds = _full_dataset()
    path = tmp_path / "out.xml"
    write_cvat(ds, path)
    masks = list(ET.parse(path).getroot().iter("mask"))
    assert masks[1].get("rle") == "0, 1, 10, 1"


@pytest.mark.skipif(not CVAT.is_dir(), reason="no shared test data")
@pytest.mark.parametrize("export", ["all_shapes", "project_export", "video_export", "task_export/train.xml"])
def test_real_exports_round_trip(tmp_path: Path, export: str) -> None:
    ds = read_cvat(CVAT / export)
    path = tmp_path / "again.xml"
    write_cvat(ds, path)
    _assert_same(read_cvat(path), ds)


def test_write_is_atomic_and_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    write_cvat(_full_dataset(), path)
    before = path.read_bytes()
    bad = Dataset((Label("cavity"),), (Item("a.png", (4, 4), (Polygon(label="void", points_xy=[(0, 0), (1, 0), (0, 1)]),)),))
    with pytest.raises(DatasetError, match=r"'a\.png'.*'void'.*\['cavity'\]"):
        write_cvat(bad, path, overwrite=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.xml"]  # no temporary file left behind
    small = Dataset((Label("cavity"),), (Item("b.png", (4, 4)),))
    with pytest.raises(OutputError, match=r"exists; pass overwrite=True"):
        write_cvat(small, path)
    assert path.read_bytes() == before
    write_cvat(small, path, overwrite=True)  # overwrite in place
    assert [it.name for it in read_cvat(path)] == ["b.png"]
    assert os.listdir(tmp_path) == ["out.xml"]


def test_write_refuses_what_xml_cannot_carry(tmp_path: Path) -> None:
    ds = Dataset((Label("cav\x00ity"),), ())
    with pytest.raises(DatasetError, match=r"label 'cav\\x00ity'.*cannot be written to XML"):
        write_cvat(ds, tmp_path / "out.xml")
    empty = Dataset((Label("c"),), (Item("a.png", (4, 4), (Mask(label="c", bitmap=np.zeros((0, 3), bool)),)),))
    with pytest.raises(DatasetError, match=r"mask of size 0 x 3"):
        write_cvat(empty, tmp_path / "out.xml")


def test_write_needs_an_existing_folder(tmp_path: Path) -> None:
    ds = _full_dataset()
    with pytest.raises(OutputError, match=r"does not exist"):
        write_cvat(ds, tmp_path / "missing" / "out.xml")
    (tmp_path / "folder.xml").mkdir()
    with pytest.raises(OutputError, match=r"is a folder"):
        write_cvat(ds, tmp_path / "folder.xml")


def _export_with_images(root: Path) -> Dataset:
    """A dataset whose items have real image files (two subsets, a name in a subfolder, an upper-case suffix)."""
    from PIL import Image

    from defectlab.model import ImageSource

    items = []
    for k, (name, subset) in enumerate((("a.png", "Train"), ("sub/b.PNG", "Train"), ("a.png", "Validation"))):
        src = root / f"src{k}.png"
        Image.fromarray(np.full((6, 8), 40 * k, np.uint8)).save(src)
        items.append(Item(name, (6, 8), (Ellipse(label="cavity", cx=4, cy=3, rx=2, ry=1 + k),),
                          ImageSource(src), subset=subset, id=k))
    return Dataset((Label("cavity"),), tuple(items))


def test_write_to_a_folder_is_an_export_as_cvat_zips_it(tmp_path: Path) -> None:
    ds = _export_with_images(tmp_path)
    out = tmp_path / "task"
    report = write_cvat(ds, out)
    assert (report.out, report.n_items, report.n_instances) == (out, 3, 3)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["annotations.xml", "images/Train/a.png", "images/Train/sub/b.PNG", "images/Validation/a.png"]
    for item in ds:  # the copies are the source files, byte for byte
        copy = out / "images" / item.subset / item.name
        assert copy.read_bytes() == item.image.path.read_bytes()
    back = read_cvat(out)  # ... and the reader finds every image without images=
    assert [n.code for n in back.notes] == []
    assert [(it.name, it.subset, it.image.path) for it in back] == [
        (it.name, it.subset, out / "images" / it.subset / it.name) for it in ds]
    _assert_same(back, ds)
    with pytest.raises(OutputError, match=r"exists"):
        write_cvat(ds, out)
    write_cvat(ds.with_items(ds.items[:1]), out, overwrite=True)
    assert [it.name for it in read_cvat(out)] == ["a.png"]
    assert not (out / "images" / "Validation").exists()


def test_write_to_a_folder_without_images(tmp_path: Path) -> None:
    ds = _full_dataset()  # no image files
    from defectlab.errors import ImageError

    with pytest.raises(ImageError, match=r"image file\(s\) not found"):
        write_cvat(ds, tmp_path / "task")
    assert not (tmp_path / "task").exists()
    write_cvat(ds, tmp_path / "task", copy_images=False)
    assert sorted(p.name for p in (tmp_path / "task").iterdir()) == ["annotations.xml"]
    _assert_same(read_cvat(tmp_path / "task"), ds)
    with pytest.raises(ValueError, match=r"a \.xml file holds no images"):
        write_cvat(ds, tmp_path / "x.xml", copy_images=True)
    write_cvat(ds, tmp_path / "UPPER.XML")  # any case of .xml names the file
    assert (tmp_path / "UPPER.XML").is_file()


def test_write_to_a_folder_never_holds_its_input(tmp_path: Path) -> None:
    ds = _export_with_images(tmp_path)
    with pytest.raises(OutputError, match=r"input"):
        write_cvat(ds, tmp_path, overwrite=True)  # the folder holds the image files


def test_ids_default_to_the_item_index(tmp_path: Path) -> None:
    ds = Dataset((Label("c"),), (Item("a.png", (4, 4)), Item("b.png", (4, 4))))
    write_cvat(ds, tmp_path / "out.xml")
    assert [it.id for it in read_cvat(tmp_path / "out.xml")] == [0, 1]


# ---------------------------------------------------------------------------------------------
# Property test: random polygons, ellipses and boxes round-trip exactly
# ---------------------------------------------------------------------------------------------

#: Characters XML 1.0 can carry (tab, newline and carriage return included).
XML_CHARS = st.characters(
    blacklist_categories=("Cs", "Cn"), blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
)
coord = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=64)
positive = st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False)
angle = st.floats(min_value=-720, max_value=720, allow_nan=False, allow_infinity=False)
common = {
    "z_order": st.integers(-5, 50),
    "occluded": st.booleans(),
    "group": st.none() | st.integers(1, 10_000),
    "source": st.sampled_from(["manual", "auto", "semi-auto", "file"]),
    "attributes": st.dictionaries(st.text(XML_CHARS, min_size=1, max_size=8), st.text(XML_CHARS, max_size=12), max_size=2),
}
polygons = st.builds(
    Polygon,
    label=st.just("cavity"),
    points_xy=st.lists(st.tuples(coord, coord), min_size=3, max_size=30),
    **common,
)
ellipses = st.builds(
    Ellipse, label=st.just("loop"), cx=coord, cy=coord, rx=positive, ry=positive, rotation_deg=angle, **common
)


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x1, x2 = sorted((draw(coord), draw(coord)))
    y1, y2 = sorted((draw(coord), draw(coord)))
    return Box(label="precipitate", xyxy=(x1, y1, x2, y2), rotation_deg=draw(angle), **{k: draw(v) for k, v in common.items()})


@settings(max_examples=60, deadline=None)
@given(shapes=st.lists(st.one_of(polygons, ellipses, boxes()), min_size=1, max_size=12))
def test_random_shapes_round_trip_exactly(shapes: list) -> None:
    ds = Dataset(
        (Label("cavity"), Label("loop"), Label("precipitate")),
        (Item("img.png", (512, 512), tuple(shapes), id=3),),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annotations.xml"
        write_cvat(ds, path)
        back = read_cvat(path)
    assert back.items[0].shapes == ds.items[0].shapes
    assert back.labels == ds.labels
