"""The consoles of the command line and how a command fails: one line, exit code 1.

Every command prints through :data:`console` (stdout) and :data:`err_console` (stderr) and
ends a run that cannot go on with :func:`fail`. Messages are printed as written: a user's
text (a label name, a path holding ``[1]``) is never taken as rich markup.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["console", "err_console", "fail", "warn"]

console = Console()
err_console = Console(stderr=True)


def fail(err: Exception | str) -> NoReturn:
    """Print a defectlab error as one clear line on stderr and exit with code 1 (every command)."""
    err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def warn(message: str) -> None:
    """Print a warning line on stderr (a silent downgrade is never silent)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
