"""Image checks: missing or unreadable files, real size vs annotated size, sizes that differ
within a set, images without shapes."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

import numpy as np

from ..errors import ImageError
from ..model import Item
from .findings import Finding

__all__ = ["load_image", "size_findings", "empty_findings"]


def _wh(size_hw: tuple[int, int]) -> str:
    return f"{size_hw[1]}x{size_hw[0]}"


def load_image(item: Item, *, decode: bool = True) -> tuple[np.ndarray | None, list[Finding]]:
    """The item's grayscale image, or None with the finding that says why.

    Parameters
    ----------
    item : Item
    decode : bool
        Decode the pixels (needed by the edge check); otherwise only the file's header is read
        for its size and None is returned.

    Returns
    -------
    image : (H, W) float64 array or None
        None when the file is missing, unreadable, of another size than ``item.size_hw``, or
        ``decode`` is False.
    findings : list of Finding
        ``image-missing``, ``image-unreadable`` or ``image-size-mismatch``.

    Examples
    --------
    >>> from defectlab.model import Item
    >>> load_image(Item("gone.png", (8, 8)))[1][0].code
    'image-missing'
    """
    from ..imaging.io import image_size_hw, read_image, to_gray

    if item.image is None or not item.image.exists():
        where = "" if item.image is None else f" ({item.image})"
        return None, [Finding("image-missing", item.name, f"image file not found{where}")]
    try:
        if decode:
            pixels = read_image(item.image)
            real_hw = (int(pixels.shape[0]), int(pixels.shape[1]))
        else:
            pixels, real_hw = None, image_size_hw(item.image)
    except ImageError as err:
        return None, [Finding("image-unreadable", item.name, str(err))]
    if real_hw != item.size_hw:
        h, w = item.size_hw
        return None, [Finding(
            "image-size-mismatch", item.name,
            f"the file is {_wh(real_hw)} (WxH) but the annotations say {_wh(item.size_hw)}; "
            "shapes may be scaled or shifted", box_xyxy=(0.0, 0.0, float(w), float(h)))]
    if pixels is None:
        return None, []
    return np.asarray(to_gray(pixels), dtype=np.float64), []


def size_findings(items: Sequence[Item], *, expected_hw: tuple[int, int] | None = None) -> list[Finding]:
    """``image-size-differs`` for each item whose annotated size is not its set's size.

    A set is a subset (items without a subset form one set). Its size is ``expected_hw`` when
    given, else its most common size (ties: the first seen).

    Examples
    --------
    >>> from defectlab.model import Item
    >>> items = [Item("a.png", (64, 64)), Item("b.png", (64, 64)), Item("c.png", (48, 64))]
    >>> [f.image for f in size_findings(items)]
    ['c.png']
    """
    by_set: dict[str | None, list[Item]] = defaultdict(list)
    for it in items:
        by_set[it.subset].append(it)
    out: list[Finding] = []
    for subset, group in by_set.items():
        counts = Counter(it.size_hw for it in group)
        target = expected_hw or counts.most_common(1)[0][0]
        where = f"subset {subset!r}" if subset else "this export"
        why = "the expected size" if expected_hw else f"the size of {counts[target]} of {len(group)} images of {where}"
        for it in group:
            if it.size_hw != target:
                out.append(Finding("image-size-differs", it.name,
                                   f"{_wh(it.size_hw)} (WxH), not {_wh(target)}, {why}",
                                   value=float(it.size_hw[0] * it.size_hw[1])))
    return out


def empty_findings(items: Sequence[Item]) -> list[Finding]:
    """``image-no-shapes`` for items with no shape at all (a tag counts as a shape)."""
    return [Finding("image-no-shapes", it.name, "no shape drawn on this image") for it in items if not it.shapes]
