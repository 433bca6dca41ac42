"""YOLO label files: one object per line, read and checked field by field (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ParseError
from ...limits import current as current_limits
from ...limits import hint as limit_hint
from ...model import Box, Note, Polygon, Shape
from ...ordering import natural_sorted
from .._text import SNIFF_BYTES, decode_text, read_file
from .spec import COORD_TOLERANCE, NAMES_FILES

# ---------------------------------------------------------------------------------------------
# Label files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    """One label line: class index, normalized numbers (4 for a box, 2N for a polygon), line."""

    class_id: int
    values: np.ndarray
    line: int


def _parse_labels(path: Path, n_classes: int | None, refused: list[Note] | None = None) -> list[_Row]:
    """The rows of a label file; ParseError naming the file, line and column of a bad field.

    With ``refused`` (a lenient read), a bad line is left out with a ``refused-shape`` note
    instead, and a class index out of range is kept (its row's ``class_id`` >= ``n_classes``).
    """
    text = decode_text(read_file(path), str(path), expected="a YOLO label file")
    rows: list[_Row] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            row = _parse_line(path, line, lineno, None if refused is not None else n_classes)
        except ParseError as err:
            if refused is None:
                raise
            refused.append(Note("refused-shape", f"{err.message}; the line left out", where=f"line {lineno}",
                                file=str(path), line=lineno))
            continue
        if row is not None:
            rows.append(row)
    return rows


def _parse_line(path: Path, line: str, lineno: int, n_classes: int | None) -> _Row | None:
    """One label line (None for an empty one)."""
    tokens = line.split()
    if not tokens:
        return None
    n = len(tokens)
    if n != 5 and (n < 7 or n % 2 == 0):
        hint = " (6 fields look like a prediction with a confidence, not a label)" if n == 6 else ""
        raise ParseError(
            path,
            f"expected 5 fields (class xc yc w h) or an odd number >= 7 (class x1 y1 x2 y2 x3 y3 ...), "
            f"got {n}{hint}",
            line=lineno,
        )
    columns = []
    pos = 0
    for tok in tokens:
        pos = line.index(tok, pos)
        columns.append(pos + 1)
        pos += len(tok)
    try:
        cls = float(tokens[0])
    except ValueError:
        cls = math.nan
    if not (math.isfinite(cls) and cls == int(cls) and cls >= 0):
        raise ParseError(path, f"expected a class index (a whole number >= 0), got {tokens[0]!r}",
                         line=lineno, column=columns[0])
    class_id = int(cls)
    if n_classes is None and class_id >= current_limits().max_classes:
        raise ParseError(path, f"class index {class_id} is over the limit of {current_limits().max_classes} "
                         f"classes ({limit_hint('max_classes')})", line=lineno, column=columns[0])
    if n_classes is not None and class_id >= n_classes:
        raise ParseError(path, f"class index {class_id} is out of range: the dataset names {n_classes} "
                         f"classes (0..{n_classes - 1})", line=lineno, column=columns[0])
    values = np.empty(n - 1, dtype=np.float64)
    for k, tok in enumerate(tokens[1:]):
        try:
            v = float(tok)
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            raise ParseError(path, f"expected a number for field {k + 2}, got {tok!r}",
                             line=lineno, column=columns[k + 1])
        if not -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE:
            raise ParseError(
                path,
                f"expected a normalized coordinate in [0, 1] for field {k + 2}, got {tok} (pixel "
                "coordinates? YOLO divides x by the image width, y by its height)",
                line=lineno,
                column=columns[k + 1],
            )
        values[k] = v
    return _Row(class_id, values, lineno)


def _row_shape(row: _Row, label: str, size_hw: tuple[int, int]) -> Shape:
    """The shape of a row in absolute pixels (not rounded)."""
    h, w = size_hw
    v = row.values
    if len(v) == 4:
        xc, yc, bw, bh = v.tolist()
        cx, cy, half_w, half_h = xc * w, yc * h, bw * w / 2, bh * h / 2
        return Box(label=label, xyxy=(cx - half_w, cy - half_h, cx + half_w, cy + half_h), source="file")
    points_xy = v.reshape(-1, 2) * np.array([w, h], dtype=np.float64)
    return Polygon(label=label, points_xy=points_xy, source="file")




def _label_files(folder: Path, limit: int | None = None) -> list[Path]:
    """The ``.txt`` files right in ``folder`` that may be label files (not ``classes.txt``), sorted."""
    found = []
    try:
        entries = natural_sorted(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.suffix.lower() == ".txt" and entry.name not in NAMES_FILES and entry.is_file():
            found.append(entry)
            if limit is not None and len(found) >= limit:
                break
    return found


def _looks_like_label_line(line: str) -> bool:
    tokens = line.split()
    if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0) or not tokens[0].isdigit():
        return False
    try:
        return all(-COORD_TOLERANCE <= float(v) <= 1 + COORD_TOLERANCE for v in tokens[1:])
    except ValueError:
        return False


def _looks_like_label_folder(folder: Path) -> bool:
    """A few ``.txt`` files right in ``folder`` whose first lines are YOLO label lines."""
    seen_line = False
    for label in _label_files(folder, limit=3):
        with open(label, "rb") as fh:
            head = fh.read(SNIFF_BYTES).decode("utf-8", "replace")
        first = next((line for line in head.splitlines() if line.strip()), None)
        if first is None:
            continue  # an empty label file: an image without objects
        if not _looks_like_label_line(first):
            return False
        seen_line = True
    return seen_line


