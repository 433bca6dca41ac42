"""Synthetic TEM-like micrographs of materials defects, with exact labels.

Every defect is first chosen as an exact shape (sub-pixel float coordinates), then drawn
from that shape, so the labels are the ground truth of the pixels, not an estimate.

The contrast model
------------------
A physics-inspired caricature of bright-field TEM (not an image simulation). The image
is a transmitted intensity ``I`` whose background is about 1.0:

``I = illumination · (1 + texture) · (1 + C)``

* **illumination**: a condenser beam not quite centered (a smooth quadratic fall-off
  around a random point) plus a faint linear gradient — a few percent across the field.
* **texture**: faint amorphous-film mottling, white noise low-pass filtered (σ 1.2 px),
  standard deviation 2 %.
* **C**: the defects' contrast, painted in z order (``C ← C·(1 − α) + α·c``):

  - *cavity* (void/bubble, imaged under focus): the interior transmits more (less
    material along the beam), ``c`` = +8…15 %, and the Fresnel fringe of under-focus
    imaging gives a dark rim (−30…45 %), 1.5–2 px wide, **just outside** the labeled
    ellipse. The label is the inner edge of the dark rim (label ``edge="inner"``).
  - *loop* (dislocation loop, seen inclined as an ellipse): strain contrast gives a dark
    ring (−35…50 %), 2–3 px thick, whose **outer** edge is the labeled ellipse
    (label ``edge="outer"``); the interior is background.
  - *precipitate*: a dark blob (−30…45 %) that fills the labeled polygon exactly.
  - *dislocation line*: a dark line (−35…50 %), 2 px wide, centered on the labeled polyline.

  Each pixel's coverage ``α`` is the fraction of its 4 × 4 sub-sample points inside the
  analytic shape, so edges are anti-aliased and consistent with the sub-pixel labels.

The image is then blurred by the microscope's point spread (Gaussian, ``blur_px``),
shot noise is drawn (Poisson, ``dose`` electrons per pixel at ``I = 1``), read noise is
added (Gaussian, ``noise`` × the dynamic range), and ``I`` is mapped to uint8 with a fixed
mapping — :data:`INTENSITY_RANGE` ``(0.1, 1.7)`` to 0…255, clipped — so that a gray value
means the same intensity in every image (no per-image min-max stretch).

Defect coordinates are rounded to 0.01 px *before* drawing (the precision of CVAT's own exports),
so the labels survive a CVAT export unchanged and still match the pixels.

Examples
--------
>>> import numpy as np
>>> image, item = synthetic_item(np.random.default_rng(0), SyntheticConfig(size_hw=(128, 128),
...     n_cavities=3, n_loops=1, n_precipitates=1, n_lines=1))
>>> image.shape, image.dtype, item.size_hw
((128, 128), dtype('uint8'), (128, 128))
>>> sorted({s.label for s in item.shapes})
['cavity', 'dislocation line', 'loop', 'precipitate']
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..errors import OutputError
from ..model import Dataset, Ellipse, ImageSource, Item, Label, Note, Polygon, Polyline, Shape

__all__ = [
    "SyntheticConfig",
    "SYNTHETIC_LABELS",
    "INTENSITY_RANGE",
    "synthetic_item",
    "make_synthetic_dataset",
]

#: The labels of synthetic images, in this order (class indices 1..4).
SYNTHETIC_LABELS: tuple[Label, ...] = (
    Label("cavity", color="#1f77b4", edge="inner", type="ellipse"),
    Label("loop", color="#ff7f0e", edge="outer", type="ellipse"),
    Label("precipitate", color="#2ca02c", type="polygon"),
    Label("dislocation line", color="#d62728", type="polyline"),
)

#: Intensity (background ≈ 1.0) mapped to gray values 0 and 255; fixed for every image.
INTENSITY_RANGE: tuple[float, float] = (0.1, 1.7)

_SUPERSAMPLE = 4  # sub-samples per pixel along each axis
_EDGE_MARGIN_PX = 2.0  # every defect's footprint (rims included) stays this far from the image edge
_GAP_PX = 3.0  # minimum gap between footprints when overlaps are not allowed
_MAX_TRIES = 256  # random positions tried per defect before giving up on it
_MAX_BATCH = 32  # most positions drawn at once
_DECIMALS = 2  # coordinates are rounded to 0.01 px before drawing
_SLACK_PX = 0.02  # footprints are grown by this much to hold the rounded shapes
_TEXTURE_STD = 0.02
_TEXTURE_SIGMA_PX = 1.2
_LINE_HALF_WIDTH_PX = 1.0
_SOURCE = "synthetic"
_IMAGE_FORMATS = {"png": ".png", "tif": ".tif", "tiff": ".tif"}

_CAVITY, _LOOP, _PRECIPITATE, _LINE = (lab.name for lab in SYNTHETIC_LABELS)


def _check_range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"synthetic config: expected {name} as (min, max), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 1.0 <= lo <= hi):
        raise ValueError(f"synthetic config: expected {name} with 1 <= min <= max, got {value!r}")
    return lo, hi


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """What a synthetic micrograph holds and how it is imaged.

    Parameters
    ----------
    size_hw : (int, int)
        Image height and width in pixels.
    n_cavities, n_loops, n_precipitates, n_lines : int
        How many defects of each kind to place (fewer when they do not fit).
    cavity_radius_px, loop_radius_px, precipitate_radius_px : (float, float)
        Range ``(min, max)``, ``1 <= min <= max``, of the major radius (cavities, loops) or
        the mean radius (precipitates), px.
    noise : float
        Gaussian read noise, standard deviation as a fraction of the dynamic range
        (:data:`INTENSITY_RANGE`). 0 for none.
    dose : float
        Electrons per pixel at background intensity, for Poisson shot noise; ``math.inf``
        for none. ``noise=0, dose=math.inf`` gives a noise-free image.
    blur_px : float
        Standard deviation of the Gaussian point spread, px. 0 for none.
    allow_overlap : bool
        When False, defects keep a gap of a few pixels between them (rims included) and
        all have ``z_order`` 0. When True, they are placed independently and drawn in
        increasing ``z_order`` (later ones on top).
    touching : float
        In [0, 1]: the chance that a cavity or loop is placed *against* one already placed
        (a cavity or a loop, chosen at random; cavities are placed after loops), as bubbles
        cluster in real micrographs: centers ``0.6…1.05 ×`` the sum of the two mean radii
        apart, in a random direction — from overlapping by a good part of the smaller one to
        just touching. It ignores the gap to that one partner only; chains form when a
        cavity lands against one that was itself placed against another. With ``touching >
        0`` every defect gets its placement index as ``z_order`` (later on top), so the
        labels say which one the overlap shows. 0 (the default) places as before, draw for
        draw. :meth:`bubbles` is a ready setting.

    Examples
    --------
    >>> SyntheticConfig(size_hw=(256, 256), n_lines=0).n_lines
    0
    >>> SyntheticConfig.bubbles((128, 128)).touching
    0.6
    """

    size_hw: tuple[int, int] = (512, 512)
    n_cavities: int = 12
    n_loops: int = 6
    n_precipitates: int = 6
    n_lines: int = 2
    cavity_radius_px: tuple[float, float] = (3.0, 14.0)
    loop_radius_px: tuple[float, float] = (8.0, 25.0)
    precipitate_radius_px: tuple[float, float] = (5.0, 15.0)
    noise: float = 0.05
    dose: float = 200.0
    blur_px: float = 0.8
    allow_overlap: bool = False
    touching: float = 0.0

    @classmethod
    def bubbles(cls, size_hw: tuple[int, int] = (512, 512), **changes: object) -> "SyntheticConfig":
        """Crowded cavities and a few loops, many touching or overlapping (``touching=0.6``).

        About 40 cavities and 6 loops per 512² (scaled with the image area), radii 4–14 px
        and 8–20 px; no precipitates or lines. ``changes`` override any field.
        """
        h, w = (int(v) for v in size_hw)
        scale = h * w / (512 * 512)
        base = dict(size_hw=(h, w), n_cavities=max(1, round(40 * scale)), n_loops=round(6 * scale),
                    n_precipitates=0, n_lines=0, cavity_radius_px=(4.0, 14.0), loop_radius_px=(8.0, 20.0),
                    touching=0.6)
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        try:
            h, w = (int(v) for v in self.size_hw)
        except (TypeError, ValueError):
            raise ValueError(f"synthetic config: expected size_hw as (H, W), got {self.size_hw!r}") from None
        if h < 8 or w < 8:
            raise ValueError(f"synthetic config: expected size_hw of at least (8, 8), got {self.size_hw!r}")
        object.__setattr__(self, "size_hw", (h, w))
        for name in ("n_cavities", "n_loops", "n_precipitates", "n_lines"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"synthetic config: expected a count >= 0 for {name}, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("cavity_radius_px", "loop_radius_px", "precipitate_radius_px"):
            object.__setattr__(self, name, _check_range(name, getattr(self, name)))
        for name in ("noise", "blur_px"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"synthetic config: expected a finite {name} >= 0, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        dose = float(self.dose)
        if not dose > 0:  # also rejects NaN; inf means no shot noise
            raise ValueError(f"synthetic config: expected a dose > 0 (math.inf for no shot noise), got {self.dose!r}")
        object.__setattr__(self, "dose", dose)
        touching = float(self.touching)
        if not 0.0 <= touching <= 1.0:  # also rejects NaN
            raise ValueError(f"synthetic config: expected touching in [0, 1], got {self.touching!r}")
        object.__setattr__(self, "touching", touching)


# --------------------------------------------------------------------------------------
# Defect geometry, sampled around the origin, then placed


@dataclass(frozen=True, slots=True)
class _Style:
    """How a defect is drawn, beyond its labeled shape."""

    contrast: float  # relative intensity change of the dark part (< 0)
    width_px: float = 0.0  # cavity rim / loop ring width, line half-width
    interior: float = 0.0  # cavity interior contrast (> 0: brighter)


class _Proto(NamedTuple):
    """A defect before placement: its shape at a translation, its footprint, its style."""

    make: Callable[[float, float], Shape]  # translation (tx, ty) -> labeled shape
    bbox_xyxy: tuple[float, float, float, float]  # footprint bounds (rims included) at (0, 0)
    circles: np.ndarray  # (k, 3) x, y, r: circles covering the footprint at (0, 0)
    style: _Style
    radius: float = 0.0  # cavities and loops: the label's mean radius (what `touching` places against)


def _r(v: float) -> float:
    return round(float(v), _DECIMALS)


def _ellipse_bbox(rx: float, ry: float, rotation_deg: float) -> tuple[float, float, float, float]:
    return Ellipse(label="_", cx=0.0, cy=0.0, rx=rx, ry=ry, rotation_deg=rotation_deg).bbox_xyxy()


def _sample_cavity(rng: np.random.Generator, cfg: SyntheticConfig) -> _Proto:
    rx = rng.uniform(*cfg.cavity_radius_px)
    ry = rx * rng.uniform(0.8, 1.0)
    rot = rng.uniform(0.0, 180.0)
    rim = rng.uniform(1.5, 2.0)
    style = _Style(contrast=-rng.uniform(0.30, 0.45), width_px=rim, interior=rng.uniform(0.08, 0.15))

    def make(tx: float, ty: float) -> Shape:
        return Ellipse(label=_CAVITY, cx=_r(tx), cy=_r(ty), rx=_r(rx), ry=_r(ry), rotation_deg=_r(rot),
                       source=_SOURCE)

    grow = rim + _SLACK_PX
    bbox = _ellipse_bbox(rx + grow, ry + grow, rot)
    return _Proto(make, bbox, np.array([[0.0, 0.0, rx + grow]]), style, (rx + ry) / 2)


def _sample_loop(rng: np.random.Generator, cfg: SyntheticConfig) -> _Proto:
    rx = rng.uniform(*cfg.loop_radius_px)
    ry = rx * rng.uniform(0.5, 1.0)  # a circular loop seen inclined
    rot = rng.uniform(0.0, 180.0)
    thickness = min(rng.uniform(2.0, 3.0), 0.5 * ry)
    style = _Style(contrast=-rng.uniform(0.35, 0.50), width_px=thickness)

    def make(tx: float, ty: float) -> Shape:
        return Ellipse(label=_LOOP, cx=_r(tx), cy=_r(ty), rx=_r(rx), ry=_r(ry), rotation_deg=_r(rot),
                       source=_SOURCE)

    bbox = _ellipse_bbox(rx + _SLACK_PX, ry + _SLACK_PX, rot)
    return _Proto(make, bbox, np.array([[0.0, 0.0, rx + _SLACK_PX]]), style, (rx + ry) / 2)


def _sample_precipitate(rng: np.random.Generator, cfg: SyntheticConfig) -> _Proto:
    n = int(rng.integers(10, 25))
    radius = rng.uniform(*cfg.precipitate_radius_px)
    step = 2 * math.pi / n
    angles = rng.uniform(0.0, 2 * math.pi) + step * (np.arange(n) + rng.uniform(-0.3, 0.3, n))
    radii = radius * rng.uniform(0.75, 1.25, n)
    points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    style = _Style(contrast=-rng.uniform(0.30, 0.45))

    def make(tx: float, ty: float) -> Shape:
        return Polygon(label=_PRECIPITATE, points_xy=np.round(points + (_r(tx), _r(ty)), _DECIMALS),
                       source=_SOURCE)

    reach = float(radii.max()) + _SLACK_PX
    return _Proto(make, (-reach, -reach, reach, reach), np.array([[0.0, 0.0, reach]]), style)


def _sample_line(rng: np.random.Generator, cfg: SyntheticConfig) -> _Proto:
    n = int(rng.integers(4, 9))
    side = min(cfg.size_hw)
    lengths = rng.uniform(0.03, 0.06, n - 1) * side
    turns = np.concatenate([[rng.uniform(0.0, 2 * math.pi)], rng.normal(0.0, math.radians(20), n - 2)])
    headings = np.cumsum(turns)  # a smooth random walk: the heading turns a little at each point
    steps = np.stack([lengths * np.cos(headings), lengths * np.sin(headings)], axis=1)
    points = np.concatenate([[[0.0, 0.0]], np.cumsum(steps, axis=0)])
    points -= (points.min(axis=0) + points.max(axis=0)) / 2  # center the bounding box on the origin
    half = _LINE_HALF_WIDTH_PX
    style = _Style(contrast=-rng.uniform(0.35, 0.50), width_px=half)

    def make(tx: float, ty: float) -> Shape:
        return Polyline(label=_LINE, points_xy=np.round(points + (_r(tx), _r(ty)), _DECIMALS), source=_SOURCE)

    # Circles centered on points at most `spacing` apart along the line cover its footprint.
    spacing = 3.0
    samples = [points[:1]]
    for a, b in zip(points[:-1], points[1:]):
        k = max(1, math.ceil(math.hypot(*(b - a)) / spacing))
        t = np.arange(1, k + 1)[:, None] / k
        samples.append(a + t * (b - a))
    centers = np.concatenate(samples)
    circles = np.column_stack([centers, np.full(len(centers), half + spacing / 2 + _SLACK_PX)])
    lo = points.min(axis=0) - half - _SLACK_PX
    hi = points.max(axis=0) + half + _SLACK_PX
    return _Proto(make, (lo[0], lo[1], hi[0], hi[1]), circles, style)


def _first_free(circles: np.ndarray, tx: np.ndarray, ty: np.ndarray, taken: np.ndarray) -> int | None:
    """Index of the first translation ``(tx[i], ty[i])`` that keeps ``circles`` (k, 3) farther
    than the gap from every circle of ``taken`` (N, 3); None when there is none."""
    if len(taken) == 0:
        return 0
    gap = taken[None, :, 2] + _GAP_PX
    if len(circles) == 1:  # the whole batch at once
        x, y, r = circles[0]
        d = np.hypot(tx[:, None] + x - taken[None, :, 0], ty[:, None] + y - taken[None, :, 1])
        hits = np.flatnonzero(np.all(d > r + gap, axis=1))
        return int(hits[0]) if hits.size else None
    for i, (x, y) in enumerate(zip(tx, ty)):
        d = np.hypot(circles[:, None, 0] + x - taken[None, :, 0], circles[:, None, 1] + y - taken[None, :, 1])
        if np.all(d > circles[:, None, 2] + gap):
            return i
    return None


def _place(
    rng: np.random.Generator, protos: list[_Proto], cfg: SyntheticConfig
) -> list[tuple[int, float, float]]:
    """Translations ``(index in protos, tx, ty)`` keeping footprints inside the image (and
    apart, without ``allow_overlap``), in placement order; defects with no room are left out."""
    h, w = cfg.size_hw
    placed: list[tuple[int, float, float]] = []
    taken = np.empty((0, 3))
    rows_of: list[int] = []  # for each row of `taken`, its defect's position in `placed`
    for index, proto in enumerate(protos):
        x1, y1, x2, y2 = proto.bbox_xyxy
        lo_x, hi_x = _EDGE_MARGIN_PX - x1, w - _EDGE_MARGIN_PX - x2
        lo_y, hi_y = _EDGE_MARGIN_PX - y1, h - _EDGE_MARGIN_PX - y2
        if hi_x < lo_x or hi_y < lo_y:
            continue  # larger than the image
        spot = None
        if cfg.touching > 0 and proto.radius > 0 and rng.random() < cfg.touching:
            spot = _against(rng, protos, placed, proto, taken, np.asarray(rows_of), (lo_x, hi_x, lo_y, hi_y), cfg)
        tries, batch = 0, 1
        while spot is None and tries < _MAX_TRIES:
            n = min(batch, _MAX_TRIES - tries)
            tries += n
            batch = min(2 * batch, _MAX_BATCH)  # most defects fit at the first try: start small
            tx = rng.uniform(lo_x, hi_x, n)
            ty = rng.uniform(lo_y, hi_y, n)
            i = 0 if cfg.allow_overlap else _first_free(proto.circles, tx, ty, taken)
            if i is not None:
                spot = (float(tx[i]), float(ty[i]))
        if spot is not None:
            placed.append((index, *spot))
            if not cfg.allow_overlap:
                taken = np.concatenate([taken, proto.circles + (spot[0], spot[1], 0.0)])
                rows_of += [len(placed) - 1] * len(proto.circles)
    return placed


def _against(
    rng: np.random.Generator, protos: list[_Proto], placed: list[tuple[int, float, float]], proto: _Proto,
    taken: np.ndarray, rows_of: np.ndarray, bounds: tuple[float, float, float, float], cfg: SyntheticConfig,
) -> tuple[float, float] | None:
    """A translation putting ``proto`` against a placed cavity or loop (see ``touching``), or None."""
    partners = [k for k, (i, _, _) in enumerate(placed) if protos[i].radius > 0]
    if not partners:
        return None
    lo_x, hi_x, lo_y, hi_y = bounds
    for _ in range(_MAX_BATCH):
        k = partners[int(rng.integers(len(partners)))]
        i, px, py = placed[k]
        angle = rng.uniform(0.0, 2 * math.pi)
        gap = rng.uniform(0.6, 1.05) * (protos[i].radius + proto.radius)
        tx, ty = px + gap * math.cos(angle), py + gap * math.sin(angle)
        if not (lo_x <= tx <= hi_x and lo_y <= ty <= hi_y):
            continue
        if not cfg.allow_overlap:
            others = taken[rows_of != k] if len(taken) else taken
            if _first_free(proto.circles, np.array([tx]), np.array([ty]), others) is None:
                continue
        return tx, ty
    return None


# --------------------------------------------------------------------------------------
# Drawing: anti-aliased coverage of analytic shapes, in their bounding boxes only


def _pixel_box(
    bbox_xyxy: tuple[float, float, float, float], size_hw: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    h, w = size_hw
    x1, y1, x2, y2 = bbox_xyxy
    c0, r0 = max(0, math.floor(x1)), max(0, math.floor(y1))
    c1, r1 = min(w, math.ceil(x2)), min(h, math.ceil(y2))
    if c1 <= c0 or r1 <= r0:
        return None
    return c0, r0, c1, r1


def _subsamples(box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample coordinates of a pixel box: x (1, w·s) and y (h·s, 1), for broadcasting."""
    c0, r0, c1, r1 = box
    s = _SUPERSAMPLE
    x = c0 + (np.arange((c1 - c0) * s) + 0.5) / s
    y = r0 + (np.arange((r1 - r0) * s) + 0.5) / s
    return x[None, :], y[:, None]


def _coverage(inside: np.ndarray) -> np.ndarray:
    """Per-pixel fraction (h, w) float64 of a sub-sample mask (h·s, w·s) bool."""
    s = _SUPERSAMPLE
    hs, ws = inside.shape
    return inside.reshape(hs // s, s, ws // s, s).sum(axis=(1, 3), dtype=np.float64) / (s * s)


def _ellipse_uv(x: np.ndarray, y: np.ndarray, e: Ellipse) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along the ellipse's own axes (undoing its clockwise-on-screen rotation)."""
    t = math.radians(e.rotation_deg)
    c, s = math.cos(t), math.sin(t)
    dx, dy = x - e.cx, y - e.cy
    return dx * c + dy * s, dy * c - dx * s


def _in_ellipse(u: np.ndarray, v: np.ndarray, rx: float, ry: float) -> np.ndarray:
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _in_polygon(x: np.ndarray, y: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """Even-odd test of points ``x`` (1, W) × ``y`` (H, 1); the crossing x is per row only."""
    inside = np.zeros((y.shape[0], x.shape[1]), dtype=bool)
    for (x0, y0), (x1, y1) in zip(points_xy, np.roll(points_xy, -1, axis=0)):
        if y0 == y1:
            continue  # a horizontal edge crosses no row
        rows = (y0 > y[:, 0]) != (y1 > y[:, 0])
        if not rows.any():
            continue
        xi = x0 + (y[rows, 0] - y0) * (x1 - x0) / (y1 - y0)
        inside[rows] ^= x[0][None, :] < xi[:, None]
    return inside


def _near_segment(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Points ``x`` (1, W) × ``y`` (H, 1) within ``r`` of segment a–b."""
    ex, ey = b - a
    dx, dy = x - a[0], y - a[1]
    length2 = ex * ex + ey * ey
    if length2 == 0.0:
        return dx * dx + dy * dy <= r * r
    t = np.clip((dx * ex + dy * ey) / length2, 0.0, 1.0)
    px, py = dx - t * ex, dy - t * ey
    return px * px + py * py <= r * r


def _draw(contrast: np.ndarray, shape: Shape, style: _Style) -> None:
    """Paint one defect over ``contrast`` (H, W) float64: ``C ← C·(1 − α) + α·c``."""
    size_hw = contrast.shape
    if isinstance(shape, Ellipse):
        grow = style.width_px if shape.label == _CAVITY else 0.0
        x1, y1, x2, y2 = _ellipse_bbox(shape.rx + grow, shape.ry + grow, shape.rotation_deg)
        box = _pixel_box((shape.cx + x1, shape.cy + y1, shape.cx + x2, shape.cy + y2), size_hw)
        if box is None:
            return
        x, y = _subsamples(box)
        u, v = _ellipse_uv(x, y, shape)
        if shape.label == _CAVITY:  # bright interior, dark rim just outside the label
            inner = _coverage(_in_ellipse(u, v, shape.rx, shape.ry))
            outer = _coverage(_in_ellipse(u, v, shape.rx + grow, shape.ry + grow))
            alpha = outer
            value = inner * style.interior + (outer - inner) * style.contrast
        else:  # loop: dark ring inside the label, background interior
            t = style.width_px
            ring = _in_ellipse(u, v, shape.rx, shape.ry) & ~_in_ellipse(u, v, shape.rx - t, shape.ry - t)
            alpha = _coverage(ring)
            value = alpha * style.contrast
    elif isinstance(shape, Polygon):
        box = _pixel_box(shape.bbox_xyxy(), size_hw)
        if box is None:
            return
        x, y = _subsamples(box)
        alpha = _coverage(_in_polygon(x, y, shape.points_xy))
        value = alpha * style.contrast
    elif isinstance(shape, Polyline):
        r = style.width_px
        x1, y1, x2, y2 = shape.bbox_xyxy()
        box = _pixel_box((x1 - r, y1 - r, x2 + r, y2 + r), size_hw)
        if box is None:
            return
        c0, r0, _, _ = box
        x, y = _subsamples(box)
        s = _SUPERSAMPLE
        inside = np.zeros((y.shape[0], x.shape[1]), dtype=bool)
        for a, b in zip(shape.points_xy[:-1], shape.points_xy[1:]):
            seg = _pixel_box((min(a[0], b[0]) - r, min(a[1], b[1]) - r, max(a[0], b[0]) + r, max(a[1], b[1]) + r),
                             size_hw)
            if seg is None:
                continue
            rows = slice((seg[1] - r0) * s, (seg[3] - r0) * s)
            cols = slice((seg[0] - c0) * s, (seg[2] - c0) * s)
            inside[rows, cols] |= _near_segment(x[:, cols], y[rows], a, b, r)
        alpha = _coverage(inside)
        value = alpha * style.contrast
    else:  # pragma: no cover - only the shapes above are generated
        raise TypeError(f"cannot draw a {shape.kind}")
    c0, r0, c1, r1 = box
    patch = contrast[r0:r1, c0:c1]
    patch *= 1.0 - alpha
    patch += value


def _background(rng: np.random.Generator, size_hw: tuple[int, int]) -> np.ndarray:
    """Uneven illumination times faint texture, (H, W) float64 around 1.0."""
    from scipy import ndimage

    h, w = size_hw
    x = ((np.arange(w) + 0.5) / w - 0.5)[None, :]
    y = ((np.arange(h) + 0.5) / h - 0.5)[:, None]
    x0, y0 = rng.uniform(-0.3, 0.3, 2)
    falloff = rng.uniform(0.04, 0.12)
    gx, gy = rng.uniform(-0.04, 0.04, 2)
    r2x, r2y = (x - x0) ** 2, (y - y0) ** 2
    illumination = 1.0 + gx * x + gy * y - falloff * ((r2x - r2x.mean()) + (r2y - r2y.mean()))
    texture = ndimage.gaussian_filter(rng.standard_normal((h, w)), _TEXTURE_SIGMA_PX, mode="wrap")
    texture *= _TEXTURE_STD / max(float(texture.std()), 1e-12)
    texture += 1.0
    return illumination * texture


def _to_uint8(intensity: np.ndarray) -> np.ndarray:
    lo, hi = INTENSITY_RANGE
    scaled = (intensity - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def synthetic_item(
    rng: np.random.Generator,
    config: SyntheticConfig = SyntheticConfig(),
    *,
    name: str = "synthetic_000.png",
) -> tuple[np.ndarray, Item]:
    """One synthetic micrograph and the exact shapes of its defects.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same result.
    config : SyntheticConfig
        Image size, defect counts and sizes, imaging conditions.
    name : str
        The item's name.

    Returns
    -------
    image : ndarray
        (H, W) uint8, ``H, W = config.size_hw``; gray value ``v`` is intensity
        ``lo + v / 255 · (hi − lo)`` with ``lo, hi =`` :data:`INTENSITY_RANGE`.
    item : Item
        ``Item(name, config.size_hw, shapes)`` with no image source. Shapes are listed in
        the order of :data:`SYNTHETIC_LABELS` (cavities, loops, precipitates, lines):
        :class:`Ellipse`, :class:`Ellipse`, :class:`Polygon`, :class:`Polyline`, with
        ``source="synthetic"``. Every defect, rims included, lies at least 2 px inside the
        image. Without ``allow_overlap`` there may be fewer defects than asked for, when
        no free place was found for some of them after a few hundred random tries.

    Examples
    --------
    >>> import numpy as np
    >>> cfg = SyntheticConfig(size_hw=(96, 128), n_cavities=4, n_loops=0, n_precipitates=0, n_lines=0)
    >>> image, item = synthetic_item(np.random.default_rng(1), cfg, name="a.png")
    >>> image.shape, item.name, [s.kind for s in item.shapes]
    ((96, 128), 'a.png', ['ellipse', 'ellipse', 'ellipse', 'ellipse'])
    """
    if not isinstance(config, SyntheticConfig):
        raise TypeError(f"expected a SyntheticConfig, got {type(config).__name__}")
    # Sampled in label order (cavities, loops, precipitates, lines) ...
    protos: list[_Proto] = []
    for count, sample in (
        (config.n_cavities, _sample_cavity),
        (config.n_loops, _sample_loop),
        (config.n_precipitates, _sample_precipitate),
        (config.n_lines, _sample_line),
    ):
        protos.extend(sample(rng, config) for _ in range(count))
    # ... placed in random order when they may overlap (that order is the z order), else
    # the hardest to fit first: lines, then loops, precipitates, cavities.
    if config.allow_overlap:
        order = [int(i) for i in rng.permutation(len(protos))]
    else:
        order = list(range(len(protos)))[::-1]
    placed = _place(rng, [protos[i] for i in order], config)

    background = _background(rng, config.size_hw)
    contrast = np.zeros(config.size_hw, dtype=np.float64)
    drawn: list[tuple[int, Shape]] = []  # (index in label order, shape)
    for z, (k, tx, ty) in enumerate(placed):
        proto = protos[order[k]]
        shape = proto.make(tx, ty)
        if config.allow_overlap or config.touching > 0:
            shape = shape.replace(z_order=z)
        _draw(contrast, shape, proto.style)
        drawn.append((order[k], shape))

    intensity = background
    intensity *= 1.0 + contrast
    if config.blur_px > 0:
        from scipy import ndimage

        intensity = ndimage.gaussian_filter(intensity, config.blur_px, mode="nearest")
    if math.isfinite(config.dose):
        intensity = rng.poisson(np.maximum(intensity, 0.0) * config.dose) / config.dose
    if config.noise > 0:
        lo, hi = INTENSITY_RANGE
        intensity = intensity + rng.normal(0.0, config.noise * (hi - lo), config.size_hw)
    shapes = tuple(shape for _, shape in sorted(drawn, key=lambda d: d[0]))
    return _to_uint8(intensity), Item(name=name, size_hw=config.size_hw, shapes=shapes)


def _shortfall(item: Item, config: SyntheticConfig) -> Note | None:
    wanted = {_CAVITY: config.n_cavities, _LOOP: config.n_loops,
              _PRECIPITATE: config.n_precipitates, _LINE: config.n_lines}
    got = Counter(s.label for s in item.shapes)
    missing = [f"{got[k]} of {n} {k}" for k, n in wanted.items() if got[k] < n]
    if not missing:
        return None
    return Note("synthetic-fewer-defects", "no free place for every defect; placed " + ", ".join(missing),
                item=item.name)


def make_synthetic_dataset(
    out_dir: str | Path,
    *,
    n_images: int = 8,
    config: SyntheticConfig = SyntheticConfig(),
    seed: int = 0,
    image_format: str = "png",
    overwrite: bool = False,
) -> Dataset:
    """Write synthetic micrographs and their labels as a CVAT for images 1.1 export.

    Writes ``out_dir/images/synthetic_000.png`` … and ``out_dir/annotations.xml``. All is
    written into a temporary sibling folder first, then renamed to ``out_dir``, so a
    failure leaves no half-written dataset.

    Parameters
    ----------
    out_dir : str or Path
        The folder to create. It may exist only when empty, or with ``overwrite=True``
        (its old contents are then removed).
    n_images : int
        Number of images.
    config : SyntheticConfig
        What each image holds.
    seed : int
        Image ``i`` is drawn from its own stream ``SeedSequence(seed).spawn(n_images)[i]``,
        so the first images of a larger dataset are the same as those of a smaller one.
    image_format : {"png", "tif", "tiff"}
        File format of the images (lossless only).
    overwrite : bool
        Replace a non-empty ``out_dir``.

    Returns
    -------
    Dataset
        :data:`SYNTHETIC_LABELS`, one item per image with ``image`` set to its file under
        ``out_dir``, and a ``synthetic-fewer-defects`` note for each image that holds
        fewer defects than asked for.

    Raises
    ------
    OutputError
        ``out_dir`` is a file, or a non-empty folder and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "synth"
    >>> ds = make_synthetic_dataset(out, n_images=2, config=SyntheticConfig(size_hw=(64, 64),
    ...     n_cavities=2, n_loops=0, n_precipitates=1, n_lines=0))
    >>> sorted(p.name for p in (out / "images").iterdir()), (out / "annotations.xml").is_file()
    (['synthetic_000.png', 'synthetic_001.png'], True)
    """
    from ..formats.cvat_xml import write_cvat
    from ..imaging.io import write_image

    if isinstance(n_images, bool) or int(n_images) != n_images or n_images < 0:
        raise ValueError(f"expected n_images >= 0, got {n_images!r}")
    try:
        suffix = _IMAGE_FORMATS[image_format.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"expected image_format in {sorted(_IMAGE_FORMATS)}, got {image_format!r}") from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out}: folder exists and is not empty (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        streams = np.random.SeedSequence(seed).spawn(int(n_images))
        items: list[Item] = []
        notes: list[Note] = []
        for i, stream in enumerate(streams):
            image, item = synthetic_item(np.random.default_rng(stream), config, name=f"synthetic_{i:03d}{suffix}")
            write_image(tmp / "images" / item.name, image)
            items.append(Item(item.name, item.size_hw, item.shapes, image=None, id=i))
            note = _shortfall(item, config)
            if note is not None:
                notes.append(note)
        staged = Dataset(labels=SYNTHETIC_LABELS, items=tuple(
            Item(it.name, it.size_hw, it.shapes, image=ImageSource(tmp / "images" / it.name), id=it.id)
            for it in items), notes=tuple(notes))
        write_cvat(staged, tmp / "annotations.xml")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = tuple(
        Item(it.name, it.size_hw, it.shapes, image=ImageSource(out / "images" / it.name), id=it.id)
        for it in items
    )
    return Dataset(labels=SYNTHETIC_LABELS, items=final, notes=tuple(notes), source=str(out))


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, moving an existing ``out`` aside first and deleting it after."""
    if not out.exists():
        tmp.rename(out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old = trash / "old"
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)  # put the previous contents back
        shutil.rmtree(trash, ignore_errors=True)
        raise
    shutil.rmtree(trash, ignore_errors=True)
