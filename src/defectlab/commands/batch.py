"""``defectlab batch measure | predict | convert``: many inputs, on Dask, resumable.

Thin wrappers over :func:`defectlab.batch.measure`, :func:`defectlab.batch.predict` and
:func:`defectlab.batch.convert` (same names, same defaults). Only light modules at import
time: dask, torch and the library are imported when a command runs.

Exit code 0 when every input is complete and current; 1 when some input failed (the
message says how many, ``OUT/_batch/index.html`` why) or the batch could not start; 130
when interrupted (Ctrl-C) — a rerun then does only what is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, List, Optional

import typer

from ..conversion import ConvertOptions
from ..dl.options import PredictOptions
from ..measurement.options import MeasureOptions
from ..reading import ReadOptions
from .._pages import fmt as _fmt
from ._options import with_options

batch_app = typer.Typer(
    name="batch",
    help="Many micrographs or exports at once, on Dask (a local cluster, or --scheduler tcp://HOST:PORT); resumable.",
    no_args_is_help=True,
)

_SCHED = ("An existing Dask cluster's scheduler, tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS, else a local "
          "cluster on this machine; 'sync' runs in this process without Dask).")
_WORKERS = "Worker processes of the local cluster (default: one per CPU core)."
#: Predict options of pre-labels and probability files, which a batch does not write.
_PRELABEL_ONLY = ("probabilities", "tolerance", "max_area_change")
_FORCE = "Redo every input, even those whose outputs are complete and current."
_FIGS = "Draw the size histograms of the batch (PNG)."
_PROGRESS = "Show a progress bar (and the Dask dashboard's address)."

Inputs = Annotated[List[str], typer.Argument(help="Files, folders, glob patterns (quoted), or list files (.txt: one per line).")]
Out = Annotated[Path, typer.Option("--out", help="Output folder: OUT/<input stem>/ per input, OUT/_batch/ report and tables.")]
Sched = Annotated[Optional[str], typer.Option("--scheduler", help=_SCHED)]
Workers = Annotated[Optional[int], typer.Option("--workers", min=1, help=_WORKERS)]
Force = Annotated[bool, typer.Option("--force", help=_FORCE)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help=_PROGRESS)]
Figures = Annotated[bool, typer.Option("--figures/--no-figures", help=_FIGS)]


def _run(call: Callable[[], Any]) -> None:
    """Run a batch, print what happened, exit 1 when some input failed."""
    from defectlab.errors import DefectlabError

    from ._console import console, err_console, fail, print_intervals

    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            report = call()
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: the report of what was done is in OUT/_batch/; run the same "
                          "command again to do only what is left", highlight=False)
        raise typer.Exit(130)
    except (DefectlabError, ValueError) as err:
        fail(err)
    m = report.measurement
    if m is not None and len(m.per_set):
        from rich.table import Table as RichTable

        unit = "nm" if m.calibrated else "px"
        dens = "density_per_um2" if m.calibrated else "density_per_px2"
        t = RichTable(title=f"Batch: {len(m.images)} image(s), {len(m.defects)} defect(s), sizes in {unit}")
        for h in ("label", "n", "sized", "per µm²" if m.calibrated else "per px²", f"mean {unit}", f"std {unit}",
                  "area frac"):
            t.add_column(h, justify="left" if h == "label" else "right", no_wrap=h == "label")
        for row in m.per_set.rows():
            t.add_row(*[_fmt(row[c], 3) for c in ("label", "count", "count_sized", dens, f"size_mean_{unit}",
                                                f"size_std_{unit}", "area_fraction")])
        console.print(t)
        print_intervals(m)
    for w in caught:
        err_console.print(f"[yellow]warning:[/] {w.message}", highlight=False, soft_wrap=True)
    if report.summary_error:
        err_console.print(f"[yellow]statistics not computed:[/] {report.summary_error}", highlight=False)
    console.print(f"[green]batch[/] {report}; report: {report.report_dir / 'index.html'}", highlight=False,
                  soft_wrap=True)
    failed = report.failed
    if failed:
        for f in failed[:10]:
            err_console.print(f"  [red]failed[/] {f.get('error', '')}", highlight=False, soft_wrap=True)
        if len(failed) > 10:
            err_console.print(f"  … and {len(failed) - 10} more (see {report.report_dir / 'report.json'})",
                              highlight=False)
        err_console.print(f"[bold red]error:[/] {len(failed)} of {len(report.units)} input(s) failed; the others are "
                          "complete (a rerun retries only the failed ones)", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@batch_app.command("measure")
@with_options(options=MeasureOptions)
def measure(
    inputs: Inputs,
    out: Out,
    options: MeasureOptions,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder holding the micrographs, if not beside "
                                                   "the exports.", metavar="DIR")] = None,
    figures: Figures = True,
    scheduler: Sched = None,
    workers: Workers = None,
    force: Force = False,
    progress: Progress = True,
) -> None:
    """Measure every labeled image of labeling exports (labels or predictions): one task per image."""
    from defectlab import batch

    _run(lambda: batch.measure(inputs, options, out=out, images=images, figures=figures, scheduler=scheduler,
                               workers=workers, force=force, progress=progress))


@batch_app.command("predict")
@with_options(options=MeasureOptions, prediction=PredictOptions, exclude=_PRELABEL_ONLY)
def predict(
    model: Annotated[Path, typer.Argument(help="A model folder (config.json + weights.pt), reachable by every worker.",
                                          metavar="MODEL")],
    inputs: Inputs,
    out: Out,
    options: MeasureOptions,
    prediction: PredictOptions,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA > MPS > CPU on each worker), cpu, cuda, cuda:N or mps.")] = "auto",
    overlays: Annotated[bool, typer.Option("--overlays/--no-overlays", help="Write overlay.png per image.")] = True,
    figures: Figures = True,
    scheduler: Sched = None,
    workers: Workers = None,
    force: Force = False,
    progress: Progress = True,
) -> None:
    """Predict micrographs with a trained model and measure every defect: one task per image, the model loaded once per worker."""
    from defectlab import batch

    _run(lambda: batch.predict(model, inputs, options, out=out, prediction=prediction, device=device,
                               overlays=overlays, figures=figures, scheduler=scheduler, workers=workers, force=force,
                               progress=progress))


@batch_app.command("convert")
@with_options(options=ConvertOptions, read=ReadOptions)
def convert(
    inputs: Inputs,
    out: Out,
    options: ConvertOptions,
    read: ReadOptions,
    scheduler: Sched = None,
    workers: Workers = None,
    force: Force = False,
    progress: Progress = True,
) -> None:
    """Convert each labeling export to another format, OUT/<export stem>/: one task per export."""
    from defectlab import batch

    _run(lambda: batch.convert(inputs, options, out=out, read=read, scheduler=scheduler, workers=workers, force=force,
                               progress=progress))


def register(app: typer.Typer) -> None:
    """Add the ``batch`` command group to the ``defectlab`` app."""
    app.add_typer(batch_app, name="batch")
