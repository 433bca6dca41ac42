"""``defectlab batch measure | predict | convert``: many inputs, on Dask, resumable.

Thin wrappers over :func:`defectlab.batch.measure`, :func:`defectlab.batch.predict` and
:func:`defectlab.batch.convert` (same names, same defaults). Only light modules at import
time: dask, torch and the library are imported when a command runs.

Exit code 0 when every input is complete and current; 1 when some input failed (the
message says how many, ``OUT/_batch/index.html`` why) or the batch could not start; 130
when interrupted (Ctrl-C) — a rerun then does only what is left.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Callable, List, Optional

import typer

batch_app = typer.Typer(
    name="batch",
    help="Many micrographs or exports at once, on Dask (a local cluster, or --scheduler tcp://HOST:PORT); resumable.",
    no_args_is_help=True,
)

_SCHED = ("An existing Dask cluster's scheduler, tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS, else a local "
          "cluster on this machine; 'sync' runs in this process without Dask).")
_WORKERS = "Worker processes of the local cluster (default: one per CPU core)."
_FORCE = "Redo every input, even those whose outputs are complete and current."
_PIXEL = "Pixel size, overriding the files' calibration: 0.38nm, 3.8Å (a bare number is nm)."
_THICK = "Foil thickness, for density per volume and swelling: 80nm."
_BORDER = "Use defects touching the image border in size statistics (default: left out, their size is cut)."
_CAVITY = "A label that is a cavity (for swelling); repeat for several. Default: names with cavity/bubble/void/pore."
_SIZE = "Size measure of the distributions: diameter (equivalent) or major_axis."
_FIGS = "Draw the size histograms of the batch (PNG)."
_PROGRESS = "Show a progress bar (and the Dask dashboard's address)."

Inputs = Annotated[List[str], typer.Argument(help="Files, folders, glob patterns (quoted), or list files (.txt: one per line).")]
Out = Annotated[Path, typer.Option("--out", help="Output folder: OUT/<input stem>/ per input, OUT/_batch/ report and tables.")]
Sched = Annotated[Optional[str], typer.Option("--scheduler", help=_SCHED)]
Workers = Annotated[Optional[int], typer.Option("--workers", min=1, help=_WORKERS)]
Force = Annotated[bool, typer.Option("--force", help=_FORCE)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help=_PROGRESS)]
PixelSize = Annotated[Optional[str], typer.Option("--pixel-size", help=_PIXEL)]
Thickness = Annotated[Optional[str], typer.Option("--thickness", help=_THICK)]
Border = Annotated[bool, typer.Option("--include-border", help=_BORDER)]
Cavity = Annotated[Optional[List[str]], typer.Option("--cavity-label", help=_CAVITY)]
Size = Annotated[str, typer.Option("--size", help=_SIZE)]
Figures = Annotated[bool, typer.Option("--figures/--no-figures", help=_FIGS)]


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.3g}"
    return str(v)


def _run(call: Callable[[], Any]) -> None:
    """Run a batch, print what happened, exit 1 when some input failed."""
    from defectlab.cli import console, err_console, fail
    from defectlab.errors import DefectlabError

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
            t.add_row(*[_fmt(row[c]) for c in ("label", "count", "count_sized", dens, f"size_mean_{unit}",
                                                f"size_std_{unit}", "area_fraction")])
        console.print(t)
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
def measure(
    inputs: Inputs,
    out: Out,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder holding the micrographs, if not beside the exports.")] = None,
    pixel_size: PixelSize = None,
    thickness: Thickness = None,
    include_border: Border = False,
    cavity_label: Cavity = None,
    size: Size = "diameter",
    figures: Figures = True,
    scheduler: Sched = None,
    workers: Workers = None,
    force: Force = False,
    progress: Progress = True,
) -> None:
    """Measure every labeled image of labeling exports (labels or predictions): one task per image."""
    from defectlab import batch

    _run(lambda: batch.measure(inputs, out=out, images=images, pixel_size=pixel_size, thickness=thickness,
                               include_border=include_border, cavity_labels=cavity_label or None, size=size,
                               figures=figures, scheduler=scheduler, workers=workers, force=force, progress=progress))


@batch_app.command("predict")
def predict(
    model: Annotated[Path, typer.Argument(help="A model folder (config.json + weights.pt), reachable by every worker.")],
    inputs: Inputs,
    out: Out,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA > MPS > CPU on each worker), cpu, cuda, cuda:N or mps.")] = "auto",
    pixel_size: PixelSize = None,
    tile: Annotated[Optional[int], typer.Option(help="Tile size, px (default: the model's).")] = None,
    overlap: Annotated[Optional[int], typer.Option(help="Least tile overlap, px (default: the model's).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Tiles through the net at once (bounds a worker's memory) [about a megapixel's worth].")] = None,
    min_area: Annotated[int, typer.Option("--min-area", min=0, help="unet: objects under this many px get no instance.")] = 4,
    score_threshold: Annotated[float, typer.Option("--score-threshold", min=0.0, max=1.0, help="maskrcnn: least detection score kept.")] = 0.5,
    overlays: Annotated[bool, typer.Option("--overlays/--no-overlays", help="Write overlay.png per image.")] = True,
    thickness: Thickness = None,
    include_border: Border = False,
    cavity_label: Cavity = None,
    size: Size = "diameter",
    figures: Figures = True,
    scheduler: Sched = None,
    workers: Workers = None,
    force: Force = False,
    progress: Progress = True,
) -> None:
    """Predict micrographs with a trained model and measure every defect: one task per image, the model loaded once per worker."""
    from defectlab import batch

    _run(lambda: batch.predict(model, inputs, out=out, device=device, pixel_size=pixel_size, tile=tile,
                               overlap=overlap, batch_size=batch_size, min_area_px=min_area,
                               score_threshold=score_threshold, overlays=overlays, thickness=thickness,
                               include_border=include_border, cavity_labels=cavity_label or None, size=size,
                               figures=figures, scheduler=scheduler, workers=workers, force=force, progress=progress))


@batch_app.command("convert")
def convert(
    inputs: Inputs,
    to: Annotated[str, typer.Option("--to", help="Output format: unet, maskrcnn, coco, yolo, cvat, instance-tiff.")],
    out: Out,
    source_format: Annotated[Optional[str], typer.Option("--from", help="Input format, when detection from the path is not wanted.")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder holding the image files, if not beside the exports.")] = None,
    stack: Annotated[Optional[bool], typer.Option("--stack", help="unet: also write images.npy and masks.npy.")] = None,
    one_hot: Annotated[Optional[bool], typer.Option("--one-hot", help="unet: also write onehot.npy.")] = None,
    visible_only: Annotated[Optional[bool], typer.Option("--visible-only/--full-extent", help="maskrcnn, instance-tiff: only the visible part of overlapped instances.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="yolo: detect or segment.")] = None,
    line_width: Annotated[Optional[float], typer.Option(help="Width in px of polyline masks.")] = None,
    copy_images: Annotated[Optional[bool], typer.Option("--copy-images/--no-copy-images", help="coco, yolo: copy the image files.")] = None,
    scheduler: Sched = None,
    workers: Workers = None,
    force: Force = False,
    progress: Progress = True,
) -> None:
    """Convert each labeling export to another format, OUT/<export stem>/: one task per export."""
    from defectlab import batch

    given = {"stack": stack, "one_hot": one_hot, "visible_only": visible_only, "task": task,
             "line_width": line_width, "copy_images": copy_images}
    options = {k: v for k, v in given.items() if v is not None}
    _run(lambda: batch.convert(inputs, to=to, out=out, source_format=source_format, images=images,
                               scheduler=scheduler, workers=workers, force=force, progress=progress, **options))


def register(app: typer.Typer) -> None:
    """Add the ``batch`` command group to the ``defectlab`` app."""
    app.add_typer(batch_app, name="batch")
