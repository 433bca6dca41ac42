"""Prediction of star-convex instances on images of any size: tiles, candidates, one NMS.

1. **Tiles** as the U-Net's (:func:`defectlab.dl.tiles.tile_plan`): at most ``tile`` px,
   overlapping by at least ``overlap`` px, at strides that are multiples of the net's
   ``grid * 2 ** depth`` (so every tile's output grid is the image's), mirrored beyond the
   image; normalized with the whole image's min and max, as in training.
2. **Candidates** per tile: the output cells whose probability is a local maximum (3x3)
   above ``prob_min``, kept only in the tile's *core* — the cells nearer to it than to any
   neighbor's (cores tile the image exactly) — with their ray distances and class
   probabilities. A candidate therefore comes from the one tile in which it has at least
   ``overlap / 2`` px of context on every side, and is never found twice.
3. **One NMS over the whole image** (:mod:`defectlab.raster.nms`): a defect on a seam is
   proposed by the tile that holds its center and competes with every other candidate, so
   it is neither cut at the seam nor doubled. The local-maximum rule leaves a handful of
   candidates per object (StarDist takes every cell above the threshold); the NMS cost is
   their area.
4. **Outputs**: the kept polygons (surest first) and, painted from them, the class mask and
   the instance image (where polygons overlap, the surer one is on top: the instance image
   loses the overlap, :attr:`StarPrediction.overlap_px` says how much, the polygons keep
   it). Line classes (dislocation lines) come from the class head: connected components of
   their class mask, after the polygons.

Memory: only the candidates and a (H/grid, W/grid) class map are kept across tiles.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from ...raster.nms import DEFAULT_NMS_THRESH, greedy_keep, star_overlaps
from ...raster.stars import paint_stars, star_pixels, star_polygons
from ..predict import Prediction
from ..tiles import TilePlan, TileSource, mirror_index, tile_plan

__all__ = ["StarPrediction", "Candidates", "star_candidates", "assemble", "DEFAULT_PROB_THRESH"]

#: Default least object probability of a kept star (StarDist's default before optimization).
DEFAULT_PROB_THRESH = 0.5
#: Candidates are gathered down to this probability (thresholds are tuned above it).
PROB_MIN = 0.05


@dataclass
class StarPrediction(Prediction):
    """A :class:`~defectlab.dl.predict.Prediction` with the star polygons themselves.

    Attributes
    ----------
    points_xy : (N, 2) float64
        Centers of the star instances (instances 1..N, surest first), px.
    distances : (N, K) float32
        Their ray distances, px; :meth:`polygons` gives the vertices.
    overlap_px : int
        Pixels covered by two or more polygons: the instance image keeps only the surer
        instance there, the polygons keep both.
    notes : list of str
        What the user should know (overlaps lost in the instance image, …).
    """

    points_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    distances: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    overlap_px: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_stars(self) -> int:
        return int(len(self.points_xy))

    def polygons(self) -> np.ndarray:
        """(N, K, 2) float64 polygon vertices of the star instances (x, y)."""
        return star_polygons(self.points_xy, self.distances)


@dataclass
class Candidates:
    """Every candidate star of an image, before NMS."""

    points_xy: np.ndarray  # (M, 2) float64: pixel centers (g j + 0.5, g i + 0.5)
    prob: np.ndarray  # (M,) float32
    dist: np.ndarray  # (M, K) float32
    class_prob: np.ndarray  # (M, C) float32
    class_map: np.ndarray  # (ceil(H/g), ceil(W/g)) uint8 arg-max class of every cell
    class_conf: np.ndarray  # (ceil(H/g), ceil(W/g)) uint8 its probability x 255
    size_hw: tuple[int, int]
    grid: int


def _core(p: TilePlan, k: int, length: int) -> tuple[int, int]:
    """Pixel rows [lo, hi) of tile ``k``'s core: halfway into each overlap, the image's own edges."""
    o = k * p.stride
    lo = 0 if k == 0 else o + (p.tile - p.stride) // 2
    hi = length if k == p.n - 1 else o + (p.tile + p.stride) // 2
    return lo, min(hi, length)


def star_candidates(
    forward: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    n_rays: int,
    n_classes: int,
    grid: int,
    multiple: int,
    tile: int = 1024,
    overlap: int = 128,
    prob_min: float = PROB_MIN,
    batch_size: int = 1,
    progress: bool = False,
) -> Candidates:
    """Candidates of an image of any size (steps 1–2 of the module docstring).

    ``forward``: ``(B, 1, th, tw) float32 -> (B, 1 + K + C, th/g, tw/g)`` with probability,
    distances and class probabilities (:func:`~defectlab.dl.stardist.net.star_forward`).
    """
    from scipy import ndimage

    norm = TileSource(np.asarray(image))
    h, w = norm.image.shape[:2]
    g = int(grid)
    py, px = tile_plan(h, tile, overlap, multiple), tile_plan(w, tile, overlap, multiple)
    gh, gw = -(-h // g), -(-w // g)
    class_map = np.zeros((gh, gw), dtype=np.uint8)
    class_conf = np.zeros((gh, gw), dtype=np.uint8)
    found: list[tuple[np.ndarray, ...]] = []
    tiles = [(k, j) for k in range(py.n) for j in range(px.n)]
    it: Iterable[int] = range(0, len(tiles), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="tiles", unit="batch", leave=False)
    expect = 1 + n_rays + n_classes
    for b0 in it:
        chunk = tiles[b0:b0 + batch_size]
        batch = np.stack([norm.tile(mirror_index(np.arange(k * py.stride, k * py.stride + py.tile), h),
                                    mirror_index(np.arange(j * px.stride, j * px.stride + px.tile), w))
                          for k, j in chunk])[:, None]
        out = forward(batch)
        if out.shape != (len(chunk), expect, py.tile // g, px.tile // g):
            raise ValueError(f"the net returned shape {tuple(out.shape)} for a batch of shape {tuple(batch.shape)}; "
                             f"expected {(len(chunk), expect, py.tile // g, px.tile // g)}")
        for (k, j), o in zip(chunk, out):
            y0, x0 = k * py.stride, j * px.stride
            (ylo, yhi), (xlo, xhi) = _core(py, k, h), _core(px, j, w)
            # core cells of this tile, in tile cell coordinates
            ci0, ci1 = (ylo - y0) // g, -(-(yhi - y0) // g)
            cj0, cj1 = (xlo - x0) // g, -(-(xhi - x0) // g)
            prob = o[0]
            peaks = prob >= ndimage.maximum_filter(prob, size=3, mode="nearest")
            core = np.zeros_like(peaks)
            core[ci0:ci1, cj0:cj1] = True
            ii, jj = np.nonzero(peaks & core & (prob > prob_min))
            if len(ii):
                found.append(((y0 // g + ii), (x0 // g + jj), prob[ii, jj], o[1:1 + n_rays, ii, jj].T,
                              o[1 + n_rays:, ii, jj].T))
            cls = o[1 + n_rays:, ci0:ci1, cj0:cj1]
            gi0, gj0 = y0 // g + ci0, x0 // g + cj0
            class_map[gi0:gi0 + cls.shape[1], gj0:gj0 + cls.shape[2]] = cls.argmax(axis=0)
            class_conf[gi0:gi0 + cls.shape[1], gj0:gj0 + cls.shape[2]] = np.rint(cls.max(axis=0) * 255)
    if found:
        gi, gj, p, d, c = (np.concatenate(parts) for parts in zip(*found))
    else:
        gi = gj = np.zeros(0, np.int64)
        p, d, c = np.zeros(0, np.float32), np.zeros((0, n_rays), np.float32), np.zeros((0, n_classes), np.float32)
    pts = np.stack([gj * g + 0.5, gi * g + 0.5], axis=1).astype(np.float64)
    return Candidates(pts, p.astype(np.float32), d.astype(np.float32), c.astype(np.float32), class_map,
                      class_conf, (h, w), g)


def _star_class(class_prob: np.ndarray, star_classes: list[int]) -> np.ndarray:
    """Each candidate's class: the most probable of the star classes."""
    if not len(class_prob):
        return np.zeros(0, np.uint8)
    cols = np.asarray(star_classes, dtype=np.int64)
    return cols[np.argmax(class_prob[:, cols], axis=1)].astype(np.uint8)


def assemble(
    cand: Candidates,
    classes: dict[int, str],
    *,
    line_classes: Iterable[int] = (),
    prob_thresh: float = DEFAULT_PROB_THRESH,
    nms_thresh: float = DEFAULT_NMS_THRESH,
    min_area_px: int = 4,
    overlaps: Any = None,
    seconds: float = 0.0,
    engine: str = "torch",
) -> StarPrediction:
    """Steps 3–4 of the module docstring: NMS, polygons, class mask, instances.

    ``overlaps``: a :class:`~defectlab.raster.nms.StarOverlaps` of these candidates, computed
    once for many thresholds (threshold optimization); computed here otherwise.
    """
    from scipy import ndimage

    if not 0 <= prob_thresh <= 1:
        raise ValueError(f"expected 0 <= prob_thresh <= 1, got {prob_thresh!r}")
    h, w = cand.size_hw
    lines = sorted(set(int(c) for c in line_classes))
    star_classes = [c for c in classes if c not in lines]
    notes: list[str] = []
    take = cand.prob > prob_thresh
    if star_classes and take.any():
        if overlaps is None:
            idx = np.flatnonzero(take)
            ov = star_overlaps(cand.points_xy[idx], cand.dist[idx], cand.prob[idx], (h, w))
            kept = idx[greedy_keep(ov, nms_thresh)]
        else:
            kept = greedy_keep(overlaps, nms_thresh, candidates=take)
    else:
        kept = np.zeros(0, np.int64)
    pts, dist, scores = cand.points_xy[kept], cand.dist[kept], cand.prob[kept]
    star, cell = star_pixels(pts, dist, (h, w))
    area = np.bincount(star, minlength=len(kept))
    big = area >= max(1, int(min_area_px))
    if not big.all():
        kept, pts, dist, scores = kept[big], pts[big], dist[big], scores[big]
        star, cell = star_pixels(pts, dist, (h, w))
    cls = _star_class(cand.class_prob[kept], star_classes) if star_classes else np.zeros(0, np.uint8)
    overlap_px = int(np.count_nonzero(np.bincount(cell, minlength=1) > 1)) if len(cell) else 0
    if overlap_px:
        notes.append(f"{overlap_px} px are covered by two or more polygons: the instance image holds only the "
                     "surer instance there; the polygons (pre-labels, measurements from them) keep both")
    instances = paint_stars(pts, dist, (h, w), scores=scores)
    lut = np.zeros(len(kept) + 1, dtype=np.uint8)
    lut[1:] = cls
    semantic = lut[instances]
    all_cls, all_scores = list(cls), list(scores)
    if lines:
        g = cand.grid
        full = np.repeat(np.repeat(cand.class_map, g, axis=0), g, axis=1)[:h, :w]
        conf = np.repeat(np.repeat(cand.class_conf, g, axis=0), g, axis=1)[:h, :w]
        n = len(kept)
        for c in lines:
            mask = (full == c) & (instances == 0)
            comp, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
            if not count:
                continue
            sizes = np.bincount(comp.ravel(), minlength=count + 1)
            mean = ndimage.mean(conf.astype(np.float32), comp, index=np.arange(1, count + 1)) / 255.0
            good = np.flatnonzero(sizes[1:] >= max(1, int(min_area_px))) + 1
            relabel = np.zeros(count + 1, dtype=np.int32)
            relabel[good] = n + np.arange(1, len(good) + 1)
            sel = relabel[comp]
            instances = np.where(sel > 0, sel, instances)
            semantic[mask] = c
            all_cls += [c] * len(good)
            all_scores += list(np.asarray(mean)[good - 1])
            n += len(good)
    return StarPrediction(
        semantic, instances.astype(np.int32), np.asarray(all_cls, np.uint8), np.asarray(all_scores, np.float32),
        dict(classes), seconds=seconds, engine=engine, points_xy=pts, distances=dist.astype(np.float32),
        overlap_px=overlap_px, notes=notes,
    )


def predict_stars(
    forward: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    n_rays: int,
    n_classes: int,
    grid: int,
    multiple: int,
    classes: dict[int, str],
    line_classes: Iterable[int] = (),
    tile: int = 1024,
    overlap: int = 128,
    prob_thresh: float = DEFAULT_PROB_THRESH,
    nms_thresh: float = DEFAULT_NMS_THRESH,
    min_area_px: int = 4,
    batch_size: int = 1,
    progress: bool = False,
    engine: str = "torch",
) -> StarPrediction:
    """Candidates, NMS and outputs of one image (the whole module docstring)."""
    t0 = time.perf_counter()
    cand = star_candidates(forward, image, n_rays=n_rays, n_classes=n_classes, grid=grid, multiple=multiple,
                           tile=tile, overlap=overlap, prob_min=min(PROB_MIN, prob_thresh), batch_size=batch_size,
                           progress=progress)
    pred = assemble(cand, classes, line_classes=line_classes, prob_thresh=prob_thresh, nms_thresh=nms_thresh,
                    min_area_px=min_area_px, engine=engine)
    pred.seconds = time.perf_counter() - t0
    return pred


def default_tile(multiple: int, tile: int | None, train_tile: int) -> int:
    """The prediction tile: ``tile`` if given, else the larger of 1024 (rounded down to
    ``multiple``) and the training tile."""
    if tile is not None:
        t = int(tile)
        if t < multiple or t % multiple:
            raise ValueError(f"expected a tile that is a positive multiple of {multiple}, got {tile}")
        return t
    return max(int(train_tile), 1024 // multiple * multiple)


def round_overlap(overlap: int, multiple: int, tile: int) -> int:
    """``overlap`` rounded up to a multiple of ``multiple`` and kept below ``tile``."""
    ov = int(math.ceil(max(0, int(overlap)) / multiple) * multiple)
    return min(ov, tile - multiple)
