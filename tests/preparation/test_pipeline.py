"""``prepare`` end to end: files on disk checked against the source, read back independently
(PIL, hashlib, pycocotools), with expectations from the source item rasterized whole."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import defectlab
from defectlab.cli import app
from defectlab.errors import DatasetError, FormatError, ImageError, OutputError
from defectlab.formats.maskrcnn import read_target
from defectlab.preparation.pipeline import prepare
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
from defectlab.raster import rasterize, semantic_mask

NAME = re.compile(r"^(?P<stem>.+)_x(?P<x>\d+)_y(?P<y>\d+)(?P<aug>_aug\d+)?\.(png|tif)$")
CFG = SyntheticConfig(size_hw=(96, 160), n_cavities=6, n_loops=2, n_precipitates=2, n_lines=1,
                      loop_radius_px=(6.0, 12.0), precipitate_radius_px=(4.0, 8.0))


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prep") / "export"
    make_synthetic_dataset(path, n_images=4, config=CFG, seed=3)
    return path


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def tree_hash(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_unet_tiles_reassemble_to_each_image_and_mask(export, tmp_path):
    ds = defectlab.read(export)
    report = prepare(export, tmp_path / "out", to="unet", tile=48, stride=40, split="0.5,0.5", preview=False)
    classes = ds.class_index()
    canvases: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    split_of: dict[str, set[str]] = {}
    for split in ("train", "val"):
        for mask_path in sorted((tmp_path / "out" / split / "masks").glob("*.png")):
            m = NAME.match(mask_path.name)
            stem, x, y = m["stem"], int(m["x"]), int(m["y"])
            split_of.setdefault(stem, set()).add(split)
            img_c, mask_c = canvases.setdefault(stem, (np.full(CFG.size_hw, -1), np.full(CFG.size_hw, -1)))
            tile_mask = png(mask_path)
            tile_img = png(tmp_path / "out" / split / "images" / mask_path.name)
            for canvas, tile in ((img_c, tile_img), (mask_c, tile_mask)):
                region = canvas[y : y + 48, x : x + 48]
                assert np.all((region == -1) | (region == tile))
                canvas[y : y + 48, x : x + 48] = tile
    assert set(canvases) == {it.stem for it in ds.items}
    for item in ds.items:
        img_c, mask_c = canvases[item.stem]
        assert np.array_equal(img_c, png(item.image.path))
        assert np.array_equal(mask_c, semantic_mask(item, classes, line_width=3.0))
    # no source image in two splits, and the manifest says where each went
    assert all(len(s) == 1 for s in split_of.values())
    assert {src["name"]: src["split"] for src in report.manifest["sources"]} == {
        f"{stem}.png": s.pop() for stem, s in split_of.items()}


def brute_counts(item, window, min_visible):
    """Instances a window keeps, by dense masks; every synthetic defect is smaller than a tile."""
    x1, y1, x2, y2 = window
    labels, boxes = [], []
    for s in item.shapes:
        full = rasterize(s, item.size_hw, line_width=3.0).to_full(item.size_hw)
        part = full[y1:y2, x1:x2]
        visible = int(part.sum())
        if visible and visible >= min_visible * full.sum():
            rows, cols = np.nonzero(part)
            labels.append(s.label)
            boxes.append((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    return labels, sorted(boxes)


def test_maskrcnn_instances_per_tile_match_brute_force(export, tmp_path):
    ds = defectlab.read(export)
    by_stem = {it.stem: it for it in ds.items}
    names = {i: lab.name for i, lab in enumerate(ds.labels, start=1)}
    prepare(export, tmp_path / "out", to="maskrcnn", tile=64, stride=48, preview=False)
    n_tiles = 0
    for target_path in sorted((tmp_path / "out").glob("*/targets/*.npz")):
        m = NAME.match(target_path.stem + ".png")
        x, y = int(m["x"]), int(m["y"])
        labels, boxes = brute_counts(by_stem[m["stem"]], (x, y, x + 64, y + 64), 0.25)
        t = read_target(target_path)
        assert Counter(names[int(k)] for k in t["labels"]) == Counter(labels)
        assert sorted(tuple(int(v) for v in b) for b in t["boxes"]) == boxes  # boxes of what is visible
        n_tiles += 1
    assert n_tiles == 4 * 2 * 3  # rows (0, 32) x columns (0, 48, 96) per image


def test_same_seed_same_bytes(export, tmp_path):
    kw = dict(to="unet", tile=48, stride=32, augment="flip,rot90,rotate,noise", keep_empty=0.5, seed=5)
    prepare(export, tmp_path / "a", **kw)
    prepare(export, tmp_path / "b", **kw)
    prepare(export, tmp_path / "c", **{**kw, "seed": 6})
    a, b, c = (tree_hash(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c
    assert any(k.endswith("_aug0.png") for k in a) and any(k.startswith("preview/") for k in a)
    mk = dict(to="maskrcnn", tile=48, stride=48, augment="rotate", seed=5, preview=False)
    prepare(export, tmp_path / "d", **mk)
    prepare(export, tmp_path / "e", **mk)
    assert tree_hash(tmp_path / "d") == tree_hash(tmp_path / "e")


def test_single_micrograph_is_split_spatially(tmp_path):
    export = tmp_path / "one"
    make_synthetic_dataset(export, n_images=1, config=SyntheticConfig(size_hw=(256, 384)), seed=1)
    report = prepare(export, tmp_path / "out", to="unet", tile=64, stride=32, preview=False)
    windows = {}
    for split in ("train", "val", "test"):
        folder = tmp_path / "out" / split / "images"
        names = sorted(folder.glob("*.png")) if folder.is_dir() else []
        cover = np.zeros((256, 384), bool)
        for p in names:
            m = NAME.match(p.name)
            cover[int(m["y"]) : int(m["y"]) + 64, int(m["x"]) : int(m["x"]) + 64] = True
        windows[split] = cover
    assert windows["val"].any() and windows["test"].any()
    assert not (windows["train"] & windows["val"]).any()
    assert not (windows["train"] & windows["test"]).any()
    assert not (windows["val"] & windows["test"]).any()
    assert "no tile straddles two splits" in report.manifest["spatial_split"]
    assert report.manifest["parameters"]["spatial"] is True


def test_keep_no_empty_tiles_and_count_them(export, tmp_path):
    ds = defectlab.read(export)
    report = prepare(export, tmp_path / "out", to="unet", tile=32, stride=32, keep_empty=0.0, preview=False)
    empty = 0
    for item in ds.items:
        mask = semantic_mask(item, ds.class_index())
        for y in range(0, 96, 32):
            for x in range(0, 160, 32):
                empty += not mask[y : y + 32, x : x + 32].any()
    counts = report.manifest["splits"]
    assert sum(c["empty_tiles_skipped"] for c in counts.values()) == empty > 0
    assert sum(c["empty_tiles_kept"] for c in counts.values()) == 0
    for mask_path in (tmp_path / "out").glob("*/masks/*.png"):
        assert png(mask_path).any()


def test_manifest_records_sources_parameters_counts_and_normalization(export, tmp_path):
    report = prepare(export, tmp_path / "out", to="unet", tile=48, stride=48, split="0.5,0.25,0.25",
                     augment="flip", normalization="meanstd", seed=2)
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m == report.manifest and m["defectlab_version"] == defectlab.__version__
    for src in m["sources"]:
        assert src["sha256"] == hashlib.sha256((export / "images" / src["name"]).read_bytes()).hexdigest()
    (ann,) = m["export"]["files"]
    assert ann["sha256"] == hashlib.sha256((export / "annotations.xml").read_bytes()).hexdigest()
    assert m["parameters"]["tile_hw"] == [48, 48] and m["parameters"]["seed"] == 2
    assert m["parameters"]["augment"]["ops"][0]["name"] == "flip"
    assert m["classes"] == {"0": "background", "1": "cavity", "2": "loop", "3": "precipitate", "4": "dislocation line"}
    for split, c in m["splits"].items():
        files = sorted((tmp_path / "out" / split / "images").glob("*.png"))
        assert c["tiles"] + c["augmented_tiles"] == len(files)
        assert c["source_images"] == len({NAME.match(p.name)["stem"] for p in files})
        assert sorted(p.name for p in (tmp_path / "out" / split / "masks").glob("*.png")) == [p.name for p in files]
    train = np.stack([png(p) for p in sorted((tmp_path / "out" / "train" / "images").glob("*.png"))]).astype(np.float64)
    assert m["normalization"]["method"] == "meanstd"
    assert m["normalization"]["mean"] == pytest.approx([train.mean()]) and m["normalization"]["std"] == pytest.approx([train.std()])
    assert sorted(p.name for p in (tmp_path / "out" / "preview").iterdir())[-1] == "train_tiles.png"


def test_whole_images_padded_to_one_size(export, tmp_path):
    ds = defectlab.read(export)
    prepare(export, tmp_path / "out", to="unet", tile=0, image_size_hw=(128, 192), fit="pad", split="1", preview=False,
            write_options={"stack": True})
    masks = np.load(tmp_path / "out" / "train" / "masks.npy")
    assert masks.shape == (4, 128, 192)
    for k, item in enumerate(sorted(ds.items, key=lambda it: it.name)):
        want = np.zeros((128, 192), np.uint8)
        want[:96, :160] = semantic_mask(item, ds.class_index())
        assert np.array_equal(png(tmp_path / "out" / "train" / "masks" / f"{item.stem}.png"), want)


def test_yolo_and_coco_tiles_hold_the_same_instances(export, tmp_path):
    from pycocotools.coco import COCO

    ds = defectlab.read(export)
    by_stem = {it.stem: it for it in ds.items}
    prepare(export, tmp_path / "yolo", to="yolo", tile=64, stride=48, preview=False, write_options={"task": "detect"})
    prepare(export, tmp_path / "coco", to="coco", tile=64, stride=48, preview=False)
    data_yaml = (tmp_path / "yolo" / "data.yaml").read_text()
    assert f"path: {(tmp_path / 'yolo').absolute()}" in data_yaml
    checked = 0
    for txt in sorted((tmp_path / "yolo" / "labels").glob("*/*.txt")):
        m = NAME.match(txt.stem + ".png")
        labels, _ = brute_counts(by_stem[m["stem"]], (int(m["x"]), int(m["y"]), int(m["x"]) + 64, int(m["y"]) + 64), 0.25)
        lines = [ln for ln in txt.read_text().splitlines() if ln.strip()]
        assert len(lines) == len(labels)
        checked += 1
    assert checked == 24
    for ann in sorted((tmp_path / "coco" / "annotations").glob("instances_*.json")):
        coco = COCO(str(ann))
        for img in coco.dataset["images"]:
            m = NAME.match(Path(img["file_name"]).name)
            labels, _ = brute_counts(by_stem[m["stem"]], (int(m["x"]), int(m["y"]), int(m["x"]) + 64, int(m["y"]) + 64), 0.25)
            assert len(coco.getAnnIds(imgIds=[img["id"]])) == len(labels)


def test_keep_the_exports_subsets_even_with_shared_names(export, tmp_path):
    from dataclasses import replace

    ds = defectlab.read(export)
    a, b = ds.items[:2]
    twins = ds.with_items([replace(a, subset="Train"), replace(b, name=a.name, subset="Validation")])
    report = prepare(twins, tmp_path / "out", to="unet", tile=48, split="keep", preview=False)
    train = sorted(p.name for p in (tmp_path / "out" / "train" / "images" / "Train").iterdir())
    val = sorted(p.name for p in (tmp_path / "out" / "val" / "images" / "Validation").iterdir())
    assert train == val and len(train) == 2 * 4  # rows 0, 48; columns 0, 48, 96, 112 — same names, apart by subset
    assert np.array_equal(png(tmp_path / "out" / "val" / "images" / "Validation" / val[0]),
                          png(b.image.path)[:48, :48])
    assert [(s["name"], s["subset"], s["split"]) for s in report.manifest["sources"]] == [
        (a.name, "Train", "train"), (a.name, "Validation", "val")]
    with pytest.raises(DatasetError, match="split='keep' needs subsets train / val / test, got None"):
        prepare(ds, tmp_path / "x", split="keep")


def test_errors(export, tmp_path):
    out = tmp_path / "out"
    prepare(export, out, to="unet", tile=48, preview=False)
    before = tree_hash(out)
    with pytest.raises(OutputError, match="exists and is not empty.*--overwrite"):
        prepare(export, out, to="unet", tile=48, preview=False)
    assert tree_hash(out) == before
    with pytest.raises(FormatError, match="unknown format 'keras'"):
        prepare(export, tmp_path / "x", to="keras")
    with pytest.raises(DatasetError, match=r"160x96 \(WxH\) image is smaller than a 128x128 tile"):
        prepare(export, tmp_path / "x", tile=128, spatial=False)
    with pytest.raises(ValueError, match="split fractions"):
        prepare(export, tmp_path / "x", split="0,1")
    ds = defectlab.read(export)
    gone = ds.with_items([ds[0].__class__(ds[0].name, ds[0].size_hw, ds[0].shapes, image=None)])
    with pytest.raises(ImageError, match="image file\\(s\\) not found.*--images DIR"):
        prepare(gone, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_prints_a_summary_and_fails_cleanly(export, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["prepare", str(export), "--tile", "48", "--stride", "40", "--split", "0.5,0.5",
                              "--augment", "flip,rot90", "--to", "maskrcnn", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "train" in res.output and "cavity" in res.output and "manifest.json" in res.output
    assert (tmp_path / "o" / "train" / "targets").is_dir()
    res = runner.invoke(app, ["prepare", str(export), "--to", "unet", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "error:" in res.output and "--overwrite" in res.output
    res = runner.invoke(app, ["prepare", str(export), "--to", "unet", "--augment", "sharpen", "--out", str(tmp_path / "p")])
    assert res.exit_code == 1 and "unknown augmentation 'sharpen'" in res.output


# ---------------------------------------------------------------------------------------------
# Issue 14.5 / 14.7: prepare writes what it says, and says what it does


@pytest.mark.parametrize("split", ["0.8,0.3", "0.5,0.5,0.5"])
def test_shares_that_do_not_sum_to_one_are_refused(export, tmp_path, split):
    result = CliRunner().invoke(app, ["prepare", str(export), "--tile", "48", "--split", split,
                                      "--out", str(tmp_path / "t")])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"--split: expected train,val,test shares that sum to 1, got '{split}'" in text
    assert not (tmp_path / "t").exists()
    # whole numbers are proportions, as they always were
    report = prepare(export, tmp_path / "p", tile=48, split="2,1,1", preview=False)
    assert report.manifest["parameters"]["split"] == [0.5, 0.25, 0.25]


def test_prepare_to_cvat_is_refused_and_lists_what_prepare_writes(export, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", str(export), "--to", "cvat", "--tile", "48", "--out", str(tmp_path / "c")])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "prepare cannot write 'cvat'" in text and "Traceback" not in text and "NotADirectoryError" not in text
    written = text.split("prepare writes: ")[1].split(" (")[0].split(", ")
    assert {"unet", "maskrcnn", "yolo", "coco"} <= set(written) and "cvat" not in written and "via" not in written
    assert not (tmp_path / "c").exists()
    help_text = runner.invoke(app, ["prepare", "--help"], env={"COLUMNS": "200"}).output
    to_line = next(line for line in help_text.splitlines() if line.strip().startswith("--to"))
    assert all(name in to_line for name in written) and "cvat" not in to_line and "labelme" not in to_line


def test_yolo_from_outlines_is_segment_and_says_so(export, tmp_path):
    result = CliRunner().invoke(app, ["prepare", str(export), "--to", "yolo", "--tile", "0", "--split", "1",
                                      "--out", str(tmp_path / "y")])
    assert result.exit_code == 0, result.output
    assert "yolo-task" in result.output
    lines = [ln.split() for p in (tmp_path / "y" / "labels").rglob("*.txt") for ln in p.read_text().splitlines()]
    assert lines and all(len(ln) > 5 for ln in lines)  # polygons (class + 3 or more points), not boxes
    manifest = json.loads((tmp_path / "y" / "manifest.json").read_text())
    assert manifest["parameters"]["write_options"]["task"] == "segment"


def test_tiles_written_by_threads_are_the_bytes_one_thread_writes(export, tmp_path, monkeypatch):
    """prepare and write_unet hand PNG encoding and copies to threads: the same files, byte for byte,
    as writing each one at once in this thread."""
    import defectlab._parallel as parallel

    kw = dict(to="unet", tile=48, stride=32, augment="flip,rot90", seed=5)
    monkeypatch.setattr(parallel, "default_workers", lambda: 3)
    prepare(export, tmp_path / "threads", **kw)
    monkeypatch.setattr(parallel, "default_workers", lambda: 1)
    prepare(export, tmp_path / "one", **kw)
    threads, one = tree_hash(tmp_path / "threads"), tree_hash(tmp_path / "one")
    assert threads == one and len(one) > 50
    assert not (tmp_path / "threads" / ".staging").exists()


def test_a_failed_background_write_fails_the_run_and_leaves_no_output(export, tmp_path, monkeypatch):
    import defectlab._parallel as parallel
    import defectlab.preparation.pipeline as pipeline

    import defectlab.imaging.io as io

    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    calls = []
    original = io.write_image

    def broken(path, image, **kw):  # the 5th tile (in a writer thread) fails
        calls.append(path)
        if len(calls) == 5:
            raise OSError(f"{path}: disk full")
        return original(path, image, **kw)

    monkeypatch.setattr(io, "write_image", broken)
    with pytest.raises(OSError, match="disk full"):
        prepare(export, tmp_path / "out", to="unet", tile=48, stride=32)
    assert len(calls) >= 5
    assert not (tmp_path / "out").exists()


def test_unet_masks_written_by_worker_processes_are_the_bytes_one_process_writes(tmp_path, monkeypatch):
    """Above a few megapixels write_unet rasterizes and encodes in a process pool: the same files
    as one process writes, and an unreadable image is still a clear error with no output left."""
    import defectlab._parallel as parallel
    import defectlab.formats.unet as unet

    export = tmp_path / "export"
    ds = make_synthetic_dataset(export, n_images=3, config=SyntheticConfig(size_hw=(128, 160)), seed=4)
    monkeypatch.setattr(unet, "_POOL_MIN_PIXELS", 1)  # the pool even for these small images
    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    unet.write_unet(ds, tmp_path / "pool")
    monkeypatch.setattr(parallel, "default_workers", lambda: 1)
    unet.write_unet(ds, tmp_path / "one")
    assert tree_hash(tmp_path / "pool") == tree_hash(tmp_path / "one")
    assert len(tree_hash(tmp_path / "one")) == 7  # 3 masks, 3 images, classes.json

    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    from dataclasses import replace

    from defectlab.model import ImageSource

    gone = ds.with_items([ds.items[0], replace(ds.items[1], image=ImageSource(tmp_path / "missing.png")),
                          ds.items[2]])
    with pytest.raises(OSError, match="missing.png"):
        unet.write_unet(gone, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_unet_masks_cut_from_the_source_are_the_bytes_the_writer_draws_per_tile(export, tmp_path, monkeypatch):
    """prepare --to unet hands write_unet each tile's mask cut from its source image's mask; the
    reference is the writer rasterizing every tile's own shapes (nothing handed in). Padded
    windows, dropped remainders (those tiles are drawn by the writer) and augmented copies."""
    import defectlab.formats.unet as unet
    import defectlab.preparation.pipeline as pipeline

    kw = dict(to="unet", tile=40, stride=28, pad=True, min_visible=0.4, augment="flip,rot90", seed=2)
    copied = []
    copy_mask = unet._copy_mask
    monkeypatch.setattr(unet, "_copy_mask", lambda src, dest: (copied.append(dest), copy_mask(src, dest)))
    report = prepare(export, tmp_path / "cut", **kw)
    assert any(c["dropped"] for c in report.counts.values())  # some tiles fall back to the writer
    n_tiles = sum(c["tiles"] for c in report.counts.values())
    assert 0 < len(copied) < n_tiles  # masks were handed in, not for the tiles with drops

    handed = len(copied)
    plain = pipeline._Tiler.__init__
    monkeypatch.setattr(pipeline._Tiler, "__init__", lambda self, *a, masks=False, **k: plain(self, *a, **k))
    prepare(export, tmp_path / "drawn", **kw)
    assert len(copied) == handed  # the reference run drew every mask
    cut, drawn = tree_hash(tmp_path / "cut"), tree_hash(tmp_path / "drawn")
    assert cut == drawn and sum("/masks/" in k for k in cut) > handed
    # the tiles were hard-linked from the staging folder, which is gone: plain files of one name
    files = list((tmp_path / "cut").rglob("*.png"))
    assert all(not f.is_symlink() and f.stat().st_nlink == 1 for f in files)
