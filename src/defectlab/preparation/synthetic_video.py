"""Synthetic in-situ TEM videos with exact labels and true track ids, as a CVAT video export.

What happens in a video (every event is known, so tracking can be scored):

* **drift**: the whole specimen moves by ``drift_px`` per frame (x, y) under the beam; the
  field of view is a window onto a larger specimen, so defects leave the field on one side
  and come in on the other (fate ``left`` / a first frame > 0);
* **jitter**: each defect's position shakes by a Gaussian of ``jitter_px`` (standard
  deviation) around its place, independently per frame;
* **growth**: each cavity and loop grows with an equivalent radius linear in time, at a rate
  drawn from ``growth_px_per_frame``; precipitates keep their size;
* **appearance** (nucleation) of ``appear_fraction`` of the defects at a random frame and
  **disappearance** of ``vanish_fraction`` at a random frame (fate ``vanished``);
* **coalescence**: ``n_merges`` pairs of cavities, the second one drifting onto the first over
  ``approach_frames`` frames; on contact both end (fate ``merged``) and one new cavity of their
  summed area appears at their area-weighted center (its ``parents`` are the two); ``n_splits``
  cavities split into two touching halves of half the area that move apart.

Defect shapes, sizes, their places and the background (uneven illumination, amorphous-film
texture) come from the single-image generator, :func:`defectlab.preparation.synthetic.synthetic_item`:
it is called once for the specimen's defects (noise-free, at their largest size, so that no two
ever touch unless planned) and once for the background. Frames are painted with the same
contrast model (cavities: bright interior, dark Fresnel rim just outside the label; loops:
dark ring inside the label; precipitates / black dots: dark filled), anti-aliased by
rasterizing each shape at 4× with :func:`defectlab.raster.rasterize`, then blurred, shot and
read noise added (``noise``, ``dose``, ``blur_px``; ``noise=0, dose=inf, blur_px=0`` for a
noise-free video), and mapped to uint8 with :data:`~defectlab.preparation.synthetic.INTENSITY_RANGE`.

Labels are exact: coordinates rounded to 0.01 px before drawing (CVAT's precision), so the
CVAT video export reads back unchanged. A defect is on a frame while it lies wholly inside the
field (its first frame partly outside is where it "left").

Output of :func:`make_synthetic_video` (``out/``)::

    images/frame_000000.png …   the frames (CVAT's names for a video task's frames)
    annotations.xml             CVAT for video 1.1: one <track> per defect, the truth
    truth.csv                   per track: id, label, first/last frame, fate, parents,
                                true growth rate (equivalent diameter, px/frame and nm/s)
    video.json                  frame interval (s), pixel size (nm), size, seed, config

Examples
--------
>>> import tempfile, pathlib
>>> cfg = SyntheticVideoConfig(size_hw=(96, 96), n_frames=6, n_defects=4, n_merges=0)
>>> video = make_synthetic_video(pathlib.Path(tempfile.mkdtemp()) / "video", cfg, seed=1)
>>> len(video.frames), video.frames[0].shape, video.interval_s, len(video.tracks) >= 3
(6, (96, 96), 0.5, True)
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..model import Ellipse, Label, Polygon, Shape
from ..tracking.cvat_video import VideoTrack, write_cvat_video
from .synthetic import INTENSITY_RANGE, SYNTHETIC_LABELS, SyntheticConfig, synthetic_item

__all__ = ["SyntheticVideoConfig", "SyntheticVideo", "TrueTrack", "VIDEO_LABELS", "make_synthetic_video",
           "render_video"]

#: The labels of synthetic videos (no dislocation lines: they are not tracked as objects).
VIDEO_LABELS: tuple[Label, ...] = tuple(lab for lab in SYNTHETIC_LABELS if lab.name != "dislocation line")

_CAVITY, _LOOP, _PRECIPITATE = (lab.name for lab in VIDEO_LABELS)
_S = 4  # sub-samples per pixel along each axis when painting
_DECIMALS = 2
_MIN_RADIUS_PX = 1.5


@dataclass(frozen=True, slots=True)
class SyntheticVideoConfig:
    """What a synthetic in-situ video shows.

    Parameters
    ----------
    size_hw : (int, int)
        Frame height and width, px.
    n_frames : int
        Frames of the video.
    n_defects : int
        About how many defects are in the field at once.
    fractions : (float, float, float)
        Shares of cavities, loops and precipitates (black dots).
    cavity_radius_px, loop_radius_px, precipitate_radius_px : (float, float)
        Radius range at the end of the video (largest size), px.
    frame_interval_s : float
        Time between frames, s.
    pixel_size_nm : float
        Pixel width, nm (written to ``video.json``; frames are PNG).
    drift_px : (float, float)
        Specimen drift per frame along x and y, px.
    jitter_px : float
        Standard deviation of each defect's shake about its place, px per frame.
    growth_px_per_frame : (float, float)
        Range of the rate of change of the equivalent radius of cavities and loops, px/frame.
    appear_fraction, vanish_fraction : float
        Shares of defects that appear after the first frame / vanish before the last.
    n_merges, n_splits : int
        Coalescences of two cavities into one; splits of one cavity into two.
    approach_frames : int
        Frames over which the two cavities of a merge come into contact (and the halves of a
        split move apart).
    noise, dose, blur_px : float
        Imaging as in :class:`~defectlab.preparation.synthetic.SyntheticConfig`;
        ``noise=0, dose=math.inf, blur_px=0`` paints noise-free frames.
    """

    size_hw: tuple[int, int] = (512, 512)
    n_frames: int = 200
    n_defects: int = 60
    fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)
    cavity_radius_px: tuple[float, float] = (4.0, 11.0)
    loop_radius_px: tuple[float, float] = (6.0, 14.0)
    precipitate_radius_px: tuple[float, float] = (2.5, 6.0)
    frame_interval_s: float = 0.5
    pixel_size_nm: float = 0.5
    drift_px: tuple[float, float] = (0.15, 0.1)
    jitter_px: float = 0.2
    growth_px_per_frame: tuple[float, float] = (0.005, 0.03)
    appear_fraction: float = 0.1
    vanish_fraction: float = 0.1
    n_merges: int = 3
    n_splits: int = 0
    approach_frames: int = 12
    noise: float = 0.05
    dose: float = 200.0
    blur_px: float = 0.8

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.size_hw)
        if h < 32 or w < 32:
            raise ValueError(f"synthetic video: expected size_hw of at least (32, 32), got {self.size_hw!r}")
        object.__setattr__(self, "size_hw", (h, w))
        for name in ("n_frames", "n_defects", "n_merges", "n_splits", "approach_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"synthetic video: expected a count >= 0 for {name}, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.n_frames < 1:
            raise ValueError(f"synthetic video: expected n_frames >= 1, got {self.n_frames}")
        fr = tuple(float(v) for v in self.fractions)
        if len(fr) != 3 or min(fr) < 0 or sum(fr) <= 0:
            raise ValueError(f"synthetic video: expected 3 fractions >= 0 (cavities, loops, precipitates), got {self.fractions!r}")
        object.__setattr__(self, "fractions", tuple(v / sum(fr) for v in fr))
        for name in ("frame_interval_s", "pixel_size_nm"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"synthetic video: expected a positive {name}, got {getattr(self, name)!r}")
        for name in ("appear_fraction", "vanish_fraction"):
            v = float(getattr(self, name))
            if not 0 <= v <= 0.5:
                raise ValueError(f"synthetic video: expected {name} in [0, 0.5], got {v!r}")
        lo, hi = (float(v) for v in self.growth_px_per_frame)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"synthetic video: expected growth_px_per_frame as (min, max), got {self.growth_px_per_frame!r}")
        if float(self.jitter_px) < 0:
            raise ValueError(f"synthetic video: expected jitter_px >= 0, got {self.jitter_px!r}")


@dataclass
class TrueTrack(VideoTrack):
    """One defect's true life: its shape on each frame it is wholly in the field, and what became of it."""

    fate: str = "present"  # present | vanished | merged | left | split
    parents: tuple[int, ...] = ()
    children: tuple[int, ...] = ()
    growth_px_per_frame: float = 0.0  # d(equivalent radius)/d(frame)


@dataclass
class SyntheticVideo:
    """A synthetic video: its frames (in memory or on disk), the truth, and the imaging."""

    tracks: list[TrueTrack]
    frames: list[np.ndarray]
    size_hw: tuple[int, int]
    interval_s: float
    pixel_size_nm: float
    out: Path | None = None

    def frame_shapes(self, frame: int) -> list[tuple[int, Shape]]:
        """(track id, shape) of every defect on ``frame``."""
        return [(t.track_id, t.shapes[frame]) for t in self.tracks if frame in t.shapes]


# ---------------------------------------------------------------------------------------------
# The specimen: defects in specimen coordinates, with their lives


@dataclass
class _Defect:
    label: str
    proto: Shape  # at its largest (final) size, centered at its place in specimen coordinates
    cx: float
    cy: float
    born: int
    dies: int  # first frame it is gone (exclusive end)
    growth: float  # d(equivalent radius)/d(frame), px
    r_final: float  # equivalent radius at frame n_frames - 1 (the proto's)
    style: tuple[float, float, float]  # contrast, width_px, interior
    fate: str = "present"
    parents: tuple[int, ...] = ()
    children: tuple[int, ...] = ()
    path: dict[int, tuple[float, float]] = field(default_factory=dict)  # frame -> extra offset (merges)


def _r(v: float) -> float:
    return round(float(v), _DECIMALS)


def _eq_radius(shape: Shape) -> float:
    return math.sqrt(shape.area() / math.pi)


def _scaled(proto: Shape, scale: float, cx: float, cy: float) -> Shape:
    """``proto`` scaled by ``scale`` about its center and moved to ``(cx, cy)``, rounded to 0.01 px."""
    if isinstance(proto, Ellipse):
        return proto.replace(cx=_r(cx), cy=_r(cy), rx=_r(proto.rx * scale), ry=_r(proto.ry * scale))
    assert isinstance(proto, Polygon)  # only ellipses and polygons are generated
    pts = proto.points_xy
    c = pts.mean(axis=0)
    return proto.replace(points_xy=np.round((pts - c) * scale + (cx, cy), _DECIMALS))


def _style(rng: np.random.Generator, label: str) -> tuple[float, float, float]:
    """(contrast, width_px, interior) as the single-image generator's contrast model draws them."""
    if label == _CAVITY:
        return -rng.uniform(0.30, 0.45), rng.uniform(1.5, 2.0), rng.uniform(0.08, 0.15)
    if label == _LOOP:
        return -rng.uniform(0.35, 0.50), rng.uniform(2.0, 3.0), 0.0
    return -rng.uniform(0.30, 0.45), 0.0, 0.0


def _specimen(rng: np.random.Generator, cfg: SyntheticVideoConfig) -> tuple[list[_Defect], tuple[float, float]]:
    """The defects of a specimen large enough for the field's drift, and the field's origin at frame 0."""
    h, w = cfg.size_hw
    T = cfg.n_frames
    dx, dy = (float(v) * max(T - 1, 0) for v in cfg.drift_px)
    pad = 4.0 * cfg.jitter_px + 2.0
    H, W = int(math.ceil(h + abs(dy) + 2 * pad)), int(math.ceil(w + abs(dx) + 2 * pad))
    origin = (pad + max(-dx, 0.0), pad + max(-dy, 0.0))  # the field's top-left at frame 0, in specimen px
    scale = (H * W) / (h * w)
    n = max(int(round(cfg.n_defects * scale)), 0) + 3 * (cfg.n_merges + cfg.n_splits)
    n_cav, n_loop = int(round(n * cfg.fractions[0])), int(round(n * cfg.fractions[1]))
    n_prec = max(n - n_cav - n_loop, 0)
    # The single-image generator places the defects at their largest size, apart from each other.
    margin = 2.0 * 4 * cfg.jitter_px + 1.0  # room for both neighbours' shake
    grow = lambda rng_, lo_hi: (lo_hi[0] + margin / 2, lo_hi[1] + margin / 2)  # noqa: E731
    _, item = synthetic_item(rng, SyntheticConfig(
        size_hw=(H, W), n_cavities=n_cav, n_loops=n_loop, n_precipitates=n_prec, n_lines=0,
        cavity_radius_px=grow(rng, cfg.cavity_radius_px), loop_radius_px=grow(rng, cfg.loop_radius_px),
        precipitate_radius_px=grow(rng, cfg.precipitate_radius_px), noise=0.0, dose=math.inf, blur_px=0.0))
    defects: list[_Defect] = []
    lo, hi = cfg.growth_px_per_frame
    for shape in item.shapes:
        # shrink back by the margin: the generator's gap then holds with the shake on top
        r_eq = _eq_radius(shape)
        cx, cy = _center(shape)
        proto = _scaled(shape, max(r_eq - margin / 2, _MIN_RADIUS_PX) / r_eq, cx, cy)
        label = shape.label
        growth = float(rng.uniform(lo, hi)) if label in (_CAVITY, _LOOP) else 0.0
        r_final = _eq_radius(proto)
        growth = min(growth, max(r_final - _MIN_RADIUS_PX - 1.0, 0.0) / max(T - 1, 1))
        born = int(rng.integers(1, max(T - 5, 2))) if rng.random() < cfg.appear_fraction and T > 8 else 0
        dies = T
        if rng.random() < cfg.vanish_fraction and T > 8:
            dies = int(rng.integers(max(born + 5, T // 4), T))
        defects.append(_Defect(label, proto, cx, cy, born, dies, growth, r_final, _style(rng, label),
                               fate="vanished" if dies < T else "present"))
    _coalescences(rng, cfg, defects, origin)
    return defects, origin


def _center(shape: Shape) -> tuple[float, float]:
    if isinstance(shape, Ellipse):
        return shape.cx, shape.cy
    pts = shape.points_xy  # type: ignore[attr-defined]
    return float(pts[:, 0].mean()), float(pts[:, 1].mean())


def _in_view(d: _Defect, cfg: SyntheticVideoConfig, origin: tuple[float, float]) -> bool:
    """True when the defect stays well inside the field over the whole video."""
    h, w = cfg.size_hw
    reach = 3 * d.r_final + 6
    for f in (0, cfg.n_frames - 1):
        x = d.cx - (origin[0] + cfg.drift_px[0] * f)
        y = d.cy - (origin[1] + cfg.drift_px[1] * f)
        if not (reach <= x <= w - reach and reach <= y <= h - reach):
            return False
    return True


def _coalescences(rng: np.random.Generator, cfg: SyntheticVideoConfig, defects: list[_Defect],
                  origin: tuple[float, float]) -> None:
    """Turn single cavities into splits and pairs of cavities into merges, in place."""
    T = cfg.n_frames
    A = cfg.approach_frames
    if T < A + 10:
        return
    cavities = [i for i, d in enumerate(defects)
                if d.label == _CAVITY and d.born == 0 and d.dies == T and _in_view(d, cfg, origin)]
    rng.shuffle(cavities)
    used: set[int] = set()
    events = ["split"] * cfg.n_splits + ["merge"] * cfg.n_merges
    for kind in events:
        pair = None
        for i in cavities:
            if i in used:
                continue
            # the nearest other cavity within reach, to merge with (or to make room for a split)
            others = [j for j in cavities if j != i and j not in used]
            if not others:
                break
            d = [math.hypot(defects[j].cx - defects[i].cx, defects[j].cy - defects[i].cy) for j in others]
            k = int(np.argmin(d))
            if d[k] < 4 * (defects[i].r_final + defects[others[k]].r_final):
                pair = (i, others[k])
                break
        if pair is None:
            break
        i, j = pair
        used.update(pair)
        a, b = defects[i], defects[j]
        t = int(rng.integers(A + 2, T - 8))  # the frame of the event
        for d_ in (a, b):  # no growth for the pair: sizes stay simple around the event
            d_.growth = 0.0
        ra, rb = a.r_final, b.r_final
        if kind == "merge":
            # b slides onto a: its center moves along the line until the two touch at frame t
            dist = math.hypot(b.cx - a.cx, b.cy - a.cy)
            ux, uy = (b.cx - a.cx) / dist, (b.cy - a.cy) / dist
            touch = ra + rb + 0.5
            for f in range(t - A, t):
                s = (f - (t - A) + 1) / A  # 1/A … 1
                along = dist + (touch - dist) * s
                b.path[f] = (a.cx + ux * along - b.cx, a.cy + uy * along - b.cy)
            for f in range(t, T):
                b.path[f] = (a.cx + ux * touch - b.cx, a.cy + uy * touch - b.cy)
            area_a, area_b = math.pi * ra * ra, math.pi * rb * rb
            bx, by = a.cx + ux * touch, a.cy + uy * touch
            cx = (a.cx * area_a + bx * area_b) / (area_a + area_b)
            cy = (a.cy * area_a + by * area_b) / (area_a + area_b)
            rc = math.sqrt(ra * ra + rb * rb)
            proto = Ellipse(label=_CAVITY, cx=_r(cx), cy=_r(cy), rx=_r(rc), ry=_r(rc), source="synthetic")
            a.dies = b.dies = t
            a.fate = b.fate = "merged"
            c = _Defect(_CAVITY, proto, cx, cy, t, T, 0.0, rc, a.style, parents=(i, j))
            defects.append(c)
            a.children = b.children = (len(defects) - 1,)
        else:
            # a splits at frame t into two halves (area / 2 each); b is removed to make room: one half
            # stays at a's far side, the other moves toward where b was
            b.born, b.dies, b.fate = T, T, "unused"
            rh = ra / math.sqrt(2.0)
            dist = math.hypot(b.cx - a.cx, b.cy - a.cy)
            ux, uy = (b.cx - a.cx) / dist, (b.cy - a.cy) / dist
            kids = []
            for moving in (False, True):
                proto = Ellipse(label=_CAVITY, cx=_r(a.cx), cy=_r(a.cy), rx=_r(rh), ry=_r(rh), source="synthetic")
                kid = _Defect(_CAVITY, proto, a.cx, a.cy, t, T, 0.0, rh, a.style, parents=(i,))
                for f in range(t, T):
                    along = -(ra - rh)
                    if moving:
                        along += 2 * rh + 1.0 + 3.0 * min((f - t + 1) / A, 1.0)
                    kid.path[f] = (ux * along, uy * along)
                defects.append(kid)
                kids.append(len(defects) - 1)
            a.dies, a.fate, a.children = t, "split", tuple(kids)


# ---------------------------------------------------------------------------------------------
# Frames: the defects' shapes in field coordinates, then the pixels


def _inside(shape: Shape, size_hw: tuple[int, int]) -> bool:
    x1, y1, x2, y2 = shape.bbox_xyxy()
    h, w = size_hw
    return x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h


def _truth(rng: np.random.Generator, cfg: SyntheticVideoConfig, defects: list[_Defect],
           origin: tuple[float, float]) -> tuple[list[TrueTrack], dict[int, tuple[float, float, float]]]:
    """The true tracks (field coordinates), and each defect's style per track id for painting."""
    T = cfg.n_frames
    ids = {}
    tracks: list[TrueTrack] = []
    for k, d in enumerate(defects):
        if d.born >= d.dies:
            continue
        tid = len(tracks) + 1
        ids[k] = tid
        tracks.append(TrueTrack(tid, d.label, {}, growth_px_per_frame=d.growth))
    jitter = rng.normal(0.0, cfg.jitter_px, (len(defects), T, 2)) if cfg.jitter_px > 0 else np.zeros((len(defects), T, 2))
    ox, oy = origin
    ddx, ddy = cfg.drift_px
    for k, d in enumerate(defects):
        if k not in ids:
            continue
        track = tracks[ids[k] - 1]
        left = False
        for f in range(d.born, d.dies):
            r = d.r_final - d.growth * (T - 1 - f)
            px, py = d.path.get(f, (0.0, 0.0))
            cx = d.cx + px + jitter[k, f, 0] - (ox + ddx * f)
            cy = d.cy + py + jitter[k, f, 1] - (oy + ddy * f)
            shape = _scaled(d.proto, r / d.r_final, cx, cy)
            if _inside(shape, cfg.size_hw):
                if left:  # it came back into the field: a new object for the labels
                    break
                track.shapes[f] = shape
            elif track.shapes:
                left = True
        if not track.shapes:
            continue
        if left and track.last < d.dies - 1:
            track.fate = "left"
        elif d.dies < T:
            track.fate = d.fate
        else:
            track.fate = "present"
        track.parents = tuple(ids[p] for p in d.parents if p in ids)
        track.children = tuple(ids[c] for c in d.children if c in ids) if track.fate in ("merged", "split") else ()
    # a parent that left the field before the event is no parent on the frames
    by_id = {t.track_id: t for t in tracks}
    for t in tracks:
        t.parents = tuple(p for p in t.parents if by_id[p].shapes and t.track_id in by_id[p].children)
    kept = [t for t in tracks if t.shapes]
    # renumber 1..N in order of first appearance, keeping parents/children consistent
    kept.sort(key=lambda t: (t.first, t.track_id))
    new = {t.track_id: i for i, t in enumerate(kept, start=1)}
    style_of = {ids[k]: d.style for k, d in enumerate(defects) if k in ids}
    out = []
    for t in kept:
        out.append(TrueTrack(new[t.track_id], t.label, t.shapes, fate=t.fate,
                             parents=tuple(new[p] for p in t.parents if p in new),
                             children=tuple(new[c] for c in t.children if c in new),
                             growth_px_per_frame=t.growth_px_per_frame))
    return out, {new[tid]: s for tid, s in style_of.items() if tid in new}


def _coverage(shape: Shape, size_hw: tuple[int, int]) -> tuple[int, int, np.ndarray] | None:
    """(x0, y0, α) with α (h, w) float64 the fraction of each pixel inside ``shape`` (4×4 samples)."""
    from ..raster import rasterize

    if isinstance(shape, Ellipse):
        big: Shape = shape.replace(cx=shape.cx * _S, cy=shape.cy * _S, rx=shape.rx * _S, ry=shape.ry * _S)
    else:
        big = shape.replace(points_xy=shape.points_xy * _S)  # type: ignore[attr-defined]
    crop = rasterize(big, (size_hw[0] * _S, size_hw[1] * _S))
    if crop.area == 0:
        return None
    bm = crop.bitmap
    # align the crop to whole pixels
    x0, y0 = crop.x0 // _S, crop.y0 // _S
    px0, py0 = crop.x0 - x0 * _S, crop.y0 - y0 * _S
    hh = -(-(bm.shape[0] + py0) // _S) * _S
    ww = -(-(bm.shape[1] + px0) // _S) * _S
    pad = np.zeros((hh, ww), dtype=np.float64)
    pad[py0:py0 + bm.shape[0], px0:px0 + bm.shape[1]] = bm
    alpha = pad.reshape(hh // _S, _S, ww // _S, _S).mean(axis=(1, 3))
    return x0, y0, alpha


def _paint(contrast: np.ndarray, shape: Shape, style: tuple[float, float, float]) -> None:
    """Paint one defect over ``contrast`` (H, W) float64: ``C ← C·(1 − α) + value``."""
    size_hw = contrast.shape
    c, width, interior = style
    layers: list[tuple[Shape, float]] = []  # (shape, value inside it), outermost first
    if isinstance(shape, Ellipse) and shape.label == _CAVITY:
        layers = [(shape.replace(rx=shape.rx + width, ry=shape.ry + width), c), (shape, interior)]
    elif isinstance(shape, Ellipse) and shape.label == _LOOP:
        inner = max(min(shape.rx, shape.ry) - width, 0.0)
        scale = inner / max(min(shape.rx, shape.ry), 1e-9)
        layers = [(shape, c), (shape.replace(rx=shape.rx * scale, ry=shape.ry * scale), None)]  # type: ignore[list-item]
    else:
        layers = [(shape, c)]
    outer = _coverage(layers[0][0], size_hw)
    if outer is None:
        return
    x0, y0, alpha = outer
    value = alpha * layers[0][1]
    for inner_shape, v in layers[1:]:
        cov = _coverage(inner_shape, size_hw) if min(getattr(inner_shape, "rx", 1), getattr(inner_shape, "ry", 1)) > 0 else None
        if cov is None:
            continue
        ix0, iy0, ia = cov
        sub = (slice(iy0 - y0, iy0 - y0 + ia.shape[0]), slice(ix0 - x0, ix0 - x0 + ia.shape[1]))
        if v is None:  # a hole (the loop's interior): background shows
            alpha[sub] -= ia
            value[sub] -= ia * layers[0][1]
        else:
            value[sub] += ia * (v - layers[0][1])
    h, w = alpha.shape
    region = contrast[y0:y0 + h, x0:x0 + w]
    a = alpha[:region.shape[0], :region.shape[1]]
    region *= 1.0 - a
    region += value[:region.shape[0], :region.shape[1]]


def render_video(
    tracks: Sequence[TrueTrack],
    styles: dict[int, tuple[float, float, float]],
    cfg: SyntheticVideoConfig,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """The frames (T × (H, W) uint8) showing ``tracks``, on a drifting background."""
    from scipy import ndimage

    h, w = cfg.size_hw
    T = cfg.n_frames
    dx, dy = (float(v) * max(T - 1, 0) for v in cfg.drift_px)
    pad = 4
    bh, bw = int(math.ceil(h + abs(dy))) + 2 * pad, int(math.ceil(w + abs(dx))) + 2 * pad
    bg_u8, _ = synthetic_item(rng, SyntheticConfig(size_hw=(bh, bw), n_cavities=0, n_loops=0, n_precipitates=0,
                                                   n_lines=0, noise=0.0, dose=math.inf, blur_px=0.0))
    lo, hi = INTENSITY_RANGE
    background = lo + bg_u8.astype(np.float64) / 255.0 * (hi - lo)
    ox0, oy0 = pad + max(-dx, 0.0), pad + max(-dy, 0.0)
    by_frame: dict[int, list[tuple[int, Shape]]] = {}
    for t in tracks:
        for f, s in t.shapes.items():
            by_frame.setdefault(f, []).append((t.track_id, s))
    frames = []
    for f in range(T):
        ox, oy = ox0 + cfg.drift_px[0] * f, oy0 + cfg.drift_px[1] * f
        ix, iy = int(math.floor(ox)), int(math.floor(oy))
        window = background[iy:iy + h + 1, ix:ix + w + 1]
        shifted = ndimage.shift(window, (-(oy - iy), -(ox - ix)), order=1, mode="nearest")[:h, :w]
        contrast = np.zeros((h, w), dtype=np.float64)
        for tid, shape in by_frame.get(f, []):
            _paint(contrast, shape, styles[tid])
        intensity = shifted * (1.0 + contrast)
        if cfg.blur_px > 0:
            intensity = ndimage.gaussian_filter(intensity, cfg.blur_px, mode="nearest")
        if math.isfinite(cfg.dose):
            intensity = rng.poisson(np.maximum(intensity, 0.0) * cfg.dose) / cfg.dose
        if cfg.noise > 0:
            intensity = intensity + rng.normal(0.0, cfg.noise * (hi - lo), (h, w))
        frames.append(np.clip(np.rint((intensity - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8))
    return frames


def make_synthetic_video(
    out: str | Path | None,
    config: SyntheticVideoConfig = SyntheticVideoConfig(),
    *,
    seed: int = 0,
    overwrite: bool = False,
    frames: bool = True,
) -> SyntheticVideo:
    """Make a synthetic in-situ video and, with ``out``, write it as a CVAT video export.

    Parameters
    ----------
    out : str, Path or None
        Folder to write (atomically): ``images/frame_000000.png`` …, ``annotations.xml``
        (CVAT for video 1.1, one track per defect), ``truth.csv``, ``video.json``. None keeps
        everything in memory.
    config : SyntheticVideoConfig
        What the video shows.
    seed : int
        The same seed gives the same video.
    overwrite : bool
        Replace an existing ``out``.
    frames : bool
        Paint the frames (False: only the truth, e.g. for linking benchmarks).

    Returns
    -------
    SyntheticVideo
        ``tracks`` (the truth: per track its shape on each frame, fate, parents, children,
        true growth rate), ``frames`` ((H, W) uint8 each; empty with ``frames=False``).
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    defects, origin = _specimen(rng, config)
    tracks, styles = _truth(rng, config, defects, origin)
    images = render_video(tracks, styles, config, rng) if frames else []
    video = SyntheticVideo(tracks, images, config.size_hw, config.frame_interval_s, config.pixel_size_nm)
    if out is not None:
        _write(video, Path(out), config, seed, overwrite)
        video.out = Path(out)
    return video


def _write(video: SyntheticVideo, out: Path, cfg: SyntheticVideoConfig, seed: int, overwrite: bool) -> None:
    from .._output import output_dir
    from ..imaging.io import write_image
    with output_dir(out, overwrite=overwrite) as tmp:
        if video.frames:
            (tmp / "images").mkdir()
            for f, image in enumerate(video.frames):
                write_image(tmp / "images" / f"frame_{f:06d}.png", image)
        write_cvat_video(video.tracks, tmp / "annotations.xml",
                         labels=VIDEO_LABELS, size_hw=cfg.size_hw, n_frames=cfg.n_frames, name="synthetic video")
        rate = cfg.pixel_size_nm / cfg.frame_interval_s
        with open(tmp / "truth.csv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(["track_id", "label", "first_frame", "last_frame", "fate", "parents", "children",
                         "growth_px_per_frame", "growth_nm_per_s"])
            for t in video.tracks:
                # the equivalent *diameter* grows at twice the radius rate
                wr.writerow([t.track_id, t.label, t.first, t.last, t.fate, " ".join(map(str, t.parents)),
                             " ".join(map(str, t.children)), repr(2 * t.growth_px_per_frame),
                             repr(2 * t.growth_px_per_frame * rate)])
        info: dict[str, Any] = {"frame_interval_s": cfg.frame_interval_s, "pixel_size_nm": cfg.pixel_size_nm,
                                "size_hw": list(cfg.size_hw), "n_frames": cfg.n_frames, "seed": seed,
                                "config": {k: (list(v) if isinstance(v, tuple) else v if not isinstance(v, float) or math.isfinite(v)
                                           else str(v)) for k, v in asdict(cfg).items()}}
        (tmp / "video.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
