"""What COCO's reader and writer share: defectlab's keys in the JSON and the RLE codec.

See the package docstring for the format facts (column-major RLE, pycocotools' compressed
counts).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ROBOFLOW_FILE", "EXTRA", "DEFAULT_SUBSET", "rle_counts", "rle_crop", "encode_rle"]

#: Roboflow's file name for a split's annotations.
ROBOFLOW_FILE = "_annotations.coco.json"
#: The key of defectlab's own data on annotations and categories.
EXTRA = "defectlab"
#: The subset name of the file that holds items without a subset.
DEFAULT_SUBSET = "default"




def rle_counts(counts: str) -> list[int]:
    """The run lengths of pycocotools' compressed RLE string (no check of their sum).

    Raises ValueError on a character outside ``'0'..'o'``, a string that ends inside a
    number, or a negative run.

    Examples
    --------
    >>> rle_counts("0d0n0")   # pycocotools.mask.encode of a 10 x 5 mask, first 2 columns set
    [0, 20, 30]
    """
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("the string ends inside a number")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"unexpected character {counts[p]!r} at {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        if x < 0:
            raise ValueError(f"a negative run ({x}) at character {p}")
        out.append(x)
    return out


def rle_crop(counts: list[int], size_hw: tuple[int, int]) -> tuple[np.ndarray, int, int] | None:
    """Decode checked column-major runs to ``(bitmap, left, top)`` cropped to the set pixels.

    Only the columns the object spans are allocated, never the whole image.
    """
    h, _ = size_hw
    runs = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    fg = np.flatnonzero((np.arange(len(runs)) % 2 == 1) & (runs > 0))
    if fg.size == 0:
        return None
    s, e = starts[fg], ends[fg]
    c0, c1 = int(s.min()) // h, (int(e.max()) - 1) // h
    base, n = c0 * h, (c1 - c0 + 1) * h
    delta = np.zeros(n + 1, dtype=np.int8)
    delta[s - base] = 1  # set runs are disjoint and non-empty: starts differ, ends differ,
    delta[e - base] -= 1  # and an end meets a start only across an empty background run
    full = np.cumsum(delta[:-1], dtype=np.int8).astype(bool).reshape(c1 - c0 + 1, h).T  # (h, columns)
    rows = np.flatnonzero(full.any(axis=1))
    r0, r1 = int(rows[0]), int(rows[-1])
    return full[r0 : r1 + 1], c0, r0


def encode_rle(crop_bitmap: np.ndarray, x0: int, y0: int, size_hw: tuple[int, int]) -> dict:
    """pycocotools' compressed RLE of one instance, over the whole image."""
    from pycocotools import mask as mask_utils

    full = np.zeros(size_hw, dtype=np.uint8, order="F")
    h, w = crop_bitmap.shape
    full[y0 : y0 + h, x0 : x0 + w] = crop_bitmap
    rle = mask_utils.encode(full)
    return {"size": [int(size_hw[0]), int(size_hw[1])], "counts": rle["counts"].decode("ascii")}
