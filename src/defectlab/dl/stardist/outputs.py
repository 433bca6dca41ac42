"""Star predictions → pre-labels and files: the polygons themselves, overlaps kept.

* :func:`fit_ellipse` — the rotated ellipse with a polygon's area, centroid and second
  moments (exact, Green's theorem): what a labeler draws for a class whose labels are
  ellipses (``ClassInfo.type == "ellipse"``).
* :func:`star_item` — one image's prediction as an :class:`~defectlab.model.Item`: a
  :class:`~defectlab.model.Polygon` per star (its vertices, not a trace of pixels), or its
  fitted :class:`~defectlab.model.Ellipse`; overlapping stars stay overlapping, the surer one
  on top (higher ``z_order``). Line instances (dislocation lines, from the class head) are
  traced from their pixels as the U-Net's are (:func:`defectlab.dl.prelabels.prediction_item`).
* :func:`predict_star_images` — the Python twin of ``defectlab predict`` for a star model:
  the files the U-Net path writes, plus ``polygons/<stem>.json``; CVAT and COCO pre-labels
  from the polygons. The instance TIFF cannot hold two instances on one pixel: where
  polygons overlap it keeps the surer one, and ``summary.json`` says how many pixels that was
  per image; the polygon outputs and measurements made from the pre-labels keep both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ...model import Ellipse, Item, Polygon
from ..model_io import ClassInfo
from .predict import StarPrediction

__all__ = ["fit_ellipse", "polygon_moments", "star_item", "predict_star_images"]


def polygon_moments(points_xy: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """``(area, cx, cy, cov)`` of a simple polygon: its area, centroid and the (2, 2) covariance
    of a uniform density over it (exact, by Green's theorem).

    Examples
    --------
    >>> a, cx, cy, cov = polygon_moments(np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]]))
    >>> a, cx, cy, cov.round(4).tolist()   # a 4 x 2 rectangle: variances w²/12, h²/12
    (8.0, 2.0, 1.0, [[1.3333, 0.0], [0.0, 0.3333]])
    """
    p = np.asarray(points_xy, dtype=np.float64)
    x0, y0 = p.mean(axis=0)
    x, y = p[:, 0] - x0, p[:, 1] - y0
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    c = x * yn - xn * y
    area = c.sum() / 2
    if area == 0:
        return 0.0, float(x0), float(y0), np.zeros((2, 2))
    cx = ((x + xn) * c).sum() / (6 * area)
    cy = ((y + yn) * c).sum() / (6 * area)
    ixx = ((x * x + x * xn + xn * xn) * c).sum() / 12  # integral of x² dA
    iyy = ((y * y + y * yn + yn * yn) * c).sum() / 12
    ixy = ((x * yn + 2 * x * y + 2 * xn * yn + xn * y) * c).sum() / 24
    cov = np.array([[ixx / area - cx * cx, ixy / area - cx * cy], [ixy / area - cx * cy, iyy / area - cy * cy]])
    return float(abs(area)), float(x0 + cx), float(y0 + cy), cov


def fit_ellipse(points_xy: np.ndarray, *, label: str = "", **fields: Any) -> Ellipse:
    """The ellipse with the polygon's centroid and second moments (a filled ellipse with
    semi-axes a, b has variances a²/4 and b²/4 along its axes); ``rotation_deg`` in [0, 180)
    is the major axis' angle, clockwise on screen (y down), as :class:`~defectlab.model.Ellipse` has it.

    Examples
    --------
    >>> from defectlab.raster import ellipse_polygon
    >>> e = fit_ellipse(ellipse_polygon(Ellipse(label="c", cx=10, cy=20, rx=8, ry=3, rotation_deg=30)))
    >>> round(e.cx, 3), round(e.cy, 3), round(e.rx, 2), round(e.ry, 2), round(e.rotation_deg, 1)
    (10.0, 20.0, 8.0, 3.0, 30.0)
    """
    _, cx, cy, cov = polygon_moments(points_xy)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 0.0)
    major = vecs[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0])) % 180.0
    rx, ry = 2 * math.sqrt(vals[1]), 2 * math.sqrt(vals[0])
    return Ellipse(label=label, cx=cx, cy=cy, rx=max(rx, 1e-3), ry=max(ry, 1e-3), rotation_deg=angle, **fields)


def _class_infos(classes: Sequence[ClassInfo] | dict[int, str]) -> dict[int, ClassInfo]:
    if isinstance(classes, dict):
        return {i: ClassInfo(i, n) for i, n in classes.items()}
    return {c.index: c for c in classes if c.index}


def star_item(
    pred: StarPrediction,
    name: str,
    classes: Sequence[ClassInfo] | dict[int, str],
    *,
    item_id: int | None = None,
    source: str = "auto",
    decimals: int = 2,
) -> tuple[Item, list[Any]]:
    """One image's prediction as an Item of polygons / ellipses (and traced lines), and notes.

    Parameters
    ----------
    pred : StarPrediction
    name : str
        The image's name, as the labeling tool knows it.
    classes : sequence of ClassInfo, or dict index -> name
        The model's classes; a class of type ``"ellipse"`` gets fitted ellipses.
    decimals : int
        Coordinates are rounded to this many decimals (CVAT writes 2).
    """
    from ..prelabels import prediction_item

    info = _class_infos(classes)
    n = pred.n_stars
    shapes: list = []
    polys = np.round(pred.polygons(), decimals)
    for i in range(n):
        c = info[int(pred.instance_classes[i])]
        z = n - i  # the surest (first) on top
        if c.type == "ellipse":
            e = fit_ellipse(polys[i], label=c.name, source=source, z_order=z)
            shapes.append(e.replace(cx=round(e.cx, decimals), cy=round(e.cy, decimals), rx=round(e.rx, decimals),
                                    ry=round(e.ry, decimals), rotation_deg=round(e.rotation_deg, decimals)))
        else:
            shapes.append(Polygon(label=c.name, points_xy=polys[i], source=source, z_order=z))
    notes: list[Any] = []
    if pred.n_instances > n:  # line instances, after the stars
        lines = np.where(pred.instances > n, pred.instances - n, 0).astype(np.int32)
        line_item, notes = prediction_item(pred.semantic, lines, pred.instance_classes[n:], name,
                                           {i: c.name for i, c in info.items()}, source=source)
        shapes += list(line_item.shapes)
    return Item(name, pred.size_hw, tuple(shapes), id=item_id), notes


def _polygons_json(pred: StarPrediction, classes: dict[int, str]) -> dict[str, Any]:
    return {
        "size_hw": list(pred.size_hw), "n_rays": int(pred.distances.shape[1]) if pred.n_stars else None,
        "overlap_px": pred.overlap_px,
        "stars": [{"class": classes[int(pred.instance_classes[i])], "score": round(float(pred.scores[i]), 4),
                   "instance_id": i + 1, "center_xy": [round(float(v), 3) for v in pred.points_xy[i]],
                   "distances": [round(float(v), 3) for v in pred.distances[i]],
                   "vertices_xy": np.round(pred.polygons()[i], 3).tolist()} for i in range(pred.n_stars)],
    }


def predict_star_images(
    model: Any,
    images: Sequence[str | Path],
    out: str | Path,
    *,
    prelabels: str | Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> Any:
    """Predict image files with a star model and write the results (see the module docstring).

    Writes into ``out`` (atomically) what :func:`defectlab.dl.predict.predict_images` writes
    — ``masks/``, ``instances/``, ``overlays/``, ``summary.json``, and with ``prelabels``
    ``prelabels/annotations.xml`` (CVAT) and/or ``prelabels/coco/…`` (COCO) — plus
    ``polygons/<stem>.json``: every star's class, score, center, ray distances and vertices.
    Other keyword ``options`` go to :meth:`StarModel.predict`.
    """
    from ..._output import output_dir
    from ...imaging.io import read_image, write_image
    from ...model import ImageSource
    from ...viz import overlay
    from ..predict import PRELABEL_FORMATS, PredictReport, find_images
    from ..prelabels import prelabels_dataset, write_cvat_prelabels

    kinds = [] if prelabels is None else [prelabels] if isinstance(prelabels, str) else list(prelabels)
    bad = [k for k in kinds if k not in PRELABEL_FORMATS]
    if bad:
        raise ValueError(f"expected prelabels among {', '.join(PRELABEL_FORMATS)}, got {bad[0]!r}")
    found = find_images(images)
    report = PredictReport(Path(out))
    items: list[Item] = []
    frame = {name: k for k, name in enumerate(sorted(name for name, _ in found))}
    with output_dir(out, overwrite=overwrite, inputs=[p for _, p in found]) as tmp:
        it: Iterable[tuple[str, Path]] = found
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(found, desc="predict", unit="img")
        for name, path in it:
            image = read_image(ImageSource(path))
            pred = model.predict_star(image, **options)
            stem = name.rsplit(".", 1)[0]
            for sub, suffix, arr in (("masks", ".png", pred.semantic), ("instances", ".tif", pred.instances),
                                     ("overlays", ".png", overlay(image, pred.semantic, model.config.colors_rgb,
                                                                  outlines=pred.instances))):
                dest = tmp / sub / f"{stem}{suffix}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_image(dest, arr)
            dest = tmp / "polygons" / f"{stem}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(_polygons_json(pred, model.classes)) + "\n", encoding="utf-8")
            report.images.append({"name": name, "size_hw": list(pred.size_hw), "instances": pred.counts(),
                                  "seconds": round(pred.seconds, 3), "engine": pred.engine,
                                  "overlap_px": pred.overlap_px, "notes": pred.notes})
            if kinds:
                item, notes = star_item(pred, name, model.config.classes, item_id=frame[name])
                items.append(item)
                report.notes += notes
        if kinds:
            ds = prelabels_dataset(items, [_as_label(c) for c in model.config.classes[1:]], notes=report.notes)
            (tmp / "prelabels").mkdir()
            if "cvat" in kinds:
                write_cvat_prelabels(ds, tmp / "prelabels" / "annotations.xml")
                report.prelabels = Path(out) / "prelabels" / "annotations.xml"
            if "coco" in kinds:
                from ...formats.coco_json import write_coco

                write_coco(ds, tmp / "prelabels" / "coco", copy_images=False)
                report.prelabels_coco = Path(out) / "prelabels" / "coco" / "annotations" / "instances_default.json"
        (tmp / "summary.json").write_text(json.dumps({
            "model": str(model.path) if model.path else None, "architecture": model.architecture,
            "classes": model.classes, "thresholds": _used_thresholds(model.thresholds, options),
            "images": report.images,
        }, indent=2) + "\n", encoding="utf-8")
    return report


def _used_thresholds(stored: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The model's thresholds as the prediction used them: ``prob`` / ``nms`` given in ``options``
    replace the stored ones (and ``overridden`` names them)."""
    given = {k: options[f"{k}_thresh"] for k in ("prob", "nms") if options.get(f"{k}_thresh") is not None}
    return {**stored, **given, "overridden": sorted(given)} if given else dict(stored)


def _as_label(c: ClassInfo) -> Any:
    """The pre-labels' label of a class: its name, color, edge convention and shape type."""
    from ...model import Label

    kind = c.type if c.type in ("ellipse", "polygon", "polyline") else "any"
    return Label(c.name, color=c.to_dict()["color"], edge=c.edge, type=kind)
