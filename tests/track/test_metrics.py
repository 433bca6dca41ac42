"""Track metrics against values computed by hand on a tiny case, and against motmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectlab.tracking.metrics import disc_iou, score_tracks


def _tiny():
    # two true objects far apart on 4 frames; the tracker swaps their ids from frame 2 on
    frame = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    true_id = np.array([1, 2, 1, 2, 1, 2, 1, 2])
    pred_id = np.array([7, 9, 7, 9, 9, 7, 9, 7])
    xyr = np.array([[10.0, 10.0, 3.0], [50.0, 50.0, 3.0]] * 4)
    return frame, true_id, pred_id, xyr


def test_hand_computed_tiny_case():
    frame, true_id, pred_id, xyr = _tiny()
    s = score_tracks(frame, true_id, xyr, frame, pred_id, xyr, 4).overall
    # every object found (TP 8), two id switches at frame 2: MOTA = 1 - 2/8
    assert (s["CLR_TP"], s["CLR_FN"], s["CLR_FP"], s["IDSW"]) == (8, 0, 0, 2)
    assert s["MOTA"] == pytest.approx(0.75)
    # best one-to-one id mapping keeps 2 frames of each of the 2 tracks: IDTP 4, IDFN 4, IDFP 4 -> IDF1 0.5
    assert (s["IDTP"], s["IDFN"], s["IDFP"]) == (4, 4, 4)
    assert s["IDF1"] == pytest.approx(0.5)
    # HOTA: DetA 1 at every alpha (IoU 1); each TP's association score TPA/(TPA+FNA+FPA) = 2/(2+2+2)
    assert s["DetA"] == pytest.approx(1.0) and s["AssA"] == pytest.approx(1 / 3)
    assert s["HOTA"] == pytest.approx(math.sqrt(1 / 3))


def test_missed_and_false_objects():
    frame, true_id, _, xyr = _tiny()
    keep = np.arange(8) != 3  # the tracker misses true object 2 on frame 1 ...
    pf = np.append(frame[keep], 3)
    pid = np.append(true_id[keep] + 100, 999)  # ... and reports a spurious object on frame 3
    pxyr = np.vstack([xyr[keep], [[30.0, 30.0, 3.0]]])
    s = score_tracks(frame, true_id, xyr, pf, pid, pxyr, 4).overall
    assert (s["CLR_TP"], s["CLR_FN"], s["CLR_FP"], s["IDSW"]) == (7, 1, 1, 0)
    assert s["MOTA"] == pytest.approx(1 - 2 / 8)
    assert s["IDF1"] == pytest.approx(2 * 7 / (2 * 7 + 1 + 1))


def test_motmetrics_agrees():
    """A second implementation (py-motmetrics) on a random case: the same MOTA, IDF1 and switches."""
    import motmetrics as mm

    rng = np.random.default_rng(3)
    T, n = 30, 6
    pos = rng.uniform(10, 90, (n, 2))
    rows_t, rows_p = [], []
    for f in range(T):
        pos += rng.normal(0, 1.0, pos.shape)
        for i in range(n):
            rows_t.append((f, i, *pos[i], 3.0))
            if rng.random() > 0.1:
                pid = i if f < 15 or i > 1 else 1 - i  # a swap of two ids halfway
                rows_p.append((f, pid, *(pos[i] + rng.normal(0, 0.5, 2)), 3.0))
    t, p = np.array(rows_t), np.array(rows_p)
    s = score_tracks(t[:, 0].astype(int), t[:, 1].astype(int), t[:, 2:], p[:, 0].astype(int), p[:, 1].astype(int),
                     p[:, 2:], T).overall
    acc = mm.MOTAccumulator(auto_id=False)
    for f in range(T):
        a, b = t[t[:, 0] == f], p[p[:, 0] == f]
        iou = disc_iou(a[:, 2], a[:, 3], a[:, 4], b[:, 2], b[:, 3], b[:, 4])
        dist = np.where(iou >= 0.5, 1 - iou, np.nan)  # motmetrics: distance = 1 - IoU, nan = cannot match
        acc.update(a[:, 1].astype(int).tolist(), b[:, 1].astype(int).tolist(), dist, frameid=f)
    m = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="x")
    assert s["MOTA"] == pytest.approx(float(m["mota"].iloc[0]), abs=1e-9)
    assert s["IDF1"] == pytest.approx(float(m["idf1"].iloc[0]), abs=1e-9)
    assert s["IDSW"] == int(m["num_switches"].iloc[0])


def test_disc_iou_analytic():
    # two unit discs with centers 1 apart: intersection 2·acos(1/2) − (1/2)·sqrt(3)
    inter = 2 * math.acos(0.5) - 0.5 * math.sqrt(3)
    got = disc_iou(np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([1.0]), np.array([0.0]), np.array([1.0]))
    assert got[0, 0] == pytest.approx(inter / (2 * math.pi - inter))
    inside = disc_iou(np.array([0.0]), np.array([0.0]), np.array([2.0]), np.array([0.5]), np.array([0.0]), np.array([1.0]))
    assert inside[0, 0] == pytest.approx(1 / 4)
