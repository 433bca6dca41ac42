"""The outcome of a check: findings, per-label statistics, edge conventions, thresholds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import Dataset
from ..model.display import renderer
from .options import CheckOptions
from .findings import SEVERITIES, Finding, severity_rank
from .stats import LabelStats, ShapeRecord

__all__ = ["CheckResult", "FAIL_ON"]

#: Values of ``fail_on`` / ``--fail-on``.
FAIL_ON: tuple[str, ...] = ("error", "warning", "never")


@dataclass
class CheckResult:
    """What :func:`defectlab.qc.check` found.

    Attributes
    ----------
    dataset : Dataset
        The dataset that was checked.
    config : CheckOptions
        The thresholds used.
    findings : list of Finding
        Sorted by severity, then by image (in dataset order), then by shape.
    stats : dict of str to LabelStats
        Per label, declared labels first.
    edges : dict of str to (edge, how)
        The edge convention used per label: ``how`` is ``"given"``, ``"label"``, ``"guess"``
        (from the label's name) or ``"unknown"`` (edge None: not checked).
    records : list of ShapeRecord
        Every shape's pixel area, solidity and edge offset.
    images_read : int
        How many images were found, readable and of their declared size.
    """

    dataset: Dataset
    config: CheckOptions
    findings: list[Finding]
    stats: dict[str, LabelStats]
    edges: dict[str, tuple[str | None, str]]
    records: list[ShapeRecord] = field(default_factory=list)
    images_read: int = 0

    def _repr_html_(self) -> str | None:
        draw = renderer(self, "html")
        return draw(self) if draw is not None else None

    def counts(self) -> dict[str, int]:
        """Number of findings per severity: ``{"error": …, "warning": …, "info": …}``."""
        c = Counter(f.severity for f in self.findings)
        return {s: c.get(s, 0) for s in SEVERITIES}

    def by_code(self) -> Counter:
        """Counter of finding codes."""
        return Counter(f.code for f in self.findings)

    def failed(self, fail_on: str = "error") -> bool:
        """True when some finding is at least as serious as ``fail_on`` ("error", "warning"; "never": False)."""
        if fail_on not in FAIL_ON:
            raise ValueError(f"expected fail_on in {FAIL_ON}, got {fail_on!r}")
        if fail_on == "never":
            return False
        limit = severity_rank(fail_on)
        return any(severity_rank(f.severity) <= limit for f in self.findings)

    def for_image(self, name: str) -> list[Finding]:
        """The findings about image ``name``."""
        return [f for f in self.findings if f.image == name]

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready object: source, counts, thresholds, edge conventions, findings, statistics."""
        return {
            "source": self.dataset.source,
            "format": self.dataset.format,
            "images": len(self.dataset),
            "images_read": self.images_read,
            "counts": self.counts(),
            "config": self.config.to_dict(),
            "edges": [{"label": name, "edge": edge, "how": how} for name, (edge, how) in self.edges.items()],
            "findings": [f.to_dict() for f in self.findings],
            "stats": [s.summary() for s in self.stats.values()],
        }

    def write_report(self, path: str | Path, *, overwrite: bool = False, max_picture_px: int = 800,
                     max_clean_pictures: int = 6, max_rows_per_code: int = 200, progress: bool = False) -> Path:
        """Write the offline HTML report (see :func:`defectlab.qc.report.write_report`)."""
        from .report import write_report

        return write_report(self, path, overwrite=overwrite, max_picture_px=max_picture_px,
                            max_clean_pictures=max_clean_pictures, max_rows_per_code=max_rows_per_code,
                            progress=progress)

    def __str__(self) -> str:
        c = self.counts()
        return (f"{len(self.dataset)} images checked: {c['error']} error(s), {c['warning']} warning(s), "
                f"{c['info']} info")
