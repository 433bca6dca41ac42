"""Synthetic micrographs for pretraining: every defect class under wide imaging conditions, exact labels.

A net pretrained on these should have seen, before it meets a user's few labeled images,
what varies between microscopes, samples and sessions: contrast, noise, defocus, foil
thickness, point spread and bit depth. The defects themselves — loops, precipitates and
dislocation lines, their shapes and their placement — come from the public generator
:func:`defectlab.preparation.synthetic.synthetic_item`, called here (never copied) with wide
ranges of counts and sizes and with its own noise and blur off. Cavities are placed and drawn
here, because their look depends on the focus, which that generator fixes at under-focus.

How an image is made (intensity ``I``, background about 1.0)
--------------------------------------------------------------
1. **Defects and background**: the generator's noise-free image (uneven illumination, faint
   texture, loops, precipitates, lines), its gray values turned back into intensity with its
   fixed mapping :data:`~defectlab.preparation.synthetic.INTENSITY_RANGE`.
2. **Cavities, imaged out of focus** (Fresnel contrast). A cavity is a hole in the foil: its
   missing thickness ``t`` is that of an ellipsoid under the labeled ellipse (``t = 1`` at the
   center, 0 at the edge and outside). For a weak phase object the transport-of-intensity
   equation gives ``I ∝ 1 − (λΔf / 2π) ∇²φ`` with the phase ``φ ∝ −t``, so the image is
   multiplied by ``1 + s · a · ∇²(G_σ ∗ t)`` where ``G_σ`` (``fringe_width_px``) stands for the
   finite coherence and defocus spread, ``s = −1`` under focus and ``+1`` over focus, and ``a``
   is chosen so that the fringe at the edge has the amplitude ``fringe_contrast``. ``∇²t`` is
   positive just outside the edge and negative inside, so **under focus** a cavity is bright
   with a **dark** fringe just outside its edge, and **over focus** dark with a **bright** fringe
   there. The label is the physical edge of the cavity in both cases: the inner edge of the
   dark fringe under focus (the generator's ``edge="inner"`` convention), the inner edge of the
   bright fringe over focus. Mass-thickness contrast adds ``× (1 + cavity_brightness · t)``.
3. **Contrast**: ``I ← B + contrast · (I − B)``, with ``B`` the smooth background (the image
   with every defect masked out, Gaussian-averaged, σ 12 px): weak or strong defects alike.
4. **Thickness gradient** (a wedge-shaped foil absorbs more where it is thicker):
   ``I ← I · exp(−g · (p − ½))`` with ``p`` from 0 to 1 across the field along the direction
   ``gradient_deg`` (clockwise on screen from +x), so ``ln(I_max / I_min) = g``.
5. **Point spread**: Gaussian blur, σ ``blur_px``.
6. **Shot noise**: Poisson, ``dose`` electrons per pixel at ``I = 1`` (``math.inf``: none).
7. **Detector**: gray ``= M · (background_level + gain · (I − 1))`` with ``M = 2**bit_depth − 1``,
   plus Gaussian read noise of σ ``read_noise · M``, rounded and clipped to ``0 … M``;
   uint8 or uint16. 16-bit images use thousands of gray levels, not 256.

Each image's conditions are drawn from the ranges of a :class:`PretrainConfig` into an
:class:`Imaging` (saved beside the images in ``imaging.json``), or given. The defects, the
imaging conditions and the noise come from three separate streams of one seed, so an image
with the noise or the blur turned off has the same defects in the same places.

Examples
--------
>>> cfg = PretrainConfig(size_hw=(96, 96), cavities=(2, 2), loops=(1, 1), precipitates=(1, 1), lines=(0, 0))
>>> image, item, imaging = pretrain_item(0, cfg)
>>> image.shape, image.dtype.kind, imaging.bit_depth in (8, 16), imaging.focus in ("under", "over")
((96, 96), 'u', True, True)
>>> sorted({s.label for s in item.shapes})
['cavity', 'loop', 'precipitate']
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ..model import Dataset, Ellipse, ImageSource, Item, Note
from .synthetic import INTENSITY_RANGE, SYNTHETIC_LABELS, SyntheticConfig, _shortfall, synthetic_item

__all__ = ["PretrainConfig", "Imaging", "draw_imaging", "pretrain_item", "make_pretrain_dataset", "IMAGING_FILE"]

#: The file beside ``images/`` that holds every image's :class:`Imaging`.
IMAGING_FILE = "imaging.json"

_CAVITY = SYNTHETIC_LABELS[0].name
_SUPERSAMPLE = 4  # sub-samples per pixel along each axis for the cavity depth
_BACKGROUND_SIGMA_PX = 12.0  # smoothing of the background estimate B
_FOOTPRINT_GROW_PX = 3  # defect masks grown by this much when estimating B and placing cavities
_GAP_PX = 2.0  # least gap between a cavity's fringe and any other defect
_FRINGE_REACH = 3.0  # the fringe reaches this many fringe widths (σ) beyond the edge
_EDGE_MARGIN_PX = 2.0  # every cavity's fringe stays this far inside the image
_DECIMALS = 2  # cavity coordinates rounded to 0.01 px before drawing, as the generator does


def _range(name: str, value, *, lo: float = 0.0, integer: bool = False) -> tuple:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"pretrain config: expected {name} as (min, max), got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b) and not (b == math.inf and lo <= a):
        raise ValueError(f"pretrain config: expected {name} with {lo:g} <= min <= max, got {value!r}")
    if integer:
        if a != int(a) or b != int(b):
            raise ValueError(f"pretrain config: expected whole numbers for {name}, got {value!r}")
        return int(a), int(b)
    return a, b


@dataclass(frozen=True, slots=True)
class PretrainConfig:
    """The ranges every image's defects and imaging conditions are drawn from (uniformly; the
    dose log-uniformly). Counts are ``(min, max)`` per image, sizes in px; see the module
    docstring for what each imaging value does.

    Examples
    --------
    >>> PretrainConfig(bit_depths=(16,)).bit_depths
    (16,)
    >>> PretrainConfig(over_focus=2)
    Traceback (most recent call last):
    ...
    ValueError: pretrain config: expected over_focus in [0, 1], got 2
    """

    size_hw: tuple[int, int] = field(default=(256, 256), metadata={"help": "Image height and width, px."})
    cavities: tuple[int, int] = field(default=(0, 20), metadata={"help": "Cavities per image (min, max)."})
    loops: tuple[int, int] = field(default=(0, 6), metadata={"help": "Dislocation loops per image (min, max)."})
    precipitates: tuple[int, int] = field(default=(0, 6), metadata={"help": "Precipitates per image (min, max)."})
    lines: tuple[int, int] = field(default=(0, 2), metadata={"help": "Dislocation lines per image (min, max)."})
    cavity_radius_px: tuple[float, float] = field(default=(2.0, 20.0), metadata={"help": "Cavity major radius, px."})
    loop_radius_px: tuple[float, float] = field(default=(5.0, 28.0), metadata={"help": "Loop major radius, px."})
    precipitate_radius_px: tuple[float, float] = field(default=(3.0, 16.0),
                                                       metadata={"help": "Precipitate mean radius, px."})
    over_focus: float = field(default=0.5, metadata={"help": "Share of images taken over focus (else under).",
                                                     "min": 0.0, "max": 1.0})
    fringe_contrast: tuple[float, float] = field(default=(0.1, 0.5),
                                                 metadata={"help": "Amplitude of a cavity's Fresnel fringe."})
    fringe_width_px: tuple[float, float] = field(default=(0.6, 2.0),
                                                 metadata={"help": "Width (σ) of the Fresnel fringe, px."})
    cavity_brightness: tuple[float, float] = field(default=(0.0, 0.15),
                                                   metadata={"help": "Mass-thickness brightening at a cavity's center."})
    contrast: tuple[float, float] = field(default=(0.4, 1.6),
                                          metadata={"help": "Scale of every defect's contrast against the background."})
    thickness_gradient: tuple[float, float] = field(default=(0.0, 0.8),
                                                    metadata={"help": "ln(I_max / I_min) across the field."})
    blur_px: tuple[float, float] = field(default=(0.0, 1.8), metadata={"help": "Point spread σ, px."})
    dose: tuple[float, float] = field(default=(20.0, 2000.0),
                                      metadata={"help": "Electrons per pixel at background (log-uniform)."})
    read_noise: tuple[float, float] = field(default=(0.0, 0.04),
                                            metadata={"help": "Read noise σ as a fraction of the gray range."})
    background_level: tuple[float, float] = field(default=(0.3, 0.6),
                                                  metadata={"help": "Where I = 1 lands in the gray range (0-1)."})
    gain: tuple[float, float] = field(default=(0.2, 0.45),
                                      metadata={"help": "Gray range per unit of intensity (0-1 of the range)."})
    bit_depths: tuple[int, ...] = field(default=(8, 16), metadata={"help": "Bit depths drawn from: 8 and/or 16."})

    def __post_init__(self) -> None:
        # The generator checks the size (and says so in its own words).
        object.__setattr__(self, "size_hw", SyntheticConfig(size_hw=self.size_hw).size_hw)
        for f in fields(self):
            if f.name in ("size_hw", "over_focus", "bit_depths"):
                continue
            integer = f.name in ("cavities", "loops", "precipitates", "lines")
            lo = 1.0 if f.name.endswith("radius_px") else (1e-9 if f.name == "dose" else 0.0)
            object.__setattr__(self, f.name, _range(f.name, getattr(self, f.name), lo=lo, integer=integer))
        if not 0.0 <= float(self.over_focus) <= 1.0:
            raise ValueError(f"pretrain config: expected over_focus in [0, 1], got {self.over_focus!r}")
        depths = tuple(int(b) for b in self.bit_depths)
        if not depths or any(b not in (8, 16) for b in depths):
            raise ValueError(f"pretrain config: expected bit_depths from (8, 16), got {self.bit_depths!r}")
        object.__setattr__(self, "bit_depths", depths)
        for name in ("background_level", "gain"):
            if getattr(self, name)[1] > 1.0:
                raise ValueError(f"pretrain config: expected {name} within [0, 1], got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Imaging:
    """How one image was taken (see the module docstring): drawn by :func:`draw_imaging`, or given.

    ``dose = math.inf`` is no shot noise; ``focus`` is ``"under"`` or ``"over"``.
    """

    focus: str = "under"
    fringe_contrast: float = 0.3
    fringe_width_px: float = 1.0
    cavity_brightness: float = 0.05
    contrast: float = 1.0
    thickness_gradient: float = 0.0
    gradient_deg: float = 0.0
    blur_px: float = 0.8
    dose: float = 200.0
    read_noise: float = 0.01
    background_level: float = 0.45
    gain: float = 0.3
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.focus not in ("under", "over"):
            raise ValueError(f"imaging: expected focus 'under' or 'over', got {self.focus!r}")
        if int(self.bit_depth) not in (8, 16):
            raise ValueError(f"imaging: expected bit_depth 8 or 16, got {self.bit_depth!r}")
        object.__setattr__(self, "bit_depth", int(self.bit_depth))
        for f in fields(self):
            if f.name in ("focus", "bit_depth"):
                continue
            v = float(getattr(self, f.name))
            if math.isnan(v) or (v < 0 and f.name != "gradient_deg") or (math.isinf(v) and f.name != "dose"):
                raise ValueError(f"imaging: expected a finite {f.name} >= 0, got {getattr(self, f.name)!r}")
            object.__setattr__(self, f.name, v)
        if not self.dose > 0 or self.fringe_width_px <= 0 or self.gain <= 0:
            raise ValueError("imaging: expected dose, fringe_width_px and gain > 0")


def draw_imaging(rng: np.random.Generator, config: PretrainConfig = PretrainConfig()) -> Imaging:
    """One image's imaging conditions, drawn from the ranges of ``config``."""
    u = lambda name: float(rng.uniform(*getattr(config, name)))  # noqa: E731
    d_lo, d_hi = config.dose
    return Imaging(
        focus="over" if rng.random() < config.over_focus else "under",
        fringe_contrast=u("fringe_contrast"), fringe_width_px=u("fringe_width_px"),
        cavity_brightness=u("cavity_brightness"), contrast=u("contrast"),
        thickness_gradient=u("thickness_gradient"), gradient_deg=float(rng.uniform(0.0, 360.0)),
        blur_px=u("blur_px"),
        dose=d_hi if d_lo == d_hi else float(math.exp(rng.uniform(math.log(d_lo), math.log(d_hi)))),
        read_noise=u("read_noise"), background_level=u("background_level"), gain=u("gain"),
        bit_depth=int(rng.choice(config.bit_depths)),
    )


# --------------------------------------------------------------------------------------
# Cavities: placed in the room the generator left, drawn as Fresnel phase objects


def _ellipse_depth(x: np.ndarray, y: np.ndarray, e: Ellipse) -> np.ndarray:
    """Relative depth ``sqrt(1 − ρ²)`` of the ellipsoid under ellipse ``e`` (0 outside), at
    points ``x`` (1, W) × ``y`` (H, 1); the rotation is clockwise on screen (y down)."""
    t = math.radians(e.rotation_deg)
    dx, dy = x - e.cx, y - e.cy
    u = dx * math.cos(t) + dy * math.sin(t)
    v = dy * math.cos(t) - dx * math.sin(t)
    return np.sqrt(np.clip(1.0 - (u / e.rx) ** 2 - (v / e.ry) ** 2, 0.0, None))


def _cavity_factor(e: Ellipse, size_hw: tuple[int, int], imaging: Imaging):
    """``(slices, factor)``: the cavity's multiplicative contrast over its crop of the image."""
    from scipy import ndimage

    h, w = size_hw
    reach = e.rx + _FRINGE_REACH * imaging.fringe_width_px + 2
    c0, r0 = max(0, math.floor(e.cx - reach)), max(0, math.floor(e.cy - reach))
    c1, r1 = min(w, math.ceil(e.cx + reach)), min(h, math.ceil(e.cy + reach))
    s = _SUPERSAMPLE
    x = (c0 + (np.arange((c1 - c0) * s) + 0.5) / s)[None, :]
    y = (r0 + (np.arange((r1 - r0) * s) + 0.5) / s)[:, None]
    depth = _ellipse_depth(x, y, e).reshape(r1 - r0, s, c1 - c0, s).mean(axis=(1, 3))
    lap = ndimage.gaussian_laplace(depth, imaging.fringe_width_px, mode="constant")
    peak = float(lap.max())
    sign = -1.0 if imaging.focus == "under" else 1.0
    fringe = 1.0 + sign * (imaging.fringe_contrast / peak) * lap if peak > 0 else np.ones_like(lap)
    factor = np.clip(fringe, 0.05, None) * (1.0 + imaging.cavity_brightness * depth)
    return (slice(r0, r1), slice(c0, c1)), factor


def _place_cavities(rng: np.random.Generator, n: int, occupied: np.ndarray, config: PretrainConfig,
                    fringe_reach_px: float) -> list[Ellipse]:
    """Up to ``n`` cavities in the free room of ``occupied`` (H, W) bool, each with its fringe
    at least a gap away from every defect and inside the image; a cavity with no room is left out."""
    from scipy import ndimage

    h, w = occupied.shape
    taken = occupied.copy()
    yy, xx = np.mgrid[0:h, 0:w]
    edge = np.minimum(np.minimum(xx + 0.5, w - xx - 0.5), np.minimum(yy + 0.5, h - yy - 0.5))
    out: list[Ellipse] = []
    for _ in range(n):
        rx = float(rng.uniform(*config.cavity_radius_px))
        ry = rx * float(rng.uniform(0.8, 1.0))
        rot = float(rng.uniform(0.0, 180.0))
        clearance = rx + fringe_reach_px + _GAP_PX + 1.0  # + 1: the sub-pixel jitter of the center
        free = ndimage.distance_transform_edt(~taken) if taken.any() else np.full((h, w), np.inf)
        ok = np.flatnonzero(((free >= clearance) & (edge >= rx + fringe_reach_px + _EDGE_MARGIN_PX + 1.0)).ravel())
        if ok.size == 0:
            continue
        r, c = divmod(int(rng.choice(ok)), w)
        cx, cy = c + 0.5 + rng.uniform(-0.5, 0.5), r + 0.5 + rng.uniform(-0.5, 0.5)
        out.append(Ellipse(label=_CAVITY, cx=round(cx, _DECIMALS), cy=round(cy, _DECIMALS), rx=round(rx, _DECIMALS),
                           ry=round(ry, _DECIMALS), rotation_deg=round(rot, _DECIMALS), source="synthetic"))
        taken |= (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= (rx + fringe_reach_px) ** 2
    return out


def _background(intensity: np.ndarray, defects: np.ndarray) -> np.ndarray:
    """The smooth background ``B``: ``intensity`` with ``defects`` masked out, Gaussian-averaged."""
    from scipy import ndimage

    keep = (~defects).astype(np.float64)
    num = ndimage.gaussian_filter(intensity * keep, _BACKGROUND_SIGMA_PX, mode="nearest")
    den = ndimage.gaussian_filter(keep, _BACKGROUND_SIGMA_PX, mode="nearest")
    fallback = float(np.median(intensity[~defects])) if (~defects).any() else float(np.median(intensity))
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), fallback)


def _footprints(item: Item) -> np.ndarray:
    """(H, W) bool: every labeled defect's pixels, grown by a few px (rims and rings included)."""
    from scipy import ndimage

    from ..raster import semantic_mask

    mask = semantic_mask(item, {lab.name: i for i, lab in enumerate(SYNTHETIC_LABELS, start=1)}, line_width=4.0) > 0
    return ndimage.binary_dilation(mask, iterations=_FOOTPRINT_GROW_PX) if mask.any() else mask


def _streams(seed: int | np.random.SeedSequence) -> list[np.random.Generator]:
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    return [np.random.default_rng(s) for s in ss.spawn(3)]


def pretrain_item(
    seed: int | np.random.SeedSequence,
    config: PretrainConfig = PretrainConfig(),
    *,
    imaging: Imaging | None = None,
    name: str = "pretrain_000.png",
) -> tuple[np.ndarray, Item, Imaging]:
    """One pretraining micrograph, its exact shapes, and how it was imaged.

    Parameters
    ----------
    seed : int or numpy.random.SeedSequence
        Split into three streams: defects, imaging conditions, noise. The same seed with another
        ``imaging`` gives the same defects in the same places.
    config : PretrainConfig
        Ranges of the defects and of the imaging conditions.
    imaging : Imaging, optional
        The imaging conditions to use instead of drawing them from ``config``.
    name : str
        The item's name.

    Returns
    -------
    image : ndarray
        (H, W) uint8 or uint16 (``imaging.bit_depth``), ``H, W = config.size_hw``.
    item : Item
        The shapes in the order of :data:`~defectlab.preparation.synthetic.SYNTHETIC_LABELS`
        (cavities, loops, precipitates, lines), all ``source="synthetic"``; cavities are
        :class:`~defectlab.model.Ellipse` at their physical edge. There may be fewer defects
        than drawn when no free place was found for some of them.
    imaging : Imaging
        The conditions used.
    """
    image, item, imaging, _ = _render(seed, config, imaging, name)
    return image, item, imaging


def _render(seed: int | np.random.SeedSequence, config: PretrainConfig, imaging: Imaging | None,
            name: str) -> tuple[np.ndarray, Item, Imaging, SyntheticConfig]:
    """:func:`pretrain_item`, and how many defects of each label were drawn (as a generator config)."""
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"expected a PretrainConfig, got {type(config).__name__}")
    geometry, conditions, noise = _streams(seed)
    if imaging is None:
        imaging = draw_imaging(conditions, config)
    counts = {k: int(geometry.integers(lo, hi + 1)) for k, (lo, hi) in
              (("cavities", config.cavities), ("loops", config.loops), ("precipitates", config.precipitates),
               ("lines", config.lines))}
    clean = SyntheticConfig(size_hw=config.size_hw, n_cavities=0, n_loops=counts["loops"],
                            n_precipitates=counts["precipitates"], n_lines=counts["lines"],
                            loop_radius_px=config.loop_radius_px, precipitate_radius_px=config.precipitate_radius_px,
                            noise=0.0, dose=math.inf, blur_px=0.0)
    base, item = synthetic_item(geometry, clean, name=name)
    lo, hi = INTENSITY_RANGE
    intensity = lo + base.astype(np.float64) * ((hi - lo) / 255.0)
    occupied = _footprints(item)
    cavities = _place_cavities(geometry, counts["cavities"], occupied, config,
                               _FRINGE_REACH * imaging.fringe_width_px)
    item = Item(name=name, size_hw=config.size_hw, shapes=tuple(cavities) + item.shapes)
    for e in cavities:
        where, factor = _cavity_factor(e, config.size_hw, imaging)
        intensity[where] *= factor
        occupied[where] |= factor != 1.0
    background = _background(intensity, occupied)
    intensity = background + imaging.contrast * (intensity - background)
    if imaging.thickness_gradient:
        h, w = config.size_hw
        t = math.radians(imaging.gradient_deg)
        x = (np.arange(w) + 0.5 - w / 2)[None, :]
        y = (np.arange(h) + 0.5 - h / 2)[:, None]
        extent = abs(w * math.cos(t)) + abs(h * math.sin(t))
        p = (x * math.cos(t) + y * math.sin(t)) / extent + 0.5
        intensity = intensity * np.exp(-imaging.thickness_gradient * (p - 0.5))
    if imaging.blur_px > 0:
        from scipy import ndimage

        intensity = ndimage.gaussian_filter(intensity, imaging.blur_px, mode="nearest")
    if math.isfinite(imaging.dose):
        intensity = noise.poisson(np.maximum(intensity, 0.0) * imaging.dose) / imaging.dose
    top = float(2 ** imaging.bit_depth - 1)
    gray = top * (imaging.background_level + imaging.gain * (intensity - 1.0))
    if imaging.read_noise > 0:
        gray = gray + noise.normal(0.0, imaging.read_noise * top, gray.shape)
    dtype = np.uint8 if imaging.bit_depth == 8 else np.uint16
    wanted = replace(clean, n_cavities=counts["cavities"])
    return np.clip(np.rint(gray), 0, top).astype(dtype), item, imaging, wanted


def make_pretrain_dataset(
    out_dir: str | Path,
    *,
    n_images: int = 64,
    config: PretrainConfig = PretrainConfig(),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> Dataset:
    """Write pretraining micrographs and their labels as a CVAT for images 1.1 export.

    Writes ``out_dir/images/pretrain_000.png`` (8-bit) or ``.tif`` (16-bit) …,
    ``out_dir/annotations.xml`` and ``out_dir/imaging.json`` (image name -> its
    :class:`Imaging` as a dict; ``"dose": null`` is no shot noise), all at once: a failed or interrupted run leaves no half-written folder.

    Parameters
    ----------
    out_dir : path
        The folder to create (replaced only with ``overwrite``).
    n_images : int
        Number of images; image ``i`` is drawn from ``SeedSequence(seed).spawn(n_images)[i]``.
    config : PretrainConfig
        Ranges of the defects and imaging conditions.
    seed : int
        Seed of the whole set.
    overwrite : bool
        Replace an existing non-empty ``out_dir``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Dataset
        :data:`~defectlab.preparation.synthetic.SYNTHETIC_LABELS`, one item per image (its
        file under ``out_dir``), a ``synthetic-fewer-defects`` note per image that holds
        fewer defects than were drawn for it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "pretrain"
    >>> ds = make_pretrain_dataset(out, n_images=2, config=PretrainConfig(size_hw=(64, 64), bit_depths=(16,)))
    >>> sorted(p.name for p in (out / "images").iterdir()), (out / "imaging.json").is_file()
    (['pretrain_000.tif', 'pretrain_001.tif'], True)
    """
    from tqdm.auto import tqdm

    from .._output import output_dir
    from ..formats.cvat_xml import write_cvat
    from ..imaging.io import write_image

    if isinstance(n_images, bool) or int(n_images) != n_images or n_images < 0:
        raise ValueError(f"expected n_images >= 0, got {n_images!r}")
    out = Path(out_dir)
    streams = np.random.SeedSequence(int(seed)).spawn(int(n_images))
    items: list[Item] = []
    notes: list[Note] = []
    record: dict[str, dict] = {}
    with output_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        for i, stream in enumerate(tqdm(streams, desc="pretraining images", unit="img", disable=not progress)):
            image, item, imaging, wanted = _render(stream, config, None, f"pretrain_{i:03d}")
            name = f"pretrain_{i:03d}{'.png' if imaging.bit_depth == 8 else '.tif'}"
            write_image(tmp / "images" / name, image)
            item = Item(name, item.size_hw, item.shapes, id=i)
            items.append(item)
            record[name] = {k: (None if isinstance(v, float) and math.isinf(v) else v)
                            for k, v in asdict(imaging).items()}
            note = _shortfall(item, wanted)
            if note is not None:
                notes.append(note)
        staged = Dataset(labels=SYNTHETIC_LABELS, items=tuple(
            Item(it.name, it.size_hw, it.shapes, image=ImageSource(tmp / "images" / it.name), id=it.id)
            for it in items), notes=tuple(notes))
        write_cvat(staged, tmp / "annotations.xml")
        (tmp / IMAGING_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    final = tuple(Item(it.name, it.size_hw, it.shapes, image=ImageSource(out / "images" / it.name), id=it.id)
                  for it in items)
    return Dataset(labels=SYNTHETIC_LABELS, items=final, notes=tuple(notes), source=str(out))
