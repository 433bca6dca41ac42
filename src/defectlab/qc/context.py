"""What every check of one image needs, computed once: the shapes' pixels and the image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import Item, Shape
from ..raster import Crop, rasterize

__all__ = ["ItemData", "is_region"]


def is_region(shape: Shape) -> bool:
    """True for shapes that cover an area (polygon, ellipse, box, mask)."""
    return shape.is_area


@dataclass
class ItemData:
    """One item with its shapes' pixels, and its image when it was read.

    Attributes
    ----------
    item : Item
    crops : list of Crop or None
        The tight pixels of each shape (area shapes and polylines; None for points and tags).
    image : (H, W) float64 array or None
        The grayscale micrograph, when found, readable and of the declared size.
    skip_edges : set of int
        Shapes whose outline is not trustworthy for the edge check (degenerate, crossing).
    """

    item: Item
    crops: list[Crop | None]
    image: np.ndarray | None = None
    skip_edges: set[int] = field(default_factory=set)

    @classmethod
    def build(cls, item: Item, *, line_width: float, image: np.ndarray | None = None) -> "ItemData":
        crops: list[Crop | None] = []
        for shape in item.shapes:
            if shape.is_area or shape.kind == "polyline":
                crops.append(rasterize(shape, item.size_hw, line_width=line_width).tight())
            else:
                crops.append(None)
        return cls(item, crops, image)

    def area_px(self, index: int) -> int:
        crop = self.crops[index]
        return 0 if crop is None else crop.area
