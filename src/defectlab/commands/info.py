"""``defectlab info``: what an export holds (:func:`defectlab.reading.describe`), as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..reading import ReadOptions
from ._console import console, fail
from ._options import with_options


def register(app: typer.Typer) -> None:
    """Add ``info`` to the ``defectlab`` command line."""
    app.command(name="info")(with_options(read=ReadOptions)(info))


def info(
    export: Annotated[Path, typer.Argument(help="A labeling export in any readable format: file, folder or .zip.",
                                           metavar="EXPORT")],
    read: ReadOptions,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Labels, shape counts by type and label, image sizes, and what was skipped and why."""
    from rich.markup import escape
    from rich.table import Table

    from ..errors import DefectlabError
    from ..reading import describe

    try:
        ds = read.read(export)
        d = describe(ds)
    except DefectlabError as err:
        fail(err)
    if as_json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return
    subsets = f", subsets {', '.join(d['subsets'])}" if d["subsets"] else ""
    console.print(f"[bold]{escape(str(d['source']))}[/] ({d['format']}): {d['images']} images{escape(subsets)}",
                  highlight=False)
    kinds = sorted({k for lab in d["labels"] for k in lab["shapes"]})
    table = Table(title="Labels and shapes")
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("edge")
    for k in kinds:
        table.add_column(k, justify="right")
    for i, (lab, label) in enumerate(zip(d["labels"], ds.labels), start=1):
        r, g, b = label.rgb(i - 1)
        edge = (lab["edge"] or "") + (" (guess)" if lab["edge_how"] == "guess" else "")
        table.add_row(str(i), f"[rgb({r},{g},{b})]■[/] {escape(lab['name'])}", edge,
                      *[str(lab["shapes"].get(k, "")) for k in kinds])
    console.print(table)
    sizes = sorted(d["image_sizes_wh"].items(), key=lambda kv: -kv[1])
    console.print("Image sizes (WxH): " + ", ".join(f"{s} ×{n}" for s, n in sizes))
    if d["missing_images"]:
        console.print(f"[yellow]{d['missing_images']} image file(s) not found[/] (use --images DIR)")
    notes = ds.notes
    if notes:
        console.print(f"[yellow]{len(notes)} note(s) on what was skipped:[/]")
        for note in notes[:20]:
            console.print(f"  {escape(str(note))}", highlight=False)
        if len(notes) > 20:
            console.print(f"  … and {len(notes) - 20} more (see --json)")
