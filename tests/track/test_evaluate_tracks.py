"""``defectlab evaluate`` on two CVAT video exports with tracks: scores against swaps made by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from defectlab.preparation.synthetic_video import VIDEO_LABELS, SyntheticVideoConfig, make_synthetic_video
from defectlab.tracking.cvat_video import VideoTrack, write_cvat_video
from defectlab.tracking.evaluation import evaluate_tracks


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    out = tmp_path_factory.mktemp("v") / "video"
    cfg = SyntheticVideoConfig(size_hw=(128, 128), n_frames=12, n_defects=6, n_merges=0, appear_fraction=0,
                               vanish_fraction=0, drift_px=(0.0, 0.0))
    return make_synthetic_video(out, cfg, seed=3, frames=False)


def test_swapped_ids_counted(video, tmp_path):
    full = [t for t in video.tracks if t.first == 0 and t.last == 11]
    label = next(lab for lab in {t.label for t in full} if sum(t.label == lab for t in full) >= 2)
    a, b = [t for t in full if t.label == label][:2]  # two tracks of one class over the whole video
    k = 6  # from frame 6 on, a's shapes are reported under b's id and b's under a's
    swapped = []
    for t in video.tracks:
        if t.track_id == a.track_id:
            shapes = {f: (a.shapes if f < k else b.shapes)[f] for f in range(12)}
        elif t.track_id == b.track_id:
            shapes = {f: (b.shapes if f < k else a.shapes)[f] for f in range(12)}
        else:
            shapes = t.shapes
        swapped.append(VideoTrack(t.track_id, t.label, shapes))
    pred = tmp_path / "pred.xml"
    write_cvat_video(swapped, pred, labels=VIDEO_LABELS, size_hw=(128, 128), n_frames=12)
    n = sum(len(t.shapes) for t in video.tracks)
    s = evaluate_tracks(pred, video.out, out=tmp_path / "scores").overall
    assert s["IDSW"] == 2 and s["CLR_FN"] == 0 and s["CLR_FP"] == 0
    assert s["MOTA"] == pytest.approx(1 - 2 / n)
    # the best one-to-one mapping keeps 6 of 12 frames of a and of b: IDTP = n - 12, IDFN = IDFP = 12
    assert s["IDF1"] == pytest.approx(2 * (n - 12) / (2 * (n - 12) + 24))
    assert json.loads((tmp_path / "scores" / "track_scores.json").read_text())["IDSW"] == 2


def test_evaluate_command_scores_tracks(video, tmp_path):
    run = subprocess.run([sys.executable, "-m", "defectlab.cli", "evaluate", str(video.out), str(video.out), "--out",
                          str(tmp_path / "e")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "MOTA 1.0000, IDF1 1.0000, HOTA 1.0000, ID switches 0" in run.stdout
