"""The thresholds of ``defectlab check``, validated in one place.

The same names and defaults are the keyword arguments of :func:`defectlab.qc.check` and the
options of ``defectlab check`` (``solidity`` ↔ ``--solidity``, ``edge_tolerance`` ↔
``--edge-tolerance``, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CheckConfig"]


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """Thresholds of the checks.

    Parameters
    ----------
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

    Examples
    --------
    >>> CheckConfig(solidity=0.8).solidity
    0.8
    >>> CheckConfig(duplicate_iou=1.5)
    Traceback (most recent call last):
    ...
    ValueError: check: expected duplicate_iou in (0, 1], got 1.5
    """

    solidity: float = 0.75
    edge_tolerance: float = 2.0
    hole_area_px: float = 100.0
    min_area_px: float = 10.0
    duplicate_iou: float = 0.95
    overlap: float = 0.5
    outside_tolerance_px: float = 1.0
    outlier_z: float = 4.0
    image_size_hw: tuple[int, int] | None = None
    line_width: float = 3.0

    def __post_init__(self) -> None:
        for name in ("solidity", "duplicate_iou", "overlap"):
            v = float(getattr(self, name))
            if not (0.0 < v <= 1.0):
                raise ValueError(f"check: expected {name} in (0, 1], got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        for name in ("edge_tolerance", "hole_area_px", "min_area_px", "outside_tolerance_px", "outlier_z",
                     "line_width"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"check: expected a finite {name} >= 0, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        if self.image_size_hw is not None:
            try:
                h, w = (int(v) for v in self.image_size_hw)
            except (TypeError, ValueError):
                raise ValueError(f"check: expected image_size_hw as (H, W), got {self.image_size_hw!r}") from None
            if h <= 0 or w <= 0:
                raise ValueError(f"check: expected a positive image_size_hw, got {self.image_size_hw!r}")
            object.__setattr__(self, "image_size_hw", (h, w))

    def to_dict(self) -> dict:
        return {name: getattr(self, name) if name != "image_size_hw" or self.image_size_hw is None
                else list(self.image_size_hw) for name in self.__dataclass_fields__}
