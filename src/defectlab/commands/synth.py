"""``defectlab synth``: synthetic TEM-like micrographs with exact labels, as a CVAT export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._console import console, fail


def register(app: typer.Typer) -> None:
    """Add ``synth`` to the ``defectlab`` command line."""
    app.command(name="synth")(synth)


def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write images/ and annotations.xml into.", metavar="OUT")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of images.", metavar="N")] = 8,
    size: Annotated[int, typer.Option(min=32, help="Image width and height in px.", metavar="PX")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed.", metavar="N")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
) -> None:
    """Generate synthetic TEM-like micrographs with exact labels, as a CVAT export."""
    from collections import Counter

    from ..errors import DefectlabError
    from ..preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    try:
        ds = make_synthetic_dataset(out, n_images=n, config=SyntheticConfig(size_hw=(size, size)), seed=seed,
                                    overwrite=overwrite)
    except DefectlabError as err:
        fail(err)
    counts = Counter(s.label for it in ds.items for s in it.shapes)
    console.print(f"[green]wrote[/] {len(ds)} synthetic images ({size}x{size}) with "
                  + ", ".join(f"{k} {name}" for name, k in counts.items()) + f" -> {out}", highlight=False)
