"""``classes.json``: the class table the training-data writers put beside their masks and targets.

Written by the ``unet``, ``maskrcnn`` and ``instance-tiff`` writers, read by training
(:mod:`defectlab.dl`) and by :func:`defectlab.formats.mask_images.read_masks`::

    {"0": {"name": "background", "color": "#000000", "edge": null, "type": "any"},
     "1": {"name": "cavity", "color": "#61b21f", "edge": "dark", "type": "ellipse"}, ...}

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.model import Dataset, Label
>>> path = pathlib.Path(tempfile.mkdtemp()) / "classes.json"
>>> write_classes(Dataset((Label("cavity", color="#61b21f"),), ()), path)
>>> read_classes(path)[1]["name"], read_classes(path)[0]["name"]
('cavity', 'background')
"""

from __future__ import annotations

import json
from pathlib import Path

from ..model import Dataset

__all__ = ["write_classes", "read_classes"]


def write_classes(dataset: Dataset, path: Path) -> None:
    """``classes.json``: ``{"0": {"name": "background", ...}, "1": {"name": ..., "color": ..., "edge": ...,
    "type": ...}}`` (``type``: the shape type the labeling tool declared, e.g. ``"polyline"``)."""
    classes: dict[str, dict] = {"0": {"name": "background", "color": "#000000", "edge": None, "type": "any"}}
    for i, lab in enumerate(dataset.labels, start=1):
        r, g, b = lab.rgb(i - 1)
        classes[str(i)] = {"name": lab.name, "color": f"#{r:02x}{g:02x}{b:02x}", "edge": lab.edge,
                           "type": lab.type}
    path.write_text(json.dumps(classes, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_classes(path: str | Path) -> dict[int, dict]:
    """Read ``classes.json`` back as ``{index: {"name", "color", "edge", "type"}}`` (``type`` only
    in files written since it was added)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {int(k): v for k, v in data.items()}
