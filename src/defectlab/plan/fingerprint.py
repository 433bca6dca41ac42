"""The fingerprint of a labeled set: what the plan is made from.

Measured on the images and their labels (nnU-Net's idea of a *dataset fingerprint*, for
2-D micrographs of defects):

- **images**: sizes, pixel type and bit depth (16-bit PNGs, which Pillow reads as int32,
  count as 16-bit), channels, pixel size (nm, when the files are calibrated);
- **intensities**: percentiles of every pixel, and of the labeled (defect) pixels alone, in
  the images' own units; each image's median and 0.5 / 99.5 percentiles; the share of pixels
  at the ends of the pixel type (saturated or clipped); the noise (Immerkær's fast estimate,
  1996: the mean absolute response to a 3 × 3 Laplacian difference kernel, × √(π/2) / 6), as a
  share of each image's 0.5–99.5 percentile range;
- **defects, per label**: how many, in how many images; equivalent diameter and extent (the
  longer side of the pixel bounding box) in px; elongation (extent² / area: 1.27 for a disc,
  about length / width for a line); whether the label is *thin* (lines: mostly polylines, or a
  median elongation of 6 or more); the share of defects that touch or overlap another of the
  same label (they merge in a class mask) and that share pixels with any other defect.

Percentiles are computed over every pixel of images up to :data:`MAX_SAMPLES_PER_IMAGE`
pixels, and over an even stride of the pixels of larger ones.

Examples
--------
>>> import numpy as np
>>> from defectlab.model import Dataset, Ellipse, Item, Label
>>> item = Item("a.png", (64, 64), (Ellipse(label="cavity", cx=20, cy=20, rx=6, ry=6),
...                                 Ellipse(label="cavity", cx=31, cy=20, rx=5, ry=5)))
>>> fp = fingerprint(Dataset((Label("cavity"),), (item,)), arrays={"a.png": np.full((64, 64), 100, np.uint8)})
>>> fp.bit_depth, fp.classes[0].count, fp.classes[0].touching, fp.classes[0].extent_px.max
(8, 2, 1.0, 12.0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DatasetError, ImageError
from ..model import Dataset, Item, Note
from ..raster import DEFAULT_LINE_WIDTH, instances

__all__ = ["ClassStats", "Fingerprint", "ImageStats", "Spread", "fingerprint", "MAX_SAMPLES_PER_IMAGE",
           "THIN_ELONGATION", "bit_depth_of"]

#: Images larger than this many pixels are sampled on an even stride for percentiles.
MAX_SAMPLES_PER_IMAGE = 1 << 20
#: A label whose median elongation (extent² / area) reaches this is thin (a line).
THIN_ELONGATION = 6.0
#: Percentiles recorded (of all pixels, and of the labeled ones).
PERCENTILES: tuple[float, ...] = (0.1, 0.5, 1.0, 50.0, 99.0, 99.5, 99.9)


@dataclass(frozen=True, slots=True)
class Spread:
    """min, 5th percentile, median, 95th percentile, max of some values (NaN when there are none)."""

    min: float
    p05: float
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return cls(*(math.nan,) * 5)
        return cls(*(float(x) for x in np.percentile(v, [0, 5, 50, 95, 100])))


@dataclass(frozen=True, slots=True)
class ImageStats:
    """One image: name, size (H, W), pixel type, bit depth, channels, pixel size (nm or None),
    its 0.5 / 50 / 99.5 percentiles, its noise as a share of its 0.5–99.5 percentile range."""

    name: str
    size_hw: tuple[int, int]
    dtype: str
    bit_depth: int
    channels: int
    pixel_size_nm: float | None
    p_low: float
    median: float
    p_high: float
    noise: float


@dataclass(frozen=True, slots=True)
class ClassStats:
    """The defects of one label (sizes in px; shares 0..1; see the module docstring);
    ``largest_item`` and ``largest_box_xyxy``: where its defect of the largest extent is."""

    name: str
    count: int
    images: int
    diameter_px: Spread
    extent_px: Spread
    elongation: float
    polylines: int
    thin: bool
    touching: float
    overlapping: float
    largest_item: str | None = None
    largest_box_xyxy: tuple[int, int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What :func:`fingerprint` measured. ``intensity`` and ``foreground`` map a percentile
    (``"p0.5"``, ``"p50"`` …, and ``"min"``, ``"max"``) to a value in the images' own units;
    ``foreground`` is empty without labeled pixels. ``clipped_low`` / ``clipped_high``: share
    of pixels at the least / greatest value the pixel type holds (0 and 255 for 8-bit …; for
    float images the set's min and max)."""

    images: tuple[ImageStats, ...]
    classes: tuple[ClassStats, ...]
    intensity: Mapping[str, float]
    foreground: Mapping[str, float]
    clipped_low: float
    clipped_high: float
    bit_depth: int
    dtype: str
    notes: tuple[Note, ...] = ()

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def min_side_px(self) -> int:
        """The shortest side of any image, px."""
        return min(min(i.size_hw) for i in self.images)

    @property
    def total_px(self) -> int:
        return sum(i.size_hw[0] * i.size_hw[1] for i in self.images)

    @property
    def pixel_sizes_nm(self) -> list[float]:
        return [i.pixel_size_nm for i in self.images if i.pixel_size_nm]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        d = asdict(self)
        d["notes"] = [str(n) for n in self.notes]
        return _clean(d)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def bit_depth_of(array: np.ndarray) -> int:
    """Bits per pixel of the image's type: 8, 16, 32, 64; 16 for integer arrays of a wider type
    whose values fit 0…65535 (Pillow reads 16-bit PNGs as int32).

    Examples
    --------
    >>> bit_depth_of(np.zeros(2, np.uint8)), bit_depth_of(np.array([0, 4095], np.int32)), bit_depth_of(np.zeros(2))
    (8, 16, 64)
    """
    if array.dtype.kind in "ui" and array.dtype.itemsize > 2 and array.size:
        if int(array.min()) >= 0 and int(array.max()) <= 65535:
            return 16
    return array.dtype.itemsize * 8


def _type_range(array: np.ndarray, bits: int) -> tuple[float, float]:
    """The least and greatest value the pixel type holds (NaN for float images)."""
    if array.dtype.kind not in "ui":
        return math.nan, math.nan
    if bits == 16 and array.dtype.itemsize > 2:
        return 0.0, 65535.0
    info = np.iinfo(array.dtype)
    return float(info.min), float(info.max)


def _noise(gray: np.ndarray) -> float:
    """Immerkær's estimate of the standard deviation of white noise in ``gray`` (H, W)."""
    from scipy import ndimage

    h, w = gray.shape
    if h < 3 or w < 3:
        return math.nan
    kernel = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    response = ndimage.convolve(gray.astype(np.float64), kernel, mode="nearest")[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).mean() / 6.0)


def _sample(values: np.ndarray) -> np.ndarray:
    flat = values.ravel()
    step = max(1, math.ceil(flat.size / MAX_SAMPLES_PER_IMAGE))
    return flat[::step]


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    out = {f"p{q:g}": float(v) for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))}
    out["min"], out["max"] = float(values.min()), float(values.max())
    return out


def _contacts(found: Sequence[Any], size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per instance: touches or overlaps another of its class (8-neighbour contact), and shares
    a pixel with any other instance."""
    from scipy import ndimage

    everyone = np.zeros(size_hw, dtype=np.int32)
    per_class: dict[int, np.ndarray] = {}
    for inst in found:
        everyone[inst.crop.slices] += inst.crop.bitmap
        cls = per_class.setdefault(inst.class_id, np.zeros(size_hw, dtype=np.int32))
        cls[inst.crop.slices] += inst.crop.bitmap
    touching = np.zeros(len(found), bool)
    overlapping = np.zeros(len(found), bool)
    h, w = size_hw
    for k, inst in enumerate(found):
        rows, cols = inst.crop.slices
        own = inst.crop.bitmap
        overlapping[k] = bool((everyone[rows, cols][own] >= 2).any())
        r0, r1 = max(0, rows.start - 1), min(h, rows.stop + 1)
        c0, c1 = max(0, cols.start - 1), min(w, cols.stop + 1)
        padded = np.zeros((r1 - r0, c1 - c0), bool)
        padded[rows.start - r0:rows.start - r0 + own.shape[0], cols.start - c0:cols.start - c0 + own.shape[1]] = own
        ring = ndimage.binary_dilation(padded, structure=np.ones((3, 3), bool)) & ~padded
        same = per_class[inst.class_id][r0:r1, c0:c1]
        touching[k] = bool((same[ring] > 0).any() or (same[padded] >= 2).any())
    return touching, overlapping


def _gray(array: np.ndarray, item: Item) -> np.ndarray:
    from ..imaging.io import to_gray

    if array.ndim == 3 and array.shape[-1] not in (1, 3):
        raise ImageError(f"{item.image}: expected a grayscale or RGB micrograph, got shape {array.shape}")
    return to_gray(array)


def fingerprint(
    dataset: Dataset,
    *,
    pixel_size: str | float | None = None,
    line_width: float = DEFAULT_LINE_WIDTH,
    arrays: Mapping[str, np.ndarray] | None = None,
    progress: bool = False,
) -> Fingerprint:
    """Measure a labeled set (see the module docstring).

    Parameters
    ----------
    dataset : Dataset
        Items with their image files found (``defectlab.read(export, images=...)``).
    pixel_size : str or float, optional
        Overrides the files' calibration (``"0.38nm"``).
    line_width : float
        Width in px of polyline masks (as in training).
    arrays : mapping, optional
        Item name -> its pixels, instead of reading the image files (for images in memory).
    progress : bool
        Show a progress bar with an ETA.

    Returns
    -------
    Fingerprint

    Raises
    ------
    DatasetError
        No item with pixels; an image whose size differs from its labels' is an
        :class:`~defectlab.errors.ImageError` naming both.
    """
    from tqdm.auto import tqdm

    from ..imaging.micrograph import parse_length, read_micrograph

    override = None if pixel_size is None else parse_length(pixel_size, what="pixel size")
    class_index = dataset.class_index()
    for it in dataset.items:
        for s in it.shapes:
            class_index.setdefault(s.label, len(class_index) + 1)
    names = {v: k for k, v in class_index.items()}
    notes: list[Note] = []
    stats: list[ImageStats] = []
    all_px: list[np.ndarray] = []
    fg_px: list[np.ndarray] = []
    clipped = [0, 0, 0]  # low, high, counted
    per_label: dict[str, dict[str, list]] = {n: {"diameter": [], "extent": [], "elongation": [], "touching": [],
                                                 "overlapping": [], "images": [], "polylines": [], "boxes": []}
                                             for n in class_index}
    depths: list[int] = []
    dtypes: list[str] = []
    for item in tqdm(dataset.items, desc="fingerprint", unit="image", disable=not progress):
        if arrays is not None and item.name in arrays:
            array, nm = np.asarray(arrays[item.name]), override
        elif item.image is not None:
            m = read_micrograph(item.image, pixel_size=override)
            array, nm = m.array, m.pixel_size_nm
        else:
            notes.append(Note("no-image", "image file not found (use --images DIR): its defects are counted, "
                                          "its pixels are not", item=item.name))
            array, nm = None, override
        found, skipped = instances(item, class_index, line_width=line_width)
        notes.extend(skipped)
        touching, overlapping = _contacts(found, item.size_hw)
        for k, inst in enumerate(found):
            d = per_label[names[inst.class_id]]
            x1, y1, x2, y2 = inst.box_xyxy
            area = inst.crop.area
            extent = float(max(x2 - x1, y2 - y1))
            d["diameter"].append(math.sqrt(4 * area / math.pi))
            d["extent"].append(extent)
            d["elongation"].append(extent * extent / area)
            d["touching"].append(bool(touching[k]))
            d["overlapping"].append(bool(overlapping[k]))
            d["images"].append(item.name)
            d["polylines"].append(inst.shape.kind == "polyline")
            d["boxes"].append(inst.box_xyxy)
        if array is None:
            continue
        if array.shape[:2] != item.size_hw:
            raise ImageError(f"{item.image or item.name}: image is {array.shape[1]}x{array.shape[0]} px (WxH), "
                             f"the labels of {item.name!r} say {item.size_hw[1]}x{item.size_hw[0]}")
        bits = bit_depth_of(array)
        depths.append(bits)
        dtypes.append(str(array.dtype))
        channels = 1 if array.ndim == 2 else int(array.shape[-1])
        if channels == 3:
            notes.append(Note("color-image", "an RGB image: measured as luminance", item=item.name))
        gray = _gray(array, item)
        lo_t, hi_t = _type_range(array, bits)
        if channels == 1 and math.isfinite(lo_t):
            clipped[0] += int(np.count_nonzero(gray == lo_t))
            clipped[1] += int(np.count_nonzero(gray == hi_t))
        clipped[2] += gray.size
        sample = _sample(gray).astype(np.float64)
        all_px.append(sample)
        labeled = np.zeros(item.size_hw, bool)
        for inst in found:
            labeled[inst.crop.slices] |= inst.crop.bitmap
        if labeled.any():
            fg_px.append(_sample(gray[labeled]).astype(np.float64))
        p_low, med, p_high = (float(v) for v in np.percentile(sample, [0.5, 50, 99.5]))
        span = p_high - p_low
        noise = _noise(gray) / span if span > 0 else math.nan
        stats.append(ImageStats(item.name, item.size_hw, str(array.dtype), bits, channels, nm, p_low, med, p_high,
                                noise))
    if not stats:
        raise DatasetError(f"{dataset.source or 'dataset'}: no image files found for its {len(dataset)} item(s); "
                           "a plan needs the pixels (use --images DIR)")
    classes = []
    for name, d in per_label.items():
        count = len(d["diameter"])
        polylines = int(sum(d["polylines"]))
        elongation = float(np.median(d["elongation"])) if count else math.nan
        thin = count > 0 and (polylines > count / 2 or elongation >= THIN_ELONGATION)
        k = int(np.argmax(d["extent"])) if count else None
        classes.append(ClassStats(
            name=name, count=count, images=len(set(d["images"])), diameter_px=Spread.of(d["diameter"]),
            extent_px=Spread.of(d["extent"]), elongation=elongation, polylines=polylines, thin=bool(thin),
            touching=float(np.mean(d["touching"])) if count else math.nan,
            overlapping=float(np.mean(d["overlapping"])) if count else math.nan,
            largest_item=None if k is None else d["images"][k],
            largest_box_xyxy=None if k is None else tuple(int(v) for v in d["boxes"][k])))
    pooled = np.concatenate(all_px)
    foreground = np.concatenate(fg_px) if fg_px else np.zeros(0)
    counted = max(clipped[2], 1)
    bit_depth = max(depths)
    if len(set(depths)) > 1:
        notes.append(Note("mixed-bit-depth", f"images of {sorted(set(depths))} bits per pixel; planned for {bit_depth}"))
    return Fingerprint(
        images=tuple(stats), classes=tuple(classes), intensity=_percentiles(pooled),
        foreground=_percentiles(foreground), clipped_low=clipped[0] / counted, clipped_high=clipped[1] / counted,
        bit_depth=bit_depth, dtype=max(set(dtypes), key=dtypes.count), notes=tuple(notes))
