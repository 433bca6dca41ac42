"""Tiled prediction of images of any size: overlapping tiles, blended without seams, bounded memory.

How an image is predicted by a per-pixel classifier (:func:`predict_semantic`)
------------------------------------------------------------------------------
1. **Normalization** as in training (:class:`defectlab.imaging.io.MinMax`): the whole
   image's minimum and maximum (or percentiles) scale it to [0, 1], applied tile by tile
   with the same float32 arithmetic, so the values are identical.
2. **Tiles** of ``tile`` px (a multiple of the net's ``multiple``, a U-Net's ``2 ** depth``)
   at a uniform stride that is a multiple of it too, so a pixel's features do not depend on
   which tile computed it (max pooling is only shift-invariant for such shifts). The stride
   is chosen so the tiles cover the image with at least ``overlap`` px of overlap and as
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

Architectures that do not blend (Mask R-CNN keeps each detection in the one tile whose
central region holds it) use :func:`tile_plan`, :func:`mirror_index` and
:class:`TileSource` alone.

Examples
--------
>>> import numpy as np
>>> p = np.array([0.25, 0.75], np.float32)
>>> constant = lambda batch: np.broadcast_to(p[None, :, None, None], (len(batch), 2, *batch.shape[2:])).copy()
>>> sem, conf, _ = predict_semantic(constant, np.random.default_rng(0).random((100, 150)), n_classes=2,
...                                 multiple=8, tile=64, overlap=16)
>>> sem.shape, int(sem.max()), int(conf.max())
((100, 150), 1, 191)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import ImageError
from ..imaging.io import MinMax, to_gray

__all__ = ["TilePlan", "TileSource", "mirror_index", "predict_semantic", "round_up", "tile_plan", "window_1d"]


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


def round_up(v: int, m: int) -> int:
    """``v`` rounded up to a multiple of ``m``."""
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
    lm = round_up(length, multiple)
    t = tile if full_tiles else min(tile, lm)
    if lm <= t:
        return TilePlan(length, t, t, 1, t)
    n = 1 + math.ceil((lm - t) / (t - overlap))
    if not full_tiles:  # n tiles of t cover lm, so the smallest such tile is <= t
        t = round_up(math.ceil((lm + (n - 1) * overlap) / n), multiple)
    stride = round_up(math.ceil((lm - t) / (n - 1)), multiple)
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


def mirror_index(idx: np.ndarray, length: int) -> np.ndarray:
    """Indices beyond [0, length) mirrored back ('symmetric': edge pixels repeated).

    Examples
    --------
    >>> mirror_index(np.arange(-2, 6), 4).tolist()
    [1, 0, 0, 1, 2, 3, 3, 2]
    """
    period = 2 * length
    i = np.mod(idx, period)
    return np.where(i < length, i, period - 1 - i)


class TileSource:
    """An image cut into normalized tiles: each tile scaled with the whole image's
    :class:`~defectlab.imaging.io.MinMax` (as in training), color converted to gray.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) array
        Any dtype.
    normalizer : MinMax, optional
        Default: fitted to ``image`` (its min and max).
    """

    def __init__(self, image: np.ndarray, normalizer: MinMax | None = None) -> None:
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
            raise ImageError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
        self.image = image
        self.normalizer = normalizer if normalizer is not None else MinMax.fit(image)

    def tile(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) float32 in [0, 1]."""
        return self.normalizer(to_gray(self.image[np.ix_(rows, cols)]))


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
    normalizer: MinMax | None = None,
    progress: bool = False,
    extra: int = 0,
    groups: int = 0,
) -> tuple[np.ndarray, ...]:
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
    normalizer : MinMax, optional
        How the image is scaled (default: by its own min and max).
    progress : bool
        A progress bar over tile rows.
    extra : int
        Further channels ``forward`` returns after the class probabilities (test-time
        augmentation's uncertainty, :mod:`defectlab.dl.uncertainty`): blended like them and
        returned as a fourth output.
    groups : int
        Further groups of ``n_classes`` probabilities ``forward`` returns after those (an
        ensemble's members' own, :func:`~defectlab.dl.uncertainty.mean_forward`): blended
        alike, and each group's class mask and confidence returned as a fifth and sixth output
        (the fourth is then None when ``extra`` is 0).

    Returns
    -------
    semantic : (H, W) uint8
    confidence : (H, W) uint8
        The winning class's probability ×255.
    probabilities : (C, H, W) or None
    extras : (extra, H, W) float32
        Only with ``extra`` > 0 (or ``groups`` > 0: then None without ``extra``).
    group_semantic, group_confidence : (groups, H, W) uint8
        Only with ``groups`` > 0: each group's class index per pixel, and its probability ×255.
    """
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if n_classes > 256:
        raise ValueError(f"a uint8 class mask holds at most 256 classes, got {n_classes}")
    norm = TileSource(np.asarray(image), normalizer)
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
    col_idx = [mirror_index(np.arange(x0, x0 + px.tile), w) for x0 in px.origins]
    one_tile = py.n * px.n == 1

    semantic = np.empty((h, w), dtype=np.uint8)
    confidence = np.empty((h, w), dtype=np.uint8)
    probs_out = np.empty((n_classes, h, w), dtype=probabilities_dtype) if probabilities else None
    extras_out = np.empty((extra, h, w), dtype=np.float32) if extra else None
    group_sem = np.empty((groups, h, w), dtype=np.uint8) if groups else None
    group_conf = np.empty((groups, h, w), dtype=np.uint8) if groups else None
    channels = n_classes + extra + groups * n_classes
    # one band of a tile row, reused: after each row its last (tile - stride) rows move up
    acc = np.zeros((channels, py.tile, px.padded), dtype=np.float32)
    wsum = np.zeros((py.tile, px.padded), dtype=np.float32)
    rows_iter: Iterable[int] = range(py.n)
    if progress:
        from tqdm.auto import tqdm

        rows_iter = tqdm(rows_iter, desc="tile rows", unit="row", leave=False)
    for k in rows_iter:
        y0 = k * py.stride
        rows = mirror_index(np.arange(y0, y0 + py.tile), h)
        wy = wins_y[(k > 0, k < py.n - 1)]
        for j0 in range(0, px.n, batch_size):
            js = range(j0, min(j0 + batch_size, px.n))
            batch = np.stack([norm.tile(rows, col_idx[j]) for j in js])[:, None]
            out = forward(batch)
            if out.shape != (len(js), channels, py.tile, px.tile):
                raise ValueError(f"the net returned shape {tuple(out.shape)} for a batch of shape "
                                 f"{tuple(batch.shape)}; expected {(len(js), channels, py.tile, px.tile)}")
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
            _arg_max(p[:n_classes], semantic[y0:r1], confidence[y0:r1])
            if probs_out is not None:
                probs_out[:, y0:r1] = p[:n_classes]
            if extras_out is not None:
                extras_out[:, y0:r1] = p[n_classes:n_classes + extra]
            for g in range(groups):
                first = n_classes + extra + g * n_classes
                _arg_max(p[first:first + n_classes], group_sem[g, y0:r1], group_conf[g, y0:r1])  # type: ignore[index]
            del p
        rest = py.tile - done
        if rest:
            acc[:, :rest] = acc[:, done:]
            wsum[:rest] = wsum[done:]
        acc[:, rest:] = 0.0
        wsum[rest:] = 0.0
    if group_sem is not None:
        return semantic, confidence, probs_out, extras_out, group_sem, group_conf
    if extras_out is not None:
        return semantic, confidence, probs_out, extras_out
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
