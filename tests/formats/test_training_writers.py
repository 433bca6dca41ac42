"""U-Net and Mask R-CNN writers: layout, contents, refusals, and atomic outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import defectlab
from defectlab.errors import DatasetError, ImageError, OutputError
from defectlab.imaging import write_image
from defectlab.model import Dataset, Ellipse, ImageSource, Item, Label, Polygon, Polyline


def square(x1, y1, x2, y2):
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], float)


def make_dataset(tmp_path, sizes=((48, 64), (48, 64)), write=True):
    rng = np.random.default_rng(0)
    items = []
    for k, size in enumerate(sizes):
        img_path = tmp_path / "src" / f"img{k}.png"
        img_path.parent.mkdir(parents=True, exist_ok=True)
        if write:
            write_image(img_path, rng.integers(10, 200, size, dtype=np.uint8))
        items.append(Item(f"img{k}.png", size, (
            Polygon(label="cavity", points_xy=square(4, 4, 12, 10)),
            Polygon(label="loop", points_xy=square(20, 5, 30, 25), z_order=1),
            Polyline(label="line", points_xy=[(40, 30.5), (60, 30.5)]),
        ), image=ImageSource(img_path)))
    labels = (Label("cavity", color="#00ff00", edge="inner"), Label("loop", edge="outer"), Label("line", type="polyline"))
    return Dataset(labels, tuple(items), source=str(tmp_path / "src"), format="cvat")


def expected_mask(size):
    m = np.zeros(size, np.uint8)
    m[4:10, 4:12] = 1
    m[5:25, 20:30] = 2
    # line y = 30.5 from x = 40 to 60, 3 px wide: centers within 1.5 px. Row 30 (distance 0)
    # reaches the caps' tips at x = 38.5 and 61.5; rows 29 and 31 (distance 1) reach
    # x = 40 - sqrt(1.25) .. 60 + sqrt(1.25), i.e. centers 39.5 .. 60.5
    m[30, 38:62] = 3
    m[29, 39:61] = m[31, 39:61] = 3
    return m


def test_unet_layout_masks_and_classes(tmp_path):
    ds = make_dataset(tmp_path)
    report = defectlab.write_unet(ds, tmp_path / "out", stack=True, one_hot=True)
    out = tmp_path / "out"
    assert report.n_items == 2
    classes = json.loads((out / "classes.json").read_text())
    assert classes["0"]["name"] == "background"
    assert [classes[str(i)]["name"] for i in (1, 2, 3)] == ["cavity", "loop", "line"]
    assert classes["1"]["color"] == "#00ff00" and classes["1"]["edge"] == "inner"
    assert [classes[str(i)]["type"] for i in (1, 2, 3)] == ["any", "any", "polyline"]
    for k in range(2):
        mask = np.asarray(Image.open(out / "masks" / f"img{k}.png"))
        assert mask.dtype == np.uint8
        assert np.array_equal(mask, expected_mask((48, 64)))
        assert (out / "images" / f"img{k}.png").read_bytes() == (tmp_path / "src" / f"img{k}.png").read_bytes()
    images = np.load(out / "images.npy")
    masks = np.load(out / "masks.npy")
    onehot = np.load(out / "onehot.npy")
    assert images.shape == (2, 48, 64) and images.dtype == np.float32
    assert np.allclose(images.min(axis=(1, 2)), 0) and np.allclose(images.max(axis=(1, 2)), 1)
    raw = np.asarray(Image.open(tmp_path / "src" / "img1.png")).astype(np.float32)
    assert np.allclose(images[1], (raw - raw.min()) / (raw.max() - raw.min()))
    assert masks.shape == (2, 48, 64) and masks.dtype == np.uint8
    assert onehot.shape == (2, 4, 48, 64)
    assert np.array_equal(onehot.sum(axis=1), np.ones((2, 48, 64)))
    assert np.array_equal(onehot.argmax(axis=1), masks)


def test_unet_copies_the_masks_it_is_handed_and_draws_the_others(tmp_path):
    """masks= (what prepare hands in): those PNGs are copied as they are, also into masks.npy;
    the other items are rasterized as ever."""
    ds = make_dataset(tmp_path)
    given = np.zeros((48, 64), np.uint8)
    given[1:3, 2:5] = 7  # not what img0's shapes would give: proves the file was copied, not redrawn
    write_image(tmp_path / "given.png", given)
    defectlab.write_unet(ds, tmp_path / "out", stack=True, masks={"img0": tmp_path / "given.png"})
    out = tmp_path / "out"
    assert (out / "masks" / "img0.png").read_bytes() == (tmp_path / "given.png").read_bytes()
    assert np.array_equal(np.asarray(Image.open(out / "masks" / "img1.png")), expected_mask((48, 64)))
    assert np.array_equal(np.load(out / "masks.npy")[0], given)
    with pytest.raises(ValueError, match="masks handed in for no item of the dataset, e.g. 'img9'"):
        defectlab.write_unet(ds, tmp_path / "bad", masks={"img9": tmp_path / "given.png"})


def test_unet_hard_links_the_images_when_asked(tmp_path):
    ds = make_dataset(tmp_path)
    defectlab.write_unet(ds, tmp_path / "out", link_images="hard")
    for k in range(2):
        dest, src = tmp_path / "out" / "images" / f"img{k}.png", tmp_path / "src" / f"img{k}.png"
        assert not dest.is_symlink() and dest.samefile(src) and src.stat().st_nlink == 2


def test_stacking_images_of_different_sizes_is_refused_with_names(tmp_path):
    ds = make_dataset(tmp_path, sizes=((48, 64), (40, 64)))
    with pytest.raises(DatasetError, match=r"img1\.png \(64x40\).*tile"):
        defectlab.write_unet(ds, tmp_path / "out", stack=True)
    assert not (tmp_path / "out").exists()
    defectlab.write_unet(ds, tmp_path / "out")  # without stacking it is fine


def test_missing_image_is_an_error_that_says_what_to_do(tmp_path):
    ds = make_dataset(tmp_path)
    ds = ds.with_items([ds[0], Item("gone.png", (48, 64), ())])
    with pytest.raises(ImageError, match=r"gone\.png.*--images"):
        defectlab.write_unet(ds, tmp_path / "out")


def test_image_size_differing_from_the_export_is_an_error(tmp_path):
    ds = make_dataset(tmp_path)
    write_image(tmp_path / "src" / "img0.png", np.zeros((30, 30), np.uint8))
    with pytest.raises(ImageError, match=r"img0\.png: image is 30x30 .* declares 64x48"):
        defectlab.write_maskrcnn(ds, tmp_path / "out")


def test_existing_output_needs_overwrite(tmp_path):
    ds = make_dataset(tmp_path)
    defectlab.write_unet(ds, tmp_path / "out")
    with pytest.raises(OutputError, match="--overwrite"):
        defectlab.write_unet(ds, tmp_path / "out")
    (tmp_path / "out" / "stale.txt").write_text("old")
    defectlab.write_unet(ds, tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "stale.txt").exists()


def test_output_holding_the_input_is_refused(tmp_path):
    ds = make_dataset(tmp_path)
    with pytest.raises(OutputError, match="input"):
        defectlab.write_unet(ds, tmp_path, overwrite=True)
    assert (tmp_path / "src" / "img0.png").exists()


def test_failure_midway_leaves_previous_output_and_no_temp(tmp_path, monkeypatch):
    ds = make_dataset(tmp_path)
    defectlab.write_unet(ds, tmp_path / "out")
    before = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*"))
    import defectlab.formats.unet as unet

    calls = {"n": 0}
    real = unet.write_image

    def failing(path, image):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(path, image)

    monkeypatch.setattr(unet, "write_image", failing)
    with pytest.raises(OSError, match="disk full"):
        defectlab.write_unet(ds, tmp_path / "out", overwrite=True)
    after = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*"))
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_maskrcnn_files_round_trip_and_match_expected_instances(tmp_path):
    ds = make_dataset(tmp_path)
    ds = ds.with_items([ds[0].__class__(ds[0].name, ds[0].size_hw, ds[0].shapes + (
        Ellipse(label="cavity", cx=50.0, cy=10.0, rx=0.2, ry=0.2),), image=ds[0].image), ds[1]])
    report = defectlab.write_maskrcnn(ds, tmp_path / "out")
    assert report.n_instances == 6
    assert [n.code for n in report.notes] == ["degenerate-instance"]
    t = defectlab.read_target(tmp_path / "out" / "targets" / "img0.npz", dense=True)
    assert t["boxes"].dtype == np.float32 and t["labels"].dtype == np.int64
    assert t["boxes"].tolist() == [[4, 4, 12, 10], [20, 5, 30, 25], [38, 29, 62, 32]]
    assert t["labels"].tolist() == [1, 2, 3]
    assert t["masks"].shape == (3, 48, 64) and t["masks"].dtype == np.uint8
    assert t["area"].tolist() == [48, 200, 24 + 2 * 22]
    expected = np.zeros((48, 64), np.uint8)
    expected[5:25, 20:30] = 1
    assert np.array_equal(t["masks"][1], expected)
    assert t["iscrowd"].tolist() == [0, 0, 0]
    mem, _ = defectlab.instance_target(ds[0], ds.class_index(), dense=True)
    assert np.array_equal(mem["masks"], t["masks"]) and np.array_equal(mem["boxes"], t["boxes"])
