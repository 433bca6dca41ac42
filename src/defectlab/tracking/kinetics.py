"""Kinetics of linked tracks: per-track lives and growth, per-frame counts, densities, area fraction.

Units: with a pixel size, lengths are in nm and areas in nm² (columns say so: ``diameter_nm``);
without one, in px. With a frame interval, times are in s and rates per s; without one, per
frame (``growth_nm_per_frame``…): the column names always carry the unit.

Per track (``tracks`` table)
    ``track_id``, ``label``, ``first_frame``, ``last_frame``, ``first_time_s``, ``last_time_s``,
    ``frames_seen`` (detections), ``lifetime_frames`` (last − first + 1), ``lifetime_s``
    (``lifetime_frames`` × interval), ``diameter_first_nm``, ``diameter_last_nm``,
    ``diameter_mean_nm`` (equivalent diameter), ``growth_nm_per_s`` and
    ``growth_stderr_nm_per_s`` — the least-squares slope of the equivalent diameter against
    time and its standard error (``scipy.stats.linregress``; NaN for tracks seen on fewer than
    3 frames), ``displacement_nm`` (drift-corrected, first to last centroid), ``fate``,
    ``parents``, ``children`` (space-separated track ids).
Per detection (``track_frames``: the size over time of every track)
    ``frame``, ``time_s``, ``track_id``, ``label``, ``x_px``, ``y_px`` (as seen), ``area_px``,
    ``diameter_nm``.
Per frame and label (``frames``)
    ``frame``, ``time_s``, ``label``, ``count``, ``density_per_um2`` (count / field area),
    ``area_fraction`` (summed defect area / field area), ``diameter_mean_nm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..measurement.table import Table
from .detections import equivalent_diameter
from .link import Linked

__all__ = ["Kinetics", "kinetics"]


@dataclass
class Kinetics:
    """The tables of :mod:`defectlab.tracking.kinetics` and the units they use."""

    tracks: Table
    track_frames: Table
    frames: Table
    length_unit: str
    time_unit: str
    pixel_size_nm: float | None
    interval_s: float | None
    notes: list[Any] = field(default_factory=list)

    def growth(self) -> dict[int, float]:
        """Track id -> growth rate of the equivalent diameter (the tracks table's unit)."""
        col = f"growth_{self.length_unit}_per_{self.time_unit}"
        return {int(t): float(g) for t, g in zip(self.tracks["track_id"], self.tracks[col])}


def kinetics(linked: Linked, *, pixel_size_nm: float | None = None, interval_s: float | None = None) -> Kinetics:
    """The per-track, per-detection and per-frame tables of linked detections."""
    from scipy.stats import linregress

    det = linked.detections
    lu = "nm" if pixel_size_nm else "px"
    tu = "s" if interval_s else "frame"
    scale = pixel_size_nm or 1.0
    dt = interval_s or 1.0
    time = det.frame * dt
    diam = equivalent_diameter(det.area_px) * scale
    xc = det.x - linked.drift_xy[det.frame, 0]
    yc = det.y - linked.drift_xy[det.frame, 1]
    order = np.lexsort((det.frame, linked.track_id))
    tid_sorted = linked.track_id[order]
    bounds = np.flatnonzero(np.diff(tid_sorted)) + 1
    groups = np.split(order, bounds) if order.size else []
    rows = []
    for g in groups:
        tid = int(linked.track_id[g[0]])
        f = det.frame[g]
        t = time[g]
        d = diam[g]
        if len(g) >= 3 and np.ptp(t) > 0:
            fit = linregress(t, d)
            slope, err = float(fit.slope), float(fit.stderr)
        else:
            slope = err = math.nan
        rows.append({
            "track_id": tid, "label": det.label[g[0]], "first_frame": int(f[0]), "last_frame": int(f[-1]),
            "first_time_s": float(f[0] * interval_s) if interval_s else math.nan,
            "last_time_s": float(f[-1] * interval_s) if interval_s else math.nan,
            "frames_seen": int(len(g)), "lifetime_frames": int(f[-1] - f[0] + 1),
            "lifetime_s": float((f[-1] - f[0] + 1) * interval_s) if interval_s else math.nan,
            f"diameter_first_{lu}": float(d[0]), f"diameter_last_{lu}": float(d[-1]),
            f"diameter_mean_{lu}": float(d.mean()),
            f"growth_{lu}_per_{tu}": slope, f"growth_stderr_{lu}_per_{tu}": err,
            f"displacement_{lu}": float(math.hypot(xc[g[-1]] - xc[g[0]], yc[g[-1]] - yc[g[0]]) * scale),
            "fate": linked.fate.get(tid, "present"),
            "parents": " ".join(map(str, linked.parents.get(tid, ()))),
            "children": " ".join(map(str, linked.children.get(tid, ()))),
        })
    tracks = Table.from_rows(rows) if rows else Table({"track_id": np.zeros(0, np.int64)})
    per_det = Table({
        "frame": det.frame[order], "time_s": det.frame[order] * interval_s if interval_s else np.full(order.size, math.nan),
        "track_id": linked.track_id[order], "label": det.label[order], "x_px": det.x[order], "y_px": det.y[order],
        "area_px": det.area_px[order], f"diameter_{lu}": diam[order],
    })
    h, w = det.size_hw
    field_area = h * w * scale * scale  # px² or nm²
    density_col = "density_per_um2" if pixel_size_nm else "density_per_px2"
    frame_rows = []
    labels = sorted(set(det.label.tolist())) or [lab.name for lab in det.labels]
    for f in range(det.n_frames):
        here = det.frame == f
        for lab in labels:
            sel = here & (det.label == lab)
            n = int(sel.sum())
            frame_rows.append({
                "frame": f, "time_s": f * interval_s if interval_s else math.nan, "label": lab, "count": n,
                density_col: n / (field_area / 1e6 if pixel_size_nm else field_area),
                "area_fraction": float(det.area_px[sel].sum()) / (h * w),
                f"diameter_mean_{lu}": float(diam[sel].mean()) if n else math.nan,
            })
    frames = Table.from_rows(frame_rows) if frame_rows else Table({"frame": np.zeros(0, np.int64)})
    return Kinetics(tracks, per_det, frames, lu, tu, pixel_size_nm, interval_s, list(linked.notes))
