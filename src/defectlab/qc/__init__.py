"""Find labeling problems before they cost a training run: :func:`check`.

The checks, by family (every code, severity and fix is in :data:`CHECKS`):

``images``         missing or unreadable files, real size ≠ annotated size, sizes that differ
                   within a set, images without shapes (:mod:`.images`)
``labels``         undeclared and unused labels, a shape type that makes no sense for its
                   label — a polyline cavity (:mod:`.labels`)
``geometry``       fewer than 3 distinct vertices, zero area, no pixels, self-intersection,
                   outside the image, tiny shapes (:mod:`.geometry`)
``overlaps``       duplicates (same label, pixel IoU > 0.95), heavy overlaps, small background
                   holes enclosed by overlapping shapes (:mod:`.overlaps`)
``shape quality``  low solidity: two touching defects drawn as one, occluded defects
                   (:mod:`.shape_quality`)
``edges``          a boundary drawn at the wrong edge of the defect's dark contrast band
                   (cavities: inner edge; loops: outer edge), from the image (:mod:`.edges`)
``statistics``     per-label counts and size distributions; size outliers (:mod:`.stats`)

:func:`fix` repairs what needs no person — holes between masks, shapes outside the image,
duplicates — and writes a repaired copy of the export, listing every change (:mod:`.fix`).

Examples
--------
>>> import numpy as np
>>> from defectlab.model import Dataset, Ellipse, Item, Label, Polygon
>>> bowtie = Polygon(label="cavity", points_xy=[(10, 10), (30, 30), (30, 10), (10, 30)])
>>> disc = Ellipse(label="cavity", cx=50, cy=50, rx=8, ry=8)
>>> ds = Dataset((Label("cavity"),), (Item("a.png", (64, 64), (bowtie, disc, disc)),))
>>> result = check(ds, use_images=False)   # annotations only: no image files here
>>> sorted((f.code, f.shape) for f in result.findings if f.image == "a.png")
[('shape-duplicate', 2), ('shape-self-intersecting', 0)]
>>> result.failed("error")
True
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._parallel import ordered_map
from ..model import Dataset, Item
from .options import CheckOptions
from .context import ItemData
from .edges import edge_findings, guess_edge, resolve_edges
from .findings import CHECKS, SEVERITIES, CheckSpec, Finding, severity_rank
from .repair import FIXABLE, Change, FixResult, fix
from .geometry import geometry_findings
from .images import empty_findings, load_image, size_findings
from .labels import label_findings
from .overlaps import hole_findings, overlap_findings
from .reading import read_findings
from .result import FAIL_ON, CheckResult
from .shape_quality import solidity_findings
from .stats import LabelStats, ShapeRecord, label_stats, outlier_findings

__all__ = [
    "CHECKS", "CheckOptions", "CheckResult", "CheckSpec", "FAIL_ON", "Finding", "LabelStats", "SEVERITIES",
    "check", "guess_edge", "resolve_edges", "FIXABLE", "Change", "FixResult", "fix",
]

def _dataset(dataset: Dataset | str | Path, images: str | Path | None, verb: str, *,
             lenient: bool = False) -> Dataset:
    """``dataset`` itself, or the export read from that path (with ``images``; ``lenient``: what
    the strict reader refuses but can locate becomes a note instead of an error)."""
    if not isinstance(dataset, Dataset):
        from ..formats import read

        extra = {"lenient": True} if lenient else {}
        return read(dataset, images=images, **extra) if images is not None else read(dataset, **extra)
    if images is not None:
        raise ValueError(f"{verb}: images= is for reading an export from a path; a Dataset already knows its images")
    return dataset


def _unique_names(dataset: Dataset) -> Dataset:
    """The dataset, with items whose name repeats across subsets renamed ``"<subset>/<name>"``
    (a project export may hold ``img0.jpg`` in Train and in Test): findings name one image."""
    counts = Counter(it.name for it in dataset.items)
    if all(n == 1 for n in counts.values()):
        return dataset
    return dataset.with_items([replace(it, name=f"{it.subset}/{it.name}") if counts[it.name] > 1 and it.subset
                               else it for it in dataset.items])


def _check_item(config: CheckOptions, conventions: dict, needs_pixels: bool,
                item: Item) -> tuple[list[Finding], list[ShapeRecord], bool]:
    """Every per-image check of one item: its findings, its shapes' records, whether its image was read."""
    findings: list[Finding] = []
    image = None
    was_read = False
    if config.use_images:
        image, found = load_image(item, decode=needs_pixels)
        findings += found
        was_read = not found
    data = ItemData.build(item, line_width=config.line_width, image=image)
    findings += geometry_findings(data, min_area_px=config.min_area_px,
                                  outside_tolerance_px=config.outside_tolerance_px)
    findings += overlap_findings(data, duplicate_iou=config.duplicate_iou, overlap=config.overlap)
    findings += hole_findings(data, hole_area_px=config.hole_area_px)
    concave, solidities = solidity_findings(data, threshold=config.solidity)
    findings += concave
    off_edge, offsets = edge_findings(data, conventions, tolerance_px=config.edge_tolerance)
    findings += off_edge
    records: list[ShapeRecord] = []
    for i, shape in enumerate(item.shapes):
        if shape.kind == "tag":
            continue
        crop = data.crops[i]
        box = crop.box_xyxy() if crop is not None and crop.area else shape.bbox_xyxy()
        records.append(ShapeRecord(item.name, i, shape.label, shape.kind, data.area_px(i),
                                   tuple(map(float, box)), solidities.get(i, math.nan),
                                   offsets.get(i, math.nan)))
    return findings, records, was_read


def check(
    dataset: Dataset | str | Path,
    options: CheckOptions | None = None,
    *,
    images: str | Path | None = None,
    progress: bool = False,
    **changes: Any,
) -> CheckResult:
    """Check a labeling export for the problems that spoil training.

    Parameters
    ----------
    dataset : Dataset, str or Path
        A dataset, or the path of an export, read leniently (``defectlab.read(path,
        lenient=True)``): what the strict reader refuses but can locate — an undeclared label, a
        missing attribute, a 2-point polygon, a non-numeric coordinate — becomes a finding with
        its file, line and shape (``read-refused``, ``shape-too-few-vertices``,
        ``label-undeclared``); only an unreadable file is an error.
    options : CheckOptions, optional
        Edge conventions, thresholds, the expected image size, whether to read the images
        (:class:`~defectlab.qc.options.CheckOptions`; default: its defaults).
    images : str or Path, optional
        Where the image files are, when ``dataset`` is a path (as ``defectlab.read``'s).
    progress : bool
        Show a progress bar over the images.
    **changes
        Fields of :class:`~defectlab.qc.options.CheckOptions` by name, applied over
        ``options``: ``edges={"loop": "outer"}``, ``solidity=0.9``, ``use_images=False``, ….

    Returns
    -------
    CheckResult
        ``result.findings`` (sorted, most serious first), ``result.stats`` per label,
        ``result.failed("error")``, ``result.to_dict()``, ``result.write_report(path)``.
        Findings name images by their name in the export; where one name appears in several
        subsets (project exports), as ``"<subset>/<name>"``.

    Raises
    ------
    ValueError
        A threshold out of range, ``edges`` naming an unknown label or a value other than
        inner/outer, or ``images`` given with a Dataset.
    TypeError
        A keyword that is no field of CheckOptions.
    DefectlabError
        ``dataset`` is a path that cannot be read.
    """
    from ..progress import progress_iter

    config = CheckOptions.build(options, **changes)
    dataset = _dataset(dataset, images, "check", lenient=True)
    dataset = _unique_names(dataset)
    conventions = resolve_edges(dataset.labels, dict(config.edges or ()))
    needs_pixels = any(edge for edge, _ in conventions.values())

    findings, places = read_findings(dataset.notes)
    findings += label_findings(dataset)
    findings += size_findings(dataset.items, expected_hw=config.image_size_hw)
    findings += empty_findings(dataset.items)
    records: list[ShapeRecord] = []
    images_read = 0
    # the images are independent: spread over the cores (config.workers), results in the images' order
    with ordered_map(_check_item, dataset.items, n_items=len(dataset), workers=config.workers,
                     shared=(config, conventions, needs_pixels)) as done:
        for item_findings, item_records, was_read in progress_iter(done, total=len(dataset), desc="check",
                                                                   enabled=progress):
            findings += item_findings
            records += item_records
            images_read += was_read
    findings += outlier_findings(records, z=config.outlier_z)
    if places:  # shapes a lenient read kept despite a problem: their findings name the file and line
        findings = [replace(f, file=places[(f.image, f.shape)][0], line=places[(f.image, f.shape)][1])
                    if f.file is None and (f.image, f.shape) in places else f for f in findings]

    order = {it.name: k for k, it in enumerate(dataset.items)}
    findings.sort(key=lambda f: (severity_rank(f.severity), -1 if f.image is None else order.get(f.image, 0),
                                 -1 if f.shape is None else f.shape, f.code))
    stats = label_stats(records, [lab.name for lab in dataset.labels], conventions)
    return CheckResult(dataset, config, findings, stats, conventions, records, images_read)
