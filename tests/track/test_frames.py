"""Frame sequences: natural order, stacks with their interval and calibration, videos, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from defectlab.errors import ImageError
from defectlab.imaging.frames import natural_key, open_frames, parse_interval, write_frames
from defectlab.imaging.io import write_image


def test_folder_frames_are_in_natural_order(tmp_path):
    # written in a shuffled order; the value of each frame says its true position
    for k in (10, 2, 1, 11, 3):
        write_image(tmp_path / f"Frame-{k}.png", np.full((8, 8), k, np.uint8))
    seq = open_frames(tmp_path)
    assert seq.names == ("Frame-1.png", "Frame-2.png", "Frame-3.png", "Frame-10.png", "Frame-11.png")
    assert [int(f[0, 0]) for f in seq] == [1, 2, 3, 10, 11]
    assert seq.interval_s is None and seq.metadata["kind"] == "folder"


def test_natural_key_numbers_and_case():
    names = ["b2", "B10", "a10", "a9", "a09x"]
    assert sorted(names, key=natural_key) == ["a9", "a09x", "a10", "b2", "B10"]


def test_tiff_stack_interval_and_calibration(tmp_path):
    data = (np.arange(4)[:, None, None] * np.ones((1, 12, 10))).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.38, 1 / 0.38),
                     metadata={"unit": "nm", "finterval": 0.2, "axes": "TYX"})
    seq = open_frames(path)
    assert (len(seq), seq.size_hw, seq.interval_s) == (4, (12, 10), 0.2)
    assert seq.pixel_size_nm == pytest.approx(0.38)
    assert [int(f[0, 0]) for f in seq] == [0, 1, 2, 3]
    over = open_frames(path, frame_interval="40ms", pixel_size="2nm")
    assert (over.interval_s, over.pixel_size_nm, over.metadata["interval_from"]) == (0.04, 2.0, "override")


def test_video_interval_from_fps(tmp_path):
    import imageio.v2 as iio

    path = tmp_path / "clip.mp4"
    with iio.get_writer(path, fps=5, codec="libx264", quality=8, macro_block_size=16) as w:
        for k in range(6):
            w.append_data(np.full((32, 48), 40 * k, np.uint8))
    seq = open_frames(path)
    assert (len(seq), seq.size_hw, seq.interval_s) == (6, (32, 48), 0.2)
    # lossy codec: the gray level of each frame within a few levels of what was written
    assert [abs(int(np.median(f)) - 40 * k) <= 3 for k, f in enumerate(seq)] == [True] * 6


def test_write_frames_round_trip(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (3, 9, 7)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", data)
    paths = write_frames(open_frames(tmp_path / "s.tif"), tmp_path / "out")
    assert [p.name for p in paths] == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    assert np.array_equal(np.stack(list(open_frames(tmp_path / "out"))), data)


@pytest.mark.parametrize("value, match", [("0.5 parsecs", "time unit"), ("-1s", "positive"), ("fast", "like")])
def test_bad_intervals(value, match):
    with pytest.raises(ValueError, match=match):
        parse_interval(value)


def test_bad_sources(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_frames(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="holds no frames"):
        open_frames(tmp_path / "empty")
    write_image(tmp_path / "mixed" / "a1.png" if (tmp_path / "mixed").mkdir() is None else None, np.zeros((8, 8), np.uint8))
    write_image(tmp_path / "mixed" / "a2.png", np.zeros((9, 8), np.uint8))
    seq = open_frames(tmp_path / "mixed")
    with pytest.raises(ImageError, match="a2.png: frame 1 is 8x9 px"):
        seq[1]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageError, match="not a folder of frames"):
        open_frames(tmp_path / "notes.txt")
