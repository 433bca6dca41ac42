"""``defectlab overlay``: the labels drawn over the micrographs, one PNG per image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..reading import ReadOptions
from ._console import console, fail
from ._options import with_options


def register(app: typer.Typer) -> None:
    """Add ``overlay`` to the ``defectlab`` command line."""
    app.command(name="overlay")(with_options(read=ReadOptions)(overlay))


def overlay(
    export: Annotated[Path, typer.Argument(help="A labeling export in any readable format: file, folder or .zip.",
                                           metavar="EXPORT")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the overlay PNGs.", metavar="DIR")],
    read: ReadOptions,
    limit: Annotated[Optional[int], typer.Option(help="At most this many images.", metavar="N")] = None,
) -> None:
    """Draw the labels over the micrographs (one PNG per image)."""
    from rich.markup import escape

    from ..errors import DefectlabError
    from ..viz import write_overlays

    try:
        paths = write_overlays(read.read(export), out, limit=limit)
    except DefectlabError as err:
        fail(err)
    console.print(f"[green]wrote[/] {len(paths)} overlay picture(s) -> {escape(str(out))}", highlight=False)
