"""Scoring tracks against true tracks: MOTA, IDF1, HOTA (TrackEval), ID switches, kinetics errors.

The tracking metrics are TrackEval's own (``trackeval.metrics.CLEAR``, ``Identity``, ``HOTA``:
the implementation behind the MOTChallenge and KITTI leaderboards), fed one sequence:

* per frame, the true and predicted objects and a similarity between each pair: the IoU of
  their *equivalent discs* (a disc of the object's area at its centroid), computed exactly
  from the two radii and the distance between centers. Defects are compact blobs; the disc
  IoU needs no masks, so predictions read as centroids and areas score the same way;
* CLEAR (MOTA, ID switches) and Identity (IDF1) match at a similarity ≥ ``iou`` (0.5 by
  default, TrackEval's and the MOT challenge's); HOTA averages over TrackEval's α from 0.05
  to 0.95.

Kinetics errors (matched tracks: the predicted track holding most of a true track's frames):

* ``growth_rate_error``: Σ |ĝ − g| / Σ |g| over true tracks of at least ``min_frames``
  frames, ``g`` the true rate of change of the equivalent diameter and ``ĝ`` the matched
  track's fitted rate (the weighted relative error: near-zero true rates do not blow it up);
* ``lifetime_error``: the two-sample Kolmogorov–Smirnov distance between the distributions
  of true and predicted track lifetimes (frames), and the relative error of their means.

Examples
--------
>>> disc_iou(np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]))
array([[1.]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["TrackScores", "disc_iou", "growth_rates", "score_tracks"]


def disc_iou(x1: np.ndarray, y1: np.ndarray, r1: np.ndarray, x2: np.ndarray, y2: np.ndarray,
             r2: np.ndarray) -> np.ndarray:
    """(n1, n2) float64 IoU of discs ``(x1, y1, r1)`` (n1,) with discs ``(x2, y2, r2)`` (n2,), exact."""
    d = np.hypot(x1[:, None] - x2[None, :], y1[:, None] - y2[None, :])
    a, b = np.broadcast_to(r1[:, None], d.shape), np.broadcast_to(r2[None, :], d.shape)
    inter = np.zeros(d.shape)
    inside = d <= np.abs(a - b)
    inter[inside] = math.pi * np.minimum(a, b)[inside] ** 2
    part = (~inside) & (d < a + b)
    if part.any():
        dd, aa, bb = d[part], a[part], b[part]
        c1 = np.clip((dd * dd + aa * aa - bb * bb) / (2 * dd * aa), -1, 1)
        c2 = np.clip((dd * dd + bb * bb - aa * aa) / (2 * dd * bb), -1, 1)
        k = (-dd + aa + bb) * (dd + aa - bb) * (dd - aa + bb) * (dd + aa + bb)
        inter[part] = aa * aa * np.arccos(c1) + bb * bb * np.arccos(c2) - 0.5 * np.sqrt(np.maximum(k, 0.0))
    union = math.pi * (a * a + b * b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def growth_rates(frame: np.ndarray, track_id: np.ndarray, area_px: np.ndarray) -> dict[int, float]:
    """Track id -> least-squares slope of the equivalent diameter against frame (px/frame); tracks
    seen on fewer than 3 frames are left out."""
    d = 2.0 * np.sqrt(np.asarray(area_px, dtype=np.float64) / math.pi)
    out = {}
    for tid in np.unique(track_id):
        sel = track_id == tid
        if sel.sum() >= 3 and np.ptp(frame[sel]) > 0:
            out[int(tid)] = float(np.polyfit(frame[sel], d[sel], 1)[0])
    return out


@dataclass
class TrackScores:
    """Scores of predicted tracks against true tracks.

    Attributes
    ----------
    overall : dict
        ``MOTA``, ``IDF1``, ``HOTA``, ``DetA``, ``AssA``, ``MOTP``, ``IDSW``, ``Frag``, ``MT``,
        ``ML``, ``CLR_TP``, ``CLR_FN``, ``CLR_FP``, ``IDTP``, ``IDFN``, ``IDFP``,
        ``n_true_tracks``, ``n_pred_tracks``, ``growth_rate_error``, ``lifetime_ks``,
        ``lifetime_mean_error``, ``merges_true``, ``merges_found``.
    matches : list of dict
        Per true track: its matched predicted track, frames shared, true and fitted growth rates.
    """

    overall: dict[str, Any]
    matches: list[dict[str, Any]] = field(default_factory=list)


def _sequence(true_frame, true_id, true_xyr, pred_frame, pred_id, pred_xyr, n_frames) -> dict[str, Any]:
    """TrackEval's per-sequence data dict (ids renumbered 0..n-1)."""
    tu, ti = np.unique(true_id, return_inverse=True)
    pu, pi = np.unique(pred_id, return_inverse=True)
    data: dict[str, Any] = {"num_timesteps": n_frames, "num_gt_ids": len(tu), "num_tracker_ids": len(pu),
                            "num_gt_dets": int(len(true_id)), "num_tracker_dets": int(len(pred_id)),
                            "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    t_order, p_order = np.argsort(true_frame, kind="stable"), np.argsort(pred_frame, kind="stable")
    t_starts = np.searchsorted(true_frame[t_order], np.arange(n_frames + 1))
    p_starts = np.searchsorted(pred_frame[p_order], np.arange(n_frames + 1))
    for f in range(n_frames):
        ts = t_order[t_starts[f]:t_starts[f + 1]]
        ps = p_order[p_starts[f]:p_starts[f + 1]]
        data["gt_ids"].append(ti[ts].astype(int))
        data["tracker_ids"].append(pi[ps].astype(int))
        a, b = true_xyr[ts], pred_xyr[ps]
        data["similarity_scores"].append(disc_iou(a[:, 0], a[:, 1], a[:, 2], b[:, 0], b[:, 1], b[:, 2]))
    return data


def score_tracks(
    true_frame: np.ndarray, true_id: np.ndarray, true_xyr: np.ndarray,
    pred_frame: np.ndarray, pred_id: np.ndarray, pred_xyr: np.ndarray,
    n_frames: int,
    *,
    iou: float = 0.5,
    true_growth: Mapping[int, float] | None = None,
    pred_growth: Mapping[int, float] | None = None,
    min_frames: int = 10,
    true_merges: int | None = None,
    pred_merges: int | None = None,
) -> TrackScores:
    """MOTA, IDF1, HOTA and kinetics errors of predicted tracks against true tracks.

    Parameters
    ----------
    true_frame, true_id : (M,) int
        Frame and track id of each true object.
    true_xyr : (M, 3) float
        Centroid x, y and equivalent radius, px.
    pred_frame, pred_id, pred_xyr
        The same for the predicted objects (N rows).
    n_frames : int
        Frames of the video.
    iou : float
        Disc IoU at which a prediction matches a true object (CLEAR, Identity).
    true_growth, pred_growth : mapping, optional
        Track id -> growth rate (any one unit for both), for ``growth_rate_error``.
    min_frames : int
        True tracks shorter than this are left out of the growth-rate error.
    true_merges, pred_merges : int, optional
        Coalescence counts to report side by side.

    Raises
    ------
    ImportError
        trackeval is not installed (``pip install 'defectlab[track]'``).
    """
    try:
        from trackeval.metrics import CLEAR, HOTA, Identity
    except ImportError as err:  # pragma: no cover - the extra is a test dependency
        raise ImportError("track metrics need trackeval: pip install 'defectlab[track]'") from err

    data = _sequence(np.asarray(true_frame), np.asarray(true_id), np.asarray(true_xyr, dtype=np.float64),
                     np.asarray(pred_frame), np.asarray(pred_id), np.asarray(pred_xyr, dtype=np.float64), n_frames)
    cfg = {"THRESHOLD": float(iou), "PRINT_CONFIG": False}
    clear = CLEAR(cfg).eval_sequence(data)
    ident = Identity(cfg).eval_sequence(data)
    hota = HOTA({"PRINT_CONFIG": False}).eval_sequence(data)
    overall: dict[str, Any] = {
        "MOTA": float(clear["MOTA"]), "IDF1": float(ident["IDF1"]), "HOTA": float(np.mean(hota["HOTA"])),
        "DetA": float(np.mean(hota["DetA"])), "AssA": float(np.mean(hota["AssA"])), "MOTP": float(clear["MOTP"]),
        "IDSW": int(clear["IDSW"]), "Frag": int(clear["Frag"]), "MT": int(clear["MT"]), "ML": int(clear["ML"]),
        "CLR_TP": int(clear["CLR_TP"]), "CLR_FN": int(clear["CLR_FN"]), "CLR_FP": int(clear["CLR_FP"]),
        "IDTP": int(ident["IDTP"]), "IDFN": int(ident["IDFN"]), "IDFP": int(ident["IDFP"]),
        "n_true_tracks": int(data["num_gt_ids"]), "n_pred_tracks": int(data["num_tracker_ids"]),
    }
    # matches: the predicted track holding most of each true track's matched frames
    sim_pairs: dict[tuple[int, int], int] = {}
    tu, pu = np.unique(true_id), np.unique(pred_id)
    for t in range(n_frames):
        s = data["similarity_scores"][t]
        if s.size == 0:
            continue
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-s)
        for r_, c_ in zip(rows, cols):
            if s[r_, c_] >= iou:
                key = (int(tu[data["gt_ids"][t][r_]]), int(pu[data["tracker_ids"][t][c_]]))
                sim_pairs[key] = sim_pairs.get(key, 0) + 1
    best: dict[int, tuple[int, int]] = {}
    for (tid, pid), n in sim_pairs.items():
        if n > best.get(tid, (None, 0))[1]:
            best[tid] = (pid, n)
    lengths_true = {int(k): int(v) for k, v in zip(*np.unique(true_id, return_counts=True))}
    matches = []
    num = den = 0.0
    for tid in tu.tolist():
        pid, n = best.get(tid, (None, 0))
        row: dict[str, Any] = {"true_track": tid, "pred_track": pid, "frames_true": lengths_true[tid],
                               "frames_matched": n}
        if true_growth is not None and pred_growth is not None:
            g = true_growth.get(tid, math.nan)
            gh = pred_growth.get(pid, math.nan) if pid is not None else math.nan
            row.update(growth_true=g, growth_pred=gh)
            if lengths_true[tid] >= min_frames and math.isfinite(g):
                num += abs(gh - g) if math.isfinite(gh) else abs(g)
                den += abs(g)
        matches.append(row)
    overall["growth_rate_error"] = num / den if den > 0 else math.nan
    from scipy.stats import ks_2samp

    lt = np.unique(true_id, return_counts=True)[1]
    lp = np.unique(pred_id, return_counts=True)[1]
    if lt.size and lp.size:
        overall["lifetime_ks"] = float(ks_2samp(lt, lp).statistic)
        overall["lifetime_mean_error"] = float((lp.mean() - lt.mean()) / lt.mean())
    else:
        overall["lifetime_ks"] = overall["lifetime_mean_error"] = math.nan
    if true_merges is not None:
        overall["merges_true"] = int(true_merges)
    if pred_merges is not None:
        overall["merges_found"] = int(pred_merges)
    return TrackScores(overall, matches)
