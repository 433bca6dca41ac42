"""Long videos in chunks: chunk borders do not cut tracks; a rerun reuses the chunks done."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video
from defectlab.tracking.chunks import chunk_plan, link_chunked
from defectlab.tracking.link import LinkOptions, link

from .test_link import _detections, _partition


@pytest.fixture(scope="module")
def det():
    cfg = SyntheticVideoConfig(size_hw=(192, 192), n_frames=50, n_defects=15, n_merges=0,
                               noise=0.0, dose=float("inf"), blur_px=0.0)
    video = make_synthetic_video(None, cfg, seed=9, frames=False)
    # a defect missed on the 2 frames right at a chunk border (frames 19, 20 with chunks of 10 frames)
    victim = video.tracks[0].track_id
    return _detections(video, drop={(19, victim), (20, victim)}), victim


def test_chunk_borders_do_not_cut_tracks(det, tmp_path):
    d, victim = det
    whole = link(d, LinkOptions(max_displacement="4px"))
    chunked = link_chunked(d, LinkOptions(max_displacement="4px"), chunk_frames=10, work=tmp_path, scheduler="threads")
    assert _partition(whole.track_id, chunked.track_id)
    assert _partition(d.true_id, chunked.track_id)  # the truth too: the victim's gap over the border was closed
    assert len(set(chunked.track_id[d.true_id == victim].tolist())) == 1
    assert len(chunked.chunks) == 5 and not any(c["reused"] for c in chunked.chunks)


def test_rerun_reuses_done_chunks(det, tmp_path):
    d, _ = det
    first = link_chunked(d, chunk_frames=20, work=tmp_path, scheduler="sync")
    (tmp_path / "chunk_00001.npz").unlink()  # as if the run had been killed before this chunk
    again = link_chunked(d, chunk_frames=20, work=tmp_path, scheduler="sync")
    assert [c["reused"] for c in again.chunks] == [True, False, True]
    assert np.array_equal(first.track_id, again.track_id)
    changed = link_chunked(d, LinkOptions(gap_frames=1), chunk_frames=20, work=tmp_path, scheduler="sync")
    assert not any(c["reused"] for c in changed.chunks)  # other options: nothing reused


def test_plan_and_bad_overlap():
    assert chunk_plan(25, 10, 4) == [(0, 14), (10, 24), (20, 25)]
    with pytest.raises(ValueError, match="overlap"):
        link_chunked(None, LinkOptions(gap_frames=2), overlap=1, work="/nonexistent")  # type: ignore[arg-type]
