"""The options of ``defectlab check`` (and of its ``--fix``), declared once.

:class:`CheckOptions` is what :func:`defectlab.qc.check`, :func:`defectlab.qc.fix`,
:func:`defectlab.check` and ``defectlab check`` take: the edge conventions, every threshold,
the expected image size and whether the image files are read.

Examples
--------
>>> CheckOptions(solidity=0.8).solidity
0.8
>>> CheckOptions(duplicate_iou=1.5)
Traceback (most recent call last):
...
ValueError: check: duplicate_iou: expected a number in (0, 1], got 1.5
>>> dict(CheckOptions(edges={"He bubble": "inner"}).edges)
{'He bubble': 'inner'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from ..options import Options, flag, option, size_pair
from ..raster import DEFAULT_LINE_WIDTH

__all__ = ["CheckOptions", "EDGES", "parse_edges", "parse_size_wh"]

#: The edge conventions a label can have.
EDGES = ("inner", "outer")


def parse_edges(values: Any) -> tuple[tuple[str, str], ...]:
    """``["cavity=inner", "loop=outer"]`` (the CLI's ``--edge``) or a mapping -> ``(("cavity", "inner"), …)``.

    Examples
    --------
    >>> parse_edges(["He bubble=inner", "loop = outer"])
    (('He bubble', 'inner'), ('loop', 'outer'))
    >>> parse_edges({"loop": "OUTER"})
    (('loop', 'outer'),)
    """
    written = not isinstance(values, Mapping) and all(isinstance(v, str) for v in
                                                       ([values] if isinstance(values, str) else values))
    if isinstance(values, Mapping):
        pairs = list(values.items())
    else:
        pairs = []
        for value in ([values] if isinstance(values, str) else values):
            if isinstance(value, str):
                name, sep, edge = value.rpartition("=")
                if not sep:
                    raise ValueError(f"expected LABEL=inner or LABEL=outer, got {value!r}")
                pairs.append((name, edge))
            else:
                try:
                    name, edge = value
                except (TypeError, ValueError):
                    raise ValueError(f"expected (label, edge) pairs, got {value!r}") from None
                pairs.append((name, edge))
    out: dict[str, str] = {}
    for name, edge in pairs:
        name, edge = str(name).strip(), str(edge).strip().lower()
        if not name or edge not in EDGES:
            if written:
                raise ValueError(f"expected LABEL=inner or LABEL=outer, got {name}={edge}")
            raise ValueError(f"expected 'inner' or 'outer' as the edge of {name!r}, got {edge!r}")
        out[name] = edge
    return tuple(out.items())


def parse_size_wh(value: str) -> tuple[int, int]:
    """``"1024x768"`` (W x H, as the CLI writes sizes) -> ``(768, 1024)`` (H, W).

    Examples
    --------
    >>> parse_size_wh("1024x768")
    (768, 1024)
    """
    w, sep, h = value.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(h), int(w)
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT such as 1024x1024, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class CheckOptions(Options):
    """What the checks look for, and how closely.

    Parameters
    ----------
    edges : mapping or pairs, optional
        Label -> ``"inner"`` | ``"outer"``: the edge convention per label (kept as
        ``(label, edge)`` pairs). Labels not given keep the export's ``Label.edge``; when that
        is None (CVAT cannot store it) the convention is guessed from the name —
        bubble/cavity/void → inner, loop → outer — and reported as a guess. Labels with no
        convention are not edge-checked.
    solidity : float
        ``shape-concave`` below this solidity (pixel area / convex hull area, 0..1) of a
        polygon or mask. The default flags strongly concave outlines only (a C shape, two
        defects a gap apart drawn as one); the synthetic generator's irregular precipitates
        reach 0.77. Two touching equal discs drawn as one have about 0.86 on pixels; the
        workshop's hand-drawn bubbles are all above 0.94, so ``0.9`` suits convex defects.
    edge_tolerance : float
        ``edge-off-convention`` when a boundary is farther than this (px) from its label's
        edge of the dark contrast band. On synthetic images correct boundaries are within
        1 px and a loop drawn at its inner edge is 2–3.5 px off.
    hole_area_px : float
        ``overlap-hole`` for enclosed background pockets of at most this many pixels.
    min_area_px : float
        ``shape-tiny`` for area shapes covering fewer pixels than this.
    duplicate_iou : float
        ``shape-duplicate`` for two shapes of one label whose pixel IoU is above this.
    overlap : float
        ``overlap-heavy`` when two shapes of one label share more than this fraction of the
        smaller one's pixels (and neither is marked occluded).
    outside_tolerance_px : float
        ``shape-outside-image`` when the geometry reaches farther than this outside the image.
    outlier_z : float
        ``size-outlier`` above this robust z-score (median / MAD) of the log pixel area,
        among the shapes of one label (at least 8 of them).
    image_size_hw : (int, int), optional
        The size every image should have; None: the most common size of each subset.
    line_width : float
        Width in px of polyline masks (as in ``defectlab convert``).
    use_images : bool
        Read the image files (sizes, edge convention); False checks the annotations only.
    workers : int, optional
        Processes that check images side by side (None: every core; 1: this process only).
        The findings are the same whatever the number.
    """

    verb: ClassVar[str] = "check"

    edges: tuple[tuple[str, str], ...] | None = option(
        None, help="Edge convention of a label, LABEL=inner|outer (repeatable). Default: the export's, else guessed "
                   "from the name (bubble/cavity/void: inner, loop: outer).",
        cli="--edge", multiple=True, convert=parse_edges, metavar="LABEL=EDGE")
    solidity: float = option(0.75, help="Flag polygons/masks with a solidity below this (0-1).", above=0, max=1)
    edge_tolerance: float = option(
        2.0, help="Flag boundaries farther than this (px) from their label's edge of the dark band.", min=0,
        metavar="PX")
    hole_area_px: float = option(100.0, help="Flag background pockets enclosed by shapes up to this many px.",
                                 cli="--hole-area", min=0, metavar="PX")
    min_area_px: float = option(10.0, help="Flag area shapes covering fewer px than this.", cli="--min-area", min=0,
                                metavar="PX")
    duplicate_iou: float = option(0.95, help="Same-label shapes with a pixel IoU above this are duplicates.",
                                  above=0, max=1)
    overlap: float = option(0.5, help="Flag same-label shapes sharing more than this fraction of the smaller one.",
                            above=0, max=1)
    outside_tolerance_px: float = option(
        1.0, help="Flag geometry reaching farther than this (px) outside the image.", cli="--outside-tolerance",
        min=0, metavar="PX")
    outlier_z: float = option(4.0, help="Flag sizes with a robust z-score of log area above this.", min=0,
                              metavar="Z")
    image_size_hw: tuple[int, int] | None = option(
        None, help="The size every image should have, WIDTHxHEIGHT (default: each set's most common size).",
        cli="--image-size", parse=parse_size_wh, convert=size_pair, metavar="WxH")
    line_width: float = option(DEFAULT_LINE_WIDTH, help="Width in px of polyline (dislocation line) masks.", min=0,
                               metavar="PX")
    use_images: bool = flag(True, help="Read the image files; --no-images checks the annotations only.",
                            cli="--use-images/--no-images")
    workers: int | None = option(None, help="Processes checking images side by side (default: every core).",
                                 min=1, metavar="N")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (``edges`` as a mapping)."""
        out = super(CheckOptions, self).to_dict()
        out["edges"] = dict(self.edges or ())
        return out


#: The former name of :class:`CheckOptions` (kept for code written against it).
CheckConfig = CheckOptions
