"""Writing Ultralytics YOLO datasets (see the package docstring for the format facts)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from ..._output import input_paths, output_dir
from ...errors import DatasetError
from ...model import Dataset, Item, Note, Shape
from ...raster import DEFAULT_LINE_WIDTH, instances, rasterize
from ...raster.clip import clip_ring as _clip_ring
from .._writing import WriteReport, check_items, copy_image
from .spec import DECIMALS, SUBSET_SPLIT

__all__ = ["write_yolo"]



def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _line(class_id: int, values: np.ndarray) -> str:
    return f"{class_id} " + " ".join(f"{v:.{DECIMALS}f}" for v in values.tolist())


def _split_of(item: Item) -> str:
    if item.subset is None:
        return "train"
    split = SUBSET_SPLIT.get(item.subset.strip().lower())
    if split is None:
        raise DatasetError(
            f"{item.name}: subset {item.subset!r} has no YOLO split; expected train, val or test "
            "(rename the subsets first, e.g. dataset.with_items([dataclasses.replace(it, subset=...) ...]))"
        )
    return split


def _safe_stem(item: Item) -> str:
    stem = item.stem
    parts = PurePosixPath(stem).parts
    if not parts or PurePosixPath(stem).is_absolute() or ".." in parts or ":" in parts[0]:
        raise DatasetError(
            f"{item.name!r}: an image name that is absolute or climbs out with '..' cannot be written"
        )
    return stem


def _detect_lines(item: Item, class_index: dict[str, int], line_width: float, notes: list[Note]) -> list[str]:
    inst, inst_notes = instances(item, class_index, line_width=line_width)
    notes.extend(inst_notes)
    h, w = item.size_hw
    lines = []
    for i in inst:
        x1, y1, x2, y2 = i.box_xyxy
        xywh = np.array([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
        lines.append(_line(i.class_id, xywh))
    return lines


def _segment_lines(
    item: Item, class_index: dict[str, int], line_width: float, tolerance: float, notes: list[Note]
) -> list[str]:
    from ...raster.contours import shape_polygons

    h, w = item.size_hw
    scale = np.array([w, h], dtype=np.float64)
    lines = []
    for index, shape in enumerate(item.shapes):
        if not shape.is_area and shape.kind != "polyline":
            continue
        if shape.label not in class_index:
            raise DatasetError(
                f"{item.name}: shape label {shape.label!r} has no class; classes are {list(class_index)}"
            )
        where = f"shape {index}"

        def note(code: str, message: str, shape: Shape = shape, where: str = where) -> None:
            notes.append(Note(code, f"{shape.kind} {shape.label!r} {message}", item=item.name, where=where))

        if rasterize(shape, item.size_hw, line_width=line_width).area == 0:
            note("degenerate-shape", "covers no pixel center (too small or outside the image); not written")
            continue
        rings, has_holes = shape_polygons(shape, item.size_hw, line_width=line_width, tolerance=tolerance)
        kept = []
        clipped = False
        for ring in rings:
            ring = np.asarray(ring, dtype=np.float64)
            if ring.size and (ring.min() < 0 or (ring[:, 0] > w).any() or (ring[:, 1] > h).any()):
                ring, clipped = _clip_ring(ring, w, h), True
            if len(ring) >= 3 and _ring_area(ring) > 0:
                kept.append(ring)
        if clipped:
            note("clipped-to-image", "reaches outside the image; written clipped to it")
        if not kept:
            note("degenerate-shape", "has no area inside the image; not written")
            continue
        if len(kept) > 1:
            note("split-instance", f"has {len(kept)} separate parts; written as {len(kept)} objects "
                 "(a YOLO line holds one polygon)")
        if has_holes:
            note("holes-dropped", "has holes, which YOLO polygons cannot hold; written filled")
        lines += [_line(class_index[shape.label], (ring / scale).ravel()) for ring in kept]
    return lines


def _data_yaml(out: Path, splits: list[str], names: list[str], task: str) -> str:
    import yaml

    body: dict[str, Any] = {"path": str(out)}
    for split in ("train", "val", "test"):
        if split in splits:
            body[split] = f"images/{split}"
    if "val" not in splits:
        body["val"] = "images/train"
    body["nc"] = len(names)
    body["names"] = dict(enumerate(names))
    head = (
        f"# Ultralytics YOLO {task} dataset written by defectlab.\n"
        "# 'path' is this folder; if you move it, change 'path' or delete that line\n"
        "# (Ultralytics then reads train/val/test relative to this file).\n"
    )
    return head + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=False)


def write_yolo(
    dataset: Dataset,
    out: str | Path,
    *,
    task: Literal["detect", "segment"] = "detect",
    overwrite: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    copy_images: bool = True,
    tolerance: float = 0.05,
) -> WriteReport:
    """Write an Ultralytics YOLO detection or segmentation dataset.

    Layout written::

        OUT/images/<split>/<name>      the image files (copy_images=True)
        OUT/labels/<split>/<stem>.txt  one line per object; an empty file for an image without any
        OUT/data.yaml                  path (absolute OUT), train, val[, test], nc, names {0: ...}

    Parameters
    ----------
    dataset : Dataset
        Items with their sizes (and image files, to copy them). Subsets, lower-cased, map to
        the splits train / val / test (``valid``, ``validation`` → val); items without a
        subset go to train. Classes: the labels in order, from 0.
    out : str or Path
        The output folder, created atomically.
    task : {"detect", "segment"}
        ``detect``: one ``class xc yc w h`` line per instance, the box being the pixel-edge
        bounds of the instance's rasterized pixels (the same boxes as the Mask R-CNN targets;
        polylines as their ``line_width`` line masks). ``segment``: one polygon line per outer
        ring of :func:`defectlab.raster.contours.shape_polygons` (polygons as drawn, ellipses as
        area-preserving polygons within ``tolerance`` px, boxes as their rotated corners,
        polylines as ``line_width`` wide outlines, masks as traced contours), clipped to the image.
    overwrite : bool
        Replace an existing output folder.
    line_width : float
        Width in px of polylines (dislocation lines), which YOLO cannot hold as lines.
    copy_images : bool
        Copy the images into ``images/<split>/``; with False only labels and data.yaml are
        written (put the images there yourself).
    tolerance : float
        Largest distance in px between an ellipse and its polygon (segment task).

    Returns
    -------
    WriteReport
        ``n_instances`` is the number of label lines; ``notes`` list everything not written as
        drawn: points and tags (YOLO has no place for them), degenerate shapes (no pixel
        center inside the image), polylines turned into areas, shapes split into parts or with
        holes filled (segment), shapes clipped to the image, val reusing train.

    Raises
    ------
    DatasetError
        A subset other than train / val / test, two items with the same output name, an
        image name that is absolute or holds ``..``, a shape whose label is not a class.
    ImageError
        ``copy_images`` and an image file is missing or its size differs from the item's.

    Notes
    -----
    Numbers are written with :data:`DECIMALS` = 6 decimals: a coordinate moves by at most
    0.5e-6 x the image size (0.0005 px on a 1024 px image). Without a val subset, ``val``
    points at ``images/train`` (Ultralytics requires a val entry), with a note.

    ``path`` is written as the absolute output folder, the one value every Ultralytics and
    YOLOv5 version resolves the same way: ``path: .`` means the *working directory* to
    Ultralytics, and a missing ``path`` means the yaml's folder only to recent Ultralytics
    (YOLOv5 resolves it against its own install folder). :func:`read_yolo` reads a moved
    folder anyway (falling back to the yaml's folder, with a note).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from defectlab.preparation.synthetic import make_synthetic_dataset
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = make_synthetic_dataset(tmp / "export", n_images=2)
    >>> report = write_yolo(ds, tmp / "yolo")
    >>> sorted(p.name for p in (tmp / "yolo").iterdir())
    ['data.yaml', 'images', 'labels']
    """
    if task not in ("detect", "segment"):
        raise ValueError(f"expected task 'detect' or 'segment', got {task!r}")
    for name, value in (("line_width", line_width), ("tolerance", tolerance)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"expected {name} > 0 px, got {value!r}")
    check_items(dataset, need_images=copy_images, same_size=False)
    class_index = {lab.name: i for i, lab in enumerate(dataset.labels)}
    out = Path(out)
    report = WriteReport(out, n_items=len(dataset.items), notes=list(dataset.notes))
    placed = [(_split_of(it), _safe_stem(it), it) for it in dataset.items]
    dup = [k for k, n in Counter((s, stem) for s, stem, _ in placed).items() if n > 1]
    if dup:
        raise DatasetError(
            f"two images would be written as {dup[0][0]}/{dup[0][1]}; image names must be unique per split"
        )
    splits = [s for s in ("train", "val", "test") if any(p[0] == s for p in placed)] or ["train"]
    if "val" not in splits:
        report.notes.append(Note(
            "val-is-train", "the dataset has no val subset; data.yaml's val points at images/train "
            "(Ultralytics requires one)"
        ))
    n_polylines = 0
    inputs = input_paths(dataset)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        for split, stem, item in placed:
            for index, shape in enumerate(item.shapes):
                if shape.kind in ("points", "tag"):
                    report.notes.append(Note(
                        f"skipped-{shape.kind}",
                        f"{shape.kind} {shape.label!r} not written: YOLO labels hold no points or tags",
                        item=item.name, where=f"shape {index}",
                    ))
                n_polylines += shape.kind == "polyline"
            if task == "detect":
                lines = _detect_lines(item, class_index, line_width, report.notes)
            else:
                lines = _segment_lines(item, class_index, line_width, tolerance, report.notes)
            report.n_instances += len(lines)
            label = tmp / "labels" / split / f"{stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            if copy_images:
                copy_image(replace(item, subset=split), tmp / "images")
        if n_polylines:
            what = "boxes" if task == "detect" else "outlines"
            report.notes.append(Note(
                "polyline-as-area", f"{n_polylines} polyline(s) written as the {what} of their "
                f"{line_width:g} px wide line masks (YOLO has no lines)"
            ))
        (tmp / "data.yaml").write_text(
            _data_yaml(out.absolute(), splits, [lab.name for lab in dataset.labels], task), encoding="utf-8"
        )
    return report
