"""Batches of thousands of micrographs on Dask: measure, predict, convert — resumably.

Two doors to the same functions: ``defectlab batch measure | predict | convert`` on the
command line, and in Python::

    from defectlab import batch
    report = batch.measure(["export/"], out="meas/", pixel_size="0.38nm")        # local cluster
    report = batch.predict("model/", ["frames/*.tif"], out="pred/",
                           scheduler="tcp://10.0.0.5:8786")                        # an existing cluster
    report = batch.convert(["task1.zip", "task2.zip"], to="unet", out="unet/")
    report.ok, report.counts, report.failed       # what happened to each input
    report.measurement.per_set                    # statistics of the whole batch

Each input's results go to ``out/<input stem>/`` with a completion record; a rerun skips
what is complete and current (same input bytes, model, parameters and defectlab version)
and redoes the rest; one input's failure is recorded in ``out/_batch/report.json`` and
``index.html`` while the rest completes. Dask runs the work: a local cluster sized to the
machine by default, or an existing one (``scheduler=`` or ``DASK_SCHEDULER_ADDRESS``).
Needs ``pip install 'defectlab[batch]'`` (dask.distributed), except with ``scheduler="sync"``.

Modules: :mod:`~defectlab.batch.inputs` (what the inputs are), :mod:`~defectlab.batch.tasks`
(what is done to each), :mod:`~defectlab.batch.records` (complete and current),
:mod:`~defectlab.batch.runner` (Dask), :mod:`~defectlab.batch.summary` (the batch's
statistics), :mod:`~defectlab.batch.report` (the run report).

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> _ = make_synthetic_dataset(tmp / "export", n_images=3, config=SyntheticConfig(size_hw=(64, 64), n_lines=0))
>>> report = measure([tmp / "export"], out=tmp / "meas", pixel_size="0.5nm", scheduler="sync", progress=False)
>>> report.counts["done"], report.ok, int(report.measurement.per_set["images"][0])
(3, True, 3)
>>> measure([tmp / "export"], out=tmp / "meas", pixel_size="0.5nm", scheduler="sync", progress=False).counts["skipped"]
3
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..conversion import ConvertOptions
from ..dl.options import PredictOptions
from ..measurement.options import MeasureOptions
from ..reading import ReadOptions
from .inputs import BatchError, Unit, expand_inputs
from .report import BatchReport
from .runner import run_batch
from .tasks import BatchTask, ConvertTask, MeasureTask, PredictTask

__all__ = [
    "BatchError", "BatchReport", "BatchTask", "ConvertTask", "MeasureTask", "PredictTask", "Unit",
    "convert", "expand_inputs", "measure", "predict", "run_batch",
]

Inputs = Sequence[str | Path] | str | Path


def measure(
    inputs: Inputs,
    options: MeasureOptions | None = None,
    *,
    out: str | Path,
    images: str | Path | None = None,
    figures: bool = True,
    scheduler: Any = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    **changes: Any,
) -> BatchReport:
    """Measure every labeled image of labeling exports, one Dask task per image.

    ``inputs`` are exports (files, folders, .zip, globs, list files) that
    :func:`defectlab.read` reads: labels or predictions. Each image is measured as
    :func:`defectlab.measurement.measure` does (its micrograph read for calibration and
    intensity) into ``out/<image stem>/``; the batch's tables and statistics go to
    ``out/_batch/``. ``options`` (or its fields by name: ``pixel_size``, ``thickness``, …) are
    :class:`~defectlab.measurement.options.MeasureOptions`; the others are :func:`run_batch`'s.
    """
    task = MeasureTask(images=Path(images) if images is not None else None,
                       options=MeasureOptions.build(options, **changes), figures=figures)
    return run_batch(inputs, task, out=out, scheduler=scheduler, workers=workers, force=force, progress=progress)


def predict(
    model: str | Path,
    inputs: Inputs,
    options: MeasureOptions | None = None,
    *,
    out: str | Path,
    prediction: PredictOptions | None = None,
    device: str = "auto",
    overlays: bool = True,
    figures: bool = True,
    scheduler: Any = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    **changes: Any,
) -> BatchReport:
    """Predict micrographs with a trained model and measure every defect found, one Dask task per image.

    ``inputs`` are micrographs (files, folders searched recursively, globs, list files).
    Each worker loads the model once. ``out/<stem>/`` gets ``mask.png``, ``instances.tif``,
    ``overlay.png`` (and ``uncertainty.tif`` with ``tta``) and the image's defect table;
    ``out/_batch/`` the batch's tables and statistics. ``prediction``
    (:class:`~defectlab.dl.options.PredictOptions`) says how to predict, as for
    :func:`defectlab.dl.predict.predict_image`; ``options`` are
    :class:`~defectlab.measurement.options.MeasureOptions` (``pixel_size`` overrides the
    micrographs' calibration); either's fields may be given by name (``tile_size=512``,
    ``tta=True``, ``pixel_size="0.5nm"``); the others are :func:`run_batch`'s.
    """
    predict_changes, measure_changes = split_changes(changes, PredictOptions)
    task = PredictTask(model=Path(model), device=device, prediction=PredictOptions.build(prediction, **predict_changes),
                       overlays=overlays, options=MeasureOptions.build(options, **measure_changes), figures=figures)
    return run_batch(inputs, task, out=out, scheduler=scheduler, workers=workers, force=force, progress=progress)


def split_changes(changes: dict[str, Any], cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """``changes`` split into the fields of the options class ``cls`` and the rest."""
    from ..options import option_fields

    names = {f.name for f in option_fields(cls)}
    return ({k: v for k, v in changes.items() if k in names}, {k: v for k, v in changes.items() if k not in names})


def convert(
    inputs: Inputs,
    options: ConvertOptions | None = None,
    *,
    out: str | Path,
    read: ReadOptions | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    **changes: Any,
) -> BatchReport:
    """Convert each labeling export to the format ``options.to`` into ``out/<export stem>/``, one Dask task per export.

    ``options`` (or its fields by name: ``to="unet"``, ``stack=True``, …) are
    :class:`~defectlab.conversion.ConvertOptions`, as for :func:`defectlab.conversion.convert`;
    ``read`` (:class:`~defectlab.reading.ReadOptions`) says how the exports are read.
    """
    task = ConvertTask(options=ConvertOptions.build(options, **changes), read=read or ReadOptions())
    return run_batch(inputs, task, out=out, scheduler=scheduler, workers=workers, force=force, progress=progress)
