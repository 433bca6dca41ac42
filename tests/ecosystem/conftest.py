"""napari on a headless machine: Qt's offscreen platform, and the two OpenGL queries that
return nothing there (vispy then fails on ``None.decode()``; the known edge case of
``QT_QPA_PLATFORM=offscreen``, vispy/vispy#2736) answered as a real GPU would."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MANIFEST = Path(__file__).resolve().parents[2] / "src" / "defectlab" / "napari" / "napari.yaml"


@pytest.fixture
def headless_gl(monkeypatch):
    """OpenGL extensions and texture sizes for napari's vispy layers when offscreen."""
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return
    for name in ("napari._vispy.utils.gl", "napari._vispy.layers.image", "napari._vispy.layers.base",
                 "napari._vispy.layers.labels", "napari._vispy.canvas"):
        module = importlib.import_module(name)
        if hasattr(module, "get_gl_extensions"):
            monkeypatch.setattr(module, "get_gl_extensions", lambda: "")
        if hasattr(module, "get_max_texture_sizes"):
            monkeypatch.setattr(module, "get_max_texture_sizes", lambda: (4096, 2048))


@pytest.fixture(scope="session")
def defectlab_plugin():
    """defectlab's npe2 manifest registered with napari's plugin manager, once (the entry
    point registers it in an installed defectlab; the tests read this checkout's file, and
    napari's command registry keeps a plugin's commands once registered)."""
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    manifest = PluginManifest.from_file(MANIFEST)
    if "defectlab" not in pm._manifests:
        pm.register(manifest)
    return manifest
