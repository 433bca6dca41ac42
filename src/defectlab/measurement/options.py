"""The options of ``defectlab measure`` and ``defectlab evaluate``, declared once.

:class:`MeasureOptions` is what :func:`defectlab.measurement.measure`, :func:`defectlab.measure`,
``defectlab measure`` and the batch's statistics take; :class:`EvaluateOptions` adds the IoU
at which a prediction matches a label.

Examples
--------
>>> MeasureOptions(pixel_size="3.8 Å", thickness="80nm").pixel_size
0.38
>>> MeasureOptions(size_measure="radius")
Traceback (most recent call last):
...
ValueError: measure: size_measure: expected one of diameter, major_axis; got 'radius'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..options import Options, flag, number_or_name, option
from ..raster import DEFAULT_LINE_WIDTH
from .stats import SIZE_MEASURES

__all__ = ["EvaluateOptions", "MeasureOptions", "length_nm"]


def length_nm(what: str):
    """A converter: a length (``"0.38nm"``, ``"3.8 Å"``, a number of nm) -> nm."""

    def convert(value: Any) -> float:
        from ..imaging.micrograph import parse_length

        return parse_length(value, what=what)

    convert.__name__ = f"{what.replace(' ', '_')}_nm"
    return convert


@dataclass(frozen=True, slots=True)
class _Sizing(Options):
    """The options :class:`MeasureOptions` and :class:`EvaluateOptions` share."""

    verb: ClassVar[str] = "measure"

    pixel_size: float | None = option(
        None, help="Pixel size, overriding the files' calibration: 0.38nm, 3.8Å, 0.00038um (a bare number is nm).",
        convert=length_nm("pixel size"), metavar="LENGTH")
    thickness: float | None = option(
        None, help="Foil thickness, for density per volume and swelling: 80nm.", convert=length_nm("thickness"),
        metavar="LENGTH")
    include_border: bool = flag(
        help="Use defects touching the image border in size statistics (default: left out, their size is cut).",
        cli="--include-border")
    cavity_labels: tuple[str, ...] | None = option(
        None, help="A label that is a cavity (for swelling); repeat for several. Default: names with cavity, "
                   "bubble, void or pore.", cli="--cavity-label", multiple=True, metavar="LABEL")
    size_measure: str = option(
        "diameter", help="Size of the distributions: diameter (equivalent) or major_axis (e.g. inclined loops); "
                         "lines are sized by their length.", cli="--size", choices=SIZE_MEASURES)
    bins: int | str = option(
        "auto", help="Histogram bins: a number, or a numpy rule (auto, fd, sturges, …).", convert=number_or_name,
        metavar="N|RULE")
    visible_only: bool = flag(
        help="Measure only the visible part of overlapped defects.", cli="--visible-only/--full-extent")
    line_width: float = option(
        DEFAULT_LINE_WIDTH, help="Width in px of polyline (dislocation line) masks.", above=0, metavar="PX")

    def settings(self, labels: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """The settings recorded in ``summary.json`` (their historic keys), for ``labels``."""
        from .stats import is_cavity_label

        return {"pixel_size_nm": self.pixel_size, "thickness_nm": self.thickness,
                "include_border": self.include_border, "size": self.size_measure,
                "cavity_labels": [lab for lab in labels if is_cavity_label(lab, self.cavity_labels)],
                "visible_only": self.visible_only, "line_width_px": self.line_width}


@dataclass(frozen=True, slots=True)
class MeasureOptions(_Sizing):
    """How defects are measured and summarized.

    Parameters
    ----------
    pixel_size : str or float, optional
        Overrides every file's calibration: ``"0.38nm"``, ``"3.8 Å"``, ``"0.00038um"``, or a
        number of nm; kept as nm (float).
    thickness : str or float, optional
        Foil thickness (``"80nm"``), for number density per volume and swelling; kept as nm.
    include_border : bool
        Use defects touching the image border in size statistics (default: left out, their
        size is cut by the border).
    cavity_labels : tuple of str, optional
        Labels that are cavities (swelling); default: names with cavity/bubble/void/pore.
    size_measure : {"diameter", "major_axis"}
        The size of the distributions: equivalent diameter, or major axis (inclined loops).
        Dislocation lines are always sized by their length.
    bins : int or str
        Histogram bins: a number, or a numpy rule (``"auto"``, ``"fd"``, …).
    visible_only : bool
        Measure only the visible part of overlapped defects.
    line_width : float
        Width in px of polyline (dislocation line) masks.
    intensity : bool
        Read the micrographs for ``mean_intensity`` (False: only their calibration).
    """

    verb: ClassVar[str] = "measure"

    intensity: bool = flag(True, help="Read the micrographs for mean_intensity (else only their calibration).",
                           cli=False)


@dataclass(frozen=True, slots=True)
class EvaluateOptions(_Sizing):
    """The options of :class:`MeasureOptions` but ``intensity``, and the IoU at which a
    prediction matches a label.

    Parameters
    ----------
    iou : float
        A prediction matches a label when their pixel IoU is at least this (0 < iou <= 1).
    """

    verb: ClassVar[str] = "evaluate"

    iou: float = option(0.5, help="IoU at which a prediction matches a label.", above=0, max=1)


