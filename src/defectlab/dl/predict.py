"""Prediction on images of any size: overlapping tiles, blended without seams, bounded memory.

How a U-Net image is predicted
------------------------------
1. **Normalization** as in training: the whole image's minimum and maximum scale it to
   [0, 1] (:func:`defectlab.imaging.io.normalize_minmax`), applied tile by tile with the
   same float32 arithmetic, so the values are identical.
2. **Tiles** of ``tile`` px (a multiple of the net's ``2 ** depth``) at a uniform stride
   that is a multiple of ``2 ** depth`` too, so a pixel's features do not depend on which
   tile computed it (max pooling is only shift-invariant for such shifts). The stride is
   chosen so the tiles cover the image with at least ``overlap`` px of overlap and as
   little padding as possible; beyond the image the pixels are mirrored.
3. **Blending**: each tile's class probabilities are weighted by a window that is 0 on its
   outer ``margin`` px where a neighbor tile overlaps (predictions there lack context),
   rises as a raised cosine (Hann) over the rest of the overlap, and is 1 elsewhere and on
   the image's own edges. Adjacent windows sum to exactly 1 in their overlap (a partition
   of unity); the accumulated sum is divided by the accumulated weight all the same.
4. **Memory**: tiles go through the net ``batch_size`` at a time, and the image is done in
   bands of one tile row: only (classes × tile × width) float32 accumulate at once. Rows are
   finished (arg-max → class mask) as soon as no later tile touches them. The image itself
   and the outputs (a uint8 class mask, a uint8 confidence, probabilities on request) are
   what grows with the image.

Mask R-CNN images are cut into tiles of the training tile size (never resized: a tile is
exactly what the net saw in training), and each detection is kept by the one tile whose
central region holds its box center, so objects on tile borders are found once.

Examples
--------
>>> import numpy as np, torch
>>> from defectlab.dl.model_io import ClassInfo, Model, ModelConfig
>>> from defectlab.dl.unet import UNet, UNetConfig
>>> _ = torch.manual_seed(0)
>>> net = UNet(UNetConfig(n_classes=2, base_filters=4, depth=2, bottleneck_dilations=(1,)))
>>> model = Model(net, ModelConfig.for_unet(net.config, classes=[ClassInfo(1, "cavity")], tile_size=64, overlap=16))
>>> pred = model.predict(np.random.default_rng(0).random((100, 150)))
>>> pred.semantic.shape, pred.semantic.dtype, pred.instances.dtype
((100, 150), dtype('uint8'), dtype('int32'))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

try:
    import torch
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from .._output import output_dir
from ..errors import DatasetError, ImageError
from ..imaging.io import read_image, to_gray, write_image
from ..model import ImageSource
from ..raster.split import DEFAULT_NECK_RATIO, split_instances
from .engine import model_forward
from .model_io import Model

__all__ = [
    "Prediction", "TilePlan", "tile_plan", "window_1d", "predict_semantic", "predict_image",
    "predict_images", "PredictReport", "IMAGE_SUFFIXES", "PRELABEL_FORMATS", "find_images", "PREDICT_TILE",
    "unet_tile", "unet_semantic",
    "BATCH_PIXELS",
]

#: A U-Net predicts in tiles of up to this many px (or its training tile size, if larger): a
#: fully convolutional net gives the same result in the interior of any tile, and larger
#: tiles waste less on overlaps (a 1024² image is one tile, not 25 of 256 px).
PREDICT_TILE = 1024

#: By default a batch of U-Net tiles holds about this many pixels (one 1024² tile, sixteen of
#: 256²): the memory prediction needs is set by it, not by the image.
BATCH_PIXELS = 1024 * 1024

#: Pre-label formats :func:`predict_images` writes.
PRELABEL_FORMATS = ("cvat", "coco")

#: File suffixes taken as images when a folder is given.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Prediction:
    """What a model predicted for one image.

    Attributes
    ----------
    semantic : (H, W) uint8
        Class index per pixel, 0 = background.
    instances : (H, W) int32
        Instance id per pixel, 1..N, 0 = background.
    instance_classes : (N,) uint8
        Class of instance ``i`` at ``[i - 1]``.
    scores : (N,) float32
        Per instance: the Mask R-CNN detection score, or for a U-Net the mean probability
        of the instance's class over its pixels.
    classes : dict
        Class index -> name, from 1.
    confidence : (H, W) uint8, optional
        U-Net: the probability of the predicted class, ×255 rounded.
    probabilities : (C, H, W) float32 or float16, optional
        U-Net, on request: every class's probability (C includes the background).
    seconds : float
        Wall time of the prediction, s.
    engine : str
        What ran the net: ``"torch"``, ``"onnxruntime"`` or ``"onnxruntime-int8"``.
    """

    semantic: np.ndarray
    instances: np.ndarray
    instance_classes: np.ndarray
    scores: np.ndarray
    classes: dict[int, str]
    confidence: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    seconds: float = 0.0
    engine: str = "torch"

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self.semantic.shape[0]), int(self.semantic.shape[1])

    @property
    def n_instances(self) -> int:
        return int(len(self.instance_classes))

    def counts(self) -> dict[str, int]:
        """Number of instances per class name (every class listed, zeros included)."""
        got = np.bincount(self.instance_classes.astype(np.int64), minlength=max(self.classes, default=0) + 1)
        return {name: int(got[i]) for i, name in self.classes.items()}


# ---------------------------------------------------------------------------------------------
# Tiling and blending


@dataclass(frozen=True, slots=True)
class TilePlan:
    """Tiles along one axis: ``n`` tiles of ``tile`` px at ``stride``, covering ``padded`` px."""

    length: int
    tile: int
    stride: int
    n: int
    padded: int

    @property
    def origins(self) -> list[int]:
        return [k * self.stride for k in range(self.n)]

    @property
    def overlap(self) -> int:
        return self.tile - self.stride if self.n > 1 else 0


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def tile_plan(length: int, tile: int, overlap: int, multiple: int = 1, *, full_tiles: bool = False) -> TilePlan:
    """Plan the tiles along an axis of ``length`` px.

    Parameters
    ----------
    length : int
        Image size along the axis, px.
    tile : int
        Largest tile, px; a multiple of ``multiple``.
    overlap : int
        Least overlap of neighboring tiles, px; ``tile - overlap`` is a multiple of ``multiple``.
    multiple : int
        Tile size and stride are multiples of it (the U-Net's ``2 ** depth``).
    full_tiles : bool
        Always use tiles of ``tile`` px (pad a smaller image up to it). Otherwise the fewest
        tiles of at most ``tile`` px are used, each as small as covering the axis allows (a
        small image is one tile of its own size rounded up to ``multiple``): the net then
        computes as few pixels beyond the image and in overlaps as it can.

    Examples
    --------
    >>> tile_plan(1024, 256, 64, 8)
    TilePlan(length=1024, tile=256, stride=192, n=5, padded=1024)
    >>> tile_plan(1024, 1024, 64, 8)
    TilePlan(length=1024, tile=1024, stride=1024, n=1, padded=1024)
    >>> p = tile_plan(1500, 1024, 64, 8); p.tile, p.origins, p.overlap, p.padded
    (784, [0, 720], 64, 1504)
    >>> p = tile_plan(500, 256, 64, 8, full_tiles=True); p.origins, p.overlap, p.padded
    ([0, 128, 256], 128, 512)
    """
    if tile < 1 or tile % multiple:
        raise ValueError(f"expected a tile size that is a positive multiple of {multiple}, got {tile}")
    if not 0 <= overlap < tile or (tile - overlap) % multiple:
        raise ValueError(
            f"expected 0 <= overlap < tile with tile - overlap a multiple of {multiple}, got tile {tile}, "
            f"overlap {overlap} (use an overlap that is a multiple of {multiple})"
        )
    lm = _round_up(length, multiple)
    t = tile if full_tiles else min(tile, lm)
    if lm <= t:
        return TilePlan(length, t, t, 1, t)
    n = 1 + math.ceil((lm - t) / (t - overlap))
    if not full_tiles:  # n tiles of t cover lm, so the smallest such tile is <= t
        t = _round_up(math.ceil((lm + (n - 1) * overlap) / n), multiple)
    stride = _round_up(math.ceil((lm - t) / (n - 1)), multiple)
    return TilePlan(length, t, stride, n, t + (n - 1) * stride)


def window_1d(tile: int, overlap: int, margin: int, *, before: bool, after: bool) -> np.ndarray:
    """(tile,) float64 blending weights along one axis of a tile.

    On a side with a neighbor (``before``: the tile before it; ``after``: the one after),
    the weight is 0 on the outer ``margin`` px, then rises as a raised cosine
    ``0.5 - 0.5 cos(pi (d - margin + 0.5) / (overlap - 2 margin))`` over the rest of the
    ``overlap``, ``d`` being the distance in px from that side; 1 elsewhere. Two
    neighbors' weights add up to exactly 1 in their overlap.

    Examples
    --------
    >>> w = window_1d(8, 4, 1, before=False, after=True)
    >>> w.round(3).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.854, 0.146, 0.0]
    >>> w2 = window_1d(8, 4, 1, before=True, after=False)
    >>> (w[4:] + w2[:4]).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    if overlap and not 0 <= 2 * margin < overlap:
        raise ValueError(f"expected 0 <= 2 * margin < overlap, got margin {margin}, overlap {overlap}")
    d = np.arange(tile, dtype=np.float64)
    w = np.ones(tile, dtype=np.float64)
    if overlap == 0:
        return w
    ramp_len = overlap - 2 * margin

    def ramp(dist: np.ndarray) -> np.ndarray:
        x = np.clip((dist - margin + 0.5) / ramp_len, 0.0, 1.0)
        r = 0.5 - 0.5 * np.cos(np.pi * x)
        r[dist < margin] = 0.0
        r[dist >= margin + ramp_len] = 1.0
        return r

    if before:
        w *= ramp(d)
    if after:
        w *= ramp(d[::-1])
    return w


def _mirror_index(idx: np.ndarray, length: int) -> np.ndarray:
    """Indices beyond [0, length) mirrored back ('symmetric': edge pixels repeated)."""
    period = 2 * length
    i = np.mod(idx, period)
    return np.where(i < length, i, period - 1 - i)


class _Normalizer:
    """Per-tile min-max normalization with the whole image's min and max (as in training)."""

    def __init__(self, image: np.ndarray) -> None:
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
            raise ImageError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
        self.image = image
        if image.ndim == 2:  # float32 conversion is monotonic: min and max commute with it
            self.lo, self.hi = float(np.float32(image.min())), float(np.float32(image.max()))
            return
        lo, hi = math.inf, -math.inf
        step = max(1, 1_000_000 // max(1, image.shape[1]))
        for r in range(0, image.shape[0], step):  # in row chunks: no full-size float copy
            g = to_gray(image[r:r + step]).astype(np.float32)
            lo, hi = min(lo, float(g.min())), max(hi, float(g.max()))
        self.lo, self.hi = lo, hi

    def tile(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) float32 in [0, 1]."""
        g = to_gray(self.image[np.ix_(rows, cols)]).astype(np.float32)
        if self.hi > self.lo:
            return (g - self.lo) / (self.hi - self.lo)
        return np.zeros_like(g)


# ---------------------------------------------------------------------------------------------
# U-Net: tiled semantic prediction


def predict_semantic(
    forward: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    n_classes: int,
    multiple: int,
    tile: int = 256,
    overlap: int = 64,
    margin: int | None = None,
    batch_size: int = 4,
    probabilities: bool = False,
    probabilities_dtype: Any = np.float32,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Tiled, blended class probabilities of an image of any size (see the module docstring).

    Parameters
    ----------
    forward : callable
        ``(B, 1, th, tw) float32 -> (B, n_classes, th, tw) float32`` probabilities
        (softmax already applied), e.g. a U-Net on a device.
    image : (H, W) or (H, W, 3) array
        The raw image, any dtype; normalized here (min-max over the whole image).
    n_classes : int
        Classes including the background.
    multiple : int
        Tile size and stride multiple (the net's ``2 ** depth``).
    tile, overlap : int
        Tile size and least overlap, px.
    margin : int, optional
        Zero-weight border of a tile where a neighbor overlaps (default ``overlap // 4``).
    batch_size : int
        Tiles through the net at once.
    probabilities : bool
        Also return the (C, H, W) probabilities.
    probabilities_dtype : dtype
        Their dtype (``np.float16`` halves the memory).
    progress : bool
        A progress bar over tile rows.

    Returns
    -------
    semantic : (H, W) uint8
    confidence : (H, W) uint8
        The winning class's probability ×255.
    probabilities : (C, H, W) or None
    """
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if n_classes > 256:
        raise ValueError(f"a uint8 class mask holds at most 256 classes, got {n_classes}")
    norm = _Normalizer(np.asarray(image))
    h, w = norm.image.shape[:2]
    py, px = tile_plan(h, tile, overlap, multiple), tile_plan(w, tile, overlap, multiple)
    margin = overlap // 4 if margin is None else int(margin)  # effective overlaps are >= overlap
    if margin < 0:
        raise ValueError(f"expected margin >= 0, got {margin}")
    for p in (py, px):
        if p.overlap and 2 * margin >= p.overlap:
            raise ValueError(f"expected margin < overlap / 2, got margin {margin}, overlap {p.overlap}")
    wins_y = {(b, a): window_1d(py.tile, py.overlap, margin, before=b, after=a).astype(np.float32)
              for b in (False, True) for a in (False, True)}
    wins_x = {(b, a): window_1d(px.tile, px.overlap, margin, before=b, after=a).astype(np.float32)
              for b in (False, True) for a in (False, True)}
    col_idx = [_mirror_index(np.arange(x0, x0 + px.tile), w) for x0 in px.origins]
    one_tile = py.n * px.n == 1

    semantic = np.empty((h, w), dtype=np.uint8)
    confidence = np.empty((h, w), dtype=np.uint8)
    probs_out = np.empty((n_classes, h, w), dtype=probabilities_dtype) if probabilities else None
    # one band of a tile row, reused: after each row its last (tile - stride) rows move up
    acc = np.zeros((n_classes, py.tile, px.padded), dtype=np.float32)
    wsum = np.zeros((py.tile, px.padded), dtype=np.float32)
    rows_iter: Iterable[int] = range(py.n)
    if progress:
        from tqdm.auto import tqdm

        rows_iter = tqdm(rows_iter, desc="tile rows", unit="row", leave=False)
    for k in rows_iter:
        y0 = k * py.stride
        rows = _mirror_index(np.arange(y0, y0 + py.tile), h)
        wy = wins_y[(k > 0, k < py.n - 1)]
        for j0 in range(0, px.n, batch_size):
            js = range(j0, min(j0 + batch_size, px.n))
            batch = np.stack([norm.tile(rows, col_idx[j]) for j in js])[:, None]
            out = forward(batch)
            if out.shape != (len(js), n_classes, py.tile, px.tile):
                raise ValueError(f"the net returned shape {tuple(out.shape)} for a batch of shape "
                                 f"{tuple(batch.shape)}; expected {(len(js), n_classes, py.tile, px.tile)}")
            if one_tile:  # its weights are all 1
                acc[:] = out[0]
            for b, j in enumerate(() if one_tile else js):
                x0 = j * px.stride
                win = wy[:, None] * wins_x[(j > 0, j < px.n - 1)][None, :]
                out[b] *= win
                acc[:, :, x0:x0 + px.tile] += out[b]
                wsum[:, x0:x0 + px.tile] += win
            del batch, out
        done = py.stride if k < py.n - 1 else py.tile
        r1 = min(y0 + done, h)
        if r1 > y0:
            p = acc[:, :r1 - y0, :w]
            if not one_tile:
                p /= wsum[None, :r1 - y0, :w]  # in place: no band-sized temporary
            _arg_max(p, semantic[y0:r1], confidence[y0:r1])
            if probs_out is not None:
                probs_out[:, y0:r1] = p
            del p
        rest = py.tile - done
        if rest:
            acc[:, :rest] = acc[:, done:]
            wsum[:rest] = wsum[done:]
        acc[:, rest:] = 0.0
        wsum[rest:] = 0.0
    return semantic, confidence, probs_out


def _arg_max(p: np.ndarray, index: np.ndarray, confidence: np.ndarray) -> None:
    """``index[...] = p.argmax(0)`` (the first of equal maxima) and ``confidence[...] =
    rint(255 * p.max(0))``, class by class: about 5× faster than ``argmax`` over the first
    axis of a (C, H, W) array, which numpy walks with a stride of H × W."""
    top = p[0].copy()
    index[...] = 0
    better = np.empty(top.shape, dtype=bool)
    as_int = better.view(np.uint8)  # 0 or 1: the class is set with arithmetic, not a masked write
    tmp = np.empty(top.shape, dtype=np.uint8)
    for c in range(1, p.shape[0]):
        np.greater(p[c], top, out=better)
        index -= np.multiply(index, as_int, out=tmp)
        index += np.multiply(as_int, np.uint8(c), out=tmp)
        np.maximum(top, p[c], out=top)
    top *= 255.0
    confidence[...] = np.rint(top, out=top)


def unet_semantic(model: Model, image: np.ndarray, *, tile: int | None = None, overlap: int | None = None,
                  margin: int | None = None, batch_size: int | None = None, engine: str = "auto",
                  probabilities: bool = False, probabilities_dtype: Any = np.float32,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """``(semantic, confidence, probabilities, engine)`` of a U-Net ``model`` on ``image``:
    :func:`predict_semantic` with the model's defaults (see :func:`predict_image` for the
    parameters). Training validates with it too, so the validation IoU is the IoU that
    :meth:`Model.predict <defectlab.dl.model_io.Model.predict>` gives."""
    m = model.net.multiple
    t = unet_tile(model, tile)
    ov = model.config.overlap if overlap is None else int(overlap)
    if batch_size is None:
        side = min(t, _round_up(max(image.shape[:2]), m))  # a small image's one tile is smaller
        batch_size = max(1, BATCH_PIXELS // (side * side))
    forward, used = model_forward(model, engine)
    sem, conf, probs = predict_semantic(
        forward, image, n_classes=len(model.config.classes), multiple=m, tile=t, overlap=ov, margin=margin,
        batch_size=batch_size, probabilities=probabilities, probabilities_dtype=probabilities_dtype,
        progress=progress,
    )
    return sem, conf, probs, used


def unet_tile(model: Model, tile: int | None = None) -> int:
    """The largest tile a U-Net ``model`` predicts in: ``tile`` if given, else the larger of
    :data:`PREDICT_TILE` (rounded down to the net's ``2 ** depth``) and its training tile."""
    if tile is not None:
        return int(tile)
    m = model.net.multiple
    return max(model.config.tile_size, PREDICT_TILE // m * m)


def _instance_scores(instances: np.ndarray, n: int, confidence: np.ndarray) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    from scipy import ndimage

    mean = ndimage.mean(confidence.astype(np.float32), instances, index=np.arange(1, n + 1))
    return (np.asarray(mean, dtype=np.float32) / 255.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Mask R-CNN: tiles without resizing, each detection kept once


def _predict_maskrcnn(model: Model, image: np.ndarray, *, overlap: int, score_threshold: float,
                      mask_threshold: float, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(semantic, instances, instance_classes, scores) of a Mask R-CNN model on an image of any size."""
    norm = _Normalizer(np.asarray(image))
    h, w = norm.image.shape[:2]
    t = int(model.config.tile_size)
    multiple = 32 if t % 32 == 0 else 1
    py = tile_plan(h, t, overlap, multiple, full_tiles=True)
    px = tile_plan(w, t, overlap, multiple, full_tiles=True)
    net = model.net.eval()
    heads = net.roi_heads
    saved = heads.score_thresh
    heads.score_thresh = max(saved, score_threshold)  # the mask head runs only on the boxes kept
    try:
        found = _maskrcnn_tiles(net, model.device, norm, py, px, mask_threshold, progress)
    finally:
        heads.score_thresh = saved
    instances = np.zeros((h, w), dtype=np.int32)
    found.sort(key=lambda f: f[0])  # painted by score: the surest on top
    for i, (_, _, x, y, crop) in enumerate(found, start=1):
        region = instances[y:y + crop.shape[0], x:x + crop.shape[1]]
        region[crop] = i
    present = np.unique(instances)
    present = present[present > 0]
    relabel = np.zeros(len(found) + 1, dtype=np.int32)
    relabel[present] = np.arange(1, len(present) + 1)
    instances = relabel[instances]
    classes = np.array([found[i - 1][1] for i in present], dtype=np.uint8)
    scores = np.array([found[i - 1][0] for i in present], dtype=np.float32)
    lut = np.zeros(len(present) + 1, dtype=np.uint8)
    lut[1:] = classes
    return lut[instances], instances, classes, scores


def _maskrcnn_tiles(net: torch.nn.Module, device: torch.device, norm: _Normalizer, py: TilePlan, px: TilePlan,
                    mask_threshold: float, progress: bool) -> list[tuple[float, int, int, int, np.ndarray]]:
    """Detections ``(score, class, x0, y0, bitmap)``, each from the one tile whose central
    region holds its box center (adjacent central regions tile the image exactly)."""
    h, w = norm.image.shape[:2]
    found: list[tuple[float, int, int, int, np.ndarray]] = []
    tiles = [(k, j) for k in range(py.n) for j in range(px.n)]
    it: Iterable[tuple[int, int]] = tiles
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(tiles, desc="tiles", unit="tile", leave=False)

    def core(p: TilePlan, i: int) -> tuple[float, float]:
        o = i * p.stride
        lo = -math.inf if i == 0 else o + (p.tile - p.stride) / 2
        hi = math.inf if i == p.n - 1 else o + (p.tile + p.stride) / 2
        return lo, hi

    for k, j in it:
        y0, x0 = k * py.stride, j * px.stride
        rows = _mirror_index(np.arange(y0, y0 + py.tile), h)
        cols = _mirror_index(np.arange(x0, x0 + px.tile), w)
        gray = torch.from_numpy(norm.tile(rows, cols))
        with torch.inference_mode():
            out = net([gray[None].repeat(3, 1, 1).to(device)])[0]
        (ylo, yhi), (xlo, xhi) = core(py, k), core(px, j)
        boxes = out["boxes"].cpu().numpy()
        scores = out["scores"].cpu().numpy()
        labels = out["labels"].cpu().numpy()
        if not len(boxes):
            continue
        masks = out["masks"][:, 0].cpu().numpy()
        for b in range(len(boxes)):
            cx, cy = x0 + (boxes[b, 0] + boxes[b, 2]) / 2, y0 + (boxes[b, 1] + boxes[b, 3]) / 2
            if not (ylo <= cy < yhi and xlo <= cx < xhi):
                continue
            m = masks[b] > mask_threshold
            m[max(0, h - y0):, :] = False  # the mirrored part beyond the image
            m[:, max(0, w - x0):] = False
            rr, cc = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            if rr.size == 0:
                continue
            crop = m[rr[0]:rr[-1] + 1, cc[0]:cc[-1] + 1]
            found.append((float(scores[b]), int(labels[b]), x0 + int(cc[0]), y0 + int(rr[0]), crop))
    return found


# ---------------------------------------------------------------------------------------------
# The public entry points


def _as_image(image: np.ndarray | str | Path) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return read_image(ImageSource(Path(image)))
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    return arr


def predict_image(
    model: Model,
    image: np.ndarray | str | Path,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    margin: int | None = None,
    batch_size: int | None = None,
    engine: str = "auto",
    probabilities: bool = False,
    probabilities_dtype: Any = np.float32,
    split: bool | Iterable[int] = True,
    min_area_px: int = 4,
    neck_ratio: float = DEFAULT_NECK_RATIO,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    progress: bool = False,
) -> Prediction:
    """Predict one image of any size with a U-Net or Mask R-CNN model.

    Parameters
    ----------
    model : Model
        From :func:`~defectlab.dl.model_io.load_model` or training.
    image : (H, W) or (H, W, 3) array, or a path
        The raw micrograph (any dtype); normalized as in training.
    tile, overlap : int, optional
        Largest tile and least overlap in px. A U-Net takes any multiple of ``2 ** depth``
        (default: the larger of :data:`PREDICT_TILE` and the model's ``tile_size``, and the
        model's ``overlap``); Mask R-CNN always uses its own training tile size.
    margin : int, optional
        U-Net: zero-weight border of a tile where it overlaps a neighbor (``overlap // 4``).
    batch_size : int, optional
        U-Net: tiles through the net at once (memory: batch × tile² × the net's features);
        default: as many as hold about :data:`BATCH_PIXELS` pixels, at least one.
    engine : {"auto", "torch", "onnxruntime", "onnxruntime-int8"}
        U-Net: what runs the net, see :mod:`defectlab.dl.engine` (``"auto"``: ONNX Runtime
        on a CPU when installed, else PyTorch; ``"onnxruntime-int8"``: quantized, opt-in).
    probabilities : bool
        U-Net: keep the (C, H, W) class probabilities in ``Prediction.probabilities``.
    probabilities_dtype : dtype
        ``np.float32`` or ``np.float16``.
    split, min_area_px, neck_ratio
        U-Net: how instances are made from the class mask, see
        :func:`defectlab.raster.split.split_instances` (objects under ``min_area_px``
        pixels stay in the class mask but get no instance id). ``split=True`` splits every
        class but line classes (labeled as polylines: dislocation lines), which stay whole
        connected components.
    score_threshold, mask_threshold : float
        Mask R-CNN: least detection score kept, and the mask probability cut.
    progress : bool
        Show a progress bar over tiles.

    Returns
    -------
    Prediction
    """
    t0 = time.perf_counter()
    arr = _as_image(image)
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 1:
        raise ImageError(f"expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")
    cfg = model.config
    ov = cfg.overlap if overlap is None else int(overlap)
    if cfg.architecture == "maskrcnn":
        if probabilities:
            raise ValueError("Mask R-CNN gives instances with scores, not per-pixel class probabilities; "
                             "use a U-Net model for probabilities")
        sem, inst, cls, scores = _predict_maskrcnn(model, arr, overlap=ov, score_threshold=score_threshold,
                                                   mask_threshold=mask_threshold, progress=progress)
        return Prediction(sem, inst, cls, scores, cfg.class_names, seconds=time.perf_counter() - t0)
    sem, conf, probs, used = unet_semantic(model, arr, tile=tile, overlap=ov, margin=margin, batch_size=batch_size,
                                           engine=engine, probabilities=probabilities,
                                           probabilities_dtype=probabilities_dtype, progress=progress)
    if split is True:  # lines are long and thin: a neck along one is not two objects
        split = [c.index for c in cfg.classes[1:] if not c.is_line]
    inst, cls = split_instances(sem, split=split, min_area_px=min_area_px, neck_ratio=neck_ratio)
    scores = _instance_scores(inst, len(cls), conf)
    return Prediction(sem, inst, cls.astype(np.uint8), scores, cfg.class_names, confidence=conf,
                      probabilities=probs, seconds=time.perf_counter() - t0, engine=used)


@dataclass
class PredictReport:
    """What :func:`predict_images` wrote: the folder, per-image summaries, the pre-labels file."""

    out: Path
    images: list[dict[str, Any]] = field(default_factory=list)
    prelabels: Path | None = None
    prelabels_coco: Path | None = None
    notes: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        n = sum(sum(im["instances"].values()) for im in self.images)
        return f"{len(self.images)} images, {n} instances -> {self.out}"


def find_images(paths: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every image: files as given (name = file name), folders searched
    recursively (name = path inside the folder, POSIX). Names must be unique."""
    found: list[tuple[str, Path]] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ImageError(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            found += [(f.relative_to(p).as_posix(), f) for f in files]
        elif p.is_file():
            found.append((p.name, p))
        else:
            raise ImageError(f"{p}: no such image file or folder")
    stems: dict[str, str] = {}
    for name, _ in found:
        stem = name.rsplit(".", 1)[0]
        if stem in stems:
            raise DatasetError(f"two images would be written as {stem!r} ({stems[stem]} and {name}); "
                               "give them different names or predict them separately")
        stems[stem] = name
    return found


def predict_images(
    model: Model,
    images: Sequence[str | Path],
    out: str | Path,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    engine: str = "auto",
    probabilities: bool = False,
    prelabels: str | Sequence[str] | None = None,
    tolerance: float = 0.5,
    max_area_change: float = 0.01,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> PredictReport:
    """Predict image files and write the results, the Python twin of ``defectlab predict``.

    Writes into ``out`` (atomically)::

        masks/<stem>.png           (H, W) uint8 class index, 0 = background
        instances/<stem>.tif       (H, W) int32 instance ids, 0 = background
        overlays/<stem>.png        classes in color over the micrograph, instance outlines
        probabilities/<stem>.npy   (C, H, W) float16, with ``probabilities=True`` (U-Net)
        prelabels/annotations.xml  with ``prelabels="cvat"``: CVAT for images 1.1 pre-labels
        prelabels/coco/annotations/instances_default.json   with ``prelabels="coco"`` (or both,
                                   ``["cvat", "coco"]``): the same pre-labels as COCO (CVAT "COCO 1.0")
        summary.json               per image: size, instances per class, seconds

    ``images`` are files or folders (searched recursively; the path inside the folder is the
    image's name in the pre-labels, which CVAT matches against the task's file names).
    Other keyword ``options`` go to :func:`predict_image`.
    """
    import json

    from ..viz import overlay

    kinds = [] if prelabels is None else [prelabels] if isinstance(prelabels, str) else list(prelabels)
    bad = [k for k in kinds if k not in PRELABEL_FORMATS]
    if bad:
        raise ValueError(f"expected prelabels among {', '.join(PRELABEL_FORMATS)}, got {bad[0]!r}")
    found = find_images(images)
    report = PredictReport(Path(out))
    items: list[Any] = []
    frame = {name: k for k, name in enumerate(sorted(name for name, _ in found))}
    with output_dir(out, overwrite=overwrite, inputs=[p for _, p in found]) as tmp:
        it: Iterable[tuple[str, Path]] = found
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(found, desc="predict", unit="img")
        for name, path in it:
            image = read_image(ImageSource(path))
            pred = predict_image(model, image, tile=tile, overlap=overlap, batch_size=batch_size, engine=engine,
                                 probabilities=probabilities, probabilities_dtype=np.float16, **options)
            stem = name.rsplit(".", 1)[0]
            for sub, suffix, arr in (("masks", ".png", pred.semantic), ("instances", ".tif", pred.instances),
                                     ("overlays", ".png", overlay(image, pred.semantic, model.config.colors_rgb,
                                                                  outlines=pred.instances))):
                dest = tmp / sub / f"{stem}{suffix}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_image(dest, arr)
            if pred.probabilities is not None:
                dest = tmp / "probabilities" / f"{stem}.npy"
                dest.parent.mkdir(parents=True, exist_ok=True)
                np.save(dest, pred.probabilities)
                pred.probabilities = None  # written: free the memory
            report.images.append({"name": name, "size_hw": list(pred.size_hw), "instances": pred.counts(),
                                  "seconds": round(pred.seconds, 3), "engine": pred.engine})
            if kinds:  # traced now: only the polygons are kept, not the masks
                from .prelabels import prediction_item

                item, notes = prediction_item(pred.semantic, pred.instances, pred.instance_classes, name,
                                              model.classes, tolerance=tolerance,
                                              max_area_change=max_area_change, item_id=frame[name])
                items.append(item)
                report.notes += notes
        if kinds:
            from .prelabels import prelabels_dataset, write_cvat_prelabels

            ds = prelabels_dataset(items, model.config.classes, notes=report.notes)
            (tmp / "prelabels").mkdir()
            if "cvat" in kinds:
                write_cvat_prelabels(ds, tmp / "prelabels" / "annotations.xml")
                report.prelabels = Path(out) / "prelabels" / "annotations.xml"
            if "coco" in kinds:
                from ..formats.coco_json import write_coco

                write_coco(ds, tmp / "prelabels" / "coco", copy_images=False)
                report.prelabels_coco = Path(out) / "prelabels" / "coco" / "annotations" / "instances_default.json"
        (tmp / "summary.json").write_text(json.dumps({
            "model": str(model.path) if model.path else None, "architecture": model.architecture,
            "classes": model.classes, "images": report.images,
        }, indent=2) + "\n", encoding="utf-8")
    return report
