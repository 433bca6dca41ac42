"""``defectlab plan``: measure a labeled set and choose its training settings, each with its reason.

A thin door to :func:`defectlab.plan.plan_dataset`; the options and their help come from
:class:`defectlab.plan.PlanOptions` (one definition). Light at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def _help(name: str) -> str:
    from dataclasses import fields

    from ..plan.options import PlanOptions

    meta = {f.name: f.metadata for f in fields(PlanOptions)}[name]
    choices = meta.get("choices")
    return meta["help"] + (f" One of: {', '.join(choices)}." if choices else "")


def register(app: typer.Typer) -> None:
    """Add ``plan`` to the ``defectlab`` command line."""
    from ..plan.options import PlanOptions

    d = PlanOptions()

    @app.command(name="plan")
    def plan(
        data: Annotated[Path, typer.Argument(help="A labeling export: file, folder or .zip, in any readable format.")],
        out: Annotated[Optional[Path], typer.Option("--out", help="Folder to write plan.json into (created if missing; "
                                                                  "e.g. the model folder).")] = None,
        images: Annotated[Optional[Path], typer.Option("--images", help="Folder holding the image files, if not "
                                                                        "beside the export.")] = None,
        source_format: Annotated[Optional[str], typer.Option("--from", help="Input format, when detection from the "
                                                                            "path is not wanted.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (plan and fingerprint) instead "
                                                             "of tables.")] = False,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing plan.json in --out.")] = False,
        figure: Annotated[bool, typer.Option("--figure/--no-figure", help="With --out, also draw plan.png: the "
                                             "tile on the micrograph of the largest defect, and the defect sizes "
                                             "(needs matplotlib).")] = True,
        tile: Annotated[Optional[int], typer.Option("--tile", help=_help("tile_size"))] = None,
        overlap: Annotated[Optional[int], typer.Option("--overlap", help=_help("overlap"))] = None,
        normalization: Annotated[Optional[str], typer.Option("--normalization", help=_help("normalization"))] = None,
        augment: Annotated[Optional[str], typer.Option("--augment", help=_help("augment"))] = None,
        arch: Annotated[Optional[str], typer.Option("--arch", help=_help("arch"))] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=_help("batch_size"))] = None,
        steps: Annotated[Optional[int], typer.Option("--steps", help=_help("steps"))] = None,
        time: Annotated[Optional[str], typer.Option("--time", help=_help("time_budget_s"))] = None,
        device: Annotated[str, typer.Option("--device", help=_help("device"))] = d.device,
        step_seconds: Annotated[Optional[float], typer.Option("--step-seconds", help=_help("step_seconds"))] = None,
        context: Annotated[float, typer.Option("--context", help=_help("context"))] = d.context,
        touching: Annotated[float, typer.Option("--touching", help=_help("touching"))] = d.touching,
        pixel_size: Annotated[Optional[str], typer.Option("--pixel-size", help=_help("pixel_size"))] = None,
        line_width: Annotated[float, typer.Option("--line-width", help=_help("line_width"))] = d.line_width,
    ) -> None:
        """Measure a labeled set (sizes, bit depth, intensities, touching defects) and plan training from it."""
        import json

        from ..cli import console, fail
        from ..errors import DefectlabError, OutputError
        from ..formats import read
        from ..plan import PLAN_FILE, PlanOptions, plan_dataset, write_plan
        from ..plan.display import fingerprint_line, fingerprint_table, plan_table

        try:
            options = PlanOptions(tile_size=tile, overlap=overlap, normalization=normalization, augment=augment,
                                  arch=arch, batch_size=batch_size, steps=steps, time_budget_s=time, device=device,
                                  step_seconds=step_seconds, context=context, touching=touching,
                                  pixel_size=pixel_size, line_width=line_width)
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
            console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
        if written is not None:
            console.print(f"[green]wrote[/] {written}" + (f" and {drawn.name}" if drawn else ""), highlight=False)
        if figure and out is not None and drawn is None:
            console.print("[yellow]note:[/] no plan.png: matplotlib is missing (pip install 'defectlab[plot]') or "
                          "no labeled defect has a readable image", highlight=False)


def _figure(fp, plan, dataset, out: Path, context: float):
    """plan.png beside plan.json; None without matplotlib or without a defect to show."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from ..plan.figure import PLAN_FIGURE, write_plan_figure

    return write_plan_figure(fp, plan, dataset, out / PLAN_FIGURE, context=context)
