"""``defectlab suggest``: which unlabeled images to label next (:mod:`defectlab.dl.suggest`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..dl.options import PredictOptions
from ._console import console, fail
from ._options import with_options
from .train import _DEVICE, Overwrite

#: What ``suggest`` leaves to its defaults: it always augments, and writes CVAT pre-labels only.
_FIXED = ("tta", "probabilities")


def suggest(
    model: Annotated[Path, typer.Argument(help="A U-Net model folder (config.json + weights.pt).", metavar="MODEL")],
    unlabeled: Annotated[Path, typer.Argument(help="A folder of unlabeled images (searched recursively).",
                                              metavar="UNLABELED")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.", metavar="DIR")],
    options: PredictOptions,
    n: Annotated[int, typer.Option("--n", help="How many images to suggest.", metavar="N")] = 5,
    device: Annotated[str, typer.Option("--device", help=_DEVICE, metavar="DEVICE")] = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Which unlabeled images to label next: the most uncertain and most unlike the training set, with pre-labels.

    Score = uncertainty (1 - reliability, from test-time augmentation) + unlikeness to the
    training images (1 or more: flagged; needs the model folder's reference.json). Writes
    suggest.csv (every image, best first), CVAT pre-labels of the chosen ones
    (prelabels/annotations.xml), contact_sheet.png, and their predictions.
    """
    from rich.markup import escape
    from rich.table import Table

    from ..errors import DefectlabError

    try:
        from ..dl.model_io import load_model
        from ..dl.suggest import suggest_images
    except ImportError as err:
        fail(err)
    try:
        if not unlabeled.is_dir():
            raise DefectlabError(f"{unlabeled}: no such folder of unlabeled images")
        loaded = load_model(model, device=device)
        report = suggest_images(loaded, unlabeled, out, n=n, options=options, overwrite=overwrite, progress=True)
    except (DefectlabError, ValueError) as err:
        fail(err)
    table = Table("rank", "image", "score", "uncertainty", "unlikeness", "note", title="label these next")
    for r in report.chosen:
        table.add_row(str(r["rank"]), escape(r["image"]), f"{r['score']:.3f}", f"{r['uncertainty']:.3f}",
                      f"{r['unlikeness']:.2f}" + (" (flagged)" if r["flagged"] else ""), escape(r["note"]))
    console.print(table)
    console.print(f"[green]suggested[/] {escape(str(report))}", highlight=False)
    console.print(f"  pre-labels for CVAT: {escape(str(report.prelabels))}; all images ranked: "
                  f"{escape(str(report.out / 'suggest.csv'))}", highlight=False)
    for note in report.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``suggest`` to the ``defectlab`` app."""
    app.command("suggest")(with_options(exclude=_FIXED, options=PredictOptions)(suggest))
