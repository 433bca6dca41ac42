"""``defectlab track``: link, measure kinetics, write tables, figures, pre-labels and a page.

Output folder (written atomically)::

    tracks.csv / .parquet         one row per track (see :mod:`defectlab.tracking.kinetics`)
    track_frames.csv / .parquet   one row per object per frame: the size over time of each track
    frames.csv / .parquet         per frame and label: count, number density, area fraction, mean size
    events.csv                    merges and splits: frame, kind, parents, children
    summary.json                  settings, calibration, counts, fates, notes (and scores vs the truth)
    prelabels/annotations.xml     CVAT for video 1.1 pre-labels as tracks (ellipses or polygons with
                                  keyframes, outside where a track ends)
    mot.txt                       MOT challenge text: frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1
    figures/counts_vs_time.png, figures/size_vs_time.png, figures/longest_tracks.png (with frames)
    overlay.gif                   the frames with track ids drawn (with frames)
    index.html                    all of it on one offline page
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from ..measurement.options import length_nm
from ..model import Dataset
from ..options import Options, option
from .detections import Detections, load_detections
from .kinetics import Kinetics, kinetics
from .link import LinkOptions, Linked, link

__all__ = ["TrackOptions", "TrackResult", "track"]


def _interval(value: Any) -> float:
    from ..imaging.frames import parse_interval

    return parse_interval(value)


@dataclass(frozen=True, slots=True)
class TrackOptions(Options):
    """What ``defectlab track`` does besides linking (:class:`~defectlab.tracking.link.LinkOptions`)."""

    verb: ClassVar[str] = "track"

    pixel_size: float | None = option(None, help="Pixel size, overriding the files' calibration: 0.38nm (a bare "
                                                 "number is nm).", convert=length_nm("pixel size"), metavar="LENGTH")
    frame_interval: float | None = option(None, help="Time between frames, overriding the files': 0.5s, 40ms, 25fps "
                                                     "(a bare number is s).", convert=_interval, metavar="TIME")
    prelabel_shape: str = option("ellipse", help="Shape of the CVAT track pre-labels: ellipse (CVAT interpolates "
                                                 "it) or as-read.", choices=("ellipse", "as-read"))
    fill_gaps: bool = option(True, help="Fill the frames a track was missed on by interpolation (outputs, scores).",
                             cli="--fill-gaps/--no-fill-gaps")
    overlay: bool = option(True, help="Write overlay.gif and the gallery of the longest tracks (needs the frames).",
                           cli="--overlay/--no-overlay")
    overlay_frames: int = option(100, help="Most frames in overlay.gif (evenly spaced).", min=1)


@dataclass
class TrackResult:
    """Tracks and their kinetics; ``write(out)`` writes the output folder."""

    linked: Linked
    kinetics: Kinetics
    options: LinkOptions
    track_options: TrackOptions
    scores: dict[str, Any] | None = None
    notes: list[Any] = field(default_factory=list)
    frames: Any = None  # a FrameSequence, or a list of arrays, when the frames are known

    @property
    def tracks(self):
        """The per-track table."""
        return self.kinetics.tracks

    def summary(self) -> dict[str, Any]:
        from collections import Counter

        from ..measurement.report import json_ready

        det = self.linked.detections
        return json_ready({
            "source": det.source, "frames": det.n_frames, "size_hw": list(det.size_hw),
            "pixel_size_nm": self.kinetics.pixel_size_nm, "frame_interval_s": self.kinetics.interval_s,
            "detections": int((~self.linked.interpolated).sum()) if self.linked.interpolated is not None else len(det),
            "interpolated": int(self.linked.interpolated.sum()) if self.linked.interpolated is not None else 0,
            "tracks": self.linked.n_tracks, "fates": dict(Counter(self.linked.fate.values())),
            "merges": sum(1 for p in self.linked.parents.values() if len(p) >= 2),
            "splits": sum(1 for c in self.linked.children.values() if len(c) >= 2),
            "drift_px_last_frame": self.linked.drift_xy[-1].tolist() if len(self.linked.drift_xy) else [0, 0],
            "max_displacement_px": self.linked.max_displacement_px,
            "link_options": self.options.to_dict(), "track_options": self.track_options.to_dict(),
            "scores": self.scores, "notes": [str(n) for n in self.notes],
        })

    def write(self, out: str | Path, *, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
        from .report import write_track_output

        return write_track_output(self, out, overwrite=overwrite, inputs=inputs)


def _frames_for(det: Detections, frames: Any, pixel_size: Any, frame_interval: Any):
    """The frames as a FrameSequence (given, or the detections' image files), or None."""
    from ..imaging.frames import FrameSequence, open_frames

    if frames is None:
        if det.images and all(im is not None for im in det.images):
            from ..imaging.io import read_image

            paths = list(det.images)
            first = read_image(paths[0])
            return FrameSequence(det.source or "", det.frame_names, first.shape[:2], None, None, {"kind": "items"},
                                 lambda i: read_image(paths[i]))
        return None
    if isinstance(frames, FrameSequence):
        return frames
    return open_frames(frames, frame_interval=frame_interval, pixel_size=pixel_size)


def track(
    source: Dataset | Detections | str | Path,
    *,
    options: LinkOptions = LinkOptions(),
    track_options: TrackOptions = TrackOptions(),
    frames: Any = None,
    images: str | Path | None = None,
    truth: Detections | None = None,
    chunk_frames: int | None = None,
    scheduler: Any = "threads",
    work: str | Path | None = None,
) -> TrackResult:
    """Link the defects of a video and measure their kinetics.

    Parameters
    ----------
    source : Dataset, Detections, str or Path
        A ``defectlab predict`` folder of the frames, a CVAT video export (its tracks become
        the truth the result is scored against), or any per-frame export ``defectlab.read`` reads.
    options : LinkOptions
        Linking: maximum displacement, gap closing, merges, splits, per-class, drift.
    track_options : TrackOptions
        Calibration, frame interval, pre-label shape, gap filling, overlay.
    frames : str, Path or FrameSequence, optional
        The video's frames (folder, stack, video) for the calibration, the frame interval and
        the overlay; default: the export's image files, when it has them.
    images : str or Path, optional
        Folder of the export's image files, if not beside it.
    truth : Detections, optional
        True tracks (``true_id`` set) to score against; default: the source's own track ids.
    chunk_frames : int, optional
        Link in chunks of this many frames on Dask, stitched across the borders
        (:func:`~defectlab.tracking.chunks.link_chunked`; ``defectlab batch track``).
    scheduler : str or distributed.Client
        Where the chunks run (``"threads"``, ``"processes"``, ``"sync"``, a scheduler address).
    work : str or Path, optional
        Folder of the per-chunk results, reused by a rerun (needed with ``chunk_frames``).

    Returns
    -------
    TrackResult
    """
    det = load_detections(source, images=images)
    seq = _frames_for(det, frames, track_options.pixel_size, track_options.frame_interval)
    nm, dt = track_options.pixel_size, track_options.frame_interval
    if seq is not None:
        if len(seq) != det.n_frames:
            from ..errors import DatasetError

            raise DatasetError(f"{seq.source}: {len(seq)} frames, but the detections have {det.n_frames}")
        nm = nm if nm is not None else seq.pixel_size_nm
        dt = dt if dt is not None else seq.interval_s
    if nm is None and det.images and det.images[0] is not None:
        from ..imaging.micrograph import read_pixel_size

        try:
            nm = read_pixel_size(det.images[0])[0]
        except Exception:  # noqa: BLE001 - a frame we cannot read has no calibration; said below
            nm = None
    if chunk_frames is not None:
        from .chunks import link_chunked
        from .link import parse_distance

        if work is None:
            raise ValueError("linking in chunks needs a work folder for the chunks' results (work=)")
        chunked = link_chunked(det, options, chunk_frames=chunk_frames, work=work, scheduler=scheduler,
                               pixel_size_nm=nm)
        linked = chunked.as_linked(det, parse_distance(options.max_displacement, pixel_size_nm=nm))
    else:
        linked = link(det, options, pixel_size_nm=nm)
    if track_options.fill_gaps:
        linked = linked.filled()
    else:
        linked.interpolated = np.zeros(len(linked.detections), dtype=bool)
    kin = kinetics(linked, pixel_size_nm=nm, interval_s=dt)
    notes = list(det.notes) + list(linked.notes)
    from ..model import Note

    if nm is None:
        notes.append(Note("no-calibration", "no pixel size: lengths in px (give --pixel-size)"))
    if dt is None:
        notes.append(Note("no-frame-interval", "no frame interval: times in frames (give --frame-interval)"))
    result = TrackResult(linked, kin, options, track_options, notes=notes, frames=seq)
    ref = truth if truth is not None else (det if det.true_id is not None else None)
    if ref is not None:
        result.scores = score_against(result, ref)
    return result


def score_against(result: TrackResult, truth: Detections) -> dict[str, Any]:
    """MOTA, IDF1, HOTA, … of ``result``'s tracks against ``truth``'s ``true_id`` tracks."""
    from .detections import equivalent_diameter
    from .metrics import score_tracks

    d = result.linked.detections
    keep = truth.true_id >= 0
    t_xyr = np.column_stack([truth.x[keep], truth.y[keep], equivalent_diameter(truth.area_px[keep]) / 2])
    p_xyr = np.column_stack([d.x, d.y, equivalent_diameter(d.area_px) / 2])
    scores = score_tracks(truth.frame[keep], truth.true_id[keep], t_xyr, d.frame, result.linked.track_id, p_xyr,
                          d.n_frames, pred_merges=sum(1 for p in result.linked.parents.values() if len(p) >= 2))
    return scores.overall


def mot_lines(result: TrackResult) -> list[str]:
    """MOT challenge rows ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z`` (frames from 1)."""
    d = result.linked.detections
    lines = []
    order = np.lexsort((result.linked.track_id, d.frame))
    r = np.sqrt(d.area_px / math.pi)
    for i in order:
        if d.shapes is not None:
            x1, y1, x2, y2 = d.shapes[i].bbox_xyxy()
        else:
            x1, y1, x2, y2 = d.x[i] - r[i], d.y[i] - r[i], d.x[i] + r[i], d.y[i] + r[i]
        lines.append(f"{int(d.frame[i]) + 1},{int(result.linked.track_id[i])},{x1:.2f},{y1:.2f},{x2 - x1:.2f},"
                     f"{y2 - y1:.2f},1,-1,-1,-1")
    return lines
