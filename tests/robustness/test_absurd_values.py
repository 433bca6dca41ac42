"""Absurd values, for each reader: non-finite and huge coordinates, negative sizes, images
declared 10⁶ × 10⁶ px (refused above :mod:`defectlab.limits` unless the user raises it),
deeply nested JSON, empty files and wrong encodings — plus one regression test per crash the
fuzzing found.

Every refusal is a :class:`~defectlab.errors.ParseError` (an annotation file) or
:class:`~defectlab.errors.ImageError` (an image file) whose message names the file and the
place, and for a limit, the limit and how to raise it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile
from PIL import Image

import defectlab
from defectlab import limits
from defectlab.errors import DefectlabError, ImageError, ParseError
from defectlab.raster import semantic_mask

from .fuzzkit import huge_png, huge_tiff

# ---------------------------------------------------------------------------------------------
# One minimal export per reader; ``coord`` is the text of one x coordinate as written in the
# file, ``w``/``h`` the declared image size (where the format declares one).
# ---------------------------------------------------------------------------------------------


def cvat(tmp: Path, coord: str = "20", w: str = "64", h: str = "48", r: str = "3") -> Path:
    xml = (f'<annotations><version>1.1</version><meta><job><labels><label><name>cavity</name></label>'
           f'</labels></job></meta>\n<image id="0" name="a.png" width="{w}" height="{h}">\n'
           f'<ellipse label="cavity" cx="{coord}" cy="10" rx="{r}" ry="2" occluded="0" z_order="0"/>\n'
           '</image></annotations>\n')
    (tmp / "ann.xml").write_text(xml, encoding="utf-8")
    return tmp / "ann.xml"


def coco(tmp: Path, coord: str = "20", w: str = "64", h: str = "48", r: str = "3") -> Path:
    text = ('{"images": [{"id": 1, "file_name": "a.png", "width": %s, "height": %s}],\n'
            ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 1,\n'
            '   "bbox": [1, 1, %s, 4], "segmentation": [[%s, 10, 30, 10, 25, 20]]}],\n'
            ' "categories": [{"id": 1, "name": "cavity"}]}\n') % (w, h, r, coord)
    (tmp / "ann.json").write_text(text, encoding="utf-8")
    return tmp / "ann.json"


def via(tmp: Path, coord: str = "20", r: str = "3", image: bytes | None = None) -> Path:
    if image is None:
        Image.new("L", (64, 48)).save(tmp / "a.png")
    else:
        (tmp / "a.png").write_bytes(image)
    text = ('{"a.png1": {"filename": "a.png", "size": 1, "file_attributes": {},\n'
            ' "regions": [{"shape_attributes": {"name": "circle", "cx": %s, "cy": 10, "r": %s},\n'
            '              "region_attributes": {"type": "cavity"}}]}}\n') % (coord, r)
    (tmp / "via.json").write_text(text, encoding="utf-8")
    return tmp / "via.json"


def labelbox(tmp: Path, coord: str = "20", w: str = "64", h: str = "48", r: str = "3") -> Path:
    text = ('{"data_row": {"id": "r1", "external_id": "a.png"}, "media_attributes": {"height": %s, "width": %s},'
            ' "projects": {"p": {"labels": [{"annotations": {"objects": ['
            '{"feature_id": "f1", "name": "cavity", "point": {"x": %s, "y": 10}},'
            '{"feature_id": "f2", "name": "cavity", "bounding_box": {"top": 1, "left": 1, "height": 4, "width": %s}}'
            ']}}]}}}\n') % (h, w, coord, r)
    (tmp / "export.ndjson").write_text(text, encoding="utf-8")
    return tmp / "export.ndjson"


def labelme(tmp: Path, coord: str = "20", w: str = "64", h: str = "48", r: str = "3") -> Path:
    text = ('{"version": "5.4.1", "flags": {}, "imagePath": "a.png", "imageData": null,\n'
            ' "imageHeight": %s, "imageWidth": %s,\n'
            ' "shapes": [{"label": "cavity", "shape_type": "point", "points": [[%s, 10]]},\n'
            '            {"label": "cavity", "shape_type": "circle", "points": [[5, 5], [5, %s]]}]}\n') % (h, w, coord, r)
    (tmp / "a.json").write_text(text, encoding="utf-8")
    return tmp / "a.json"


def yolo(tmp: Path, coord: str = "0.5", image: bytes | None = None) -> Path:
    (tmp / "images").mkdir(exist_ok=True)
    (tmp / "labels").mkdir(exist_ok=True)
    if image is None:
        Image.new("L", (64, 48)).save(tmp / "images" / "a.png")
    else:
        (tmp / "images" / "a.png").write_bytes(image)
    (tmp / "labels" / "a.txt").write_text(f"0 {coord} 0.5 0.2 0.2\n", encoding="utf-8")
    (tmp / "data.yaml").write_text("train: images\nnames: [cavity]\n", encoding="utf-8")
    return tmp


COORD_READERS: dict[str, Callable[..., Path]] = {
    "cvat": cvat, "coco": coco, "via": via, "labelbox": labelbox, "labelme": labelme,
}
SIZED_READERS = {"cvat": cvat, "coco": coco, "labelbox": labelbox, "labelme": labelme}
JSON_NUMBERS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "1e400": "1e400", "1e308": "1e308",
                "-1e308": "-1e308", "400 digits": "1" + "0" * 400, "1e8": "1e8"}
XML_NUMBERS = {"nan": "nan", "inf": "inf", "-inf": "-inf", "1e400": "1e400", "1e308": "1e308",
               "-1e308": "-1e308", "400 digits": "1" + "0" * 400, "1e8": "1e8"}


def read(path: Path, reader: str):
    return defectlab.read(path, format=reader)


# ---------------------------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", sorted(COORD_READERS))
def test_the_minimal_exports_read(tmp_path: Path, reader: str) -> None:
    ds = read(COORD_READERS[reader](tmp_path), reader)
    assert len(ds) == 1 and ds[0].shapes


@pytest.mark.parametrize("reader", sorted(COORD_READERS))
@pytest.mark.parametrize("value", sorted(JSON_NUMBERS))
def test_non_finite_and_huge_coordinates_are_refused(tmp_path: Path, reader: str, value: str) -> None:
    text = (XML_NUMBERS if reader == "cvat" else JSON_NUMBERS)[value]
    path = COORD_READERS[reader](tmp_path, coord=text)
    with pytest.raises(ParseError) as info:
        read(path, reader)
    message = str(info.value)
    assert path.name in message
    assert re.search(r", line \d+|\(/", message), message  # a line (XML, NDJSON) or a JSON pointer
    if value == "1e8" or value == "1e308":
        assert "over the limit of 1e+07" in message and "max_coordinate" in message
    else:
        assert "finite" in message


@pytest.mark.parametrize("reader", sorted(COORD_READERS))
def test_coordinates_over_the_limit_are_read_when_the_limit_is_raised(tmp_path: Path, reader: str) -> None:
    path = COORD_READERS[reader](tmp_path, coord="1e8")
    with limits.override(max_coordinate=1e9):
        ds = read(path, reader)
    assert max(s.bbox_xyxy()[2] for s in ds[0].shapes) >= 1e8 - 3
    assert semantic_mask(ds[0], ds.class_index()).shape == ds[0].size_hw  # and it rasterizes


def test_yolo_coordinates_outside_0_1_are_refused(tmp_path: Path) -> None:
    for value in ("NaN", "inf", "1e308", "-1", "1.5", "1" + "0" * 400):
        path = yolo(tmp_path, coord=value)
        with pytest.raises(ParseError, match=r"a\.txt, line 1, column 3: expected (a number|a normalized)"):
            read(path, "yolo")


# ---------------------------------------------------------------------------------------------
# Negative sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", sorted(set(COORD_READERS) - {"labelme"}))
def test_negative_radii_and_box_sizes_are_refused(tmp_path: Path, reader: str) -> None:
    """(LabelMe stores a circle as 2 points and a rectangle as 2 corners: no size can be negative.)"""
    path = COORD_READERS[reader](tmp_path, r="-5")
    with pytest.raises(ParseError, match=rf"{re.escape(path.name)}.*(>= 0|radii|x1 <= x2|width and height)"):
        read(path, reader)


@pytest.mark.parametrize("reader", sorted(SIZED_READERS))
@pytest.mark.parametrize("w, h", [("-1", "48"), ("64", "0"), ("64.5", "48")])
def test_negative_zero_and_fractional_image_sizes_are_refused(tmp_path: Path, reader: str, w: str, h: str) -> None:
    path = SIZED_READERS[reader](tmp_path, w=w, h=h)
    with pytest.raises(ParseError, match=rf"{re.escape(path.name)}.*(positive|from 1 to|whole number)"):
        read(path, reader)


def test_cvat_mask_with_negative_size(tmp_path: Path) -> None:
    path = cvat(tmp_path)
    path.write_text(path.read_text().replace(
        "<ellipse", '<mask label="cavity" rle="1, 1" left="0" top="0" width="-2" height="1"/>\n<ellipse'))
    with pytest.raises(ParseError, match=r"ann\.xml, line 3, column 1 \(<mask> attribute 'width'\): expected a positive"):
        read(path, "cvat")


# ---------------------------------------------------------------------------------------------
# Images declared 10^6 x 10^6
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", sorted(SIZED_READERS))
def test_images_declared_a_million_px_wide_are_refused_unless_the_limit_is_raised(tmp_path: Path, reader: str) -> None:
    path = SIZED_READERS[reader](tmp_path, w="1000000", h="1000000")
    with pytest.raises(ParseError) as info:
        read(path, reader)
    message = str(info.value)
    assert path.name in message and "1000000" in message and "max_image_side" in message
    with limits.override(max_image_side=1_000_000), pytest.raises(ParseError, match="max_image_pixels"):
        read(path, reader)
    with limits.override(max_image_side=1_000_000, max_image_pixels=10**12):
        ds = read(path, reader)
    assert ds[0].size_hw == (1_000_000, 1_000_000)  # declared only: nothing of that size was allocated


@pytest.mark.parametrize("reader, build", [("via", via), ("yolo", yolo)])
def test_image_files_whose_header_is_over_the_limit(tmp_path: Path, reader: str, build) -> None:
    """VIA and YOLO take sizes from the image header: a 70000 x 1 PNG is over the side limit;
    a 10^6 x 10^6 PNG header (in a 100-byte file) is refused by Pillow itself (its
    decompression-bomb check), so that image is skipped with a note."""
    path = build(tmp_path, image=huge_png(70_000, 1))
    with pytest.raises(ImageError, match=r"a\.png: an image of 70000 x 1 px \(W x H\) is over the limit of 65536 px "
                                         r"per side \(defectlab\.limits: raise max_image_side"):
        read(path, reader)
    with limits.override(max_image_side=70_000):
        assert read(path, reader)[0].size_hw == (1, 70_000)
    path = build(tmp_path, image=huge_png(1_000_000, 1_000_000))
    ds = read(path, reader)
    assert len(ds) == 0
    assert any(n.code == "unreadable-image" and "DecompressionBomb" in n.message for n in ds.notes)


def test_label_images_whose_header_says_a_million_px_are_refused_before_decoding(tmp_path: Path) -> None:
    (tmp_path / "a.tif").write_bytes(huge_tiff(1_000_000, 1_000_000))
    with pytest.raises(ParseError, match=r"a\.tif: a label image of 1000000 x 1000000 px .*max_image_side"):
        defectlab.read(tmp_path / "a.tif", format="masks")
    (tmp_path / "a.tif").unlink()
    (tmp_path / "b.png").write_bytes(huge_png(1_000_000, 1_000_000))  # Pillow's own check comes first
    with pytest.raises(ParseError, match=r"b\.png: not a readable label image \(DecompressionBombError"):
        defectlab.read(tmp_path / "b.png", format="masks")
    (tmp_path / "b.png").write_bytes(huge_png(70_000, 1))
    with pytest.raises(ParseError, match=r"b\.png: a label image of 70000 x 1 px"):
        defectlab.read(tmp_path / "b.png", format="masks")


def test_a_wide_label_image_reads_when_the_side_limit_is_raised(tmp_path: Path) -> None:
    ids = np.zeros((1, 70_000), np.uint16)
    ids[0, 69_990:] = 7
    tifffile.imwrite(tmp_path / "a.tif", ids)
    with pytest.raises(ParseError, match=r"a\.tif: a label image of 70000 x 1 px .*over the limit of 65536"):
        defectlab.read(tmp_path / "a.tif", format="masks")
    with limits.override(max_image_side=70_000):
        ds = defectlab.read(tmp_path / "a.tif", format="masks")
    assert [(s.left, s.bitmap.shape) for s in ds[0].shapes] == [(69_990, (1, 10))]


def test_cvat_mask_declared_huge_is_refused_before_decoding(tmp_path: Path) -> None:
    path = cvat(tmp_path)
    path.write_text(path.read_text().replace(
        "<ellipse", '<mask label="cavity" rle="10000000000" left="0" top="0" width="100000" height="100000"/>\n<ellipse'))
    with pytest.raises(ParseError, match=r"ann\.xml, line 3.*a mask of 100000 x 100000 px .*max_image_side"):
        read(path, "cvat")


def test_cvat_frame_size_declared_huge(tmp_path: Path) -> None:
    xml = ('<annotations><meta><task><mode>interpolation</mode><size>1</size><start_frame>0</start_frame>'
           '<stop_frame>0</stop_frame><original_size><width>1000000</width><height>1000000</height>'
           '</original_size><labels><label><name>a</name></label></labels></task></meta></annotations>')
    (tmp_path / "v.xml").write_text(xml)
    with pytest.raises(ParseError, match=r"v\.xml, line 1, column \d+ \(<original_size>\): a frame of 1000000"):
        read(tmp_path / "v.xml", "cvat")


# ---------------------------------------------------------------------------------------------
# Deep nesting, empty files, encodings
# ---------------------------------------------------------------------------------------------


def _nest(n: int) -> str:
    return "[" * n + "]" * n


NESTED = {  # the nesting goes into a key each reader ignores
    "coco": lambda tmp, n: (coco(tmp), '"categories"', f'"info": {_nest(n)}, "categories"'),
    "via": lambda tmp, n: (via(tmp), '"file_attributes": {}', f'"file_attributes": {{}}, "x": {_nest(n)}'),
    "labelbox": lambda tmp, n: (labelbox(tmp), '"projects"', f'"metadata_fields": {_nest(n)}, "projects"'),
    "labelme": lambda tmp, n: (labelme(tmp), '"imageData"', f'"extra": {_nest(n)}, "imageData"'),
}


@pytest.mark.parametrize("reader", sorted(NESTED))
def test_deeply_nested_json_is_refused_at_the_limit(tmp_path: Path, reader: str) -> None:
    for depth in (150, 100_000):
        path, old, new = NESTED[reader](tmp_path, depth)
        path.write_text(path.read_text().replace(old, new, 1))
        with pytest.raises(ParseError, match=rf"{re.escape(path.name)}.*JSON nested .*max_nesting_depth"):
            read(path, reader)
    path, old, new = NESTED[reader](tmp_path, 150)
    path.write_text(path.read_text().replace(old, new, 1))
    with limits.override(max_nesting_depth=200):
        assert len(read(path, reader)) == 1


def test_deeply_nested_classes_json_of_masks(tmp_path: Path) -> None:
    Image.fromarray(np.eye(6, dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "classes.json").write_text('{"1": {"name": "cavity", "x": %s}}' % _nest(500))
    with pytest.raises(ParseError, match=r"classes\.json: JSON nested 10\d\+ levels deep"):
        defectlab.read(tmp_path, format="masks")


EMPTY = {  # reader: (build, the file emptied, expected message)
    "cvat": (cvat, "ann.xml", r"ann\.xml, line 1, column 1: malformed XML: no element found \(the file ends too early"),
    "coco": (coco, "ann.json", r"ann\.json, line 1, column 1: not valid JSON: Expecting value"),
    "via": (via, "via.json", r"via\.json, line 1, column 1: not valid JSON: Expecting value"),
    "labelme": (labelme, "a.json", r"a\.json, line 1, column 1: not valid JSON: Expecting value"),
    "yolo": (yolo, "data.yaml", r"data\.yaml, line 1: expected a mapping .*got an empty file"),
}


@pytest.mark.parametrize("reader", sorted(EMPTY))
@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"  \n"])
def test_empty_annotation_files(tmp_path: Path, reader: str, content: bytes) -> None:
    build, name, expected = EMPTY[reader]
    path = build(tmp_path)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ParseError, match=expected.replace("line 1, column 1", r"line \d+, column \d+")):
        read(path, reader)


def test_an_empty_labelbox_export_is_an_empty_dataset(tmp_path: Path) -> None:
    """NDJSON has one row per line: an empty file is a valid export without data rows."""
    path = labelbox(tmp_path)
    path.write_bytes(b"")
    assert len(read(path, "labelbox")) == 0


def test_empty_mask_files(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ParseError, match=r"a\.png: not a readable label image"):
        defectlab.read(tmp_path / "a.png", format="masks")


JSON_READERS = {"coco": coco, "via": via, "labelbox": labelbox, "labelme": labelme}


@pytest.mark.parametrize("reader", sorted(JSON_READERS))
@pytest.mark.parametrize("encoding, expected", [
    ("utf-16", r"not UTF-8 text: UTF-16 \(it starts with a UTF-16 byte-order mark\); save it as UTF-8"),
    ("utf-32", r"not UTF-8 text: UTF-32"),
    ("utf-16-le", r"not UTF-8 text: a NUL byte at (line 1, )?column 2 \(UTF-16 text without a byte-order mark"),
    ("latin-1", r"not UTF-8 text: the byte 0xe9 at (line \d+, )?column \d+ is not UTF-8 \(Latin-1 or Windows-1252"),
])
def test_wrong_encodings_are_named(tmp_path: Path, reader: str, encoding: str, expected: str) -> None:
    path = JSON_READERS[reader](tmp_path)
    text = path.read_text(encoding="utf-8").replace('"cavity"', '"cavit\u00e9"')
    path.write_bytes(text.encode(encoding))
    with pytest.raises(ParseError, match=rf"{re.escape(path.name)}(, line 1)?: {expected}"):
        read(path, reader)
    path.write_bytes(text.encode("utf-8"))
    assert "cavit\u00e9" in [lab.name for lab in read(path, reader).labels]  # UTF-8 reads


def test_cvat_encodings(tmp_path: Path) -> None:
    path = cvat(tmp_path)
    text = path.read_text().replace("<name>cavity</name>", "<name>cavit\u00e9</name>").replace(
        'label="cavity"', 'label="cavit\u00e9"')
    path.write_bytes(text.encode("latin-1"))  # no declaration: XML means UTF-8
    with pytest.raises(ParseError, match=r"ann\.xml, line 1, column \d+: malformed XML: not well-formed"):
        read(path, "cvat")
    path.write_bytes(('<?xml version="1.0" encoding="iso-8859-1"?>\n' + text).encode("latin-1"))
    assert read(path, "cvat").labels[0].name == "cavit\u00e9"  # declared: read


def test_yolo_label_files_in_utf16(tmp_path: Path) -> None:
    root = yolo(tmp_path)
    (root / "labels" / "a.txt").write_bytes("0 0.5 0.5 0.2 0.2\n".encode("utf-16"))
    with pytest.raises(ParseError, match=r"a\.txt: not UTF-8 text: UTF-16"):
        read(root, "yolo")


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path: Path) -> None:
    path = coco(tmp_path)
    size = path.stat().st_size
    with limits.override(max_file_bytes=size - 1):
        with pytest.raises(ParseError, match=rf"ann\.json: the file holds {size:,} bytes, over the limit of "
                                             rf"{size - 1:,} \(defectlab\.limits: raise max_file_bytes"):
            read(path, "coco")
    for reader, build in sorted({**COORD_READERS, "yolo": yolo}.items()):
        path = build(tmp_path)
        name = "data.yaml" if reader == "yolo" else path.name
        with limits.override(max_file_bytes=20 if reader == "yolo" else 100):  # (data.yaml: 30 bytes)
            with pytest.raises(ParseError, match=rf"{re.escape(name)}: the file holds [\d,]+ bytes, over the limit"):
                read(path, reader)


# ---------------------------------------------------------------------------------------------
# Regressions: the crashes the fuzzing found (each raised something other than our errors)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", sorted(JSON_READERS))
def test_integers_of_5000_digits(tmp_path: Path, reader: str) -> None:
    """Python refuses int('9' * 5000): the ValueError escaped every JSON reader."""
    path = JSON_READERS[reader](tmp_path, coord="9" * 5000)
    with pytest.raises(ParseError, match=rf"{re.escape(path.name)}, line \d+, column \d+: a number of 5000 digits"):
        read(path, reader)


@pytest.mark.parametrize("reader", sorted(JSON_READERS))
def test_integers_beyond_float_range(tmp_path: Path, reader: str) -> None:
    """float(10**400) raised OverflowError in the VIA, LabelMe, Labelbox and COCO number checks."""
    path = JSON_READERS[reader](tmp_path, coord="-" + "9" * 400)
    with pytest.raises(ParseError, match=rf"{re.escape(path.name)}.*expected a finite"):
        read(path, reader)


def test_labelbox_relationships_that_are_not_a_list(tmp_path: Path) -> None:
    """``"relationships": -1`` raised TypeError (len of an int)."""
    path = labelbox(tmp_path)
    path.write_text(path.read_text().replace('"objects": [', '"relationships": -1, "objects": ['))
    with pytest.raises(ParseError, match=r"export\.ndjson, line 1 \(/projects/p/labels/0/annotations/relationships\)"):
        read(path, "labelbox")


@pytest.mark.parametrize("value", ["[]", "{}", "3"])
def test_labelme_shape_type_that_is_not_a_string(tmp_path: Path, value: str) -> None:
    """``"shape_type": []`` raised TypeError (unhashable) in the lookup of known types."""
    path = labelme(tmp_path)
    path.write_text(path.read_text().replace('"shape_type": "point"', f'"shape_type": {value}'))
    with pytest.raises(ParseError, match=r"a\.json \(/shapes/0/shape_type\): unknown shape_type"):
        read(path, "labelme")


def test_cvat_mask_run_beyond_int64(tmp_path: Path) -> None:
    """A run of 10**30 in a mask's RLE raised OverflowError converting to int64."""
    path = cvat(tmp_path)
    path.write_text(path.read_text().replace(
        "<ellipse", f'<mask label="cavity" rle="{10 ** 30}, 1" left="0" top="0" width="2" height="1"/>\n<ellipse'))
    with pytest.raises(ParseError, match=r"ann\.xml, line 3.*a run in 'rle' is longer than the mask"):
        read(path, "cvat")


@pytest.mark.parametrize("names, expected", [
    (".nan", r"expected a list or an \{index: name\} map for 'names', got nan"),
    ("{0: a, 4294967296: b}", r"expected class indices 0\.\.1 in 'names', got \[0, 4294967296\] "
                              r"\(missing \[1, 2, 3, 4, 5\]\)"),
    ("{0: a, 10000000000000000000: b}", r"expected class indices 0\.\.1 .*\(missing \[1, 2, 3, 4, 5\]\)"),
])
def test_yolo_names_that_are_not_a_list_or_have_a_huge_index(tmp_path: Path, names: str, expected: str) -> None:
    """``names: .nan`` raised TypeError; an index of 2**32 built a range of 2**32 (MemoryError / hang)."""
    root = yolo(tmp_path)
    (root / "data.yaml").write_text(f"train: images\nnames: {names}\n")
    with pytest.raises(ParseError, match=rf"data\.yaml, line 2 \(key 'names'\): {expected}"):
        read(root, "yolo")


def test_yolo_class_counts_over_the_limit(tmp_path: Path) -> None:
    """``nc: 10**12`` without names would have made 10**12 class names."""
    root = yolo(tmp_path)
    (root / "data.yaml").write_text("train: images\nnc: 1000000000000\n")
    with pytest.raises(ParseError, match=r"data\.yaml, line 2 \(key 'nc'\): 1000000000000 classes is over the limit "
                                         r"of 10000 \(defectlab\.limits: raise max_classes"):
        read(root, "yolo")
    (root / "data.yaml").unlink()
    (root / "labels" / "a.txt").write_text("1e15 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ParseError, match=r"a\.txt, line 1, column 1: class index 1000000000000000 is over the limit"):
        read(root, "yolo")


def test_yolo_yaml_integer_of_5000_digits(tmp_path: Path) -> None:
    root = yolo(tmp_path)
    (root / "data.yaml").write_text("train: images\nnc: " + "9" * 5000 + "\n")
    with pytest.raises(ParseError, match=r"data\.yaml: not a usable data\.yaml \(Exceeds the limit"):
        read(root, "yolo")


def test_yolo_paths_too_long_for_the_os(tmp_path: Path) -> None:
    """A 5000-character ``path`` raised OSError (ENAMETOOLONG) from Path.is_dir()."""
    root = yolo(tmp_path)
    (root / "data.yaml").write_text(f"path: {'d' * 5000}\ntrain: images\nnames: [cavity]\n")
    ds = read(root, "yolo")  # not a folder here: read relative to data.yaml, with a note
    assert len(ds) == 1 and any(n.code == "path-fallback" for n in ds.notes)


def test_yolo_split_above_the_dataset_is_refused(tmp_path: Path) -> None:
    """``val: /`` walked the whole file system (20 s+ in the fuzzing: a hang)."""
    root = yolo(tmp_path)
    for entry in ("/", "..", str(tmp_path.parent)):
        (root / "data.yaml").write_text(f"train: images\nval: {entry}\nnames: [cavity]\n")
        with pytest.raises(ParseError, match=r"data\.yaml, line 2 \(key 'val'\): val: .* is a folder above the "
                                             r"dataset's own folder"):
            read(root, "yolo")


@pytest.mark.parametrize("reader", ["via", "labelme", "labelbox"])
def test_image_names_too_long_for_the_os(tmp_path: Path, reader: str) -> None:
    long = "/" + "x" * 5000 + ".png"
    path = {"via": via, "labelme": labelme, "labelbox": labelbox}[reader](tmp_path)
    path.write_text(path.read_text().replace('"a.png"', json.dumps(long)).replace('"a.png1"', '"k"'))
    try:
        ds = read(path, reader)
    except DefectlabError as err:
        assert path.name in str(err)
    else:
        assert all(it.image is None for it in ds.items)


def test_via3_option_without_text(tmp_path: Path) -> None:
    """A VIA 3 option whose text is "" became Label("") and raised ValueError in read_via."""
    Image.new("L", (64, 48)).save(tmp_path / "a.png")
    doc = {
        "project": {"pid": "p", "pname": "t", "vid_list": ["1"]}, "config": {},
        "attribute": {"1": {"aname": "type", "anchor_id": "FILE1_Z0_XY1", "type": 4,
                            "options": {"0": "cavity", "1": ""}}},
        "file": {"1": {"fid": "1", "fname": "a.png", "type": 2, "loc": 1, "src": "a.png"}},
        "view": {"1": {"fid_list": ["1"]}},
        "metadata": {"m1": {"vid": "1", "z": [], "xy": [2, 1, 2, 10, 5], "av": {"1": "0"}},
                     "m2": {"vid": "1", "z": [], "xy": [2, 3, 4, 10, 5], "av": {"1": "1"}}},
    }
    (tmp_path / "via3.json").write_text(json.dumps(doc))
    ds = read(tmp_path / "via3.json", "via")
    assert [lab.name for lab in ds.labels] == ["cavity"]
    assert [s.label for s in ds[0].shapes] == ["cavity"]
    assert [n.code for n in ds.notes] == ["unlabeled-shape"]
