"""ImageJ / Fiji ROIs (``.roi`` files and ``RoiSet.zip`` ROI Manager sets), read and written
with Christoph Gohlke's ``roifile``.

An ImageJ ROI set belongs to one image: Fiji's ROI Manager saves every selection drawn on
it as one ``.roi`` member of a zip (``More » Save…``), and opens such a zip, or a single
``.roi`` file, over the image again.

Coordinates (ImageJ's two conventions, from ``ij/gui/Roi.java``)
-----------------------------------------------------------------
area ROIs       rectangle, oval, polygon, freehand, traced, ellipse, rotated rectangle,
                composite: coordinates are **pixel corners** — ``(0, 0)`` is the top-left
                corner of the top-left pixel, the convention of this library, so they are
                kept as they are. A rectangle ``x, y, w, h`` covers pixels ``x … x+w-1``; an
                oval is the ellipse inscribed in its bounds, and a pixel belongs to it when
                its center does (``OvalRoi.getMask``), which is our pixel-center rule.
line and point  point, polyline, freeline, straight line, angle: coordinates are **pixel
ROIs            centers** — an integer point ``(5, 7)`` is the center of pixel (5, 7), i.e.
                ``(5.5, 7.5)`` here (``useLineSubpixelConvention``; ImageJ draws them ½ px
                down-right). So 0.5 is added on read and taken off on write, for integer
                and sub-pixel coordinates alike.
integer vs      ROIs drawn in Fiji have integer coordinates (16-bit, relative to the
sub-pixel       bounds); with ``SUB_PIXEL_RESOLUTION`` (ROI version ≥ 222; rectangles and
                ovals ≥ 223) float32 coordinates follow and win. We always write sub-pixel
                coordinates (float32: 0.004 px at 60 000 px, so a round trip is within
                0.01 px), with the integer ones ImageJ also needs.
rotated         ``EllipseRoi`` (freehand, subtype 3): the major axis's end points ``x1, y1,
                x2, y2`` and the aspect ratio minor/major (a float at byte 52, which roifile
                splits into three small fields: it is reassembled here). ``RotatedRectRoi``
                (freehand, subtype 5): the center line ``x1, y1 → x2, y2`` (the midpoints of
                two opposite sides) and the rectangle's width across it, at byte 52.

Mapping: rectangle → :class:`Box`; oval, ellipse → :class:`Ellipse`; rotated rectangle →
rotated :class:`Box`; polygon, freehand, traced → :class:`Polygon`; polyline, freeline,
line, angle → :class:`Polyline`; point (multi-point) → :class:`Points`; composite →
one :class:`Polygon` per closed ring (a ``composite-split`` note; holes are not kept).
Written: masks as the traced polygon of each piece (exact under the pixel-center rule;
a ``mask-holes-lost`` note when a mask encloses holes), tags not at all (``skipped-shape``).

Labels: a written ROI carries its label three ways — its name (``cavity-0003``), its
``group`` (the label's class index, so the ROI Manager can sort and color by group) and
the property ``label: cavity`` — with the label's color as stroke color. On read, a ROI's
label is, in order: its ``label`` property; its group, by ``groups=`` or by what the other
ROIs of the set with that group say, else ``"group N"``; its name without a trailing
number (``"cavity-3"``, ``"cavity 12"`` → ``"cavity"``); ``default_label`` for ROIs with
ImageJ's automatic names (``"0123-0456"``, a ``imagej-unnamed`` note). Labels take the
first stroke color seen.

Layout written by :func:`write_imagej_roi` (and read back exactly by :func:`read_imagej_roi`)::

    OUT/<image stem>.zip      one ROI set per image (subsets in subfolders)
    OUT/<image name>          the image beside it (``copy_images``), as Fiji opens them
    OUT/classes.json          label order, colors, edges
    OUT/index.json            {"items": [{"name", "size_hw", "subset", "rois"}]}

A Fiji user opens ``a.png``, then ``a.zip`` in the ROI Manager, corrects, and saves the
set again under the same name; read the folder back with ``defectlab.read(OUT)``.

Examples
--------
>>> import tempfile, pathlib, roifile
>>> from defectlab.model import Dataset, Item, Label, Ellipse, Points
>>> ds = Dataset((Label("cavity", color="#ff0000"),), (Item("a.png", (64, 64), (
...     Ellipse(label="cavity", cx=20.5, cy=30, rx=6, ry=4, rotation_deg=30),
...     Points(label="cavity", points_xy=[(3.5, 4.5)]))),))
>>> out = pathlib.Path(tempfile.mkdtemp()) / "rois"
>>> write_imagej_roi(ds, out, copy_images=False).n_instances
2
>>> [(r.roitype.name, r.subtype.name, r.name) for r in roifile.roiread(out / "a.zip")]
[('FREEHAND', 'ELLIPSE', 'cavity-0001'), ('POINT', 'UNDEFINED', 'cavity-0002')]
>>> back = read_imagej_roi(out)
>>> e, p = back[0].shapes
>>> round(e.cx, 4), round(e.rx, 4), round(e.rotation_deg, 4), p.points_xy.tolist()
(20.5, 6.0, 30.0, [[3.5, 4.5]])
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import DatasetError, ImageError, ParseError
from ..imaging.io import image_size_hw
from ..model import (
    Box, Dataset, Ellipse, ImageSource, Item, Label, Mask, Note, Points, Polygon, Polyline, Shape, Tag,
)
from ._archive import SafeZip, is_zip
from ._images import is_dir, is_file
from ._text import read_file
from ._training import WriteReport, check_items, copy_image, input_paths, read_classes, write_classes

__all__ = ["read_imagej_roi", "write_imagej_roi", "sniff_imagej_roi", "roi_to_shape", "shape_to_rois",
           "LINE_OFFSET"]

#: ImageJ's line and point ROIs put integer coordinates at pixel centers: ours = ImageJ's + 0.5.
LINE_OFFSET = 0.5
INDEX_FILE = "index.json"
CLASSES_FILE = "classes.json"
_IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".dm3", ".dm4")
_AUTO_NAME = re.compile(r"^\d{4,}(-\d{4,}){1,3}$")  # ImageJ's automatic names: yyyy-xxxx, [c-z-t-]yyyy-xxxx
_TRAILING_NUMBER = re.compile(r"^(.*?[^\d\s_\-#.])[\s_\-#.]*(?:\(\d+\)|\d+)$")
_UNSAFE_MEMBER = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
_SET_SUFFIX = re.compile(r"[\s_\-]*roi[\s_\-]*set$|^roi[\s_\-]*set[\s_\-]*", re.IGNORECASE)
#: ROI property keys written and read (ImageJ ``Roi.setProperty``; "key: value" lines).
PROP_LABEL, PROP_SOURCE, PROP_GROUP, PROP_OCCLUDED, PROP_Z = "label", "source", "group_id", "occluded", "z_order"
PROP_ATTRIBUTE = "attribute."


def _roifile():
    try:
        import roifile
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("ImageJ ROIs need roifile: pip install roifile (it comes with defectlab)") from err
    return roifile


# ---------------------------------------------------------------------------------------------
# One ROI <-> one shape


def _param_float(roi: Any) -> float:
    """The float ImageJ stores at byte 52 (ellipse aspect ratio, rotated-rectangle width),
    which roifile reads as three fields (``B``, ``B``, ``h``) of the big-endian header."""
    raw = struct.pack(">BBh", roi.arrow_style_or_aspect_ratio & 0xFF, roi.arrow_head_size & 0xFF,
                      roi.rounded_rect_arc_size)
    return float(struct.unpack(">f", raw)[0])


def _set_param_float(roi: Any, value: float) -> None:
    a, b, c = struct.unpack(">BBh", struct.pack(">f", value))
    roi.arrow_style_or_aspect_ratio, roi.arrow_head_size, roi.rounded_rect_arc_size = a, b, c


def _xy(roi: Any) -> np.ndarray:
    """(N, 2) float64 vertices as ImageJ stores them (sub-pixel when present)."""
    if roi.subpixel_coordinates is not None:
        return np.asarray(roi.subpixel_coordinates, dtype=np.float64)
    if roi.integer_coordinates is not None:
        return np.asarray(roi.integer_coordinates, dtype=np.float64) + [roi.left, roi.top]
    return np.zeros((0, 2))


def _props(roi: Any) -> dict[str, str]:
    out = {}
    for line in (roi.props or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def roi_to_shape(roi: Any, label: str, *, fields: Mapping[str, Any] | None = None) -> tuple[list[Shape], list[str]]:
    """The shapes an ImageJ ROI (a ``roifile.ImagejRoi``) describes, in our coordinates.

    Returns ``(shapes, problems)``: usually one shape; several for a composite ROI; none for
    what has no geometry here (text, image overlays), with the reason in ``problems``.
    ``fields`` are more :class:`~defectlab.model.Shape` fields (``source``, ``group``, …).

    Examples
    --------
    >>> import roifile
    >>> roi = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.OVAL, left=10, top=20, right=16, bottom=24)
    >>> e = roi_to_shape(roi, "cavity")[0][0]
    >>> (e.cx, e.cy, e.rx, e.ry)
    (13.0, 22.0, 3.0, 2.0)
    """
    rf = _roifile()
    T, S = rf.ROI_TYPE, rf.ROI_SUBTYPE
    kw: dict[str, Any] = {"label": label, **(fields or {})}
    problems: list[str] = []
    kind, sub = roi.roitype, roi.subtype
    if sub in (S.TEXT, S.IMAGE) or kind == T.NOROI:
        return [], [f"a {sub.name.lower() if sub in (S.TEXT, S.IMAGE) else 'no-ROI'} overlay has no geometry"]
    if roi.composite:
        rings = [r.astype(np.float64) for r in roi.coordinates(multi=True)]
        rings = [r[:-1] if len(r) > 1 and np.array_equal(r[0], r[-1]) else r for r in rings]
        rings = [r for r in rings if len(r) >= 3]
        if len(rings) > 1:
            problems.append(f"a composite ROI of {len(rings)} rings: read as {len(rings)} polygons "
                            "(holes and unions are not kept)")
        return [Polygon(points_xy=r, **kw) for r in rings], problems
    if kind == T.RECT:
        if roi.rounded_rect_arc_size:
            problems.append(f"a rounded rectangle (corner diameter {roi.rounded_rect_arc_size} px): read as its "
                            "plain rectangle")
        if roi.subpixelrect:
            x, y, w, h = roi.xd, roi.yd, roi.widthd, roi.heightd
            return [Box(xyxy=(x, y, x + w, y + h), **kw)], problems
        return [Box(xyxy=(roi.left, roi.top, roi.right, roi.bottom), **kw)], problems
    if kind == T.OVAL:
        if roi.subpixelrect:
            x, y, w, h = roi.xd, roi.yd, roi.widthd, roi.heightd
        else:
            x, y, w, h = roi.left, roi.top, roi.right - roi.left, roi.bottom - roi.top
        return [Ellipse(cx=x + w / 2, cy=y + h / 2, rx=w / 2, ry=h / 2, **kw)], problems
    if kind == T.FREEHAND and sub == S.ELLIPSE:
        x1, y1, x2, y2 = (float(v) for v in (roi.x1, roi.y1, roi.x2, roi.y2))
        major = math.hypot(x2 - x1, y2 - y1) / 2
        aspect = _param_float(roi)
        if not (math.isfinite(aspect) and 0 < aspect <= 1):
            raise ValueError(f"expected an ellipse aspect ratio in (0, 1], got {aspect!r}")
        return [Ellipse(cx=(x1 + x2) / 2, cy=(y1 + y2) / 2, rx=major, ry=major * aspect,
                        rotation_deg=math.degrees(math.atan2(y2 - y1, x2 - x1)), **kw)], problems
    if kind == T.FREEHAND and sub == S.ROTATED_RECT:
        x1, y1, x2, y2 = (float(v) for v in (roi.x1, roi.y1, roi.x2, roi.y2))
        length, width = math.hypot(x2 - x1, y2 - y1), _param_float(roi)
        if not (math.isfinite(width) and width >= 0):
            raise ValueError(f"expected a rotated-rectangle width >= 0, got {width!r}")
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        return [Box(xyxy=(cx - length / 2, cy - width / 2, cx + length / 2, cy + width / 2),
                    rotation_deg=math.degrees(math.atan2(y2 - y1, x2 - x1)), **kw)], problems
    if roi.options & rf.ROI_OPTIONS.SPLINE_FIT:
        problems.append("a spline-fitted ROI: read as the polygon of its control points")
    if kind in (T.POLYGON, T.FREEHAND, T.TRACED):
        return [Polygon(points_xy=_xy(roi), **kw)], problems
    if kind == T.LINE:
        pts = np.array([[roi.x1, roi.y1], [roi.x2, roi.y2]], dtype=np.float64) + LINE_OFFSET
        if sub == S.ARROW:
            problems.append("an arrow: read as a straight line")
        return [Polyline(points_xy=pts, **kw)], problems
    if kind in (T.POLYLINE, T.FREELINE, T.ANGLE):
        return [Polyline(points_xy=_xy(roi) + LINE_OFFSET, **kw)], problems
    if kind == T.POINT:
        pts = _xy(roi) + LINE_OFFSET
        if roi.counters is not None and len(set(np.asarray(roi.counters).tolist())) > 1:
            problems.append("a multi-point ROI with several counters: read as one set of points")
        return [Points(points_xy=pts, **kw)], problems
    return [], [f"an ImageJ ROI of type {int(kind)} is not known"]


def _argb(color: str | None) -> bytes:
    if not color:
        return b"\x00\x00\x00\x00"
    return bytes([255, int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)])


def _set_bounds(roi: Any, xy: np.ndarray, *, line: bool = False) -> None:
    """Integer bounds and coordinates of ``xy`` (ImageJ's own coordinates), as ImageJ sets them:
    area ROIs enclose the sub-pixel bounds, line/point ROIs the pixels their centers are in."""
    if line:
        lo = np.floor(xy.min(axis=0) + 0.5)
        hi = np.floor(xy.max(axis=0) + 1.5)
    else:
        lo, hi = np.floor(xy.min(axis=0)), np.ceil(xy.max(axis=0))
        hi = np.maximum(hi, lo + 1)
    roi.left, roi.top = int(lo[0]), int(lo[1])
    roi.right, roi.bottom = int(hi[0]), int(hi[1])


def _coordinates(roi: Any, xy: np.ndarray, *, line: bool = False) -> None:
    rf = _roifile()
    xy = np.asarray(xy, dtype=np.float64)
    _set_bounds(roi, xy, line=line)
    roi.n_coordinates = len(xy)
    roi.options |= rf.ROI_OPTIONS.SUB_PIXEL_RESOLUTION
    roi.subpixel_coordinates = xy.astype(np.float32)
    ints = np.clip(np.floor(xy + (0.5 if line else 0.0)) - [roi.left, roi.top], -32768, 32767)
    roi.integer_coordinates = ints.astype(np.int32)


def _check_range(xy: np.ndarray, where: str) -> None:
    if xy.size and (xy.min() < -5000 or xy.max() > 60535):
        raise DatasetError(f"{where}: ImageJ ROIs hold coordinates from -5000 to 60535 px, got "
                           f"{xy.min():g} … {xy.max():g}")


def shape_to_rois(shape: Shape, name: str, *, color: str | None = None, group: int = 0,
                  props: Mapping[str, str] | None = None, where: str = "shape") -> tuple[list[Any], list[str]]:
    """ImageJ ROIs (``roifile.ImagejRoi``) for one shape, and what could not be kept.

    Usually one ROI; a mask in several pieces gives one traced polygon per piece; a tag none.

    Examples
    --------
    >>> from defectlab.model import Box
    >>> rois, _ = shape_to_rois(Box(label="loop", xyxy=(2, 3, 10, 7)), "loop-0001")
    >>> r = rois[0]
    >>> r.roitype.name, (r.left, r.top, r.right, r.bottom), (r.xd, r.yd, r.widthd, r.heightd)
    ('RECT', (2, 3, 10, 7), (2.0, 3.0, 8.0, 4.0))
    """
    rf = _roifile()
    T, S, O = rf.ROI_TYPE, rf.ROI_SUBTYPE, rf.ROI_OPTIONS
    problems: list[str] = []

    def new(kind: Any, sub: Any = S.UNDEFINED) -> Any:
        roi = rf.ImagejRoi(roitype=kind, subtype=sub, name=name, group=int(group), stroke_color=_argb(color))
        roi.options = O.NONE
        if props:
            roi.props = "".join(f"{k}: {v}\n" for k, v in props.items())
        return roi

    def rect_params(roi: Any, x: float, y: float, w: float, h: float) -> None:
        _check_range(np.array([[x, y], [x + w, y + h]]), where)
        _set_bounds(roi, np.array([[x, y], [x + w, y + h]]))
        roi.options |= O.SUB_PIXEL_RESOLUTION
        roi.xd, roi.yd, roi.widthd, roi.heightd = float(x), float(y), float(w), float(h)

    if isinstance(shape, Box) and not shape.rotation_deg % 360:
        x1, y1, x2, y2 = shape.xyxy
        roi = new(T.RECT)
        rect_params(roi, x1, y1, x2 - x1, y2 - y1)
        return [roi], problems
    if isinstance(shape, Ellipse) and (shape.rx == shape.ry or not shape.rotation_deg % 180):
        roi = new(T.OVAL)
        rect_params(roi, shape.cx - shape.rx, shape.cy - shape.ry, 2 * shape.rx, 2 * shape.ry)
        return [roi], problems
    if isinstance(shape, Ellipse):
        from ..raster.contours import ellipse_polygon

        t = math.radians(shape.rotation_deg)
        if shape.rx >= shape.ry:
            major, minor, ux, uy = shape.rx, shape.ry, math.cos(t), math.sin(t)
        else:
            major, minor, ux, uy = shape.ry, shape.rx, -math.sin(t), math.cos(t)
        if major == 0:
            return [], ["an ellipse of radius 0 has no ImageJ form; not written"]
        roi = new(T.FREEHAND, S.ELLIPSE)
        roi.x1, roi.y1 = shape.cx - major * ux, shape.cy - major * uy
        roi.x2, roi.y2 = shape.cx + major * ux, shape.cy + major * uy
        _set_param_float(roi, minor / major)
        outline = ellipse_polygon(shape, tolerance=0.05)
        _check_range(outline, where)
        _coordinates(roi, outline)
        return [roi], problems
    if isinstance(shape, Box):
        x1, y1, x2, y2 = shape.xyxy
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
        t = math.radians(shape.rotation_deg)
        roi = new(T.FREEHAND, S.ROTATED_RECT)
        roi.x1, roi.y1 = cx - half * math.cos(t), cy - half * math.sin(t)
        roi.x2, roi.y2 = cx + half * math.cos(t), cy + half * math.sin(t)
        _set_param_float(roi, y2 - y1)
        corners = shape.corners_xy()
        _check_range(corners, where)
        _coordinates(roi, corners)
        return [roi], problems
    if isinstance(shape, Polygon):
        _check_range(shape.points_xy, where)
        roi = new(T.POLYGON)
        _coordinates(roi, shape.points_xy)
        return [roi], problems
    if isinstance(shape, (Polyline, Points)):
        _check_range(shape.points_xy, where)
        roi = new(T.POLYLINE if isinstance(shape, Polyline) else T.POINT)
        _coordinates(roi, shape.points_xy - LINE_OFFSET, line=True)
        if isinstance(shape, Points) and shape.names:
            problems.append(f"point names {list(shape.names)[:3]}… have no place in an ImageJ point ROI")
        return [roi], problems
    if isinstance(shape, Mask):
        from ..raster.contours import mask_to_polygons

        rings, holes = mask_to_polygons(shape.bitmap, x0=shape.left, y0=shape.top)
        if holes:
            problems.append("a mask that encloses holes: written as its outer outline (the holes are lost)")
        rois = []
        for k, ring in enumerate(rings):
            roi = new(T.TRACED)
            if len(rings) > 1:
                roi.name = f"{name}-{k + 1}"
            _check_range(ring, where)
            _coordinates(roi, ring)
            rois.append(roi)
        if len(rings) > 1:
            problems.append(f"a mask in {len(rings)} pieces: written as {len(rings)} traced polygons")
        return rois, problems
    return [], [f"a {shape.kind} has no ImageJ ROI form; not written"]


# ---------------------------------------------------------------------------------------------
# Reading


def _set_stem(path: Path) -> str:
    """The image stem a ROI set file names: ``a.zip``, ``a_RoiSet.zip``, ``RoiSet_a.zip`` → ``a``."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    stripped = _SET_SUFFIX.sub("", stem)
    return stripped or stem


def _decode_set(path: Path, display: str) -> list[tuple[str, Any]]:
    """``(where, roi)`` for every ROI of a ``.roi`` file or a ROI-set zip."""
    rf = _roifile()

    def decode(data: bytes, where: str) -> Any:
        try:
            return rf.ImagejRoi.frombytes(data)
        except (ValueError, struct.error, IndexError, TypeError) as err:
            raise ParseError(where, f"not a readable ImageJ ROI ({err})") from err

    if path.suffix.lower() == ".roi":
        return [(display, decode(read_file(path, display), display))]
    out = []
    with SafeZip(path, display) as zf:
        for member in zf.names():
            if not member.lower().endswith(".roi"):
                continue  # ImageJ's ROI Manager reads only the .roi members too
            out.append((f"{display}!{member}", decode(zf.read(member), f"{display}!{member}")))
    return out


def _is_roi_set(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".roi":
        try:
            with open(path, "rb") as fh:
                return fh.read(4) == b"Iout"
        except OSError:
            return False
    if suffix != ".zip" or not is_zip(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if not names:
                return True  # an empty ROI set (what the ROI Manager saves with no ROI)
            if not all(n.lower().endswith(".roi") for n in names):
                return False
            with zf.open(names[0]) as fh:
                return fh.read(4) == b"Iout"
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError):
        return False


class _Reader:
    def __init__(self, *, groups: Mapping[int, str] | None, default_label: str) -> None:
        self.groups = dict(groups or {})
        self.default_label = default_label
        self.notes: list[Note] = []
        self.labels: dict[str, str | None] = {}  # name -> first stroke color
        self.group_of: dict[int, str] = {}

    def learn_groups(self, rois: Iterable[Any]) -> None:
        """Group number -> label, from ROIs that carry a ``label`` property (ours)."""
        for roi in rois:
            label = _props(roi).get(PROP_LABEL)
            if label and roi.group and roi.group not in self.group_of:
                self.group_of[roi.group] = label

    def label_of(self, roi: Any, item: str, where: str) -> str:
        label = _props(roi).get(PROP_LABEL)
        if label:
            return label
        if roi.group:
            return self.groups.get(roi.group) or self.group_of.get(roi.group) or f"group {roi.group}"
        name = (roi.name or "").strip()
        if not name or _AUTO_NAME.match(name):
            self.notes.append(Note("imagej-unnamed", f"a ROI without a label, group or name of its own "
                                   f"({name or 'no name'!r}): labeled {self.default_label!r}", item=item, where=where))
            return self.default_label
        m = _TRAILING_NUMBER.match(name)
        return m.group(1) if m else name

    def fields(self, roi: Any) -> dict[str, Any]:
        props = _props(roi)
        out: dict[str, Any] = {}
        if props.get(PROP_SOURCE):
            out["source"] = props[PROP_SOURCE]
        if props.get(PROP_GROUP, "").lstrip("-").isdigit():
            out["group"] = int(props[PROP_GROUP])
        if props.get(PROP_OCCLUDED) in ("true", "1"):
            out["occluded"] = True
        if props.get(PROP_Z, "").lstrip("-").isdigit():
            out["z_order"] = int(props[PROP_Z])
        attrs = {k[len(PROP_ATTRIBUTE):]: v for k, v in props.items() if k.startswith(PROP_ATTRIBUTE)}
        if attrs:
            out["attributes"] = attrs
        return out

    def shapes(self, rois: list[tuple[str, Any]], item: str) -> list[Shape]:
        shapes: list[Shape] = []
        for where, roi in rois:
            label = self.label_of(roi, item, where)
            color = roi.hexcolor(roi.stroke_color)
            self.labels.setdefault(label, color)
            if self.labels[label] is None and color:
                self.labels[label] = color
            try:
                got, problems = roi_to_shape(roi, label, fields=self.fields(roi))
            except ValueError as err:
                raise ParseError(where, f"{roi.roitype.name.lower()} ROI {roi.name!r}: {err}") from err
            for p in problems:
                code = "composite-split" if p.startswith("a composite") else "imagej-roi"
                self.notes.append(Note(code, f"ROI {roi.name!r}: {p}", item=item, where=where))
            if roi.position > 1 or roi.c_position > 1 or roi.z_position > 1 or roi.t_position > 1:
                self.notes.append(Note("imagej-stack-position", f"ROI {roi.name!r} is placed on slice/channel/"
                                       "frame > 1 of a stack; read onto the 2-D image", item=item, where=where))
            shapes.extend(got)
        return shapes


def _find_image(folder: Path, stem: str, images: Path | None) -> Path | None:
    for base in ([images] if images is not None else []) + [folder, folder / "images"]:
        for suffix in _IMAGE_SUFFIXES:
            for cand in (base / f"{stem}{suffix}", base / f"{stem}{suffix.upper()}"):
                if is_file(cand):
                    return cand
    return None


def _size_of(image: Path, where: str) -> tuple[int, int]:
    from ..imaging.micrograph import MICROSCOPE_SUFFIXES

    try:
        if image.suffix.lower() in MICROSCOPE_SUFFIXES:
            from ..imaging.micrograph import read_micrograph

            return read_micrograph(image).size_hw
        return image_size_hw(ImageSource(image))
    except ImageError as err:
        raise ImageError(f"{where}: the image of this ROI set: {err}") from err


def read_imagej_roi(
    path: str | Path,
    *,
    images: str | Path | None = None,
    image: str | Path | None = None,
    size_hw: tuple[int, int] | None = None,
    groups: Mapping[int, str] | None = None,
    default_label: str = "defect",
) -> Dataset:
    """Read ImageJ/Fiji ROIs: a ``.roi`` file, a ROI Manager zip, or a folder of them.

    Parameters
    ----------
    path : str or Path
        A ``.roi`` file or ``RoiSet.zip`` (one image), or a folder of ROI sets, one per image,
        each named after its image (``a.zip`` or ``a.roi`` for ``a.tif``; ``a_RoiSet.zip`` and
        ``RoiSet_a.zip`` too), subfolders included (as :func:`write_imagej_roi` writes them).
    images : str or Path, optional
        Folder holding the images, if not beside the ROI sets (or in ``images/``).
    image : str or Path, optional
        The image of a single ROI set (a file ``path``), when its name does not say it; a ROI
        set beside exactly one image belongs to that one.
    size_hw : (int, int), optional
        The image size, for a single ROI set without an image file at hand.
    groups : mapping, optional
        ImageJ group number -> label, for sets labeled by group in Fiji.
    default_label : str
        The label of ROIs with no label property, group or name of their own.

    Returns
    -------
    Dataset
        One item per ROI set, named after its image; shapes in ROI order. ``format="imagej-roi"``.

    Raises
    ------
    ParseError
        Not an ImageJ ROI, an unreadable or unsafe zip, a malformed ellipse/rotated rectangle,
        or no image size for a ROI set (the message says how to give one).
    """
    path = Path(path)
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not is_dir(images_dir):
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    if not path.exists():
        raise ParseError(path, "no such file or folder")
    reader = _Reader(groups=groups, default_label=default_label)
    drafts: list[tuple[str, str | None, tuple[int, int] | None, Path | None, list[tuple[str, Any]], str]] = []
    label_order: list[dict] = []
    if path.is_dir():
        index = _read_index(path)
        classes = path / CLASSES_FILE
        if is_file(classes):
            try:
                label_order = [v for _, v in sorted(read_classes(classes).items()) if _]
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise ParseError(classes, f"not a defectlab classes.json ({err})") from err
        sets = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".zip", ".roi")
                      and _is_roi_set(p))
        if not sets:
            raise ParseError(path, "no ImageJ ROI sets (.roi files, or zips of them) in this folder")
        for file in sets:
            rel = file.relative_to(path).as_posix()
            entry = index.get(rel)
            rois = _decode_set(file, str(file))
            if entry is not None:
                name, subset, size = entry["name"], entry.get("subset"), tuple(entry["size_hw"])
                stem = PurePosixPath(name).stem
                parent = file.parent
                img = _find_image(parent, stem, images_dir)
            else:
                subset = None
                stem = _set_stem(file)
                img = _find_image(file.parent, stem, images_dir)
                name = (img.relative_to(path).as_posix() if img is not None and img.is_relative_to(path)
                        else (PurePosixPath(rel).parent / (img.name if img else stem)).as_posix())
                size = None
            drafts.append((name, subset, size, img, rois, str(file)))
    else:
        if not _is_roi_set(path):
            raise ParseError(path, "not an ImageJ ROI file (.roi starting with 'Iout') nor a zip of .roi files")
        rois = _decode_set(path, str(path))
        img = Path(image) if image is not None else _find_image(path.parent, _set_stem(path), images_dir)
        if img is None and image is None and size_hw is None:
            beside = sorted(p for p in (images_dir or path.parent).iterdir()
                            if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
            if len(beside) == 1:
                img = beside[0]
                reader.notes.append(Note("imagej-image", f"the ROI set names no image; the one image beside it, "
                                         f"{img.name}, is taken as its image", where=str(path)))
        if img is not None and not is_file(img):
            raise ImageError(f"{img}: no such image file (given as image=)")
        name = img.name if img is not None else f"{_set_stem(path)}.tif"
        drafts.append((name, None, tuple(size_hw) if size_hw else None, img, rois, str(path)))
    for _, _, _, _, rois, _ in drafts:
        reader.learn_groups(roi for _, roi in rois)
    items = []
    for name, subset, size, img, rois, display in drafts:
        if size is None:
            if img is None:
                raise ParseError(display, "cannot tell the image size of this ROI set: no image named after it "
                                 f"beside it; pass images=FOLDER, image=FILE or size_hw=(H, W) (--images)")
            size = _size_of(img, display)
        shapes = reader.shapes(rois, name)
        if img is None:
            reader.notes.append(Note("missing-image", "image file not found; the item keeps its declared size",
                                     item=name))
        items.append(Item(name, size, tuple(shapes), ImageSource(img) if img is not None else None, subset))
    labels = _labels(reader.labels, label_order)
    return Dataset(labels, tuple(items), tuple(reader.notes), source=str(path), format="imagej-roi")


def _labels(seen: Mapping[str, str | None], order: list[dict]) -> tuple[Label, ...]:
    out: dict[str, Label] = {}
    for c in order:
        name = c.get("name")
        if isinstance(name, str) and name and name not in out:
            color = c.get("color") if isinstance(c.get("color"), str) and re.match(r"^#[0-9a-fA-F]{6}$", c["color"]) else None
            edge = c.get("edge") if c.get("edge") in ("inner", "outer") else None
            out[name] = Label(name, color=color, edge=edge, type=str(c.get("type") or "any"))
    for name, color in seen.items():
        if name not in out:
            out[name] = Label(name, color=color)
    return tuple(out.values())


def _read_index(folder: Path) -> dict[str, dict]:
    path = folder / INDEX_FILE
    if not is_file(path):
        return {}
    try:
        doc = json.loads(read_file(path).decode("utf-8"))
        entries = doc["items"]
        out = {}
        for i, e in enumerate(entries):
            h, w = (int(v) for v in e["size_hw"])
            if not isinstance(e["name"], str) or not isinstance(e["rois"], str) or h <= 0 or w <= 0:
                raise ValueError(f"item {i}")
            out[e["rois"]] = e
        return out
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ParseError(path, f"not a defectlab ROI-set index ({type(err).__name__}: {err})",
                         where="/items") from err


def sniff_imagej_roi(path: str | Path) -> bool:
    """True for a ``.roi`` file, a zip of ``.roi`` files, or a folder holding such ROI sets
    (at its top level, or an ``index.json`` that :func:`write_imagej_roi` wrote)."""
    path = Path(path)
    try:
        if path.is_dir():
            if is_file(path / INDEX_FILE) and is_file(path / CLASSES_FILE):
                return True
            return any(p.is_file() and p.suffix.lower() in (".roi", ".zip") and _is_roi_set(p)
                       for p in path.iterdir())
        return path.is_file() and _is_roi_set(path)
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Writing


def write_imagej_roi(
    dataset: Dataset,
    out: str | Path,
    *,
    overwrite: bool = False,
    copy_images: bool = True,
) -> WriteReport:
    """Write one ImageJ ROI set (a ROI Manager zip) per image, for Fiji.

    Layout and label conventions: see the module docstring.

    Parameters
    ----------
    dataset : Dataset
    out : str or Path
        The output folder, written atomically.
    overwrite : bool
        Replace an existing output folder.
    copy_images : bool
        Copy each image beside its ROI set (then every item needs its image file).

    Returns
    -------
    WriteReport
        ``n_instances``: ROIs written; ``notes``: shapes not written or changed (tags,
        masks with holes or in pieces, point names).

    Raises
    ------
    DatasetError
        A shape's label is not among the dataset's labels, two items would share a ROI set,
        or a coordinate is outside ImageJ's range (-5000 … 60535 px).
    ImageError
        ``copy_images`` and an image file is missing.
    OutputError
        ``out`` exists (without ``overwrite``) or would hold or replace an input.
    """
    from .._output import output_dir

    check_items(dataset, need_images=copy_images, same_size=False)
    index_of = dataset.class_index()
    colors = {lab.name: "#{:02x}{:02x}{:02x}".format(*lab.rgb(i)) for i, lab in enumerate(dataset.labels)}
    report = WriteReport(Path(out), n_items=len(dataset.items), notes=list(dataset.notes))
    entries = []
    with output_dir(out, overwrite=overwrite, inputs=input_paths(dataset)) as tmp:
        write_classes(dataset, tmp / CLASSES_FILE)
        for item in dataset.items:
            rel = f"{item.key}.zip"
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if copy_images:
                copy_image(item, tmp)
            counter = 0
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for k, shape in enumerate(item.shapes):
                    where = f"shape {k}"
                    if shape.label not in index_of:
                        raise DatasetError(f"item {item.name!r}: the shape label {shape.label!r} is not among "
                                           f"the dataset's labels {list(index_of)}")
                    if isinstance(shape, Tag):
                        report.notes.append(Note("skipped-shape", f"an image-level tag ({shape.label!r}) has no "
                                                 "ImageJ ROI form; not written", item=item.name, where=where))
                        continue
                    counter += 1
                    props = {PROP_LABEL: shape.label, PROP_SOURCE: shape.source}
                    if shape.group is not None:
                        props[PROP_GROUP] = str(shape.group)
                    if shape.occluded:
                        props[PROP_OCCLUDED] = "true"
                    if shape.z_order:
                        props[PROP_Z] = str(shape.z_order)
                    for a, v in shape.attributes.items():
                        props[f"{PROP_ATTRIBUTE}{a}"] = v
                    bad = [f"{k}: {v}" for k, v in props.items() if "\n" in k or "\n" in v or "\r" in v or ":" in k]
                    if bad:
                        raise DatasetError(f"item {item.name!r} {where}: an ImageJ ROI property cannot hold "
                                           f"line breaks or a ':' in its name, got {bad[0]!r}")
                    rois, problems = shape_to_rois(shape, f"{shape.label}-{counter:04d}", color=colors[shape.label],
                                                   group=index_of[shape.label], props=props,
                                                   where=f"item {item.name!r} {where}")
                    for p in problems:
                        report.notes.append(Note("imagej-roi", p, item=item.name, where=where))
                    for roi in rois:
                        zf.writestr(_UNSAFE_MEMBER.sub("_", roi.name) + ".roi", roi.tobytes())
                        report.n_instances += 1
            dest.write_bytes(buf.getvalue())
            entries.append({"name": item.name, "size_hw": list(item.size_hw), "subset": item.subset, "rois": rel})
        (tmp / INDEX_FILE).write_text(json.dumps({"format": "defectlab-imagej-roi", "items": entries}, indent=1,
                                                 ensure_ascii=False) + "\n", encoding="utf-8")
    return report
