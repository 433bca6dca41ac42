"""Plan training from the data: the set's fingerprint, and the settings chosen from it, each with its reason.

Learned from nnU-Net's experiment planning (a fingerprint of the dataset decides patch size,
normalization, batch size), written for 2-D micrographs of defects: the defects' sizes set
the tile, 16-bit data keeps its depth, touching defects choose the instance model, and a
time budget sets the steps. No torch: numpy, scipy and scikit-image only.

::

    from defectlab.plan import plan_dataset, write_plan, plan_table
    fp, plan = plan_dataset("export/", images="micrographs/")
    plan.tile_size, plan.normalization, plan.reasons["tile_size"]
    write_plan(plan, "model/", fingerprint=fp)          # model/plan.json
    plan = plan.with_step_seconds(0.8)                   # after measuring the first steps

Modules: :mod:`~defectlab.plan.fingerprint` (what is measured), :mod:`~defectlab.plan.options`
(what can be given), :mod:`~defectlab.plan.planner` (the rules), :mod:`~defectlab.plan.files`
(``plan.json``), :mod:`~defectlab.plan.display` (tables).
"""

from __future__ import annotations

from pathlib import Path

from ..model import Dataset
from .files import PLAN_FILE, plan_from_dict, read_plan, write_plan
from .fingerprint import ClassStats, Fingerprint, ImageStats, Spread, fingerprint
from .options import PlanOptions, parse_duration
from .planner import CHOICES, Normalization, Plan, make_plan

__all__ = [
    "CHOICES", "ClassStats", "Fingerprint", "ImageStats", "Normalization", "PLAN_FILE", "Plan", "PlanOptions",
    "Spread", "fingerprint", "make_plan", "parse_duration", "plan_dataset", "plan_from_dict", "read_plan",
    "write_plan",
]


def plan_dataset(
    source: Dataset | str | Path,
    options: PlanOptions = PlanOptions(),
    *,
    images: str | Path | None = None,
    format: str | None = None,
    progress: bool = False,
) -> tuple[Fingerprint, Plan]:
    """Read a labeled set, measure its fingerprint, and plan from it.

    Parameters
    ----------
    source : Dataset or path
        A Dataset, or any labeling export :func:`defectlab.read` reads.
    options : PlanOptions
        Choices given instead of planned, and the planning settings.
    images : path, optional
        Folder of the image files, if not beside the export.
    format : str, optional
        The export's format, when detection from the path is not wanted.
    progress : bool
        Show a progress bar while the images are measured.

    Returns
    -------
    (Fingerprint, Plan)
    """
    if isinstance(source, Dataset):
        dataset = source
    else:
        from ..formats import read

        extra = {"images": images} if images is not None else {}
        dataset = read(source, format=format, **extra)
    fp = fingerprint(dataset, pixel_size=options.pixel_size, line_width=options.line_width, progress=progress)
    return fp, make_plan(fp, options)
