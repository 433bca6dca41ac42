"""Repair what a check found and can be repaired without a person: :func:`fix`.

Three kinds of finding are fixed; every change is listed (:class:`Change`), and the input
export is never modified — :meth:`FixResult.write` writes a repaired *copy*.

``shape-duplicate``      the later shape of the pair is removed, when the earlier one is kept
``shape-outside-image``  the shape is clipped to the image rectangle ``[0, W] x [0, H]``:
                         polygons with Sutherland–Hodgman (:func:`defectlab.raster.clip.clip_ring`);
                         ellipses and rotated boxes become polygons first (an ellipse as the
                         area-preserving polygon within 0.05 px of :func:`defectlab.raster.shape_polygons`);
                         axis-aligned boxes stay boxes (their corners are clamped: exact, and a
                         YOLO or COCO box export keeps boxes); masks are cropped; polylines are
                         cut where they leave the image (a line that re-enters gives several);
                         points outside are removed. A shape with nothing inside the image is
                         removed. Clipping at the image edges never changes the pixels inside.
``overlap-hole``         the enclosed background pocket is given to **one neighbor**: the shape
                         touching the pocket most (over the pocket's 8-neighbour ring) among those
                         of the surrounding label — the one label of the shapes around it, or
                         where they differ the label covering most of that ring — grows over the
                         pocket. The grown shape becomes the polygon traced from its pixels
                         (exactly those pixels: :func:`defectlab.raster.mask_to_polygons`), or a
                         mask where one polygon cannot hold them (a mask stays a mask).

Why grow a neighbor rather than add a shape for the pocket: a shape of its own would be a
new, tiny *instance* in Mask R-CNN / YOLO targets (a few pixels of "defect" between defects)
and be flagged ``shape-tiny`` by the next check; growing the neighbor gives the same
semantic mask and keeps one instance per defect.

A fix is not applied — and is listed in :attr:`FixResult.skipped` with the reason — where it
would give a shape type that the label's declared type forbids (an ``ellipse``-type cavity
cannot become a polygon), where the shape a duplicate repeats was itself removed, or where
the pocket is gone or bigger than ``hole_area_px``. Shapes with a label the export does not
declare get the label declared (a writer needs it), listed as a change too.

Examples
--------
>>> from defectlab.model import Dataset, Ellipse, Item, Label, Polygon
>>> square = Polygon(label="cavity", points_xy=[(-4, 10), (20, 10), (20, 30), (-4, 30)])
>>> disc = Ellipse(label="cavity", cx=50, cy=50, rx=8, ry=8)
>>> ds = Dataset((Label("cavity"),), (Item("a.png", (64, 64), (square, disc, disc)),))
>>> result = fix(ds)
>>> [(c.shape, c.action) for c in result.changes]
[(0, 'clipped'), (2, 'dropped')]
>>> result.dataset[0].shapes[0].points_xy.min(axis=0).tolist(), len(result.dataset[0].shapes)
([0.0, 10.0], 2)
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np

from ..errors import ImageError, OutputError
from ..model import Box, Dataset, Ellipse, Item, Label, Mask, Points, Polygon, Polyline, Shape
from ..raster import DEFAULT_LINE_WIDTH, Crop, mask_to_polygons, rasterize, shape_polygons
from ..raster.clip import clip_polyline, clip_ring
from .options import CheckOptions
from .context import ItemData
from .findings import Finding
from .geometry import self_intersections
from .labels import LABEL_TYPE_KINDS
from .overlaps import holes

__all__ = ["FIXABLE", "Change", "FixResult", "fix", "clip_shape", "check_fix_target", "CHANGES_FILE"]

#: The finding codes :func:`fix` repairs, in the order it applies them to an image.
FIXABLE: tuple[str, ...] = ("shape-duplicate", "shape-outside-image", "overlap-hole")

#: The file beside the repaired export that lists every change.
CHANGES_FILE = "changes.json"

#: Formats written back as they came; any other is written as CVAT XML.
_SAME_FORMAT = ("cvat", "coco", "yolo")


class _CannotFix(Exception):
    """A fix that would make things worse; the message says why."""


@dataclass(frozen=True, slots=True)
class Change:
    """One change made to the export.

    Attributes
    ----------
    image : str or None
        The image's name (as in the findings); None for a change to the whole export.
    action : str
        ``"dropped"``, ``"clipped"``, ``"filled-hole"`` or ``"declared-label"``.
    code : str
        The finding code it answers.
    message : str
        What was done, with the numbers.
    shape : int, optional
        The shape's index in the input image's shapes.
    new_shape : int, optional
        Its index in the repaired image's shapes (None when it was removed).
    """

    image: str | None
    action: str
    code: str
    message: str
    shape: int | None = None
    new_shape: int | None = None

    def where(self) -> str:
        if self.image is None:
            return "export"
        return self.image + ("" if self.shape is None else f" shape {self.shape}")

    def __str__(self) -> str:
        return f"{self.action}: {self.where()}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "shape": self.shape, "new_shape": self.new_shape, "action": self.action,
                "code": self.code, "message": self.message}


@dataclass
class FixResult:
    """What :func:`fix` changed.

    Attributes
    ----------
    dataset : Dataset
        The repaired dataset (same source, format and image names as the input).
    changes : list of Change
        Every change, image by image in dataset order.
    skipped : list of (Finding, str)
        Fixable findings left alone, with the reason.
    not_fixable : Counter
        The other findings by code: they need a person (see ``defectlab check``).
    original : Dataset
        The input dataset.
    line_width : float
        Width in px of polyline masks (used when writing polylines as outlines).
    out, written_format, notes
        Set by :meth:`write`: the folder written, its format, and what the writer noted.
    """

    dataset: Dataset
    changes: list[Change]
    skipped: list[tuple[Finding, str]] = field(default_factory=list)
    not_fixable: Counter = field(default_factory=Counter)
    original: Dataset | None = None
    line_width: float = DEFAULT_LINE_WIDTH
    out: Path | None = None
    written_format: str | None = None
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of changes per action."""
        return dict(Counter(c.action for c in self.changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: source, formats, out, counts, changes, skipped, not_fixed, notes (what ``changes.json`` holds)."""
        src = self.original or self.dataset
        return {
            "source": src.source,
            "format": src.format,
            "written_format": self.written_format,
            "out": None if self.out is None else str(self.out),
            "counts": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
            "skipped": [{"finding": f.to_dict(), "reason": why} for f, why in self.skipped],
            "not_fixed": dict(sorted(self.not_fixable.items())),
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {a}" for a, n in self.counts().items()) or "no change"
        return f"{counts}; {len(self.skipped)} fixable finding(s) skipped; {sum(self.not_fixable.values())} need a person"

    def write(self, out: str | Path, *, overwrite: bool = False) -> Path:
        """Write the repaired copy of the export to the folder ``out``, with ``changes.json``.

        The copy is in the input's format when defectlab writes it (CVAT XML, COCO, YOLO),
        else CVAT XML (a note says so): CVAT as ``out/annotations.xml`` + ``out/images/``, COCO
        and YOLO in their writers' layouts, image files copied where they are found. The
        folder is written atomically (:func:`defectlab._output.output_dir`); ``changes.json``
        (:meth:`to_dict`) lies in it beside the annotations.

        Raises
        ------
        OutputError
            ``out`` is the input export or lies inside it, holds an input file, or exists
            (without ``overwrite``).
        """
        from .._output import output_dir
        from .._output import input_paths
        from .reading import left_out

        src = self.original or self.dataset
        out = Path(out)
        check_fix_target(out, src, overwrite=overwrite)
        fmt = src.format if src.format in _SAME_FORMAT else "cvat"
        notes: list[str] = []
        refused = left_out(src.notes)
        if refused:
            notes.append(f"{len(refused)} part(s) of the export the strict reader refuses are not in the repaired "
                         f"copy (see the read-refused findings), e.g. {refused[0]}")
        if fmt != src.format:
            what = f"format {src.format!r} cannot be written back" if src.format else "the dataset has no export format"
            notes.append(f"{what}; the repaired copy is CVAT XML (annotations.xml + images/), which CVAT and "
                         "defectlab read")
        with output_dir(out, overwrite=overwrite, inputs=input_paths(src)) as tmp:
            if fmt == "cvat":
                notes += _write_cvat_copy(self.dataset, tmp)
            else:
                notes += _write_with_writer(self.dataset, tmp, fmt, src, self.line_width)
            self.out, self.written_format, self.notes = out, fmt, notes
            text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
            (tmp / CHANGES_FILE).write_text(text + "\n", encoding="utf-8")
        return out


def check_fix_target(out: str | Path, source: Dataset | str | Path | None, *, overwrite: bool = False) -> None:
    """Refuse a repaired copy's folder that is the input export, lies inside it, or exists.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> export = pathlib.Path(tempfile.mkdtemp())
    >>> check_fix_target(export / "fixed", export)
    Traceback (most recent call last):
    ...
    defectlab.errors.OutputError: ...fixed: lies inside the input export ...; write the repaired copy elsewhere
    """
    if isinstance(source, Dataset):
        source = source.source
    out = Path(out)
    if source:
        s, o = Path(source).absolute().resolve(), out.absolute().resolve()
        if o == s:
            raise OutputError(f"{out}: is the input export; write the repaired copy elsewhere")
        if s.is_dir() and o.is_relative_to(s):
            raise OutputError(f"{out}: lies inside the input export {source}; write the repaired copy elsewhere")
        if s.is_relative_to(o):
            raise OutputError(f"{out}: holds the input export {source}; write the repaired copy elsewhere")
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not overwrite:
            raise OutputError(f"{out}: exists and is not empty; pass overwrite=True (--overwrite) to replace it")


# ---------------------------------------------------------------------------------------------
# Fixing
# ---------------------------------------------------------------------------------------------


def fix(
    dataset: Dataset | str | Path,
    findings: Iterable[Finding] | Any = None,
    options: CheckOptions | None = None,
    *,
    images: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **changes: Any,
) -> FixResult:
    """Repair holes between masks, shapes outside the image and duplicates (see the module doc).

    Parameters
    ----------
    dataset : Dataset, str or Path
        The dataset that was checked (not ``CheckResult.dataset``, whose names may carry a
        ``"<subset>/"`` prefix), or the path of an export.
    findings : iterable of Finding, or CheckResult, optional
        What to fix; only codes in :data:`FIXABLE` are used, the others are counted in
        ``not_fixable``. Default: run :func:`defectlab.qc.check` on the annotations (no
        image files needed) with ``options``.
    options : CheckOptions, optional
        The check's options (:class:`~defectlab.qc.options.CheckOptions`); the repairs use
        ``hole_area_px`` (a pocket bigger than it, or than its finding says, is not filled),
        ``duplicate_iou``, ``outside_tolerance_px`` and ``line_width``. Default: those the
        ``findings`` were found with when they are a CheckResult, else the defaults.
    images : str or Path, optional
        Where the image files are, when ``dataset`` is a path.
    out : str or Path, optional
        Also write the repaired copy there (:meth:`FixResult.write`).
    overwrite : bool
        Replace an existing ``out``.
    progress : bool
        Show a progress bar while checking.
    **changes
        Fields of :class:`~defectlab.qc.options.CheckOptions` by name, applied over ``options``.

    Returns
    -------
    FixResult
        ``result.dataset`` (repaired), ``result.changes``, ``result.skipped``,
        ``result.write(out)``.
    """
    from . import _dataset, _unique_names, check
    from .result import CheckResult

    dataset = _dataset(dataset, images, "fix")
    if options is None and isinstance(findings, CheckResult):
        options = findings.config
    config = CheckOptions.build(options, **changes)
    if findings is None:
        findings = check(dataset, config, use_images=False, progress=progress).findings
    elif isinstance(findings, CheckResult):
        findings = findings.findings
    names = [it.name for it in _unique_names(dataset).items]
    index = {name: k for k, name in enumerate(names)}
    per_item: dict[int, list[Finding]] = {}
    result = FixResult(dataset, [], original=dataset, line_width=config.line_width)
    for f in findings:
        if f.code not in FIXABLE:
            result.not_fixable[f.code] += 1
        elif f.image not in index:
            result.skipped.append((f, f"no image called {f.image!r} in the dataset"))
        else:
            per_item.setdefault(index[f.image], []).append(f)
    items = list(dataset.items)
    labels = {lab.name: lab for lab in dataset.labels}
    for k in sorted(per_item):
        items[k] = _fix_item(items[k], names[k], per_item[k], labels, config, result)
    fixed = dataset.with_items(items)
    result.dataset = _declare_labels(fixed, result.changes)
    if any(c.action == "declared-label" for c in result.changes):
        result.not_fixable.pop("label-undeclared", None)
    if out is not None:
        result.write(out, overwrite=overwrite)
    return result


def _common(shape: Shape) -> dict[str, Any]:
    """The annotation fields every shape has (label, z_order, occluded, group, source, attributes)."""
    return {"label": shape.label, "z_order": shape.z_order, "occluded": shape.occluded, "group": shape.group,
            "source": shape.source, "attributes": dict(shape.attributes)}


def _allowed(label: Label | None) -> frozenset[str] | None:
    """Shape kinds the label's declared type allows; None: any."""
    return None if label is None else LABEL_TYPE_KINDS.get(label.type.lower())


def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_shape(shape: Shape, size_hw: tuple[int, int], label: Label | None = None,
               *, line_width: float = DEFAULT_LINE_WIDTH) -> tuple[list[Shape], str]:
    """``shape`` clipped to the image ``[0, W] x [0, H]``: the pieces (none: nothing is inside) and what was done.

    Parameters
    ----------
    shape : Shape
    size_hw : (int, int)
        Image height and width, px.
    label : Label, optional
        The shape's label; a declared type (``"ellipse"``, ``"polygon"``, ...) that forbids
        the clipped shape's kind makes the clip refused.
    line_width : float
        Width in px of polyline masks (used for pixel checks only).

    Raises
    ------
    ValueError
        The clipped shape would be of a kind the label's declared type forbids (message: why).

    Examples
    --------
    >>> from defectlab.model import Box
    >>> pieces, what = clip_shape(Box(label="loop", xyxy=(-3, 2, 5, 9)), (8, 8))
    >>> pieces[0].xyxy, what
    ((0.0, 2.0, 5.0, 8.0), 'box clipped to the image')
    """
    try:
        return _clip(shape, size_hw, _allowed(label), label, line_width)
    except _CannotFix as err:
        raise ValueError(str(err)) from None


def _clip(shape: Shape, size_hw: tuple[int, int], allowed: frozenset[str] | None, label: Label | None,
          line_width: float) -> tuple[list[Shape], str]:
    h, w = size_hw
    common = _common(shape)

    def need(kind: str) -> None:
        if allowed is not None and kind not in allowed:
            raise _CannotFix(f"label {shape.label!r} is declared as type {label.type!r}; clipping this "
                             f"{shape.kind} would make it a {kind}")

    if isinstance(shape, Box) and not shape.rotation_deg:
        x1, y1, x2, y2 = shape.xyxy
        x1, x2 = min(max(x1, 0.0), float(w)), min(max(x2, 0.0), float(w))
        y1, y2 = min(max(y1, 0.0), float(h)), min(max(y2, 0.0), float(h))
        if x2 <= x1 or y2 <= y1:
            return [], "nothing of it lies inside the image: removed"
        return [shape.replace(xyxy=(x1, y1, x2, y2))], "box clipped to the image"
    if isinstance(shape, (Polygon, Ellipse, Box)):
        need("polygon")
        ring = np.asarray(shape_polygons(shape, size_hw)[0][0], dtype=np.float64)
        clipped = clip_ring(ring, w, h)
        if len(clipped) < 3 or _ring_area(clipped) == 0:
            return [], "nothing of it lies inside the image: removed"
        what = (f"polygon clipped to the image ({len(ring)} -> {len(clipped)} vertices)" if isinstance(shape, Polygon)
                else f"{shape.kind} turned into a polygon ({'within 0.05 px' if isinstance(shape, Ellipse) else 'its corners'}) "
                     f"and clipped to the image")
        if len(self_intersections(clipped)) and not len(self_intersections(ring)):
            # a concave outline that leaves and re-enters: the clipped ring joins its parts along the
            # border with zero-width edges; a mask holds the same pixels without them
            need("mask")
            crop = rasterize(shape, size_hw).tight()
            if not crop.area:
                return [], "nothing of it lies inside the image: removed"
            return [Mask(bitmap=crop.bitmap, left=crop.x0, top=crop.y0, **common)], \
                f"{shape.kind} clipped to the image as a mask (its inside parts meet only along the border)"
        return [Polygon(points_xy=clipped, **common)], what
    if isinstance(shape, Mask):
        crop = rasterize(shape, size_hw).tight()
        if not crop.area:
            return [], "nothing of it lies inside the image: removed"
        return [shape.replace(bitmap=crop.bitmap, left=crop.x0, top=crop.y0)], "mask cropped to the image"
    if isinstance(shape, Polyline):
        pieces = clip_polyline(shape.points_xy, w, h)
        if not pieces:
            return [], "nothing of it lies inside the image: removed"
        what = "polyline clipped to the image" + (f", in {len(pieces)} pieces" if len(pieces) > 1 else "")
        return [shape.replace(points_xy=p) for p in pieces], what
    if isinstance(shape, Points):
        pts = shape.points_xy
        inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w) & (pts[:, 1] >= 0) & (pts[:, 1] <= h)
        if not inside.any():
            return [], "no point lies inside the image: removed"
        names = None if shape.names is None else tuple(n for n, keep in zip(shape.names, inside) if keep)
        return [shape.replace(points_xy=pts[inside], names=names)], f"{int((~inside).sum())} point(s) outside removed"
    raise _CannotFix(f"a {shape.kind} cannot be clipped")


def _fix_item(item: Item, name: str, found: list[Finding], labels: dict[str, Label], config: CheckOptions,
              result: FixResult) -> Item:
    """The item with its duplicates removed, its shapes clipped and its holes filled (in that order)."""
    shapes = list(item.shapes)
    n = len(shapes)
    changes: list[Change] = []

    def skip(f: Finding, why: str) -> None:
        result.skipped.append((f, why))

    by_code: dict[str, list[Finding]] = {code: [] for code in FIXABLE}
    for f in found:
        if f.code != "overlap-hole" and (f.shape is None or not 0 <= f.shape < n):
            skip(f, f"no shape {f.shape} on this image")
        else:
            by_code[f.code].append(f)

    dropped: dict[int, str] = {}
    for f in sorted(by_code["shape-duplicate"], key=lambda f: f.shape):
        j = f.shape
        if j in dropped:
            continue
        keeper = next((i for i in f.related if i != j and 0 <= i < n and i not in dropped), None)
        if keeper is None:
            skip(f, "the shape it repeats was removed already")
            continue
        dropped[j] = f"duplicate of shape {keeper} ({f.message}): removed"

    replaced: dict[int, tuple[list[Shape], str]] = {}
    for f in by_code["shape-outside-image"]:
        j = f.shape
        if j in dropped or j in replaced:
            continue
        try:
            replaced[j] = _clip(shapes[j], item.size_hw, _allowed(labels.get(shapes[j].label)),
                                labels.get(shapes[j].label), config.line_width)
        except _CannotFix as err:
            skip(f, str(err))

    new_shapes: list[Shape] = []
    origin: list[int] = []  # input index of each new shape
    for i, shape in enumerate(shapes):
        if i in dropped:
            changes.append(Change(name, "dropped", "shape-duplicate", dropped[i], shape=i))
            continue
        parts, what = replaced.get(i, ([shape], ""))
        if i in replaced:
            first = len(new_shapes) if parts else None
            if len(parts) > 1:
                what += f" (shapes {first}-{first + len(parts) - 1} of the repaired image)"
            changes.append(Change(name, "clipped" if parts else "dropped", "shape-outside-image", what,
                                  shape=i, new_shape=first))
        new_shapes += parts
        origin += [i] * len(parts)

    if by_code["overlap-hole"]:
        changes += _fill_holes(item, name, new_shapes, origin, by_code["overlap-hole"], labels, config, skip)
    result.changes.extend(changes)
    return replace(item, shapes=tuple(new_shapes)) if changes else item


def _boxes_meet(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _fill_holes(item: Item, name: str, shapes: list[Shape], origin: list[int], found: list[Finding],
                labels: dict[str, Label], config: CheckOptions, skip) -> list[Change]:
    """Grow a neighbor over each pocket that a finding points at; ``shapes`` is updated in place."""
    data = ItemData.build(replace(item, shapes=tuple(shapes)), line_width=config.line_width)
    pending = list(found)
    changes: list[Change] = []
    for box, pocket in holes(data):
        mine = [f for f in pending if f.box_xyxy is not None and _boxes_meet(box, f.box_xyxy)]
        if not mine:
            continue
        for f in mine:
            pending.remove(f)
        area = int(np.count_nonzero(pocket))
        limit = max(config.hole_area_px, *(f.value or 0.0 for f in mine))
        if area > limit:
            for f in mine:
                skip(f, f"the pocket there now has {area} px, more than {limit:g}")
            continue
        try:
            k, grown, how, around = _grow(shapes, box, pocket, item.size_hw, labels, config.line_width)
        except _CannotFix as err:
            for f in mine:
                skip(f, str(err))
            continue
        shapes[k] = grown
        changes.append(Change(name, "filled-hole", "overlap-hole",
                              f"background pocket of {area} px at x {box[0]}-{box[2]}, y {box[1]}-{box[3]} "
                              f"(shapes {', '.join(str(origin[i]) for i in around)} around it) added to this "
                              f"{grown.label!r} shape, {how}", shape=origin[k], new_shape=k))
    for f in pending:
        skip(f, "no enclosed background pocket there any more")
    return changes


def _window(crop: Crop, x0: int, y0: int, h: int, w: int) -> np.ndarray:
    """The crop's pixels in the frame of (h, w) pixels whose top-left is column x0, row y0."""
    out = np.zeros((h, w), dtype=bool)
    ch, cw = crop.bitmap.shape
    ax1, ay1 = max(x0, crop.x0), max(y0, crop.y0)
    ax2, ay2 = min(x0 + w, crop.x0 + cw), min(y0 + h, crop.y0 + ch)
    if ax2 > ax1 and ay2 > ay1:
        out[ay1 - y0 : ay2 - y0, ax1 - x0 : ax2 - x0] = crop.bitmap[ay1 - crop.y0 : ay2 - crop.y0,
                                                                    ax1 - crop.x0 : ax2 - crop.x0]
    return out


def _grow(shapes: list[Shape], box: tuple[int, int, int, int], pocket: np.ndarray, size_hw: tuple[int, int],
          labels: dict[str, Label], line_width: float) -> tuple[int, Shape, str, list[int]]:
    """The neighbor to grow over ``pocket`` and its grown shape: (index, shape, how, indices around)."""
    from scipy import ndimage

    x1, y1, _, _ = box
    fx, fy = x1 - 1, y1 - 1  # frame: the pocket's box grown by one pixel
    hole = np.pad(pocket, 1)
    ring = ndimage.binary_dilation(hole, structure=np.ones((3, 3), bool)) & ~hole
    fh, fw = ring.shape
    contact: dict[int, int] = {}
    by_label: dict[str, np.ndarray] = {}
    crops: dict[int, Crop] = {}
    for i, shape in enumerate(shapes):
        if not shape.is_area:
            continue
        crop = rasterize(shape, size_hw, line_width=line_width)
        touch = ring & _window(crop, fx, fy, fh, fw)
        if touch.any():
            contact[i], crops[i] = int(touch.sum()), crop
            by_label[shape.label] = by_label.get(shape.label, np.zeros_like(ring)) | touch
    if not contact:
        raise _CannotFix("no shape touches the pocket")
    first_seen = {}
    for i in contact:
        first_seen.setdefault(shapes[i].label, i)
    label = max(by_label, key=lambda lab: (int(by_label[lab].sum()), -first_seen[lab]))
    k = min((i for i in contact if shapes[i].label == label), key=lambda i: (-contact[i], i))
    target = shapes[k]
    crop = crops[k]
    # the grown pixels in a frame holding both the shape and the pocket
    gx1, gy1 = min(crop.x0, fx + 1), min(crop.y0, fy + 1)
    gx2 = max(crop.x0 + crop.bitmap.shape[1], fx + 1 + pocket.shape[1])
    gy2 = max(crop.y0 + crop.bitmap.shape[0], fy + 1 + pocket.shape[0])
    grown = _window(crop, gx1, gy1, gy2 - gy1, gx2 - gx1) | _window(Crop(fx + 1, fy + 1, pocket), gx1, gy1,
                                                                    gy2 - gy1, gx2 - gx1)
    allowed = _allowed(labels.get(label))
    common = _common(target)
    if isinstance(target, Mask) and (allowed is None or "mask" in allowed):
        return k, Mask(bitmap=grown, left=gx1, top=gy1, **common), "still a mask", sorted(contact)
    if allowed is None or "polygon" in allowed:
        rings, has_holes = mask_to_polygons(grown, x0=gx1, y0=gy1)
        if len(rings) == 1 and not has_holes:
            poly = Polygon(points_xy=rings[0], **common)
            back = rasterize(poly, size_hw).tight()
            if back.x0 == gx1 and back.y0 == gy1 and np.array_equal(back.bitmap, grown):
                how = ("its outline traced from its pixels" if isinstance(target, Polygon)
                       else f"now a polygon traced from its pixels (was a {target.kind})")
                return k, poly, how, sorted(contact)
    if allowed is None or "mask" in allowed:
        return k, Mask(bitmap=grown, left=gx1, top=gy1, **common), f"now a mask (was a {target.kind})", sorted(contact)
    raise _CannotFix(f"label {label!r} is declared as type {labels[label].type!r}: shape {k} cannot grow over "
                     "the pocket and keep that type")


def _declare_labels(dataset: Dataset, changes: list[Change]) -> Dataset:
    """Declare the labels that shapes use but the export does not (writers need them)."""
    declared = {lab.name for lab in dataset.labels}
    missing = list(dict.fromkeys(s.label for it in dataset.items for s in it.shapes if s.label not in declared))
    if not missing:
        return dataset
    for name in missing:
        changes.append(Change(None, "declared-label", "label-undeclared",
                              f"label {name!r} is used by shapes but was not declared: declared (type any)"))
    return replace(dataset, labels=dataset.labels + tuple(Label(name) for name in missing))


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _image_relpath(item: Item) -> PurePosixPath | None:
    """Where CVAT's reader looks for the item's image in an export folder; None for unsafe names."""
    p = PurePosixPath(item.name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts or ":" in p.parts[0]:
        return None
    return PurePosixPath("images", *((item.subset,) if item.subset else ()), *p.parts)


def _write_cvat_copy(dataset: Dataset, folder: Path) -> list[str]:
    """``annotations.xml`` + ``images/[<subset>/]<name>``; the notes on images not copied."""
    from ..formats.cvat_xml import write_cvat

    write_cvat(dataset, folder / "annotations.xml")
    missing, unsafe, done = [], [], set()
    for item in dataset.items:
        if item.image is None or not item.image.exists():
            missing.append(item.name)
            continue
        rel = _image_relpath(item)
        if rel is None or rel in done:
            unsafe.append(item.name)
            continue
        done.add(rel)
        dest = folder.joinpath(*rel.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if item.image.member is not None:
            dest.write_bytes(item.image.read_bytes())
        else:
            shutil.copyfile(item.image.path, dest)
    notes = []
    if missing:
        notes.append(f"{len(missing)} image file(s) not found, not copied (e.g. {missing[:3]}); put them in images/")
    if unsafe:
        notes.append(f"{len(unsafe)} image(s) with a name that is absolute, climbs out with '..' or repeats "
                     f"not copied (e.g. {unsafe[:3]}); read the copy with images=DIR")
    return notes


def _write_with_writer(dataset: Dataset, folder: Path, fmt: str, source: Dataset, line_width: float) -> list[str]:
    """COCO or YOLO through their writers, copying the images when every one is found."""
    from ..formats import write

    options: dict[str, Any] = {"line_width": line_width}
    if fmt == "yolo":  # a segmentation dataset has polygons; a detection one boxes only
        segment = any(s.is_area and not isinstance(s, Box) for it in source.items for s in it.shapes)
        options["task"] = "segment" if segment else "detect"
    notes = []
    copy = all(it.image is not None and it.image.exists() for it in dataset.items)
    if not copy:
        notes.append("some image files were not found: the repaired copy holds the annotations only; "
                     "copy the images into it yourself")
    try:
        report = write(dataset, folder, format=fmt, copy_images=copy, **options)
    except ImageError as err:
        if not copy:
            raise
        notes.append(f"images not copied ({err}); the repaired copy holds the annotations only")
        report = write(dataset, folder, format=fmt, copy_images=False, overwrite=True, **options)
    read_notes = set(map(str, dataset.notes))
    notes += [str(n) for n in getattr(report, "notes", []) if str(n) not in read_notes]
    return notes
