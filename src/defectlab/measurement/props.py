"""Per-defect measurements, in px and nm, from an item's shapes (labels or predictions).

Each defect is measured on its own crop (its pixels within its bounding box, as the
rasterizer makes them: a pixel belongs to a shape iff its center is inside), with
:func:`skimage.measure.regionprops_table` — never on a full-image array per defect. The
crops of an image are laid side by side on one small canvas (the sum of their box areas) and
measured in one call; each keeps all its pixels, so overlapping defects are measured whole.

Columns (one row per defect; ``_nm`` columns are NaN without a pixel size):

====================  =========================================================================
column                what
====================  =========================================================================
image                 the item's key
shape_index           index of the shape in ``item.shapes``
label, class_id       its class
kind                  shape kind (ellipse, polygon, mask, polyline, …)
score                 the shape's ``score``/``confidence`` attribute (predictions), else NaN
touches_border        True when a pixel of the defect is in the first/last row or column: the
                      defect may be cut by the image edge, and its size is left out of size
                      statistics by default
area_px, area_nm2     pixel count; × pixel_size²
diameter_px, _nm      equivalent diameter ``sqrt(4·area/π)``
major_axis_px, _nm    full lengths of the axes of the ellipse with the same second moments
minor_axis_px, _nm    (scikit-image ``axis_major_length``/``axis_minor_length``)
orientation_deg       direction of the major axis, degrees **clockwise on screen from +x**, in
                      [0, 180): the convention of :class:`~defectlab.model.Ellipse`
                      ``rotation_deg``. scikit-image's ``orientation`` θ is the angle in radians
                      between the rows axis and the major axis, in (−π/2, π/2]; the conversion
                      is ``orientation_deg = (90 − degrees(θ)) mod 180``
eccentricity          of that ellipse (0 = circle)
solidity              area / convex hull area
centroid_x_px, _y_px  center of mass in image coordinates: ``(0, 0)`` is the top-left corner of
                      the top-left pixel, so a pixel's center is ``(c + 0.5, r + 0.5)``
centroid_x_nm, _y_nm  × pixel_size
bbox_x1_px … y2_px    pixel-edge bounding box (x2, y2 exclusive)
length_px, _nm        polyline length from its geometry (dislocation lines); NaN for areas
mean_intensity        mean gray value of the defect's pixels in the micrograph (NaN without it)
pixel_size_nm         the pixel size used (NaN when uncalibrated)
====================  =========================================================================

Examples
--------
>>> from defectlab.model import Item, Ellipse
>>> item = Item("a.png", (64, 64), (Ellipse(label="cavity", cx=32, cy=32, rx=10, ry=10),))
>>> t, notes = measure_item(item, pixel_size_nm=0.5)
>>> int(t["area_px"][0]), round(float(t["diameter_nm"][0]), 2), bool(t["touches_border"][0])
(316, 10.03, False)
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..model import Item, Note, Shape
from ..raster import DEFAULT_LINE_WIDTH, Instance, instances
from .table import Table

__all__ = ["DEFECT_COLUMNS", "SCORE_ATTRIBUTES", "measure_instances", "measure_item", "shape_score"]

#: Column order of the per-defect table.
DEFECT_COLUMNS: tuple[str, ...] = (
    "image", "shape_index", "label", "class_id", "kind", "score", "touches_border",
    "area_px", "area_nm2", "diameter_px", "diameter_nm",
    "major_axis_px", "major_axis_nm", "minor_axis_px", "minor_axis_nm",
    "orientation_deg", "eccentricity", "solidity",
    "centroid_x_px", "centroid_y_px", "centroid_x_nm", "centroid_y_nm",
    "bbox_x1_px", "bbox_y1_px", "bbox_x2_px", "bbox_y2_px",
    "length_px", "length_nm", "mean_intensity", "pixel_size_nm",
)

#: Shape attributes read as a prediction's confidence, in this order.
SCORE_ATTRIBUTES: tuple[str, ...] = ("score", "confidence", "probability", "conf")

_PROPS = ("area", "equivalent_diameter_area", "axis_major_length", "axis_minor_length",
          "orientation", "eccentricity", "solidity", "centroid")


def shape_score(shape: Shape) -> float:
    """A prediction's confidence from its ``score``/``confidence`` attribute; NaN when absent.

    Examples
    --------
    >>> from defectlab.model import Ellipse
    >>> shape_score(Ellipse(label="c", cx=1, cy=1, rx=1, ry=1, attributes={"score": "0.87"}))
    0.87
    """
    attrs = shape.attributes
    for name in SCORE_ATTRIBUTES:
        for key in (name, name.capitalize(), name.upper()):
            if key in attrs:
                try:
                    return float(attrs[key])
                except (TypeError, ValueError):
                    return math.nan
    return math.nan


def _pack(shapes_hw: Sequence[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Places ``(h, w)`` rectangles side by side in rows (tallest first): ``(row, col)`` of each
    and the (H, W) of the canvas. The rectangles never overlap."""
    order = sorted(range(len(shapes_hw)), key=lambda i: -shapes_hw[i][0])
    width = max(max(w for _, w in shapes_hw), math.ceil(1.2 * math.sqrt(sum(h * w for h, w in shapes_hw))))
    pos: list[tuple[int, int]] = [(0, 0)] * len(shapes_hw)
    x = y = row_h = 0
    for i in order:
        h, w = shapes_hw[i]
        if x + w > width:
            y, x, row_h = y + row_h, 0, 0
        pos[i] = (y, x)
        x += w
        row_h = max(row_h, h)
    return pos, (y + row_h, width)


def _regions(crops: Sequence[Any], gray: np.ndarray | None) -> dict[str, np.ndarray]:
    """regionprops_table of every crop, each measured on its own pixels within its own box.

    The crops are laid side by side on one small canvas (about the sum of their box areas,
    not the image), crop ``k`` holding label ``k + 1``, so a single call measures them all;
    overlapping defects keep all their pixels, since each has its own place on the canvas.
    Centroids come back relative to each crop's top-left pixel.
    """
    from skimage.measure import regionprops_table

    pos, canvas_hw = _pack([c.bitmap.shape for c in crops])
    labels = np.zeros(canvas_hw, dtype=np.int32)
    intensity = np.zeros(canvas_hw, dtype=np.float64) if gray is not None else None
    for k, (c, (r, q)) in enumerate(zip(crops, pos)):
        h, w = c.bitmap.shape
        labels[r : r + h, q : q + w][c.bitmap] = k + 1
        if intensity is not None:
            intensity[r : r + h, q : q + w] = gray[c.slices]
    props = _PROPS + ("label",) + (("intensity_mean",) if intensity is not None else ())
    t = regionprops_table(labels, intensity_image=intensity, properties=props)
    idx = t["label"] - 1  # regions come in label order; all labels are present (crops are non-empty)
    out = {k: np.empty(len(crops)) for k in t if k != "label"}
    for k in out:
        out[k][idx] = t[k]
    rows0 = np.array([p[0] for p in pos], dtype=np.float64)
    cols0 = np.array([p[1] for p in pos], dtype=np.float64)
    out["centroid-0"] -= rows0
    out["centroid-1"] -= cols0
    return out


def measure_instances(
    found: Sequence[Instance],
    size_hw: tuple[int, int],
    *,
    item_key: str = "",
    class_names: Mapping[int, str] | None = None,
    image: np.ndarray | None = None,
    pixel_size_nm: float | None = None,
) -> Table:
    """The per-defect table (:data:`DEFECT_COLUMNS`) of instances of one image.

    Parameters
    ----------
    found : sequence of Instance
        Instances as :func:`defectlab.raster.instances` returns them (tight crops).
    size_hw : (int, int)
        The image's height and width, px (for the border flag).
    item_key : str
        Written in the ``image`` column.
    class_names : mapping, optional
        Class id -> label name; the shapes' own labels when omitted.
    image : (H, W) or (H, W, 3) array, optional
        The micrograph, for ``mean_intensity`` (color is converted to gray).
    pixel_size_nm : float, optional
        nm per pixel; ``_nm`` columns are NaN without it.
    """
    h, w = size_hw
    nm = float(pixel_size_nm) if pixel_size_nm else math.nan
    gray = None
    if image is not None:
        from ..imaging.io import to_gray

        gray = to_gray(image)
        if gray.shape[:2] != (h, w):
            raise ValueError(f"{item_key}: image is {gray.shape[:2]} px, the labels say {size_hw}")
    rows = []
    found = [inst for inst in found if inst.crop.bitmap.any()]
    p = _regions([inst.crop for inst in found], gray) if found else {}
    for i, inst in enumerate(found):
        crop = inst.crop
        bh, bw = crop.bitmap.shape
        x1, y1, x2, y2 = crop.x0, crop.y0, crop.x0 + bw, crop.y0 + bh
        area, d = float(p["area"][i]), float(p["equivalent_diameter_area"][i])
        major, minor = float(p["axis_major_length"][i]), float(p["axis_minor_length"][i])
        cx, cy = x1 + float(p["centroid-1"][i]) + 0.5, y1 + float(p["centroid-0"][i]) + 0.5
        shape = inst.shape
        length = shape.length() if shape.kind == "polyline" else math.nan  # type: ignore[attr-defined]
        rows.append({
            "image": item_key,
            "shape_index": inst.index,
            "label": class_names[inst.class_id] if class_names else shape.label,
            "class_id": inst.class_id,
            "kind": shape.kind,
            "score": shape_score(shape),
            "touches_border": bool(x1 == 0 or y1 == 0 or x2 == w or y2 == h),
            "area_px": area, "area_nm2": area * nm * nm,
            "diameter_px": d, "diameter_nm": d * nm,
            "major_axis_px": major, "major_axis_nm": major * nm,
            "minor_axis_px": minor, "minor_axis_nm": minor * nm,
            "orientation_deg": (90.0 - math.degrees(float(p["orientation"][i]))) % 180.0,
            "eccentricity": float(p["eccentricity"][i]),
            "solidity": float(p["solidity"][i]),
            "centroid_x_px": cx, "centroid_y_px": cy, "centroid_x_nm": cx * nm, "centroid_y_nm": cy * nm,
            "bbox_x1_px": x1, "bbox_y1_px": y1, "bbox_x2_px": x2, "bbox_y2_px": y2,
            "length_px": length, "length_nm": length * nm,
            "mean_intensity": float(p["intensity_mean"][i]) if "intensity_mean" in p else math.nan,
            "pixel_size_nm": nm,
        })
    if not rows:
        return empty_defect_table()
    return Table.from_rows(rows, DEFECT_COLUMNS)


def empty_defect_table() -> Table:
    """A defect table with no rows (right columns and dtypes)."""
    text = {"image", "label", "kind"}
    return Table({c: np.asarray([], dtype=object if c in text else np.float64) for c in DEFECT_COLUMNS})


def measure_item(
    item: Item,
    class_index: Mapping[str, int] | None = None,
    *,
    image: np.ndarray | None = None,
    pixel_size_nm: float | None = None,
    visible_only: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
) -> tuple[Table, list[Note]]:
    """Measure every defect (area shape or polyline) of one item.

    Parameters
    ----------
    item : Item
        Its shapes are the defects; points and tags are not measured.
    class_index : mapping, optional
        Label name -> class id (``dataset.class_index()``); by first appearance when omitted.
    image : array, optional
        The micrograph (H, W) or (H, W, 3), for ``mean_intensity``.
    pixel_size_nm : float, optional
        nm per pixel.
    visible_only : bool
        Measure only the visible part of overlapped defects (default: their full extent).
    line_width : float
        Width in px of the mask of a polyline.

    Returns
    -------
    table : Table
        :data:`DEFECT_COLUMNS`, one row per defect, in file order.
    notes : list of Note
        Shapes that cover no pixel center (not measured).
    """
    if class_index is None:
        class_index = {}
        for s in item.shapes:
            class_index.setdefault(s.label, len(class_index) + 1)
    found, notes = instances(item, class_index, visible_only=visible_only, line_width=line_width)
    names = {v: k for k, v in class_index.items()}
    table = measure_instances(found, item.size_hw, item_key=item.key, class_names=names, image=image,
                              pixel_size_nm=pixel_size_nm)
    return table, notes
