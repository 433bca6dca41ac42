"""``defectlab prepare``: tiles, splits and augmentations, written for training.

Light at import time: the library is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``prepare`` to the ``defectlab`` command line."""
    app.command(name="prepare")(prepare)


def _write_options(to: str, stack: bool, task: str) -> dict:
    from ..errors import FormatError

    options: dict = {}
    if stack:
        if to != "unet":
            raise FormatError("--stack applies to --to unet only")
        options["stack"] = True
    if task != "detect":
        if to != "yolo":
            raise FormatError("--task applies to --to yolo only")
        options["task"] = task
    elif to == "yolo":
        options["task"] = "detect"
    return options


def prepare(
    export: Annotated[Path, typer.Argument(help="A labeling export: .xml, folder or .zip (any readable format).")],
    to: Annotated[str, typer.Option("--to", help="Output kind: unet | maskrcnn | yolo | coco.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    tile: Annotated[str, typer.Option(help="Tile size in px: 256 or HxW; 0 keeps whole images.")] = "256",
    stride: Annotated[Optional[str], typer.Option(help="Step between tiles (default: the tile size).")] = None,
    pad: Annotated[bool, typer.Option("--pad", help="Pad at the right/bottom border instead of moving the last tiles inside.")] = False,
    split: Annotated[str, typer.Option(help="train,val,test shares, or 'keep' for the export's own subsets.")] = "0.8,0.1,0.1",
    stratify: Annotated[bool, typer.Option("--stratify", help="Balance label counts across splits.")] = False,
    spatial: Annotated[Optional[bool], typer.Option("--spatial/--no-spatial", help="Split each image into regions (default: only for a single image).")] = None,
    margin_px: Annotated[int, typer.Option("--margin-px", min=0, help="Spatial split: px left out between regions of different splits.")] = 0,
    augment: Annotated[Optional[List[str]], typer.Option(help="Augmentations for training tiles, e.g. flip,rot90,rotate=-30:30,noise=0:0.05@0.5.")] = None,
    copies: Annotated[int, typer.Option(min=0, help="Augmented copies per training tile.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the split, the empty-tile choice and the augmentations.")] = 0,
    min_visible: Annotated[Optional[float], typer.Option("--min-visible", help="Share of an instance a clipped remainder must show to be kept (default: 0 for unet, 0.25 otherwise).")] = None,
    keep_empty: Annotated[float, typer.Option("--keep-empty", min=0.0, max=1.0, help="Share of tiles without instances to keep.")] = 1.0,
    size: Annotated[Optional[str], typer.Option(help="Bring every image to this size first: 512 or HxW.")] = None,
    fit: Annotated[str, typer.Option(help="How --size is reached: scale | pad | letterbox.")] = "scale",
    normalization: Annotated[str, typer.Option(help="Normalization recorded for training and prediction: minmax | meanstd | none.")] = "minmax",
    line_width: Annotated[float, typer.Option(help="Width in px of polyline (dislocation line) masks.")] = 3.0,
    stack: Annotated[bool, typer.Option("--stack", help="unet: also write images.npy and masks.npy per split.")] = False,
    task: Annotated[str, typer.Option(help="yolo: detect (boxes) or segment (polygons).")] = "detect",
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder holding the image files, if not beside the export.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Tile, split and augment an export for training: --to unet | maskrcnn | yolo | coco."""
    from collections import Counter

    from rich.table import Table

    from ..cli import console, fail
    from ..errors import DefectlabError
    from ..preparation.pipeline import prepare as run_prepare

    try:
        report = run_prepare(
            export, out, to=to, tile=tile, stride=stride, pad=pad, split=split, stratify=stratify,
            spatial=spatial, margin_px=margin_px, augment=augment, copies=copies, seed=seed,
            min_visible=min_visible, keep_empty=keep_empty, size=size, fit=fit, normalization=normalization,
            line_width=line_width, images=images, write_options=_write_options(to, stack, task),
            overwrite=overwrite, progress=True,
        )
    except (DefectlabError, ValueError, FileNotFoundError) as err:
        fail(err)
    m = report.manifest
    splits = m["splits"]
    labels = [name for k, name in sorted(m["classes"].items(), key=lambda kv: int(kv[0])) if k != "0"]
    table = Table(title=f"defectlab prepare -> {out} ({to})")
    table.add_column("split")
    for col in ("images", "tiles", "augmented", "empty kept", "empty skipped"):
        table.add_column(col, justify="right")
    for s, c in splits.items():
        table.add_row(s, str(c["source_images"]), str(c["tiles"]), str(c["augmented_tiles"]),
                      str(c["empty_tiles_kept"]), str(c["empty_tiles_skipped"]))
    console.print(table)
    per_label = Table(title="instances in tiles (clipped by a tile border / dropped below --min-visible)")
    per_label.add_column("label")
    for s in splits:
        per_label.add_column(s, justify="right")
    for lab in labels:
        per_label.add_row(lab, *[f"{c['instances'].get(lab, 0)} ({c['clipped'].get(lab, 0)}/{c['dropped'].get(lab, 0)})"
                                 for c in splits.values()])
    console.print(per_label)
    if m["spatial_split"]:
        console.print(f"[yellow]spatial split:[/] {m['spatial_split']}", highlight=False)
    if splits["val"]["tiles"] == 0 and m["parameters"]["split"][1] > 0:
        console.print("[yellow]no validation tiles[/]: too few images or cells for the val share", highlight=False)
    if splits["test"]["tiles"] == 0 and m["parameters"]["split"][2] > 0:
        console.print("[yellow]no test tiles[/]: the test share rounds to 0 images or cells", highlight=False)
    console.print(f"normalization: {m['normalization']['method']}; manifest: {out / 'manifest.json'}", highlight=False)
    if report.notes:
        codes = Counter(n.code for n in report.notes)
        console.print("[yellow]notes:[/] " + ", ".join(f"{c} ×{n}" for c, n in codes.items()), highlight=False)
        for note in report.notes[:10]:
            console.print(f"  {note}", highlight=False)
