"""Tracking benchmark: defectlab's linker beside a nearest-neighbour baseline (and trackpy), one run.

    .venv/bin/python benchmarks/bench_track.py                # 200 frames of 512², ~60 defects a frame
    .venv/bin/python benchmarks/bench_track.py --frames 60    # a quick run

Two synthetic videos (:mod:`defectlab.preparation.synthetic_video`), each with known tracks:

1. **truth shapes** — the exact labels of every frame, 3 % of the detections dropped at random:
   what a good detector gives. Scored against *all* true objects (dropped ones included), so a
   tracker that fills its gaps back in recovers them.
2. **realistic frames** — the same kind of video rendered with the contrast of real frames
   (cavities with a dark Fresnel rim, loops as dark rings, black dots, drift, blur, shot and
   read noise), and the detections *segmented from the pixels* by a classical detector (local
   background removed, smoothed, thresholded at 2.5 σ of the noise, holes filled, labelled).
   Nothing here is trained: the figures say what linking adds to an imperfect detector.

Trackers, same detections, same run:

* **ours** — :func:`defectlab.tracking.link.link` (laptrack LAP: drift removal, gap closing over
  2 frames, merges and splits, per class) and gap filling;
* **baseline** — nearest-neighbour frame-to-frame linking, no gap closing: each frame's objects
  are assigned to the previous frame's by the Hungarian method on centroid distance, within the
  same 5 px;
* **trackpy** — ``trackpy.link`` with ``memory=2`` (its gap closing), search range 5 px, when
  trackpy is installed (``pip install 'defectlab[bench]'``): the other library considered.

Printed: MOTA, IDF1, HOTA (TrackEval), ID switches, growth-rate error (Σ|ĝ−g| / Σ|g| over true
tracks of ≥ 10 frames, equivalent diameter, px/frame), the linking throughput in frames/min
(linking only, detections in memory) and the peak memory of linking (tracemalloc) at 1/2, 1 and 2×
the number of frames.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video  # noqa: E402
from defectlab.tracking.detections import Detections, equivalent_diameter, shape_centroid  # noqa: E402
from defectlab.tracking.kinetics import kinetics  # noqa: E402
from defectlab.tracking.link import LinkOptions, Linked, link  # noqa: E402
from defectlab.tracking.metrics import growth_rates, score_tracks  # noqa: E402


def truth_detections(video) -> Detections:
    rows = sorted((f, t.label, *shape_centroid(s), t.track_id) for t in video.tracks for f, s in t.shapes.items())
    a = np.array([r[2:5] for r in rows])
    return Detections(np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=object), a[:, 0], a[:, 1],
                      a[:, 2], len(video.frames) or 1 + max(t.last for t in video.tracks), video.size_hw,
                      true_id=np.array([r[5] for r in rows]))


def segment(frame: np.ndarray) -> list[tuple[float, float, float]]:
    """(x, y, area_px) of the objects a classical detector finds in one frame.

    Local background (median 7 px, then mean 41 px) removed, smoothed (Gaussian σ 2 px); dark
    pixels (rims, rings, dots) below −2.5 σ of the noise with holes filled, united with bright
    pixels (cavity interiors) above +2.5 σ; eroded twice (the rim lies outside a cavity's label),
    labelled, objects of at least 8 px. The best of 27 settings tried on one frame (smoothing 1,
    1.5, 2 px; threshold 2.5, 3, 3.5 σ; erosion 0, 1, 2).
    """
    from scipy import ndimage

    img = frame.astype(np.float64)
    background = ndimage.uniform_filter(ndimage.median_filter(img, size=7), size=41)
    contrast = ndimage.gaussian_filter(img - background, 2.0)
    sigma = 1.4826 * np.median(np.abs(contrast - np.median(contrast)))
    dark = ndimage.binary_fill_holes(ndimage.binary_opening(contrast < -2.5 * sigma))
    bright = ndimage.binary_opening(contrast > 2.5 * sigma)
    fg = ndimage.binary_erosion(ndimage.binary_fill_holes(dark | bright), iterations=2)
    lab, n = ndimage.label(fg)
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    area = ndimage.sum_labels(np.ones_like(img), lab, idx)
    cy, cx = (np.asarray(c) for c in zip(*ndimage.center_of_mass(np.ones_like(img), lab, idx)))
    keep = area >= 8
    return list(zip(cx[keep] + 0.5, cy[keep] + 0.5, area[keep]))


def segmented_detections(video, truth: Detections) -> Detections:
    """Detections segmented from the frames, each labelled with the class of the nearest true object."""
    rows = []
    for f, frame in enumerate(video.frames):
        here = truth.frame == f
        tx, ty, tl = truth.x[here], truth.y[here], truth.label[here]
        for x, y, a in segment(frame):
            # a class for each object: the nearest true object's (a detector would predict it; linking is per class)
            lab = tl[int(np.argmin(np.hypot(tx - x, ty - y)))] if tx.size else "cavity"
            rows.append((f, lab, x, y, a))
    a = np.array([r[2:] for r in rows])
    return Detections(np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=object), a[:, 0], a[:, 1],
                      a[:, 2], len(video.frames), video.size_hw)


def nearest_neighbour(det: Detections, max_px: float) -> np.ndarray:
    """Baseline: frame-to-frame Hungarian assignment on centroid distance, no gap closing."""
    from scipy.optimize import linear_sum_assignment

    ids = np.zeros(len(det), dtype=np.int64)
    nxt = 1
    prev = np.zeros(0, dtype=np.int64)
    for f in range(det.n_frames):
        cur = np.flatnonzero(det.frame == f)
        if prev.size and cur.size:
            d = np.hypot(det.x[prev][:, None] - det.x[cur][None, :], det.y[prev][:, None] - det.y[cur][None, :])
            cost = np.where(d <= max_px, d, 1e6)
            r, c = linear_sum_assignment(cost)
            ok = cost[r, c] < 1e6
            ids[cur[c[ok]]] = ids[prev[r[ok]]]
        new = cur[ids[cur] == 0]
        ids[new] = np.arange(nxt, nxt + new.size)
        nxt += new.size
        prev = cur
    return ids


def trackpy_link(det: Detections, max_px: float) -> np.ndarray | None:
    try:
        import pandas as pd
        import trackpy as tp
    except ImportError:
        return None
    tp.quiet()
    df = pd.DataFrame({"frame": det.frame, "x": det.x, "y": det.y})
    out = tp.link(df, search_range=max_px, memory=2)
    return out["particle"].to_numpy() + 1


def score(truth: Detections, det: Detections, ids: np.ndarray, true_growth: dict[int, float]) -> dict:
    t_xyr = np.column_stack([truth.x, truth.y, equivalent_diameter(truth.area_px) / 2])
    p_xyr = np.column_stack([det.x, det.y, equivalent_diameter(det.area_px) / 2])
    s = score_tracks(truth.frame, truth.true_id, t_xyr, det.frame, ids, p_xyr, truth.n_frames,
                     true_growth=true_growth, pred_growth=growth_rates(det.frame, ids, det.area_px))
    return s.overall


def run_ours(det: Detections) -> tuple[Linked, float]:
    link(det.take(det.frame < 2), LinkOptions())  # import laptrack & co. before the clock starts: linking only
    t0 = time.perf_counter()
    linked = link(det, LinkOptions(max_displacement="5px"))
    dt = time.perf_counter() - t0
    return linked.filled(), dt


def peak_mb(det: Detections, frames: int, chunk_frames: int | None = None) -> float:
    """Peak traced memory (MB) of linking the first ``frames`` frames, whole or in chunks (sync scheduler)."""
    import tempfile

    from defectlab.tracking.chunks import link_chunked

    sub = det.take(det.frame < frames)
    sub = Detections(sub.frame, sub.label, sub.x, sub.y, sub.area_px, frames, sub.size_hw)
    with tempfile.TemporaryDirectory() as work:
        tracemalloc.start()
        if chunk_frames is None:
            link(sub, LinkOptions(max_displacement="5px"))
        else:
            link_chunked(sub, LinkOptions(max_displacement="5px"), chunk_frames=chunk_frames, work=work,
                         scheduler="sync")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def row(name: str, s: dict, seconds: float | None, frames: int) -> str:
    speed = f"{frames / seconds * 60:8.0f}" if seconds else "       –"
    return (f"  {name:<10} MOTA {s['MOTA']:.4f}  IDF1 {s['IDF1']:.4f}  HOTA {s['HOTA']:.4f}  IDSW {s['IDSW']:4d}  "
            f"tracks {s['n_pred_tracks']:4d}/{s['n_true_tracks']:<4d} growth err {100 * s['growth_rate_error']:6.2f} %  "
            f"{speed} frames/min")


def bench(name: str, truth: Detections, det: Detections, true_growth: dict[int, float], frames: int) -> None:
    print(f"\n{name}: {frames} frames, {len(truth)} true objects ({len(truth) / frames:.1f} a frame), "
          f"{len(det)} detections, {len(np.unique(truth.true_id))} true tracks")
    linked, dt = run_ours(det)
    print(row("ours", score(truth, linked.detections, linked.track_id, true_growth), dt, frames))
    t0 = time.perf_counter()
    nn = nearest_neighbour(det, 5.0)
    print(row("baseline", score(truth, det, nn, true_growth), time.perf_counter() - t0, frames))
    t0 = time.perf_counter()
    tpid = trackpy_link(det, 5.0)
    if tpid is not None:
        print(row("trackpy", score(truth, det, tpid, true_growth), time.perf_counter() - t0, frames))
    merges = sum(1 for p in linked.parents.values() if len(p) >= 2)
    splits = sum(1 for c in linked.children.values() if len(c) >= 2)
    print(f"  ours: {merges} merges, {splits} splits found; drift at the last frame "
          f"{linked.drift_xy[-1].round(2).tolist()} px")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--defects", type=int, default=60)
    ap.add_argument("--drop", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-realistic", action="store_true", help="Only the truth-shapes video (minutes less).")
    args = ap.parse_args()
    cfg = SyntheticVideoConfig(size_hw=(args.size, args.size), n_frames=args.frames, n_defects=args.defects,
                               n_merges=3, n_splits=1)
    t0 = time.perf_counter()
    video = make_synthetic_video(None, cfg, seed=args.seed, frames=False)
    truth = truth_detections(video)
    true_growth = {t.track_id: 2 * t.growth_px_per_frame for t in video.tracks}
    print(f"synthetic video made in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(args.seed + 1)
    kept = truth.take(rng.random(len(truth)) >= args.drop)
    bench(f"1. truth shapes, {100 * args.drop:g} % of detections dropped", truth, kept, true_growth, args.frames)
    half = max(args.frames // 2, 2)
    mem = [(n, peak_mb(kept, n)) for n in (half, args.frames)]
    if args.frames * 2 <= 4000:
        cfg2 = SyntheticVideoConfig(size_hw=cfg.size_hw, n_frames=2 * args.frames, n_defects=args.defects)
        v2 = make_synthetic_video(None, cfg2, seed=args.seed, frames=False)
        t2 = truth_detections(v2)
        mem.append((2 * args.frames, peak_mb(t2, 2 * args.frames)))
    print("  linking peak memory: " + ", ".join(f"{n} frames {m:.1f} MB ({1024 * m / n:.0f} kB/frame)" for n, m in mem))
    chunk = max(args.frames // 4, 10)
    big = t2 if args.frames * 2 <= 4000 else kept
    peak_mb(big, 2 * chunk, chunk_frames=chunk)  # dask's first-use allocations are not the linker's
    cm = [(n, peak_mb(big, n, chunk_frames=chunk)) for n in (args.frames, 2 * args.frames) if n <= big.n_frames]
    print(f"  in chunks of {chunk} frames (batch track): " + ", ".join(f"{n} frames {m:.1f} MB" for n, m in cm))
    if args.no_realistic:
        return
    t0 = time.perf_counter()
    real = make_synthetic_video(None, cfg, seed=args.seed + 7, frames=True)
    rtruth = truth_detections(real)
    print(f"\nrealistic frames rendered in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    seg = segmented_detections(real, rtruth)
    print(f"segmented in {time.perf_counter() - t0:.1f} s")
    bench("2. realistic frames, classical segmentation", rtruth, seg,
          {t.track_id: 2 * t.growth_px_per_frame for t in real.tracks}, args.frames)
    write_figure(real, rtruth, seg)


def write_figure(video, truth: Detections, det: Detections) -> None:
    """counts and mean size vs time of the realistic video: truth beside what was tracked."""
    from defectlab.tracking.run import TrackOptions, TrackResult
    from defectlab.tracking.report import _counts_figure

    linked = link(det, LinkOptions()).filled()
    result = TrackResult(linked, kinetics(linked, pixel_size_nm=0.5, interval_s=0.5), LinkOptions(), TrackOptions())
    out = Path("bench_track_counts_vs_time.png")
    _counts_figure(out, result)
    print(f"\nfigure: {out.resolve()}")


if __name__ == "__main__":
    main()
