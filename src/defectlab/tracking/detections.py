"""Detections per frame: what the linker links, from labels or predictions.

A :class:`Detections` holds one row per object per frame — frame index, label, centroid
``(x, y)`` in px (the continuous coordinates of :mod:`defectlab.model.shapes`), area in px² —
and, where they are known, the object's shape (for pre-labels and overlays) and a true track
id (for evaluation). Sources:

=====================================  ============================================================
source                                 what is read
=====================================  ============================================================
a :class:`~defectlab.model.Dataset`    every area shape (polygon, ellipse, box, mask) of every
or any export :func:`defectlab.read`   item; frames are the items in ``Item.id`` order when every
reads                                  item has one (CVAT video), else in natural order of names
a CVAT for video 1.1 export            the same, plus each shape's ``<track>`` id as the truth
                                       (:func:`~defectlab.tracking.cvat_video.read_cvat_tracks`)
a ``defectlab predict`` folder         ``instances/<stem>.tif`` (int32 ids) in natural order of
                                       stems, each instance's class the most common value of
                                       ``masks/<stem>.png`` under it, class names from
                                       ``classes.json`` or ``summary.json``
=====================================  ============================================================

Centroids and areas of shapes are exact (ellipse: its center and ``π rx ry``; polygon: the
shoelace centroid and area; masks: the mean of their pixel centers and the pixel count);
those of predicted instances are the mean of their pixel centers and the pixel count.
Polylines, points and tags are not objects to track: each frame that has some gets a note.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DatasetError, ImageError
from ..model import Box, Dataset, Ellipse, Item, Label, Mask, Note, Polygon, Shape

__all__ = ["Detections", "detections_from_dataset", "detections_from_predictions", "has_tracks", "load_detections",
           "is_predict_folder", "shape_centroid"]


@dataclass(frozen=True)
class Detections:
    """Objects per frame, as parallel arrays (N rows).

    Parameters
    ----------
    frame : (N,) int64
        Frame index, 0-based, in video order.
    label : (N,) object
        Class name of each object.
    x, y : (N,) float64
        Centroid, px.
    area_px : (N,) float64
        Area, px².
    n_frames : int
        Frames of the video (frames without objects count too).
    size_hw : (int, int)
        Frame height and width, px.
    frame_names : tuple of str
        One name per frame.
    labels : tuple of Label
        The classes, in order.
    shapes : list of Shape or None
        The object's shape per row, when known.
    true_id : (N,) int64 or None
        The true track id per row (CVAT video tracks), when known.
    notes : tuple of Note
        What was not read, and why.
    """

    frame: np.ndarray
    label: np.ndarray
    x: np.ndarray
    y: np.ndarray
    area_px: np.ndarray
    n_frames: int
    size_hw: tuple[int, int]
    frame_names: tuple[str, ...] = ()
    labels: tuple[Label, ...] = ()
    shapes: list[Shape] | None = None
    true_id: np.ndarray | None = None
    notes: tuple[Note, ...] = ()
    source: str | None = None
    images: tuple[Any, ...] = field(default=(), repr=False)  # an ImageSource (or None) per frame

    def __len__(self) -> int:
        return int(self.frame.size)

    def take(self, rows: np.ndarray) -> "Detections":
        """The detections at ``rows`` (an index or bool array)."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        return replace(self, frame=self.frame[idx], label=self.label[idx], x=self.x[idx], y=self.y[idx],
                       area_px=self.area_px[idx], shapes=None if self.shapes is None else [self.shapes[i] for i in idx],
                       true_id=None if self.true_id is None else self.true_id[idx])


def shape_centroid(shape: Shape) -> tuple[float, float, float]:
    """``(x, y, area_px)`` of an area shape, exactly; ValueError for shapes without area.

    Examples
    --------
    >>> from defectlab.model import Polygon
    >>> shape_centroid(Polygon(label="p", points_xy=[(0, 0), (4, 0), (4, 2), (0, 2)]))
    (2.0, 1.0, 8.0)
    """
    if isinstance(shape, Ellipse):
        return shape.cx, shape.cy, shape.area()
    if isinstance(shape, Box):
        c = shape.corners_xy().mean(axis=0)
        return float(c[0]), float(c[1]), shape.area()
    if isinstance(shape, Polygon):
        p = shape.points_xy
        x, y = p[:, 0] - p[0, 0], p[:, 1] - p[0, 1]  # about the first vertex: fewer cancellations
        xn, yn = np.roll(x, -1), np.roll(y, -1)
        cross = x * yn - xn * y
        a2 = float(cross.sum())
        if a2 == 0:
            c = p.mean(axis=0)
            return float(c[0]), float(c[1]), 0.0
        cx = float(((x + xn) * cross).sum() / (3 * a2) + p[0, 0])
        cy = float(((y + yn) * cross).sum() / (3 * a2) + p[0, 1])
        return cx, cy, abs(a2) / 2
    if isinstance(shape, Mask):
        rows, cols = np.nonzero(shape.bitmap)
        if rows.size == 0:
            return float(shape.left), float(shape.top), 0.0
        return float(cols.mean() + 0.5 + shape.left), float(rows.mean() + 0.5 + shape.top), float(rows.size)
    raise ValueError(f"a {shape.kind} has no area to track")


def _frame_order(items: Sequence[Item]) -> list[Item]:
    from ..ordering import natural_key

    if items and all(it.id is not None for it in items) and len({it.id for it in items}) == len(items):
        return sorted(items, key=lambda it: it.id)
    return sorted(items, key=lambda it: natural_key(it.name))


def detections_from_dataset(dataset: Dataset, *, true_ids: dict[tuple[int, int], int] | None = None) -> Detections:
    """The area shapes of every item of ``dataset``, one frame per item.

    Parameters
    ----------
    dataset : Dataset
        Items are frames: in ``Item.id`` order when all have distinct ids, else in natural
        order of their names.
    true_ids : dict, optional
        ``(frame position, shape index in item) -> track id``: the truth, when known.

    Raises
    ------
    DatasetError
        The dataset has no items, or its items differ in size.
    """
    items = _frame_order(list(dataset.items))
    if not items:
        raise DatasetError(f"{dataset.source or 'dataset'}: no frames (items) to track")
    size_hw = items[0].size_hw
    rows: list[tuple[int, str, float, float, float]] = []
    shapes: list[Shape] = []
    tids: list[int] = []
    notes = list(dataset.notes)
    for f, item in enumerate(items):
        if item.size_hw != size_hw:
            raise DatasetError(f"{item.name}: frame {f} is {item.size_hw[1]}x{item.size_hw[0]} px, the first frame "
                               f"{items[0].name} is {size_hw[1]}x{size_hw[0]}; frames of one video have one size")
        skipped = 0
        for k, shape in enumerate(item.shapes):
            if not shape.is_area:
                skipped += 1
                continue
            x, y, a = shape_centroid(shape)
            rows.append((f, shape.label, x, y, a))
            shapes.append(shape)
            if true_ids is not None:
                tids.append(true_ids.get((f, k), -1))
        if skipped:
            notes.append(Note("not-tracked", f"{skipped} shape(s) without area (lines, points, tags) not tracked",
                              item=item.name))
    arr = np.array([r[2:] for r in rows], dtype=np.float64).reshape(-1, 3)
    return Detections(
        frame=np.array([r[0] for r in rows], dtype=np.int64), label=np.array([r[1] for r in rows], dtype=object),
        x=arr[:, 0], y=arr[:, 1], area_px=arr[:, 2], n_frames=len(items), size_hw=size_hw,
        frame_names=tuple(it.name for it in items), labels=tuple(dataset.labels), shapes=shapes,
        true_id=np.array(tids, dtype=np.int64) if true_ids is not None else None, notes=tuple(notes),
        source=dataset.source, images=tuple(it.image for it in items))


def is_predict_folder(path: str | Path) -> bool:
    """True for a ``defectlab predict`` output folder (``instances/`` with ``summary.json`` or ``classes.json``)."""
    p = Path(path)
    return p.is_dir() and (p / "instances").is_dir() and ((p / "summary.json").is_file() or (p / "classes.json").is_file())


def _class_names(folder: Path) -> dict[int, str]:
    for name in ("classes.json", "summary.json"):
        f = folder / name
        if not f.is_file():
            continue
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ImageError(f"{f}: not readable JSON ({err})") from err
        classes = doc.get("classes", doc) if name == "summary.json" else doc
        if isinstance(classes, list):
            return {i: str(c) for i, c in enumerate(classes)}
        if isinstance(classes, dict):
            out = {}
            for k, v in classes.items():
                try:
                    out[int(k)] = str(v["name"] if isinstance(v, dict) else v)
                except (ValueError, KeyError, TypeError):
                    continue
            return out
    raise ImageError(f"{folder}: a predict folder needs classes.json or summary.json with the class names")


def detections_from_predictions(folder: str | Path) -> Detections:
    """The predicted instances of a ``defectlab predict`` folder, one frame per instance image.

    Raises
    ------
    ImageError
        No instance images, an unreadable one, or frames of different sizes.
    """
    from scipy import ndimage

    from ..ordering import natural_key
    from ..imaging.io import read_image

    folder = Path(folder)
    files = sorted((p for p in (folder / "instances").iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png")),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise ImageError(f"{folder / 'instances'}: no instance images (.tif)")
    names = _class_names(folder)
    labels = tuple(Label(n) for k, n in sorted(names.items()) if k > 0)
    frames, lab, xs, ys, areas = [], [], [], [], []
    shapes: list[Shape] = []
    size_hw = None
    notes: list[Note] = []
    for f, path in enumerate(files):
        inst = read_image(path)
        if inst.ndim != 2:
            raise ImageError(f"{path}: expected an (H, W) image of instance ids, got shape {inst.shape}")
        if size_hw is None:
            size_hw = inst.shape
        elif inst.shape != size_hw:
            raise ImageError(f"{path}: frame {f} is {inst.shape[1]}x{inst.shape[0]} px, the first frame "
                             f"{files[0].name} is {size_hw[1]}x{size_hw[0]}; frames of one video have one size")
        ids = np.unique(inst)
        ids = ids[ids > 0]
        if ids.size == 0:
            continue
        mask_path = folder / "masks" / (path.stem + ".png")
        sem = read_image(mask_path) if mask_path.is_file() else None
        ones = np.ones(inst.shape, dtype=np.float64)
        counts = ndimage.sum_labels(ones, inst, ids)
        rr, cc = np.indices(inst.shape, dtype=np.float64)
        cy = ndimage.sum_labels(rr, inst, ids) / counts
        cx = ndimage.sum_labels(cc, inst, ids) / counts
        vyy = ndimage.sum_labels(rr * rr, inst, ids) / counts - cy * cy + 1 / 12  # + a pixel's own variance
        vxx = ndimage.sum_labels(cc * cc, inst, ids) / counts - cx * cx + 1 / 12
        vxy = ndimage.sum_labels(rr * cc, inst, ids) / counts - cx * cy
        if sem is not None:
            cls = [int(np.bincount(sem[inst == i].ravel()).argmax()) for i in ids]
        else:
            cls = [1] * len(ids)
            notes.append(Note("no-class-mask", f"no {mask_path.name} in masks/: every instance is class 1",
                              item=path.name))
        for i, c in enumerate(cls):
            if c not in names or c == 0:
                notes.append(Note("unclassified-instance", f"instance {ids[i]} has class {c}, not in the class table",
                                  item=path.name))
                continue
            frames.append(f)
            lab.append(names[c])
            xs.append(cx[i] + 0.5)
            ys.append(cy[i] + 0.5)
            areas.append(counts[i])
            shapes.append(_moment_ellipse(names[c], cx[i] + 0.5, cy[i] + 0.5, vxx[i], vyy[i], vxy[i]))
    h, w = size_hw  # type: ignore[misc]  # set by the first file
    return Detections(np.array(frames, dtype=np.int64), np.array(lab, dtype=object), np.array(xs, dtype=np.float64),
                      np.array(ys, dtype=np.float64), np.array(areas, dtype=np.float64), len(files),
                      (int(h), int(w)), tuple(p.stem for p in files), labels, shapes, None,
                      tuple(notes), str(folder))


def _moment_ellipse(label: str, cx: float, cy: float, vxx: float, vyy: float, vxy: float) -> Ellipse:
    """The ellipse of the same second moments as an instance's pixels (a uniform ellipse's variance
    along an axis of radius a is a² / 4), rounded to 0.01 px as CVAT writes it."""
    tr, det = vxx + vyy, vxx * vyy - vxy * vxy
    disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, max(tr / 2 - disc, 1e-6)
    angle = 0.5 * math.degrees(math.atan2(2 * vxy, vxx - vyy))  # major axis from +x, clockwise on screen (y down)
    return Ellipse(label=label, cx=round(cx, 2), cy=round(cy, 2), rx=round(2 * math.sqrt(l1), 2),
                   ry=round(2 * math.sqrt(l2), 2), rotation_deg=round(angle % 180.0, 2), source="auto")


def load_detections(source: Dataset | Detections | str | Path, *, images: str | Path | None = None,
                    format: str | None = None) -> Detections:
    """Detections from a Dataset, a predict folder, a CVAT video export (with its true track ids) or any export."""
    if isinstance(source, Detections):
        return source
    if isinstance(source, Dataset):
        return detections_from_dataset(source)
    path = Path(source)
    if format is None and is_predict_folder(path):
        return detections_from_predictions(path)
    from ..formats import detect_format, read

    fmt = format or detect_format(path)
    if fmt == "cvat" and has_tracks(path):
        from .cvat_video import read_cvat_tracks

        vt = read_cvat_tracks(path, images=images)
        items = _frame_order(list(vt.dataset.items))
        pos = {it.id: f for f, it in enumerate(items)}
        truth: dict[tuple[int, int], int] = {}
        for t in vt.tracks:
            for frame, shape in t.shapes.items():
                item = items[pos[frame]]
                k = next(i for i, s in enumerate(item.shapes) if s is shape)
                truth[(pos[frame], k)] = t.track_id
        return detections_from_dataset(vt.dataset, true_ids=truth)
    options: dict[str, Any] = {"images": images} if images is not None else {}
    return detections_from_dataset(read(path, format=fmt, **options))


def has_tracks(path: str | Path) -> bool:
    """True when a CVAT XML holds ``<track`` elements (reads only its first megabyte or the archive member)."""
    from .cvat_video import annotations_xml

    xml = annotations_xml(path)
    if xml is None:
        return False
    try:
        if xml.suffix.lower() == ".zip":
            import zipfile

            with zipfile.ZipFile(xml) as zf:
                member = next((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "annotations.xml"), None)
                if member is None:
                    return False
                with zf.open(member) as fh:
                    head = fh.read(1 << 20)
        else:
            with open(xml, "rb") as fh:
                head = fh.read(1 << 20)
    except (OSError, ValueError):
        return False
    return b"<track " in head or b"<track\n" in head or b"<mode>interpolation</mode>" in head


def field_area_px(det: Detections) -> float:
    """Area of one frame, px²."""
    return float(det.size_hw[0] * det.size_hw[1])


def equivalent_diameter(area: np.ndarray) -> np.ndarray:
    """Diameter of the disc of the same area."""
    return 2.0 * np.sqrt(np.asarray(area, dtype=np.float64) / math.pi)
