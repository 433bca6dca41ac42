"""Writing COCO instances JSON (see the package docstring for the format facts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..._output import input_paths, output_dir
from ...errors import DatasetError
from ...model import Box, Dataset, Ellipse, Item, Mask, Note, Points, Polygon, Polyline, Shape, Tag
from ...raster import DEFAULT_LINE_WIDTH, rasterize
from .._writing import WriteReport, check_items, copy_image
from .spec import DEFAULT_SUBSET, EXTRA, encode_rle

__all__ = ["write_coco"]



def _is_simple(points: np.ndarray) -> bool:
    """True when no two non-adjacent edges of the closed polygon meet (touching counts).

    A simple polygon is filled alike by the non-zero rule (ours) and the even-odd rule
    (pycocotools'), so it can be written as a COCO polygon.
    """
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]  # drop repeated vertices
    n = len(pts)
    if n <= 3:
        return n == 3
    a, b = pts, np.roll(pts, -1, axis=0)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    cols = np.arange(n)[None, :]
    for start in range(0, n, 256):  # 256 edges against all at a time: memory O(256 n)
        i = np.arange(start, min(start + 256, n))[:, None]
        pair = (cols > i + 1) & ~((i == 0) & (cols == n - 1))  # each non-adjacent pair once
        if not pair.any():
            continue
        ai, bi, aj, bj = a[i[:, 0], None], b[i[:, 0], None], a[None], b[None]

        def orient(p, q, r):
            return np.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
                           - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

        o1, o2, o3, o4 = orient(ai, bi, aj), orient(ai, bi, bj), orient(aj, bj, ai), orient(aj, bj, bi)
        if ((o1 != o2) & (o3 != o4) & pair).any():
            return False
        zero = ((o1 == 0) | (o2 == 0) | (o3 == 0) | (o4 == 0)) & pair
        if zero.any():  # collinear cases: is the point within the other edge's extent?
            def within(p, k, rows):  # point p (broadcast) inside the box of edge k
                box_lo, box_hi = (lo[k[:, 0], None], hi[k[:, 0], None]) if rows else (lo[None], hi[None])
                return np.all((box_lo <= p) & (p <= box_hi), axis=-1)

            touch = (o1 == 0) & within(aj, i, True) | (o2 == 0) & within(bj, i, True)
            touch |= (o3 == 0) & within(ai, i, False) | (o4 == 0) & within(bi, i, False)
            if (touch & zero).any():
                return False
    return True


def _flat(ring: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(ring, dtype=np.float64).ravel()]


def _segmentation(shape: Shape, crop, size_hw: tuple[int, int], line_width: float) -> tuple[Any, dict]:
    """(COCO segmentation, defectlab extra) for one area shape or polyline with pixels."""
    from ...raster.contours import shape_polygons

    extra: dict[str, Any] = {}
    if isinstance(shape, Polyline):
        extra = {"kind": "polyline", "points": shape.points_xy.tolist(), "line_width": float(line_width)}
    elif isinstance(shape, Ellipse):
        extra = {"kind": "ellipse", "cx": shape.cx, "cy": shape.cy, "rx": shape.rx, "ry": shape.ry,
                 "rotation_deg": shape.rotation_deg}
    elif isinstance(shape, Box):
        extra = {"kind": "box", "xyxy": list(shape.xyxy), "rotation_deg": shape.rotation_deg}
    if isinstance(shape, Mask):
        return encode_rle(crop.bitmap, crop.x0, crop.y0, size_hw), extra
    if isinstance(shape, Polygon) and not _is_simple(shape.points_xy):
        # pycocotools fills even-odd, we fill non-zero: only the pixels say the same to both
        extra = {"kind": "polygon", "points": shape.points_xy.tolist()}
        return encode_rle(crop.bitmap, crop.x0, crop.y0, size_hw), extra
    rings, has_holes = shape_polygons(shape, size_hw, line_width=line_width)
    rings = [r for r in rings if len(r) >= 3]
    if has_holes or not rings:
        return encode_rle(crop.bitmap, crop.x0, crop.y0, size_hw), extra
    return [_flat(r) for r in rings], extra


def _annotation(shape: Shape, ann_id: int, image_id: int, cat_id: int, crop, size_hw, line_width) -> dict:
    segmentation, extra = _segmentation(shape, crop, size_hw, line_width)
    x1, y1, x2, y2 = crop.box_xyxy()
    attrs: dict[str, Any] = {k: v for k, v in shape.attributes.items() if k != "iscrowd"}
    attrs["occluded"] = bool(shape.occluded)
    if shape.group is not None:
        extra["group"] = int(shape.group)
    if shape.z_order:
        extra["z_order"] = int(shape.z_order)
    if shape.source != "manual":
        extra["source"] = shape.source
    ann = {
        "id": ann_id, "image_id": image_id, "category_id": cat_id, "segmentation": segmentation,
        "area": float(crop.area), "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
        "iscrowd": 1 if shape.attributes.get("iscrowd") == "1" else 0, "attributes": attrs,
    }
    if extra:
        ann[EXTRA] = extra
    return ann


def _subset_folder(subset: str | None) -> str:
    name = subset or DEFAULT_SUBSET
    if name in (".", "..") or set(name) & set('/\\:*?"<>|\x00'):
        raise DatasetError(f"the subset name {name!r} cannot be a file name; rename the subset")
    return name


def write_coco(
    dataset: Dataset,
    out: str | Path,
    *,
    overwrite: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    copy_images: bool = True,
) -> WriteReport:
    """Write ``dataset`` as a COCO instances export that pycocotools, torchvision and CVAT read.

    Layout::

        OUT/annotations/instances_<subset>.json   one per subset; "default" for items without one
        OUT/images/<subset>/<name>                 the image files (items without a subset: OUT/images/<name>)

    which :func:`read_coco` reads back to the same subsets.

    Parameters
    ----------
    dataset : Dataset
    out : path
        The output folder, created atomically (see :func:`defectlab._output.output_dir`).
    overwrite : bool
        Replace an existing output folder.
    line_width : float
        Width in px of the outline written for a polyline.
    copy_images : bool
        Copy the image files (then every item needs one); ``file_name`` is the copy's name.

    Returns
    -------
    WriteReport
        ``n_instances`` annotations written; ``notes`` (the dataset's, then the writer's):
        points and tags not written (``skipped-shape``), shapes without a pixel
        (``degenerate-instance``), label attributes not kept.

    Notes
    -----
    Polygons are written as drawn, ellipses as area-preserving polygons (within 0.05 px) and
    boxes as their 4 corners, polylines as the outline of their ``line_width`` mask; masks,
    shapes whose pixels have holes and self-crossing polygons as compressed RLE (per
    instance). ``area`` is the pixel count of our rasterization and ``bbox`` its pixel-edge
    box; ids, image ids and category ids count from 1 in each file (category ids follow the
    label order); ``iscrowd`` is 1 only for shapes read with ``iscrowd: 1``; attributes go to
    ``attributes`` with ``occluded`` (as CVAT writes them). The shape itself, when COCO cannot
    hold it exactly, goes to the ``"defectlab"`` extra object (see the module docstring).

    Raises
    ------
    DatasetError
        Two items would share a file name, a subset name is not a file name, or a shape's
        label is not among the dataset's labels.
    ImageError
        ``copy_images`` and an image file is missing or its size differs from the declared one.
    OutputError
        ``out`` exists (without ``overwrite``) or would hold or replace an input.
    """
    check_items(dataset, need_images=copy_images, same_size=False)
    cat_ids = dataset.class_index()
    report = WriteReport(Path(out), n_items=len(dataset.items), notes=list(dataset.notes))
    if any(lab.attributes for lab in dataset.labels):
        report.notes.append(Note("label-attributes-not-kept", "COCO has no place for label attribute declarations"))
    groups: dict[str, list[Item]] = {}
    for item in dataset.items:
        groups.setdefault(_subset_folder(item.subset), []).append(item)
    categories = []
    for lab, cid in zip(dataset.labels, cat_ids.values()):
        cat: dict[str, Any] = {"id": cid, "name": lab.name, "supercategory": ""}
        extra = {k: v for k, v in (("color", lab.color), ("edge", lab.edge)) if v}
        if lab.type != "any":
            extra["type"] = lab.type
        if extra:
            cat[EXTRA] = extra
        categories.append(cat)
    inputs = input_paths(dataset)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        (tmp / "annotations").mkdir()
        for subset, items in groups.items():
            doc_images, doc_anns, names = [], [], set()
            for image_id, item in enumerate(items, start=1):
                file_name = item.name
                if copy_images:
                    dest = copy_image(item, tmp / "images")
                    base = tmp / "images" / item.subset if item.subset else tmp / "images"
                    file_name = dest.relative_to(base).as_posix()
                if file_name in names:
                    raise DatasetError(f"two images of subset {subset!r} would be written as {file_name!r}")
                names.add(file_name)
                h, w = item.size_hw
                doc_images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
                for k, shape in enumerate(item.shapes):
                    where = f"shape {k}"
                    if shape.label not in cat_ids:
                        raise DatasetError(f"item {item.name!r}: the shape label {shape.label!r} is not among "
                                           f"the dataset's labels {list(cat_ids)}")
                    if isinstance(shape, (Points, Tag)):
                        report.notes.append(Note("skipped-shape", f"COCO instances cannot hold a {shape.kind} "
                                                 f"({shape.label!r}); not written", item=item.name, where=where))
                        continue
                    crop = rasterize(shape, item.size_hw, line_width=line_width).tight()
                    if crop.area == 0:
                        report.notes.append(Note("degenerate-instance", f"{shape.kind} {shape.label!r} covers no "
                                                 "pixel center (too small or outside the image); not written",
                                                 item=item.name, where=where))
                        continue
                    doc_anns.append(_annotation(shape, len(doc_anns) + 1, image_id, cat_ids[shape.label],
                                                crop, item.size_hw, line_width))
            report.n_instances += len(doc_anns)
            doc = {
                "info": {"description": "written by defectlab", "version": "1.0"},
                "licenses": [],
                "categories": categories,
                "images": doc_images,
                "annotations": doc_anns,
            }
            text = json.dumps(doc, ensure_ascii=False, allow_nan=False)
            (tmp / "annotations" / f"instances_{subset}.json").write_text(text + "\n", encoding="utf-8")
    return report
