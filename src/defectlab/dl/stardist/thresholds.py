"""Object matching of stars against true instances, and tuning of the two thresholds.

:func:`match_stars` counts predicted stars and true instances that match one-to-one at
IoU >= 0.5 (unique by construction at 0.5), overlapping instances on either side included:
IoUs come from one sparse product of the predicted stars' and the true instances' pixel
incidences, never from flattened label images.

:func:`optimize_thresholds` is StarDist's ``optimize_thresholds`` in spirit: after
training, the validation images' candidates are computed once; for every NMS threshold of
:data:`NMS_GRID` and probability threshold of :data:`PROB_GRID` the greedy NMS is re-run on
the same pairwise overlaps and the kept stars matched against the truth; the pair with the
best object F1 (pooled over the images) wins (ties: the one nearest to StarDist's defaults
0.5 / 0.4). The result is ``thresholds.json`` in the model folder.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...raster import Crop
from ...raster.nms import DEFAULT_NMS_THRESH, greedy_keep, star_overlaps
from ...raster.stars import star_pixels
from .predict import DEFAULT_PROB_THRESH, Candidates

__all__ = ["match_stars", "optimize_thresholds", "PROB_GRID", "NMS_GRID", "f1_score"]

#: Probability thresholds tried.
PROB_GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))  # 0.1 … 0.9
#: NMS thresholds tried.
NMS_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)


def _truth_incidence(crops: Sequence[Crop], size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(owner, cell, n)``: instance index and pixel index ``row * W + col`` of every true pixel."""
    w = size_hw[1]
    owner, cells = [], []
    for i, c in enumerate(crops):
        rr, cc = np.nonzero(c.bitmap)
        owner.append(np.full(len(rr), i, np.int64))
        cells.append((c.y0 + rr) * w + c.x0 + cc)
    if not owner:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    return np.concatenate(owner), np.concatenate(cells), len(crops)


def match_stars(
    points_xy: np.ndarray,
    distances: np.ndarray,
    truth: Sequence[Crop] | tuple[np.ndarray, np.ndarray, int],
    size_hw: tuple[int, int],
    *,
    iou: float = 0.5,
) -> dict[str, int]:
    """``{"tp", "fp", "fn"}`` of stars against true instance masks at IoU >= ``iou`` (>= 0.5).

    ``truth``: the true instances' full masks, or their precomputed ``(owner, cell, n)``
    incidence (instance index and pixel index ``row * W + col`` of every pixel, and the count).
    """
    from scipy import sparse

    if iou < 0.5:
        raise ValueError(f"expected iou >= 0.5 (one-to-one matches without an assignment), got {iou!r}")
    t_owner, t_cell, n_t = truth if isinstance(truth, tuple) else _truth_incidence(truth, size_hw)
    p_owner, p_cell = star_pixels(points_xy, distances, size_hw)
    n_p = len(points_xy)
    if n_p == 0 or n_t == 0 or not len(p_cell) or not len(t_cell):
        return {"tp": 0, "fp": n_p, "fn": n_t}
    cells = int(size_hw[0]) * int(size_hw[1])
    mp = sparse.csr_matrix((np.ones(len(p_cell), np.int32), (p_owner, p_cell)), shape=(n_p, cells))
    mt = sparse.csr_matrix((np.ones(len(t_cell), np.int32), (t_owner, t_cell)), shape=(n_t, cells))
    inter = (mp @ mt.T).tocoo()
    ap, at = np.bincount(p_owner, minlength=n_p), np.bincount(t_owner, minlength=n_t)
    ious = inter.data / (ap[inter.row] + at[inter.col] - inter.data)
    tp = int(np.count_nonzero(ious >= iou))
    return {"tp": tp, "fp": n_p - tp, "fn": n_t - tp}


def f1_score(tp: int, fp: int, fn: int) -> float:
    """``2 tp / (2 tp + fp + fn)``; 1.0 when there is nothing to find and nothing found."""
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def optimize_thresholds(
    candidates: Sequence[Candidates],
    truths: Sequence[Sequence[Crop]],
    *,
    prob_grid: Sequence[float] = PROB_GRID,
    nms_grid: Sequence[float] = NMS_GRID,
) -> dict[str, object]:
    """The probability and NMS thresholds with the best pooled object F1 (module docstring).

    Returns
    -------
    dict
        ``prob``, ``nms``, ``f1`` (at the chosen pair), ``f1_default`` (at 0.5 / 0.4),
        ``n_images``, ``n_true``.
    """
    if len(candidates) != len(truths):
        raise ValueError(f"expected one truth per image, got {len(candidates)} and {len(truths)}")
    prepared = []
    for cand, truth in zip(candidates, truths):
        ov = star_overlaps(cand.points_xy, cand.dist, cand.prob, cand.size_hw)
        prepared.append((cand, ov, _truth_incidence(truth, cand.size_hw), len(truth)))
    n_true = sum(n for *_, n in prepared)

    def score(p: float, t: float) -> float:
        tp = fp = fn = 0
        for cand, ov, inc, n in prepared:
            kept = greedy_keep(ov, t, candidates=cand.prob > p)
            m = match_stars(cand.points_xy[kept], cand.dist[kept], inc, cand.size_hw)
            tp, fp, fn = tp + m["tp"], fp + m["fp"], fn + m["fn"]
        return f1_score(tp, fp, fn)

    best = None
    for t in nms_grid:
        for p in prob_grid:
            f = score(float(p), float(t))
            key = (round(f, 6), -abs(p - DEFAULT_PROB_THRESH) - abs(t - DEFAULT_NMS_THRESH))
            if best is None or key > best[0]:
                best = (key, float(p), float(t), f)
    assert best is not None
    return {"prob": best[1], "nms": best[2], "f1": best[3],
            "f1_default": score(DEFAULT_PROB_THRESH, DEFAULT_NMS_THRESH),
            "n_images": len(prepared), "n_true": n_true}
