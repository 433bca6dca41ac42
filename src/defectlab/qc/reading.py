"""What a lenient read refused, or kept despite a problem, as findings with file, line and shape.

:func:`defectlab.qc.check` reads an export with ``lenient=True`` (see
:func:`defectlab.formats.read`): the reader then notes what the strict reader would refuse
instead of stopping at it. Those notes become findings here:

==================  ==========================  =====================================================
note code           finding                     the shape
==================  ==========================  =====================================================
``refused-*``       ``read-refused`` (error)    left out (a missing or non-numeric attribute, ...)
``too-few-vertices`` ``shape-too-few-vertices``  left out (a polygon of 2 points cannot be built)
``undeclared-label``  (none of its own)          kept: ``label-undeclared`` finds it and gets its line
==================  ==========================  =====================================================

Every other note is a ``read-note`` (info), as before.

Examples
--------
>>> from defectlab.model import Note
>>> notes = [Note("refused-shape", "expected a number for 'xtl', got 'abc'; the <box> left out",
...               item="a.png", where="line 12", file="annotations.xml", line=12)]
>>> found, lines = read_findings(notes)
>>> str(found[0])
"error: [read-refused] a.png (annotations.xml line 12): expected a number for 'xtl', got 'abc'; the <box> left out"
"""

from __future__ import annotations

from typing import Iterable

from ..model import Note
from .findings import Finding

__all__ = ["read_findings", "left_out", "NOTE_FINDINGS"]

#: Note codes of a lenient read with a finding code of their own.
NOTE_FINDINGS = {"too-few-vertices": "shape-too-few-vertices"}
#: Notes that are no finding of their own (another check finds the problem, with their place).
_PLACE_ONLY = frozenset({"undeclared-label", "missing-image"})


def read_findings(notes: Iterable[Note]) -> tuple[list[Finding], dict[tuple[str, int], tuple[str, int | None]]]:
    """Findings for a dataset's notes, and ``(item, shape) -> (file, line)`` of the shapes kept
    despite a problem (for the findings other checks make of them)."""
    found: list[Finding] = []
    places: dict[tuple[str, int], tuple[str, int]] = {}
    for n in notes:
        if n.item is not None and n.shape is not None and n.file is not None:
            places[(n.item, n.shape)] = (n.file, n.line)
        if n.code in _PLACE_ONLY:
            continue
        code = NOTE_FINDINGS.get(n.code) or ("read-refused" if n.code.startswith("refused-") else None)
        if code is not None:
            found.append(Finding(code, n.item, n.message, file=n.file, line=n.line))
        else:
            found.append(Finding("read-note", n.item, f"[{n.code}] {n.message}" + (f" ({n.where})" if n.where else ""),
                                 file=n.file, line=n.line))
    return found, places


def left_out(notes: Iterable[Note]) -> list[Note]:
    """The notes of what a lenient read left out of the dataset (refused shapes, images, labels)."""
    return [n for n in notes if n.code.startswith("refused-") or n.code in NOTE_FINDINGS]
