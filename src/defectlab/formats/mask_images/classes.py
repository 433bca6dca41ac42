"""Class tables of mask exports: classes.json, CVAT's labelmap.txt, the classes= option; VOC colors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ...errors import ParseError
from ...model import Label
from .._json import load_json
from .._text import decode_text

#: VOC's void color (index 255 of the colormap), used for object borders in real VOC data.
VOID_RGB = (224, 224, 192)
#: The Pascal VOC labels assumed when a CVAT export has no ``labelmap.txt``.
VOC_LABELS = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


def voc_colormap(n: int = 256) -> np.ndarray:
    """The Pascal VOC colormap: (n, 3) uint8, row ``k`` the color of index ``k``.

    The bits of ``k`` are spread over the channels from the most significant bit down
    (bit 0 → red, bit 1 → green, bit 2 → blue, then the next three bits one place lower).

    Examples
    --------
    >>> voc_colormap(4).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    >>> tuple(voc_colormap()[255].tolist())
    (224, 224, 192)
    """
    idx = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for shift in range(7, -1, -1):
        for c in range(3):
            cmap[:, c] |= ((idx >> c) & 1) << shift
        idx = idx >> 3
    return cmap.astype(np.uint8)


def _pack(rgb: tuple[int, int, int]) -> int:
    return (int(rgb[0]) << 16) | (int(rgb[1]) << 8) | int(rgb[2])


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# ---------------------------------------------------------------------------------------------
# Class tables: classes.json, labelmap.txt, classes=
# ---------------------------------------------------------------------------------------------


@dataclass
class _Classes:
    """Class value (as in the decoded class array) → label; colors of color-coded masks.

    Values: 0 is background, -1 is void (neither object nor background). In a CVAT export a
    label's value is its labelmap line index + 1 (so that 0 stays background).
    """

    names: dict[int, str] = field(default_factory=dict)
    colors: dict[int, str | None] = field(default_factory=dict)
    edges: dict[int, str | None] = field(default_factory=dict)
    by_color: dict[int, int] = field(default_factory=lambda: {0: 0})  # packed rgb -> value
    ambiguous: dict[int, str] = field(default_factory=dict)  # packed rgb -> why it cannot be read
    gray_lut: np.ndarray | None = None  # CVAT 1-channel masks: labelmap line index -> value
    used: set[int] = field(default_factory=set)
    extra: dict[str, None] = field(default_factory=dict)
    object_used: bool = False
    object_name: str = "object"

    def name(self, value: int) -> str:
        self.used.add(value)
        return self.names.get(value) or f"class_{value}"

    def labels(self, source: str) -> tuple[Label, ...]:
        out: dict[str, Label] = {}
        for value in sorted(set(self.names) | self.used):
            if value <= 0:
                continue
            name = self.names.get(value) or f"class_{value}"
            if name in out:
                raise ParseError(source, f"two classes are called {name!r}; class names must be unique")
            try:
                edge = self.edges.get(value)
                out[name] = Label(name, color=self.colors.get(value), edge=edge)  # type: ignore[arg-type]
            except ValueError as err:
                raise ParseError(source, f"class {value}: {err}") from err
        for name in [*self.extra, *([self.object_name] if self.object_used else [])]:
            out.setdefault(name, Label(name))
        return tuple(out.values())


def _text(data: bytes, display: str) -> str:
    return decode_text(data, display)


def _read_classes_json(data: bytes, display: str, table: _Classes) -> None:
    """defectlab's ``classes.json``: ``{"1": {"name", "color", "edge"}}`` or ``{"1": "name"}``."""
    doc = load_json(data, display, expected="a classes.json of class index -> class")
    if not isinstance(doc, dict):
        raise ParseError(
            display, f"expected an object of class index -> class, got {type(doc).__name__}", where="/"
        )
    for key, value in doc.items():
        try:
            index = int(key)
        except ValueError:
            raise ParseError(
                display, f"expected a class index (whole number) as key, got {key!r}", where=f"/{key}"
            ) from None
        if index < 0:
            raise ParseError(display, f"expected a class index >= 0, got {index}", where=f"/{key}")
        if isinstance(value, str):
            name, color, edge = value, None, None
        elif isinstance(value, dict):
            name, color, edge = value.get("name"), value.get("color"), value.get("edge")
        else:
            raise ParseError(
                display, f"expected a name or an object with 'name', got {value!r}", where=f"/{key}"
            )
        if not isinstance(name, str) or not name:
            raise ParseError(display, f"expected a non-empty class name, got {name!r}", where=f"/{key}/name")
        if color is not None and not (isinstance(color, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", color)):
            raise ParseError(
                display, f"expected a color like '#61b21f', got {color!r}", where=f"/{key}/color"
            )
        if edge not in (None, "inner", "outer"):
            raise ParseError(
                display, f"expected edge 'inner', 'outer' or null, got {edge!r}", where=f"/{key}/edge"
            )
        if index == 0:
            continue  # background, whatever it is called
        table.names[index], table.colors[index], table.edges[index] = name, color, edge
        if color is not None and int(color[1:], 16) != 0:  # black stays background
            packed = int(color[1:], 16)
            if packed in table.by_color:
                prev = table.by_color[packed]
                table.ambiguous[packed] = f"classes {prev} and {index} share the color {color}"
            table.by_color[packed] = index


def _read_labelmap(data: bytes, display: str, table: _Classes) -> None:
    """CVAT's / VOC's ``labelmap.txt``: ``name:r,g,b:parts:actions`` per line."""
    entries: list[tuple[str, tuple[int, ...] | None]] = []
    for lineno, raw in enumerate(_text(data, display).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) > 4 or not fields[0]:
            raise ParseError(display, f"expected 'name:r,g,b:parts:actions', got {line!r}", line=lineno)
        color = None
        if len(fields) > 1 and fields[1].strip():
            try:
                color = tuple(int(p) for p in fields[1].split(","))
            except ValueError:
                color = ()
            if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise ParseError(
                    display, f"expected a color 'r,g,b' (three numbers 0..255) for label {fields[0]!r}, "
                    f"got {fields[1]!r}", line=lineno,
                )
        if any(name == fields[0] for name, _ in entries):
            raise ParseError(display, f"the label {fields[0]!r} is declared twice", line=lineno)
        entries.append((fields[0], color))
    _set_label_entries(table, entries)


def _set_label_entries(table: _Classes, entries: list[tuple[str, tuple[int, ...] | None]]) -> None:
    """Labelmap entries → values (line index + 1); 'background' (any case) and black → 0."""
    if not any(c is not None for _, c in entries):  # datumaro: no colors at all -> VOC colormap
        cmap = voc_colormap(max(len(entries), 1)).tolist()
        entries = [(n, tuple(cmap[i])) for i, (n, _) in enumerate(entries)]
    gray = []
    for line, (name, color) in enumerate(entries):
        value = 0 if name.lower() == "background" or color == (0, 0, 0) else line + 1
        gray.append(value)
        if value:
            table.names[value] = name
            table.colors[value] = _hex(color) if color is not None else None  # type: ignore[arg-type]
        if color is not None:
            packed = _pack(color)  # type: ignore[arg-type]
            prev = table.by_color.get(packed)
            if prev is not None and prev != value and packed != 0:
                table.ambiguous[packed] = (
                    f"the color {color} belongs to two labels of labelmap.txt, "
                    f"{table.names.get(prev, 'background')!r} and {name!r}"
                )
            if packed != 0:
                table.by_color[packed] = value
    table.gray_lut = np.array(gray, dtype=np.int64)


