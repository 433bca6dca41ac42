"""``import defectlab`` loads none of the ecosystem's libraries (napari, Qt, bioimage.io,
HyperSpy, roifile) nor torch: each is imported only where it is used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("napari", "npe2", "qtpy", "PyQt5", "vispy", "magicgui", "bioimageio", "hyperspy", "roifile", "torch",
         "matplotlib", "xarray")


def test_import_defectlab_loads_none_of_the_extras() -> None:
    code = ("import sys, json, defectlab, defectlab.formats, defectlab.imaging.micrograph, defectlab.imaging.hyperspy;"
            "import defectlab.cli;"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_the_extras_are_installed_where_make_test_runs() -> None:
    """``make test`` installs ``.[torch,dev]``: the ecosystem tests must not be skipped there."""
    import importlib

    for name in ("roifile", "napari", "pytestqt", "bioimageio.core", "hyperspy.api"):
        importlib.import_module(name)
