"""The ``defectlab`` command line: a thin layer over the library.

Every command is a call a notebook user can make too; it lives in :mod:`defectlab.commands`
(one module per command or pair, imported when the command runs), its options come from the
verb's options dataclass (:mod:`defectlab.commands._options`), and errors defectlab raises on
purpose are printed as one clear line (no traceback) with exit code 1
(:mod:`defectlab.commands._console`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import __version__
from .commands import LazyGroup
from .commands._console import console, err_console, fail  # noqa: F401  (the console helpers' old home)

app = typer.Typer(
    cls=LazyGroup,
    name="defectlab",
    help="Labeling exports of microscopy defects (CVAT, COCO, YOLO, VIA, LabelMe, Labelbox, mask images) → "
         "checks, exact training data, models and measurements in nm.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"defectlab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """defectlab: from labeling exports to training data, models and measurements."""


if __name__ == "__main__":  # pragma: no cover
    app()
