"""A plain ``pip install`` of the wheel, without extras, in a fresh venv (#14.13): every command
runs, or ends in one line naming the extra to install — never a traceback.

The wheel is built from this checkout; its dependencies come from the package index (pip's cache
makes a second run quick: ~1 min here). ``make test`` runs this like every other test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Commands that must work on a plain install, in order (each may use the outputs of those before).
WORKS = [
    ["synth", "ex", "--n", "2", "--size", "128"],
    ["info", "ex"],
    ["check", "ex", "--report", "report.html", "--fail-on", "never"],
    ["convert", "ex", "--to", "unet", "--out", "unet"],
    ["convert", "ex", "--to", "maskrcnn", "--out", "maskrcnn"],
    ["convert", "ex", "--to", "coco", "--out", "coco"],
    ["convert", "ex", "--to", "yolo", "--out", "yolo"],
    ["convert", "ex", "--to", "cvat", "--out", "cvat"],
    ["convert", "ex", "--to", "instance-tiff", "--out", "tiffs"],
    ["overlay", "ex", "--out", "overlays"],
    ["prepare", "ex", "--tile", "64", "--out", "tiles"],
    ["measure", "ex", "--pixel-size", "0.5nm", "--out", "measure"],
    ["evaluate", "cvat", "ex", "--pixel-size", "0.5nm", "--out", "scores"],
    ["plan", "ex"],
    ["batch", "measure", "ex", "--out", "batch", "--scheduler", "sync"],
    ["--help"],
]
#: Commands that need an extra: (arguments, the extra their one-line error must name).
NEEDS = [
    (["train", "unet", "tiles/train", "--out", "model"], "torch"),
    (["predict", "model", "ex/images", "--out", "predictions"], "torch"),
    (["suggest", "model", "ex/images", "--out", "next"], "torch"),
    (["batch", "predict", "model", "ex/images", "--out", "bp", "--scheduler", "sync"], "torch"),
    (["batch", "measure", "ex", "--out", "batch_dask"], "batch"),
    (["export", "model", "--to", "bioimageio", "model.zip"], "bioimageio"),  # torch is in it
    (["track", "ex", "--out", "tracks"], "track"),
]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A fresh venv with the wheel of this checkout and its core dependencies only."""
    tmp = tmp_path_factory.mktemp("plain")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    source = tmp / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True, env=env, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("defectlab-*.whl")
    with zipfile.ZipFile(wheel) as z:  # the weights `train --init synthetic` starts from travel in the wheel
        shipped = {n for n in z.namelist() if n.startswith("defectlab/dl/weights/unet-synthetic/")}
    assert {f"defectlab/dl/weights/unet-synthetic/{f}" for f in ("config.json", "weights.pt", "README.md")} <= shipped
    venv.create(tmp / "venv", with_pip=True)
    python = tmp / "venv" / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True,
                               text=True, env=env, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                            env=env, check=True).stdout.lower()
    for extra in ("torch", "dask", "laptrack", "bioimageio", "pyarrow"):  # really without the extras
        assert not re.search(rf"^{extra}[.=-]", listed, re.M), f"{extra} is installed in the plain venv"
    work = tmp / "work"
    work.mkdir()
    return tmp / "venv" / "bin" / "defectlab", work, {**env, "MPLBACKEND": "Agg"}


def _run(plain, args):
    exe, work, env = plain
    return subprocess.run([str(exe), *args], cwd=work, capture_output=True, text=True, env=env, timeout=600)


def test_every_command_works_or_names_its_extra(plain):
    for args in WORKS:
        run = _run(plain, args)
        assert run.returncode == 0, f"defectlab {' '.join(args)}:\n{run.stderr[-2000:]}"
        assert "Traceback" not in run.stderr
    exe, work, _ = plain
    assert (work / "measure" / "figures").is_dir() and any((work / "measure" / "figures").iterdir())
    assert (work / "report.html").stat().st_size > 10_000
    for args, extra in NEEDS:
        run = _run(plain, args)
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert run.returncode == 1 and "Traceback" not in run.stderr, f"defectlab {' '.join(args)}:\n{run.stderr}"
        assert len(errors) == 1 and f"pip install 'defectlab[{extra}]'" in errors[0], (args, run.stderr)
