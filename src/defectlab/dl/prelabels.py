"""Predictions → pre-labels: polygons a person only corrects in CVAT.

Each predicted instance becomes one :class:`~defectlab.model.Polygon` (``source="auto"``),
traced exactly around its pixels by :func:`defectlab.raster.mask_to_polygons` and then
simplified (Douglas–Peucker, ``tolerance`` px). Simplification is checked per instance:
the polygon, rasterized back with defectlab's pixel-center rule, must keep the instance's
pixel count within ``max_area_change`` (1 % by default) and overlap its pixels with an
IoU of at least ``min_iou`` (0.95) — counting every pixel center that lies exactly on an
edge against the polygon, so the guarantee holds whatever tie rule another program
rasterizes with. Where it does not, the tolerance is halved until it
does — down to 0, the exact trace, which gives back the very same pixels. An instance a
single polygon cannot express (it encloses a hole, or is in several pieces) is written as
a CVAT mask instead, and a note says so.

Uploading to CVAT
-----------------
The XML is "CVAT for images 1.1". CVAT matches each ``<image name=…>`` to a frame of the
task by its file name (the path, with a folder prefix tolerated), falling back to the
``id`` as the frame number; the ``<meta>`` block is informational. So:

* predict the very files that were uploaded to the task, under the same names (a folder
  given to ``defectlab predict`` keeps the paths inside it); ``id`` is the image's position
  in name order, CVAT's default frame order for uploaded files;
* the task must already have labels with the model's class names (CVAT refuses a shape
  whose label the task does not have);
* in CVAT: task → Actions → *Upload annotations* → format *CVAT 1.1* → the XML (or
  ``cvat-cli`` with the format ``"CVAT 1.1"``). CVAT warns that the task's current
  annotations are replaced.

Examples
--------
>>> import numpy as np
>>> from defectlab.raster import rasterize
>>> sem = np.zeros((32, 32), np.uint8); sem[4:12, 5:15] = 1
>>> inst = sem.astype(np.int32)
>>> item, notes = prediction_item(sem, inst, np.array([1], np.uint8), "a.png", {1: "cavity"})
>>> shape = item.shapes[0]
>>> shape.kind, shape.label, shape.source, rasterize(shape, (32, 32)).area
('polygon', 'cavity', 'auto', 80)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..formats.cvat_xml import write_cvat
from ..model import Dataset, Item, Label, Mask, Note, Polygon
from ..raster import mask_to_polygons, rasterize

__all__ = ["prediction_item", "prelabels_dataset", "write_cvat_prelabels", "DEFAULT_TOLERANCE",
           "DEFAULT_MAX_AREA_CHANGE", "DEFAULT_MIN_IOU"]

#: Douglas–Peucker tolerance tried first, px.
DEFAULT_TOLERANCE = 0.5
#: Largest relative change of an instance's pixel count that simplification may cause.
DEFAULT_MAX_AREA_CHANGE = 0.01
#: Least IoU between an instance's pixels and its simplified polygon's.
DEFAULT_MIN_IOU = 0.95


def _centers_on_boundary(ring: np.ndarray) -> int:
    """Number of pixel centers lying exactly on the ring's edges.

    Traced (and simplified) vertices lie on the half-pixel lattice, so an edge can pass
    exactly through pixel centers; whether those count as inside depends on the
    rasterizer's tie rule (defectlab's, CVAT's, skimage's differ). In doubled coordinates
    vertices are integers and centers are the odd-odd points: the lattice points of each
    edge are ``P0 + t (dX, dY) / gcd``.
    """
    pts = np.rint(np.asarray(ring) * 2).astype(np.int64)
    if not np.allclose(pts, np.asarray(ring) * 2):  # not on the half-pixel lattice: no exact ties expected
        return 0
    count = 0
    for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0)):
        dx, dy = int(x1 - x0), int(y1 - y0)
        g = math.gcd(abs(dx), abs(dy))
        if g == 0:
            continue
        t = np.arange(g)
        xs, ys = x0 + t * (dx // g), y0 + t * (dy // g)
        count += int(np.count_nonzero((xs % 2 == 1) & (ys % 2 == 1)))
    return count


def _fits(polygon: Polygon, bitmap: np.ndarray, x0: int, y0: int, size_hw: tuple[int, int],
          max_area_change: float, min_iou: float) -> bool:
    """The area and IoU guarantee, whatever a rasterizer does with centers exactly on an edge."""
    crop = rasterize(polygon, size_hw)
    n = int(bitmap.sum())
    ties = _centers_on_boundary(polygon.points_xy)
    if abs(crop.area - n) + ties > max_area_change * n:
        return False
    ys, xs = crop.slices
    ys2, xs2 = slice(y0, y0 + bitmap.shape[0]), slice(x0, x0 + bitmap.shape[1])
    r0, r1 = min(ys.start, ys2.start), max(ys.stop, ys2.stop)
    c0, c1 = min(xs.start, xs2.start), max(xs.stop, xs2.stop)
    a = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    b = np.zeros_like(a)
    a[ys.start - r0:ys.stop - r0, xs.start - c0:xs.stop - c0] = crop.bitmap
    b[ys2.start - r0:ys2.stop - r0, xs2.start - c0:xs2.stop - c0] = bitmap
    inter, union = int((a & b).sum()), int((a | b).sum())
    return union > 0 and (inter - ties) / (union + ties) >= min_iou


def prediction_item(
    semantic: np.ndarray,
    instances: np.ndarray,
    instance_classes: np.ndarray,
    name: str,
    classes: Mapping[int, str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_area_change: float = DEFAULT_MAX_AREA_CHANGE,
    min_iou: float = DEFAULT_MIN_IOU,
    item_id: int | None = None,
    source: str = "auto",
) -> tuple[Item, list[Note]]:
    """One image's predicted instances as an :class:`Item` of polygons (or masks).

    Parameters
    ----------
    semantic : (H, W) uint8
        The class mask (only its size is used).
    instances : (H, W) int32
        Instance ids 1..N, 0 = background.
    instance_classes : (N,) int
        Class index of each instance.
    name : str
        The image name, as the labeling tool knows it.
    classes : mapping
        Class index -> label name.
    tolerance : float
        Simplification tried first, px (0: the exact trace).
    max_area_change, min_iou : float
        The per-instance guarantee (see the module docstring).
    item_id : int, optional
        The image's frame number in the task.
    source : str
        The shapes' ``source``.

    Returns
    -------
    item : Item
        Shapes in instance order; polygons with ``source``.
    notes : list of Note
        One per instance written as a mask (code ``"prelabel-mask"``).
    """
    from scipy import ndimage

    size_hw = (int(semantic.shape[0]), int(semantic.shape[1]))
    if instances.shape != size_hw:
        raise ValueError(f"expected instances of shape {size_hw}, got {instances.shape}")
    if not 0 <= max_area_change < 1 or not 0 < min_iou <= 1 or tolerance < 0:
        raise ValueError(f"expected 0 <= max_area_change < 1, 0 < min_iou <= 1, tolerance >= 0; got "
                         f"{max_area_change}, {min_iou}, {tolerance}")
    shapes: list = []
    notes: list[Note] = []
    for i, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        bitmap = instances[box] == i
        y0, x0 = box[0].start, box[1].start
        label = classes[int(instance_classes[i - 1])]
        tol = tolerance
        shape = None
        while True:
            rings, holes = mask_to_polygons(bitmap, x0=x0, y0=y0, tolerance=tol)
            if len(rings) != 1 or holes:
                break  # no single polygon can hold it, at any tolerance
            poly = Polygon(label=label, points_xy=rings[0], source=source)
            if tol == 0 or _fits(poly, bitmap, x0, y0, size_hw, max_area_change, min_iou):
                shape = poly
                break
            tol = 0.0 if tol < 0.05 else tol / 2
        if shape is None:
            why = "encloses a hole" if holes else f"is in {len(rings)} pieces"
            shape = Mask(label=label, bitmap=bitmap, left=x0, top=y0, source=source)
            notes.append(Note("prelabel-mask", f"{label} {why}; written as a mask, not a polygon",
                              item=name, where=f"instance {i}"))
        shapes.append(shape)
    return Item(name, size_hw, tuple(shapes), id=item_id), notes


def prelabels_dataset(
    predictions: Sequence[tuple[str, object]] | Iterable[Item],
    classes: Sequence[object],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_area_change: float = DEFAULT_MAX_AREA_CHANGE,
    min_iou: float = DEFAULT_MIN_IOU,
    notes: Iterable[Note] = (),
) -> Dataset:
    """A :class:`Dataset` of pre-labels for many images.

    Parameters
    ----------
    predictions : sequence of (name, Prediction), or of Item
        Predictions (traced here with :func:`prediction_item`) or items already traced.
    classes : sequence of ClassInfo (or Label)
        The model's classes; the background (index 0), if present, is skipped. They
        become the labels, with their colors and edge conventions, type ``"any"``.

    Notes
    -----
    Items get ``id`` = their position in name order (CVAT's default frame order), unless
    they carry one.
    """
    labels = []
    for c in classes:
        if isinstance(c, Label):
            labels.append(c)
        elif getattr(c, "index", 1) != 0:
            labels.append(Label(c.name, color=c.to_dict()["color"], edge=c.edge))  # type: ignore[attr-defined]
    class_names = {i: lab.name for i, lab in enumerate(labels, start=1)}
    all_notes = list(notes)
    items: list[Item] = []
    entries = list(predictions)
    names = sorted(e.name if isinstance(e, Item) else e[0] for e in entries)
    order = {n: k for k, n in enumerate(names)}
    for e in entries:
        if isinstance(e, Item):
            items.append(e if e.id is not None else Item(e.name, e.size_hw, e.shapes, e.image, e.subset, order[e.name]))
            continue
        name, pred = e
        item, item_notes = prediction_item(
            pred.semantic, pred.instances, pred.instance_classes, name, class_names,  # type: ignore[attr-defined]
            tolerance=tolerance, max_area_change=max_area_change, min_iou=min_iou, item_id=order[name],
        )
        items.append(item)
        all_notes += item_notes
    return Dataset(tuple(labels), tuple(items), tuple(all_notes), source="defectlab predict", format="prelabels")


def write_cvat_prelabels(dataset: Dataset, path: str | Path) -> None:
    """Write pre-labels as CVAT for images 1.1 XML (see the module docstring for uploading)."""
    write_cvat(dataset, path)
