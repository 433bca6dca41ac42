"""The ``defectlab`` command line: a thin layer over the library.

Every command is a call a notebook user can make too; errors defectlab raises on purpose
are printed as one clear line (no traceback) with exit code 1.
"""

from __future__ import annotations

import json
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import __version__
from .commands._console import console, err_console, fail
from .errors import DefectlabError

app = typer.Typer(
    name="defectlab",
    help="Labeling exports of microscopy defects → exact training data for U-Net and Mask R-CNN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Target(str, Enum):
    """Writable formats (see ``defectlab.formats``)."""

    unet = "unet"
    maskrcnn = "maskrcnn"
    coco = "coco"
    yolo = "yolo"
    cvat = "cvat"
    instance_tiff = "instance-tiff"
    imagej_roi = "imagej-roi"


def _version(value: bool) -> None:
    if value:
        console.print(f"defectlab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """defectlab: from labeling exports to training data, models and measurements."""


ImagesOpt = Annotated[Optional[Path], typer.Option("--images", help="Folder holding the image files, if not beside the export.")]


def _read(export: Path, images: Optional[Path]):
    from .formats import read

    return read(export, images=images) if images else read(export)



@app.command()
def info(
    export: Annotated[Path, typer.Argument(help="A labeling export: .xml, folder or .zip.")],
    images: ImagesOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Labels, shape counts by type and label, image sizes, and what was skipped and why."""
    try:
        ds = _read(export, images)
    except DefectlabError as err:
        fail(err)
    counts = ds.shape_counts()
    sizes = Counter(f"{it.size_hw[1]}x{it.size_hw[0]}" for it in ds.items)
    missing = sum(1 for it in ds.items if it.image is None)
    if as_json:
        print(json.dumps({
            "source": ds.source, "format": ds.format, "images": len(ds), "missing_images": missing,
            "subsets": ds.subsets(), "image_sizes_wh": dict(sizes),
            "labels": [{"name": lab.name, "color": lab.color, "type": lab.type, "edge": lab.edge,
                        "shapes": {k: n for (name, k), n in counts.items() if name == lab.name}}
                       for lab in ds.labels],
            "notes": [{"code": n.code, "item": n.item, "where": n.where, "message": n.message} for n in ds.notes],
        }, indent=2, ensure_ascii=False))
        return
    console.print(f"[bold]{ds.source}[/] ({ds.format}): {len(ds)} images"
                  + (f", subsets {', '.join(ds.subsets())}" if ds.subsets() else ""), highlight=False)
    kinds = sorted({k for _, k in counts})
    table = Table(title="Labels and shapes")
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("edge")
    for k in kinds:
        table.add_column(k, justify="right")
    for i, lab in enumerate(ds.labels, start=1):
        r, g, b = lab.rgb(i - 1)
        table.add_row(str(i), f"[rgb({r},{g},{b})]■[/] {lab.name}", lab.edge or "",
                      *[str(counts.get((lab.name, k), "")) for k in kinds])
    console.print(table)
    console.print("Image sizes (WxH): " + ", ".join(f"{s} ×{n}" for s, n in sizes.most_common()))
    if missing:
        console.print(f"[yellow]{missing} image file(s) not found[/] (use --images DIR)")
    if ds.notes:
        console.print(f"[yellow]{len(ds.notes)} note(s) on what was skipped:[/]")
        for note in ds.notes[:20]:
            console.print(f"  {note}", highlight=False)
        if len(ds.notes) > 20:
            console.print(f"  … and {len(ds.notes) - 20} more (see --json)")


@app.command()
def convert(
    export: Annotated[Path, typer.Argument(help="A labeling export: file, folder or .zip, in any readable format.")],
    to: Annotated[Target, typer.Option("--to", help="Output format.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (an .xml file for --to cvat).")],
    images: ImagesOpt = None,
    source_format: Annotated[Optional[str], typer.Option("--from", help="Input format, when detection from the path is not wanted.")] = None,
    stack: Annotated[Optional[bool], typer.Option("--stack", help="unet: also write images.npy and masks.npy [N,H,W].")] = None,
    one_hot: Annotated[Optional[bool], typer.Option("--one-hot", help="unet: also write onehot.npy [N,C,H,W].")] = None,
    visible_only: Annotated[Optional[bool], typer.Option("--visible-only/--full-extent", help="maskrcnn, instance-tiff: keep only the visible part of overlapped instances.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="yolo: detect (boxes) or segment (polygons).")] = None,
    line_width: Annotated[Optional[float], typer.Option(help="Width in px of polyline (dislocation line) masks.")] = None,
    link_images: Annotated[Optional[bool], typer.Option("--link-images", help="unet, maskrcnn: symlink images instead of copying.")] = None,
    copy_images: Annotated[Optional[bool], typer.Option("--copy-images/--no-copy-images", help="coco, yolo: copy the image files.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Convert an export to another format or to training data (--to unet | maskrcnn | coco | yolo | cvat | instance-tiff)."""
    import inspect

    from .formats import FORMATS, read, write

    given = {"stack": stack, "one_hot": one_hot, "visible_only": visible_only, "task": task,
             "line_width": line_width, "link_images": link_images, "copy_images": copy_images}
    given = {k: v for k, v in given.items() if v is not None}
    try:
        options: dict = {}
        if images:
            options["images"] = images
        ds = read(export, format=source_format, **options)
        accepted = inspect.signature(FORMATS[to.value].write).parameters
        wrong = [k for k in given if k not in accepted]
        if wrong:
            raise DefectlabError(
                f"--{wrong[0].replace('_', '-')} does not apply to --to {to.value}")
        if to is Target.cvat:
            if out.exists() and not overwrite:
                raise DefectlabError(f"{out}: exists; pass --overwrite to replace it")
        else:
            given["overwrite"] = overwrite
        if "progress" in accepted:
            given["progress"] = True
        report = write(ds, out, format=to.value, **given)
    except DefectlabError as err:
        fail(err)
    if report is None:
        console.print(f"[green]wrote[/] {len(ds)} images' labels -> {out}", highlight=False)
        return
    console.print(f"[green]wrote[/] {report}", highlight=False)
    if report.notes:
        codes = Counter(n.code for n in report.notes)
        console.print("[yellow]notes:[/] " + ", ".join(f"{c} ×{n}" for c, n in codes.items()))
        for note in report.notes[:10]:
            console.print(f"  {note}", highlight=False)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write images/ and annotations.xml into.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of images.")] = 8,
    size: Annotated[int, typer.Option(min=32, help="Image width and height in px.")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Generate synthetic TEM-like micrographs with exact labels, as a CVAT export."""
    from .preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    try:
        ds = make_synthetic_dataset(out, n_images=n, config=SyntheticConfig(size_hw=(size, size)), seed=seed,
                                    overwrite=overwrite)
    except DefectlabError as err:
        fail(err)
    counts = Counter(s.label for it in ds.items for s in it.shapes)
    console.print(f"[green]wrote[/] {len(ds)} synthetic images ({size}x{size}) with "
                  + ", ".join(f"{n} {k}" for k, n in counts.items()) + f" -> {out}", highlight=False)


@app.command()
def overlay(
    export: Annotated[Path, typer.Argument(help="A labeling export: .xml, folder or .zip.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the overlay PNGs.")],
    images: ImagesOpt = None,
    limit: Annotated[Optional[int], typer.Option(help="At most this many images.")] = None,
) -> None:
    """Draw the labels over the micrographs (one PNG per image)."""
    from .viz import write_overlays

    try:
        paths = write_overlays(_read(export, images), out, limit=limit)
    except DefectlabError as err:
        fail(err)
    console.print(f"[green]wrote[/] {len(paths)} overlay picture(s) -> {out}", highlight=False)


def _register_command_modules() -> None:
    import importlib

    from .commands import MODULES

    for name in MODULES:
        importlib.import_module(f"{__package__}.commands.{name}").register(app)


_register_command_modules()

if __name__ == "__main__":  # pragma: no cover
    app()
