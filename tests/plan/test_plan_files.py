"""plan.json written, read back, refused when broken; the fingerprint's own measurements; the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from defectlab.cli import app
from defectlab.errors import DatasetError, ImageError, OutputError, ParseError
from defectlab.model import Dataset, Ellipse, Item, Label, Polygon
from defectlab.plan import PLAN_FILE, fingerprint, make_plan, read_plan, write_plan
from defectlab.plan.fingerprint import bit_depth_of

runner = CliRunner()


def small_plan():
    item = Item("a.png", (128, 128), (Ellipse(label="cavity", cx=40, cy=40, rx=9, ry=7),
                                     Ellipse(label="cavity", cx=90, cy=80, rx=12, ry=12)))
    array = np.random.default_rng(0).integers(0, 4096, (128, 128)).astype(np.uint16)
    fp = fingerprint(Dataset((Label("cavity"),), (item,)), arrays={"a.png": array})
    return fp, make_plan(fp)


def test_plan_json_round_trip(tmp_path):
    fp, plan = small_plan()
    path = write_plan(plan, tmp_path / "model", fingerprint=fp)
    assert path == tmp_path / "model" / PLAN_FILE
    back, doc = read_plan(tmp_path / "model")
    assert back == plan
    assert doc["fingerprint"]["classes"][0]["count"] == 2
    assert doc["fingerprint"]["bit_depth"] == 16
    with pytest.raises(OutputError, match="exists; pass overwrite=True"):
        write_plan(plan, tmp_path / "model")
    write_plan(plan.with_step_seconds(0.3), tmp_path / "model", overwrite=True)
    assert read_plan(path)[0].step_seconds == 0.3


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_plan_json_follows_the_umask(tmp_path, umask):
    _, plan = small_plan()
    old = os.umask(umask)
    try:
        path = write_plan(plan, tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["plan"].__setitem__("tile_size", "big"), "/plan/tile_size"),
    (lambda d: d["plan"].pop("arch"), "/plan"),
    (lambda d: d["plan"]["normalization"].__setitem__("method", "zscore"), "/plan/normalization"),
    (lambda d: d["plan"].__setitem__("given", ["colour"]), "/plan/given"),
    (lambda d: d.__setitem__("format", "nnunet"), "/format"),
])
def test_broken_plan_json_is_named(tmp_path, edit, where):
    _, plan = small_plan()
    path = write_plan(plan, tmp_path)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ParseError, match=f"plan.json \\({where}\\)"):
        read_plan(path)


def test_not_json_names_the_line(tmp_path):
    (tmp_path / PLAN_FILE).write_text('{\n  "format": "defectlab-plan",\n  oops\n}')
    with pytest.raises(ParseError, match="plan.json, line 3"):
        read_plan(tmp_path)


# ----------------------------------------------------------------------------------------
# The fingerprint's own measurements


def test_sizes_and_contacts_against_hand_counts():
    # Two squares sharing pixels (overlap), one touching them edge to edge, one apart.
    sq = lambda x, y, s: Polygon(label="precipitate", points_xy=[(x, y), (x + s, y), (x + s, y + s), (x, y + s)])  # noqa: E731
    shapes = (sq(10, 10, 10), sq(15, 15, 10), sq(25, 10, 5), sq(60, 60, 8))
    item = Item("a.png", (100, 100), shapes)
    fp = fingerprint(Dataset((Label("precipitate"),), (item,)), arrays={"a.png": np.zeros((100, 100), np.uint8)})
    (c,) = fp.classes
    assert c.count == 4 and c.images == 1
    assert c.touching == 3 / 4 and c.overlapping == 2 / 4
    assert c.extent_px.max == 10 and c.extent_px.min == 5
    assert c.diameter_px.max == pytest.approx(np.sqrt(4 * 100 / np.pi))
    assert not c.thin and c.elongation == pytest.approx(1.0)  # squares: extent² / area = 1
    assert fp.clipped_low == 1.0 and fp.clipped_high == 0.0  # every pixel at 0, the least uint8 value


def test_bit_depths():
    assert bit_depth_of(np.zeros(3, np.uint8)) == 8
    assert bit_depth_of(np.zeros(3, np.uint16)) == 16
    assert bit_depth_of(np.array([0, 65535], np.int32)) == 16  # a 16-bit PNG as Pillow reads it
    assert bit_depth_of(np.array([0, 70000], np.int32)) == 32
    assert bit_depth_of(np.zeros(3, np.float32)) == 32


def test_no_pixels_is_an_error_and_a_wrong_size_names_the_image():
    item = Item("a.png", (64, 64), (Ellipse(label="cavity", cx=20, cy=20, rx=5, ry=5),))
    with pytest.raises(DatasetError, match="no image files found"):
        fingerprint(Dataset((Label("cavity"),), (item,)))
    with pytest.raises(ImageError, match="image is 32x64 px \\(WxH\\), the labels of 'a.png' say 64x64"):
        fingerprint(Dataset((Label("cavity"),), (item,)), arrays={"a.png": np.zeros((64, 32), np.uint8)})


# ----------------------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan_cli") / "export"
    result = runner.invoke(app, ["synth", str(out), "--n", "2", "--size", "160", "--seed", "5"])
    assert result.exit_code == 0, result.output
    return out


def test_cli_prints_the_plan_and_writes_plan_json(export, tmp_path):
    result = runner.invoke(app, ["plan", str(export), "--out", str(tmp_path / "m"), "--time", "5min"])
    assert result.exit_code == 0, result.output
    for word in ("tile_size", "normalization", "augment", "arch", "steps", "the largest", "wrote"):
        assert word in result.output
    plan, doc = read_plan(tmp_path / "m" / PLAN_FILE)
    assert plan.budget_s == 300.0 and doc["options"]["time_budget_s"] == 300.0
    png = (tmp_path / "m" / "plan.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    quiet = runner.invoke(app, ["plan", str(export), "--out", str(tmp_path / "q"), "--no-figure"])
    assert quiet.exit_code == 0 and sorted(p.name for p in (tmp_path / "q").iterdir()) == [PLAN_FILE]
    again = runner.invoke(app, ["plan", str(export), "--out", str(tmp_path / "m")])
    assert again.exit_code == 1 and "exists; pass --overwrite" in again.output


def test_cli_json_and_overrides(export):
    result = runner.invoke(app, ["plan", str(export), "--json", "--tile", "96", "--arch", "unet", "--from", "cvat"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["plan"]["tile_size"] == 96 and doc["plan"]["reasons"]["tile_size"] == "given"
    assert doc["written"] is None
    assert {c["name"] for c in doc["fingerprint"]["classes"]} == {"cavity", "loop", "precipitate", "dislocation line"}


@pytest.mark.parametrize("args, message", [
    (["--time", "ten"], "--time: expected a duration with a unit such as 90s"),
    (["--arch", "maskrcnn"], "--arch: expected one of unet, stardist; got 'maskrcnn'"),
    (["--tile", "8"], "--tile: expected a number >= 32, got '8'"),
    (["--tile", "9.5"], "--tile: expected a whole number, got '9.5'"),
])
def test_cli_bad_options_are_one_line(export, args, message):
    result = runner.invoke(app, ["plan", str(export), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
