"""Checks between shapes: duplicates, heavy overlaps, and holes left between overlapping masks.

Everything is computed on the shapes' tight pixel crops (the exact center rule of
:mod:`defectlab.raster`), never on full-image masks: two shapes are compared only when their
boxes overlap, and only inside the common box.
"""

from __future__ import annotations

import numpy as np

from .context import ItemData
from .findings import Finding

__all__ = ["overlapping_pairs", "overlap_findings", "holes", "hole_findings"]


def _boxes(data: ItemData, indices: list[int]) -> np.ndarray:
    """(n, 4) int64 pixel boxes x1, y1, x2, y2 (exclusive) of the crops of ``indices``."""
    out = np.empty((len(indices), 4), dtype=np.int64)
    for k, i in enumerate(indices):
        c = data.crops[i]
        h, w = c.bitmap.shape
        out[k] = (c.x0, c.y0, c.x0 + w, c.y0 + h)
    return out


def _intersection(data: ItemData, i: int, j: int) -> int:
    a, b = data.crops[i], data.crops[j]
    x1, y1 = max(a.x0, b.x0), max(a.y0, b.y0)
    x2 = min(a.x0 + a.bitmap.shape[1], b.x0 + b.bitmap.shape[1])
    y2 = min(a.y0 + a.bitmap.shape[0], b.y0 + b.bitmap.shape[0])
    if x2 <= x1 or y2 <= y1:
        return 0
    sa = a.bitmap[y1 - a.y0 : y2 - a.y0, x1 - a.x0 : x2 - a.x0]
    sb = b.bitmap[y1 - b.y0 : y2 - b.y0, x1 - b.x0 : x2 - b.x0]
    return int(np.count_nonzero(sa & sb))


def overlapping_pairs(data: ItemData, *, same_label: bool = True) -> list[tuple[int, int, int]]:
    """``(i, j, shared_px)``, ``i < j``, for area shapes whose pixels overlap.

    Parameters
    ----------
    data : ItemData
    same_label : bool
        Only pairs of shapes with the same label.

    Returns
    -------
    list of (int, int, int)
        Shape indices and the number of pixels both cover (> 0).
    """
    shapes = data.item.shapes
    idx = [i for i, s in enumerate(shapes) if s.is_area and data.crops[i] is not None and data.crops[i].area]
    if len(idx) < 2:
        return []
    b = _boxes(data, idx)
    hit = ((b[:, None, 0] < b[None, :, 2]) & (b[None, :, 0] < b[:, None, 2])
           & (b[:, None, 1] < b[None, :, 3]) & (b[None, :, 1] < b[:, None, 3]))
    if same_label:
        names = np.array([shapes[i].label for i in idx], dtype=object)
        hit &= names[:, None] == names[None, :]
    ka, kb = np.nonzero(np.triu(hit, k=1))
    out = []
    for a, c in zip(ka.tolist(), kb.tolist()):
        shared = _intersection(data, idx[a], idx[c])
        if shared:
            out.append((idx[a], idx[c], shared))
    return out


def overlap_findings(data: ItemData, *, duplicate_iou: float, overlap: float) -> list[Finding]:
    """``shape-duplicate`` (same label, pixel IoU > ``duplicate_iou``) and ``overlap-heavy``
    (same label, shared pixels > ``overlap`` of the smaller shape, neither marked occluded).

    The finding is on the later shape of the pair; ``related`` holds the earlier one.
    """
    item = data.item
    out: list[Finding] = []
    for i, j, shared in overlapping_pairs(data, same_label=True):
        ai, aj = data.area_px(i), data.area_px(j)
        iou = shared / (ai + aj - shared)
        frac = shared / min(ai, aj)
        box = _union_box(data, i, j)
        label = item.shapes[j].label
        if iou > duplicate_iou:
            out.append(Finding("shape-duplicate", item.name,
                               f"same label and pixel IoU {iou:.3f} with shape {i}", shape=j, label=label,
                               related=(i,), box_xyxy=box, value=iou))
        elif frac > overlap and not (item.shapes[i].occluded or item.shapes[j].occluded):
            out.append(Finding("overlap-heavy", item.name,
                               f"shares {shared} px ({frac:.0%} of the smaller shape, IoU {iou:.2f}) with shape {i}",
                               shape=j, label=label, related=(i,), box_xyxy=box, value=frac))
    return out


def _union_box(data: ItemData, i: int, j: int) -> tuple[float, float, float, float]:
    a = data.crops[i].box_xyxy()
    b = data.crops[j].box_xyxy()
    return (float(min(a[0], b[0])), float(min(a[1], b[1])), float(max(a[2], b[2])), float(max(a[3], b[3])))


def holes(data: ItemData) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Background pockets fully enclosed by the union of the area shapes.

    The union is built inside its bounding box padded by one pixel; the pockets are what
    ``binary_fill_holes(union) & ~union`` gives, split into 4-connected components (a pocket
    open to the image border is no pocket). They are found directly as the 4-connected
    components of the background that do not reach the padded frame's border — the same
    pixels, about ten times faster than filling on a 1024² image.

    Returns
    -------
    list of (box_xyxy, bitmap)
        Each pocket's pixel box ``(x1, y1, x2, y2)`` (exclusive) and its (h, w) bool pixels.
    """
    from scipy import ndimage

    idx = [i for i, s in enumerate(data.item.shapes)
           if s.is_area and data.crops[i] is not None and data.crops[i].area]
    if not idx:
        return []
    b = _boxes(data, idx)
    x0, y0 = int(b[:, 0].min()) - 1, int(b[:, 1].min()) - 1
    x1, y1 = int(b[:, 2].max()) + 1, int(b[:, 3].max()) + 1
    union = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for i in idx:
        c = data.crops[i]
        h, w = c.bitmap.shape
        union[c.y0 - y0 : c.y0 - y0 + h, c.x0 - x0 : c.x0 - x0 + w] |= c.bitmap
    labels, n = ndimage.label(~union)  # 4-connected, as binary_fill_holes floods
    if n < 2:
        return []
    # the padding ring is background: every component touching it is open to the outside
    outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    out = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None or k in outside:
            continue
        rows, cols = sl
        out.append(((x0 + cols.start, y0 + rows.start, x0 + cols.stop, y0 + rows.stop), labels[sl] == k))
    return out


def hole_findings(data: ItemData, *, hole_area_px: float) -> list[Finding]:
    """``overlap-hole`` for each enclosed pocket of at most ``hole_area_px`` pixels, with the
    shapes that touch it (8-neighbours) in ``related``."""
    from scipy import ndimage

    item = data.item
    out: list[Finding] = []
    for (x1, y1, x2, y2), pocket in holes(data):
        area = int(np.count_nonzero(pocket))
        if area > hole_area_px:
            continue
        # the pocket grown by one pixel, in a frame one pixel larger on each side
        ring = ndimage.binary_dilation(np.pad(pocket, 1), structure=np.ones((3, 3), bool))
        fx, fy = x1 - 1, y1 - 1
        around = []
        for i, shape in enumerate(item.shapes):
            c = data.crops[i]
            if not shape.is_area or c is None or not c.area:
                continue
            ch, cw = c.bitmap.shape
            ox1, oy1 = max(fx, c.x0), max(fy, c.y0)
            ox2, oy2 = min(fx + ring.shape[1], c.x0 + cw), min(fy + ring.shape[0], c.y0 + ch)
            if ox2 <= ox1 or oy2 <= oy1:
                continue
            if np.any(ring[oy1 - fy : oy2 - fy, ox1 - fx : ox2 - fx]
                      & c.bitmap[oy1 - c.y0 : oy2 - c.y0, ox1 - c.x0 : ox2 - c.x0]):
                around.append(i)
        out.append(Finding("overlap-hole", item.name,
                           f"background pocket of {area} px enclosed by shapes {', '.join(map(str, around))}",
                           related=tuple(around), box_xyxy=(float(x1), float(y1), float(x2), float(y2)),
                           value=float(area)))
    return out
