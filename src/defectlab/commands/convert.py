"""``defectlab convert``: an export in another format, or as training data (:mod:`defectlab.conversion`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..conversion import ConvertOptions
from ..reading import ReadOptions
from ._console import console, fail, print_notes
from ._options import with_options


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the ``defectlab`` command line."""
    app.command(name="convert")(with_options(read=ReadOptions, options=ConvertOptions)(convert))


def convert(
    export: Annotated[Path, typer.Argument(help="A labeling export in any readable format: file, folder or .zip.",
                                           metavar="EXPORT")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (for --to cvat: the folder of annotations.xml, "
                                                    "or a file ending in .xml).", metavar="PATH")],
    options: ConvertOptions,
    read: ReadOptions,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Convert an export to another format or to training data."""
    from rich.markup import escape

    from ..conversion import convert as run
    from ..errors import DefectlabError

    try:
        options.writer_options()  # an option that does not apply: say so before reading
        result = run(read.read(export), out, options, overwrite=overwrite, progress=True)
    except DefectlabError as err:
        fail(err)
    if result.report is None:
        console.print(f"[green]wrote[/] {len(result.dataset)} images' labels -> {escape(str(result.path))}",
                      highlight=False)
    else:
        console.print(f"[green]wrote[/] {escape(str(result.report))}", highlight=False)
    print_notes(result.notes)
