"""Concave vs convex: the solidity of each drawn outline.

A cavity, precipitate or loop seen in projection is close to convex. A low solidity (pixel
area / area of the pixels' convex hull, :func:`skimage.measure.regionprops`) means a
dent: two touching defects outlined as one (two equal touching discs: 2π/(π+4) ≈ 0.88
geometrically, 0.85–0.87 on pixels), or a defect partly hidden behind another whose
visible part was outlined (a disc with a bite of its own radius: about 0.85).

Only polygons and masks are measured (ellipses and boxes are convex by construction), and
only from ``_MIN_PIXELS`` pixels on: below that the pixel grid itself dents the outline.
"""

from __future__ import annotations

import numpy as np

from ..model import Mask, Polygon
from .context import ItemData
from .findings import Finding

__all__ = ["solidity", "solidity_findings"]

_MIN_PIXELS = 20


def solidity(bitmap: np.ndarray) -> float:
    """Pixel area / convex hull area of a bool bitmap's set pixels (all regions together).

    Examples
    --------
    >>> import numpy as np
    >>> solidity(np.ones((4, 4), bool))
    1.0
    >>> l_shape = np.ones((4, 4), bool); l_shape[:2, 2:] = False   # 12 px; its hull takes 1 px more
    >>> round(solidity(l_shape), 3)
    0.923
    """
    from skimage.measure import regionprops

    props = regionprops(np.asarray(bitmap, dtype=np.uint8))
    return float(props[0].solidity) if props else float("nan")


def solidity_findings(data: ItemData, *, threshold: float) -> tuple[list[Finding], dict[int, float]]:
    """``shape-concave`` for polygons and masks with solidity below ``threshold``.

    Returns the findings and every measured solidity by shape index. Shapes marked
    ``occluded`` are measured but not flagged (their dent is expected).
    """
    item = data.item
    out: list[Finding] = []
    measured: dict[int, float] = {}
    for i, shape in enumerate(item.shapes):
        if not isinstance(shape, (Polygon, Mask)) or i in data.skip_edges:
            continue
        crop = data.crops[i]
        if crop is None or crop.area < _MIN_PIXELS:
            continue
        s = solidity(crop.bitmap)
        measured[i] = s
        if s < threshold and not shape.occluded:
            out.append(Finding("shape-concave", item.name,
                               f"solidity {s:.2f} < {threshold:g}",  # the why: CHECKS["shape-concave"]
                               shape=i, label=shape.label, box_xyxy=tuple(map(float, crop.box_xyxy())),
                               value=s))
    return out, measured
