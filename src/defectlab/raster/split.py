"""Instances from a semantic mask: connected components, touching objects split by watershed.

A U-Net predicts a class per pixel; counting and measuring defects needs one id per
defect. :func:`split_instances` does it per class and per connected component
(8-connected), in three steps:

1. **markers**: the maxima of the Euclidean distance transform (the centers of the
   round parts): a pixel is a marker when no pixel of its component within
   ``min_distance_px`` (Chebyshev) is farther from the background, of a plateau of equal
   maxima one pixel in every ``min_distance_px`` (in raster order) is kept — the rule of
   ``skimage.feature.peak_local_max(labels=component, exclude_border=False)``;
2. **watershed** of the negated distance from those markers, within the component
   (``skimage.segmentation.watershed``, 4-connected): two touching cavities meet along
   their neck;
3. **merging** of over-split parts: two adjacent parts stay apart only when the neck
   between them is clearly narrower than both — its half width (the distance halfway
   between the pixels on either side of their common boundary, the *saddle*) is below
   ``neck_ratio`` × the smaller part's inscribed radius (its peak distance) — and the
   smaller part is at least :data:`MIN_SPLIT_RADIUS_PX` in radius (below that the distance
   transform's pixel ripples along an oblique edge look like necks). An ellipse, a plateau
   of equal maxima or a thin line at any angle therefore stays whole; two equal discs whose
   centers are more than 1.43 radii apart are split (``neck_ratio=0.7``: their neck's half
   width is ``sqrt(1 - (d/2r)²)·r``).

A component none of whose pixels lies :data:`MIN_SPLIT_RADIUS_PX` from the background (a
speck, a thin line) has no part that may split off and stays whole.

Every step runs on the whole image at once, whatever the number of objects: one multi-label
distance transform (``edt``; the image border counts as background), the markers from the
list of component pixels compared with their window, one watershed over the components with
two markers or more (more only where components of two classes touch), and the saddles as
labeled statistics of the pixel pairs across basin boundaries. Only the merging walks a list
in Python, one step per pair of adjacent basins whose merge is in doubt. The parts are those
of the per-component implementation it replaced (kept in ``tests/raster/split_reference.py``)
but for pixels on a watershed line that two markers reach at once (the flooding order of equal
markers is scikit-image's) and for thin components that one split at a diagonal join; see
``benchmarks/bench_postprocess.py``.

numpy / scipy / scikit-image / edt only (no torch), so it also serves masks from anywhere.

Examples
--------
>>> import numpy as np
>>> yy, xx = np.mgrid[:40, :60] + 0.5
>>> discs = ((xx - 18) ** 2 + (yy - 20) ** 2 <= 100) | ((xx - 36) ** 2 + (yy - 20) ** 2 <= 100)
>>> labels, classes = split_instances(discs.astype(np.uint8))
>>> int(labels.max()), classes.tolist()
(2, [1, 1])
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

__all__ = ["split_instances", "DEFAULT_NECK_RATIO", "MIN_SPLIT_RADIUS_PX"]

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
    min_area_by_class: Mapping[int, int] | None = None,
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
    min_area_by_class : mapping of int to int, optional
        Class index -> its own minimum object area (instead of ``min_area_px``), for the
        classes listed.

    Returns
    -------
    labels : (H, W) int32
        Instance ids 1..N, 0 = background, numbered in order of class, then of the
        top-left-most pixel of each connected component, then (the parts of a split
        component) of their highest marker's distance from the background, largest first.
    instance_classes : (N,) uint8 (the dtype of ``semantic`` when wider)
        ``instance_classes[i - 1]`` is the class of id ``i``.

    Examples
    --------
    >>> import numpy as np
    >>> sem = np.zeros((6, 8), np.uint8); sem[1:3, 1:3] = 1; sem[3:5, 5:7] = 2
    >>> labels, cls = split_instances(sem)
    >>> labels.max(), cls.tolist()
    (np.int32(2), [1, 2])
    """
    sem = np.asarray(semantic)
    if sem.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) class-index mask, got shape {sem.shape}")
    if not np.issubdtype(sem.dtype, np.integer) and sem.dtype != bool:
        raise ValueError(f"expected an integer class-index mask, got dtype {sem.dtype}")
    if not 0 < neck_ratio <= 1:
        raise ValueError(f"expected 0 < neck_ratio <= 1, got {neck_ratio!r}")
    if min_area_px < 1 or min_distance_px < 1:
        raise ValueError(f"expected min_area_px and min_distance_px >= 1, got {min_area_px}, {min_distance_px}")
    by_class = {int(c): int(a) for c, a in (min_area_by_class or {}).items()}
    if any(a < 1 for a in by_class.values()):
        raise ValueError(f"expected every min_area_by_class >= 1, got {min_area_by_class}")
    present = _classes_present(sem)
    wanted = present if classes is None else [int(c) for c in classes if int(c) in present]
    split_set = set(wanted) if split is True else set() if split is False else {int(c) for c in split}
    dtype = sem.dtype if sem.dtype != bool and np.iinfo(sem.dtype).max > 255 else np.uint8

    comp, comp_class = _components(sem, sorted(wanted), present)
    n = len(comp_class) - 1
    areas = np.bincount(comp.ravel(), minlength=n + 1)
    least = np.full(int(comp_class.max()) + 1, int(min_area_px), dtype=np.int64)  # class -> least area
    for c, a in by_class.items():
        if c < len(least):
            least[c] = a
    kept = areas >= least[comp_class]
    kept[0] = False
    splittable = kept & np.isin(comp_class, sorted(split_set))
    # a key per object, ordered as the ids will be: component i -> key i, unless it is split,
    # when its k markers take keys start..start+k-1 (and its parts the keys of their roots)
    keys, key_class = comp, comp_class
    if splittable.any():
        lab = np.where(splittable[comp], comp, 0)
        sq = _squared_distance(comp)
        rows, cols, owner = _markers(sq, lab, areas, min_distance_px)
        n_markers = np.bincount(owner, minlength=n + 1)
        # a component none of whose pixels is MIN_SPLIT_RADIUS_PX from the background has no
        # part that may split off: it stays whole without a watershed
        widest = np.zeros(n + 1, dtype=np.float32)
        np.maximum.at(widest, owner, sq[rows, cols])
        several = (n_markers >= 2) & (widest >= MIN_SPLIT_RADIUS_PX ** 2)
        if several.any():
            slots = np.where(several, n_markers, 1)
            slots[0] = 1  # key 0: background
            start = np.cumsum(slots) - slots
            key_class = np.repeat(comp_class, slots)
            # the markers of a component to split, as peak_local_max orders them: distance from
            # the background, largest first, ties in raster order
            sel = several[owner]
            rows, cols, owner = rows[sel], cols[sel], owner[sel]
            order = np.lexsort((rows * comp.shape[1] + cols, -sq[rows, cols], owner))
            rows, cols, owner = rows[order], cols[order], owner[order]
            marker_key = start[owner] + np.arange(len(owner)) - np.searchsorted(owner, owner)
            which = np.where(several[lab], lab, 0)
            basins = _watershed(sq, which, comp_class, rows, cols, marker_key)
            root = _merge_shallow(basins, sq, which, np.repeat(np.arange(n + 1), slots), neck_ratio)
            keys = start[comp]
            inside = which > 0
            # a pixel that no basin reached (joined to the rest only diagonally) gets no id, as before
            keys[inside] = root[basins[inside]]
    keep = np.bincount(keys.ravel(), minlength=len(key_class)) >= least[key_class]
    keep[0] = False
    ids = np.zeros(len(keep), dtype=np.int32)
    ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return ids[keys], np.asarray(key_class[keep], dtype=dtype)


def _classes_present(sem: np.ndarray) -> list[int]:
    """The non-zero values of an integer mask, ascending."""
    if sem.dtype == bool or (sem.dtype.kind == "u" and sem.dtype.itemsize <= 2):
        counts = np.bincount(sem.ravel().view(np.uint8) if sem.dtype == bool else sem.ravel())
        return [int(c) for c in np.flatnonzero(counts) if c != 0]
    return [int(c) for c in np.unique(sem) if c != 0]


def _components(sem: np.ndarray, wanted: list[int], present: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of each wanted class, numbered in order of class, then of their
    first pixel in raster order: (H, W) int32 (0 = none) and the (n + 1,) class of each (0 first).

    One labeling of all classes at once (``skimage.measure.label`` joins equal neighbors only),
    whose numbers follow the raster order, then renumbered class by class.
    """
    from skimage.measure import label

    values = sem if wanted == present else np.where(np.isin(sem, wanted), sem, 0)
    lab = label(values, background=0, connectivity=2).astype(np.int32, copy=False)
    n = int(lab.max())
    cls = np.zeros(n + 1, dtype=np.int64)
    cls[lab.ravel()] = values.ravel()
    order = np.argsort(cls[1:], kind="stable") + 1  # by class, then by number (raster order)
    renumber = np.zeros(n + 1, dtype=np.int32)
    renumber[order] = np.arange(1, n + 1, dtype=np.int32)
    return renumber[lab], np.concatenate([[0], cls[order]])


def _squared_distance(comp: np.ndarray) -> np.ndarray:
    """(H, W) float32: each component pixel's squared Euclidean distance to the nearest pixel
    outside its component, the image border counting as background (0 outside components).

    One multi-label transform (``edt``) for all components: the nearest pixel outside a
    component is never of another component of its class (those are not 8-adjacent), so this
    is also the distance to the nearest pixel not of its class. Squared distances are whole
    numbers, exact in float32 up to 4096 px: their square roots, taken in float64 where a
    distance itself is needed, are those of ``scipy.ndimage.distance_transform_edt`` on the
    component alone, and everything else only compares them.
    """
    import edt

    return edt.edtsq(comp, black_border=True)


def _markers(sq: np.ndarray, lab: np.ndarray, areas: np.ndarray, min_distance_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and components (raster order) of the markers of the components ``lab > 0``
    (``areas``: pixels per component): what ``peak_local_max(dist, labels=component,
    min_distance=min_distance_px, exclude_border=False)`` returns for each, all at once.

    Works on the list of component pixels (flat indices into the arrays padded by
    ``min_distance_px``, so that every window offset stays inside them).
    """
    m = min_distance_px
    lp, sp = np.pad(lab, m).ravel(), np.pad(sq, m).ravel()
    wp = lab.shape[1] + 2 * m
    idx = np.flatnonzero(lp)
    own, val = lp[idx], sp[idx]

    def not_above(at: np.ndarray, offsets: Iterable[int]) -> np.ndarray:
        """Whether no pixel of its own component at these offsets is farther from the background."""
        pos, mine, height = idx[at], own[at], val[at]
        ok = np.ones(len(at), dtype=bool)
        for o in offsets:
            ok &= (sp[pos + o] <= height) | (lp[pos + o] != mine)
        return ok

    # the window's offsets, nearest first: few pixels pass the 4-neighbors, fewer the 8
    at = np.arange(len(idx))
    for ring in ([(-1, 0), (1, 0), (0, -1), (0, 1)], [(-1, -1), (-1, 1), (1, -1), (1, 1)],
                 [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1) if max(abs(dy), abs(dx)) > 1]):
        at = at[not_above(at, [dy * wp + dx for dy, dx in ring if max(abs(dy), abs(dx)) <= m])]
    peak = np.zeros(len(idx), dtype=bool)
    peak[at] = True
    # a component whose every pixel is a maximum (a flat one: a dot, a line 1-2 px wide) gets
    # as markers its pixels that a binary opening (cross) removes
    flat = np.bincount(own[at], minlength=len(areas)) == areas
    flat[0] = False
    if flat.any():
        at = np.flatnonzero(flat[own])
        pos = idx[at]
        core = np.ones(len(at), dtype=bool)  # the erosion: all 4-neighbors in the component
        for o in (-wp, wp, -1, 1):
            core &= lp[pos + o] == own[at]
        eroded = pos[core]  # ascending
        opened = core.copy()  # the dilation of the erosion
        for o in (-wp, wp, -1, 1) if len(eroded) else ():
            j = np.minimum(np.searchsorted(eroded, pos + o), len(eroded) - 1)
            opened |= eroded[j] == pos + o
        peak[at] = ~opened
    rows, cols = np.divmod(idx[peak], wp)
    rows, cols, owner = rows - m, cols - m, own[peak]
    if m > 1 and len(rows):
        keep = _spaced(rows, cols, owner, lab.shape[1], m - 1)
        rows, cols, owner = rows[keep], cols[keep], owner[keep]
    return rows, cols, owner


def _spaced(rows: np.ndarray, cols: np.ndarray, owner: np.ndarray, width: int, reach: int) -> np.ndarray:
    """Which peaks (raster order) a greedy pass keeps when it drops every peak within ``reach``
    (Chebyshev) of a kept one of the same component, as ``skimage``'s ``ensure_spacing`` does.

    Two maxima of a component that close have the same distance (each lies in the other's
    window), so the greedy pass, sorted by distance then raster order, reduces to raster order.
    """
    n = len(rows)
    flat = rows * width + cols  # ascending (raster order)
    later, earlier = [], []
    for dy in range(-reach, 1):
        for dx in range(-reach, reach + 1):
            if dy == 0 and dx >= 0:
                break
            target = flat + dy * width + dx
            j = np.minimum(np.searchsorted(flat, target), n - 1)
            ok = (flat[j] == target) & (cols + dx >= 0) & (cols + dx < width)
            ok[ok] = owner[j[ok]] == owner[ok]
            later.append(np.flatnonzero(ok))
            earlier.append(j[ok])
    u, v = np.concatenate(later), np.concatenate(earlier)
    kept = np.ones(n, dtype=bool)
    # the greedy pass in rounds: a peak is kept once all its earlier neighbors are dropped, and
    # dropped once one of them is kept; each round decides at least the first undecided peak
    undecided = np.zeros(n, dtype=bool)
    undecided[u] = True
    kept[u] = False
    while len(u):
        dropped = np.zeros(n, dtype=bool)
        dropped[u[kept[v]]] = True
        blocked = np.zeros(n, dtype=bool)
        blocked[u[undecided[v]]] = True
        kept |= undecided & ~dropped & ~blocked
        undecided &= ~dropped & ~kept
        live = undecided[u]
        u, v = u[live], v[live]
    return kept


def _watershed(sq: np.ndarray, which: np.ndarray, comp_class: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               marker_key: np.ndarray) -> np.ndarray:
    """(H, W) int32 basins (marker keys) of the components ``which > 0``, 0 elsewhere.

    The flooding must stay inside each component. Components of one class never touch (they
    are 8-connected); of two classes they may: one watershed takes all components but those
    that touch one of a lower class, and one more watershed per class takes those, in the box
    around them (at most one watershed per class, whatever the size of the image).
    """
    from skimage.segmentation import watershed

    markers = np.zeros(which.shape, dtype=np.int32)
    markers[rows, cols] = marker_key
    width = which.shape[1] + 1
    wp = np.pad(which, ((0, 1), (0, 1))).ravel()
    idx = np.flatnonzero(wp)
    later = np.zeros(len(comp_class), dtype=bool)  # touches a component of a lower class
    for offset in (1, width):  # the right neighbor, the one below
        a, b = wp[idx], wp[idx + offset]
        sel = (b > 0) & (a != b)
        a, b = a[sel], b[sel]
        later[np.where(comp_class[a] > comp_class[b], a, b)] = True
    basins = np.zeros(which.shape, dtype=np.int32)
    neg = -sq
    rounds = [~later] + [later & (comp_class == c) for c in np.unique(comp_class[later])]
    for now in rounds:
        part = now[which] & (which > 0)
        if not part.any():
            continue
        box = _box(part)
        inner = part[box]
        if len(rounds) > 1:
            basins[box][inner] = watershed(neg[box], markers[box], mask=inner)[inner]
        else:  # one watershed for all
            basins[box] = watershed(neg[box], markers[box], mask=inner)
    return basins


def _box(mask: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the True pixels of a (non-empty) 2-D mask."""
    r = np.flatnonzero(mask.any(axis=1))
    c = np.flatnonzero(mask.any(axis=0))
    return slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)


def _merge_shallow(basins: np.ndarray, sq: np.ndarray, which: np.ndarray, key_comp: np.ndarray,
                   neck_ratio: float) -> np.ndarray:
    """Merge adjacent basins of one component whose saddle is not clearly below the smaller
    peak: for each key (``key_comp``: its component), the smallest key of its group (the
    group's highest marker; 0 stays 0). Basins of two components are never merged."""
    n_keys = len(key_comp)
    # the basin pixels, as flat indices into the arrays padded by a row below and a column right
    width = basins.shape[1] + 1
    bp = np.pad(basins, ((0, 1), (0, 1))).ravel()
    sp = np.pad(sq, ((0, 1), (0, 1))).ravel()
    cp = np.pad(which, ((0, 1), (0, 1))).ravel()
    idx = np.flatnonzero(bp)
    here = bp[idx]
    top_sq = np.zeros(n_keys, dtype=np.float32)
    np.maximum.at(top_sq, here, sp[idx])
    top = np.sqrt(top_sq.astype(np.float64))
    # saddle of each adjacent pair: the highest min(dist) across their common boundary; pairs
    # taken in order of saddle, then as the per-component code met them (left-right pairs first)
    pair_keys, values, passes = [], [], []
    for step, offset in enumerate((1, width)):  # the right neighbor, then the one below
        there = bp[idx + offset]
        sel = (there > 0) & (there != here) & (cp[idx + offset] == cp[idx])
        la, lb = here[sel].astype(np.int64), there[sel].astype(np.int64)
        pair_keys.append(np.minimum(la, lb) * n_keys + np.maximum(la, lb))
        # the distance halfway between the two pixel centers
        da, db = sp[idx[sel]].astype(np.float64), sp[idx[sel] + offset].astype(np.float64)
        values.append((np.sqrt(da) + np.sqrt(db)) / 2)
        passes.append(np.full(len(la), step))
    key, val, first = np.concatenate(pair_keys), np.concatenate(values), np.concatenate(passes)
    root = np.arange(n_keys)
    if not len(key):
        return root
    order = np.lexsort((first, -val, key))  # per pair: highest saddle first, then first pass
    key, val, first = key[order], val[order], first[order]
    head = np.r_[True, key[1:] != key[:-1]]
    saddle, pair, step = val[head], key[head], np.minimum.reduceat(first, np.flatnonzero(head))
    order = np.lexsort((pair, step, -saddle))
    saddle, a, b = saddle[order], pair[order] // n_keys, pair[order] % n_keys
    # a pair whose saddle reaches neck_ratio x its component's highest top merges whatever was
    # merged before, and comes before every pair of that component that does not: merge all
    # those at once, then walk the others in order
    highest = np.zeros(int(key_comp.max()) + 1)
    np.maximum.at(highest, key_comp, top)
    sure = saddle >= neck_ratio * highest[key_comp[a]]
    if sure.any():
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        graph = coo_matrix((np.ones(int(sure.sum()), dtype=np.int8), (a[sure], b[sure])), shape=(n_keys, n_keys))
        group = connected_components(graph, directed=False)[1]
        low = np.full(n_keys, n_keys)
        np.minimum.at(low, group, root)
        group_top = np.zeros(n_keys)
        np.maximum.at(group_top, group, top)
        root, top = low[group], group_top[group]
    return _union_shallow(root, top, a[~sure], b[~sure], saddle[~sure], neck_ratio)


def _union_shallow(root: np.ndarray, top: np.ndarray, first: np.ndarray, second: np.ndarray,
                   saddle: np.ndarray, neck_ratio: float) -> np.ndarray:
    """Union-find over the pairs in the order given (a merge raises the top that later pairs
    compare), from groups ``root`` (each key's smallest key) with tops ``top``: each key's
    group's smallest key."""
    par, tops = root.tolist(), top.tolist()

    def find(i: int) -> int:
        while par[i] != i:
            par[i] = par[par[i]]
            i = par[i]
        return i

    for a, b, s in zip(first.tolist(), second.tolist(), saddle.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            low = min(tops[ra], tops[rb])
            if s >= neck_ratio * low or low < MIN_SPLIT_RADIUS_PX:
                ra, rb = min(ra, rb), max(ra, rb)
                par[rb] = ra
                tops[ra] = max(tops[ra], tops[rb])
    out = np.asarray(par)
    while True:  # pointer jumping to the roots
        nxt = out[out]
        if np.array_equal(nxt, out):
            return out
        out = nxt
