"""Frames of one in-situ series go to one split (or a note says why test figures will flatter),
and names are listed in natural order (``Frame-2`` before ``Frame-10``). #14.8.

Series are recognised here with a regex of the test's own (stem = name without its trailing
number), never with the module's function.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from defectlab.model import Dataset, Ellipse, ImageSource, Item, Label
from defectlab.preparation.splits import allocate, split_images, split_sources


def _series_of(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return re.sub(r"\d+$", "", stem)


def _frames(runs: int, frames: tuple[int, ...]) -> list[Item]:
    return [Item(f"in-situ-run{r}-Frame-{k}.jpg", (64, 64)) for r in range(runs) for k in frames]


@pytest.mark.parametrize("seed", range(5))
def test_each_series_lands_in_one_split_and_the_counts_follow_the_fractions(seed: int) -> None:
    items = _frames(10, (2, 10, 124, 1049))  # 10 series of 4 frames
    split, notes = split_sources(items, (0.8, 0.1, 0.1), seed=seed)
    by_series = defaultdict(set)
    for name, s in split.items():
        by_series[_series_of(name)].add(s)
    assert len(by_series) == 10 and all(len(v) == 1 for v in by_series.values())
    assert Counter(split.values()) == {"train": 32, "val": 4, "test": 4}  # == allocate(40, ...) here
    assert allocate(40, (0.8, 0.1, 0.1)) == (32, 4, 4)
    assert [n.code for n in notes] == ["split-by-series"]
    assert list(split) == [it.name for it in items]


def test_a_single_series_is_split_by_image_with_a_warning() -> None:
    items = _frames(1, tuple(range(1, 21)))  # one series of 20 frames
    split, notes = split_sources(items, (0.8, 0.1, 0.1), seed=3)
    assert split == split_images(items, (0.8, 0.1, 0.1), seed=3)
    (note,) = notes
    assert note.code == "series-split" and "flatter" in note.message and "in-situ-run0-Frame-" in note.message


def test_images_without_series_split_as_before() -> None:
    items = [Item(name, (64, 64)) for name in ("overview.png", "detail.png", "grain.png", "edge.png", "bulk.png")]
    assert split_sources(items, (0.6, 0.2, 0.2), seed=1) == (split_images(items, (0.6, 0.2, 0.2), seed=1), [])


def test_series_far_from_the_fractions_fall_back_with_a_warning() -> None:
    items = _frames(2, tuple(range(1, 11)))  # two series of 10: 80/20 cannot keep both whole
    split, notes = split_sources(items, (0.8, 0.2, 0.0), seed=0)
    assert Counter(split.values()) == {"train": 16, "val": 4}
    assert [n.code for n in notes] == ["series-split"]
    split_off, notes_off = split_sources(_frames(10, (1, 2)), (0.8, 0.2, 0.0), by_series=False)
    assert [n.code for n in notes_off] == ["series-split"] and "by_series=False" in notes_off[0].message


def test_prepare_keeps_a_series_in_one_split(tmp_path) -> None:
    from defectlab.preparation.pipeline import prepare

    items = []
    for r in range(4):
        for k in (2, 10, 124):
            path = tmp_path / f"run{r}-Frame-{k}.png"
            Image.fromarray(np.full((64, 64), 60 + 10 * r, np.uint8)).save(path)
            items.append(Item(path.name, (64, 64), (Ellipse(label="cavity", cx=30, cy=30, rx=8, ry=6),),
                              ImageSource(path)))
    ds = Dataset((Label("cavity"),), tuple(items))
    report = prepare(ds, tmp_path / "tiles", tile=32, stride=32, split=(0.5, 0.5, 0.0), preview=False)
    split_of = {s["name"] if "name" in s else s["image"]: s["split"] for s in report.manifest["sources"]}
    by_series = defaultdict(set)
    for name, s in split_of.items():
        by_series[_series_of(name)].add(s)
    assert len(by_series) == 4 and all(len(v) == 1 for v in by_series.values())
    assert "split-by-series" in [n.code for n in report.notes]


def test_readers_list_frames_in_natural_order(tmp_path) -> None:
    """A YOLO folder of frames: items come Frame-2, Frame-10, Frame-124, not as text."""
    from defectlab.formats.yolo_txt import read_yolo

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for k in (124, 2, 1049, 10):
        Image.new("L", (16, 16)).save(tmp_path / "images" / f"x-Frame-{k}.png")
        (tmp_path / "labels" / f"x-Frame-{k}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    names = [it.name for it in read_yolo(tmp_path)]
    assert names == ["x-Frame-2.png", "x-Frame-10.png", "x-Frame-124.png", "x-Frame-1049.png"]
    assert sorted(names) != names  # text order would differ


def test_mask_folders_are_read_in_natural_order(tmp_path) -> None:
    from defectlab.formats.mask_images import read_masks

    for k in (10, 2, 1):
        m = np.zeros((8, 8), np.uint8)
        m[2:5, 2:5] = 1
        Image.fromarray(m).save(tmp_path / f"frame_{k}.png")
    assert [it.name for it in read_masks(tmp_path, classes={1: "cavity"})] == [
        "frame_1.png", "frame_2.png", "frame_10.png"]
