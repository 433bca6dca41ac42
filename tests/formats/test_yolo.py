"""YOLO (Ultralytics / Roboflow): real samples, line-by-line reading, write → read, layout, bad input.

Expected values come from the files themselves (plain text splitting, ``yaml.safe_load``,
image sizes read with PIL), from brute-force pixel-center tests written here, or from
Ultralytics' own path rule re-implemented verbatim below — never from the module under test.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from skimage.measure import points_in_poly

from defectlab.errors import DatasetError, OutputError, ParseError
from defectlab.formats.yolo_txt import read_yolo, sniff_yolo, write_yolo
from defectlab.model import Box, Dataset, Ellipse, ImageSource, Item, Label, Mask, Points, Polygon, Polyline, Tag


# Ultralytics' rule from image path to label path, copied verbatim from
# ultralytics/ultralytics, ultralytics/data/utils.py, ``img2label_paths`` (AGPL-3.0; test only).
def img2label_paths(img_paths):
    """Convert image paths to label paths by replacing 'images' with 'labels' and extension with '.txt'."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"  # /images/, /labels/ substrings
    return [sb.join(x.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt" for x in img_paths]


# ---------------------------------------------------------------------------------------------
# An independent reading of a YOLO sample: plain text × PIL image sizes
# ---------------------------------------------------------------------------------------------


def _expected(label_file: Path, image_file: Path, names: list[str]) -> list[tuple]:
    with Image.open(image_file) as im:
        w, h = im.size
    out = []
    for line in label_file.read_text().splitlines():
        f = line.split()
        if not f:
            continue
        label, nums = names[int(f[0])], [float(v) for v in f[1:]]
        if len(nums) == 4:
            xc, yc, bw, bh = nums
            out.append(("box", label, ((xc - bw / 2) * w, (yc - bh / 2) * h, (xc + bw / 2) * w, (yc + bh / 2) * h)))
        else:
            out.append(("polygon", label, tuple(v * (w if i % 2 == 0 else h) for i, v in enumerate(nums))))
    return out


def _ours(shape) -> tuple:
    if isinstance(shape, Box):
        return ("box", shape.label, shape.xyxy)
    return ("polygon", shape.label, tuple(shape.points_xy.ravel().tolist()))


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        x[:2] == y[:2] and np.allclose(x[2], y[2], rtol=0, atol=1e-9) for x, y in zip(a, b)
    )


def _yaml_names(doc: dict) -> list[str]:
    names = doc["names"]
    return list(names) if isinstance(names, list) else [names[k] for k in sorted(names)]


@pytest.mark.parametrize("kind", ["detection", "segmentation"])
def test_ultralytics_samples_match_plain_parsing(shared_data: Path, kind: str) -> None:
    root = shared_data / "formats" / "yolo" / kind
    names = _yaml_names(yaml.safe_load((root / "data.yaml").read_text()))
    ds = read_yolo(root)
    assert ds.format == "yolo" and ds.source == str(root)
    assert [lab.name for lab in ds.labels] == names
    images = sorted((root / "images" / "train").iterdir())
    assert [it.name for it in ds] == [p.name for p in images]
    for item, image in zip(ds, images):
        with Image.open(image) as im:
            assert item.size_hw == (im.size[1], im.size[0])
        assert item.subset == "train" and item.image.path == image
        expected = _expected(root / "labels" / "train" / f"{image.stem}.txt", image, names)
        assert _same([_ours(s) for s in item.shapes], expected)
    assert {s.kind for it in ds for s in it.shapes} == {"box" if kind == "detection" else "polygon"}
    assert ds.notes == ()


def test_roboflow_sample(shared_data: Path) -> None:
    root = shared_data / "formats" / "roboflow" / "yolo"
    doc = yaml.safe_load((root / "data.yaml").read_text())
    # the sample's entries point outside its folder, and val's folder is called val, not valid
    assert doc["train"] == "../train/images" and doc["val"] == "../valid/images"
    ds = read_yolo(root / "data.yaml")
    assert [lab.name for lab in ds.labels] == doc["names"]
    got = [(it.subset, it.name) for it in ds]
    assert got == [("train", "train_001.jpg"), ("train", "train_002.jpg"), ("val", "val_001.jpg")]
    for item in ds:
        image = root / item.subset / "images" / item.name
        expected = _expected(root / item.subset / "labels" / f"{Path(item.name).stem}.txt", image, doc["names"])
        assert _same([_ours(s) for s in item.shapes], expected)
    codes = [n.code for n in ds.notes]
    assert codes == ["split-path", "split-path"]


def test_sniff(shared_data: Path) -> None:
    assert sniff_yolo(shared_data / "formats" / "yolo" / "detection")
    assert sniff_yolo(shared_data / "formats" / "roboflow" / "yolo" / "data.yaml")
    assert not sniff_yolo(shared_data / "formats" / "cvat" / "all_shapes")
    assert not sniff_yolo(shared_data / "formats" / "cvat" / "all_shapes" / "annotations.xml")


# ---------------------------------------------------------------------------------------------
# Small exports written here
# ---------------------------------------------------------------------------------------------


def _export(root: Path, labels: dict[str, str], *, size_wh=(200, 100), names=("cavity", "loop"),
            yaml_text: str | None = None, images: bool = True) -> Path:
    for name, text in labels.items():
        stem = name.rsplit(".", 1)[0]
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        if text is not None:
            (root / "labels" / "train" / f"{stem}.txt").write_text(text)
        if images:
            (root / "images" / "train").mkdir(parents=True, exist_ok=True)
            Image.new("L", size_wh).save(root / "images" / "train" / name)
    if yaml_text is None:
        yaml_text = "path: .\ntrain: images/train\nnames:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    (root / "data.yaml").write_text(yaml_text)
    return root


def test_box_and_polygon_lines_in_one_file_are_read_line_by_line(tmp_path: Path) -> None:
    # Ultralytics would read this whole file as polygons (a line has > 6 fields); we read each line
    _export(tmp_path, {"a.png": "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.3 0.1 0.2 0.5 0.1 0.4\n\n1 0.25 0.75 0.5 0.5\n"})
    ds = read_yolo(tmp_path)
    kinds = [(s.kind, s.label) for s in ds[0].shapes]
    assert kinds == [("box", "loop"), ("polygon", "cavity"), ("box", "loop")]
    assert ds[0].shapes[0].xyxy == pytest.approx((80.0, 30.0, 120.0, 70.0))
    assert np.allclose(ds[0].shapes[1].points_xy, [[20, 10], [60, 10], [40, 50], [20, 40]])
    assert ds[0].shapes[2].xyxy == pytest.approx((0.0, 50.0, 100.0, 100.0))


def test_missing_and_empty_label_files_are_background_images(tmp_path: Path) -> None:
    _export(tmp_path, {"a.png": "", "b.png": None, "c.png": "0 0.5 0.5 0.1 0.1\n"})
    ds = read_yolo(tmp_path)
    assert [(it.name, len(it.shapes)) for it in ds] == [("a.png", 0), ("b.png", 0), ("c.png", 1)]
    notes = [n for n in ds.notes if n.code == "no-label-file"]
    assert len(notes) == 1 and "b.png" in notes[0].message


def test_label_without_image_is_skipped_or_found_with_images(tmp_path: Path) -> None:
    export = _export(tmp_path / "export", {"a.png": "0 0.5 0.5 0.1 0.1\n"}, images=False)
    ds = read_yolo(export)
    assert len(ds) == 0
    assert [n.code for n in ds.notes] == ["label-without-image"]
    assert "a.txt" in ds.notes[0].item
    elsewhere = tmp_path / "pictures"
    elsewhere.mkdir()
    Image.new("L", (40, 20)).save(elsewhere / "a.png")
    ds = read_yolo(export, images=elsewhere)
    assert len(ds) == 1 and ds[0].size_hw == (20, 40) and ds[0].image.path == elsewhere / "a.png"
    assert ds[0].shapes[0].xyxy == pytest.approx((18.0, 9.0, 22.0, 11.0))


def test_image_list_file_and_validation_key(tmp_path: Path) -> None:
    # CVAT's Ultralytics export: train.txt lists images relative to its folder with "./"
    _export(tmp_path, {"a.png": "0 0.5 0.5 0.2 0.2\n", "b.png": "1 0.5 0.5 0.2 0.2\n"},
            yaml_text="path: ./\ntrain: train.txt\nvalidation: images/train/b.png\nnames: [cavity, loop]\n")
    (tmp_path / "train.txt").write_text("./images/train/a.png\n./images/train/missing.png\nnotes.md\n")
    ds = read_yolo(tmp_path / "data.yaml")
    assert [(it.subset, it.name, it.shapes[0].label) for it in ds] == [("train", "a.png", "cavity"), ("val", "b.png", "loop")]
    assert {n.code for n in ds.notes} == {"missing-image", "not-an-image"}


def test_absolute_path_from_another_machine_falls_back(tmp_path: Path) -> None:
    _export(tmp_path, {"a.png": "0 0.5 0.5 0.2 0.2\n"},
            yaml_text="path: /content/datasets/nowhere\ntrain: images/train\nnames: [cavity]\n")
    ds = read_yolo(tmp_path)
    assert len(ds) == 1 and ds.notes[0].code == "path-fallback"


def test_bare_folder_with_classes_txt_and_without(tmp_path: Path) -> None:
    root = _export(tmp_path, {"a.png": "2 0.5 0.5 0.2 0.2\n"})
    (root / "data.yaml").unlink()
    ds = read_yolo(root)
    assert [lab.name for lab in ds.labels] == ["class_0", "class_1", "class_2"]
    assert ds[0].subset == "train" and "made-up-names" in [n.code for n in ds.notes]
    (root / "classes.txt").write_text("cavity\nloop\nprecipitate\n")
    ds = read_yolo(root)
    assert [lab.name for lab in ds.labels] == ["cavity", "loop", "precipitate"]
    assert ds[0].shapes[0].label == "precipitate"


def test_exif_orientation_is_noted(tmp_path: Path) -> None:
    _export(tmp_path, {"a.png": ""})
    exif = Image.Exif()
    exif[274] = 6
    Image.new("RGB", (30, 20)).save(tmp_path / "images" / "train" / "b.jpg", exif=exif)
    ds = read_yolo(tmp_path)
    assert [n.code for n in ds.notes if n.code == "exif-orientation"] == ["exif-orientation"]


# ---------------------------------------------------------------------------------------------
# Bad input: one ParseError per kind, naming the file and the line
# ---------------------------------------------------------------------------------------------

BAD_LINES = [
    ("0 0.5 0.5 0.2\n", r"a\.txt, line 1: expected 5 fields"),                          # 4 fields
    ("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2 0.9\n", r"a\.txt, line 2: .*got 6 .*confidence"),  # 6 fields
    ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n", r"a\.txt, line 1: .*got 8"),                     # even, >= 7
    ("0 0.5 1.5 0.2 0.2\n", r"a\.txt, line 1, column 7: expected a normalized coordinate in \[0, 1\]"),
    ("0 0.5 -0.01 0.2 0.2\n", r"a\.txt, line 1, column 7: expected a normalized coordinate"),
    ("0 0.5 abc 0.2 0.2\n", r"a\.txt, line 1, column 7: expected a number for field 3, got 'abc'"),
    ("0 0.5 nan 0.2 0.2\n", r"a\.txt, line 1, column 7: expected a number"),
    ("\n2 0.5 0.5 0.2 0.2\n", r"a\.txt, line 2, column 1: class index 2 is out of range"),
    ("x 0.5 0.5 0.2 0.2\n", r"a\.txt, line 1, column 1: expected a class index"),
    ("1.5 0.5 0.5 0.2 0.2\n", r"a\.txt, line 1, column 1: expected a class index"),
]


@pytest.mark.parametrize("text, match", BAD_LINES)
def test_bad_label_lines(tmp_path: Path, text: str, match: str) -> None:
    _export(tmp_path, {"a.png": text})
    with pytest.raises(ParseError, match=match):
        read_yolo(tmp_path)


def test_coordinates_within_tolerance_are_accepted_unchanged(tmp_path: Path) -> None:
    _export(tmp_path, {"a.png": "0 1.0000005 0.5 0.2 0.2\n"})
    assert read_yolo(tmp_path)[0].shapes[0].xyxy[2] == pytest.approx(1.0000005 * 200 + 20)


BAD_YAML = [
    ("path: .\ntrain: images/train\nnc_typo: 2\n", r"data\.yaml \(key 'names'\): missing key 'names'"),
    ("- train\n- val\n", r"data\.yaml, line 1: expected a mapping"),
    ("train: images/train\nnames: [a, b\n", r"data\.yaml, line 3, column 1: not valid YAML"),
    ("train: images/train\nnc: 3\nnames: [a, b]\n", r"data\.yaml, line 2 \(key 'nc'\): 'nc' is 3 but 'names' has 2"),
    ("train: images/train\nnames: [a, a]\n", r"data\.yaml, line 2 \(key 'names'\): the class name 'a'"),
    ("train: images/train\nnames:\n  0: a\n  2: b\n", r"data\.yaml, line 2 \(key 'names'\): expected class indices 0\.\.1"),
    ("train: images/train\nnames:\n  - a\n  - yes\n", r"data\.yaml, line 4 \(key 'names'\): expected a class name for class 1"),
    ("train: 3\nnames: [a]\n", r"data\.yaml, line 1 \(key 'train'\): expected a folder"),
    ("names: [a]\n", r"data\.yaml \(key 'train'\): expected at least one of the keys train, val, test"),
]


@pytest.mark.parametrize("text, match", BAD_YAML)
def test_bad_data_yaml(tmp_path: Path, text: str, match: str) -> None:
    _export(tmp_path, {"a.png": ""}, yaml_text=text)
    with pytest.raises(ParseError, match=match):
        read_yolo(tmp_path)


def test_nc_alone_names_classes_like_ultralytics(tmp_path: Path) -> None:
    _export(tmp_path, {"a.png": "1 0.5 0.5 0.1 0.1\n"}, yaml_text="train: images/train\nnc: 2\n")
    ds = read_yolo(tmp_path)
    assert [lab.name for lab in ds.labels] == ["class_0", "class_1"] and ds.notes[0].code == "made-up-names"


def test_not_a_yolo_folder(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="not a YOLO dataset"):
        read_yolo(tmp_path)
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ParseError, match="not a YOLO dataset: .*or a folder of .txt label files"):
        read_yolo(tmp_path)


# ---------------------------------------------------------------------------------------------
# A plain label folder (one .txt per image, the images elsewhere, no data.yaml), as published
# in-situ TEM data comes: "Annotation Data New/" beside "Raw Images/"
# ---------------------------------------------------------------------------------------------

#: Frames of one in-situ series, with a YOLO-seg polygon and a box each (size differs per frame).
IN_SITU = {
    "in-situ-Frame-2": ((320, 240), "0 0.10 0.20 0.30 0.20 0.20 0.40\n1 0.5 0.5 0.25 0.125\n"),
    "in-situ-Frame-10": ((160, 120), "1 0.25 0.75 0.5 0.25\n"),
    "in-situ-Frame-124": ((320, 240), ""),  # an empty label file: a frame without objects
}


def _plain(root: Path, *, with_images: bool = True) -> tuple[Path, Path]:
    labels, raw = root / "Annotation Data New", root / "Raw Images"
    labels.mkdir()
    raw.mkdir()
    for stem, (size_wh, text) in IN_SITU.items():
        (labels / f"{stem}.txt").write_text(text)
        if with_images:
            Image.new("L", size_wh).save(raw / f"{stem}.jpg")
    if with_images:
        Image.new("L", (64, 64)).save(raw / "in-situ-Frame-999.jpg")  # a frame nobody labeled
    return labels, raw


def test_a_plain_label_folder_pairs_labels_and_images_by_stem(tmp_path: Path) -> None:
    labels, raw = _plain(tmp_path)
    ds = read_yolo(labels, images=raw)
    assert ds.format == "yolo" and sorted(it.name for it in ds) == sorted(f"{s}.jpg" for s in IN_SITU)
    assert [lab.name for lab in ds.labels] == ["class_0", "class_1"]
    codes = [n.code for n in ds.notes]
    assert codes == ["made-up-names", "unlabeled-image"]
    assert "classes=" in str(ds.notes[0]) and "in-situ-Frame-999.jpg" in str(ds.notes[1])
    names = ["class_0", "class_1"]
    for item in ds:
        stem = item.name[:-4]
        assert item.image.path == raw / item.name and item.size_hw == IN_SITU[stem][0][::-1]
        assert _same([_ours(s) for s in item.shapes], _expected(labels / f"{stem}.txt", raw / item.name, names))
        assert len(item.shapes) == len(IN_SITU[stem][1].splitlines())
    assert {type(s) for it in ds for s in it.shapes} == {Box, Polygon}  # YOLO-seg polygons and boxes


@pytest.mark.parametrize("classes", ["bubble,loop", ["bubble", "loop"], {0: "bubble", 1: "loop"}])
def test_a_plain_label_folder_takes_its_class_names_from_classes(tmp_path: Path, classes) -> None:
    labels, raw = _plain(tmp_path)
    ds = read_yolo(labels, images=raw, classes=classes)
    assert [lab.name for lab in ds.labels] == ["bubble", "loop"]
    assert "made-up-names" not in [n.code for n in ds.notes]
    polygon = next(s for it in ds for s in it.shapes if isinstance(s, Polygon))
    assert polygon.label == "bubble"


def test_a_plain_label_folder_finds_classes_txt_or_data_yaml_names(tmp_path: Path) -> None:
    labels, raw = _plain(tmp_path)
    (tmp_path / "classes.txt").write_text("bubble\nloop\n")  # beside the label folder
    assert [lab.name for lab in read_yolo(labels, images=raw).labels] == ["bubble", "loop"]
    (tmp_path / "classes.txt").unlink()
    (tmp_path / "data.yaml").write_text("names: [cavity, dislocation loop]\n")  # names only, no splits
    ds = read_yolo(labels, images=raw)
    assert [lab.name for lab in ds.labels] == ["cavity", "dislocation loop"]
    ds = read_yolo(labels, images=raw, classes=["a", "b"])  # classes= wins, and says so
    assert [lab.name for lab in ds.labels] == ["a", "b"] and "classes-option" in [n.code for n in ds.notes]


def test_a_plain_label_folder_with_images_beside_the_labels(tmp_path: Path) -> None:
    labels, raw = _plain(tmp_path)
    for p in raw.glob("in-situ-Frame-1*.jpg"):
        shutil.move(p, labels / p.name)
    ds = read_yolo(labels)
    assert sorted(it.name for it in ds) == ["in-situ-Frame-10.jpg", "in-situ-Frame-124.jpg"]
    assert [n.code for n in ds.notes].count("label-without-image") == 1  # Frame-2's image is elsewhere


def test_a_plain_label_folder_is_detected_and_read_through_the_registry(tmp_path: Path) -> None:
    import defectlab

    labels, raw = _plain(tmp_path)
    assert defectlab.detect_format(labels) == "yolo"
    assert len(defectlab.read(labels, images=raw, classes="bubble,loop")) == 3
    assert not sniff_yolo(raw)  # images alone are not an export
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("Frames were recorded at 25 fps.\n")
    assert not sniff_yolo(tmp_path / "notes")


def test_a_plain_label_folder_without_its_images_or_with_too_few_names(tmp_path: Path) -> None:
    from defectlab.errors import ImageError

    labels, raw = _plain(tmp_path)
    with pytest.raises(ImageError, match=r"Annotation Data New: no image file for any of its label files.*images=DIR"):
        read_yolo(labels)
    with pytest.raises(ParseError, match=r"in-situ-Frame-2\.txt, line 2, column 1: class index 1 is out of range"):
        read_yolo(labels, images=raw, classes=["bubble"])
    for bad, match in (("", "class names"), (["a", "a"], "given twice"), ({1: "a"}, "indices 0..0")):
        with pytest.raises(ValueError, match=match):
            read_yolo(labels, images=raw, classes=bad)


def test_a_folder_of_several_exports_says_which_and_asks_to_pick_one(tmp_path: Path, shared_data: Path) -> None:
    import defectlab
    from defectlab.errors import FormatError

    for name in ("DL_for_Microscopy_Train_eg_lab.xml", "DL_for_Microscopy_Train_Lab_1.xml"):
        shutil.copyfile(shared_data / "workshop" / name, tmp_path / name)
    with pytest.raises(FormatError, match=r"holds several exports: DL_for_Microscopy_Train_eg_lab\.xml \(cvat\), "
                                          r"DL_for_Microscopy_Train_Lab_1\.xml \(cvat\); pick one: read "):
        defectlab.read(tmp_path)
    with pytest.raises(ParseError, match=r"found several XML files: .*; pick one: read .*Lab_1\.xml"):
        defectlab.read(tmp_path, format="cvat")
    assert len(defectlab.read(tmp_path / "DL_for_Microscopy_Train_Lab_1.xml")) >= 1


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

W, H = 1024, 768  # not square: a swapped axis shows


def _image(folder: Path, name: str, size_wh=(W, H)) -> ImageSource:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("L", size_wh, 128).save(folder / name)
    return ImageSource(folder / name)


def _centers(size_hw) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0 : size_hw[0], 0 : size_hw[1]]
    return cols + 0.5, rows + 0.5


def _pixels_polygon(points: np.ndarray, size_hw) -> np.ndarray:
    x, y = _centers(size_hw)
    return points_in_poly(np.stack([x.ravel(), y.ravel()], 1), points).reshape(size_hw)


def _pixels_ellipse(cx, cy, rx, ry, size_hw) -> np.ndarray:
    x, y = _centers(size_hw)
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1


def _bounds(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(mask)
    return float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)


def _rot_corners(x1, y1, x2, y2, deg) -> np.ndarray:
    cx, cy, t = (x1 + x2) / 2, (y1 + y2) / 2, math.radians(deg)
    pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]) - [cx, cy]
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return pts @ rot.T + [cx, cy]


POLY = np.array([[100.3, 200.7], [300.2, 180.1], [350.9, 400.4], [120.6, 380.2]])
TRI = np.array([[600.25, 100.75], [700.1, 90.3], [650.7, 150.2]])
ELL = dict(cx=800.3, cy=500.2, rx=40.4, ry=25.1)
BOX = (400.3, 500.6, 520.2, 560.9, 30.0)


def _dataset(tmp_path: Path) -> Dataset:
    shapes_a = (
        Polygon(label="precipitate", points_xy=POLY),
        Ellipse(label="cavity", **ELL),
        Box(label="loop", xyxy=BOX[:4], rotation_deg=BOX[4]),
        Polygon(label="cavity", points_xy=TRI),
    )
    items = (
        Item("a.png", (H, W), shapes_a, image=_image(tmp_path / "src", "a.png"), subset="Train"),
        Item("b.png", (H, W), (Ellipse(label="cavity", cx=50.5, cy=60.2, rx=10.3, ry=10.3),),
             image=_image(tmp_path / "src", "b.png"), subset="Validation"),
        Item("c.png", (H, W), (), image=_image(tmp_path / "src", "c.png"), subset="Train"),
    )
    return Dataset((Label("cavity"), Label("loop"), Label("precipitate")), items)


def test_segment_round_trip_keeps_geometry(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    report = write_yolo(ds, tmp_path / "out", task="segment")
    assert report.n_items == 3 and report.n_instances == 5
    back = read_yolo(tmp_path / "out")
    assert [lab.name for lab in back.labels] == ["cavity", "loop", "precipitate"]
    assert [(it.subset, it.name, len(it.shapes)) for it in back] == [("train", "a.png", 4), ("train", "c.png", 0), ("val", "b.png", 1)]
    a = back[0]
    assert [(s.kind, s.label) for s in a.shapes] == [("polygon", "precipitate"), ("polygon", "cavity"),
                                                     ("polygon", "loop"), ("polygon", "cavity")]
    assert np.abs(a.shapes[0].points_xy - POLY).max() <= 0.001  # 6 decimals of 1024 px: <= 0.000512 px
    assert np.abs(a.shapes[3].points_xy - TRI).max() <= 0.001
    assert np.abs(a.shapes[2].points_xy - _rot_corners(*BOX)).max() <= 0.001
    ell = a.shapes[1]
    assert ell.area() == pytest.approx(math.pi * ELL["rx"] * ELL["ry"], rel=1e-4)
    u = (ell.points_xy[:, 0] - ELL["cx"]) / ELL["rx"]
    v = (ell.points_xy[:, 1] - ELL["cy"]) / ELL["ry"]
    assert np.all(np.abs(np.hypot(u, v) - 1) < 0.01)


def test_detect_boxes_are_pixel_bounds(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    write_yolo(ds, tmp_path / "out", task="detect")
    back = read_yolo(tmp_path / "out")
    size = (H, W)
    expected = [
        ("precipitate", _bounds(_pixels_polygon(POLY, size))),
        ("cavity", _bounds(_pixels_ellipse(ELL["cx"], ELL["cy"], ELL["rx"], ELL["ry"], size))),
        ("loop", _bounds(_pixels_polygon(_rot_corners(*BOX), size))),
        ("cavity", _bounds(_pixels_polygon(TRI, size))),
    ]
    got = [(s.label, s.xyxy) for s in back[0].shapes]
    assert [g[0] for g in got] == [e[0] for e in expected]
    for (_, g), (_, e) in zip(got, expected):
        assert np.abs(np.array(g) - e).max() <= 0.001
    assert back[2].shapes[0].xyxy == pytest.approx(_bounds(_pixels_ellipse(50.5, 60.2, 10.3, 10.3, size)), abs=1e-3)


def test_layout_follows_ultralytics_rules(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_yolo(_dataset(tmp_path), out, task="segment")
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["names"] == {0: "cavity", 1: "loop", 2: "precipitate"} and doc["nc"] == 3
    assert (doc["train"], doc["val"]) == ("images/train", "images/val") and "test" not in doc
    assert Path(doc["path"]) == out.absolute()
    images = sorted(str(p) for p in (out / "images").rglob("*") if p.is_file())
    assert [Path(p).relative_to(out).as_posix() for p in images] == ["images/train/a.png", "images/train/c.png",
                                                                      "images/val/b.png"]
    labels = img2label_paths(images)
    assert sorted(labels) == sorted(str(p) for p in (out / "labels").rglob("*.txt"))
    for key in ("train", "val"):  # what Ultralytics' check_det_dataset resolves: path / entry
        assert (Path(doc["path"]) / doc[key]).is_dir()
    number = re.compile(r"^\d\.\d{6}$")
    for label in labels:
        for line in Path(label).read_text().splitlines():
            cls, *values = line.split()
            assert cls.isdigit() and all(number.match(v) for v in values)
    assert Path(labels[1]).read_text() == ""  # c.png: no objects, an empty label file


def test_write_notes_what_yolo_cannot_hold(tmp_path: Path) -> None:
    ring = np.zeros((20, 20), bool)
    ring[2:18, 2:18] = True
    ring[6:14, 6:14] = False  # a hole
    two = np.zeros((10, 30), bool)
    two[1:5, 1:5] = two[2:8, 20:28] = True  # two parts
    shapes = (
        Points(label="cavity", points_xy=[(5, 5)]),
        Tag(label="cavity"),
        Polyline(label="line", points_xy=[(10.2, 300.5), (200.7, 310.1)]),
        Mask(label="cavity", bitmap=ring, left=500, top=100),
        Mask(label="cavity", bitmap=two, left=700, top=300),
        Polygon(label="cavity", points_xy=[(-50.3, 600.2), (80.1, 650.7), (-20.6, 740.4)]),  # partly outside
        Ellipse(label="cavity", cx=900.2, cy=100.2, rx=0.1, ry=0.1),  # covers no pixel center
    )
    ds = Dataset((Label("cavity"), Label("line")),
                 (Item("a.png", (H, W), shapes, image=_image(tmp_path / "src", "a.png")),))
    report = write_yolo(ds, tmp_path / "seg", task="segment", line_width=3.0)
    codes = sorted(n.code for n in report.notes)
    assert codes == sorted(["skipped-points", "skipped-tag", "holes-dropped", "split-instance", "clipped-to-image",
                            "degenerate-shape", "polyline-as-area", "val-is-train"])
    assert report.n_instances == 5  # polyline, ring, 2 parts, clipped polygon
    back = read_yolo(tmp_path / "seg")
    assert [s.label for s in back[0].shapes] == ["line", "cavity", "cavity", "cavity", "cavity"]
    # the clipped polygon covers the same pixel centers inside the image as the original
    original = np.array([(-50.3, 600.2), (80.1, 650.7), (-20.6, 740.4)])
    assert np.array_equal(_pixels_polygon(back[0].shapes[4].points_xy, (H, W)), _pixels_polygon(original, (H, W)))
    # a traced mask covers its pixels: the ring's outline covers the 16 x 16 square, hole filled
    filled = np.zeros((H, W), bool)
    filled[102:118, 502:518] = True
    assert np.array_equal(_pixels_polygon(back[0].shapes[1].points_xy, (H, W)), filled)
    det = write_yolo(ds, tmp_path / "det", task="detect")
    assert sorted(n.code for n in det.notes) == sorted(["skipped-points", "skipped-tag", "degenerate-instance",
                                                        "polyline-as-area", "val-is-train"])
    assert det.n_instances == 4  # polyline, ring, two-part mask as one box (as Mask R-CNN targets), polygon


def test_write_refuses_what_it_cannot_place(tmp_path: Path) -> None:
    img = _image(tmp_path / "src", "a.png")
    odd = Dataset((Label("cavity"),), (Item("a.png", (H, W), (), image=img, subset="holdout"),))
    with pytest.raises(DatasetError, match="subset 'holdout' has no YOLO split"):
        write_yolo(odd, tmp_path / "out")
    clash = Dataset((Label("cavity"),), (Item("a.png", (H, W), (), image=img, subset="Train"),
                                         Item("a.png", (H, W), (), image=img, subset="train")))
    with pytest.raises(DatasetError, match="train/a"):
        write_yolo(clash, tmp_path / "out")
    with pytest.raises(ValueError, match="task"):
        write_yolo(odd, tmp_path / "out", task="pose")
    ok = Dataset((Label("cavity"),), (Item("a.png", (H, W), (), image=img),))
    write_yolo(ok, tmp_path / "out")
    with pytest.raises(OutputError, match="not empty"):
        write_yolo(ok, tmp_path / "out")
    write_yolo(ok, tmp_path / "out", overwrite=True)


def test_labels_only_and_moved_folder(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    write_yolo(ds, tmp_path / "labels_only", task="detect", copy_images=False)
    assert not (tmp_path / "labels_only" / "images").exists()
    assert len(list((tmp_path / "labels_only" / "labels").rglob("*.txt"))) == 3
    back = read_yolo(tmp_path / "labels_only", images=tmp_path / "src")
    assert sorted(it.name for it in back) == ["a.png", "b.png", "c.png"]
    # a written dataset moved elsewhere still reads (its absolute 'path' is gone: a note)
    write_yolo(ds, tmp_path / "first", task="detect")
    shutil.move(tmp_path / "first", tmp_path / "moved")
    back = read_yolo(tmp_path / "moved")
    assert len(back) == 3 and back.notes[0].code == "path-fallback"


# ---------------------------------------------------------------------------------------------
# Property: any polygon inside the image survives a segment round trip within 0.001 px
# ---------------------------------------------------------------------------------------------

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_xy = st.tuples(st.floats(0, W, allow_nan=False), st.floats(0, H, allow_nan=False))


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("picture")
    Image.new("L", (W, H)).save(folder / "p.png")
    return folder


@settings(max_examples=30, deadline=None)
@given(points=st.lists(_xy, min_size=3, max_size=12))
@example(points=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0)])  # the center (0.5, 0.5) lies on the right edge
def test_property_polygon_round_trip(picture: Path, tmp_path_factory, points) -> None:
    pts = np.array(points)
    # even-odd: a subset of the non-zero fill written; centers lying exactly on an edge are left
    # out, since which side gets them is a tie rule (see defectlab.raster.shapes), not geometry
    x, y = _centers((H, W))
    centers = np.stack([x.ravel(), y.ravel()], 1)
    a, b = pts, np.roll(pts, -1, axis=0)
    d = b - a
    t = np.clip(((centers[:, None] - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-300), 0, 1)
    dist = np.hypot(*(centers[:, None] - (a + t[..., None] * d)).transpose(2, 0, 1)).min(1)
    covered = (points_in_poly(centers, pts) & (dist > 1e-9)).any()
    ds = Dataset((Label("cavity"),), (Item("p.png", (H, W), (Polygon(label="cavity", points_xy=pts),)),))
    out = tmp_path_factory.mktemp("rt") / "yolo"
    report = write_yolo(ds, out, task="segment", copy_images=False)
    back = read_yolo(out, images=picture)
    if back[0].shapes:
        (shape,) = back[0].shapes
        assert np.abs(shape.points_xy - pts).max() <= 0.001
    else:  # degenerate (no pixel center inside): a note, nothing written
        assert not covered and "degenerate-shape" in [n.code for n in report.notes]
