"""defectlab.limits: defaults, raising a limit (block, session, environment), and the docs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import tifffile

from defectlab import errors, limits
from defectlab.model import Box, Ellipse, Mask, Points, Polygon, Polyline

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_defaults_are_the_documented_ones() -> None:
    table = limits.__doc__
    assert limits.DEFAULTS == limits.Limits(max_image_side=65_536, max_image_pixels=1_000_000_000,
                                            max_coordinate=1e7, max_nesting_depth=100, max_file_bytes=1 << 30,
                                            max_compression_ratio=200.0, max_classes=10_000)
    for f in fields(limits.Limits):
        assert f"``{f.name}``" in table, f.name


def test_the_error_table_covers_every_error_class_and_limit() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in errors.__all__:
        assert name in text, name
    for f in fields(limits.Limits):
        if f.name not in ("max_compression_ratio",):
            assert f.name in text, f.name
    assert "max_compression_ratio" in text
    # every example is "Class: message", the class one of ours
    for cls in re.findall(r"`(\w+Error): ", text):
        assert cls in errors.__all__, cls


def test_override_is_local_to_the_block_and_the_thread() -> None:
    seen: list[int] = []
    with limits.override(max_image_side=10) as lim:
        assert lim.max_image_side == limits.current().max_image_side == 10
        worker = threading.Thread(target=lambda: seen.append(limits.current().max_image_side))
        worker.start()
        worker.join()
        with limits.override(max_image_pixels=5):
            assert (limits.current().max_image_side, limits.current().max_image_pixels) == (10, 5)
        assert limits.current().max_image_pixels == limits.DEFAULTS.max_image_pixels
    assert seen == [limits.DEFAULTS.max_image_side]
    assert limits.current() == limits.DEFAULTS
    with pytest.raises(RuntimeError), limits.override(max_classes=3):
        raise RuntimeError("boom")
    assert limits.current().max_classes == limits.DEFAULTS.max_classes


def test_configure_changes_the_session_until_reset() -> None:
    try:
        limits.configure(max_classes=7)
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(limits.current().max_classes))
        worker.start()
        worker.join()
        assert limits.current().max_classes == 7 and seen == [7]
    finally:
        limits.reset()
    assert limits.current() == limits.DEFAULTS


@pytest.mark.parametrize("changes, error, match", [
    ({"max_image_side": 0}, ValueError, r"expected a positive number for max_image_side, got 0"),
    ({"max_coordinate": float("nan")}, ValueError, r"max_coordinate, got nan"),
    ({"max_classes": True}, ValueError, r"max_classes, got True"),
    ({"max_image_sides": 5}, TypeError, r"unknown limit 'max_image_sides'"),
])
def test_bad_limits_are_refused(changes: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match), limits.override(**changes):
        pass


def test_shapes_are_checked_on_every_coordinate() -> None:
    big = 2e7
    for shape in (
        Polygon(label="a", points_xy=[(0, 0), (big, 0), (0, 1)]),
        Polyline(label="a", points_xy=[(0, -big), (1, 1)]),
        Points(label="a", points_xy=[(big, 0)]),
        Box(label="a", xyxy=(0, 0, 1, big)),
        Ellipse(label="a", cx=0, cy=0, rx=1, ry=big),
        Ellipse(label="a", cx=0, cy=0, rx=1, ry=1, rotation_deg=-big),
        Mask(label="a", bitmap=np.ones((2, 2), bool), left=int(big), top=0),
    ):
        with pytest.raises(ValueError, match=r"= -?2e\+07 is over the limit of 1e\+07"):
            limits.check_shape(shape)
        with limits.override(max_coordinate=big):
            limits.check_shape(shape)
    with pytest.raises(ValueError, match="a mask of 70000 x 1 px"):
        limits.check_shape(Mask(label="a", bitmap=np.ones((1, 70_000), bool), left=0, top=0))


def test_the_environment_raises_a_limit_for_the_command_line(tmp_path: Path) -> None:
    ids = np.zeros((1, 70_000), np.uint16)
    ids[0, :5] = 1
    tifffile.imwrite(tmp_path / "a.tif", ids)
    (tmp_path / "classes.json").write_text('{"1": "cavity"}')
    (tmp_path / "masks").mkdir()
    (tmp_path / "a.tif").rename(tmp_path / "masks" / "a.tif")
    args = [sys.executable, "-m", "defectlab.cli", "info", str(tmp_path)]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "over the limit of 65536 px per side" in " ".join(refused.stderr.split())
    assert "DEFECTLAB_MAX_IMAGE_SIDE" in " ".join(refused.stderr.split())
    env = {**os.environ, "DEFECTLAB_MAX_IMAGE_SIDE": "70_000"}
    raised = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert raised.returncode == 0, raised.stderr
    assert "70000x1" in raised.stdout
    env["DEFECTLAB_MAX_IMAGE_SIDE"] = "lots"
    bad = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "error: environment variable DEFECTLAB_MAX_IMAGE_SIDE: expected a number, got 'lots'" in bad.stderr
