"""``defectlab plan``: measure a labeled set and choose its training settings, each with its reason.

A thin door to :func:`defectlab.plan.plan_dataset`; the plan's options are the fields of
:class:`defectlab.plan.options.PlanOptions`, turned into flags by
:func:`~defectlab.commands._options.with_options`. Light at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..plan.options import PlanOptions
from ._console import console, fail
from ._options import with_options


def register(app: typer.Typer) -> None:
    """Add ``plan`` to the ``defectlab`` command line."""

    @app.command(name="plan")
    @with_options(options=PlanOptions)
    def plan(
        data: Annotated[Path, typer.Argument(help="A labeling export: file, folder or .zip, in any readable format.",
                                             metavar="DATA")],
        options: PlanOptions,
        out: Annotated[Optional[Path], typer.Option(
            "--out", help="Folder to write plan.json (and plan.png) into, created if missing: e.g. the model folder.",
            metavar="DIR")] = None,
        images: Annotated[Optional[Path], typer.Option(
            "--images", help="Folder holding the image files, if not beside the export.", metavar="DIR")] = None,
        source_format: Annotated[Optional[str], typer.Option(
            "--from", help="Input format, when detection from the path is not wanted.", metavar="FORMAT")] = None,
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print one JSON object (plan and fingerprint) instead of tables.")] = False,
        figure: Annotated[bool, typer.Option(
            "--figure/--no-figure", help="With --out, also draw plan.png: the tile on the micrograph of the largest "
                                         "defect, and the defect sizes (needs matplotlib).")] = True,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing plan.json in --out.")] = False,
    ) -> None:
        """Measure a labeled set (sizes, bit depth, intensities, touching defects) and plan training from it."""
        import json

        from ..errors import DefectlabError, OutputError
        from ..formats import read
        from ..plan import PLAN_FILE, plan_dataset, write_plan
        from ..plan.display import fingerprint_line, fingerprint_table, plan_table

        try:
            if out is not None and (out / PLAN_FILE).exists() and not overwrite:  # before reading every image
                raise OutputError(f"{out / PLAN_FILE}: exists; pass --overwrite to replace it")
            dataset = read(data, format=source_format, **({"images": images} if images is not None else {}))
            fp, made = plan_dataset(dataset, options, progress=not as_json)
            written = drawn = None
            if out is not None:
                written = write_plan(made, out, fingerprint=fp, options=options, overwrite=overwrite)
                if figure:
                    drawn = _figure(fp, made, dataset, out, options.context)
        except (DefectlabError, ValueError) as err:
            fail(err)
        if as_json:
            print(json.dumps({"plan": made.to_dict(), "fingerprint": fp.to_dict(),
                              "written": None if written is None else str(written)}, indent=2, ensure_ascii=False))
            return
        console.print(fingerprint_line(fp), highlight=False)
        console.print(fingerprint_table(fp))
        console.print(plan_table(made))
        for note in fp.notes[:10]:
            console.print(f"[yellow]note:[/] {_escape(str(note))}", highlight=False, soft_wrap=True)
        if written is not None:
            console.print(f"[green]wrote[/] {_escape(str(written))}" + (f" and {drawn.name}" if drawn else ""),
                          highlight=False)
        if figure and out is not None and drawn is None:
            console.print("[yellow]note:[/] no plan.png: matplotlib is missing (pip install 'defectlab[plot]') or "
                          "no labeled defect has a readable image", highlight=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _figure(fp, plan, dataset, out: Path, context: float):
    """plan.png beside plan.json; None without matplotlib or without a defect to show."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from ..plan.figure import PLAN_FIGURE, write_plan_figure

    return write_plan_figure(fp, plan, dataset, out / PLAN_FIGURE, context=context)
