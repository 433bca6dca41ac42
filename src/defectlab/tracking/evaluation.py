"""``defectlab evaluate`` on tracks: predicted tracks against true tracks, both CVAT video exports.

Both sides are read with their track ids (:func:`~defectlab.tracking.cvat_video.read_cvat_tracks`):
the labels a person corrected in CVAT, and the predictions — a ``defectlab track`` output folder
(its ``prelabels/annotations.xml``) or any CVAT for video 1.1 export. Scores are those of
:func:`~defectlab.tracking.metrics.score_tracks`: MOTA, IDF1, HOTA, ID switches, the lifetime
distribution's error and the growth-rate error (equivalent diameter against frame, px/frame,
fitted per track on each side).

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> _ = make_synthetic_video(tmp / "v", SyntheticVideoConfig(size_hw=(96, 96), n_frames=6, n_defects=4, n_merges=0),
...                          seed=1, frames=False)
>>> evaluate_tracks(tmp / "v", tmp / "v").overall["IDF1"]     # labels against themselves
1.0
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .detections import Detections, equivalent_diameter, has_tracks, load_detections
from .metrics import TrackScores, growth_rates, score_tracks

__all__ = ["evaluate_tracks", "is_track_pair", "track_export"]


def track_export(path: str | Path) -> Path | None:
    """The CVAT video export with tracks at ``path`` (a ``defectlab track`` folder's pre-labels), or None."""
    p = Path(path)
    if p.is_dir() and (p / "prelabels" / "annotations.xml").is_file() and (p / "tracks.csv").is_file():
        p = p / "prelabels" / "annotations.xml"
    return p if p.exists() and has_tracks(p) else None


def is_track_pair(predictions: str | Path, labels: str | Path) -> bool:
    """True when both are CVAT video exports with tracks: ``evaluate`` then scores tracks."""
    return track_export(predictions) is not None and track_export(labels) is not None


def _xyr(d: Detections) -> np.ndarray:
    return np.column_stack([d.x, d.y, equivalent_diameter(d.area_px) / 2])


def evaluate_tracks(predictions: str | Path, labels: str | Path, *, iou: float = 0.5,
                    out: str | Path | None = None, overwrite: bool = False) -> TrackScores:
    """Score predicted tracks against true tracks (both CVAT video exports with tracks).

    Writes, with ``out``: ``track_scores.json`` (the overall scores) and ``track_matches.csv``
    (per true track: the predicted track holding most of its frames, frames, growth rates).

    Raises
    ------
    DatasetError
        The two videos differ in frame count.
    """
    from ..errors import DatasetError

    pred_path, true_path = track_export(predictions), track_export(labels)
    if pred_path is None or true_path is None:
        raise DatasetError(f"{predictions if pred_path is None else labels}: not a CVAT video export with tracks")
    pred, true = load_detections(pred_path), load_detections(true_path)
    if pred.n_frames != true.n_frames:
        raise DatasetError(f"{pred_path}: {pred.n_frames} frames, but {true_path} has {true.n_frames}")
    scores = score_tracks(true.frame, true.true_id, _xyr(true), pred.frame, pred.true_id, _xyr(pred), true.n_frames,
                          iou=iou, true_growth=growth_rates(true.frame, true.true_id, true.area_px),
                          pred_growth=growth_rates(pred.frame, pred.true_id, pred.area_px))
    if out is not None:
        from .._output import output_dir
        from ..measurement.report import json_ready

        with output_dir(out, overwrite=overwrite, inputs=[pred_path, true_path]) as tmp:
            (tmp / "track_scores.json").write_text(json.dumps(json_ready(
                {"predictions": str(pred_path), "labels": str(true_path), "iou": iou, **scores.overall}), indent=2)
                + "\n", encoding="utf-8")
            cols = sorted({k for m in scores.matches for k in m})
            with open(tmp / "track_matches.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                w.writerows(scores.matches)
    return scores
