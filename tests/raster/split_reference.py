"""The per-component split of instances as it was at commit feb22e2 (the reference).

``defectlab.raster.split.split_instances`` now works on the whole image at once (one
distance transform, one peak search, one watershed, labeled statistics); this is the
implementation it replaced, kept verbatim (less its doctest) so that tests and
``benchmarks/bench_postprocess.py`` compare the new one against it: per class and per
8-connected component, inside the component's box, ``peak_local_max`` markers, a watershed
and the merging of shallow necks (see the module docstring of ``defectlab.raster.split``).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: Split two touching parts when their neck's half width is below this × the smaller radius.
DEFAULT_NECK_RATIO = 0.7

#: Parts whose inscribed radius (peak distance) is below this stay joined to their neighbor:
#: at a few px the distance transform ripples by a pixel along any oblique edge (a 3 px wide
#: line at 45° has "peaks" of 2 and "necks" of 1.4), so a neck cannot be told from a staircase.
MIN_SPLIT_RADIUS_PX = 3.0

_EIGHT = np.ones((3, 3), dtype=bool)


def split_instances(
    semantic: np.ndarray,
    *,
    classes: Iterable[int] | None = None,
    split: bool | Iterable[int] = True,
    min_area_px: int = 1,
    min_distance_px: int = 2,
    neck_ratio: float = DEFAULT_NECK_RATIO,
) -> tuple[np.ndarray, np.ndarray]:
    """One id per object of a class-index mask, touching round objects split apart.

    Parameters
    ----------
    semantic : (H, W) integer array
        Class index per pixel, 0 = background.
    classes : iterable of int, optional
        The classes to make instances of (default: every non-zero class present).
    split : bool or iterable of int
        Split touching objects by watershed: for every class (True), none (False, plain
        connected components), or only the listed classes.
    min_area_px : int
        Objects with fewer pixels are left out (they stay in ``semantic``, not in the ids).
    min_distance_px : int
        Smallest distance in px between two markers (``peak_local_max(min_distance=)``).
    neck_ratio : float
        In (0, 1]: see the module docstring; lower splits less.

    Returns
    -------
    labels : (H, W) int32
        Instance ids 1..N, 0 = background, numbered in order of class, then of the
        top-left-most pixel of each object.
    instance_classes : (N,) uint8 (the dtype of ``semantic`` when wider)
        ``instance_classes[i - 1]`` is the class of id ``i``.
    """
    from scipy import ndimage

    sem = np.asarray(semantic)
    if sem.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) class-index mask, got shape {sem.shape}")
    if not np.issubdtype(sem.dtype, np.integer) and sem.dtype != bool:
        raise ValueError(f"expected an integer class-index mask, got dtype {sem.dtype}")
    if not 0 < neck_ratio <= 1:
        raise ValueError(f"expected 0 < neck_ratio <= 1, got {neck_ratio!r}")
    if min_area_px < 1 or min_distance_px < 1:
        raise ValueError(f"expected min_area_px and min_distance_px >= 1, got {min_area_px}, {min_distance_px}")
    present = [int(c) for c in np.unique(sem) if c != 0]
    wanted = present if classes is None else [int(c) for c in classes if int(c) in present]
    split_set = set(wanted) if split is True else set() if split is False else {int(c) for c in split}

    out = np.zeros(sem.shape, dtype=np.int32)
    out_classes: list[int] = []
    for cls in sorted(wanted):
        comps, n = ndimage.label(sem == cls, structure=_EIGHT)
        for index, box in enumerate(ndimage.find_objects(comps), start=1):
            if box is None:
                continue
            comp = comps[box] == index
            if int(comp.sum()) < min_area_px:
                continue
            parts = (_watershed_parts(comp, min_distance_px, neck_ratio) if cls in split_set
                     else comp.astype(np.int32))
            for part in range(1, int(parts.max()) + 1):
                pix = parts == part
                if int(pix.sum()) < min_area_px:
                    continue
                out_classes.append(cls)
                out[box][pix] = len(out_classes)
    dtype = sem.dtype if sem.dtype != bool and np.iinfo(sem.dtype).max > 255 else np.uint8
    return out, np.asarray(out_classes, dtype=dtype)


def _watershed_parts(comp: np.ndarray, min_distance_px: int, neck_ratio: float) -> np.ndarray:
    """(h, w) int32 parts 1..k of one connected component (bool (h, w))."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    padded = np.pad(comp, 1)
    dist = ndimage.distance_transform_edt(padded)
    peaks = peak_local_max(dist, min_distance=min_distance_px, labels=padded.astype(np.int32),
                           exclude_border=False)
    if len(peaks) < 2:
        return comp.astype(np.int32)
    markers = np.zeros(padded.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    basins = watershed(-dist, markers, mask=padded)
    merged = _merge_shallow(basins, dist, len(peaks), neck_ratio)
    return merged[1:-1, 1:-1]


def _merge_shallow(basins: np.ndarray, dist: np.ndarray, k: int, neck_ratio: float) -> np.ndarray:
    """Merge adjacent basins whose saddle is not clearly below the smaller peak; relabel 1..m."""
    peak = np.asarray(_label_max(dist, basins, k))
    # saddle of each adjacent pair: the highest min(dist) across their common boundary
    saddles: dict[tuple[int, int], float] = {}
    for a, b, da, db in (
        (basins[:, :-1], basins[:, 1:], dist[:, :-1], dist[:, 1:]),
        (basins[:-1, :], basins[1:, :], dist[:-1, :], dist[1:, :]),
    ):
        sel = (a != b) & (a > 0) & (b > 0)
        if not sel.any():
            continue
        la, lb = a[sel], b[sel]
        lo, hi = np.minimum(la, lb), np.maximum(la, lb)
        val = (da[sel] + db[sel]) / 2  # the distance halfway between the two pixel centers
        keys = lo.astype(np.int64) * (k + 1) + hi
        order = np.lexsort((val, keys))
        keys, val = keys[order], val[order]
        last = np.r_[keys[1:] != keys[:-1], True]  # the maximum of each key (sorted by value)
        for key, v in zip(keys[last].tolist(), val[last].tolist()):
            pair = (key // (k + 1), key % (k + 1))
            saddles[pair] = max(saddles.get(pair, 0.0), v)
    parent = list(range(k + 1))
    top = [0.0, *peak.tolist()]

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (a, b), s in sorted(saddles.items(), key=lambda t: -t[1]):
        ra, rb = find(a), find(b)
        if ra != rb and (s >= neck_ratio * min(top[ra], top[rb]) or min(top[ra], top[rb]) < MIN_SPLIT_RADIUS_PX):
            parent[rb] = ra
            top[ra] = max(top[ra], top[rb])
    roots = np.array([find(i) for i in range(k + 1)])
    _, relabel = np.unique(roots, return_inverse=True)  # root 0 (background) stays 0
    return relabel.astype(np.int32)[basins]


def _label_max(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Maximum of ``values`` over each label 1..k, (k,) float64."""
    from scipy import ndimage

    return np.asarray(ndimage.maximum(values, labels, index=np.arange(1, k + 1)), dtype=np.float64)
