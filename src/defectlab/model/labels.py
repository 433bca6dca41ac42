"""Labels (classes) and their declared attributes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["AttributeSpec", "Label", "Edge", "DEFAULT_COLORS"]

Edge = Literal["inner", "outer"]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

#: Colors given to labels that declare none (tab10, readable on grayscale micrographs).
DEFAULT_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """An attribute a label declares (CVAT: ``<attribute>`` in ``<labels>``).

    ``values`` are the allowed values for select/radio/checkbox inputs (may be empty).
    """

    name: str
    input_type: str = "text"
    default: str = ""
    values: tuple[str, ...] = ()
    mutable: bool = False


@dataclass(frozen=True, slots=True)
class Label:
    """A class of defect.

    Parameters
    ----------
    name : str
        The name as written in the export (case and spaces kept).
    color : str, optional
        ``"#rrggbb"``.
    attributes : tuple of AttributeSpec
        Declared attributes.
    edge : {"inner", "outer"}, optional
        The labeling convention: cavities are drawn along their inner edge, loops
        along their outer edge. None when unknown.
    type : str
        The shape type the labeling tool declared for the label ("any", "polygon", ...).

    Examples
    --------
    >>> Label("cavity", color="#61b21f", edge="inner").edge
    'inner'
    """

    name: str
    color: str | None = None
    attributes: tuple[AttributeSpec, ...] = ()
    edge: Edge | None = None
    type: str = "any"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"label: expected a non-empty name, got {self.name!r}")
        if self.color is not None and not _COLOR.match(self.color):
            raise ValueError(f"label {self.name!r}: expected a color like '#61b21f', got {self.color!r}")
        if self.edge not in (None, "inner", "outer"):
            raise ValueError(f"label {self.name!r}: expected edge 'inner' or 'outer', got {self.edge!r}")
        object.__setattr__(self, "attributes", tuple(self.attributes))

    def rgb(self, index: int = 0) -> tuple[int, int, int]:
        """The color as (r, g, b) 0..255; a default color by ``index`` when none is declared."""
        color = self.color or DEFAULT_COLORS[index % len(DEFAULT_COLORS)]
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
