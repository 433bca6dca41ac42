"""``defectlab prepare``: tiles, splits and augmentations, written for training.

Light at import time: the library is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..preparation.options import PrepareOptions
from ..reading import ReadOptions
from ._console import console, fail, print_notes
from ._options import with_options


def register(app: typer.Typer) -> None:
    """Add ``prepare`` to the ``defectlab`` command line."""
    app.command(name="prepare")(with_options(options=PrepareOptions, read=ReadOptions)(prepare))


def prepare(
    export: Annotated[Path, typer.Argument(help="A labeling export: file, folder or .zip, in any readable format.",
                                           metavar="EXPORT")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.", metavar="DIR")],
    options: PrepareOptions,
    read: ReadOptions,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Tile, split and augment an export for training, in a format prepare writes (--to)."""
    from rich.markup import escape
    from rich.table import Table

    from ..errors import DefectlabError
    from ..preparation.pipeline import prepare as run_prepare

    try:
        report = run_prepare(read.read(export), out, options, overwrite=overwrite, progress=True)
    except (DefectlabError, ValueError, FileNotFoundError) as err:
        fail(err)
    to = options.to
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
    print_notes(report.notes)
