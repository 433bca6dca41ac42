"""The options of ``defectlab prepare``, declared once.

:class:`PrepareOptions` is what :func:`defectlab.preparation.prepare`, :func:`defectlab.prepare`
and ``defectlab prepare`` take: the output format, the tiles, the split, the augmentations,
resizing, normalization and the writer's own options.

Examples
--------
>>> o = PrepareOptions(tile=256, split="0.8,0.1,0.1", augment="rot90, flip")
>>> o.tile, o.split, o.augment
((256, 256), (0.8, 0.1, 0.1), 'flip,rot90')
>>> PrepareOptions(split="0.8,0.3")
Traceback (most recent call last):
...
ValueError: prepare: split: expected train,val,test shares that sum to 1, got '0.8,0.3' (sum 1.1); shares in whole numbers (8,2,1) are scaled to sum to 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..options import Options, flag, option, size_pair
from ..raster import DEFAULT_LINE_WIDTH

__all__ = ["FITS", "NORMALIZATIONS", "PrepareOptions", "prepare_formats", "split_shares"]

#: Normalizations the datasets can apply, recorded in the manifest.
NORMALIZATIONS = ("minmax", "meanstd", "none")
#: How an image is brought to ``image_size_hw`` (:func:`defectlab.preparation.resize.fit`).
FITS = ("scale", "pad", "letterbox")
#: Writable formats whose writer makes one file rather than a folder of images and labels:
#: the tiles of a split cannot be laid out for them.
_ONE_FILE = ("cvat",)


def prepare_formats() -> tuple[str, ...]:
    """The formats ``prepare`` writes: the registry's writable formats that write a folder."""
    from ..formats import format_names

    return tuple(n for n in format_names(writable=True) if n not in _ONE_FILE)


def _format(value: Any) -> str:
    """An output format ``prepare`` writes; a FormatError listing them otherwise."""
    from ..errors import FormatError
    from ..formats import format_names

    known = prepare_formats()
    if value in known:
        return value
    if value in format_names(writable=True):
        raise FormatError(f"prepare cannot write {value!r}: its writer makes one file, not a folder of tiles; "
                          f"prepare writes: {', '.join(known)} (convert the prepared tiles to {value} after)")
    raise FormatError(f"unknown format {value!r} for prepare; prepare writes: {', '.join(known)}")


def _show_pair(hw: tuple[int, int]) -> str:
    return str(hw[0]) if hw[0] == hw[1] else f"{hw[0]}x{hw[1]}"


def split_shares(value: Any) -> tuple[float, float, float] | str:
    """The (train, val, test) shares from ``"0.8,0.1,0.1"``, whole-number proportions ``"8,1,1"``,
    a sequence, or ``"keep"`` (the export's own subsets).

    Fractions must sum to 1: ``0.8,0.3`` is refused rather than quietly rescaled. Whole
    numbers are proportions and are scaled (``8,1,1`` is 0.8, 0.1, 0.1).

    Examples
    --------
    >>> split_shares("0.8,0.2"), split_shares("8,1,1"), split_shares("keep")
    ((0.8, 0.2, 0.0), (0.8, 0.1, 0.1), 'keep')
    """
    from .splits import parse_fractions

    if isinstance(value, str) and value.strip().lower() == "keep":
        return "keep"
    parts = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else list(value)
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ValueError(f"expected split shares like '0.8,0.1,0.1' or 'keep', got {value!r}") from None
    shown = value if isinstance(value, str) else ",".join(f"{x:g}" for x in numbers)
    whole = all(math.isfinite(x) and x == int(x) for x in numbers)
    if numbers and not whole and abs(sum(numbers) - 1.0) > 1e-6:
        raise ValueError(f"expected train,val,test shares that sum to 1, got {shown!r} (sum {sum(numbers):g}); "
                         f"shares in whole numbers (8,2,1) are scaled to sum to 1")
    return tuple(float(f"{x:.12g}") for x in parse_fractions(numbers))  # type: ignore[return-value]


def _show_split(value: Any) -> str:
    return value if isinstance(value, str) else ",".join(f"{x:g}" for x in value)


def _augment(value: Any) -> str | None:
    """Augmentations in their canonical spelling (``"flip,rot90,noise=0:0.05"``); None for none."""
    from .augment import Augment

    aug = Augment(value.ops) if isinstance(value, Augment) else Augment.parse(value)
    return str(aug) or None


@dataclass(frozen=True, slots=True)
class PrepareOptions(Options):
    """How an export becomes training data.

    Parameters
    ----------
    to : str
        Output format, one of :func:`prepare_formats` (``"unet"``, ``"maskrcnn"``, ``"yolo"``,
        ``"coco"``, ``"instance-tiff"``).
    tile : int or (int, int), optional
        Tile height and width in px (kept as ``(H, W)``); None or 0 keeps whole images.
    stride : int or (int, int), optional
        Step between tiles (default: the tile size, no overlap).
    pad : bool
        Pad at the right/bottom border (with ``fill``) instead of moving the last tiles inside.
    fill : float
        Pixel value of padding.
    split : str or (float, float, float)
        (train, val, test) shares summing to 1 (``"0.8,0.1,0.1"``), whole-number proportions
        (``"8,1,1"``), or ``"keep"`` to keep the export's own subsets (Train / Validation /
        Test, any case); kept as three fractions or ``"keep"``.
    stratify : bool
        Balance label counts across splits (by source image).
    spatial : bool, optional
        Split each image spatially into regions (see :mod:`defectlab.preparation.splits`).
        Default: only when there is a single source image and a val or test share.
    margin_px : int
        Spatial split: band left out between regions of different splits.
    augment : str, optional
        Augmentations for the training tiles, e.g. ``"flip,rot90,noise"`` (see
        :mod:`defectlab.preparation.augment`; kept in canonical spelling); ``copies`` augmented
        copies are written beside each original training tile. Validation and test tiles are
        never augmented.
    copies : int
        Augmented copies per training tile.
    seed : int
        Seeds the split, the choice of empty tiles and every augmentation: the same seed and
        input give the same output, byte for byte.
    min_visible : float, optional
        Share of an instance a clipped remainder must show to be kept. Default: 0 for
        ``unet`` (a semantic mask must keep every defect pixel, or it would teach that they
        are background) and 0.25 for the instance outputs.
    keep_empty : float
        Share of the tiles without any instance to keep (seeded choice).
    image_size_hw : int or (int, int), optional
        Bring every source image to this size before tiling (with ``fit``).
    fit : {"scale", "pad", "letterbox"}
        How ``image_size_hw`` is reached (see :func:`defectlab.preparation.resize.fit`):
        shapes are moved exactly, masks are not resampled.
    normalization : {"minmax", "meanstd", "none"}
        Recorded in the manifest for the datasets and prediction.
    line_width : float
        Width in px of polyline masks (dislocation lines), for tiling and the writers.
    stack : bool
        unet: also write ``images.npy`` and ``masks.npy`` per split.
    task : {"detect", "segment"}, optional
        yolo: boxes or polygons. Default: ``segment`` when the export has outlines (polygons,
        ellipses, masks), else ``detect``; a note says which.
    """

    verb: ClassVar[str] = "prepare"

    to: str = option("unet", help="Output format.", choices=prepare_formats, convert=_format, metavar="FORMAT")
    tile: tuple[int, int] | None = option(
        (256, 256), help="Tile size in px: 256 or HxW; 0 keeps whole images.", convert=size_pair, show=_show_pair,
        metavar="PX|HxW")
    stride: tuple[int, int] | None = option(
        None, help="Step between tiles, px or HxW (default: the tile size).", convert=size_pair, metavar="PX|HxW")
    pad: bool = flag(help="Pad at the right/bottom border instead of moving the last tiles inside.", cli="--pad")
    fill: float = option(0.0, help="Pixel value of the padding (--pad, --fit pad).", metavar="VALUE")
    split: tuple[float, float, float] | str = option(
        (0.8, 0.1, 0.1), help="train,val,test shares summing to 1, whole-number proportions (8,1,1), or 'keep' "
                              "for the export's own subsets.", convert=split_shares, show=_show_split,
        metavar="SHARES")
    stratify: bool = flag(help="Balance label counts across splits.", cli="--stratify")
    spatial: bool | None = option(
        None, help="Split each image into regions (default: only for a single image).", cli="--spatial/--no-spatial")
    margin_px: int = option(0, help="Spatial split: px left out between regions of different splits.",
                            cli="--margin-px", min=0, metavar="PX")
    augment: str | None = option(
        None, help="Augmentations for training tiles, comma-separated or repeated: flip, rot90, "
                   "rotate=-30:30, zoom, noise=0:0.05@0.5 and the others of defectlab.preparation.augment.",
        convert=_augment, multiple=True, metavar="OPS")
    copies: int = option(1, help="Augmented copies per training tile.", min=0, metavar="N")
    seed: int = option(0, help="Seed of the split, the empty-tile choice and the augmentations.", metavar="N")
    min_visible: float | None = option(
        None, help="Share of an instance a clipped remainder must show to be kept (default: 0 for unet, 0.25 "
                   "otherwise).", cli="--min-visible", min=0, max=1, metavar="SHARE")
    keep_empty: float = option(1.0, help="Share of tiles without instances to keep.", cli="--keep-empty", min=0,
                               max=1, metavar="SHARE")
    image_size_hw: tuple[int, int] | None = option(
        None, help="Bring every image to this size first: 512 or HxW.", cli="--size", convert=size_pair,
        metavar="PX|HxW")
    fit: str = option("scale", help="How --size is reached.", choices=FITS)
    normalization: str = option("minmax", help="Normalization recorded for training and prediction.",
                                choices=NORMALIZATIONS)
    line_width: float = option(DEFAULT_LINE_WIDTH, help="Width in px of polyline (dislocation line) masks.",
                               above=0, metavar="PX")
    stack: bool = flag(help="unet: also write images.npy and masks.npy per split.", cli="--stack")
    task: str | None = option(None, help="yolo: detect (boxes) or segment (polygons); default: segment when the "
                                         "export has outlines, else detect.", choices=("detect", "segment"))

    def _validate(self) -> None:
        if self.stack and self.to != "unet":
            raise ValueError(f"prepare: stack applies to unet only, not to {self.to}")
        if self.task is not None and self.to != "yolo":
            raise ValueError(f"prepare: task applies to yolo only, not to {self.to}")
