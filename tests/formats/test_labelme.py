"""Reading LabelMe JSON: every shape type, folders of files, image sizes, bad input.

The LabelMe files are written here, the way labelme saves them (no LabelMe sample is shared);
expected values are the values written, or geometry worked out independently.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import ImageError, ParseError
from defectlab.formats.labelbox_ndjson import sniff_labelbox
from defectlab.formats.labelme_json import read_labelme, sniff_labelme
from defectlab.formats.via_json import sniff_via
from defectlab.model import Box, Ellipse, ImageSource, Mask, Points, Polygon, Polyline, Tag


def _shape(label: str, points: list, shape_type: str | None, **extra) -> dict:
    shape = {"label": label, "points": points, "group_id": None, "description": "", "shape_type": shape_type, "flags": {}}
    shape.update(extra)
    return shape


def _doc(shapes: list, image_path: str = "a.png", size_hw=(60, 80), **extra) -> dict:
    doc = {
        "version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
        "imageHeight": size_hw[0], "imageWidth": size_hw[1],
    }
    doc.update(extra)
    return doc


def _write(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


def _png_b64(bitmap: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(bitmap.astype(np.uint8) * 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_every_shape_type(tmp_path: Path) -> None:
    blob = np.zeros((4, 5), dtype=bool)
    blob[1:3, 1:4] = True
    blob[0, 0] = True
    shapes = [
        _shape("cavity", [[10.5, 10], [20, 10.25], [20, 20], [10, 20]], "polygon", group_id=3),
        _shape("loop", [[30, 25], [12.5, 8]], "rectangle", flags={"edge_on": True, "faint": False}),
        _shape("cavity", [[40, 30], [43, 34]], "circle", description="near the grain boundary"),
        _shape("dislocation", [[1, 2], [3, 4]], "line"),
        _shape("dislocation", [[1, 2], [3, 4], [5, 7]], "linestrip"),
        _shape("precipitate", [[7.25, 8.75]], "point"),
        _shape("precipitate", [[1, 1], [2, 2], [3, 3]], "points"),
        _shape("loop", [[50, 10], [60, 15], [55, 25], [45, 20]], "oriented_rectangle"),
        _shape("void", [[60, 40], [64, 43]], "mask", mask=_png_b64(blob)),
        _shape("cavity", [[0, 0], [5, 0], [5, 5]], None),  # old files: no shape_type = polygon
    ]
    doc = _doc(shapes, flags={"tilted": True, "blurry": False})
    ds = read_labelme(_write(tmp_path / "a.json", doc))
    assert ds.format == "labelme" and ds.source == str(tmp_path / "a.json")
    (item,) = ds
    assert (item.name, item.size_hw, item.image) == ("a.png", (60, 80), None)
    poly, rect, circle, line, strip, point, points, orect, mask, old, tag = item.shapes

    assert isinstance(poly, Polygon) and poly.points_xy.tolist() == shapes[0]["points"] and poly.group == 3
    assert isinstance(rect, Box) and rect.xyxy == (12.5, 8.0, 30.0, 25.0)  # corners in any order
    assert rect.attributes == {"edge_on": "true", "faint": "false"} and rect.group is None
    assert isinstance(circle, Ellipse) and (circle.cx, circle.cy) == (40.0, 30.0)
    assert circle.rx == circle.ry == math.dist([40, 30], [43, 34]) == 5.0  # center + a point on it
    assert circle.rotation_deg == 0.0 and circle.attributes == {"description": "near the grain boundary"}
    assert isinstance(line, Polyline) and line.points_xy.tolist() == [[1, 2], [3, 4]]
    assert isinstance(strip, Polyline) and strip.points_xy.tolist() == [[1, 2], [3, 4], [5, 7]]
    assert isinstance(point, Points) and point.points_xy.tolist() == [[7.25, 8.75]]
    assert isinstance(points, Points) and len(points.points_xy) == 3
    assert isinstance(orect, Polygon) and orect.points_xy.tolist() == shapes[7]["points"]
    assert isinstance(mask, Mask) and (mask.left, mask.top) == (60, 40)
    assert mask.bitmap.tolist() == blob.tolist()
    assert isinstance(old, Polygon)
    assert isinstance(tag, Tag) and tag.label == "tilted"  # only flags set to true
    assert [lab.name for lab in ds.labels] == ["cavity", "loop", "dislocation", "precipitate", "void", "tilted"]
    assert [n.code for n in ds.notes] == ["missing-image"]


def test_folder_of_files(tmp_path: Path) -> None:
    root = tmp_path / "export"
    Image.new("L", (80, 60)).save(_mk(root / "a.png"))
    Image.new("L", (80, 60)).save(_mk(root / "img" / "c.png"))
    _write(root / "a.json", _doc([_shape("cavity", [[1, 1], [2, 1], [2, 2]], "polygon")]))
    rect = _shape("loop", [[3, 3], [5, 5]], "rectangle")
    _write(root / "sub" / "b.json", _doc([rect], image_path="b.tif", size_hw=(10, 20)))
    _write(root / "ann" / "c.json", _doc([_shape("loop", [[3, 3], [6, 7]], "circle")], image_path="..\\img\\c.png"))
    _write(root / "coco.json", {"images": [], "annotations": [], "categories": []})
    ds = read_labelme(root)
    assert [(it.name, it.size_hw) for it in ds] == [("a.png", (60, 80)), ("img/c.png", (60, 80)), ("sub/b.tif", (10, 20))]
    assert ds[0].image == ImageSource(root / "a.png")
    assert ds[1].image == ImageSource(root / "img" / "c.png")  # Windows separators, relative to its JSON
    assert ds[2].image is None
    assert [s.kind for it in ds for s in it.shapes] == ["polygon", "ellipse", "box"]
    assert [(n.code, n.where) for n in ds.notes] == [
        ("not-labelme", str(root / "coco.json")),
        ("missing-image", str(root / "sub" / "b.json")),
    ]
    # an images= folder is searched first, by path then by basename
    pics = tmp_path / "pics"
    Image.new("L", (20, 10)).save(_mk(pics / "b.tif"))
    ds = read_labelme(root, images=pics)
    assert ds[2].image == ImageSource(pics / "b.tif")
    assert not [n for n in ds.notes if n.code == "missing-image"]


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_size_when_not_declared(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("L", (33, 22)).save(buf, format="PNG")
    doc = _doc([], image_path="x.png")
    del doc["imageHeight"], doc["imageWidth"]
    doc["imageData"] = base64.b64encode(buf.getvalue()).decode()
    assert read_labelme(_write(tmp_path / "x.json", doc))[0].size_hw == (22, 33)  # from imageData
    doc["imageData"] = None
    Image.new("L", (44, 11)).save(tmp_path / "x.png")
    assert read_labelme(_write(tmp_path / "x.json", doc))[0].size_hw == (11, 44)  # from the image
    (tmp_path / "x.png").unlink()
    ds = read_labelme(_write(tmp_path / "x.json", doc))
    assert len(ds) == 0 and [n.code for n in ds.notes] == ["missing-image", "missing-size"]


def test_empty_label_and_unknown_keys_are_notes(tmp_path: Path) -> None:
    shapes = [_shape("", [[1, 1], [2, 2]], "rectangle"), _shape("loop", [[1, 1]], "point", score=0.9)]
    ds = read_labelme(_write(tmp_path / "a.json", _doc(shapes)))
    assert [s.label for s in ds[0].shapes] == ["loop"]
    notes = {n.code: n for n in ds.notes}
    assert notes["unlabeled-shape"].where == f"{tmp_path / 'a.json'} /shapes/0"
    assert "score" in notes["ignored-key"].message


def test_mask_origin_is_rounded_with_a_note(tmp_path: Path) -> None:
    shapes = [_shape("void", [[10.6, 4.2], [12.6, 5.2]], "mask", mask=_png_b64(np.ones((2, 3), bool)))]
    ds = read_labelme(_write(tmp_path / "a.json", _doc(shapes)))
    mask = ds[0].shapes[0]
    assert (mask.left, mask.top) == (11, 4) and mask.bitmap.shape == (2, 3)
    assert [n.code for n in ds.notes if n.code != "missing-image"] == ["mask-origin-rounded"]


# ---------------------------------------------------------------------------------------------
# Bad input: one test per kind, each naming the file and the place
# ---------------------------------------------------------------------------------------------


def test_not_json(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.json", '{\n  "shapes": [\n    {"label": "a",,}\n  ]\n}')
    with pytest.raises(ParseError, match=r"bad\.json, line 3, column \d+: not valid JSON"):
        read_labelme(path)


def test_wrong_structure(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.json", {"shapes": {"label": "a"}, "imagePath": "a.png"})
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes\): expected 'shapes' as a list"):
        read_labelme(path)
    path = _write(tmp_path / "bad.json", _doc([_shape("a", [[1, 2, 3]], "point")]))
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes/0/points/0\): expected a point \[x, y\]"):
        read_labelme(path)
    # in a folder, a broken LabelMe file is an error too (not skipped as "not LabelMe")
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes/0/points/0\)"):
        read_labelme(tmp_path)


def test_nan_coordinate(tmp_path: Path) -> None:
    text = json.dumps(_doc([_shape("a", [[1, 2], [3, 4], [5, 6]], "polygon")])).replace("[3, 4]", "[NaN, 4]")
    path = _write(tmp_path / "bad.json", text)
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes/0/points/1/0\): expected a finite coordinate"):
        read_labelme(path)


def test_polygon_with_too_few_points(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.json", _doc([_shape("a", [[1, 2], [3, 4]], "polygon")]))
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes/0/points\): a polygon needs at least 3 points, got 2"):
        read_labelme(path)
    path = _write(tmp_path / "bad.json", _doc([_shape("a", [[1, 2], [3, 4], [5, 6]], "circle")]))
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes/0/points\): a circle needs exactly 2 points, got 3"):
        read_labelme(path)


def test_unknown_shape_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.json", _doc([_shape("a", [[1, 2]], "freehand")]))
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes/0/shape_type\): unknown shape_type 'freehand'"):
        read_labelme(path)


def test_bad_mask_and_size(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.json", _doc([_shape("a", [[1, 2], [3, 4]], "mask", mask="%%%not base64")]))
    with pytest.raises(ParseError, match=r"bad\.json \(/shapes/0/mask\): 'mask' is not a base64-encoded image"):
        read_labelme(path)
    path = _write(tmp_path / "bad.json", _doc([], size_hw=(-5, 10)))
    with pytest.raises(ParseError, match=r"bad\.json \(/imageHeight\): expected a positive whole number"):
        read_labelme(path)


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"nope: no such file or folder"):
        read_labelme(tmp_path / "nope")
    with pytest.raises(ParseError, match=r"no \.json files"):
        read_labelme(tmp_path)
    path = _write(tmp_path / "a.json", _doc([]))
    with pytest.raises(ImageError, match=r"nowhere: no such folder"):
        read_labelme(path, images=tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# Sniffing
# ---------------------------------------------------------------------------------------------


def test_sniff(shared_data: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "lm" / "a.json", _doc([_shape("a", [[1, 2]], "point")]))
    assert sniff_labelme(path) and sniff_labelme(path.parent)
    assert not sniff_via(path) and not sniff_labelbox(path)
    # labelme writes "shapes" before "imagePath": a long first shape still sniffs by its keys
    long = _doc([_shape("a", [[float(i), float(i)] for i in range(3000)], "polygon")])
    assert sniff_labelme(_write(tmp_path / "long.json", long))
    for coco in sorted((shared_data / "formats" / "coco" / "instances" / "annotations").glob("*.json")):
        assert not sniff_labelme(coco)
    assert not sniff_labelme(shared_data / "formats" / "coco" / "instances" / "annotations")
    for name in ("via1_unit_test_annotation2.json", "via2_sherlock_tracks.json"):
        assert not sniff_labelme(shared_data / "formats" / "via" / name)
    assert not sniff_labelme(shared_data / "formats" / "cvat" / "all_shapes")
    assert not sniff_labelme(tmp_path / "missing.json")
