"""Reading VIA 1, 2 and 3 JSON: the real samples, the class attribute, rotations, bad input.

Expected values come from the files themselves (``json.load`` here), from the image files the
tests write, or from geometry worked out independently — never from the reader.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import ImageError, ParseError
from defectlab.formats.labelbox_ndjson import sniff_labelbox
from defectlab.formats.labelme_json import sniff_labelme
from defectlab.formats.via_json import read_via, sniff_via
from defectlab.model import Box, Ellipse, ImageSource, Points, Polygon, Polyline
from defectlab.raster import rasterize


def _image(path: Path, size_hw: tuple[int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size_hw[1], size_hw[0]), 128).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    return path


def _geometry(shape) -> tuple:
    if isinstance(shape, Box):
        return ("box", shape.xyxy)
    if isinstance(shape, Ellipse):
        return ("ellipse", (shape.cx, shape.cy, shape.rx, shape.ry, shape.rotation_deg))
    if isinstance(shape, (Points, Polygon, Polyline)):
        return (shape.kind, shape.points_xy.tolist())
    raise AssertionError(shape)


def _expected_geometry(sa: dict) -> tuple:
    """The geometry a VIA shape_attributes object describes, worked out by hand."""
    name = sa["name"]
    if name == "rect":
        return ("box", (sa["x"], sa["y"], sa["x"] + sa["width"], sa["y"] + sa["height"]))
    if name == "circle":
        return ("ellipse", (sa["cx"], sa["cy"], sa["r"], sa["r"], 0.0))
    if name == "ellipse":
        return ("ellipse", (sa["cx"], sa["cy"], sa["rx"], sa["ry"], sa.get("theta", 0.0) * 180 / math.pi))
    if name == "point":
        return ("points", [[sa["cx"], sa["cy"]]])
    pts = [[x, y] for x, y in zip(sa["all_points_x"], sa["all_points_y"])]
    if name == "polygon" and pts[0] == pts[-1]:
        pts = pts[:-1]
    return (name, pts)


# ---------------------------------------------------------------------------------------------
# The real samples
# ---------------------------------------------------------------------------------------------


def test_via1_sample_matches_json(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "formats" / "via" / "via1_unit_test_annotation2.json"
    raw = json.loads(src.read_text(encoding="utf-8"))
    sizes = {}
    for i, entry in enumerate(raw.values()):
        sizes[entry["filename"]] = (300 + 10 * i, 700 + 10 * i)
        _image(tmp_path / "pics" / entry["filename"], sizes[entry["filename"]])

    ds = read_via(src, images=tmp_path / "pics")
    assert ds.format == "via" and ds.source == str(src)
    assert [it.name for it in ds] == [e["filename"] for e in raw.values()]
    unlabeled = 0
    for item, entry in zip(ds, raw.values()):
        assert item.size_hw == sizes[entry["filename"]]
        assert item.image == ImageSource(tmp_path / "pics" / entry["filename"])
        regions = list(entry["regions"].values())  # VIA 1: regions keyed "0", "1", ...
        labeled = [r for r in regions if r["region_attributes"].get("name")]
        unlabeled += len(regions) - len(labeled)
        assert [s.label for s in item.shapes] == [r["region_attributes"]["name"] for r in labeled]
        assert [_geometry(s) for s in item.shapes] == [_expected_geometry(r["shape_attributes"]) for r in labeled]
        assert all(s.attributes == {} for s in item.shapes)
    # the sample's polygon repeats its first vertex: VIA 1 closes the path that way
    poly = raw["sinus_test_pattern.jpg27894"]["regions"]["0"]["shape_attributes"]
    assert (poly["all_points_x"][0], poly["all_points_y"][0]) == (poly["all_points_x"][-1], poly["all_points_y"][-1])
    assert len(ds[1].shapes[0].points_xy) == len(poly["all_points_x"]) - 1
    # regions 5, 6, 7 of the first image carry no attribute at all
    notes = [n for n in ds.notes if n.code == "unlabeled-shape"]
    assert unlabeled == 3 and len(notes) == 3
    assert [n.where for n in notes] == [f"/test_pattern_qbist.jpg129855/regions/{k}/region_attributes" for k in "567"]
    assert [n.code for n in ds.notes if n.code != "unlabeled-shape"] == ["ignored-file-attributes"]
    # every label is a value of the "name" attribute, in order of appearance
    regions = [r for e in raw.values() for r in e["regions"].values()]
    names = [r["region_attributes"]["name"] for r in regions if r["region_attributes"].get("name")]
    assert [lab.name for lab in ds.labels] == list(dict.fromkeys(names))


def test_via1_sample_without_images_skips_items(shared_data: Path) -> None:
    src = shared_data / "formats" / "via" / "via1_unit_test_annotation2.json"
    raw = json.loads(src.read_text(encoding="utf-8"))
    ds = read_via(src)
    assert len(ds) == 0
    missing = [n for n in ds.notes if n.code == "missing-image"]
    assert [n.item for n in missing] == [e["filename"] for e in raw.values()]
    assert [f"{len(e['regions'])} region(s)" in n.message for n, e in zip(missing, raw.values())] == [True] * 3


def test_via2_sample_relative_paths_and_string_sizes(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "formats" / "via" / "via2_sherlock_tracks.json"
    raw = json.loads(src.read_text(encoding="utf-8"))
    export = tmp_path / "via2.json"
    shutil.copy(src, export)
    entries = list(raw.values())
    assert all(isinstance(e["size"], str) and isinstance(e["regions"], list) for e in entries)
    present = entries[:5]  # only these images exist: the others cannot be placed
    for e in present:
        _image(tmp_path / e["filename"], (576, 720))  # "./images/00011384.jpg" beside the JSON

    ds = read_via(export)
    assert [it.name for it in ds] == [e["filename"][2:] for e in present]  # "./" dropped
    for item, e in zip(ds, present):
        assert item.size_hw == (576, 720)  # from the image header, not the 'size' (file bytes)
        assert int(e["size"]) not in item.size_hw
        assert item.image == ImageSource(tmp_path / e["filename"][2:])
        assert [_geometry(s) for s in item.shapes] == [_expected_geometry(r["shape_attributes"]) for r in e["regions"]]
        # "track" is the only region attribute: it is the class (a number, kept as text)
        assert [s.label for s in item.shapes] == [str(r["region_attributes"]["track"]) for r in e["regions"]]
    missing = [n.item for n in ds.notes if n.code == "missing-image"]
    assert missing == [e["filename"][2:] for e in entries[5:]]
    all_tracks = [str(r["region_attributes"]["track"]) for e in entries for r in e["regions"]]
    assert [lab.name for lab in ds.labels] == list(dict.fromkeys(all_tracks))
    (fa,) = [n for n in ds.notes if n.code == "ignored-file-attributes"]
    assert "shot" in fa.message


# ---------------------------------------------------------------------------------------------
# The class attribute
# ---------------------------------------------------------------------------------------------


def _write(tmp_path: Path, doc, name: str = "via.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def _via2(regions: list, filename: str = "a.png") -> dict:
    return {f"{filename}10": {"filename": filename, "size": 10, "regions": regions, "file_attributes": {}}}


def _rect(**attrs) -> dict:
    return {"shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 3, "height": 4}, "region_attributes": attrs}


def test_class_attribute_rules(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", (20, 30))
    # a listed name wins over other attributes, by the order of the list
    path = _write(tmp_path, _via2([_rect(habit="111", Class="void", type="loop")]))
    (shape,) = read_via(path)[0].shapes
    assert shape.label == "loop" and shape.attributes == {"habit": "111", "Class": "void"}
    # case is ignored when no exact name matches
    path = _write(tmp_path, _via2([_rect(habit="111", Class="void")]))
    assert read_via(path)[0].shapes[0].label == "void"
    # the only attribute there is
    path = _write(tmp_path, _via2([_rect(defect="cavity")]))
    assert read_via(path)[0].shapes[0].label == "cavity"
    # explicit choice
    path = _write(tmp_path, _via2([_rect(habit="111", Class="void")]))
    shape = read_via(path, class_attribute="habit")[0].shapes[0]
    assert shape.label == "111" and shape.attributes == {"Class": "void"}


def test_class_attribute_cannot_be_determined(tmp_path: Path) -> None:
    path = _write(tmp_path, _via2([_rect(habit="111", size_nm="5")]))
    with pytest.raises(ParseError, match=r"via\.json: .*\['habit', 'size_nm'\].*class_attribute="):
        read_via(path)
    with pytest.raises(ParseError, match=r"via\.json: no region attribute 'kind'.*\['habit', 'size_nm'\]"):
        read_via(path, class_attribute="kind")


def test_via2_project_with_declared_options_and_checkboxes(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", (20, 30))
    meta = _via2([
        _rect(defect={"loop": True, "cavity": False}, habit="111"),
        _rect(defect={"loop": True, "cavity": True}),
        _rect(defect={}),
        _rect(defect="cavity", habit={"111": True, "100": True}),
    ])
    doc = {
        "_via_settings": {"core": {"default_filepath": ""}},
        "_via_img_metadata": meta,
        "_via_attributes": {
            "region": {
                "defect": {"type": "checkbox", "options": {"precipitate": "", "cavity": "", "loop": ""}},
                "habit": {"type": "dropdown", "options": {"111": "", "100": ""}},
            },
            "file": {},
        },
    }
    ds = read_via(_write(tmp_path, doc), class_attribute="defect")
    assert [(s.label, s.attributes) for s in ds[0].shapes] == [("loop", {"habit": "111"}), ("cavity", {"habit": "111,100"})]
    # declared options first (in order, used or not), then classes seen
    assert [lab.name for lab in ds.labels] == ["precipitate", "cavity", "loop"]
    assert [(n.code, n.where) for n in ds.notes] == [
        ("ambiguous-class", "/_via_img_metadata/a.png10/regions/1/region_attributes"),
        ("unlabeled-shape", "/_via_img_metadata/a.png10/regions/2/region_attributes"),
    ]


# ---------------------------------------------------------------------------------------------
# Ellipse rotation: VIA's theta (radians) on a y-down canvas is clockwise on screen
# ---------------------------------------------------------------------------------------------


def _ellipse_mask(tmp_path: Path, theta: float | None, size_hw=(64, 64)) -> np.ndarray:
    _image(tmp_path / "e.png", size_hw)
    sa = {"name": "ellipse", "cx": 32, "cy": 32, "rx": 20, "ry": 6}
    if theta is not None:
        sa["theta"] = theta
    path = _write(tmp_path, _via2([{"shape_attributes": sa, "region_attributes": {"type": "loop"}}], "e.png"))
    (shape,) = read_via(path)[0].shapes
    return rasterize(shape, size_hw).to_full(size_hw)


def test_ellipse_theta_quarter_turn_is_taller_than_wide(tmp_path: Path) -> None:
    mask = _ellipse_mask(tmp_path, math.pi / 2)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    # rx = 20 now runs along y: pixel centers 12.5 .. 51.5 (40 rows); ry = 6 along x (12 columns)
    assert (height, width) == (40, 12)
    unrotated = _ellipse_mask(tmp_path, None)
    assert np.array_equal(mask, unrotated.T)  # a quarter turn about the (32, 32) center


def test_ellipse_theta_sign_is_clockwise_on_screen(tmp_path: Path) -> None:
    # canvas ellipse(cx, cy, rx, ry, θ): the rx axis points along (cos θ, sin θ) with y down,
    # so θ = +45° sends it down-right on screen
    mask = _ellipse_mask(tmp_path, math.pi / 4)
    d = 15 / math.sqrt(2)
    down_right = (int(32 + d), int(32 + d))  # (x, y) pixel holding the point 15 px along the axis
    up_right = (int(32 + d), int(32 - d))
    assert mask[down_right[1], down_right[0]]
    assert not mask[up_right[1], up_right[0]]
    assert np.array_equal(mask, mask[::-1, ::-1])  # symmetric about the center
    assert np.array_equal(mask, mask.T)  # and about the down-right diagonal


def test_ellipse_without_theta_is_axis_aligned(tmp_path: Path) -> None:
    mask = _ellipse_mask(tmp_path, None)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (12, 40)


# ---------------------------------------------------------------------------------------------
# VIA 3
# ---------------------------------------------------------------------------------------------


def _via3(metadata: dict, **extra) -> dict:
    doc = {
        "project": {"pid": "__VIA_PROJECT_ID__", "rev": "__VIA_PROJECT_REV_ID__", "pname": "tem", "vid_list": ["1"]},
        "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}},
                   "ui": {"spatial_region_label_attribute_id": "1"}},
        "attribute": {
            "1": {"aname": "defect", "anchor_id": "FILE1_Z0_XY1", "type": 4, "desc": "",
                  "options": {"0": "cavity", "1": "loop", "2": "precipitate"}, "default_option_id": ""},
            "2": {"aname": "note", "anchor_id": "FILE1_Z0_XY1", "type": 1, "desc": "", "options": {},
                  "default_option_id": ""},
            "3": {"aname": "quality", "anchor_id": "FILE1_Z0_XY0", "type": 3, "desc": "",
                  "options": {"0": "good", "1": "blurry"}, "default_option_id": ""},
        },
        "file": {"1": {"fid": "1", "fname": "tem.png", "type": 2, "loc": 1, "src": "tem.png"}},
        "view": {"1": {"fid_list": ["1"]}},
        "metadata": metadata,
    }
    doc.update(extra)
    return doc


def test_via3_every_shape(tmp_path: Path) -> None:
    _image(tmp_path / "tem.png", (100, 120))
    # 3 points on the circle of center (30, 20), radius 5
    circle_pts = [35, 20, 30, 25, 25, 20]
    xy = {
        "a": [1, 5.5, 6.5],
        "b": [2, 10, 20, 30, 40],
        "c": [3, 50, 60, 7],
        "d": [4, 50, 60, 7, 3],
        "e": [5, 1, 2, 3, 4],
        "f": [6, 1, 2, 3, 4, 5, 6],
        "g": [7, 10, 10, 20, 10, 20, 20],
        "h": [8, 15, 40, 30, 35, 45, 42, 28, 50],  # left, top, right, bottom extreme points
        "i": [9, *circle_pts],
    }
    metadata = {mid: {"vid": "1", "flg": 0, "z": [], "xy": v, "av": {"1": "1", "2": f"m{mid}"}} for mid, v in xy.items()}
    metadata["file-level"] = {"vid": "1", "flg": 0, "z": [], "xy": [], "av": {"3": "1"}}
    ds = read_via(_write(tmp_path, _via3(metadata)))
    (item,) = ds
    assert (item.name, item.size_hw, item.image) == ("tem.png", (100, 120), ImageSource(tmp_path / "tem.png"))
    got = [_geometry(s) for s in item.shapes]
    assert got == [
        ("points", [[5.5, 6.5]]),
        ("box", (10.0, 20.0, 40.0, 60.0)),
        ("ellipse", (50.0, 60.0, 7.0, 7.0, 0.0)),
        ("ellipse", (50.0, 60.0, 7.0, 3.0, 0.0)),
        ("polyline", [[1.0, 2.0], [3.0, 4.0]]),
        ("polyline", [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        ("polygon", [[10.0, 10.0], [20.0, 10.0], [20.0, 20.0]]),
        ("box", (15.0, 35.0, 45.0, 50.0)),
        got[8],
    ]
    kind, (cx, cy, rx, ry, rot) = got[8]
    assert kind == "ellipse" and rot == 0.0
    assert (cx, cy, rx, ry) == pytest.approx((30.0, 20.0, 5.0, 5.0), abs=1e-12)
    # the select's option id "1" is "loop"; the text attribute is kept as written
    assert {s.label for s in item.shapes} == {"loop"}
    assert [s.attributes for s in item.shapes] == [{"note": f"m{mid}"} for mid in xy]
    assert [lab.name for lab in ds.labels] == ["cavity", "loop", "precipitate"]
    assert [n.code for n in ds.notes] == ["ignored-metadata"]


def test_via3_class_attribute(tmp_path: Path) -> None:
    _image(tmp_path / "tem.png", (100, 120))
    metadata = {"m": {"vid": "1", "flg": 0, "z": [], "xy": [2, 1, 2, 3, 4], "av": {"1": "2", "2": "faint"}}}
    doc = _via3(metadata)
    # "defect" and "note" match no listed name: the region label shown in VIA's UI decides
    assert read_via(_write(tmp_path, doc))[0].shapes[0].label == "precipitate"
    assert read_via(_write(tmp_path, doc), class_attribute="note")[0].shapes[0].label == "faint"
    doc["config"]["ui"] = {}
    with pytest.raises(ParseError, match=r"via\.json: .*\['defect', 'note'\].*class_attribute="):
        read_via(_write(tmp_path, doc))


def test_via3_bad_shapes(tmp_path: Path) -> None:
    cases = [
        ([12, 1, 2], r"unknown VIA 3 shape id 12", "/metadata/m/xy/0"),
        ([2, 1, 2, 3], r"rectangle needs 4 coordinates", "/metadata/m/xy"),
        ([9, 0, 0, 1, 1, 2, 2], r"collinear", "/metadata/m/xy"),
        ([7, 0, 0, 1, 1], r"polygon needs at least 3", "/metadata/m/xy"),
    ]
    for xy, message, where in cases:
        path = _write(tmp_path, _via3({"m": {"vid": "1", "z": [], "xy": xy, "av": {"1": "0"}}}), "bad.json")
        with pytest.raises(ParseError, match=rf"bad\.json \({where}\): .*{message}"):
            read_via(path)


# ---------------------------------------------------------------------------------------------
# Bad input: one test per kind, each naming the file and the place
# ---------------------------------------------------------------------------------------------


def test_not_json(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"a.png1": {"filename": "a.png",\n  "regions": [}', "bad.json")
    with pytest.raises(ParseError, match=r"bad\.json, line 2, column \d+: not valid JSON"):
        read_via(path)


def test_wrong_structure(tmp_path: Path) -> None:
    path = _write(tmp_path, {"images": [], "annotations": [], "categories": []}, "bad.json")
    with pytest.raises(ParseError, match=r"bad\.json: not a VIA export.*\['images', 'annotations', 'categories'\]"):
        read_via(path)
    path = _write(tmp_path, _via2({"0": "not a region"}), "bad.json")
    with pytest.raises(ParseError, match=r"bad\.json \(/a\.png10/regions/0\): expected a region"):
        read_via(path)


def test_nan_coordinate(tmp_path: Path) -> None:
    text = json.dumps(_via2([_rect(type="loop")])).replace('"x": 1', '"x": NaN')
    path = _write(tmp_path, text, "bad.json")
    with pytest.raises(ParseError, match=r"bad\.json \(/a\.png10/regions/0/shape_attributes/x\): expected a finite"):
        read_via(path)


def test_polygon_with_too_few_points(tmp_path: Path) -> None:
    sa = {"name": "polygon", "all_points_x": [1, 5, 1], "all_points_y": [1, 5, 1]}  # closed: 2 distinct
    path = _write(tmp_path, _via2([{"shape_attributes": sa, "region_attributes": {"type": "loop"}}]), "bad.json")
    with pytest.raises(ParseError, match=r"bad\.json \(/a\.png10/regions/0/shape_attributes\): a polygon needs at least 3"):
        read_via(path)


def test_unknown_shape_type(tmp_path: Path) -> None:
    sa = {"name": "freehand", "cx": 1}
    path = _write(tmp_path, _via2([{"shape_attributes": sa, "region_attributes": {"type": "loop"}}]), "bad.json")
    where = r"/a\.png10/regions/0/shape_attributes/name"
    with pytest.raises(ParseError, match=rf"bad\.json \({where}\): unknown shape 'freehand'"):
        read_via(path)


def test_negative_size_and_mismatched_points(tmp_path: Path) -> None:
    bad_rect = _rect(type="loop")
    bad_rect["shape_attributes"]["width"] = -3
    path = _write(tmp_path, _via2([bad_rect]), "bad.json")
    where = r"/a\.png10/regions/0/shape_attributes/width"
    with pytest.raises(ParseError, match=rf"bad\.json \({where}\): expected 'width' >= 0"):
        read_via(path)
    sa = {"name": "polyline", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]}
    path = _write(tmp_path, _via2([{"shape_attributes": sa, "region_attributes": {"type": "loop"}}]), "bad.json")
    with pytest.raises(ParseError, match=r"bad\.json \(/a\.png10/regions/0/shape_attributes\): 'all_points_x' has 3"):
        read_via(path)


def test_missing_file_and_images_folder(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"nope\.json: no such file"):
        read_via(tmp_path / "nope.json")
    path = _write(tmp_path, _via2([]))
    with pytest.raises(ImageError, match=r"nowhere: no such folder"):
        read_via(path, images=tmp_path / "nowhere")


def test_image_names_from_other_machines_and_urls(tmp_path: Path) -> None:
    _image(tmp_path / "w.png", (10, 20))
    _image(tmp_path / "pics" / "u.png", (30, 40))
    doc = {**_via2([_rect(type="loop")], "C:\\Users\\me\\tem\\w.png"),
           **_via2([_rect(type="void")], "https://example.org/data/u.png")}
    ds = read_via(_write(tmp_path, doc), images=tmp_path / "pics")
    assert [(it.name, it.size_hw, it.image) for it in ds] == [
        ("w.png", (10, 20), ImageSource(tmp_path / "w.png")),  # absolute elsewhere: found beside the JSON
        ("u.png", (30, 40), ImageSource(tmp_path / "pics" / "u.png")),  # a URL: found by its file name
    ]


def test_unreadable_image_is_a_note(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"not an image")
    ds = read_via(_write(tmp_path, _via2([_rect(type="loop")])))
    assert len(ds) == 0 and [n.code for n in ds.notes] == ["unreadable-image"]


def test_inline_image_gives_the_size(tmp_path: Path) -> None:
    import base64
    import io

    buf = io.BytesIO()
    Image.new("L", (40, 30)).save(buf, format="PNG")
    doc = _via2([_rect(type="loop")], "inline.png")
    doc["inline.png10"]["base64_img_data"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    ds = read_via(_write(tmp_path, doc))
    assert (ds[0].size_hw, ds[0].image, [n.code for n in ds.notes]) == ((30, 40), None, ["inline-image"])


# ---------------------------------------------------------------------------------------------
# Sniffing
# ---------------------------------------------------------------------------------------------


def test_sniff(shared_data: Path, tmp_path: Path) -> None:
    via = shared_data / "formats" / "via"
    for name in ("via1_unit_test_annotation2.json", "via2_sherlock_tracks.json"):
        assert sniff_via(via / name)
        assert not sniff_labelme(via / name)
        assert not sniff_labelbox(via / name)
    assert sniff_via(_write(tmp_path, _via3({}), "v3.json"))
    project = {"_via_settings": {"ui": {}}, "_via_img_metadata": {}, "_via_attributes": {}}
    assert sniff_via(_write(tmp_path, project, "v2p.json"))
    for coco in sorted((shared_data / "formats" / "coco" / "instances" / "annotations").glob("*.json")):
        assert not sniff_via(coco)
    assert not sniff_via(shared_data / "formats" / "cvat" / "all_shapes" / "annotations.xml")
    assert not sniff_via(via)  # a folder
    assert not sniff_via(tmp_path / "missing.json")
