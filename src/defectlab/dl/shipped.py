"""The starting points shipped with the package, and the kinds of defect class names stand for (no torch).

:data:`SHIPPED` names the trained models ``--init`` knows by name (``synthetic``: the U-Net
pretrained on defectlab's own synthetic micrographs, :mod:`defectlab.dl.warm_start`).
:func:`defect_kind` maps a class name to the kind of defect it names (:data:`SAME_KIND`: a
``bubble`` or a ``void`` is a ``cavity``), so that a class of a labeled set finds its row in a
pretrained net's head, and the plan (:mod:`defectlab.plan.planner`) can tell whether a shipped
model learned the set's classes.

Examples
--------
>>> defect_kind("Bubble"), defect_kind("dislocation_loop"), defect_kind("grain boundary")
('cavity', 'loop', 'grain boundary')
>>> shipped_kinds("synthetic")
('cavity', 'loop', 'precipitate', 'dislocation line')
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["FROM_SCRATCH", "SAME_KIND", "SHIPPED", "defect_kind", "shipped_kinds"]

#: The ``--init`` that starts from fresh weights (what a plan chooses when no shipped model fits).
FROM_SCRATCH = "scratch"

#: The shipped starting points ``--init`` knows by name: name -> folder in the package.
SHIPPED: dict[str, Path] = {"synthetic": Path(__file__).resolve().parent / "weights" / "unet-synthetic"}

#: Class names of the field that name the same kind of defect as the pretraining classes
#: (lowercased; spaces, hyphens and underscores alike).
SAME_KIND: dict[str, str] = {
    "bubble": "cavity", "bubbles": "cavity", "void": "cavity", "voids": "cavity", "cavities": "cavity",
    "pore": "cavity", "dislocation loop": "loop", "loops": "loop", "frank loop": "loop", "precipitates": "precipitate",
    "particle": "precipitate", "line": "dislocation line", "dislocation": "dislocation line",
    "dislocations": "dislocation line", "dislocation lines": "dislocation line",
}


def defect_kind(name: str) -> str:
    """The kind of defect a class name stands for (itself, normalized, if :data:`SAME_KIND` has no entry)."""
    key = " ".join(name.lower().replace("-", " ").replace("_", " ").split())
    return SAME_KIND.get(key, key)


def shipped_kinds(name: str) -> tuple[str, ...]:
    """The kinds of the foreground classes the shipped model ``name`` predicts (read from its ``config.json``)."""
    config = json.loads((SHIPPED[name] / "config.json").read_text(encoding="utf-8"))
    return tuple(defect_kind(c["name"]) for c in config["classes"] if c["index"] != 0)
