"""Reading Labelbox NDJSON (export v2): geometries, masks, classifications, projects, bad input.

The export lines are written here in the layout of Labelbox's documentation (export-v2 image
annotations); expected values are the values written, or pixels painted independently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import ImageError, ParseError
from defectlab.formats.labelbox_ndjson import read_labelbox, sniff_labelbox
from defectlab.formats.labelme_json import sniff_labelme
from defectlab.formats.via_json import sniff_via
from defectlab.model import Box, ImageSource, Mask, Points, Polygon, Polyline, Tag

H, W = 40, 50
COMPOSITE_URL = "https://api.labelbox.com/api/v1/tasks/t1/masks/cm1/index/1"


def _single_url(feature_id: str) -> str:
    return f"https://api.labelbox.com/api/v1/projects/p1/annotations/{feature_id}/index/1/mask"


def _row(objects: list, classifications: list | None = None, *, name: dict | None = None,
         projects: dict | None = None, media: dict | None = None) -> dict:
    label = {"id": "lab1", "label_kind": "Default", "annotations": {
        "objects": objects, "classifications": classifications or [], "relationships": []}}
    return {
        "data_row": name if name is not None else {
            "id": "ck1", "external_id": "tem_001.png", "row_data": "https://storage.example.com/tem_001.png",
        },
        "media_attributes": media if media is not None else {"height": H, "width": W, "mime_type": "image/png"},
        "attachments": [],
        "metadata_fields": [],
        "projects": projects if projects is not None else {"p1": {"name": "TEM", "labels": [label]}},
    }


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _composite(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """An RGB composite mask with two instances; returns the file and each instance's pixels."""
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    first = np.zeros((H, W), dtype=bool)
    first[5:9, 10:14] = True
    first[9, 12] = True
    second = np.zeros((H, W), dtype=bool)
    second[20:30, 30:33] = True
    rgb[first] = (123, 103, 152)
    rgb[second] = (224, 17, 103)
    path = tmp_path / "composite.png"
    Image.fromarray(rgb).save(path)
    return path, first, second


def test_every_geometry_and_classification(tmp_path: Path) -> None:
    composite, first, second = _composite(tmp_path)
    single = np.zeros((H, W), dtype=np.uint8)
    single[1:3, 2:6] = 255
    Image.fromarray(single).save(tmp_path / "single.png")
    objects = [
        {"feature_id": "f1", "feature_schema_id": "s1", "name": "loop", "value": "loop",
         "annotation_kind": "ImageBoundingBox",
         "classifications": [{"name": "habit", "value": "habit",
                              "radio_answer": {"name": "111", "value": "111", "classifications": []}},
                             {"name": "notes", "text_answer": {"content": "faint"}}],
         "bounding_box": {"top": 1264.0 / 100, "left": 20.96, "height": 4.25, "width": 1.44}},
        {"feature_id": "f2", "name": "cavity", "annotation_kind": "ImagePolygon", "classifications": [],
         "polygon": [{"x": 14.7692, "y": 11.8154}, {"x": 14.2769, "y": 10.4923}, {"x": 5.7846, "y": 11.8769},
                     {"x": 2.8308, "y": 16.9846}, {"x": 14.7692, "y": 11.8154}]},
        {"feature_id": "f3", "name": "dislocation", "annotation_kind": "ImagePolyline", "classifications": [],
         "line": [{"x": 25.34, "y": 2.49}, {"x": 9.09, "y": 3.26}]},
        {"feature_id": "f4", "name": "precipitate", "annotation_kind": "ImagePoint", "classifications": [],
         "point": {"x": 7.5, "y": 8.25}},
        {"feature_id": "f5", "name": "void", "annotation_kind": "ImageSegmentationMask", "classifications": [],
         "composite_mask": {"url": composite.as_uri(), "color_rgb": [123, 103, 152]}},
        {"feature_id": "f6", "name": "void", "annotation_kind": "ImageSegmentationMask", "classifications": [],
         "composite_mask": {"url": composite.as_uri(), "color_rgb": [224, 17, 103]}},
        {"feature_id": "f7", "name": "void", "annotation_kind": "ImageSegmentationMask", "classifications": [],
         "mask": {"url": "single.png"}},  # a relative local path: beside the export
    ]
    classifications = [
        {"feature_id": "c1", "name": "quality", "value": "quality",
         "radio_answer": {"name": "good", "value": "good", "classifications": []}},
        {"feature_id": "c2", "name": "features",
         "checklist_answers": [{"name": "bend contours", "classifications": []},
                               {"name": "thickness fringes", "classifications": []}]},
        {"feature_id": "c3", "name": "comment", "text_answer": {"content": "tilted 5 degrees"}},
    ]
    path = _write(tmp_path / "export.ndjson", [_row(objects, classifications)])
    ds = read_labelbox(path)
    assert ds.format == "labelbox" and ds.source == str(path)
    (item,) = ds
    assert (item.name, item.size_hw, item.image) == ("tem_001.png", (H, W), None)
    box, poly, line, point, m1, m2, m3, *tags = item.shapes

    bb = objects[0]["bounding_box"]
    assert isinstance(box, Box) and box.label == "loop"
    assert box.xyxy == (bb["left"], bb["top"], bb["left"] + bb["width"], bb["top"] + bb["height"])
    assert box.attributes == {"habit": "111", "notes": "faint"}
    assert isinstance(poly, Polygon)
    assert poly.points_xy.tolist() == [[p["x"], p["y"]] for p in objects[1]["polygon"][:-1]]  # closing vertex dropped
    assert isinstance(line, Polyline) and line.points_xy.tolist() == [[25.34, 2.49], [9.09, 3.26]]
    assert isinstance(point, Points) and point.points_xy.tolist() == [[7.5, 8.25]]
    for mask, expected in ((m1, first), (m2, second), (m3, single > 0)):
        assert isinstance(mask, Mask) and mask.label == "void"
        rows, cols = np.flatnonzero(expected.any(axis=1)), np.flatnonzero(expected.any(axis=0))
        assert (mask.left, mask.top) == (cols[0], rows[0])
        assert mask.bitmap.tolist() == expected[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].tolist()
    assert all(isinstance(t, Tag) for t in tags)
    assert [(t.label, t.attributes) for t in tags] == [
        ("good", {"classification": "quality"}),
        ("bend contours", {"classification": "features"}),
        ("thickness fringes", {"classification": "features"}),
    ]
    assert [lab.name for lab in ds.labels] == [
        "loop", "cavity", "dislocation", "precipitate", "void", "good", "bend contours", "thickness fringes",
    ]
    assert [(n.code, n.where) for n in ds.notes] == [
        ("text-classification", "line 1 /projects/p1/labels/0/annotations/classifications/2"),
        ("missing-image", "line 1"),
    ]


def test_names_images_and_sizes(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("L", (W, H)).save(pics / "gk.png")
    Image.new("L", (31, 17)).save(pics / "from_url.png")
    rows = [
        _row([], name={"id": "a", "external_id": "ext/one.png", "global_key": "gk1"}),
        _row([], name={"id": "b", "global_key": "gk.png"}),
        _row([], name={"id": "c", "row_data": "https://x.example/data/from_url.png?sig=1"}, media={}),
        _row([], name={"id": "d"}, media={}),
        _row([], name={"id": "e"}, media={"height": 2, "width": 3, "mime_type": "video/mp4"}),
    ]
    ds = read_labelbox(_write(tmp_path / "e.ndjson", rows), images=pics)
    assert [(it.name, it.size_hw) for it in ds] == [("ext/one.png", (H, W)), ("gk.png", (H, W)), ("c", (17, 31))]
    assert [it.image for it in ds] == [None, ImageSource(pics / "gk.png"), ImageSource(pics / "from_url.png")]
    assert [(n.code, n.item, n.where) for n in ds.notes] == [
        ("missing-image", "ext/one.png", "line 1"),
        ("missing-size", "d", "line 4"),
        ("not-image", "e", "line 5"),
    ]


def test_several_projects(tmp_path: Path) -> None:
    def label(name: str) -> dict:
        return {"annotations": {"objects": [{"name": name, "point": {"x": 1, "y": 2}}], "classifications": []}}

    projects = {"pa": {"labels": [label("loop")]}, "pb": {"labels": [label("cavity"), label("void")]}}
    path = _write(tmp_path / "e.ndjson", [_row([], projects=projects)])
    ds = read_labelbox(path)
    assert [s.label for s in ds[0].shapes] == ["loop", "cavity", "void"]
    assert [n.code for n in ds.notes] == ["several-labels", "missing-image"]
    ds = read_labelbox(path, project_id="pb")
    assert [s.label for s in ds[0].shapes] == ["cavity", "void"]
    assert [lab.name for lab in ds.labels] == ["cavity", "void"]
    with pytest.raises(ParseError, match=r"e\.ndjson: no project 'pc' in this export; its projects are \['pa', 'pb'\]"):
        read_labelbox(path, project_id="pc")


def test_downloaded_masks(tmp_path: Path) -> None:
    composite, first, second = _composite(tmp_path)
    masks = tmp_path / "masks"
    masks.mkdir()
    composite.rename(masks / "cm1.png")  # named by the composite mask id
    single = np.zeros((H, W), dtype=np.uint8)
    single[3, 4] = 1
    Image.fromarray(single).save(masks / "f9.png")  # named by the feature id
    objects = [
        {"feature_id": "f8", "name": "void", "composite_mask": {"url": COMPOSITE_URL, "color_rgb": [224, 17, 103]},
         "mask": {"url": _single_url("f8")}},
        {"feature_id": "f9", "name": "void", "mask": {"url": _single_url("f9")}},
    ]
    path = _write(tmp_path / "e.ndjson", [_row(objects)])
    a, b = read_labelbox(path, masks=masks)[0].shapes
    assert (a.left, a.top, a.bitmap.sum()) == (30, 20, second.sum())
    assert (b.left, b.top, b.bitmap.tolist()) == (4, 3, [[True]])
    # a mapping works the same, by URL or id
    a, b = read_labelbox(path, masks={COMPOSITE_URL: masks / "cm1.png", "f9": masks / "f9.png"})[0].shapes
    assert a.bitmap.sum() == second.sum() and b.bitmap.sum() == 1
    where = r"/projects/p1/labels/0/annotations/objects/1/mask/url"
    with pytest.raises(ParseError, match=rf"e\.ndjson, line 1 \({where}\): no local file"):
        read_labelbox(path, masks={COMPOSITE_URL: masks / "cm1.png"})
    with pytest.raises(ImageError, match=r"nowhere: no such folder"):
        read_labelbox(path, masks=tmp_path / "nowhere")


def test_empty_mask_is_a_note(tmp_path: Path) -> None:
    composite, _, _ = _composite(tmp_path)
    objects = [{"feature_id": "f1", "name": "void", "composite_mask": {"url": str(composite), "color_rgb": [1, 2, 3]}}]
    ds = read_labelbox(_write(tmp_path / "e.ndjson", [_row(objects)]))
    assert ds[0].shapes == () and ds.notes[0].code == "empty-mask"


# ---------------------------------------------------------------------------------------------
# Bad input: one test per kind, each naming the file, the line and the place in the row
# ---------------------------------------------------------------------------------------------

OBJ = "/projects/p1/labels/0/annotations/objects/0"


def test_not_json(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.ndjson", [_row([]), "", '{"data_row": {"id": "x"},, }'])
    with pytest.raises(ParseError, match=r"bad\.ndjson, line 3, column 26: not valid JSON"):
        read_labelbox(path)


def test_wrong_structure(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.ndjson", [_row([]), "[1, 2]"])
    with pytest.raises(ParseError, match=r"bad\.ndjson, line 2: expected a data row object"):
        read_labelbox(path)
    path = _write(tmp_path / "bad.ndjson", [{"media_attributes": {"height": 1, "width": 1}}])
    with pytest.raises(ParseError, match=r"bad\.ndjson, line 1 \(/data_row\): expected 'data_row'"):
        read_labelbox(path)
    path = _write(tmp_path / "bad.ndjson", [_row([{"name": "loop", "polygon": {"x": 1}}])])
    with pytest.raises(ParseError, match=rf"bad\.ndjson, line 1 \({OBJ}/polygon\): expected a list of points"):
        read_labelbox(path)


def test_nan_coordinate(tmp_path: Path) -> None:
    text = json.dumps(_row([{"name": "loop", "point": {"x": 1.0, "y": 2.0}}])).replace('"y": 2.0', '"y": NaN')
    path = _write(tmp_path / "bad.ndjson", [_row([]), text])
    with pytest.raises(ParseError, match=rf"bad\.ndjson, line 2 \({OBJ}/point/y\): expected a finite number"):
        read_labelbox(path)


def test_polygon_with_too_few_points(tmp_path: Path) -> None:
    # the documentation's own placeholder polygon: twice the same point (a closed 1-gon)
    poly = [{"x": 1489.581, "y": 183.934}, {"x": 1489.581, "y": 183.934}]
    obj = {"name": "polygon", "annotation_kind": "ImagePolygon", "polygon": poly}
    path = _write(tmp_path / "bad.ndjson", [_row([obj])])
    with pytest.raises(ParseError, match=rf"bad\.ndjson, line 1 \({OBJ}/polygon\): a polygon needs at least 3 .*, got 1"):
        read_labelbox(path)


def test_unknown_shape_type(tmp_path: Path) -> None:
    obj = {"name": "cube", "annotation_kind": "ImageCuboid", "cuboid": {"points": []}}
    path = _write(tmp_path / "bad.ndjson", [_row([obj])])
    with pytest.raises(ParseError, match=rf"bad\.ndjson, line 1 \({OBJ}\): unsupported object \(annotation_kind 'ImageCub"):
        read_labelbox(path)


def test_remote_mask_url(tmp_path: Path) -> None:
    obj = {"feature_id": "f1", "name": "void", "annotation_kind": "ImageSegmentationMask",
           "composite_mask": {"url": COMPOSITE_URL, "color_rgb": [1, 2, 3]}}
    path = _write(tmp_path / "bad.ndjson", [_row([obj])])
    match = rf"bad\.ndjson, line 1 \({OBJ}/composite_mask/url\): the mask is at a remote URL"
    with pytest.raises(ParseError, match=match) as info:
        read_labelbox(path)
    message = str(info.value)
    assert "download the masks first" in message and "masks=FOLDER" in message and "Labelbox SDK" in message


def test_bad_masks(tmp_path: Path) -> None:
    Image.new("L", (W + 1, H)).save(tmp_path / "wide.png")
    path = _write(tmp_path / "bad.ndjson", [_row([{"name": "void", "mask": {"url": "wide.png"}}])])
    with pytest.raises(ParseError, match=rf"bad\.ndjson, line 1 \({OBJ}/mask/url\): the mask .*wide\.png is 51 x 40 px"):
        read_labelbox(path)
    composite, _, _ = _composite(tmp_path)
    bad_color = {"name": "void", "composite_mask": {"url": str(composite), "color_rgb": [1, 2]}}
    path = _write(tmp_path / "bad.ndjson", [_row([bad_color])])
    with pytest.raises(ParseError, match=rf"bad\.ndjson, line 1 \({OBJ}/composite_mask/color_rgb\): expected 'color_rgb'"):
        read_labelbox(path)
    path = _write(tmp_path / "bad.ndjson", [_row([{"name": "void", "mask": {"url": "gone.png"}}])])
    with pytest.raises(ParseError, match=rf"bad\.ndjson, line 1 \({OBJ}/mask/url\): mask file not found"):
        read_labelbox(path)


def test_bad_size(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.ndjson", [_row([], media={"height": 0, "width": 5})])
    with pytest.raises(ParseError, match=r"bad\.ndjson, line 1 \(/media_attributes/height\): expected a positive whole"):
        read_labelbox(path)


# ---------------------------------------------------------------------------------------------
# Sniffing
# ---------------------------------------------------------------------------------------------


def test_sniff(shared_data: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "export.ndjson", [_row([{"name": "loop", "point": {"x": 1, "y": 2}}])])
    assert sniff_labelbox(path)
    assert not sniff_via(path) and not sniff_labelme(path)
    for coco in sorted((shared_data / "formats" / "coco" / "instances" / "annotations").glob("*.json")):
        assert not sniff_labelbox(coco)
    for name in ("via1_unit_test_annotation2.json", "via2_sherlock_tracks.json"):
        assert not sniff_labelbox(shared_data / "formats" / "via" / name)
    assert not sniff_labelbox(shared_data / "formats" / "cvat" / "all_shapes" / "annotations.xml")
    assert not sniff_labelbox(tmp_path)
    assert not sniff_labelbox(tmp_path / "missing.ndjson")
