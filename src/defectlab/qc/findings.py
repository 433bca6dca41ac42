"""What a check finds: :class:`Finding`, the table of check codes, and severities.

Every finding has a code from :data:`CHECKS`, which gives its severity, a one-line
explanation and how to fix it. Severities, from most to least serious:

``error``    the export will train wrongly or not at all (a shape with no pixels, an image
             whose real size differs from the annotation, a duplicate, ...)
``warning``  probably a labeling mistake; look at it (a hole between masks, a boundary drawn
             at the wrong edge, two defects drawn as one, ...)
``info``     worth knowing, not necessarily wrong (a size outlier, what the reader skipped)

Examples
--------
>>> CHECKS["shape-duplicate"].severity
'error'
>>> f = Finding("shape-duplicate", "a.png", "same label, IoU 0.99 with shape 3", shape=4, label="cavity",
...             related=(3,), box_xyxy=(10.0, 12.0, 20.0, 22.0))
>>> f.severity, f.to_dict()["location"]
('error', {'x': 15.0, 'y': 17.0, 'box_xyxy': [10.0, 12.0, 20.0, 22.0]})
>>> f.where()
'a.png shape 4 at (15, 17)'

"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Severity", "SEVERITIES", "CheckSpec", "CHECKS", "Finding", "severity_rank"]

Severity = Literal["error", "warning", "info"]

#: Severities from most to least serious.
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")


def severity_rank(severity: str) -> int:
    """0 for error, 1 for warning, 2 for info (lower is more serious)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"expected a severity in {SEVERITIES}, got {severity!r}") from None


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One kind of finding: its code, severity, what it means and how to fix it."""

    code: str
    severity: Severity
    family: str
    explanation: str
    fix: str


_SPECS = (
    # images
    CheckSpec("image-missing", "error", "images", "the image file was not found, so it cannot be trained on or checked",
              "put the file beside the export or under images/, or pass --images DIR"),
    CheckSpec("image-unreadable", "error", "images", "the image file exists but cannot be decoded",
              "re-export or re-save the image (PNG/TIFF)"),
    CheckSpec("image-size-mismatch", "error", "images",
              "the image file's real size differs from the size written in the annotations",
              "re-upload the right image to the labeling task, or resize it back before exporting"),
    CheckSpec("image-size-differs", "warning", "images",
              "the image's size differs from the most common size of its set (one size is expected)",
              "crop or resize the images to one size before labeling (e.g. 1024x1024)"),
    CheckSpec("image-no-shapes", "warning", "images", "the image has no shape at all",
              "label its defects, or remove it if it was left out by mistake (keep it if it truly has none)"),
    # labels
    CheckSpec("label-undeclared", "error", "labels", "a shape uses a label that the export does not declare",
              "add the label to the task's labels, or relabel the shape"),
    CheckSpec("label-unused", "info", "labels", "a declared label has no shape in the whole export",
              "remove the label, or label its defects"),
    CheckSpec("shape-kind-mismatch", "warning", "labels",
              "the label is drawn with a shape type that makes no sense for it (e.g. a cavity as a polyline)",
              "redraw the shape as an area (polygon, ellipse, mask) or with the label's declared type"),
    # geometry
    CheckSpec("shape-too-few-vertices", "error", "geometry",
              "a polygon with fewer than 3 distinct vertices (or a polyline with fewer than 2)",
              "delete the shape and redraw it"),
    CheckSpec("shape-zero-area", "error", "geometry", "an area shape whose geometric area is 0",
              "delete the shape and redraw it"),
    CheckSpec("shape-no-pixels", "error", "geometry",
              "the shape covers no pixel center of the image, so it is no training instance",
              "redraw it larger, or delete it if it is a slip of the mouse"),
    CheckSpec("shape-self-intersecting", "error", "geometry",
              "the polygon's outline crosses or touches itself; tools fill such polygons differently",
              "redraw the outline without crossings (split it into two shapes if it is two defects)"),
    CheckSpec("shape-outside-image", "warning", "geometry",
              "coordinates lie outside the image; the part outside is cut off",
              "move the vertices onto the image border"),
    CheckSpec("shape-tiny", "warning", "geometry", "the shape covers fewer pixels than the minimum area",
              "check that it is a real defect; delete it if it is a slip of the mouse"),
    # overlaps
    CheckSpec("shape-duplicate", "error", "overlaps",
              "two shapes of the same label cover (almost) the same pixels: one defect labeled twice",
              "delete one of the two"),
    CheckSpec("overlap-heavy", "warning", "overlaps",
              "two shapes overlap over most of the smaller one: one defect drawn twice, or an occluded "
              "defect not marked occluded",
              "delete one, or mark the hidden one as occluded"),
    CheckSpec("overlap-hole", "warning", "overlaps",
              "a small background pocket is enclosed by touching or overlapping shapes",
              "extend the shapes to cover it (it is usually defect, not background)"),
    # shape quality
    CheckSpec("shape-concave", "warning", "shape quality",
              "low solidity (area / convex hull area): maybe two touching defects drawn as one, or an "
              "occluded defect",
              "split touching defects into one shape each; mark an occluded one as occluded"),
    # edges
    CheckSpec("edge-off-convention", "warning", "edges",
              "the drawn boundary is off its label's edge convention (inner edge for cavities, outer "
              "edge for loops) by more than the tolerance",
              "redraw the boundary along the right edge of the dark contrast band"),
    # statistics
    CheckSpec("size-outlier", "info", "statistics",
              "the shape's area is far from its label's typical area (robust z-score of log area)",
              "check that the label and the outline are right"),
    # reader
    CheckSpec("read-refused", "error", "reader",
              "a part of the export the strict reader refuses (a missing or non-numeric attribute, a value out "
              "of range); check read past it and left it out, so it is neither checked nor trained on",
              "correct the element at the line given (or delete it) in the labeling tool, and export again"),
    CheckSpec("read-note", "info", "reader", "the reader skipped or changed something in the export",
              "see the message; fix the export if something was lost"),
)

#: Every check code, with its severity and explanation, in report order.
CHECKS: dict[str, CheckSpec] = {spec.code: spec for spec in _SPECS}


def _num(v: float) -> float:
    return round(float(v), 3)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in an export.

    Parameters
    ----------
    code : str
        A key of :data:`CHECKS` (its severity follows from it).
    image : str or None
        The item's name; None for a finding about the whole export.
    message : str
        What was found, with the measured values.
    shape : int, optional
        Index of the shape in ``item.shapes``.
    label : str, optional
        The shape's (or finding's) label.
    related : tuple of int
        Other shapes involved (the other duplicate, the shapes around a hole).
    box_xyxy : (x1, y1, x2, y2), optional
        Where in the image, px (the shape's or the hole's bounds).
    value : float, optional
        The measured quantity the check compared with its threshold.
    xy : (x, y), optional
        The point to look at, px; default: the center of ``box_xyxy``.
    file, line : str and int, optional
        Where in the export's files (set for what a lenient read refused or noted).
    """

    code: str
    image: str | None
    message: str
    shape: int | None = None
    label: str | None = None
    related: tuple[int, ...] = ()
    box_xyxy: tuple[float, float, float, float] | None = None
    value: float | None = None
    xy: tuple[float, float] | None = None
    file: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if self.code not in CHECKS:
            raise ValueError(f"finding: expected a code in CHECKS, got {self.code!r}")
        object.__setattr__(self, "related", tuple(int(i) for i in self.related))
        if self.box_xyxy is not None:
            box = tuple(float(v) for v in self.box_xyxy)
            object.__setattr__(self, "box_xyxy", box)
            if self.xy is None:
                object.__setattr__(self, "xy", ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        if self.xy is not None:
            object.__setattr__(self, "xy", (float(self.xy[0]), float(self.xy[1])))

    @property
    def severity(self) -> Severity:
        return CHECKS[self.code].severity

    @property
    def spec(self) -> CheckSpec:
        return CHECKS[self.code]

    def where(self) -> str:
        """``"a.png shape 3 at (12.5, 40)"``, ``"a.png"``, ``"annotations.xml line 12"`` or ``"export"``."""
        place = "export" if self.image is None else self.image
        if self.image is not None and self.shape is not None:
            place += f" shape {self.shape}"
        if self.xy is not None:
            place += f" at ({round(self.xy[0], 1):g}, {round(self.xy[1], 1):g})"
        if self.line is not None:
            source = f"{Path(self.file).name} " if self.file else ""
            place += f" ({source}line {self.line})"
        return place

    def __str__(self) -> str:
        return f"{self.severity}: [{self.code}] {self.where()}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: code, severity, image, shape, label, related, message, location, value."""
        return {
            "code": self.code,
            "severity": self.severity,
            "image": self.image,
            "shape": self.shape,
            "label": self.label,
            "related": list(self.related),
            "message": self.message,
            "location": self.location(),
            "value": None if self.value is None else _num(self.value),
        }

    def location(self) -> dict[str, Any] | None:
        """``{"x", "y", "box_xyxy", "file", "line"}`` (the keys known), or None when nothing is."""
        out: dict[str, Any] = {}
        if self.xy is not None:
            out["x"], out["y"] = _num(self.xy[0]), _num(self.xy[1])
        if self.box_xyxy is not None:
            out["box_xyxy"] = [_num(v) for v in self.box_xyxy]
        if self.file is not None:
            out["file"] = self.file
        if self.line is not None:
            out["line"] = self.line
        return out or None
