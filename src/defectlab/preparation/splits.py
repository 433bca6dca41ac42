"""Train / validation / test splits that never leak a micrograph into two splits.

Tiles of one micrograph overlap and share its defects, so splits are made **by source
image** (:func:`split_images`): every tile of an image goes where its image goes.

How many images each split gets
-------------------------------
``fractions × n`` rounded by the largest-remainder rule (the counts add up to ``n``), then,
when the validation fraction is positive and there are at least two images, validation gets
at least one image, taken from train. Test gets none when its share rounds to 0 — said in the
summary. Which images: a seeded shuffle; or, with ``stratify=True``, a greedy iterative
stratification by label counts — images holding the rarest labels are placed first, each
in the split that still lacks most of its rarest label (ties: the emptier split, then the
seeded order), so that every split sees every label when the counts allow.

Frames of one series
--------------------
Frames of an in-situ series (``…-Frame-2.jpg``, ``…-Frame-10.jpg``: one name stem, a number) look
alike; a frame in test whose neighbour is in train makes the test figures flatter.
:func:`split_sources` (what ``prepare`` uses) therefore keeps each series (:func:`series_key`)
in one split: series are given to the splits largest first, each to the split that lacks most
images (ties: train, val, test). It does so when there are enough series for every split with a
share and the counts stay near the fractions (each split within a quarter of the images of its
target, and at least one image); otherwise it splits by image as :func:`split_images` does and
a note says why the validation and test figures will flatter.

A single micrograph
-------------------
The usual start (and the workshop's case) is one labeled image. :func:`spatial_split` then
divides it into a grid of cells at least one tile (+ ``margin_px``) large, and gives the
cells to the splits by the same counting rule: train takes the first cells in row order,
validation the next, test the last (the bottom rows, or the right end of a single row).
Each split's cells are tiled on their own (``tile_windows(..., within=regions)``), so **no
tile straddles two splits**; with ``margin_px`` a band that wide between regions of
different splits is left out of every tile, so a defect on the border is not seen by both.

Examples
--------
>>> from defectlab.model import Item
>>> items = [Item(f"img{i}.png", (64, 64)) for i in range(10)]
>>> split = split_images(items, (0.8, 0.1, 0.1), seed=0)
>>> sorted(Counter(split.values()).items())
[('test', 1), ('train', 8), ('val', 1)]
>>> sp = spatial_split((512, 512), (256, 256), (0.8, 0.1, 0.1))
>>> sp.grid_hw, sp.counts()
((2, 2), {'train': 3, 'val': 1, 'test': 0})
>>> sp.regions["val"]
[(256, 256, 512, 512)]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import re
from pathlib import PurePosixPath

import numpy as np

from ..errors import DatasetError
from ..model import Item, Note
from ..ordering import natural_sorted

__all__ = ["SPLITS", "parse_fractions", "allocate", "split_images", "series_key", "split_sources", "SpatialSplit",
           "spatial_split"]

#: Split names, in order.
SPLITS: tuple[str, str, str] = ("train", "val", "test")


def parse_fractions(value: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` or a sequence of 1–3 numbers -> (train, val, test) summing to 1.

    Numbers that do not sum to 1 are taken as proportions (``"8,1,1"`` works too).

    >>> parse_fractions("0.8,0.2")
    (0.8, 0.2, 0.0)
    """
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    else:
        parts = list(value)
    try:
        nums = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ValueError(f"expected split fractions like '0.8,0.1,0.1', got {value!r}") from None
    if not 1 <= len(nums) <= 3 or any(not np.isfinite(x) or x < 0 for x in nums) or sum(nums) <= 0 or nums[0] <= 0:
        raise ValueError(
            f"expected 1 to 3 non-negative split fractions (train, val, test) with train > 0, got {value!r}"
        )
    nums += [0.0] * (3 - len(nums))
    total = sum(nums)
    return tuple(x / total for x in nums)  # type: ignore[return-value]


def allocate(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """How many of ``n`` units (images or cells) each split gets; see the module docstring.

    >>> allocate(3, (0.8, 0.1, 0.1)), allocate(10, (0.8, 0.1, 0.1)), allocate(1, (0.8, 0.2, 0))
    ((2, 1, 0), (8, 1, 1), (1, 0, 0))
    """
    fr = parse_fractions(fractions)
    exact = [f * n for f in fr]
    counts = [int(np.floor(e)) for e in exact]
    left = n - sum(counts)
    # largest remainder first; ties go to the earlier split
    order = sorted(range(3), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in order[:left]:
        counts[k] += 1
    if fr[1] > 0 and counts[1] == 0 and n >= 2 and counts[0] >= 2:
        counts[0] -= 1
        counts[1] += 1
    return counts[0], counts[1], counts[2]


def _label_counts(items: Sequence[Item], labels: Sequence[str]) -> np.ndarray:
    index = {name: k for k, name in enumerate(labels)}
    out = np.zeros((len(items), len(labels)), dtype=np.int64)
    for i, it in enumerate(items):
        for s in it.shapes:
            if s.label in index and s.kind != "tag":
                out[i, index[s.label]] += 1
    return out


def split_images(
    items: Sequence[Item],
    fractions: str | Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    stratify: bool = False,
) -> dict[str, str]:
    """Assign each source image to ``"train"``, ``"val"`` or ``"test"``.

    Parameters
    ----------
    items : sequence of Item
        The source images (unique names).
    fractions : str or sequence
        (train, val, test) shares; see :func:`parse_fractions`.
    seed : int
        The same seed and items give the same split (item order does not matter).
    stratify : bool
        Balance the label counts across splits (see the module docstring).

    Returns
    -------
    dict
        Item name -> split name, in item order.
    """
    names = [it.name for it in items]
    if len(set(names)) != len(names):
        dup = next(n for n, c in Counter(names).items() if c > 1)
        raise DatasetError(f"two source images are named {dup!r}; splits are made by image name")
    fr = parse_fractions(fractions)
    n = len(items)
    capacity = list(allocate(n, fr))
    # a seeded order that does not depend on the order of the items
    rng = np.random.default_rng(seed)
    order = [names.index(nm) for nm in sorted(names)]
    order = [order[k] for k in rng.permutation(n)]
    assigned: dict[int, int] = {}
    if stratify and n:
        labels = sorted({s.label for it in items for s in it.shapes if s.kind != "tag"})
        counts = _label_counts(items, labels)
        totals = counts.sum(axis=0)
        wanted = np.outer(fr, totals).astype(np.float64)  # (3, L)
        have = np.zeros_like(wanted)
        rank = {i: r for r, i in enumerate(order)}

        def rarest(i: int) -> float:
            present = counts[i] > 0
            return float(totals[present].min()) if present.any() else float("inf")

        for i in sorted(order, key=lambda i: (rarest(i), -int(counts[i].sum()), rank[i])):
            open_ = [s for s in range(3) if capacity[s] > 0]
            present = np.flatnonzero(counts[i] > 0)
            if present.size:
                lab = present[np.argmin(totals[present])]
                need = {s: (wanted[s, lab] - have[s, lab]) / max(wanted[s, lab], 1e-9) for s in open_}
                best = max(open_, key=lambda s: (round(need[s], 12), capacity[s] / max(n * fr[s], 1e-9), -s))
            else:
                best = max(open_, key=lambda s: (capacity[s] / max(n * fr[s], 1e-9), -s))
            assigned[i] = best
            capacity[best] -= 1
            have[best] += counts[i]
    else:
        pos = 0
        for s in range(3):
            for i in order[pos : pos + capacity[s]]:
                assigned[i] = s
            pos += capacity[s]
    return {names[i]: SPLITS[assigned[i]] for i in range(n)}


_TRAILING_NUMBER = re.compile(r"(.*?)(\d+)")


def series_key(name: str) -> str | None:
    """The series an image belongs to: its path without the suffix and the trailing number
    (``"in-situ-Frame-"`` for ``"in-situ-Frame-124.jpg"``); None when the stem ends in no number.

    >>> series_key("run3/in-situ-Frame-124.jpg"), series_key("overview.png")
    ('run3/in-situ-Frame-', None)
    """
    path = PurePosixPath(name.replace("\\", "/"))
    match = _TRAILING_NUMBER.fullmatch(path.stem)
    if match is None:
        return None
    return str(path.parent / match.group(1)) if str(path.parent) != "." else match.group(1)


def _series_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Group name -> member names: a series of >= 2 frames is one group, any other image its own."""
    by_key: dict[str | None, list[str]] = {}
    for nm in names:
        by_key.setdefault(series_key(nm), []).append(nm)
    groups: dict[str, list[str]] = {}
    for key, members in by_key.items():
        if key is not None and len(members) > 1:
            groups[key] = natural_sorted(members)
        else:
            groups.update({nm: [nm] for nm in members})
    return groups


def split_sources(
    items: Sequence[Item],
    fractions: str | Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    stratify: bool = False,
    by_series: bool = True,
) -> tuple[dict[str, str], list[Note]]:
    """Assign source images to splits, keeping the frames of a series together (see the module
    docstring); what ``prepare`` uses.

    Parameters
    ----------
    items, fractions, seed, stratify
        As for :func:`split_images`. With series kept together, ``stratify`` is not applied
        (a note says so).
    by_series : bool
        Keep each series in one split when possible; False splits by image (and notes the
        series that are split up).

    Returns
    -------
    (dict, list of Note)
        Item name -> split name, in item order; notes on how the split was made.

    Examples
    --------
    >>> from defectlab.model import Item
    >>> frames = [Item(f"run{r}-Frame-{k}.jpg", (64, 64)) for r in range(5) for k in (2, 10, 124)]
    >>> split, notes = split_sources(frames, (0.6, 0.2, 0.2), seed=0)
    >>> all(len({split[f"run{r}-Frame-{k}.jpg"] for k in (2, 10, 124)}) == 1 for r in range(5))
    True
    >>> sorted(Counter(split.values()).items()), notes[0].code
    ([('test', 3), ('train', 9), ('val', 3)], 'split-by-series')
    """
    names = [it.name for it in items]
    groups = _series_groups(names)
    series = {k: v for k, v in groups.items() if len(v) > 1}
    if not series:
        return split_images(items, fractions, seed=seed, stratify=stratify), []
    fr = parse_fractions(fractions)
    n = len(names)
    target = allocate(n, fr)
    described = ", ".join(f"{k}<n> ({len(v)})" for k, v in list(series.items())[:3]) + (" ..." if len(series) > 3 else "")
    if by_series:
        assigned = _assign_groups(groups, target, seed)
        ok = all((c > 0 if t > 0 else True) and abs(c - t) <= max(1, t // 4) for c, t in zip(assigned[1], target))
        if ok:
            split_of = {nm: assigned[0][nm] for nm in names}
            notes = [Note("split-by-series", f"{len(series)} series of frames ({described}) each kept in one split "
                          f"(frames of one series look alike); {len(groups)} groups: "
                          + ", ".join(f"{s} {c}" for s, c in zip(SPLITS, assigned[1])) + " images")]
            if stratify:
                notes.append(Note("stratify-not-applied", "stratify is not applied when series are kept together"))
            return split_of, notes
    split_of = split_images(items, fractions, seed=seed, stratify=stratify)
    broken = [k for k, members in series.items() if len({split_of[m] for m in members}) > 1]
    if not broken:
        return split_of, []
    why = ("series were not kept together (by_series=False)" if not by_series else
           f"{len(groups)} group(s) of images cannot be split near {', '.join(f'{s} {c}' for s, c in zip(SPLITS, target))}")
    return split_of, [Note("series-split", f"frames of {len(broken)} series ({described}) are split across "
                           f"train/val/test ({why}): neighbouring frames look alike, so the validation and test "
                           "figures will flatter; hold out whole series (more series, or another export)")]


def _assign_groups(groups: dict[str, list[str]], target: Sequence[int], seed: int) -> tuple[dict[str, str], list[int]]:
    """Groups largest first (ties: a seeded order independent of the input order), each to the
    split that lacks most images of its target (ties: the earlier split)."""
    keys = natural_sorted(groups)
    rng = np.random.default_rng(seed)
    rank = {k: r for r, k in enumerate(keys[i] for i in rng.permutation(len(keys)))}
    have = [0, 0, 0]
    split_of: dict[str, str] = {}
    for key in sorted(keys, key=lambda k: (-len(groups[k]), rank[k])):
        open_ = [s for s in range(3) if target[s] > 0]
        best = max(open_, key=lambda s: (target[s] - have[s], -s))
        have[best] += len(groups[key])
        for nm in groups[key]:
            split_of[nm] = SPLITS[best]
    return split_of, have


@dataclass(frozen=True)
class SpatialSplit:
    """A single image divided into regions, one per split (see the module docstring).

    Attributes
    ----------
    size_hw : (int, int)
        The image's size.
    grid_hw : (int, int)
        Rows and columns of cells.
    cells : tuple of (split, (x1, y1, x2, y2))
        Every cell, row by row, with its split.
    regions : dict
        Split -> rectangles (x1, y1, x2, y2) to tile, margins taken off; a split with no
        cells has an empty list.
    margin_px : int
        Width of the band left out between regions of different splits.
    """

    size_hw: tuple[int, int]
    grid_hw: tuple[int, int]
    cells: tuple[tuple[str, tuple[int, int, int, int]], ...]
    regions: Mapping[str, list[tuple[int, int, int, int]]]
    margin_px: int = 0

    def counts(self) -> dict[str, int]:
        """Cells per split."""
        c = Counter(s for s, _ in self.cells)
        return {s: c.get(s, 0) for s in SPLITS}

    def describe(self) -> str:
        """One line for the summary."""
        gh, gw = self.grid_hw
        parts = ", ".join(f"{s} {n}" for s, n in self.counts().items())
        return (f"one source image: split spatially into a {gh}x{gw} grid of cells ({parts}); "
                f"each split tiled on its own, no tile straddles two splits"
                + (f", {self.margin_px} px margin between splits" if self.margin_px else ""))

    def to_json(self) -> dict:
        return {"grid_hw": list(self.grid_hw), "margin_px": self.margin_px,
                "cells": [{"split": s, "xyxy": list(b)} for s, b in self.cells],
                "regions": {s: [list(r) for r in rs] for s, rs in self.regions.items()}}


def _edges(length: int, n: int) -> list[int]:
    return [round(k * length / n) for k in range(n + 1)]


def spatial_split(
    size_hw: Sequence[int],
    tile_hw: int | Sequence[int],
    fractions: str | Sequence[float] = (0.8, 0.1, 0.1),
    *,
    margin_px: int = 0,
) -> SpatialSplit:
    """Divide one image into train / val / test regions that tiles of ``tile_hw`` fit in.

    Parameters
    ----------
    size_hw : (int, int)
    tile_hw : int or (int, int)
    fractions : str or sequence
        (train, val, test) shares of the cells.
    margin_px : int
        Gap left between regions of different splits.

    Raises
    ------
    DatasetError
        The image holds fewer than two cells: no validation region is possible.
    """
    h, w = (int(v) for v in size_hw)
    th, tw = (int(tile_hw), int(tile_hw)) if isinstance(tile_hw, (int, np.integer)) else (int(v) for v in tile_hw)
    margin = int(margin_px)
    if margin < 0:
        raise ValueError(f"expected margin_px >= 0, got {margin_px!r}")
    fr = parse_fractions(fractions)
    gh, gw = max(1, h // (th + margin)), max(1, w // (tw + margin))
    if gh * gw < 2:
        raise DatasetError(
            f"a single {w}x{h} (WxH) image holds only one {tw}x{th} cell"
            + (f" (+{margin} px margin)" if margin else "")
            + ": no region left for validation; use a smaller --tile, --margin, or --split 1,0,0"
        )
    counts = allocate(gh * gw, fr)
    owner = np.repeat(np.arange(3), counts).reshape(gh, gw)  # row-major: train, then val, then test
    ys, xs = _edges(h, gh), _edges(w, gw)
    cells = tuple((SPLITS[owner[r, c]], (xs[c], ys[r], xs[c + 1], ys[r + 1]))
                  for r in range(gh) for c in range(gw))
    regions: dict[str, list[tuple[int, int, int, int]]] = {s: [] for s in SPLITS}
    for k, split in enumerate(SPLITS):
        # contiguous runs of a row, then runs with the same columns merged down
        runs: list[list[int]] = []  # [c0, c1, r0, r1] in cell units
        for r in range(gh):
            c = 0
            while c < gw:
                if owner[r, c] != k:
                    c += 1
                    continue
                c1 = c
                while c1 < gw and owner[r, c1] == k:
                    c1 += 1
                prev = next((run for run in runs if run[0] == c and run[1] == c1 and run[3] == r), None)
                if prev is not None:
                    prev[3] = r + 1
                else:
                    runs.append([c, c1, r, r + 1])
                c = c1
        for c0, c1, r0, r1 in runs:
            def other(rr: range, cc: range) -> bool:
                return any(0 <= a < gh and 0 <= b < gw and owner[a, b] != k for a in rr for b in cc)

            x1, y1, x2, y2 = xs[c0], ys[r0], xs[c1], ys[r1]
            # a gap of `margin` between different splits: the upper/left side gives half, the other the rest
            if other(range(r0, r1), range(c0 - 1, c0)):
                x1 += margin - margin // 2
            if other(range(r0, r1), range(c1, c1 + 1)):
                x2 -= margin // 2
            if other(range(r0 - 1, r0), range(c0, c1)):
                y1 += margin - margin // 2
            if other(range(r1, r1 + 1), range(c0, c1)):
                y2 -= margin // 2
            regions[split].append((x1, y1, x2, y2))
    return SpatialSplit((h, w), (gh, gw), cells, regions, margin)
