"""``defectlab check``: find labeling problems in an export (a thin door to :func:`defectlab.qc.check`).

Exit codes: 0 no finding at or above ``--fail-on``; 1 the export could not be read (or a bad
option); 2 findings at or above ``--fail-on`` (default: error). With ``--fix OUT`` the exit code
still tells about the input export (the repaired copy can be checked on its own).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..qc.options import CheckOptions
from ..reading import ReadOptions
from ._console import console, fail
from ._options import with_options

__all__ = ["register", "error_dict"]

#: Exit code when findings at or above --fail-on exist.
EXIT_FINDINGS = 2


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    never = "never"


def error_dict(err: Exception) -> dict:
    """``{"type", "message", "file", "line"}`` of an error (file and line where it names them).

    Examples
    --------
    >>> from defectlab.errors import ParseError
    >>> error_dict(ParseError("a.xml", "malformed XML", line=3))
    {'type': 'ParseError', 'message': 'a.xml, line 3: malformed XML', 'file': 'a.xml', 'line': 3}
    """
    return {"type": type(err).__name__, "message": str(err), "file": getattr(err, "path", None),
            "line": getattr(err, "line", None)}


def register(app: typer.Typer) -> None:
    """Add ``check`` to the ``defectlab`` command line."""

    @app.command()
    @with_options(options=CheckOptions, read=ReadOptions)
    def check(
        export: Annotated[Path, typer.Argument(
            help="A labeling export in any readable format: file, folder or .zip.", metavar="EXPORT")],
        options: CheckOptions,
        read: ReadOptions,
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print one JSON object with a 'findings' list instead of tables.")] = False,
        report: Annotated[Optional[Path], typer.Option(
            "--report", help="Write an offline HTML report to this file.", metavar="FILE")] = None,
        fix_out: Annotated[Optional[Path], typer.Option(
            "--fix", help="Write a repaired copy of the export to this folder (holes between masks filled, shapes "
                          "clipped to the image, duplicates removed), with changes.json listing every change. "
                          "The input is never modified.", metavar="DIR")] = None,
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="Replace an existing --report file or --fix folder.")] = False,
        fail_on: Annotated[FailOn, typer.Option(
            "--fail-on", help="Exit with code 2 when findings of this severity or worse exist.")] = FailOn.error,
        limit: Annotated[int, typer.Option(help="Terminal output: list at most this many findings.",
                                           metavar="N")] = 40,
    ) -> None:
        """Find labeling problems: image sizes, holes between masks, bad shapes, duplicates,
        concave shapes, boundaries at the wrong edge, size outliers."""
        from ..errors import DefectlabError, OutputError
        from ..qc import check as run_check
        from ..qc import fix as run_fix
        from ..qc.repair import check_fix_target

        try:
            if report is not None and report.exists() and not overwrite:  # before minutes of work
                raise OutputError(f"{report}: exists; pass --overwrite to replace it")
            if fix_out is not None:
                check_fix_target(fix_out, export, overwrite=overwrite)
            dataset = read.read(export, lenient=True)
            result = run_check(dataset, options, progress=not as_json)
            written = result.write_report(report, overwrite=overwrite, progress=not as_json) if report else None
            fixed = None
            if fix_out is not None:
                fixed = run_fix(dataset, result, options, out=fix_out, overwrite=overwrite)
        except (DefectlabError, ValueError) as err:
            if as_json:  # scripts read JSON whatever happens
                print(json.dumps({"source": str(export), "error": error_dict(err), "findings": [], "failed": True},
                                 indent=2, ensure_ascii=False))
                raise typer.Exit(1)
            fail(err)
        failed = result.failed(fail_on.value)
        if as_json:
            payload = result.to_dict()
            payload["fail_on"] = fail_on.value
            payload["failed"] = failed
            payload["report"] = None if written is None else str(written)
            payload["fix"] = None if fixed is None else fixed.to_dict()
            print(json.dumps(payload, indent=2, ensure_ascii=False))
        else:
            _print_summary(console, result, limit=limit)
            if written is not None:
                console.print(f"[green]wrote[/] report -> {written}", highlight=False)
            if fixed is not None:
                _print_fix(console, fixed)
        if failed:
            raise typer.Exit(EXIT_FINDINGS)


def _print_summary(console, result, *, limit: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..qc.findings import CHECKS

    ds = result.dataset
    counts = result.counts()
    console.print(f"[bold]{escape(str(ds.source))}[/] ({ds.format}): {len(ds)} images, {result.images_read} read; "
                  f"[red]{counts['error']} error(s)[/], [yellow]{counts['warning']} warning(s)[/], "
                  f"[blue]{counts['info']} info[/]", highlight=False, soft_wrap=True)
    edges = [f"{escape(name)}: {e}" + (" [italic](guessed from the name; set with --edge)[/]" if how == "guess" else "")
             for name, (e, how) in result.edges.items() if e]
    if edges:
        console.print("Edge conventions: " + "; ".join(edges), highlight=False, soft_wrap=True)
    if result.findings:
        by_code = result.by_code()
        table = Table(title="Findings by check")
        for col in ("severity", "code", "count", "what it means"):
            table.add_column(col, justify="right" if col == "count" else "left")
        style = {"error": "red", "warning": "yellow", "info": "blue"}
        for code, spec in CHECKS.items():
            if by_code.get(code):
                table.add_row(f"[{style[spec.severity]}]{spec.severity}[/]", code, str(by_code[code]),
                              escape(spec.explanation))
        console.print(table)
        for f in result.findings[:limit]:
            console.print(f"  [{style[f.severity]}]{f.severity}[/] {escape(f'[{f.code}]')} {escape(f.where())}: "
                          f"{escape(f.message)}",
                          highlight=False, soft_wrap=True)
        if len(result.findings) > limit:
            console.print(f"  … and {len(result.findings) - limit} more (see --json or --report)")
    stats = Table(title="Per label")
    for col in ("label", "shapes", "images", "area_px median", "min", "max", "edge", "edge offset_px median"):
        stats.add_column(col, justify="left" if col in ("label", "edge") else "right")
    for s in result.stats.values():
        d = s.summary()
        a = d["area_px"]
        off = d["edge_offset_px_median"]
        fmt = lambda v: "" if v is None else f"{v:g}"  # noqa: E731
        stats.add_row(escape(s.label), str(s.n_shapes), str(s.n_images), fmt(a["median"]), fmt(a["min"]), fmt(a["max"]),
                      (s.edge or "") + (" (guess)" if s.edge_how == "guess" else ""),
                      "" if off is None else f"{off:+.2f}")
    console.print(stats)


def _print_fix(console, fixed) -> None:
    """Every change of ``--fix``, what was left alone and why, and where the copy went."""
    from rich.markup import escape

    from ..qc.repair import CHANGES_FILE

    console.print(f"[bold]Repaired copy[/] ({fixed.written_format}) -> {escape(str(fixed.out))}: "
                  f"{len(fixed.changes)} change(s), listed in {CHANGES_FILE} there", highlight=False, soft_wrap=True)
    for c in fixed.changes:
        console.print(f"  [green]{c.action}[/] {escape(c.where())}: {escape(c.message)}", highlight=False,
                      soft_wrap=True)
    for f, why in fixed.skipped:
        console.print(f"  [yellow]not fixed[/] {escape(f'[{f.code}]')} {escape(f.where())}: {escape(why)}",
                      highlight=False, soft_wrap=True)
    for note in fixed.notes:
        console.print(f"  [blue]note[/] {escape(note)}", highlight=False, soft_wrap=True)
    if fixed.not_fixable:
        console.print("  Left for a person: " + ", ".join(f"{code} ({n})" for code, n in sorted(fixed.not_fixable.items())),
                      highlight=False, soft_wrap=True)
