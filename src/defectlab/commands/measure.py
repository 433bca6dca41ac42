"""``defectlab measure`` and ``defectlab evaluate``: the CLI door to :mod:`defectlab.measurement`.

Their options are :class:`~defectlab.measurement.options.MeasureOptions` and
:class:`~defectlab.measurement.options.EvaluateOptions`, turned into flags by
:func:`~defectlab.commands._options.with_options`. Only light modules at import time; the
library is imported inside the commands.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..measurement.options import EvaluateOptions, MeasureOptions
from ..reading import ReadOptions
from .._pages import fmt as _fmt
from ._console import console, fail, print_intervals, print_notes
from ._options import with_options

_IMAGES = "Folder holding the micrographs (their calibration), if not beside the export."
_FIGS = "Draw the PNG figures (size histograms, predicted vs true sizes); --no-figures for tables only."
_OUT = "Output folder: tables, summary.json, figures, index.html."

Images = Annotated[Optional[Path], typer.Option("--images", help=_IMAGES, metavar="DIR")]
Out = Annotated[Path, typer.Option("--out", help=_OUT, metavar="DIR")]
Figures = Annotated[bool, typer.Option("--figures/--no-figures", help=_FIGS)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")]


def _print_notes(notes, warned: list[str]) -> None:
    for w in warned:
        console.print("[yellow]warning:[/] " + _escape(w), highlight=False, soft_wrap=True)
    print_notes([n for n in notes if n.code != "implausible-size"], limit=0, where=" (see summary.json)")


def _messages(caught) -> list[str]:
    """The warnings caught, each message once, in order."""
    return list(dict.fromkeys(str(w.message) for w in caught))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def register(app: typer.Typer) -> None:
    """Add ``measure`` and ``evaluate`` to the ``defectlab`` app."""

    @app.command()
    @with_options(options=MeasureOptions, read=ReadOptions)
    def measure(
        source: Annotated[Path, typer.Argument(
            help="Labels or predictions: a labeling export in any readable format, a folder of masks, a .zip.",
            metavar="SOURCE")],
        out: Out,
        options: MeasureOptions,
        read: ReadOptions,
        figures: Figures = True,
        overwrite: Overwrite = False,
        member: Annotated[Optional[List[Path]], typer.Option(
            "--member", metavar="PATH",
            help="The predictions of the same images by one member of the ensemble that predicted SOURCE "
                 "(repeat for each): the intervals then hold the spread between members. Default: "
                 "members/*/annotations.xml beside SOURCE, if any.")] = None,
    ) -> None:
        """Measure every defect in px and nm; counts, densities, size distributions, area fraction, swelling."""
        from ..errors import DefectlabError
        from ..measurement import measure as run
        from ..measurement.run import members_beside

        try:
            with warnings.catch_warnings(record=True) as caught:  # each warning once, as one line
                warnings.simplefilter("always", UserWarning)
                m = run(read.read(source), options, members=member or members_beside(source), progress=True)
                m.write(out, overwrite=overwrite, figures=figures)
        except (DefectlabError, ValueError) as err:
            fail(err)
        from rich.table import Table as RichTable

        unit = "nm" if m.calibrated else "px"
        border = "in" if options.include_border else "left out of"
        t = RichTable(title=f"Defects ({unit}; border-touching {border} sizes)")
        dens = "density_per_um2" if m.calibrated else "density_per_px2"
        cols = ["label", "count", "count_sized", dens, f"size_mean_{unit}", f"size_std_{unit}", "area_fraction",
                "swelling_percent"]
        heads = ["label", "n", "sized", "per µm²" if m.calibrated else "per px²", f"mean {unit}", f"std {unit}",
                 "area frac", "swelling %"]
        for h in heads:
            t.add_column(h, justify="left" if h == "label" else "right", no_wrap=h != "label")
        for row in m.per_set.rows():
            t.add_row(*[_escape(_fmt(row[c], 3)) for c in cols])
        console.print(t)
        print_intervals(m)
        _print_notes([n for n in m.notes if n.code != "no-calibration"],
                     _messages(caught))
        console.print(f"[green]wrote[/] {len(m.defects)} defects of {len(m.images)} image(s) -> "
                      f"{_escape(str(out))}/index.html", highlight=False)

    @app.command()
    @with_options(options=EvaluateOptions)
    def evaluate(
        predictions: Annotated[Path, typer.Argument(
            help="Predictions: CVAT pre-labels, a folder of instance masks, any readable export.",
            metavar="PREDICTIONS")],
        labels: Annotated[Path, typer.Argument(help="Ground-truth labels: a labeling export.", metavar="LABELS")],
        out: Out,
        options: EvaluateOptions,
        images: Images = None,
        figures: Figures = True,
        overwrite: Overwrite = False,
    ) -> None:
        """Score predictions against labels: precision/recall/F1 at an IoU, pixel IoU/Dice, COCO mAP, size errors."""
        from ..errors import DefectlabError
        from ..measurement import evaluate as run
        from .track import evaluate_tracks_command

        if evaluate_tracks_command(predictions, labels, out, iou=options.iou, overwrite=overwrite):
            return  # two CVAT video exports with tracks: tracks scored (MOTA, IDF1, HOTA)
        try:
            with warnings.catch_warnings(record=True) as caught:  # each warning once, as one line
                warnings.simplefilter("always", UserWarning)
                e = run(predictions, labels, options, images=images, progress=True)
                e.write(out, overwrite=overwrite, figures=figures)
        except (DefectlabError, ValueError) as err:
            fail(err)
        from rich.table import Table as RichTable

        o = e.overall
        console.print(f"objects match at [bold]IoU ≥ {e.iou_threshold:g}[/]: precision {_fmt(o['precision'])}, "
                      f"recall {_fmt(o['recall'])}, F1 {_fmt(o['f1'])} (TP {o['tp']}, FP {o['fp']}, FN {o['fn']}); "
                      f"pixel IoU {_fmt(o['pixel_iou'])}, Dice {_fmt(o['pixel_dice'])}; "
                      f"COCO mAP {_fmt(o['mAP'])} (AP50 {_fmt(o['AP50'])})", highlight=False)
        unit = "nm" if e.calibrated else "px"
        t = RichTable(title=f"Per label (IoU ≥ {e.iou_threshold:g}; sizes in {unit})")
        cols = ["label", "n_true", "n_pred", "precision", "recall", "f1", "ap", "size_mean_error_percent",
                "density_error_percent", "ks_pvalue"]
        heads = ["label", "true", "pred", "P", "R", "F1", "AP", "size err%", "dens err%", "KS p"]
        for h in heads:
            t.add_column(h, justify="left" if h == "label" else "right", no_wrap=h != "label")
        for row in e.per_class.rows():
            t.add_row(*[_escape(_fmt(row[c], 3)) for c in cols])
        console.print(t)
        _print_notes([n for n in e.notes if n.code != "no-calibration"],
                     _messages(caught))
        console.print(f"[green]wrote[/] evaluation of {o['images']} image(s) -> {_escape(str(out))}/index.html",
                      highlight=False)
