"""The command line end to end, through typer's runner and once as a real subprocess."""

from __future__ import annotations

import json
from collections import Counter
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from defectlab.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "export"
    result = runner.invoke(app, ["synth", str(out), "--n", "3", "--size", "128", "--seed", "4"])
    assert result.exit_code == 0, result.output
    return out


def test_synth_writes_a_cvat_export(export):
    root = ET.parse(export / "annotations.xml").getroot()
    images = root.findall("image")
    assert len(images) == 3
    for im in images:
        assert (export / "images" / im.get("name")).is_file()
        assert (im.get("width"), im.get("height")) == ("128", "128")


def test_info_json_counts_match_the_xml(export):
    result = runner.invoke(app, ["info", str(export), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    root = ET.parse(export / "annotations.xml").getroot()
    assert info["images"] == 3 and info["missing_images"] == 0
    assert info["image_sizes_wh"] == {"128x128": 3}
    for lab in info["labels"]:
        for kind, n in lab["shapes"].items():
            assert n == sum(1 for s in root.iter(kind) if s.get("label") == lab["name"])


def test_info_table(export):
    result = runner.invoke(app, ["info", str(export)])
    assert result.exit_code == 0
    assert "cavity" in result.output and "128x128" in result.output


def test_convert_unet_and_maskrcnn(export, tmp_path):
    result = runner.invoke(app, ["convert", str(export), "--to", "unet", "--out", str(tmp_path / "u"), "--stack"])
    assert result.exit_code == 0, result.output
    masks = sorted((tmp_path / "u" / "masks").glob("*.png"))
    assert len(masks) == 3
    m = np.asarray(Image.open(masks[0]))
    assert m.shape == (128, 128) and m.dtype == np.uint8 and m.max() >= 1
    assert np.load(tmp_path / "u" / "images.npy").shape == (3, 128, 128)
    result = runner.invoke(app, ["convert", str(export), "--to", "maskrcnn", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "m" / "targets").glob("*.npz"))) == 3


def test_convert_refuses_existing_output_without_overwrite(export, tmp_path):
    out = tmp_path / "u"
    assert runner.invoke(app, ["convert", str(export), "--to", "unet", "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["convert", str(export), "--to", "unet", "--out", str(out)])
    assert result.exit_code == 1
    assert "--overwrite" in result.output
    result = runner.invoke(app, ["convert", str(export), "--to", "unet", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0


def test_bad_input_gives_one_clear_line_and_exit_1(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<?xml version="1.0"?>\n<annotations>\n  <image id="0" name="a.png" width="8" height="8">\n')
    result = runner.invoke(app, ["info", str(bad)])
    assert result.exit_code == 1
    assert "bad.xml" in result.output and "line" in result.output
    assert "Traceback" not in result.output


def test_unknown_path_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope.xml")])
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_overlay_writes_pictures(export, tmp_path):
    result = runner.invoke(app, ["overlay", str(export), "--out", str(tmp_path / "ov"), "--limit", "2"])
    assert result.exit_code == 0, result.output
    pics = sorted((tmp_path / "ov").glob("*.png"))
    assert len(pics) == 2
    rgb = np.asarray(Image.open(pics[0]))
    assert rgb.shape == (128, 128, 3)
    assert (rgb[..., 0] != rgb[..., 1]).any()  # colored labels on a gray micrograph


def test_installed_entry_point_runs(export):
    result = subprocess.run([sys.executable, "-m", "defectlab.cli", "info", str(export), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 3


@pytest.mark.parametrize("target,extra", [
    ("coco", []), ("yolo", []), ("yolo", ["--task", "segment"]), ("instance-tiff", []), ("cvat", []),
])
def test_convert_between_formats_keeps_every_object(export, tmp_path, target, extra):
    """Each writable format read back holds one object per drawn shape, with the same labels."""
    import defectlab

    src = defectlab.read(export)
    expected = Counter(s.label for it in src for s in it.shapes)
    out = tmp_path / ("out.xml" if target == "cvat" else "out")
    result = runner.invoke(app, ["convert", str(export), "--to", target, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    back = defectlab.read(out)
    assert len(back) == len(src)
    assert Counter(s.label for it in back for s in it.shapes) == expected


def test_option_that_does_not_apply_is_refused(export, tmp_path):
    result = runner.invoke(app, ["convert", str(export), "--to", "coco", "--out", str(tmp_path / "c"), "--stack"])
    assert result.exit_code == 1
    assert "--stack does not apply to --to coco" in result.output
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------
# The house: every command in commands/, one registration style, loaded when used


def _group():
    import typer

    group = typer.main.get_command(app)
    return group, typer.Context(group)


def test_every_command_is_listed_with_its_own_help():
    """The table ``defectlab --help`` prints from holds each command's real first help paragraph."""
    import importlib
    import inspect

    from defectlab.commands import COMMANDS

    group, ctx = _group()
    assert group.list_commands(ctx)[:len(COMMANDS)] == list(COMMANDS)
    for name, (modules, text) in COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None, name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert first == text, f"{name}: the table says {text!r}, the command {first!r}"
        for module in (modules,) if isinstance(modules, str) else modules:
            assert inspect.isfunction(importlib.import_module(f"defectlab.commands.{module}").register)


def test_help_lists_every_command_without_importing_them():
    code = ("import sys; from typer.testing import CliRunner; from defectlab.cli import app; "
            "out = CliRunner().invoke(app, ['--help']).output; "
            "print(sorted(m for m in sys.modules if m.startswith('defectlab.commands.')")
    code += " and m not in ('defectlab.commands._console',))); print(out)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, _, help_text = run.stdout.partition("\n")
    assert first == "[]"
    from defectlab.commands import COMMANDS

    for name in COMMANDS:
        assert f"  {name} " in help_text


def test_cli_module_is_thin():
    """cli.py holds the app and its --version; the commands and the console helpers live elsewhere."""
    import ast
    from pathlib import Path

    import defectlab.cli as cli

    source = Path(cli.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["_version", "main"]
    assert len(source.splitlines()) < 60
    for path in (Path(cli.__file__).parent / "commands").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "from ..cli import" not in text and "from defectlab.cli import" not in text or path.name == "train.py", \
            f"{path.name} imports back from cli.py"


# ---------------------------------------------------------------------------------------------
# Issue 14: what a new user trips over


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_output_folders_respect_the_umask(export, tmp_path, mask):
    """Colleagues on a shared server can read the results: folders get 0777 & ~umask, as
    ordinary folders do (they were 0700, from mkdtemp)."""
    import os
    import stat

    commands = {
        "unet": ["convert", str(export), "--to", "unet", "--out"],
        "cvat": ["convert", str(export), "--to", "cvat", "--out"],
        "measure": ["measure", str(export), "--pixel-size", "0.5nm", "--no-figures", "--out"],
        "prepare": ["prepare", str(export), "--tile", "64", "--out"],
        "overlay": ["overlay", str(export), "--out"],
    }
    old = os.umask(mask)
    try:
        for name, args in commands.items():
            out = tmp_path / name
            result = runner.invoke(app, [*args, str(out)])
            assert result.exit_code == 0, (name, result.output)
            folders = [out] + [p for p in out.rglob("*") if p.is_dir()]
            for folder in folders:
                assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask, (name, folder)
            files = [p for p in out.rglob("*") if p.is_file()]
            readable = 0o444 & ~mask  # every file readable by whom the umask lets read
            assert files and all(stat.S_IMODE(p.stat().st_mode) & readable == readable for p in files), name
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def xml_alone(export, tmp_path_factory):
    """The export's annotations.xml alone in a folder; its images stay elsewhere."""
    folder = tmp_path_factory.mktemp("alone")
    (folder / "labels.xml").write_bytes((export / "annotations.xml").read_bytes())
    return folder / "labels.xml", export / "images"


@pytest.mark.parametrize("command", ["info", "check", "overlay", "measure", "prepare", "convert"])
def test_every_reading_command_takes_from_and_images(xml_alone, tmp_path, command):
    """#14.2: --from and --images (and --classes) for every command that reads an export."""
    xml, images = xml_alone
    out = {"info": [], "check": ["--fail-on", "never"], "overlay": ["--out", str(tmp_path / "o")],
           "measure": ["--pixel-size", "1nm", "--no-figures", "--out", str(tmp_path / "m")],
           "prepare": ["--tile", "64", "--out", str(tmp_path / "p")],
           "convert": ["--to", "unet", "--out", str(tmp_path / "u")]}[command]
    result = runner.invoke(app, [command, str(xml), "--from", "cvat", "--images", str(images), *out])
    assert result.exit_code == 0, result.output
    if command == "info":
        assert "image file(s) not found" not in result.output
    wrong = runner.invoke(app, [command, str(xml), "--from", "coco", *out])
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output and str(xml.name) in wrong.output
    classes = runner.invoke(app, [command, str(xml), "--classes", "a,b", *out])
    assert classes.exit_code == 1 and "--classes" in classes.output and "cvat" in classes.output


def test_convert_to_yolo_writes_the_outlines_it_reads(export, tmp_path):
    """#14.7: polygons and ellipses became boxes, silently (the YOLO task defaulted to detect)."""
    result = runner.invoke(app, ["convert", str(export), "--to", "yolo", "--out", str(tmp_path / "y")])
    assert result.exit_code == 0, result.output
    assert "yolo-task" in result.output and "segment" in result.output
    lines = [ln.split() for p in (tmp_path / "y" / "labels").rglob("*.txt") for ln in p.read_text().splitlines()]
    assert lines and all(len(ln) > 5 for ln in lines)
    boxes = runner.invoke(app, ["convert", str(export), "--to", "yolo", "--task", "detect", "--out",
                                str(tmp_path / "d")])
    assert boxes.exit_code == 0 and "yolo-task" not in boxes.output
    lines = [ln.split() for p in (tmp_path / "d" / "labels").rglob("*.txt") for ln in p.read_text().splitlines()]
    assert lines and all(len(ln) == 5 for ln in lines)


def test_convert_to_cvat_into_a_folder_writes_annotations_xml(export, tmp_path):
    """#15.3: --to cvat --out DIR writes DIR/annotations.xml and DIR/images/, as CVAT's own task
    export with images; --no-copy-images the XML alone; a path ending in .xml is the file."""
    import defectlab

    result = runner.invoke(app, ["convert", str(export), "--to", "cvat", "--out", str(tmp_path / "dir")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["annotations.xml", "images"]
    back = defectlab.read(tmp_path / "dir")
    assert len(back) == 3 and all(it.image.path.is_file() for it in back)
    bare = runner.invoke(app, ["convert", str(export), "--to", "cvat", "--out", str(tmp_path / "xml"),
                               "--no-copy-images"])
    assert bare.exit_code == 0, bare.output
    assert sorted(p.name for p in (tmp_path / "xml").iterdir()) == ["annotations.xml"]
    again = runner.invoke(app, ["convert", str(export), "--to", "cvat", "--out", str(tmp_path / "dir")])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_info_shows_the_edge_check_would_use(export):
    """#14.10: info's edge column was empty while check guessed the edge from the label's name."""
    result = runner.invoke(app, ["info", str(export), "--json"])
    labels = {lab["name"]: lab for lab in json.loads(result.output)["labels"]}
    assert (labels["cavity"]["edge"], labels["cavity"]["edge_how"]) == ("inner", "guess")
    assert (labels["loop"]["edge"], labels["loop"]["edge_how"]) == ("outer", "guess")
    assert labels["precipitate"]["edge"] is None
    table = runner.invoke(app, ["info", str(export)], env={"COLUMNS": "200"}).output
    assert "inner (guess)" in table and "outer (guess)" in table
