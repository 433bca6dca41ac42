"""Label mask images in, instance TIFFs out.

Every expected value is computed here, independently of the code under test: objects are
drawn with numpy / ``skimage.draw`` and written with PIL / tifffile, CVAT's "Segmentation
mask 1.1" export is built by hand (its instance colors are the published Pascal VOC colormap
values), and the instance TIFF is compared with a painting done in this file.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage.draw import disk

import defectlab
from defectlab.errors import DatasetError, ImageError, ParseError
from defectlab.formats.mask_images import read_masks, sniff_masks, voc_colormap, write_instance_tiffs
from defectlab.model import Box, Dataset, Ellipse, ImageSource, Item, Label, Mask, Points, Polygon, Polyline

# Pascal VOC colormap, indices 1..5 (as published with the VOC devkit)
VOC = {1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 5: (128, 0, 128)}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def disc(size_hw, row, col, radius):
    out = np.zeros(size_hw, bool)
    out[disk((row, col), radius, shape=size_hw)] = True
    return out


def rect(size_hw, r0, r1, c0, c1):
    out = np.zeros(size_hw, bool)
    out[r0:r1, c0:c1] = True
    return out


def full(shape: Mask, size_hw) -> np.ndarray:
    out = np.zeros(size_hw, bool)
    h, w = shape.bitmap.shape
    out[shape.top : shape.top + h, shape.left : shape.left + w] = shape.bitmap
    return out


def objects(item: Item) -> list[tuple[str, tuple[int, ...]]]:
    """(label, flat pixel indices) of every Mask of an item, sorted, checking tight crops."""
    out = []
    for s in item.shapes:
        assert isinstance(s, Mask)
        bm = s.bitmap
        assert bm.any(axis=1)[0] and bm.any(axis=1)[-1] and bm.any(axis=0)[0] and bm.any(axis=0)[-1]
        out.append((s.label, tuple(np.flatnonzero(full(s, item.size_hw)).tolist())))
    return sorted(out)


def expect(*pairs) -> list[tuple[str, tuple[int, ...]]]:
    return sorted((label, tuple(np.flatnonzero(m).tolist())) for label, m in pairs)


def save_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def codes(ds) -> list[str]:
    return [n.code for n in ds.notes]


# ---------------------------------------------------------------------------------------------
# class, binary and instance images
# ---------------------------------------------------------------------------------------------

HW = (40, 60)


def class_scene():
    a = disc(HW, 10, 10, 5)            # cavity
    b = disc(HW, 28, 45, 6)            # cavity
    c = rect(HW, 5, 15, 15, 24)        # loop, side by side with disc a (a reaches col 14)
    d1 = rect(HW, 25, 30, 5, 10)       # loop, two squares meeting at one corner
    d2 = rect(HW, 30, 35, 10, 15)
    klass = np.zeros(HW, np.uint8)
    klass[a | b] = 1
    klass[c | d1 | d2] = 2
    return klass, a, b, c, d1, d2


def test_class_image_connected_regions_per_class(tmp_path):
    klass, a, b, c, d1, d2 = class_scene()
    save_png(tmp_path / "m" / "img.png", klass)
    ds = read_masks(tmp_path / "m", classes={1: "cavity", 2: "loop"})
    assert ds.format == "masks" and [lab.name for lab in ds.labels] == ["cavity", "loop"]
    (item,) = ds.items
    assert item.size_hw == HW and item.name == "img.png"
    # 8-connected: the corner-touching squares are one object; touching classes stay apart
    assert objects(item) == expect(("cavity", a), ("cavity", b), ("loop", c), ("loop", d1 | d2))
    four = read_masks(tmp_path / "m", classes={1: "cavity", 2: "loop"}, connectivity=1)
    assert objects(four[0]) == expect(("cavity", a), ("cavity", b), ("loop", c), ("loop", d1), ("loop", d2))
    assert "mask-kind" in codes(ds) and "missing-image" in codes(ds)


def test_class_image_default_names_and_colors_from_classes_json(tmp_path):
    klass, *_ = class_scene()
    klass[0:3, 50:53] = 7  # a class nobody named
    save_png(tmp_path / "img.png", klass)
    (tmp_path / "classes.json").write_text(json.dumps(
        {"0": {"name": "background"}, "1": {"name": "cavity", "color": "#61b21f", "edge": "inner"}, "2": "loop"}))
    ds = read_masks(tmp_path)
    assert [(lab.name, lab.color, lab.edge) for lab in ds.labels] == [
        ("cavity", "#61b21f", "inner"), ("loop", None, None), ("class_7", None, None)]
    assert [s.label for s in ds[0].shapes].count("class_7") == 1


def test_touching_defects_of_one_class_merge_in_a_class_image(tmp_path):
    left, right = rect(HW, 5, 15, 5, 15), rect(HW, 5, 15, 15, 25)  # share an edge
    save_png(tmp_path / "a.png", (left | right).astype(np.uint8))
    ds = read_masks(tmp_path)
    assert objects(ds[0]) == expect(("class_1", left | right))


@pytest.mark.parametrize("fg", [255, 1, True])
def test_binary_images(tmp_path, fg):
    a, b = disc(HW, 10, 10, 4), rect(HW, 20, 30, 30, 50)
    arr = np.zeros(HW, bool if fg is True else np.uint8)
    arr[a | b] = fg
    save_png(tmp_path / "bin.png", arr)
    ds = read_masks(tmp_path, classes={1: "precipitate"})
    assert objects(ds[0]) == expect(("precipitate", a), ("precipitate", b))
    assert [lab.name for lab in ds.labels] == ["precipitate"]


def test_binary_kind_reads_any_nonzero_as_foreground(tmp_path):
    arr = np.zeros(HW, np.uint8)
    a, b = rect(HW, 2, 6, 2, 6), rect(HW, 2, 6, 6, 10)
    arr[a], arr[b] = 3, 9
    save_png(tmp_path / "x.png", arr)
    assert objects(read_masks(tmp_path, kind="binary")[0]) == expect(("class_1", a | b))


def instance_scene():
    ids = np.zeros(HW, np.int32)
    a, b = rect(HW, 5, 15, 5, 15), rect(HW, 5, 15, 15, 25)   # touching, distinct ids
    c = disc(HW, 28, 40, 7)
    d = rect(HW, 30, 34, 2, 6) | rect(HW, 30, 34, 50, 55)     # one id, two parts
    ids[a], ids[b], ids[c], ids[d] = 3, 70_000, 5, 1_000_000
    return ids, a, b, c, d


def test_instance_tiff_one_mask_per_id(tmp_path):
    ids, a, b, c, d = instance_scene()
    tifffile.imwrite(tmp_path / "cells.tif", ids)
    ds = read_masks(tmp_path)
    (item,) = ds.items
    assert len(item.shapes) == 4
    assert objects(item) == expect(("object", a), ("object", b), ("object", c), ("object", d))
    assert [lab.name for lab in ds.labels] == ["object"]
    # one named class: every instance gets it
    named = read_masks(tmp_path / "cells.tif", classes={1: "cavity"})
    assert {s.label for s in named[0].shapes} == {"cavity"}


def test_cellpose_masks_beside_their_images_uint16_png(tmp_path):
    ids, a, b, c, d = instance_scene()
    ids[ids > 60_000] = 9  # uint16
    save_png(tmp_path / "img_cp_masks.png", ids.astype(np.uint16))
    save_png(tmp_path / "img.png", np.full(HW, 100, np.uint8))
    ds = read_masks(tmp_path)
    (item,) = ds.items
    assert item.name == "img.png" and item.image == ImageSource(tmp_path / "img.png")
    assert objects(item) == expect(("object", a), ("object", b | d), ("object", c))
    assert "missing-image" not in codes(ds)


def test_stardist_layout_masks_folder_of_16_bit_tiffs(tmp_path):
    ids, a, b, c, d = instance_scene()
    ids[ids > 60_000] = 9
    (tmp_path / "train" / "masks").mkdir(parents=True)
    (tmp_path / "train" / "images").mkdir()
    tifffile.imwrite(tmp_path / "train" / "masks" / "img_01.tif", ids.astype(np.uint16))
    tifffile.imwrite(tmp_path / "train" / "images" / "img_01.tif", np.zeros(HW, np.uint16))
    ds = read_masks(tmp_path / "train")
    assert ds[0].name == "img_01.tif" and ds[0].image == ImageSource(tmp_path / "train" / "images" / "img_01.tif")
    assert objects(ds[0]) == expect(("object", a), ("object", b | d), ("object", c))


def test_uint8_instance_images_need_kind_instance(tmp_path):
    ids = np.zeros(HW, np.uint8)
    a, b = rect(HW, 5, 15, 5, 15), rect(HW, 5, 15, 15, 25)
    ids[a], ids[b] = 1, 2
    save_png(tmp_path / "a.png", ids)
    assert objects(read_masks(tmp_path, kind="instance")[0]) == expect(("object", a), ("object", b))
    auto = read_masks(tmp_path)
    assert objects(auto[0]) == expect(("class_1", a), ("class_2", b))
    assert any("kind='instance'" in n.message for n in auto.notes if n.code == "mask-kind")


def test_instances_take_the_majority_class_of_the_class_image(tmp_path):
    ids, a, b, c, d = instance_scene()
    klass = np.zeros(HW, np.uint8)
    klass[a | b] = 1
    klass[c] = 2
    klass[d] = 2
    klass[np.nonzero(c)[0][:3], np.nonzero(c)[1][:3]] = 1  # 3 pixels of c disagree
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "labels" / "img.tif", ids)
    save_png(tmp_path / "masks" / "img.png", klass)
    (tmp_path / "classes.json").write_text(json.dumps({"1": "cavity", "2": "loop"}))
    ds = read_masks(tmp_path)
    assert objects(ds[0]) == expect(("cavity", a), ("cavity", b), ("loop", c), ("loop", d))
    mixed = [n for n in ds.notes if n.code == "mixed-class-instance"]
    assert len(mixed) == 1 and "cavity: 3 px" in mixed[0].message


def test_images_found_by_stem_in_images_argument(tmp_path):
    klass, *_ = class_scene()
    save_png(tmp_path / "masks" / "sub" / "a.png", klass)
    save_png(tmp_path / "pics" / "sub" / "a.tif", np.zeros(HW, np.uint8))
    ds = read_masks(tmp_path, images=tmp_path / "pics")
    assert ds[0].name == "sub/a.tif" and ds[0].image == ImageSource(tmp_path / "pics" / "sub" / "a.tif")
    with pytest.raises(ImageError, match="nowhere"):
        read_masks(tmp_path, images=tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# CVAT "Segmentation mask 1.1"
# ---------------------------------------------------------------------------------------------

CVAT_HW = (30, 40)
CAVITY, LOOP = (250, 50, 83), (51, 221, 255)


def build_cvat_export(root: Path, *, with_objects: bool = True) -> dict:
    """A CVAT Segmentation mask 1.1 export, written the way CVAT (datumaro) writes one."""
    inst1 = rect(CVAT_HW, 2, 8, 2, 8)        # cavity
    inst2 = rect(CVAT_HW, 2, 8, 8, 12)       # cavity, touching inst1
    inst3 = disc(CVAT_HW, 18, 25, 5)         # loop
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncavity:250,50,83::\nloop:51,221,255::\n")
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("img1\nimg2\nimg3\n")
    cls = np.zeros((*CVAT_HW, 3), np.uint8)
    cls[inst1 | inst2] = CAVITY
    cls[inst3] = LOOP
    save_png(root / "SegmentationClass" / "img1.png", cls)
    if with_objects:
        obj = np.zeros((*CVAT_HW, 3), np.uint8)
        obj[inst1], obj[inst2], obj[inst3] = VOC[1], VOC[2], VOC[3]
        save_png(root / "SegmentationObject" / "img1.png", obj)
    (root / "JPEGImages").mkdir()
    Image.fromarray(np.full(CVAT_HW, 90, np.uint8)).save(root / "JPEGImages" / "img1.jpg")
    Image.fromarray(np.full((12, 16), 90, np.uint8)).save(root / "JPEGImages" / "img2.jpg")
    return {"inst1": inst1, "inst2": inst2, "inst3": inst3}


def test_voc_colormap_matches_the_published_colors():
    cmap = voc_colormap()
    assert {k: tuple(cmap[k].tolist()) for k in VOC} == VOC
    assert tuple(cmap[255].tolist()) == (224, 224, 192) and tuple(cmap[15].tolist()) == (192, 128, 128)


def test_cvat_segmentation_mask_instances(tmp_path):
    o = build_cvat_export(tmp_path / "export")
    ds = read_masks(tmp_path / "export")
    assert [(lab.name, lab.color) for lab in ds.labels] == [("cavity", "#fa3253"), ("loop", "#33ddff")]
    assert [it.name for it in ds.items] == ["img1.jpg", "img2.jpg"]
    img1, img2 = ds.items
    assert img1.size_hw == CVAT_HW and img1.image == ImageSource(tmp_path / "export" / "JPEGImages" / "img1.jpg")
    assert objects(img1) == expect(("cavity", o["inst1"]), ("cavity", o["inst2"]), ("loop", o["inst3"]))
    # listed without masks: an empty item sized by its image; img3 has neither -> noted
    assert img2.shapes == () and img2.size_hw == (12, 16)
    assert [n.item for n in ds.notes if n.code == "no-mask"] == ["img3"]
    # as a class image only, the touching cavities are one object
    cls = read_masks(tmp_path / "export", kind="class")
    assert objects(cls[0]) == expect(("cavity", o["inst1"] | o["inst2"]), ("loop", o["inst3"]))


def test_cvat_segmentation_mask_zip(tmp_path):
    o = build_cvat_export(tmp_path / "export")
    archive = tmp_path / "task.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((tmp_path / "export").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(tmp_path / "export").as_posix())
    ds = read_masks(archive)
    assert objects(ds[0]) == expect(("cavity", o["inst1"]), ("cavity", o["inst2"]), ("loop", o["inst3"]))
    assert ds[0].image == ImageSource(archive, "JPEGImages/img1.jpg")
    assert sniff_masks(archive)


def test_cvat_class_masks_only_and_subsets(tmp_path):
    o = build_cvat_export(tmp_path, with_objects=False)
    (tmp_path / "ImageSets" / "Segmentation" / "default.txt").unlink()
    (tmp_path / "ImageSets" / "Segmentation" / "Train.txt").write_text("img1\n")
    ds = read_masks(tmp_path)
    assert [(it.name, it.subset) for it in ds.items] == [("img1.jpg", "Train")]
    assert objects(ds[0]) == expect(("cavity", o["inst1"] | o["inst2"]), ("loop", o["inst3"]))


def test_cvat_one_channel_masks_hold_labelmap_line_indices(tmp_path):
    o = build_cvat_export(tmp_path, with_objects=False)
    gray = np.zeros(CVAT_HW, np.uint8)
    gray[o["inst1"] | o["inst2"]], gray[o["inst3"]] = 1, 2   # lines: background, cavity, loop
    save_png(tmp_path / "SegmentationClass" / "img1.png", gray)
    assert objects(read_masks(tmp_path)[0]) == expect(("cavity", o["inst1"] | o["inst2"]), ("loop", o["inst3"]))


def test_cvat_void_pixels_are_not_objects(tmp_path):
    o = build_cvat_export(tmp_path)
    ring = disc(CVAT_HW, 18, 25, 6) & ~o["inst3"]
    for folder in ("SegmentationClass", "SegmentationObject"):
        arr = np.asarray(Image.open(tmp_path / folder / "img1.png")).copy()
        arr[ring] = (224, 224, 192)
        save_png(tmp_path / folder / "img1.png", arr)
    ds = read_masks(tmp_path)
    assert objects(ds[0]) == expect(("cavity", o["inst1"]), ("cavity", o["inst2"]), ("loop", o["inst3"]))
    assert f"{int(ring.sum())} pixels" in next(n.message for n in ds.notes if n.code == "void-pixels")


def test_cvat_without_labelmap_uses_the_voc_labels(tmp_path):
    o = build_cvat_export(tmp_path)
    (tmp_path / "labelmap.txt").unlink()
    cls = np.zeros((*CVAT_HW, 3), np.uint8)
    cls[o["inst1"] | o["inst2"] | o["inst3"]] = (192, 128, 128)  # VOC "person" (index 15)
    save_png(tmp_path / "SegmentationClass" / "img1.png", cls)
    ds = read_masks(tmp_path)
    assert {s.label for s in ds[0].shapes} == {"person"} and "no-labelmap" in codes(ds)


# ---------------------------------------------------------------------------------------------
# defectlab's own outputs: unet masks, instance TIFFs
# ---------------------------------------------------------------------------------------------


def make_dataset(tmp_path) -> Dataset:
    size = (48, 64)
    items = []
    for k in range(2):
        img = save_png(tmp_path / "src" / f"img{k}.png", np.full(size, 50 + k, np.uint8))
        items.append(Item(f"img{k}.png", size, (
            Ellipse(label="cavity", cx=10.3 + k, cy=12.2, rx=5.5, ry=4.1, rotation_deg=20),
            Ellipse(label="cavity", cx=19.0, cy=12.5, rx=4.0, ry=4.0),      # overlaps the first
            Polygon(label="loop", points_xy=[(30.2, 5.1), (45.7, 8.3), (40.1, 22.9)], z_order=1),
            Box(label="loop", xyxy=(35.0, 15.0, 50.0, 30.0), rotation_deg=15),
            Polyline(label="line", points_xy=[(5.0, 40.5), (58.0, 38.0)]),
            Points(label="cavity", points_xy=[(3.0, 3.0)]),
        ), image=ImageSource(img)))
    labels = (Label("cavity", color="#61b21f", edge="inner"), Label("loop", color="#aa00ff"), Label("line"))
    return Dataset(labels, tuple(items))


def paint_by_name(item: Item) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for s in item.shapes:
        out.setdefault(s.label, np.zeros(item.size_hw, bool))
        out[s.label] |= full(s, item.size_hw)
    return out


def test_unet_output_reads_back_to_the_same_class_pixels(tmp_path):
    ds = make_dataset(tmp_path)
    defectlab.write_unet(ds, tmp_path / "unet")
    back = read_masks(tmp_path / "unet")
    assert sniff_masks(tmp_path / "unet")
    assert [(lab.name, lab.color, lab.edge) for lab in back.labels] == [
        ("cavity", "#61b21f", "inner"), ("loop", "#aa00ff", None), ("line", "#2ca02c", None)]
    index = ds.class_index()
    for orig, item in zip(ds.items, back.items):
        assert item.name == orig.name and item.image == ImageSource(tmp_path / "unet" / "images" / orig.name)
        semantic = defectlab.semantic_mask(orig, index)
        painted = paint_by_name(item)
        for name, value in index.items():
            assert np.array_equal(painted.get(name, np.zeros(orig.size_hw, bool)), semantic == value), name
    # one mask file of the output, pointed at directly, finds classes.json and images/ above it
    one = read_masks(tmp_path / "unet" / "masks" / "img1.png")
    assert one[0].image == ImageSource(tmp_path / "unet" / "images" / "img1.png")
    assert [lab.name for lab in one.labels] == ["cavity", "loop", "line"]
    assert objects(one[0]) == objects(back[1])


def in_disc(size_hw, cx, cy, r):
    rows, cols = np.mgrid[0 : size_hw[0], 0 : size_hw[1]]
    return (cols + 0.5 - cx) ** 2 + (rows + 0.5 - cy) ** 2 <= r * r


def in_box(size_hw, x1, y1, x2, y2):
    rows, cols = np.mgrid[0 : size_hw[0], 0 : size_hw[1]]
    return (cols + 0.5 >= x1) & (cols + 0.5 < x2) & (rows + 0.5 >= y1) & (rows + 0.5 < y2)


def overlap_dataset(tmp_path, *, image=True):
    size = (32, 64)
    img = save_png(tmp_path / "src" / "scene.png", np.zeros(size, np.uint8)) if image else None
    shapes = (
        Ellipse(label="cavity", cx=10, cy=10, rx=5, ry=5, z_order=1),   # on top of the next box
        Points(label="cavity", points_xy=[(1, 1)]),                     # not an instance
        Box(label="loop", xyxy=(5, 5, 14, 9)),
        Ellipse(label="cavity", cx=30, cy=12, rx=4, ry=4),
        Box(label="loop", xyxy=(28, 9, 33, 15), z_order=2),             # covers part of the disc
        Ellipse(label="cavity", cx=50, cy=20, rx=2, ry=2),              # fully covered by the next
        Box(label="loop", xyxy=(46, 16, 54, 24)),
    )
    geometry = {  # the pixels of each shape by the center rule, computed here
        0: in_disc(size, 10, 10, 5), 2: in_box(size, 5, 5, 14, 9), 3: in_disc(size, 30, 12, 4),
        4: in_box(size, 28, 9, 33, 15), 5: in_disc(size, 50, 20, 2), 6: in_box(size, 46, 16, 54, 24),
    }
    item = Item("scene.png", size, shapes, image=ImageSource(img) if img else None, subset="Train")
    return Dataset((Label("cavity"), Label("loop")), (item,)), geometry


def independent_painting(item: Item, geometry: dict[int, np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Paint by z_order (ties: file order), then number the visible instances 1..N in that order."""
    order = sorted(geometry, key=lambda i: (item.shapes[i].z_order, i))
    by_shape = np.zeros(item.size_hw, np.int64)
    for i in order:
        by_shape[geometry[i]] = i + 1
    visible = [i for i in order if (by_shape == i + 1).any()]
    out = np.zeros(item.size_hw, np.int32)
    for new_id, i in enumerate(visible, start=1):
        out[by_shape == i + 1] = new_id
    return out, visible


def test_write_instance_tiffs_equals_an_independent_painting(tmp_path):
    ds, geometry = overlap_dataset(tmp_path)
    report = write_instance_tiffs(ds, tmp_path / "out")
    expected, visible = independent_painting(ds[0], geometry)
    assert visible == [2, 3, 6, 0, 4]  # shape 5 is hidden under shape 6
    tif = tifffile.imread(tmp_path / "out" / "labels" / "Train" / "scene.tif")
    assert tif.dtype == np.int32 and np.array_equal(tif, expected)
    assert report.n_instances == 5 and report.n_items == 1
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "instances.csv").read_text())))
    assert [(r["image"], int(r["instance_id"]), int(r["class_id"]), r["label"]) for r in rows] == [
        ("Train/scene", k, {"cavity": 1, "loop": 2}[ds[0].shapes[i].label], ds[0].shapes[i].label)
        for k, i in enumerate(visible, start=1)
    ]
    classes = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert [classes[k]["name"] for k in ("1", "2")] == ["cavity", "loop"]
    assert (tmp_path / "out" / "images" / "Train" / "scene.png").is_file()
    covered = [n for n in report.notes if n.code == "covered-instance"]
    assert {n.where for n in covered} == {"shape 2", "shape 3", "shape 5"}


def test_instance_tiff_round_trip_keeps_every_visible_instance(tmp_path):
    ds, geometry = overlap_dataset(tmp_path)
    write_instance_tiffs(ds, tmp_path / "out")
    expected, visible = independent_painting(ds[0], geometry)
    back = read_masks(tmp_path / "out", kind="instance")
    (item,) = back.items
    assert item.name == "Train/scene.png" and item.size_hw == ds[0].size_hw
    assert objects(item) == expect(*[(ds[0].shapes[i].label, expected == k) for k, i in enumerate(visible, 1)])
    assert [lab.name for lab in back.labels] == ["cavity", "loop"]
    assert objects(read_masks(tmp_path / "out")[0]) == objects(item)  # auto: labels/ are instance images


def test_write_instance_tiffs_refuses_overlaps_unless_visible_only(tmp_path):
    ds, _ = overlap_dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"shape 2 \(box 'loop'\) has \d+ of \d+ pixels covered"):
        write_instance_tiffs(ds, tmp_path / "out", visible_only=False)
    assert not (tmp_path / "out").exists()


def test_write_instance_tiffs_without_images_notes_them(tmp_path):
    ds, geometry = overlap_dataset(tmp_path, image=False)
    report = write_instance_tiffs(ds, tmp_path / "out")
    assert "missing-image" in [n.code for n in report.notes]
    assert not (tmp_path / "out" / "images").exists()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_any_instance_image_round_trips_through_masks(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 20, size=2)
    ids = rng.choice([0, 0, 1, 2, 7, 65_535, 2**31 - 1], size=(h, w)).astype(np.int32)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tifffile.imwrite(Path(tmp) / "x.tif", ids)
        (item,) = read_masks(Path(tmp) / "x.tif", kind="instance").items
    assert item.size_hw == (h, w)
    painted = np.zeros((h, w), np.int64)
    values = sorted(set(ids.ravel().tolist()) - {0})
    assert len(item.shapes) == len(values)
    for v, s in zip(values, item.shapes):
        m = full(s, (h, w))
        assert not (painted[m]).any()
        painted[m] = v
    assert np.array_equal(painted, ids)


# ---------------------------------------------------------------------------------------------
# sniffing
# ---------------------------------------------------------------------------------------------


def test_sniff(tmp_path, shared_data):
    build_cvat_export(tmp_path / "cvat")
    save_png(tmp_path / "plain" / "a.png", np.zeros((4, 4), np.uint8))
    assert sniff_masks(tmp_path / "cvat")
    assert not sniff_masks(tmp_path / "plain") and not sniff_masks(tmp_path / "plain" / "a.png")
    assert not sniff_masks(shared_data / "formats" / "cvat" / "all_shapes")
    assert not sniff_masks(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------
# bad input: one test per kind
# ---------------------------------------------------------------------------------------------


def test_mask_and_image_of_different_sizes(tmp_path):
    save_png(tmp_path / "masks" / "a.png", np.zeros((10, 12), np.uint8))
    save_png(tmp_path / "images" / "a.png", np.zeros((10, 13), np.uint8))
    with pytest.raises(ParseError, match=r"masks/a\.png: the mask is 12x10 \(WxH\) "
                                         r"but its image .*images/a\.png is 13x10"):
        read_masks(tmp_path)


def test_instance_and_class_masks_of_different_sizes(tmp_path):
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "labels" / "a.tif", np.zeros((10, 12), np.int32))
    save_png(tmp_path / "masks" / "a.png", np.zeros((11, 12), np.uint8))
    with pytest.raises(ParseError, match=r"labels/a\.tif: the instance mask is 12x10 "
                                         r".* class mask .*masks/a\.png is 12x11"):
        read_masks(tmp_path)


def test_non_image_file_is_noted_and_a_broken_png_is_an_error(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "notes.txt").write_text("labelled by J.")
    ds = read_masks(tmp_path)
    assert len(ds) == 1
    skipped = [n for n in ds.notes if n.code == "skipped-file"]
    assert len(skipped) == 1 and skipped[0].where.endswith("notes.txt")
    (tmp_path / "b.png").write_bytes(b"not a png at all")
    with pytest.raises(ParseError, match=r"b\.png: not a readable label image"):
        read_masks(tmp_path)


def test_labelmap_line_that_does_not_parse(tmp_path):
    build_cvat_export(tmp_path)
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncavity:250,50::\n")
    with pytest.raises(ParseError, match=r"labelmap\.txt, line 3: expected a color 'r,g,b'.*'cavity'"):
        read_masks(tmp_path)
    (tmp_path / "labelmap.txt").write_text("background:0,0,0::\ncavity:250,50,83:::extra\n")
    with pytest.raises(ParseError, match=r"labelmap\.txt, line 2: expected 'name:r,g,b:parts:actions'"):
        read_masks(tmp_path)


def test_color_that_no_label_has(tmp_path):
    build_cvat_export(tmp_path)
    arr = np.asarray(Image.open(tmp_path / "SegmentationClass" / "img1.png")).copy()
    arr[20, 3] = (1, 2, 3)
    save_png(tmp_path / "SegmentationClass" / "img1.png", arr)
    with pytest.raises(ParseError, match=r"SegmentationClass/img1\.png \(pixel x=3, y=20\).*\(1, 2, 3\)"):
        read_masks(tmp_path)


def test_float_valued_mask(tmp_path):
    tifffile.imwrite(tmp_path / "prob.tif", np.full((5, 5), 0.5, np.float32))
    with pytest.raises(ParseError, match=r"prob\.tif: expected integer labels, got a float32"):
        read_masks(tmp_path)


def test_negative_label(tmp_path):
    ids = np.zeros((5, 5), np.int32)
    ids[2, 3] = -4
    tifffile.imwrite(tmp_path / "a.tif", ids)
    with pytest.raises(ParseError, match=r"a\.tif \(pixel x=3, y=2\): expected labels >= 0, got -4"):
        read_masks(tmp_path)


def test_color_mask_without_colors(tmp_path):
    rgb = np.zeros((5, 5, 3), np.uint8)
    rgb[1, 1] = (255, 0, 0)
    save_png(tmp_path / "a.png", rgb)
    with pytest.raises(ParseError, match=r"a\.png: expected a single-channel label image"):
        read_masks(tmp_path)


def test_bad_classes_json(tmp_path):
    save_png(tmp_path / "masks" / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "classes.json").write_text('{"1": {"name": "cavity", "color": "green"}}')
    with pytest.raises(ParseError, match=r"classes\.json \(/1/color\): expected a color like"):
        read_masks(tmp_path)
    (tmp_path / "classes.json").write_text('{"1": {"name": "cavity",}')
    with pytest.raises(ParseError, match=r"classes\.json, line 1, column \d+: not valid JSON"):
        read_masks(tmp_path)


def test_bad_instances_csv(tmp_path):
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "labels" / "a.tif", np.ones((4, 4), np.int32))
    (tmp_path / "instances.csv").write_text("image,instance_id,class_id,label\na,1,1,cavity\na,two,1,cavity\n")
    with pytest.raises(ParseError, match=r"instances\.csv, line 3: expected whole numbers"):
        read_masks(tmp_path)


@pytest.mark.parametrize("text, match", [
    # found by atheris: a bare carriage return inside a field made the csv module raise its own error
    ("image,instance_id,class_id,label\na,1,1,c\ravity\n", r"instances\.csv, line 3: expected whole numbers"),
    ("image,instance_id,class_id,label\na,1,1," + "x" * 200_000 + "\n", r"instances\.csv, line 2: not a readable CSV"),
    # found by atheris: class 0 is the background, yet its label reached a shape and no class was declared
    ("image,instance_id,class_id,label\na,1,0,lo'p\n", r"instances\.csv, line 2: expected instance_id and class_id >= 1"),
])
def test_instances_csv_that_the_csv_module_refuses(tmp_path, text, match):
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "labels" / "a.tif", np.ones((4, 4), np.int32))
    (tmp_path / "instances.csv").write_bytes(text.encode())
    with pytest.raises(ParseError, match=match):
        read_masks(tmp_path)


def test_bad_arguments(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="kind"):
        read_masks(tmp_path, kind="semantic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="connectivity"):
        read_masks(tmp_path, connectivity=4)
    with pytest.raises(ValueError, match="classes"):
        read_masks(tmp_path, classes={1: ""})
    with pytest.raises(ParseError, match="no such file"):
        read_masks(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ParseError, match=r"notes\.txt: expected a label image"):
        read_masks(tmp_path / "notes.txt")
