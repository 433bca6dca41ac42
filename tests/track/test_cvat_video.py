"""CVAT for video 1.1 tracks: written, read back by our reader and by the standard library's XML parser."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from defectlab.model import Ellipse, Label, Polygon
from defectlab.tracking.cvat_video import VideoTrack, read_cvat_tracks, write_cvat_video

LABELS = [Label("cavity", color="#1f77b4"), Label("precipitate", color="#2ca02c")]


def _tracks():
    a = {f: Ellipse(label="cavity", cx=10.0 + f, cy=20.25, rx=4.0 + 0.5 * f, ry=3.0, rotation_deg=15.0) for f in range(6)}
    del a[3]  # missed on frame 3: outside there, back on frame 4
    b = {f: Polygon(label="precipitate", points_xy=[(40 + f, 40), (46 + f, 40), (43 + f, 45.5)]) for f in range(2, 5)}
    return [VideoTrack(3, "cavity", a), VideoTrack(8, "precipitate", b)]


def test_round_trip_same_tracks(tmp_path):
    xml = tmp_path / "annotations.xml"
    write_cvat_video(_tracks(), xml, labels=LABELS, size_hw=(64, 80), n_frames=8)
    back = read_cvat_tracks(xml)
    got = {t.track_id: t for t in back.tracks}
    for t in _tracks():
        assert got[t.track_id].label == t.label
        assert sorted(got[t.track_id].shapes) == sorted(t.shapes)
        assert all(got[t.track_id].shapes[f] == t.shapes[f] for f in t.shapes)
    assert len(back.dataset) == 8 and back.dataset[0].size_hw == (64, 80)


def test_independent_reader_sees_tracks_outside_and_keyframes(tmp_path):
    xml = tmp_path / "annotations.xml"
    write_cvat_video(_tracks(), xml, labels=LABELS, size_hw=(64, 80), n_frames=8)
    root = ET.parse(xml).getroot()  # the standard library's parser: nothing of ours
    assert root.find("meta/task/mode").text == "interpolation"
    assert (root.find("meta/task/original_size/width").text, root.find("meta/task/size").text) == ("80", "8")
    tracks = {int(t.get("id")): t for t in root.findall("track")}
    cav = tracks[3]
    rows = [(int(e.get("frame")), e.get("outside"), e.get("keyframe")) for e in cav]
    # frames 0..5 then the closing outside frame 6; frame 3 outside (a keyframe, as CVAT marks it)
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    assert [r[1] for r in rows] == ["0", "0", "0", "1", "0", "0", "1"]
    assert rows[3][2] == "1" and rows[6][2] == "1"
    # the ellipse's numbers are linear in time: frames 1 and 5 need no keyframe (2 is before the gap)
    assert rows[1][2] == "0" and rows[5][2] == "1"  # 5 is the last visible frame
    e0 = cav[0]
    assert [float(e0.get(k)) for k in ("cx", "cy", "rx", "ry", "rotation")] == [10.0, 20.25, 4.0, 3.0, 15.0]
    prec = tracks[8]
    assert all(e.tag == "polygon" for e in prec)
    assert [e.get("keyframe") for e in prec] == ["1", "1", "1", "1"]  # polygons: every frame a keyframe
    assert prec[0].get("points") == "42.0,40.0;48.0,40.0;45.0,45.5"


def test_synthetic_video_export_reads_back_with_true_tracks(tmp_path):
    from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video

    v = make_synthetic_video(tmp_path / "v", SyntheticVideoConfig(size_hw=(128, 128), n_frames=12, n_defects=10,
                                                                 n_merges=0), seed=2)
    back = {t.track_id: t for t in read_cvat_tracks(tmp_path / "v").tracks}
    assert sorted(back) == sorted(t.track_id for t in v.tracks)
    for t in v.tracks:
        assert back[t.track_id].shapes.keys() == t.shapes.keys()
        assert all(back[t.track_id].shapes[f] == s for f, s in t.shapes.items())


def test_writer_refuses_bad_tracks(tmp_path):
    with pytest.raises(ValueError, match="not among the labels"):
        write_cvat_video([VideoTrack(1, "loop", {0: Ellipse(label="loop", cx=1, cy=1, rx=1, ry=1)})],
                         tmp_path / "a.xml", labels=LABELS, size_hw=(8, 8), n_frames=2)
    with pytest.raises(ValueError, match="outside 0..1"):
        write_cvat_video([VideoTrack(1, "cavity", {2: Ellipse(label="cavity", cx=1, cy=1, rx=1, ry=1)})],
                         tmp_path / "a.xml", labels=LABELS, size_hw=(8, 8), n_frames=2)
