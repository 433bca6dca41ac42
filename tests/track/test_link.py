"""Linking: exact tracks on a noise-free video, gap closing, a merge and a split, per class, drift."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video
from defectlab.tracking.detections import Detections, shape_centroid
from defectlab.tracking.link import LinkOptions, estimate_drift, link


def _detections(video, drop=None):
    rows = sorted((f, t.label, *shape_centroid(s), t.track_id) for t in video.tracks for f, s in t.shapes.items())
    if drop is not None:
        rows = [r for r in rows if (r[0], r[5]) not in drop]
    a = np.array([r[2:5] for r in rows])
    return Detections(np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=object), a[:, 0], a[:, 1],
                      a[:, 2], video_frames(video), video.size_hw, true_id=np.array([r[5] for r in rows]))


def video_frames(video):
    return 1 + max(t.last for t in video.tracks)


def _partition(ids_a, ids_b):
    """True when the two labelings put the same rows together (a bijection between ids)."""
    pairs = set(zip(ids_a.tolist(), ids_b.tolist()))
    return len(pairs) == len(set(ids_a.tolist())) == len(set(ids_b.tolist()))


@pytest.fixture(scope="module")
def video():
    cfg = SyntheticVideoConfig(size_hw=(256, 256), n_frames=60, n_defects=25, n_merges=1, n_splits=1,
                               approach_frames=8, noise=0.0, dose=float("inf"), blur_px=0.0)
    return make_synthetic_video(None, cfg, seed=4, frames=False)


def test_noise_free_video_tracks_recovered_exactly(video):
    det = _detections(video)
    linked = link(det, LinkOptions(max_displacement="4px"))
    assert _partition(det.true_id, linked.track_id)
    truth = {t.track_id: t for t in video.tracks}
    mapping = dict(zip(linked.track_id.tolist(), det.true_id.tolist()))
    # fates as the generator made them (merged, split, left, vanished, present)
    assert {mapping[k]: v for k, v in linked.fate.items()} == {k: t.fate for k, t in truth.items()}


def test_a_merge_and_a_split_found(video):
    det = _detections(video)
    linked = link(det, LinkOptions(max_displacement="4px"))
    mapping = dict(zip(linked.track_id.tolist(), det.true_id.tolist()))
    found_parents = {mapping[c]: sorted(mapping[p] for p in ps) for c, ps in linked.parents.items()}
    true_parents = {t.track_id: sorted(t.parents) for t in video.tracks if t.parents}
    assert found_parents == true_parents
    kinds = sorted(len(v) for v in true_parents.values())
    assert kinds == [1, 1, 2]  # two halves of a split (one parent each) and one merge (two parents)


def test_gap_closing_over_two_missing_frames():
    f = np.array([0, 1, 2, 5, 6, 7] + [0, 1, 2, 3, 4, 5, 6, 7])  # object A missed on frames 3 and 4
    x = np.array([20.0, 20.5, 21.0, 22.5, 23.0, 23.5] + [60.0] * 8)
    det = Detections(f, np.array(["cavity"] * 14, dtype=object), x, np.full(14, 30.0), np.full(14, 40.0), 8, (64, 96))
    linked = link(det, LinkOptions(max_displacement="3px", gap_frames=2))
    assert len(set(linked.track_id[:6].tolist())) == 1 and linked.n_tracks == 2
    short = link(det, LinkOptions(max_displacement="3px", gap_frames=1))  # a 2-frame gap is too long here
    assert len(set(short.track_id[:6].tolist())) == 2
    filled = linked.filled()
    rows = np.flatnonzero(filled.interpolated)
    assert sorted(filled.detections.frame[rows].tolist()) == [3, 4]
    assert filled.detections.x[rows].tolist() == pytest.approx([21.5, 22.0])  # linear between 21.0 and 22.5


def test_per_class_linking_keeps_classes_apart():
    # a cavity vanishes where a loop appears on the next frame: one track only with --all-classes
    f = np.array([0, 1, 2, 3, 4, 5])
    lab = np.array(["cavity"] * 3 + ["loop"] * 3, dtype=object)
    det = Detections(f, lab, np.linspace(20, 22.5, 6), np.full(6, 30.0), np.full(6, 50.0), 6, (64, 64))
    assert link(det, LinkOptions()).n_tracks == 2
    assert link(det, LinkOptions(per_class=False)).n_tracks == 1


def test_drift_estimated_from_the_detections(video):
    det = _detections(video)
    drift = estimate_drift(det, search_px=6.0)
    steps = np.diff(drift, axis=0)
    # the generator moves the field by drift_px a frame; objects appear to move the other way. The median over
    # ~25 neighbours of a jitter of 0.2 px is within 0.3 px of it.
    assert np.abs(steps + np.array(SyntheticVideoConfig().drift_px)).max() < 0.3  # measured: 0.22 px
    # the cumulative drift after 59 frames (9 px along x): within a pixel (measured: 0.45 px), far below --max-displacement
    assert np.abs(drift[-1] + 59 * np.array(SyntheticVideoConfig().drift_px)).max() < 1.0


def test_bad_options():
    with pytest.raises(ValueError, match="gap_frames"):
        LinkOptions(gap_frames=-1)
    with pytest.raises(ValueError, match="drift"):
        LinkOptions(drift="sometimes")
    det = Detections(np.array([0]), np.array(["c"], dtype=object), np.array([1.0]), np.array([1.0]), np.array([3.0]),
                     1, (8, 8))
    with pytest.raises(ValueError, match="needs the pixel size"):
        link(det, LinkOptions(max_displacement="3nm"))
