"""Long videos in chunks of frames, linked on Dask and stitched across chunk borders, resumably.

A video of many thousand frames is cut into chunks of ``chunk_frames`` frames; each chunk is
linked on its own (a Dask task: memory bounded by one chunk's detections) together with the
first ``overlap`` frames of the next chunk (``overlap`` ≥ ``gap_frames + 2``, so a defect
missed right at a border is still bridged). Chunk ``k``'s tracks are then carried into chunk
``k + 1`` through the overlap: a track of chunk ``k + 1`` that holds a detection of the overlap
gets the global id of the chunk-``k`` track holding that same detection (the most common one,
should they differ). Tracks are therefore not cut at chunk borders.

Resumable: each chunk's links are saved as ``<work>/chunk_<k>.npz`` beside a key (a hash of
the chunk's detections and the linking options); a rerun reuses every chunk whose key matches
and links the rest.

Examples
--------
>>> import numpy as np, tempfile
>>> from defectlab.tracking.detections import Detections
>>> f = np.repeat(np.arange(30), 2)
>>> det = Detections(f, np.array(["cavity"] * 60, dtype=object), np.tile([10.0, 50.0], 30) + 0.2 * f,
...                  np.full(60, 30.0), np.full(60, 40.0), 30, (64, 64))
>>> ids = link_chunked(det, chunk_frames=8, work=tempfile.mkdtemp(), scheduler="sync").track_id
>>> sorted(set(ids.tolist()))       # two defects, two tracks, whatever the chunk borders
[1, 2]
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .detections import Detections
from .link import LinkOptions, Linked, link

__all__ = ["ChunkedLinks", "link_chunked", "chunk_plan"]


@dataclass
class ChunkedLinks:
    """A global track id per detection, and what was done per chunk."""

    track_id: np.ndarray
    chunks: list[dict[str, Any]]
    fate: dict[int, str]
    parents: dict[int, tuple[int, ...]]
    children: dict[int, tuple[int, ...]]

    def as_linked(self, det: Detections, max_displacement_px: float) -> Linked:
        return Linked(det, self.track_id, np.zeros((det.n_frames, 2)), self.fate, self.parents, self.children,
                      max_displacement_px)


def chunk_plan(n_frames: int, chunk_frames: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` frames of each chunk's linking window (``stop`` exclusive, overlap included)."""
    if chunk_frames < 1:
        raise ValueError(f"expected chunk_frames >= 1, got {chunk_frames}")
    starts = list(range(0, n_frames, chunk_frames))
    return [(s, min(s + chunk_frames + overlap, n_frames)) for s in starts]


def _key(det: Detections, rows: np.ndarray, options: LinkOptions, pixel_size_nm: float | None) -> str:
    h = hashlib.sha256()
    for arr in (det.frame[rows], det.x[rows], det.y[rows], det.area_px[rows]):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\x00".join(map(str, det.label[rows])).encode())
    h.update(json.dumps([options.to_dict(), pixel_size_nm], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _link_chunk(det: Detections, rows: np.ndarray, start: int, stop: int, options: LinkOptions,
                pixel_size_nm: float | None, path: str, key: str) -> dict[str, Any]:
    """Link one chunk's window; save its local track ids (per row) to ``path``."""
    from dataclasses import replace

    sub = det.take(rows)
    sub = replace(sub, frame=sub.frame - start, n_frames=stop - start, shapes=None, true_id=None, images=())
    linked = link(sub, options, pixel_size_nm=pixel_size_nm)
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, rows=rows, track_id=linked.track_id, key=np.array(key),
             events=np.array(json.dumps({"fate": linked.fate, "parents": linked.parents, "children": linked.children})))
    tmp.replace(path)
    return {"start": start, "stop": stop, "tracks": linked.n_tracks, "detections": int(rows.size)}


def link_chunked(
    det: Detections,
    options: LinkOptions = LinkOptions(),
    *,
    chunk_frames: int = 500,
    overlap: int | None = None,
    work: str | Path,
    scheduler: Any = "threads",
    pixel_size_nm: float | None = None,
) -> ChunkedLinks:
    """Link a long video chunk by chunk on Dask, stitching tracks across the borders.

    Parameters
    ----------
    det : Detections
        All frames' detections (centroids and areas: small even for long videos).
    options : LinkOptions
        As for :func:`~defectlab.tracking.link.link`. Drift is estimated per chunk.
    chunk_frames : int
        Frames per chunk.
    overlap : int, optional
        Frames of the next chunk linked with each chunk; default ``gap_frames + 2``.
    work : str or Path
        Folder for the per-chunk results (``chunk_<k>.npz``): a rerun reuses the chunks done.
    scheduler : str or distributed.Client
        ``"sync"``, ``"threads"``, ``"processes"`` (Dask's local schedulers), a scheduler
        address (``"tcp://host:8786"``), or a ``distributed.Client``.
    pixel_size_nm : float, optional
        Needed when the maximum displacement is in nm.

    Returns
    -------
    ChunkedLinks
        Global track ids (1, 2, … in order of first appearance), per-chunk summaries
        (``reused`` True for chunks taken from ``work``), and fates, parents, children in global
        ids (a track's fate is the one of the chunk it ends in).
    """
    import dask

    overlap = options.gap_frames + 2 if overlap is None else int(overlap)
    if overlap < options.gap_frames + 1:
        raise ValueError(f"expected an overlap of at least gap_frames + 1 = {options.gap_frames + 1}, got {overlap}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    plan = chunk_plan(det.n_frames, chunk_frames, overlap)
    tasks, info = [], []
    for k, (start, stop) in enumerate(plan):
        rows = np.flatnonzero((det.frame >= start) & (det.frame < stop))
        key = _key(det, rows, options, pixel_size_nm)
        path = work / f"chunk_{k:05d}.npz"
        reused = False
        if path.is_file():
            with np.load(path) as z:
                reused = str(z["key"]) == key
        info.append({"chunk": k, "start": start, "stop": stop, "reused": reused, "path": str(path)})
        if not reused:
            tasks.append(dask.delayed(_link_chunk)(det, rows, start, stop, options, pixel_size_nm, str(path), key))
    if tasks:
        if isinstance(scheduler, str) and "://" in scheduler:
            from distributed import Client

            with Client(scheduler) as client:
                dask.compute(*tasks, scheduler=client)
        else:
            dask.compute(*tasks, scheduler=scheduler)
    return _stitch(det, plan, info)


def _stitch(det: Detections, plan: list[tuple[int, int]], info: list[dict[str, Any]]) -> ChunkedLinks:
    N = len(det)
    global_id = np.zeros(N, dtype=np.int64)
    carried = np.zeros(N, dtype=np.int64)
    next_id = 1
    fate: dict[int, str] = {}
    parents: dict[int, tuple[int, ...]] = {}
    children: dict[int, tuple[int, ...]] = {}
    for k, ((start, stop), meta) in enumerate(zip(plan, info)):
        with np.load(meta["path"]) as z:
            rows, local = z["rows"], z["track_id"]
            events = json.loads(str(z["events"]))
        core_stop = plan[k + 1][0] if k + 1 < len(plan) else stop
        mapping: dict[int, int] = {}
        # tracks already seen through the previous chunk's overlap keep that chunk's global id
        seen = carried[rows] > 0
        for lid in np.unique(local[seen]):
            votes = Counter(carried[rows[seen & (local == lid)]].tolist())
            mapping[int(lid)] = votes.most_common(1)[0][0]
        order = np.lexsort((det.x[rows], det.y[rows], det.frame[rows]))
        for i in order:
            lid = int(local[i])
            if lid not in mapping:
                mapping[lid] = next_id
                next_id += 1
        core = (det.frame[rows] >= start) & (det.frame[rows] < core_stop)
        global_id[rows[core]] = [mapping[int(v)] for v in local[core]]
        carried[:] = 0
        carried[rows[~core]] = [mapping[int(v)] for v in local[~core]]  # the overlap, for the next chunk
        # fates: of the tracks that end inside this chunk's own frames
        last_frame: dict[int, int] = {}
        for fr, lid in zip(det.frame[rows].tolist(), local.tolist()):
            last_frame[lid] = max(last_frame.get(lid, -1), fr)
        for lid_s, f in events["fate"].items():
            lid = int(lid_s)
            if last_frame.get(lid, -1) < core_stop or k + 1 == len(plan):
                fate[mapping[lid]] = f
        for lid_s, ps in events["parents"].items():
            parents[mapping[int(lid_s)]] = tuple(sorted({mapping[int(p)] for p in ps}))
        for lid_s, cs in events["children"].items():
            children[mapping[int(lid_s)]] = tuple(sorted({mapping[int(c)] for c in cs}))
        meta.update(tracks=len(set(local.tolist())), detections=int(rows.size))
    return ChunkedLinks(global_id, info, fate, parents, children)
