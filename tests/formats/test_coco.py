"""COCO instances JSON: real exports read, write -> read round trips, pycocotools agreement,
and one test per kind of bad input.

Expected values come from the files themselves (``json.load``), from pycocotools (the
format's reference implementation), or from plain numpy — never from the code under test.
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from defectlab.errors import DatasetError, ImageError, ParseError
from defectlab.formats.coco_json import read_coco, rle_counts, sniff_coco, write_coco
from defectlab.imaging import write_image
from defectlab.model import (
    Box,
    Dataset,
    Ellipse,
    ImageSource,
    Item,
    Label,
    Mask,
    Points,
    Polygon,
    Polyline,
    Tag,
)
from defectlab.raster import rasterize

# ---------------------------------------------------------------------------------------------
# Independent helpers
# ---------------------------------------------------------------------------------------------


def full(shape, size_hw, line_width=3.0) -> np.ndarray:
    return rasterize(shape, size_hw, line_width=line_width).to_full(size_hw)


def fortran_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts of a bool mask, by plain numpy: column-major runs from 0."""
    flat = np.asarray(mask, bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    return [0] + runs if flat[0] else runs


def pixel_edge_box(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1 - cols.min()), float(rows.max() + 1 - rows.min())]


def distance_to_rings(px: np.ndarray, py: np.ndarray, rings: list[np.ndarray]) -> np.ndarray:
    """Distance of each point to the nearest edge of any ring (as in test_rasterize)."""
    best = np.full(len(px), np.inf)
    for pts in rings:
        a, b = pts, np.roll(pts, -1, axis=0)
        d = b - a
        t = np.clip(((px[:, None] - a[:, 0]) * d[:, 0] + (py[:, None] - a[:, 1]) * d[:, 1]) / (d**2).sum(1), 0, 1)
        dist = np.hypot(px[:, None] - (a[:, 0] + t * d[:, 0]), py[:, None] - (a[:, 1] + t * d[:, 1])).min(1)
        best = np.minimum(best, dist)
    return best


def test_fortran_counts_helper_agrees_with_pycocotools():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = rng.random((7, 9)) < 0.4
        rle = mask_utils.frPyObjects({"size": [7, 9], "counts": fortran_counts(m)}, 7, 9)
        assert np.array_equal(mask_utils.decode(rle).astype(bool), m)


# ---------------------------------------------------------------------------------------------
# Real exports
# ---------------------------------------------------------------------------------------------


def test_coco_instances_sample_matches_json(shared_data: Path):
    root = shared_data / "formats" / "coco" / "instances"
    files = sorted((root / "annotations").glob("instances_*.json"))
    docs = {f.stem.split("_", 1)[1]: json.loads(f.read_text()) for f in files}
    ds = read_coco(root)
    assert ds.format == "coco" and ds.source == str(root)

    cats = sorted(docs["train"]["categories"], key=lambda c: c["id"])
    assert [lab.name for lab in ds.labels] == [c["name"] for c in cats] == ["a", "b", "c"]
    assert ds.subsets() == list(docs) == ["train", "val"]
    expected = [
        (im["file_name"], (im["height"], im["width"]), subset, im["id"])
        for subset, doc in docs.items() for im in doc["images"]
    ]
    assert [(it.name, it.size_hw, it.subset, it.id) for it in ds] == expected
    for it in ds:  # images/<subset>/<file_name> beside annotations/
        assert it.image == ImageSource(root / "images" / it.subset / it.name)
    assert not [n for n in ds.notes if n.code == "missing-image"]

    names = {c["id"]: c["name"] for c in cats}
    for it in ds:
        anns = [a for a in docs[it.subset]["annotations"] if a["image_id"] == it.id]
        assert len(it.shapes) == len(anns)
        for shape, ann in zip(it.shapes, anns):
            assert shape.label == names[ann["category_id"]]
            seg = ann["segmentation"]
            if seg == []:  # a box only
                x, y, w, h = ann["bbox"]
                assert isinstance(shape, Box) and shape.xyxy == (x, y, x + w, y + h)
            elif isinstance(seg, list):
                assert isinstance(shape, Polygon)
                assert shape.points_xy.tolist() == np.reshape(seg[0], (-1, 2)).tolist()
                assert shape.group is None  # one part: no group
                assert shape.attributes == {k: str(v) for k, v in ann["attributes"].items()}
            else:
                assert isinstance(shape, Mask)
            assert (shape.attributes.get("iscrowd") == "1") == bool(ann["iscrowd"])


def test_uncompressed_rle_sample_decodes_like_pycocotools(shared_data: Path):
    doc = json.loads((shared_data / "formats/coco/instances/annotations/instances_val.json").read_text())
    (image,) = doc["images"]
    h, w = image["height"], image["width"]
    (ann,) = [a for a in doc["annotations"] if isinstance(a["segmentation"], dict)]
    assert ann["iscrowd"] == 1 and isinstance(ann["segmentation"]["counts"], list)
    expected = mask_utils.decode(mask_utils.frPyObjects(ann["segmentation"], h, w)).astype(bool)

    item = next(it for it in read_coco(shared_data / "formats/coco/instances") if it.id == image["id"])
    (mask,) = [s for s in item.shapes if isinstance(s, Mask)]
    assert np.array_equal(full(mask, (h, w)), expected)
    rows, cols = np.nonzero(expected)
    assert (mask.left, mask.top) == (cols.min(), rows.min())  # cropped to its pixels
    assert mask.bitmap.shape == (rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min())
    assert mask.attributes == {"iscrowd": "1"}


def test_roboflow_sample(shared_data: Path):
    root = shared_data / "formats" / "roboflow" / "coco"
    docs = {d.name: json.loads((d / "_annotations.coco.json").read_text()) for d in sorted(root.iterdir()) if d.is_dir()}
    ds = read_coco(root)
    assert ds.subsets() == list(docs) == ["train", "val"]  # from the split folders
    cats = sorted(docs["train"]["categories"], key=lambda c: c["id"])
    assert [lab.name for lab in ds.labels] == [c["name"] for c in cats]
    expected = [(im["file_name"], subset, im["id"]) for subset, doc in docs.items() for im in doc["images"]]
    assert [(it.name, it.subset, it.id) for it in ds] == expected
    for it in ds:  # images beside the JSON
        assert it.image == ImageSource(root / it.subset / it.name)
        anns = [a for a in docs[it.subset]["annotations"] if a["image_id"] == it.id]
        boxes = [(x, y, x + w, y + h) for x, y, w, h in (a["bbox"] for a in anns)]
        assert [s.xyxy for s in it.shapes] == boxes
        assert [s.attributes.get("iscrowd") == "1" for s in it.shapes] == [bool(a["iscrowd"]) for a in anns]


def _roboflow_with_parent(shared_data: Path, tmp_path: Path, *, use_parent: bool) -> Path:
    """The Roboflow sample as Roboflow exports most projects: a parent category with id 0
    named after the project, supercategory "none", the supercategory of every class."""
    root = tmp_path / "rf"
    shutil.copytree(shared_data / "formats" / "roboflow" / "coco", root)
    for f in root.glob("*/_annotations.coco.json"):
        doc = json.loads(f.read_text())
        for c in doc["categories"]:
            c["supercategory"] = "tem-defects"
        doc["categories"].insert(0, {"id": 0, "name": "tem-defects", "supercategory": "none"})
        if use_parent and f.parent.name == "train":
            doc["annotations"][0]["category_id"] = 0
        f.write_text(json.dumps(doc))
    return root


def test_roboflow_parent_category_is_dropped_with_a_note(shared_data: Path, tmp_path: Path):
    root = _roboflow_with_parent(shared_data, tmp_path, use_parent=False)
    ds = read_coco(root)
    assert [lab.name for lab in ds.labels] == ["label_0", "label_1"]
    (note,) = [n for n in ds.notes if n.code == "parent-category"]
    assert "'tem-defects'" in note.message and "/categories/0" in note.where
    assert not [n for n in ds.notes if n.code == "ignored-field"]


def test_roboflow_parent_category_used_by_an_annotation_is_kept(shared_data: Path, tmp_path: Path):
    root = _roboflow_with_parent(shared_data, tmp_path, use_parent=True)
    ds = read_coco(root)
    assert [lab.name for lab in ds.labels] == ["tem-defects", "label_0", "label_1"]  # category id order
    assert ds.items[0].shapes[0].label == "tem-defects"
    assert not [n for n in ds.notes if n.code == "parent-category"]


def test_single_file_and_zip_and_images_option(shared_data: Path, tmp_path: Path):
    root = shared_data / "formats" / "coco" / "instances"
    one = read_coco(root / "annotations" / "instances_val.json")
    assert [(it.name, it.subset) for it in one] == [("b.jpg", "val")]
    assert one[0].image == ImageSource(root / "images" / "val" / "b.jpg")

    archive = tmp_path / "coco.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    assert sniff_coco(archive)
    zipped = read_coco(archive)
    assert [(it.name, it.subset, it.id) for it in zipped] == [(it.name, it.subset, it.id) for it in read_coco(root)]
    assert zipped[1].image == ImageSource(archive, "images/val/b.jpg")

    elsewhere = tmp_path / "pictures"
    (elsewhere / "val").mkdir(parents=True)
    shutil.copy(root / "images" / "val" / "b.jpg", elsewhere / "val" / "b.jpg")
    lonely = tmp_path / "instances_val.json"
    shutil.copy(root / "annotations" / "instances_val.json", lonely)
    assert read_coco(lonely)[0].image is None
    assert [n.code for n in read_coco(lonely).notes] == ["missing-image"]
    assert read_coco(lonely, images=elsewhere)[0].image == ImageSource(elsewhere / "val" / "b.jpg")
    with pytest.raises(ImageError, match=r"nowhere: no such folder"):
        read_coco(lonely, images=tmp_path / "nowhere")


def test_sniff(shared_data: Path, tmp_path: Path):
    formats = shared_data / "formats"
    assert sniff_coco(formats / "coco" / "instances")
    assert sniff_coco(formats / "coco" / "instances" / "annotations" / "instances_train.json")
    assert sniff_coco(formats / "roboflow" / "coco")
    assert sniff_coco(formats / "roboflow" / "coco" / "train")
    assert not sniff_coco(formats / "cvat" / "all_shapes")
    assert not sniff_coco(formats / "via" / "via1_unit_test_annotation2.json")
    assert not sniff_coco(formats / "yolo" / "detection")
    assert not sniff_coco(formats / "roboflow" / "yolo")
    results = tmp_path / "results.json"
    results.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}]')
    assert not sniff_coco(results)
    assert not sniff_coco(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------
# Synthetic files: the corners of the format
# ---------------------------------------------------------------------------------------------


def base_doc() -> dict:
    return {
        "images": [{"id": 3, "file_name": "a.png", "width": 20, "height": 10}],
        "categories": [{"id": 2, "name": "loop", "supercategory": ""}, {"id": 1, "name": "cavity", "supercategory": ""}],
        "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "iscrowd": 0, "area": 6.0,
                         "segmentation": [[1, 1, 5, 1, 5, 4]], "bbox": [1, 1, 4, 3]}],
    }


def write_json(tmp_path: Path, doc, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_labels_follow_category_ids_and_multi_part_polygons_share_a_group(tmp_path: Path):
    doc = base_doc()
    doc["annotations"] = [
        {"id": 7, "image_id": 3, "category_id": 2, "iscrowd": 0,
         "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4], [10, 1, 14, 1, 14, 5, 10, 5]], "bbox": [1, 1, 13, 4]},
        {"id": 0, "image_id": 3, "category_id": 1, "iscrowd": 0,  # Roboflow counts ids from 0
         "segmentation": [[1, 6, 3, 6, 3, 8], [5, 6, 7, 6, 7, 8]], "bbox": [1, 6, 6, 2]},
        {"id": 9, "image_id": 3, "category_id": 1, "iscrowd": 0, "segmentation": [[15, 6, 18, 6, 18, 9]]},
    ]
    ds = read_coco(write_json(tmp_path, doc, "coco.json"))
    assert [lab.name for lab in ds.labels] == ["cavity", "loop"]  # id 1 before id 2
    assert ds[0].subset is None
    shapes = ds[0].shapes
    assert [(s.kind, s.label) for s in shapes] == [("polygon", "loop")] * 2 + [("polygon", "cavity")] * 3
    assert shapes[0].group == shapes[1].group == 7  # the annotation id
    assert shapes[2].group == shapes[3].group not in (None, 0, 7)  # id 0 is no group id: a new one
    assert shapes[4].group is None
    assert shapes[1].points_xy.tolist() == [[10, 1], [14, 1], [14, 5], [10, 5]]
    # the union of the parts is the object, as pycocotools sees it (no pixel center on an edge here)
    union = full(shapes[0], (10, 20)) | full(shapes[1], (10, 20))
    rle = mask_utils.merge(mask_utils.frPyObjects(doc["annotations"][0]["segmentation"], 10, 20))
    assert np.array_equal(union, mask_utils.decode(rle).astype(bool))


def test_cvat_attributes_occluded_and_rotation(tmp_path: Path):
    doc = base_doc()
    doc["annotations"] = [
        {"id": 1, "image_id": 3, "category_id": 1, "iscrowd": 0, "segmentation": [], "bbox": [2, 2, 6, 4],
         "attributes": {"occluded": True, "rotation": 30.0, "habit": "111", "count": 2}},
        {"id": 2, "image_id": 3, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 4]],
         "attributes": {"occluded": False, "rotation": 15.0}},
        {"id": 3, "image_id": 3, "category_id": 2, "iscrowd": 1, "bbox": [0, 0, 1, 1],
         "attributes": {"occluded": False, "rotation": 0.0}, "score": 0.5, "keypoints": []},
    ]
    ds = read_coco(write_json(tmp_path, doc, "coco.json"))
    box, poly, crowd = ds[0].shapes
    assert isinstance(box, Box) and box.xyxy == (2.0, 2.0, 8.0, 6.0) and box.rotation_deg == 30.0
    assert box.occluded and box.attributes == {"habit": "111", "count": "2"}
    assert isinstance(poly, Polygon) and not poly.occluded and poly.attributes == {"rotation": "15.0"}
    assert isinstance(crowd, Box) and crowd.rotation_deg == 0.0
    assert crowd.attributes == {"iscrowd": "1", "score": "0.5"}
    (note,) = [n for n in ds.notes if n.code == "ignored-field"]
    assert "keypoints" in note.message


def test_compressed_and_uncompressed_rle_decode_like_pycocotools(tmp_path: Path):
    rng = np.random.default_rng(7)
    h, w = 37, 53
    doc = base_doc()
    doc["images"][0].update(width=w, height=h)
    doc["annotations"] = []
    expected = []
    for k in range(12):
        yy, xx = np.mgrid[:h, :w]
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, 15)
        m = (xx + 0.5 - cx) ** 2 + ((yy + 0.5 - cy) * rng.uniform(0.5, 2)) ** 2 <= r * r
        m ^= rng.random((h, w)) < 0.02  # speckle: many short runs, and holes
        if not m.any():
            continue
        if k % 2:
            counts = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode("ascii")
            assert rle_counts(counts) == fortran_counts(m)
        else:
            counts = fortran_counts(m)
        seg = {"size": [h, w], "counts": counts}
        doc["annotations"].append({"id": k + 1, "image_id": 3, "category_id": 1, "iscrowd": 1, "segmentation": seg})
        expected.append(mask_utils.decode(mask_utils.frPyObjects(seg, h, w) if k % 2 == 0 else seg).astype(bool))
    ds = read_coco(write_json(tmp_path, doc, "coco.json"))
    assert len(ds[0].shapes) == len(expected)
    for shape, m in zip(ds[0].shapes, expected):
        assert isinstance(shape, Mask)
        assert np.array_equal(full(shape, (h, w)), m)
        assert shape.bitmap.any(axis=0)[[0, -1]].all() and shape.bitmap.any(axis=1)[[0, -1]].all()  # tight


def test_empty_rle_is_a_note(tmp_path: Path):
    doc = base_doc()
    doc["annotations"][0]["segmentation"] = {"size": [10, 20], "counts": [200]}
    ds = read_coco(write_json(tmp_path, doc, "coco.json"))
    assert ds[0].shapes == ()
    (note,) = [n for n in ds.notes if n.code == "empty-mask"]
    assert note.where.endswith("/annotations/0") and note.item == "a.png"


# ---------------------------------------------------------------------------------------------
# One ParseError per kind of bad input: the file name and the JSON pointer in the message
# ---------------------------------------------------------------------------------------------


def _mutated(change) -> dict:
    doc = base_doc()
    change(doc)
    return doc


BAD = {
    "list": ('[{"image_id": 1}]', r"bad\.json \(/\): .*got a JSON array"),
    "no images": ('{"annotations": [], "categories": []}', r"bad\.json \(/\): not a COCO instances file: no 'images'"),
    "unknown category": (
        _mutated(lambda d: d["annotations"][0].update(category_id=9)),
        r"bad\.json \(/annotations/0/category_id\): unknown category id 9; the categories are \[1, 2\]",
    ),
    "unknown image": (
        _mutated(lambda d: d["annotations"][0].update(image_id=4)),
        r"bad\.json \(/annotations/0/image_id\): no image with id 4",
    ),
    "polygon of 2 points": (
        _mutated(lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 4]])),
        r"bad\.json \(/annotations/0/segmentation/0\): expected a polygon of at least 3 points.*4 numbers"
        r".*would take 4 numbers for a box",
    ),
    "odd coordinates": (
        _mutated(lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 1, 5]])),
        r"bad\.json \(/annotations/0/segmentation/0\): expected x, y pairs",
    ),
    "string coordinate": (
        _mutated(lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, "1", 5, 4]])),
        r"bad\.json \(/annotations/0/segmentation/0/3\): expected a number, got a string",
    ),
    "negative bbox width": (
        _mutated(lambda d: d["annotations"][0].update(bbox=[1, 1, -4, 3])),
        r"bad\.json \(/annotations/0/bbox\): expected a width and height >= 0, got -4 x 3",
    ),
    "negative image width": (
        _mutated(lambda d: d["images"][0].update(width=-20)),
        r"bad\.json \(/images/0/width\): expected an image width from 1 to \d+, got -20",
    ),
    "NaN bbox": (
        _mutated(lambda d: d["annotations"][0].update(bbox=[1, float("nan"), 4, 3])),
        r"bad\.json \(/annotations/0/bbox/1\): expected a finite number, got nan",
    ),
    "RLE size": (
        _mutated(lambda d: d["annotations"][0].update(segmentation={"size": [20, 10], "counts": [200]})),
        r"bad\.json \(/annotations/0/segmentation/size\): expected the image size \[10, 20\]",
    ),
    "RLE runs": (
        _mutated(lambda d: d["annotations"][0].update(segmentation={"size": [10, 20], "counts": [0, 3]})),
        r"bad\.json \(/annotations/0/segmentation/counts\): the runs sum to 3, expected .* = 200",
    ),
    "RLE string": (
        _mutated(lambda d: d["annotations"][0].update(segmentation={"size": [10, 20], "counts": "0d0n~"})),
        r"bad\.json \(/annotations/0/segmentation/counts\): not a pycocotools compressed RLE: unexpected character '~'",
    ),
    "duplicate category": (
        _mutated(lambda d: d["categories"].append({"id": 2, "name": "other"})),
        r"bad\.json \(/categories/2/id\): the category id 2 is declared twice",
    ),
    "no geometry": (
        _mutated(lambda d: d["annotations"][0].pop("segmentation") and d["annotations"][0].pop("bbox")),
        r"bad\.json \(/annotations/0\): expected a 'segmentation' or a 'bbox'",
    ),
    "bad extra kind": (
        _mutated(lambda d: d["annotations"][0].update(defectlab={"kind": "cuboid"})),
        r"bad\.json \(/annotations/0/defectlab/kind\): expected 'polyline', 'polygon', 'ellipse' or 'box'",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(tmp_path: Path, case: str):
    doc, pattern = BAD[case]
    path = write_json(tmp_path, doc)
    with pytest.raises(ParseError, match=pattern):
        read_coco(path)


def test_not_json(tmp_path: Path):
    path = write_json(tmp_path, '{\n  "images": [,]\n}')
    with pytest.raises(ParseError, match=r"bad\.json, line 2, column 14: not valid JSON: Expecting value"):
        read_coco(path)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"images": "\xff\xfe"}')
    with pytest.raises(ParseError, match=r"binary\.json: not UTF-8 text"):
        read_coco(binary)


def test_no_annotation_file_in_folder(tmp_path: Path):
    with pytest.raises(ParseError, match=r"no COCO annotation file"):
        read_coco(tmp_path)
    write_json(tmp_path, base_doc(), "one.json")
    write_json(tmp_path, base_doc(), "two.json")
    with pytest.raises(ParseError, match=r"found several JSON files: \['one\.json', 'two\.json'\]"):
        read_coco(tmp_path)
    with pytest.raises(ParseError, match=r"nope\.json: no such file"):
        read_coco(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------
# Writing: layout, round trip, and what pycocotools makes of it
# ---------------------------------------------------------------------------------------------

SIZE = (64, 96)
STAR = np.array([[40 + 14 * math.cos(a), 30 + 14 * math.sin(a)] for a in np.arange(5) * 4 * math.pi / 5 - math.pi / 2])


def _hole_mask() -> Mask:
    bm = np.zeros((12, 11), bool)
    bm[1:11, 1:10] = True
    bm[4:7, 4:6] = False  # a hole: polygons cannot say it
    return Mask(label="precipitate", bitmap=bm, left=60, top=40, z_order=1)


def _shapes_a() -> tuple:
    return (
        Polygon(label="cavity", points_xy=[(3.25, 2.5), (20.75, 4.0), (15.5, 18.125), (5.0, 12.0)],
                attributes={"note": "round"}),
        Polygon(label="cavity", points_xy=STAR, group=3),  # self-crossing: RLE + the points
        Ellipse(label="cavity", cx=70.3, cy=15.6, rx=9.5, ry=5.25, rotation_deg=35, occluded=True),
        Box(label="loop", xyxy=(30.5, 45.25, 50.0, 58.5), rotation_deg=20, source="auto"),
        _hole_mask(),
        Polyline(label="dislocation", points_xy=[(2, 60), (30, 50.5), (55, 62.25)], attributes={"iscrowd": "1"}),
        Points(label="cavity", points_xy=[(1, 1)]),
        Tag(label="loop"),
        Ellipse(label="cavity", cx=90.2, cy=2.2, rx=0.2, ry=0.2),  # no pixel center inside
        Polyline(label="dislocation", points_xy=[(80, 30), (80, 50), (94, 50), (94, 30), (82, 30)], z_order=4),
    )


def make_dataset(tmp_path: Path) -> Dataset:
    rng = np.random.default_rng(0)
    items = []
    for name, subset, shapes in (
        ("a.png", "train", _shapes_a()),
        ("b.png", "val", (Polygon(label="loop", points_xy=[(1, 1), (9.5, 1), (9.5, 7)]),)),
        ("c.png", None, ()),
    ):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, rng.integers(0, 255, SIZE, dtype=np.uint8))
        items.append(Item(name, SIZE, shapes, image=ImageSource(path), subset=subset, id=len(items) + 10))
    labels = (Label("cavity", color="#61b21f", edge="inner"), Label("loop", edge="outer"),
              Label("precipitate"), Label("dislocation", type="polyline"))
    return Dataset(labels, tuple(items), source=str(tmp_path / "src"), format="cvat")


WRITTEN_A = [0, 1, 2, 3, 4, 5, 9]  # shapes of a.png that COCO gets (not points, tag, the dot)


def test_write_layout_and_report(tmp_path: Path):
    ds = make_dataset(tmp_path)
    out = tmp_path / "coco"
    report = write_coco(ds, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "annotations/instances_default.json", "annotations/instances_train.json", "annotations/instances_val.json",
        "images/c.png", "images/train/a.png", "images/val/b.png",
    ]
    assert report.n_items == 3 and report.n_instances == len(WRITTEN_A) + 1
    codes = [(n.code, n.where) for n in report.notes]
    assert codes == [("skipped-shape", "shape 6"), ("skipped-shape", "shape 7"), ("degenerate-instance", "shape 8")]
    doc = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(1, "cavity"), (2, "loop"), (3, "precipitate"), (4, "dislocation")]
    assert [(im["id"], im["file_name"], im["width"], im["height"]) for im in doc["images"]] == [(1, "a.png", 96, 64)]
    assert [a["id"] for a in doc["annotations"]] == list(range(1, len(WRITTEN_A) + 1))
    assert [a["iscrowd"] for a in doc["annotations"]] == [0, 0, 0, 0, 0, 1, 0]
    kinds = [a.get("defectlab", {}).get("kind") for a in doc["annotations"]]
    assert kinds == [None, "polygon", "ellipse", "box", None, "polyline", "polyline"]
    assert [type(a["segmentation"]).__name__ for a in doc["annotations"]] == ["list", "dict", "list", "list", "dict", "list", "dict"]
    # the polygon as drawn, exactly
    assert doc["annotations"][0]["segmentation"] == [[3.25, 2.5, 20.75, 4.0, 15.5, 18.125, 5.0, 12.0]]
    assert doc["annotations"][0]["attributes"] == {"note": "round", "occluded": False}


def test_write_read_round_trip(tmp_path: Path):
    ds = make_dataset(tmp_path)
    write_coco(ds, tmp_path / "coco")
    back = read_coco(tmp_path / "coco")
    assert back.labels == ds.labels
    assert sorted((it.subset or "", it.name) for it in back) == sorted((it.subset or "", it.name) for it in ds)
    assert not [n for n in back.notes if n.code == "missing-image"]
    by_key = {(it.subset, it.name): it for it in back}
    for item in ds:
        got = by_key[(item.subset, item.name)]
        assert got.size_hw == item.size_hw
        assert got.image.path.read_bytes() == item.image.path.read_bytes()
        sources = [item.shapes[k] for k in WRITTEN_A] if item.name == "a.png" else list(item.shapes)
        assert len(got.shapes) == len(sources)
        for src, shape in zip(sources, got.shapes):
            assert type(shape) is type(src) and shape.label == src.label
            assert (shape.group, shape.z_order, shape.occluded, shape.source) == (src.group, src.z_order, src.occluded, src.source)
            assert shape.attributes == src.attributes
            if isinstance(src, (Polygon, Polyline)):
                assert shape.points_xy.shape == src.points_xy.shape
                assert np.abs(shape.points_xy - src.points_xy).max() <= 0.01
            elif isinstance(src, Ellipse):
                got_geo = (shape.cx, shape.cy, shape.rx, shape.ry, shape.rotation_deg)
                assert np.allclose(got_geo, (src.cx, src.cy, src.rx, src.ry, src.rotation_deg), atol=0.01, rtol=0)
            elif isinstance(src, Box):
                assert np.allclose(shape.xyxy, src.xyxy, atol=0.01, rtol=0) and shape.rotation_deg == src.rotation_deg
            assert np.array_equal(full(shape, item.size_hw), full(src, item.size_hw))  # same pixels


def test_pycocotools_reads_what_we_write(tmp_path: Path):
    ds = make_dataset(tmp_path)
    write_coco(ds, tmp_path / "coco", copy_images=False)
    labels = [lab.name for lab in ds.labels]
    for item in ds:
        if not item.shapes:
            continue
        coco = COCO(str(tmp_path / "coco" / "annotations" / f"instances_{item.subset}.json"))
        anns = coco.loadAnns(coco.getAnnIds())
        sources = [item.shapes[k] for k in WRITTEN_A] if item.name == "a.png" else list(item.shapes)
        assert len(anns) == len(sources)
        for src, ann in zip(sources, anns):
            ours = full(src, item.size_hw)
            theirs = coco.annToMask(ann).astype(bool)
            assert theirs.shape == item.size_hw
            assert coco.loadCats(ann["category_id"])[0]["name"] == src.label == labels[ann["category_id"] - 1]
            assert ann["area"] == ours.sum()
            assert ann["bbox"] == pixel_edge_box(ours)
            if isinstance(ann["segmentation"], dict):  # RLE: exactly our pixels
                assert np.array_equal(theirs, ours)
                continue
            rings = [np.reshape(p, (-1, 2)) for p in ann["segmentation"]]
            bad = np.argwhere(ours ^ theirs)
            # pycocotools approximates polygon edges on a 5x grid: pixels within 0.25 px of an edge
            # may differ; an ellipse's polygon is itself within 0.05 px of the ellipse
            limit = 0.25 + (0.05 if isinstance(src, Ellipse) else 0.0)
            if len(bad):
                assert distance_to_rings(bad[:, 1] + 0.5, bad[:, 0] + 0.5, rings).max() < limit


def test_write_refusals(tmp_path: Path):
    ds = make_dataset(tmp_path)
    with pytest.raises(ImageError, match=r"image file\(s\) not found"):
        write_coco(ds.with_items([Item("x.png", SIZE)]), tmp_path / "o1")
    odd = ds.with_items([Item("x.png", SIZE, (Polygon(label="void", points_xy=[(1, 1), (5, 1), (5, 5)]),))])
    with pytest.raises(DatasetError, match=r"'void' is not among the dataset's labels"):
        write_coco(odd, tmp_path / "o2", copy_images=False)
    with pytest.raises(DatasetError, match=r"subset name 'a/b'"):
        write_coco(ds.with_items([Item("x.png", SIZE, subset="a/b")]), tmp_path / "o3", copy_images=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_written_coco_is_read_by_read_coco_without_images(tmp_path: Path):
    """copy_images=False keeps the item names as file names and writes no images folder."""
    ds = make_dataset(tmp_path)
    write_coco(ds, tmp_path / "coco", copy_images=False)
    assert not (tmp_path / "coco" / "images").exists()
    back = read_coco(tmp_path / "coco", images=tmp_path / "src")
    assert sorted(it.name for it in back) == ["a.png", "b.png", "c.png"]
    assert all(it.image is not None for it in back)
    assert back.labels == ds.labels


@pytest.mark.parametrize("folder", ["imgs", "img", "Images", "JPEGImages", "frames"])
def test_common_image_folder_names_beside_the_export_are_searched(tmp_path: Path, folder: str):
    """#14.10: a public COCO set keeps its images in imgs/ beside the json: found without --images."""
    from PIL import Image

    doc = {"images": [{"id": 1, "file_name": "loop_01.png", "width": 8, "height": 6},
                      {"id": 2, "file_name": "loop_02.png", "width": 8, "height": 6}],
           "categories": [{"id": 1, "name": "loop"}], "annotations": []}
    (tmp_path / "train.json").write_text(json.dumps(doc))
    (tmp_path / folder).mkdir()
    for name in ("loop_01.png", "loop_02.png"):
        Image.new("L", (8, 6)).save(tmp_path / folder / name)
    ds = read_coco(tmp_path / "train.json")
    assert [n.code for n in ds.notes] == []
    assert [it.image.path for it in ds] == [tmp_path / folder / "loop_01.png", tmp_path / folder / "loop_02.png"]
    (tmp_path / "images").mkdir()  # images/ comes first, as COCO, CVAT and datumaro write it
    Image.new("L", (8, 6)).save(tmp_path / "images" / "loop_01.png")
    assert read_coco(tmp_path / "train.json")[0].image.path == tmp_path / "images" / "loop_01.png"

