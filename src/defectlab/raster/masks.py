"""Items → semantic masks, instance label images, and per-instance crops.

Overlaps: shapes are painted in ``z_order`` (ties: file order), higher on top, so a
pixel covered by several shapes belongs to the topmost. Instances keep their full
extent by default (``visible_only=False``); with ``visible_only=True`` each instance
keeps only the pixels not covered by a shape painted after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import DatasetError
from ..model import Item, Note, Shape
from .shapes import DEFAULT_LINE_WIDTH, Crop, rasterize

__all__ = ["Instance", "paint_order", "semantic_mask", "instance_labels", "instances"]


@dataclass(frozen=True, slots=True)
class Instance:
    """One object of an item: its pixels as a tight :class:`Crop`, its class and its shape.

    ``index`` is the shape's position in ``item.shapes``.
    """

    crop: Crop
    class_id: int
    index: int
    shape: Shape

    @property
    def box_xyxy(self) -> tuple[int, int, int, int]:
        """Pixel-edge box ``(x1, y1, x2, y2)`` of the instance (x2, y2 exclusive)."""
        h, w = self.crop.bitmap.shape
        return self.crop.x0, self.crop.y0, self.crop.x0 + w, self.crop.y0 + h


def paint_order(item: Item) -> list[int]:
    """Indices of ``item.shapes`` in painting order: by ``z_order``, ties in file order."""
    return sorted(range(len(item.shapes)), key=lambda i: item.shapes[i].z_order)


def _class_of(shape: Shape, class_index: Mapping[str, int], item: Item) -> int:
    try:
        return class_index[shape.label]
    except KeyError:
        raise DatasetError(
            f"{item.name}: shape label {shape.label!r} has no class; classes are {list(class_index)}"
        ) from None


def semantic_mask(
    item: Item,
    class_index: Mapping[str, int],
    *,
    line_width: float = DEFAULT_LINE_WIDTH,
    crops: Mapping[int, Crop] | None = None,
) -> np.ndarray:
    """The (H, W) uint8 class-index mask of an item (0 = background).

    Parameters
    ----------
    item : Item
        The image's shapes; points and tags are not painted.
    class_index : mapping
        Label name -> class index 1..255 (see :meth:`Dataset.class_index`).
    line_width : float
        Width in px of polyline masks.
    crops : mapping of shape index -> Crop, optional
        Shapes the caller has already rasterized (``rasterize(item.shapes[i], item.size_hw,
        line_width=line_width)``, or its ``.tight()``): painted as they are, not rasterized again.

    Examples
    --------
    >>> from defectlab.model import Item, Ellipse
    >>> it = Item("a.png", (16, 16), (Ellipse(label="cavity", cx=8, cy=8, rx=5, ry=5),))
    >>> int((semantic_mask(it, {"cavity": 1}) == 1).sum())
    80
    """
    if class_index and max(class_index.values()) > 255:
        raise DatasetError(f"a uint8 mask holds at most 255 classes, got {max(class_index.values())}")
    out = np.zeros(item.size_hw, dtype=np.uint8)
    for i in paint_order(item):
        shape = item.shapes[i]
        if not shape.is_area and shape.kind != "polyline":
            continue
        value = _class_of(shape, class_index, item)
        crop = crops.get(i) if crops is not None else None
        if crop is None:
            crop = rasterize(shape, item.size_hw, line_width=line_width)
        if crop.bitmap.size:
            out[crop.slices][crop.bitmap] = value
    return out


def instance_labels(item: Item, *, line_width: float = DEFAULT_LINE_WIDTH,
                    crops: Mapping[int, Crop] | None = None) -> np.ndarray:
    """The (H, W) int32 image of instance ids: shape ``i`` of ``item.shapes`` is ``i + 1``.

    Painted in z-order, so each pixel holds the topmost instance; 0 is background.
    ``crops`` as for :func:`semantic_mask`: shapes already rasterized, painted as they are.
    Examples
    --------
    >>> from defectlab.model import Ellipse, Item
    >>> item = Item("a.png", (8, 8), (Ellipse(label="cavity", cx=3, cy=3, rx=2, ry=2),
    ...                               Ellipse(label="cavity", cx=6, cy=6, rx=1, ry=1)))
    >>> ids = instance_labels(item)
    >>> ids.dtype, [int((ids == k).sum()) for k in (1, 2)]
    (dtype('int32'), [12, 4])
    """
    out = np.zeros(item.size_hw, dtype=np.int32)
    for i in paint_order(item):
        shape = item.shapes[i]
        if not shape.is_area and shape.kind != "polyline":
            continue
        crop = crops.get(i) if crops is not None else None
        if crop is None:
            crop = rasterize(shape, item.size_hw, line_width=line_width)
        if crop.bitmap.size:
            out[crop.slices][crop.bitmap] = i + 1
    return out


def instances(
    item: Item,
    class_index: Mapping[str, int],
    *,
    visible_only: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
) -> tuple[list[Instance], list[Note]]:
    """The instances of an item, each as a tight crop, and notes on the degenerate ones.

    Area shapes and polylines are instances; points and tags are not. A shape that
    covers no pixel center (too small, or outside the image) is *degenerate*: it is not
    returned, and a note says which shape and why — never dropped silently.

    Returns
    -------
    instances : list of Instance
        In file order.
    notes : list of Note
        One per degenerate shape (code ``"degenerate-instance"``).
    Examples
    --------
    >>> from defectlab.model import Ellipse, Item
    >>> item = Item("a.png", (8, 8), (Ellipse(label="cavity", cx=3, cy=3, rx=2, ry=2),
    ...                               Ellipse(label="cavity", cx=6.2, cy=6.2, rx=0.2, ry=0.2)))
    >>> found, notes = instances(item, {"cavity": 1})
    >>> [(i.index, i.class_id, i.crop.area, i.box_xyxy) for i in found], [n.code for n in notes]
    ([(0, 1, 12, (1, 1, 5, 5))], ['degenerate-instance'])
    """
    labels_img = instance_labels(item, line_width=line_width) if visible_only else None
    result: list[Instance] = []
    notes: list[Note] = []
    for i, shape in enumerate(item.shapes):
        if not shape.is_area and shape.kind != "polyline":
            continue
        class_id = _class_of(shape, class_index, item)
        crop = rasterize(shape, item.size_hw, line_width=line_width)
        if labels_img is not None and crop.bitmap.size:
            crop = Crop(crop.x0, crop.y0, crop.bitmap & (labels_img[crop.slices] == i + 1))
        crop = crop.tight()
        if crop.bitmap.size == 0:
            why = "is fully covered by shapes above it" if visible_only and rasterize(
                shape, item.size_hw, line_width=line_width
            ).area else "covers no pixel center (too small or outside the image)"
            notes.append(Note("degenerate-instance", f"{shape.kind} {shape.label!r} {why}; not an instance",
                              item=item.name, where=f"shape {i}"))
            continue
        result.append(Instance(crop, class_id, i, shape))
    return result, notes
