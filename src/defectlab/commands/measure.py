"""``defectlab measure`` and ``defectlab evaluate``: the CLI door to :mod:`defectlab.measure`.

Only light modules at import time; the library is imported inside the commands.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

_IMAGES = "Folder holding the micrographs (their calibration), if not beside the export."
_PIXEL = "Pixel size, overriding the files' calibration: 0.38nm, 3.8Å, 0.00038um (a bare number is nm)."
_THICK = "Foil thickness, for density per volume and swelling: 80nm."
_BORDER = "Use defects touching the image border in size statistics (default: left out, their size is cut)."
_CAVITY = "A label that is a cavity (for swelling); repeat for several. Default: names with cavity/bubble/void/pore."
_FIGS = "Draw the PNG figures (size histograms, predicted vs true sizes); --no-figures for tables only."
_SIZE = "Size measure of the distributions: diameter (equivalent) or major_axis (e.g. inclined loops)."


def _fmt(v: object, digits: int = 4) -> str:
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{digits}g}"
    return str(v)


def _print_notes(console, notes, warned: list[str]) -> None:
    from collections import Counter

    for w in warned:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    if notes:
        codes = Counter(n.code for n in notes)
        console.print("[yellow]notes:[/] " + ", ".join(f"{c} ×{n}" for c, n in codes.items()) + " (see summary.json)",
                      highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``measure`` and ``evaluate`` to the ``defectlab`` app."""

    @app.command()
    def measure(
        source: Annotated[Path, typer.Argument(help="Labels or predictions: a labeling export, folder of masks, .zip.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder: tables, summary.json, figures, index.html.")],
        images: Annotated[Optional[Path], typer.Option("--images", help=_IMAGES)] = None,
        pixel_size: Annotated[Optional[str], typer.Option("--pixel-size", help=_PIXEL)] = None,
        thickness: Annotated[Optional[str], typer.Option("--thickness", help=_THICK)] = None,
        include_border: Annotated[bool, typer.Option("--include-border", help=_BORDER)] = False,
        cavity_label: Annotated[Optional[list[str]], typer.Option("--cavity-label", help=_CAVITY)] = None,
        size: Annotated[str, typer.Option("--size", help=_SIZE)] = "diameter",
        figures: Annotated[bool, typer.Option("--figures/--no-figures", help=_FIGS)] = True,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    ) -> None:
        """Measure every defect in px and nm; counts, densities, size distributions, area fraction, swelling."""
        from ..cli import console, fail
        from ..errors import DefectlabError
        from ..imaging.micrograph import CalibrationWarning
        from ..measurement import measure as run

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CalibrationWarning)
                m = run(source, images=images, pixel_size=pixel_size, thickness=thickness,
                        include_border=include_border, cavity_labels=cavity_label or None, size=size, progress=True)
            m.write(out, overwrite=overwrite, figures=figures)
        except (DefectlabError, ValueError) as err:
            fail(err)
        from rich.table import Table as RichTable

        unit = "nm" if m.calibrated else "px"
        t = RichTable(title=f"Defects ({unit}; border-touching {'in' if include_border else 'left out of'} sizes)")
        dens = "density_per_um2" if m.calibrated else "density_per_px2"
        cols = ["label", "count", "count_sized", dens, f"size_mean_{unit}", f"size_std_{unit}", "area_fraction",
                "swelling_percent"]
        heads = ["label", "n", "sized", "per µm²" if m.calibrated else "per px²", f"mean {unit}", f"std {unit}",
                 "area frac", "swelling %"]
        for h in heads:
            t.add_column(h, justify="left" if h == "label" else "right", no_wrap=h == "label")
        for row in m.per_set.rows():
            t.add_row(*[_fmt(row[c], 3) for c in cols])
        console.print(t)
        _print_notes(console, [n for n in m.notes if n.code != "no-calibration"],
                     [str(w.message) for w in caught if issubclass(w.category, CalibrationWarning)])
        console.print(f"[green]wrote[/] {len(m.defects)} defects of {len(m.images)} image(s) -> {out}/index.html",
                      highlight=False)

    @app.command()
    def evaluate(
        predictions: Annotated[Path, typer.Argument(help="Predictions: CVAT pre-labels, a folder of instance masks, …")],
        labels: Annotated[Path, typer.Argument(help="Ground-truth labels: a labeling export.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder: tables, summary.json, figures, index.html.")],
        iou: Annotated[float, typer.Option("--iou", min=0.0, max=1.0, help="IoU at which a prediction matches a label.")] = 0.5,
        images: Annotated[Optional[Path], typer.Option("--images", help=_IMAGES)] = None,
        pixel_size: Annotated[Optional[str], typer.Option("--pixel-size", help=_PIXEL)] = None,
        thickness: Annotated[Optional[str], typer.Option("--thickness", help=_THICK)] = None,
        include_border: Annotated[bool, typer.Option("--include-border", help=_BORDER)] = False,
        cavity_label: Annotated[Optional[list[str]], typer.Option("--cavity-label", help=_CAVITY)] = None,
        size: Annotated[str, typer.Option("--size", help=_SIZE)] = "diameter",
        figures: Annotated[bool, typer.Option("--figures/--no-figures", help=_FIGS)] = True,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    ) -> None:
        """Score predictions against labels: precision/recall/F1 at an IoU, pixel IoU/Dice, COCO mAP, size errors."""
        from ..cli import console, fail
        from ..errors import DefectlabError
        from ..imaging.micrograph import CalibrationWarning
        from ..measurement import evaluate as run

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CalibrationWarning)
                e = run(predictions, labels, iou=iou, images=images, pixel_size=pixel_size, thickness=thickness,
                        include_border=include_border, cavity_labels=cavity_label or None, size=size, progress=True)
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
            t.add_column(h, justify="left" if h == "label" else "right", no_wrap=h == "label")
        for row in e.per_class.rows():
            t.add_row(*[_fmt(row[c], 3) for c in cols])
        console.print(t)
        _print_notes(console, [n for n in e.notes if n.code != "no-calibration"],
                     [str(w.message) for w in caught if issubclass(w.category, CalibrationWarning)])
        console.print(f"[green]wrote[/] evaluation of {o['images']} image(s) -> {out}/index.html", highlight=False)
