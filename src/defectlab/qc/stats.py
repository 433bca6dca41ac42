"""Per-label statistics (counts, pixel areas, solidity, edge offsets) and size outliers."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

import numpy as np

from .findings import Finding

__all__ = ["ShapeRecord", "LabelStats", "label_stats", "robust_z", "outlier_findings"]

_MIN_SHAPES_FOR_OUTLIERS = 8


class ShapeRecord(NamedTuple):
    """One shape's measurements (NaN where not measured)."""

    image: str
    shape: int
    label: str
    kind: str
    area_px: int
    box_xyxy: tuple[float, float, float, float] | None
    solidity: float = math.nan
    edge_offset_px: float = math.nan


@dataclass
class LabelStats:
    """Statistics of one label over the whole export.

    ``area_px``: (N,) int64 pixel areas of its shapes that have pixels (area shapes and
    polylines); ``solidity`` and ``edge_offset_px``: (M,) float64 values where measured.
    """

    label: str
    n_shapes: int = 0
    n_images: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    area_px: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    solidity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    edge_offset_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    edge: str | None = None
    edge_how: str = "unknown"

    def summary(self) -> dict:
        """JSON-ready numbers: counts, area quantiles (px), median solidity and edge offset."""
        a = self.area_px

        def q(v: np.ndarray, p: float) -> float | None:
            return None if v.size == 0 else round(float(np.percentile(v, p)), 3)

        return {
            "label": self.label, "shapes": self.n_shapes, "images": self.n_images, "kinds": dict(self.kinds),
            "area_px": {"min": q(a, 0), "median": q(a, 50), "mean": None if a.size == 0 else round(float(a.mean()), 3),
                        "max": q(a, 100)},
            "solidity_median": q(self.solidity, 50),
            "edge": self.edge, "edge_how": self.edge_how,
            "edge_offset_px_median": q(self.edge_offset_px, 50), "edge_offsets_measured": int(self.edge_offset_px.size),
        }


def label_stats(records: Iterable[ShapeRecord], labels: Iterable[str],
                edges: dict[str, tuple[str | None, str]] | None = None) -> dict[str, LabelStats]:
    """:class:`LabelStats` for every label (declared ones first, in order, then undeclared ones)."""
    recs = list(records)
    names = list(dict.fromkeys([*labels, *(r.label for r in recs)]))
    by_label: dict[str, list[ShapeRecord]] = defaultdict(list)
    for r in recs:
        by_label[r.label].append(r)
    out = {}
    for name in names:
        rs = by_label.get(name, [])
        edge, how = (edges or {}).get(name, (None, "unknown"))
        out[name] = LabelStats(
            label=name, n_shapes=len(rs), n_images=len({r.image for r in rs}),
            kinds=dict(Counter(r.kind for r in rs)),
            area_px=np.array([r.area_px for r in rs if r.area_px > 0], dtype=np.int64),
            solidity=np.array([r.solidity for r in rs if not math.isnan(r.solidity)], dtype=np.float64),
            edge_offset_px=np.array([r.edge_offset_px for r in rs if not math.isnan(r.edge_offset_px)]),
            edge=edge, edge_how=how,
        )
    return out


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x − median) / (1.4826 · MAD); zeros when the MAD is 0.

    Examples
    --------
    >>> robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0])).round(2).tolist()
    [-1.35, -0.67, 0.0, 0.67, 65.43]
    """
    v = np.asarray(values, dtype=np.float64)
    med = np.median(v)
    mad = np.median(np.abs(v - med))
    if mad == 0:
        return np.zeros_like(v)
    return (v - med) / (1.4826 * mad)


def outlier_findings(records: Iterable[ShapeRecord], *, z: float) -> list[Finding]:
    """``size-outlier`` for shapes whose log pixel area has a robust z-score above ``z``
    among the shapes of their label (labels with at least 8 shapes with pixels)."""
    by_label: dict[str, list[ShapeRecord]] = defaultdict(list)
    for r in records:
        if r.area_px > 0:
            by_label[r.label].append(r)
    out = []
    for label, rs in by_label.items():
        if len(rs) < _MIN_SHAPES_FOR_OUTLIERS:
            continue
        areas = np.array([r.area_px for r in rs], dtype=np.float64)
        zs = robust_z(np.log(areas))
        med = float(np.median(areas))
        for r, zi in zip(rs, zs):
            if abs(zi) > z:
                size = "larger" if zi > 0 else "smaller"
                out.append(Finding("size-outlier", r.image,
                                   f"{r.area_px} px, {r.area_px / med:.2g}x the median {label!r} ({med:g} px): "
                                   f"much {size} than the others (robust z {zi:+.1f})",
                                   shape=r.shape, label=label, box_xyxy=r.box_xyxy, value=float(zi)))
    return out
