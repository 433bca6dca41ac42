"""Datasets <-> napari layer data, without importing napari (plain numpy, dicts, tuples).

napari puts pixel **centers** at integer data coordinates (pixel ``(r, c)`` spans
``[r - 0.5, r + 0.5]``) and orders them ``(row, col)``: a point ``(x, y)`` here is
``(y - 0.5, x - 0.5)`` there (:data:`NAPARI_OFFSET`). Shapes map to napari shape types:

==========  =========================================================================
polygon     ``polygon``
polyline    ``path``
box         ``rectangle``: its 4 corners (rotated boxes too)
ellipse     ``ellipse``: the 4 corners of its bounding box in its own frame (rotated)
mask        ``polygon``: the traced outline of each piece (exact under the pixel-center
            rule); holes are not kept (a note)
points      a Points layer per label; a feature ``shape`` keeps which points were one shape
==========  =========================================================================

Back from napari: ``rectangle`` → :class:`Box` (rotated when its edges are), ``ellipse`` →
:class:`Ellipse` (radii from its box's edges, rotation from the first edge), ``line`` and
``path`` → :class:`Polyline`, ``polygon`` → :class:`Polygon`. One layer per label: a shape
drawn in a layer has that layer's label.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import DatasetError
from ..model import Box, Dataset, Ellipse, Item, Label, Mask, Note, Points, Polygon, Polyline, Shape, Tag

__all__ = ["NAPARI_OFFSET", "META", "dataset_layers", "layers_dataset", "to_napari", "from_napari"]

#: ours = napari's + 0.5 (napari's integer coordinates are pixel centers).
NAPARI_OFFSET = 0.5
#: The key of a layer's ``metadata`` that holds what defectlab needs to write it back.
META = "defectlab"


def to_napari(points_xy: np.ndarray) -> np.ndarray:
    """(N, 2) ``(x, y)`` here → (N, 2) ``(row, col)`` napari data coordinates."""
    p = np.asarray(points_xy, dtype=np.float64)
    return np.stack([p[:, 1] - NAPARI_OFFSET, p[:, 0] - NAPARI_OFFSET], axis=1)


def from_napari(rows_cols: np.ndarray) -> np.ndarray:
    """(N, 2+) napari ``(…, row, col)`` data coordinates → (N, 2) ``(x, y)`` here."""
    p = np.asarray(rows_cols, dtype=np.float64)[:, -2:]
    return np.stack([p[:, 1] + NAPARI_OFFSET, p[:, 0] + NAPARI_OFFSET], axis=1)


def _ellipse_corners(e: Ellipse) -> np.ndarray:
    box = Box(label=e.label, xyxy=(e.cx - e.rx, e.cy - e.ry, e.cx + e.rx, e.cy + e.ry), rotation_deg=e.rotation_deg)
    return box.corners_xy()


def _rgba(color: str | None, alpha: float = 1.0) -> list[float]:
    if not color:
        return [1.0, 1.0, 0.0, alpha]
    return [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)] + [alpha]


def _label_colors(dataset: Dataset) -> dict[str, str]:
    return {lab.name: "#{:02x}{:02x}{:02x}".format(*lab.rgb(i)) for i, lab in enumerate(dataset.labels)}


def _shape_meta(shape: Shape) -> dict[str, Any]:
    return {"source": shape.source, "group": shape.group, "occluded": shape.occluded, "z_order": shape.z_order,
            "attributes": dict(shape.attributes)}


def dataset_layers(dataset: Dataset, *, image: np.ndarray | None = None, item_index: int = 0,
                   pixel_size_nm: float | None = None) -> tuple[list[tuple[Any, dict, str]], list[Note]]:
    """napari layer data for one item: its image (if given), one Shapes layer per label that
    has area or line shapes, one Points layer per label that has points.

    ``pixel_size_nm`` becomes every layer's ``scale`` (napari then shows nm).
    Returns ``(layers, notes)``; notes say what napari cannot show as drawn.
    """
    from ..raster.contours import mask_to_polygons

    item = dataset[item_index]
    colors = _label_colors(dataset)
    scale = (pixel_size_nm, pixel_size_nm) if pixel_size_nm else (1.0, 1.0)
    base = {"item": item.name, "size_hw": list(item.size_hw), "subset": item.subset, "id": item.id,
            "source": dataset.source, "format": dataset.format, "pixel_size_nm": pixel_size_nm}
    layers: list[tuple[Any, dict, str]] = []
    notes: list[Note] = []
    if image is not None:
        layers.append((image, {"name": Path(item.name).name, "scale": scale, "metadata": {META: dict(base)}}, "image"))
    by_label: dict[str, list[Shape]] = {}
    for s in item.shapes:
        by_label.setdefault(s.label, []).append(s)
    for lab in dataset.labels:
        shapes = by_label.pop(lab.name, [])
        meta = {META: {**base, "label": lab.name, "color": colors[lab.name], "edge": lab.edge, "type": lab.type}}
        data, types, extra = [], [], []
        pts, pts_shape = [], []
        for k, s in enumerate(shapes):
            if isinstance(s, Polygon):
                data.append(to_napari(s.points_xy)); types.append("polygon"); extra.append(_shape_meta(s))
            elif isinstance(s, Polyline):
                data.append(to_napari(s.points_xy)); types.append("path"); extra.append(_shape_meta(s))
            elif isinstance(s, Box):
                data.append(to_napari(s.corners_xy())); types.append("rectangle"); extra.append(_shape_meta(s))
            elif isinstance(s, Ellipse):
                data.append(to_napari(_ellipse_corners(s))); types.append("ellipse"); extra.append(_shape_meta(s))
            elif isinstance(s, Mask):
                rings, holes = mask_to_polygons(s.bitmap, x0=s.left, y0=s.top)
                for ring in rings:
                    data.append(to_napari(ring)); types.append("polygon"); extra.append(_shape_meta(s))
                if holes or len(rings) > 1:
                    notes.append(Note("napari-mask", f"a {lab.name} mask {'with holes' if holes else ''}"
                                      f"{' in pieces' if len(rings) > 1 else ''} shown as {len(rings)} polygon(s)",
                                      item=item.name, where=f"shape {item.shapes.index(s)}"))
            elif isinstance(s, Points):
                pts.append(to_napari(s.points_xy)); pts_shape += [k] * len(s.points_xy)
            elif isinstance(s, Tag):
                notes.append(Note("napari-tag", f"tag {lab.name!r} has no geometry to show", item=item.name))
        if data or lab.type not in ("points", "tag"):
            color = _rgba(colors[lab.name])
            layers.append((data, {"name": lab.name, "shape_type": types, "edge_color": color,
                                  "face_color": _rgba(colors[lab.name], 0.25), "edge_width": 1.0, "scale": scale,
                                  "metadata": {**meta, META: {**meta[META], "shapes": extra}}}, "shapes"))
        if pts:
            layers.append((np.concatenate(pts), {"name": f"{lab.name} points", "face_color": _rgba(colors[lab.name]),
                                                 "size": 5, "scale": scale, "features": {"shape": pts_shape},
                                                 "metadata": meta}, "points"))
    return layers, notes


def _corners_to_box(corners_xy: np.ndarray, label: str, **kw: Any) -> Box:
    c = corners_xy[:4]
    center = c.mean(axis=0)
    w, h = np.linalg.norm(c[1] - c[0]), np.linalg.norm(c[2] - c[1])
    angle = math.degrees(math.atan2(c[1, 1] - c[0, 1], c[1, 0] - c[0, 0]))
    if abs(angle) < 1e-9 or abs(abs(angle) - 180) < 1e-9:
        angle = 0.0
        w, h = abs(c[:, 0].max() - c[:, 0].min()), abs(c[:, 1].max() - c[:, 1].min())
    return Box(label=label, xyxy=(center[0] - w / 2, center[1] - h / 2, center[0] + w / 2, center[1] + h / 2),
               rotation_deg=angle, **kw)


def _shape_from_napari(data: np.ndarray, shape_type: str, label: str, kw: dict[str, Any], where: str) -> Shape:
    xy = from_napari(data)
    if shape_type == "polygon":
        return Polygon(label=label, points_xy=xy, **kw)
    if shape_type in ("path", "line"):
        return Polyline(label=label, points_xy=xy, **kw)
    if shape_type == "rectangle":
        return _corners_to_box(xy, label, **kw)
    if shape_type == "ellipse":
        b = _corners_to_box(xy, label)
        x1, y1, x2, y2 = b.xyxy
        return Ellipse(label=label, cx=(x1 + x2) / 2, cy=(y1 + y2) / 2, rx=(x2 - x1) / 2, ry=(y2 - y1) / 2,
                       rotation_deg=b.rotation_deg, **kw)
    raise DatasetError(f"{where}: napari shape type {shape_type!r} is not known to defectlab")


def layers_dataset(layer_data: Sequence[tuple[Any, dict, str]]) -> Dataset:
    """A Dataset from napari layer data (``(data, attributes, layer_type)``, as napari hands
    writers): one item per image the layers name (their ``metadata["defectlab"]``), labels
    from the layers (their metadata, else their names), in layer order.

    Layers napari made without defectlab (drawn from scratch) belong to an item called
    ``"image"`` whose size encloses every shape.
    """
    items: dict[str, dict[str, Any]] = {}
    labels: dict[str, Label] = {}
    notes: list[Note] = []
    for data, attrs, kind in layer_data:
        if kind not in ("shapes", "points"):
            continue
        meta = dict((attrs.get("metadata") or {}).get(META) or {})
        name = attrs.get("name") or "shapes"
        label = meta.get("label") or (name[:-len(" points")] if kind == "points" and name.endswith(" points") else name)
        if label not in labels:
            color = meta.get("color")
            labels[label] = Label(label, color=color if isinstance(color, str) else None,
                                  edge=meta.get("edge") if meta.get("edge") in ("inner", "outer") else None,
                                  type=str(meta.get("type") or "any"))
        key = meta.get("item") or "image"
        entry = items.setdefault(key, {"size_hw": meta.get("size_hw"), "subset": meta.get("subset"),
                                       "id": meta.get("id"), "shapes": []})
        where = f"napari layer {name!r}"
        if kind == "shapes":
            types = attrs.get("shape_type") or ["polygon"] * len(data)
            if isinstance(types, str):
                types = [types] * len(data)
            extra = meta.get("shapes") or []
            for k, (d, t) in enumerate(zip(data, types)):
                kw = {}
                if k < len(extra) and isinstance(extra[k], dict):
                    e = extra[k]
                    kw = {"source": e.get("source", "manual"), "group": e.get("group"),
                          "occluded": bool(e.get("occluded", False)), "z_order": int(e.get("z_order") or 0),
                          "attributes": dict(e.get("attributes") or {})}
                entry["shapes"].append(_shape_from_napari(np.asarray(d), t, label, kw, f"{where} shape {k}"))
        else:
            pts = np.asarray(data, dtype=np.float64).reshape(-1, np.asarray(data).shape[-1] if len(data) else 2)
            feats = attrs.get("features")  # a DataFrame from napari, a dict from a caller
            groups = list(feats["shape"]) if feats is not None and "shape" in feats else []
            if len(groups) != len(pts):
                groups = [0] * len(pts)
            for g in dict.fromkeys(groups):
                sel = np.asarray([x == g for x in groups])
                entry["shapes"].append(Points(label=label, points_xy=from_napari(pts[sel])))
    out = []
    for key, e in items.items():
        size = e["size_hw"]
        if not size:
            xs = [s.bbox_xyxy()[2] for s in e["shapes"]] or [1.0]
            ys = [s.bbox_xyxy()[3] for s in e["shapes"]] or [1.0]
            size = (int(math.ceil(max(ys))), int(math.ceil(max(xs))))
            notes.append(Note("napari-size", f"layers without a defectlab image: the image size {size[1]}x{size[0]} "
                              "(WxH) is taken from the shapes' extent", item=key))
        out.append(Item(key, tuple(size), tuple(e["shapes"]), subset=e["subset"], id=e["id"]))
    return Dataset(tuple(labels.values()), tuple(out), tuple(notes), source="napari", format="napari")


def _iter_layers(layers: Iterable[Any]) -> list[tuple[Any, dict, str]]:
    """Layer data of live napari layers (``layer.as_layer_data_tuple()``)."""
    return [layer.as_layer_data_tuple() for layer in layers]
