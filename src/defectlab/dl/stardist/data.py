"""Training data of the star-convex model: exact targets from labels, random crops, augmentation.

Every training image's targets are computed once, at full resolution, from its labels'
exact instance masks (:func:`defectlab.raster.stars.star_targets`: per instance, overlaps
kept, see that module for who owns a pixel two instances cover):

``prob``     (H, W) float32   object probability (normalized distance to the boundary)
``dist``     (H, W, K) float16 ray distances in px (float16: 0.06 px steps at 64 px)
``classes``  (H, W) uint8     class per pixel (0 = background): the owning instance's class;
                              dislocation lines (polylines, not star-convex) only here

A training crop is cut at any position, flipped and rotated by multiples of 90° with the
ray indices permuted to match (:func:`ray_permutation`; hence K a multiple of 4), and only
then subsampled to the net's grid, so that the targets of every crop are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import DatasetError, FormatError, ImageError
from ...imaging.io import normalize_minmax, read_image
from ...model import Dataset, Item, Note
from ...raster import DEFAULT_LINE_WIDTH, Crop, instances, rasterize
from ...raster.stars import star_targets
from ..model_io import ClassInfo

__all__ = ["StarSample", "load_star_samples", "ray_permutation", "crop_batch", "line_class_indices", "window_sample"]


@dataclass
class StarSample:
    """One training or validation image with its targets (see the module docstring)."""

    name: str
    image: np.ndarray  # (H, W) float32 in [0, 1]
    prob: np.ndarray  # (H, W) float32
    dist: np.ndarray  # (H, W, K) float16
    classes: np.ndarray  # (H, W) uint8
    crops: list[Crop] = field(default_factory=list)  # the star instances' full masks
    crop_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))


def line_class_indices(classes: Sequence[ClassInfo]) -> list[int]:
    """Indices of the classes labeled as polylines (dislocation lines)."""
    return [c.index for c in classes if c.is_line]


def _class_info(index: int, label, line: bool) -> ClassInfo:
    color = "#{:02x}{:02x}{:02x}".format(*label.rgb(index - 1))
    kind = "polyline" if line else label.type
    return ClassInfo(index, label.name, color, label.edge, kind)


def star_classes(ds: Dataset) -> tuple[list[ClassInfo], list[str]]:
    """``(classes, notes)``: the foreground classes of ``ds`` (from index 1; a class drawn as
    polylines is a line class) and a note naming the line classes (the class head learns
    them; they get no polygons)."""
    drawn = {s.label for it in ds.items for s in it.shapes if s.kind == "polyline"}
    line_labels = drawn | {lab.name for lab in ds.labels if lab.type == "polyline"}
    classes = [_class_info(i, lab, lab.name in line_labels) for i, lab in enumerate(ds.labels, start=1)]
    notes: list[str] = []
    if line_labels:
        absent = sorted(line_labels - drawn)
        notes.append(f"{', '.join(sorted(line_labels))}: lines are not star-convex; trained in the class head "
                     "only and predicted as connected components of their class mask, without polygons (the U-Net is "
                     "defectlab's model for line classes: defectlab train unet)"
                     + (f"; no line of {', '.join(absent)} in this data" if absent else ""))
    return classes, notes


def load_star_samples(
    data: Dataset | str | Path,
    *,
    n_rays: int = 32,
    images: str | Path | None = None,
    line_width: float = DEFAULT_LINE_WIDTH,
) -> tuple[list[StarSample], list[ClassInfo], list[str], Dataset]:
    """``(samples, classes, notes, dataset)`` from a Dataset or a labeling export.

    Star-convex targets need the labels' shapes, so a ``write_unet`` folder (class masks
    only) is refused with a message; polylines train the class head only, and a note says
    so; degenerate shapes (no pixel center) are listed in the notes.
    """
    from ..data import folder_kind, read_export

    if isinstance(data, (str, Path)) and folder_kind(Path(data)) is not None:
        raise FormatError(f"{data}: a prepared training folder; the star-convex model computes its targets from "
                          "the labels' shapes: train it on the labeling export (or a Dataset)")
    ds = data if isinstance(data, Dataset) else read_export(data, images)
    if not ds.items:
        raise DatasetError("the dataset has no images to train on")
    missing = [it.name for it in ds.items if it.image is None]
    if missing:
        raise ImageError(f"{len(missing)} image file(s) not found, e.g. {missing[:3]}; point to them with "
                         "--images DIR (images=...) or copy them beside the export")
    index = ds.class_index()
    classes, notes = star_classes(ds)
    skipped: list[Note] = []
    samples = []
    for item in ds.items:
        sample, item_notes = item_sample(item, index, n_rays=n_rays, line_width=line_width)
        skipped += item_notes
        samples.append(sample)
    if skipped:
        notes.append(f"{len(skipped)} shape(s) cover no pixel center and are not instances")
    return samples, classes, notes, ds


def item_sample(item: Item, index: dict[str, int], *, n_rays: int = 32,
                line_width: float = DEFAULT_LINE_WIDTH) -> tuple[StarSample, list[Note]]:
    """One image's :class:`StarSample` (targets for ``n_rays`` rays) and the notes of its
    shapes that cover no pixel center; ``index``: class name -> index."""
    image = read_image(item.image)
    if image.shape[:2] != item.size_hw:
        raise ImageError(f"{item.image}: image is {image.shape[1]}x{image.shape[0]} (WxH) but the labels of "
                         f"{item.name!r} are for {item.size_hw[1]}x{item.size_hw[0]}")
    found, item_notes = instances(item, index, line_width=line_width)
    stars = [i for i in found if i.shape.kind != "polyline"]
    order = sorted(range(len(stars)), key=lambda i: (stars[i].shape.z_order, i))
    t = star_targets([i.crop for i in stars], item.size_hw, n_rays=n_rays, order=order)
    cls = np.zeros(item.size_hw, dtype=np.uint8)
    for shape in item.shapes:
        if shape.kind == "polyline":
            crop = rasterize(shape, item.size_hw, line_width=line_width)
            if crop.bitmap.size:
                cls[crop.slices][crop.bitmap] = index[shape.label]
    star_cls = np.array([i.class_id for i in stars], dtype=np.uint8)
    inside = t.owner >= 0
    cls[inside] = star_cls[t.owner[inside]]
    return (StarSample(item.key, normalize_minmax(image), t.prob, t.dist.astype(np.float16), cls,
                       [i.crop for i in stars], star_cls), list(item_notes))


def window_sample(s: StarSample, rows: slice, cols: slice) -> StarSample:
    """The part of ``s`` in the window ``rows`` x ``cols`` (bounded slices): its pixels and
    targets (the distances as computed on the whole image), its instances clipped to the window
    (those left with no pixel dropped)."""
    crops, kinds = [], []
    for crop, c in zip(s.crops, s.crop_classes):
        r = slice(max(rows.start, crop.y0), min(rows.stop, crop.y0 + crop.bitmap.shape[0]))
        q = slice(max(cols.start, crop.x0), min(cols.stop, crop.x0 + crop.bitmap.shape[1]))
        if r.stop <= r.start or q.stop <= q.start:
            continue
        bm = crop.bitmap[r.start - crop.y0:r.stop - crop.y0, q.start - crop.x0:q.stop - crop.x0]
        if bm.any():
            crops.append(Crop(q.start - cols.start, r.start - rows.start, bm).tight())
            kinds.append(c)
    return StarSample(s.name, s.image[rows, cols], s.prob[rows, cols], s.dist[rows, cols], s.classes[rows, cols],
                      crops, np.asarray(kinds, np.uint8))


def ray_permutation(n_rays: int, *, flip_x: bool = False, flip_y: bool = False, rot90: int = 0) -> np.ndarray:
    """Indices ``p`` such that ``new[..., k] = old[..., p[k]]`` for the distances of an image
    transformed by ``np.rot90(x[::-1 if flip_y, ::-1 if flip_x], rot90)`` (flips first).

    Ray ``k`` points at angle ``2 pi k / K`` (x right, y down). A flip of x maps the angle
    ``phi`` to ``pi - phi``, a flip of y to ``-phi``, one ``np.rot90`` (which sends column x
    to row ``W - 1 - x``) to ``phi - pi / 2``.

    Examples
    --------
    >>> ray_permutation(8, rot90=1).tolist()
    [2, 3, 4, 5, 6, 7, 0, 1]
    """
    k = np.arange(n_rays)
    p = k.copy()
    q = n_rays // 4
    # compose from the last transform back to the first: new = R(Fy(Fx(old)))
    p = (p + (rot90 % 4) * q) % n_rays
    if flip_y:
        p = (-p) % n_rays
    if flip_x:
        p = (n_rays // 2 - p) % n_rays
    return p


def crop_batch(
    samples: Sequence[StarSample],
    weights: np.ndarray,
    crop_hw: tuple[int, int],
    batch_size: int,
    grid: int,
    rng: np.random.Generator,
    augment: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A batch ``(x (B, 1, h, w), prob (B, h/g, w/g), dist (B, K, h/g, w/g), classes (B, h/g, w/g))``.

    Crops are drawn from the samples with probabilities ``weights`` (their areas); a sample
    smaller than the crop is padded with zeros (background, no object).
    """
    ch, cw = crop_hw
    g = grid
    k = samples[0].dist.shape[-1]
    xs = np.zeros((batch_size, 1, ch, cw), dtype=np.float32)
    ps = np.zeros((batch_size, ch // g, cw // g), dtype=np.float32)
    ds = np.zeros((batch_size, k, ch // g, cw // g), dtype=np.float32)
    cs = np.zeros((batch_size, ch // g, cw // g), dtype=np.int64)
    for b in range(batch_size):
        s = samples[int(rng.choice(len(samples), p=weights))]
        h, w = s.prob.shape
        r0 = int(rng.integers(0, max(h - ch, 0) + 1))
        c0 = int(rng.integers(0, max(w - cw, 0) + 1))
        win = (slice(r0, r0 + ch), slice(c0, c0 + cw))
        img, prob, dist, cls = s.image[win], s.prob[win], s.dist[win], s.classes[win]
        fx = fy = False
        rot = 0
        if augment:
            fx, fy = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
            rot = int(rng.integers(0, 4)) if ch == cw else 0
        arrays = [img, prob, dist, cls]
        if fx:
            arrays = [a[:, ::-1] for a in arrays]
        if fy:
            arrays = [a[::-1] for a in arrays]
        if rot:
            arrays = [np.rot90(a, rot, axes=(0, 1)) for a in arrays]
        img, prob, dist, cls = arrays
        if fx or fy or rot:
            dist = dist[..., ray_permutation(k, flip_x=fx, flip_y=fy, rot90=rot)]
        hh, ww = img.shape
        xs[b, 0, :hh, :ww] = img
        sub = (slice(0, None, g), slice(0, None, g))
        ph, pw = prob[sub].shape
        ps[b, :ph, :pw] = prob[sub]
        ds[b, :, :ph, :pw] = np.moveaxis(dist[sub], -1, 0)
        cs[b, :ph, :pw] = cls[sub]
    return xs, ps, ds, cs
