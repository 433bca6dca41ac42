"""The output folder of ``defectlab track``: tables, pre-labels, MOT text, figures, overlay, page.

Figures are drawn by matplotlib's Agg canvas without pyplot (as :mod:`defectlab.measurement.report`
does, whose page helpers are reused); the overlay is an animated GIF drawn with Pillow.
"""

from __future__ import annotations

import colorsys
import csv
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .._output import output_dir
from ..measurement.report import _figure, _html_table, _notes_html, _page, _settings_html, _write_tables
from ..model import Ellipse, Label

if TYPE_CHECKING:  # pragma: no cover
    from .run import TrackResult

__all__ = ["write_track_output", "track_color", "prelabel_tracks"]


def track_color(track_id: int) -> tuple[int, int, int]:
    """A bright color per track id (golden-ratio hues), RGB 0..255."""
    h = (int(track_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def prelabel_tracks(result: "TrackResult") -> list[Any]:
    """The tracks as :class:`~defectlab.tracking.cvat_video.VideoTrack` of ellipses (or the shapes read)."""
    from .cvat_video import VideoTrack

    d = result.linked.detections
    ellipse = result.track_options.prelabel_shape == "ellipse"
    r = np.sqrt(d.area_px / math.pi)
    per: dict[int, dict[int, Any]] = {}
    for i in range(len(d)):
        shape = d.shapes[i] if d.shapes is not None else None
        if shape is None or (ellipse and not isinstance(shape, Ellipse)):
            shape = Ellipse(label=str(d.label[i]), cx=round(float(d.x[i]), 2), cy=round(float(d.y[i]), 2),
                            rx=round(float(r[i]), 2), ry=round(float(r[i]), 2), source="auto")
        per.setdefault(int(result.linked.track_id[i]), {})[int(d.frame[i])] = shape.replace(source="auto")
    out = []
    for tid in sorted(per):
        shapes = per[tid]
        out.append(VideoTrack(tid, next(iter(shapes.values())).label, shapes))
    return out


def _labels(result: "TrackResult") -> list[Label]:
    d = result.linked.detections
    known = {lab.name: lab for lab in d.labels}
    names = list(known) + sorted(set(d.label.tolist()) - set(known))
    kind = "ellipse" if result.track_options.prelabel_shape == "ellipse" else "any"
    return [Label(n, color=known[n].color if n in known else None, type=kind) for n in names]


def _events(result: "TrackResult") -> list[dict[str, Any]]:
    t = result.kinetics.tracks
    first = {int(a): int(b) for a, b in zip(t["track_id"], t["first_frame"])} if len(t) else {}
    last = {int(a): int(b) for a, b in zip(t["track_id"], t["last_frame"])} if len(t) else {}
    rows = []
    for child, parents in sorted(result.linked.parents.items()):
        if len(parents) >= 2:
            rows.append({"frame": first.get(child), "kind": "merge", "parents": " ".join(map(str, parents)),
                         "children": str(child)})
    for parent, children in sorted(result.linked.children.items()):
        if len(children) >= 2:
            rows.append({"frame": last.get(parent, -1) + 1, "kind": "split", "parents": str(parent),
                         "children": " ".join(map(str, children))})
    return sorted(rows, key=lambda r: (r["frame"] or 0, r["kind"]))


def _counts_figure(path: Path, result: "TrackResult") -> None:
    k = result.kinetics
    fr = k.frames
    fig = _figure((6.4, 5.0))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x_col = "time_s" if k.interval_s else "frame"
    for lab in sorted(set(fr["label"].tolist())):
        sel = fr["label"] == lab
        ax1.plot(fr[x_col][sel], fr["count"][sel], label=lab, linewidth=1.4)
        ax2.plot(fr[x_col][sel], fr[f"diameter_mean_{k.length_unit}"][sel], label=lab, linewidth=1.4)
    ax1.set_ylabel("defects in the field")
    ax1.legend(frameon=False, fontsize=8)
    ax2.set_ylabel(f"mean diameter ({k.length_unit})")
    ax2.set_xlabel("time (s)" if k.interval_s else "frame")
    ax1.set_title("counts and mean size over time")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.93, hspace=0.08)
    fig.savefig(path)


def _size_figure(path: Path, result: "TrackResult", n: int = 40) -> None:
    k = result.kinetics
    t = k.tracks
    tf = k.track_frames
    fig = _figure((6.4, 4.0))
    ax = fig.subplots()
    if len(t):
        longest = np.argsort(-np.asarray(t["lifetime_frames"]), kind="stable")[:n]
        labels = sorted(set(t["label"].tolist()))
        colors = {lab: f"C{i}" for i, lab in enumerate(labels)}
        x_col = "time_s" if k.interval_s else "frame"
        seen = set()
        for j in longest:
            tid, lab = int(t["track_id"][j]), str(t["label"][j])
            sel = tf["track_id"] == tid
            ax.plot(tf[x_col][sel], tf[f"diameter_{k.length_unit}"][sel], color=colors[lab], linewidth=0.8, alpha=0.8,
                    label=lab if lab not in seen else None)
            seen.add(lab)
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("time (s)" if k.interval_s else "frame")
    ax.set_ylabel(f"equivalent diameter ({k.length_unit})")
    ax.set_title(f"size over time of the {min(n, len(t))} longest tracks")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.9)
    fig.savefig(path)


def _gray_u8(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=-1)
    if a.dtype == np.uint8:
        return a
    lo, hi = np.percentile(a, (0.5, 99.5))
    return np.clip((a.astype(np.float64) - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)


def _gallery(path: Path, result: "TrackResult", n_tracks: int = 6, n_times: int = 6) -> None:
    k = result.kinetics
    t = k.tracks
    d = result.linked.detections
    frames = result.frames
    fig = _figure((1.3 * n_times + 0.6, 1.3 * n_tracks + 0.4))
    if not len(t):
        fig.savefig(path)
        return
    longest = np.argsort(-np.asarray(t["lifetime_frames"]), kind="stable")[:n_tracks]
    axes = fig.subplots(len(longest), n_times, squeeze=False)
    for row, j in enumerate(longest):
        tid = int(t["track_id"][j])
        rows = np.flatnonzero(result.linked.track_id == tid)
        rows = rows[np.argsort(d.frame[rows])]
        pick = rows[np.linspace(0, len(rows) - 1, n_times).round().astype(int)]
        half = int(max(12, 2.5 * math.sqrt(float(d.area_px[rows].max()) / math.pi)))
        for col, i in enumerate(pick):
            ax = axes[row][col]
            img = _gray_u8(frames[int(d.frame[i])])
            cx, cy = int(d.x[i]), int(d.y[i])
            crop = img[max(cy - half, 0):cy + half, max(cx - half, 0):cx + half]
            ax.imshow(crop, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"#{tid} f{int(d.frame[i])}", fontsize=7)
    fig.suptitle("the longest tracks over their lives", fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92, wspace=0.05, hspace=0.3)
    fig.savefig(path)


def write_overlay_gif(path: Path, result: "TrackResult", *, max_frames: int = 100, max_side: int = 512) -> int:
    """An animated GIF of (at most ``max_frames``, evenly spaced) frames with each track's outline and id."""
    from PIL import Image, ImageDraw

    d = result.linked.detections
    frames = result.frames
    T = d.n_frames
    picks = np.unique(np.linspace(0, T - 1, min(max_frames, T)).round().astype(int))
    scale = min(1.0, max_side / max(d.size_hw))
    order = np.argsort(d.frame, kind="stable")
    starts = np.searchsorted(d.frame[order], np.arange(T + 1))
    r = np.sqrt(d.area_px / math.pi)
    images = []
    for f in picks:
        im = Image.fromarray(_gray_u8(frames[int(f)])).convert("RGB")
        if scale < 1:
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
        draw = ImageDraw.Draw(im)
        for i in order[starts[f]:starts[f + 1]]:
            tid = int(result.linked.track_id[i])
            c = track_color(tid)
            x, y, rr = d.x[i] * scale, d.y[i] * scale, max(r[i] * scale, 2.0)
            draw.ellipse([x - rr, y - rr, x + rr, y + rr], outline=c, width=1)
            draw.text((x + rr + 1, y - rr - 1), str(tid), fill=c)
        draw.text((4, 4), f"frame {int(f)}", fill=(255, 255, 0))
        images.append(im.convert("P", palette=Image.Palette.ADAPTIVE, colors=128))
    if images:
        images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0, optimize=False)
    return len(images)


def write_track_output(result: "TrackResult", out: str | Path, *, overwrite: bool = False,
                       inputs: Sequence[str | Path] = ()) -> Path:
    """Write the whole output folder of :func:`defectlab.tracking.run.track` (atomically)."""
    from ..measurement.report import json_ready
    from .cvat_video import write_cvat_video
    from .run import mot_lines

    out = Path(out)
    d = result.linked.detections
    srcs = [s for s in [d.source, *inputs] if s]
    with output_dir(out, overwrite=overwrite, inputs=[s for s in srcs if Path(s).exists()]) as tmp:
        k = result.kinetics
        written = _write_tables(tmp, {"tracks": k.tracks, "track_frames": k.track_frames, "frames": k.frames})
        events = _events(result)
        with open(tmp / "events.csv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=["frame", "kind", "parents", "children"])
            wr.writeheader()
            wr.writerows(events)
        (tmp / "prelabels").mkdir()
        write_cvat_video(prelabel_tracks(result), tmp / "prelabels" / "annotations.xml", labels=_labels(result),
                         size_hw=d.size_hw, n_frames=d.n_frames, name="defectlab track pre-labels")
        (tmp / "mot.txt").write_text("\n".join(mot_lines(result)) + "\n", encoding="utf-8")
        (tmp / "figures").mkdir()
        _counts_figure(tmp / "figures" / "counts_vs_time.png", result)
        _size_figure(tmp / "figures" / "size_vs_time.png", result)
        figs = ["figures/counts_vs_time.png", "figures/size_vs_time.png"]
        gif = None
        if result.frames is not None and result.track_options.overlay:
            _gallery(tmp / "figures" / "longest_tracks.png", result)
            figs.append("figures/longest_tracks.png")
            write_overlay_gif(tmp / "overlay.gif", result, max_frames=result.track_options.overlay_frames)
            gif = "overlay.gif"
        summary = result.summary()
        (tmp / "summary.json").write_text(json.dumps(json_ready(summary), indent=2) + "\n", encoding="utf-8")
        parts = [f"<p>{html.escape(str(d.source))}: {d.n_frames} frames of {d.size_hw[1]}×{d.size_hw[0]} px, "
                 f"{summary['tracks']} tracks, {summary['merges']} merges, {summary['splits']} splits; "
                 f"fates {html.escape(json.dumps(summary['fates']))}.</p>"]
        if result.scores:
            keys = ["MOTA", "IDF1", "HOTA", "IDSW", "n_true_tracks", "n_pred_tracks", "lifetime_ks"]
            parts += ["<h2>Against the true tracks</h2>", _html_table([{k_: result.scores.get(k_) for k_ in keys}])]
        if gif:
            parts.append(f"<h2>Overlay</h2><p><img src='{gif}' alt='overlay with track ids' style='max-width:100%'></p>")
        parts.append("<h2>Figures</h2><div class='figs'>" + "".join(f"<img src='{f}' alt='{f}'>" for f in figs) + "</div>")
        rows = k.tracks.rows()
        rows.sort(key=lambda r: -r.get("lifetime_frames", 0))
        parts += ["<h2>Longest tracks</h2>", _html_table(rows[:30]),
                  "<h2>Merges and splits</h2>", _html_table(events),
                  "<h2>Settings</h2>", _settings_html({**summary["link_options"], **summary["track_options"],
                                                       "pixel size nm": k.pixel_size_nm, "frame interval s": k.interval_s}),
                  _notes_html(result.notes),
                  "<p>Files: " + ", ".join(f"<a href='{w}'>{w}</a>" for w in
                                          [*written, "events.csv", "prelabels/annotations.xml", "mot.txt", "summary.json"])
                  + "</p>"]
        (tmp / "index.html").write_text(_page("defectlab track", parts), encoding="utf-8")
    return out
