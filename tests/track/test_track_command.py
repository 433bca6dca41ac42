"""``defectlab track`` and ``defectlab.track``: outputs on a small synthetic video, errors in one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

import defectlab
from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    out = tmp_path_factory.mktemp("v") / "video"
    make_synthetic_video(out, SyntheticVideoConfig(size_hw=(128, 128), n_frames=16, n_defects=8, n_merges=0), seed=5)
    return out


def test_cli_writes_every_output(video, tmp_path):
    out = tmp_path / "tracks"
    run = subprocess.run([sys.executable, "-m", "defectlab.cli", "track", str(video), "--out", str(out),
                          "--pixel-size", "0.5nm", "--frame-interval", "0.5s"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "IDF1 1.0000" in run.stdout  # a noise-free export linked against its own tracks
    names = {p.name for p in out.iterdir()}
    assert {"tracks.csv", "track_frames.csv", "frames.csv", "events.csv", "summary.json", "mot.txt", "index.html",
            "overlay.gif", "prelabels", "figures"} <= names
    rows = list(csv.DictReader(open(out / "tracks.csv")))
    truth = list(csv.DictReader(open(video / "truth.csv")))
    assert len(rows) == len(truth)
    assert sorted(r["fate"] for r in rows) == sorted(r["fate"] for r in truth)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pixel_size_nm"] == 0.5 and summary["frame_interval_s"] == 0.5
    # MOT challenge: 10 comma-separated fields, frames from 1
    first = (out / "mot.txt").read_text().splitlines()[0].split(",")
    assert len(first) == 10 and first[0] == "1" and first[-3:] == ["-1", "-1", "-1"]
    # the pre-labels are CVAT video tracks that read back with the same number of tracks
    from defectlab.tracking.cvat_video import read_cvat_tracks

    assert len(read_cvat_tracks(out / "prelabels" / "annotations.xml").tracks) == len(rows)


def test_api_growth_rates_in_nm_per_s(video):
    r = defectlab.track(video, pixel_size="0.5nm", frame_interval="0.5s", overlay=False)
    truth = {int(t["track_id"]): float(t["growth_nm_per_s"]) for t in csv.DictReader(open(video / "truth.csv"))}
    t = r.tracks
    long_ = t["lifetime_frames"] >= 10
    # the fitted slope of the equivalent diameter against the generator's rate; shapes are rounded to 0.01 px
    # and the fit's standard error says how close: within 4 standard errors + 0.002 nm/s
    tids = dict(zip(r.linked.track_id.tolist(), r.linked.detections.true_id.tolist()))
    for tid, g, err in zip(t["track_id"][long_], t["growth_nm_per_s"][long_], t["growth_stderr_nm_per_s"][long_]):
        assert abs(g - truth[tids[int(tid)]]) <= 4 * err + 2e-3


def test_cli_bad_input_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "defectlab.cli", "track", str(tmp_path / "missing"), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "no such file" in run.stderr
    assert not (tmp_path / "o").exists()
    run = subprocess.run([sys.executable, "-m", "defectlab.cli", "track", str(tmp_path), "--out", str(tmp_path / "o"),
                          "--max-displacement", "3nm"], capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr


def test_batch_track_in_chunks_same_tracks(video, tmp_path):
    out = tmp_path / "batch"
    cmd = [sys.executable, "-m", "defectlab.cli", "batch", "track", str(video), "--out", str(out), "--chunk-frames", "5",
           "--scheduler", "threads", "--no-overlay"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(open(out / "tracks.csv")))
    assert len(rows) == len(list(csv.DictReader(open(video / "truth.csv"))))
    chunks = sorted((tmp_path / "batch.chunks").glob("chunk_*.npz"))
    assert len(chunks) == 4
    stamps = [c.stat().st_mtime_ns for c in chunks]
    again = subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert [c.stat().st_mtime_ns for c in chunks] == stamps  # every chunk reused, none linked again
