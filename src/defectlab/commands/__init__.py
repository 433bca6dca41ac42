"""Command groups of the ``defectlab`` CLI beyond the core ones in ``defectlab.cli``.

Each module here defines ``register(app: typer.Typer) -> None`` adding its commands, and
must import only light modules at import time (no torch, no matplotlib). The list is
explicit: a module that fails to import breaks the CLI loudly instead of vanishing.
"""

MODULES: tuple[str, ...] = (
    "batch",
    "check",
    "export",
    "measure",
    "plan",
    "prepare",
    "train",
    "track",
)
