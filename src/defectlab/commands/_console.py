"""The consoles of the command line and how a command fails: one line, exit code 1.

Every command prints through :data:`console` (stdout) and :data:`err_console` (stderr) and
ends a run that cannot go on with :func:`fail`. Messages are printed as written: a user's
text (a label name, a path holding ``[1]``) is never taken as rich markup.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["console", "err_console", "fail", "print_notes", "warn"]

console = Console()
err_console = Console(stderr=True)


def fail(err: Exception | str) -> NoReturn:
    """Print a defectlab error as one clear line on stderr and exit with code 1 (every command)."""
    err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def warn(message: str) -> None:
    """Print a warning line on stderr (a silent downgrade is never silent)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_notes(notes, *, limit: int = 10, where: str = "") -> None:
    """The notes of a run: their codes counted on one line, then the first ``limit`` in full."""
    from collections import Counter

    if not notes:
        return
    codes = Counter(n.code for n in notes)
    console.print("[yellow]notes:[/] " + escape(", ".join(f"{c} ×{n}" for c, n in codes.items()) + where),
                  highlight=False)
    for note in list(notes)[:limit]:
        console.print(f"  {escape(str(note))}", highlight=False, soft_wrap=True)


def print_intervals(m: Any) -> None:
    """One line of a :class:`~defectlab.measurement.Measurement`'s density intervals per label
    (``measure``, ``batch``), if it has them."""
    from .._pages import fmt

    if m.intervals is None or not len(m.intervals):
        return
    dens = "density_per_um2" if m.calibrated else "density_per_px2"
    per = "per µm²" if m.calibrated else "per px²"
    rows = m.intervals.rows()
    ci = "; ".join(f"{r['label']} {fmt(r[dens], 3)} [{fmt(r[dens + '_lo'], 3)}, {fmt(r[dens + '_hi'], 3)}]"
                   for r in rows)
    k = int(rows[0]["members"])
    model = f", with the spread of {k} ensemble members" if k > 1 else ""
    console.print(f"density {per}, {float(rows[0]['level']):.0%} intervals{model}: {escape(ci)} "
                  "(intervals.csv: count, size, swelling too)", highlight=False)
