"""Label checks: undeclared and unused labels, shape types that make no sense for a label."""

from __future__ import annotations

from collections import Counter

from ..model import Dataset, Label, Shape
from .findings import Finding

__all__ = ["AREA_DEFECT_WORDS", "LABEL_TYPE_KINDS", "kind_problem", "label_findings"]

#: Label-name fragments (lower case) of defects that have an area: a polyline or points
#: cannot outline them.
AREA_DEFECT_WORDS: tuple[str, ...] = ("bubble", "cavit", "void", "pore", "loop", "precipitat", "particle")

#: A label's declared type (CVAT's names) -> the shape kinds it allows ("any": all).
LABEL_TYPE_KINDS: dict[str, frozenset[str]] = {
    "polygon": frozenset({"polygon"}),
    "ellipse": frozenset({"ellipse"}),
    "rectangle": frozenset({"box"}),
    "bbox": frozenset({"box"}),
    "box": frozenset({"box"}),
    "polyline": frozenset({"polyline"}),
    "points": frozenset({"points"}),
    "mask": frozenset({"mask"}),
    "tag": frozenset({"tag"}),
    "skeleton": frozenset({"points"}),
}


def kind_problem(shape: Shape, label: Label | None) -> str | None:
    """Why ``shape``'s type makes no sense for its label, or None.

    Examples
    --------
    >>> import numpy as np
    >>> from defectlab.model import Polyline
    >>> kind_problem(Polyline(label="cavity", points_xy=np.array([[0, 0], [5, 5.0]])), Label("cavity"))
    'a cavity is an area; it cannot be outlined by a polyline'
    """
    if shape.kind == "tag":
        return None
    name = shape.label.lower()
    if not shape.is_area and any(word in name for word in AREA_DEFECT_WORDS):
        drawn = "points" if shape.kind == "points" else f"a {shape.kind}"
        return f"a {shape.label} is an area; it cannot be outlined by {drawn}"
    if label is not None:
        allowed = LABEL_TYPE_KINDS.get(label.type.lower())
        if allowed is not None and shape.kind not in allowed:
            drawn = "points" if shape.kind == "points" else f"a {shape.kind}"
            return f"label {label.name!r} is declared as type {label.type!r} but this shape is {drawn}"
    return None


def label_findings(dataset: Dataset) -> list[Finding]:
    """``label-undeclared``, ``shape-kind-mismatch`` (per shape) and ``label-unused`` (per label)."""
    declared = {lab.name: lab for lab in dataset.labels}
    used: Counter = Counter()
    out: list[Finding] = []
    for item in dataset.items:
        for index, shape in enumerate(item.shapes):
            used[shape.label] += 1
            box = None if shape.kind == "tag" else shape.bbox_xyxy()
            label = declared.get(shape.label)
            if label is None:
                out.append(Finding("label-undeclared", item.name,
                                   f"label {shape.label!r} is not declared; labels are {list(declared)}",
                                   shape=index, label=shape.label, box_xyxy=box))
            why = kind_problem(shape, label)
            if why:
                out.append(Finding("shape-kind-mismatch", item.name, why, shape=index, label=shape.label,
                                   box_xyxy=box))
    for name in declared:
        if not used[name]:
            out.append(Finding("label-unused", None, f"label {name!r} has no shape", label=name))
    return out
