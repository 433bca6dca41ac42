"""VIA (VGG Image Annotator) JSON exports, versions 1, 2 and 3, read.

Glossary of the format facts this module relies on (checked against VIA's source,
``via.js`` of VIA 1.x/2.x and ``_via_metadata.js``/``_via_file_annotator.js`` of VIA 3)
--------------------------------------------------------------------------------------
VIA 1 / 2       an object keyed ``filename + size`` (e.g. ``"a.jpg129855"``), each value
                ``{filename, size, regions, file_attributes}``. ``size`` is the image *file's*
                size in bytes (a number, or a string in VIA 2), never its width or height:
                VIA 1/2 store no image dimensions at all. VIA 1 adds ``fileref`` and
                ``base64_img_data`` (a ``data:`` URL, usually empty).
regions         VIA 1: an object keyed ``"0"``, ``"1"``, ...; VIA 2: a list. Each region is
                ``{shape_attributes, region_attributes}``.
VIA 2 project   ``{_via_settings, _via_img_metadata, _via_attributes, ...}``: the regions are
                in ``_via_img_metadata`` (same layout as above); ``_via_attributes.region``
                declares region attributes ``{name: {type, description, options,
                default_options}}`` with ``type`` text, dropdown, radio, checkbox or image.
                A dropdown/radio stores the option key; a checkbox stores ``{option: true}``.
shapes          ``shape_attributes.name``: ``rect`` (``x y width height``), ``circle``
                (``cx cy r``), ``ellipse`` (``cx cy rx ry [theta]``), ``polygon`` and
                ``polyline`` (``all_points_x``, ``all_points_y``), ``point`` (``cx cy``).
                VIA 1 closes polygons by repeating the first vertex at the end; it is dropped
                here.
theta           radians; absent in old files (read as 0, as ``via.js`` does). VIA draws the
                ellipse with ``ctx.ellipse(cx, cy, rx, ry, theta, 0, 2π)`` on a canvas whose y
                axis points down, and sets ``theta = atan2(y - cy, x - cx)`` when the user
                drags the rx handle: the rx axis points along ``(cos θ, sin θ)`` in image
                coordinates, i.e. a positive theta turns the ellipse *clockwise on screen*.
                That is our convention, so ``rotation_deg = degrees(theta)``.
coordinates     image pixels, ``(0, 0)`` the top-left corner of the image (VIA scales canvas
                mouse positions by the image/canvas ratio and rounds them); read as written.
VIA 3           ``{project, config, attribute, file, view, metadata}``. ``file``: ``{fid:
                {fid, fname, type, loc, src}}`` with type 2 image (4 video, 8 audio) and loc 1
                local, 2 http(s), 3 file URI, 4 inline (``src`` is a data URL);
                ``config.file.loc_prefix[loc]`` is prepended to ``src``. ``view``: ``{vid:
                {fid_list}}``; ``project.vid_list`` gives the order. ``attribute``: ``{aid:
                {aname, anchor_id, type, options, default_option_id}}`` with type 1 text,
                2 checkbox (value: comma-separated option ids), 3 radio, 4 select (value: an
                option id), 5 image; region attributes have anchor ``FILE1_Z0_XY1`` (``...Z1_XY1``
                in videos). ``metadata``: ``{mid: {vid, flg, z, xy, av}}`` where ``xy`` is
                ``[shape_id, ...coordinates]`` (empty for file-level or temporal metadata) and
                ``z`` the times (empty in images).
VIA 3 shapes    1 point ``[x y]``, 2 rectangle ``[x y w h]``, 3 circle ``[cx cy r]``,
                4 ellipse ``[cx cy rx ry]`` (no rotation), 5 line ``[x1 y1 x2 y2]``,
                6 polyline and 7 polygon ``[x1 y1 x2 y2 ...]``, 8 extreme rectangle (the 4
                extreme points of the object, any order: their bounding box), 9 extreme
                circle (3 points on the circumference: their circumcircle).

The class
---------
VIA has no label field: the class is the value of a region attribute. ``class_attribute``
names it; by default it is the first of :data:`CLASS_ATTRIBUTE_NAMES` that the export has
(exact name first, then ignoring case), else the only region attribute there is, else (VIA 3)
the attribute VIA shows as the region label (``config.ui.spatial_region_label_attribute_id``).
The other
region attributes become ``Shape.attributes`` (checkbox values as comma-separated options).

What the reader skips, each with a :class:`~defectlab.model.Note`: ``missing-image`` (VIA 1/2
store no image size, so an item whose image file is not found cannot be placed: it is
skipped with its regions), ``unreadable-image``, ``unlabeled-shape`` (no class value),
``ambiguous-class`` (several checkbox options checked), ``ignored-file-attributes``,
``inline-image`` (size read from the embedded image, no file linked), VIA 3
``ignored-metadata`` (file-level, temporal or video metadata) and ``skipped-file`` (video,
audio, multi-file views).

Examples
--------
>>> import json, pathlib, tempfile
>>> from PIL import Image
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> Image.new("L", (64, 48)).save(folder / "a.png")
>>> regions = [{"shape_attributes": {"name": "ellipse", "cx": 20, "cy": 10, "rx": 6, "ry": 3,
...                                  "theta": 1.5707963267948966},
...             "region_attributes": {"type": "loop"}}]
>>> _ = (folder / "via.json").write_text(json.dumps(
...     {"a.png100": {"filename": "a.png", "size": 100, "regions": regions, "file_attributes": {}}}))
>>> ds = read_via(folder / "via.json")
>>> item = ds[0]
>>> item.size_hw, item.shapes[0].label, round(item.shapes[0].rotation_deg, 6)
((48, 64), 'loop', 90.0)
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import ImageError, ParseError
from ..imaging.io import image_size_hw
from ..limits import check_shape, check_size_hw
from ..model import Box, Dataset, Ellipse, ImageSource, Item, Label, Note, Points, Polygon, Polyline, Shape
from ._images import ImageFinder, is_file
from ._json import item_name, json_pointer, load_json, to_float
from ._text import SNIFF_BYTES, read_file

__all__ = ["read_via", "sniff_via", "CLASS_ATTRIBUTE_NAMES", "VIA3_SHAPES"]

#: Region attribute names taken as the class when ``class_attribute`` is not given, in order.
CLASS_ATTRIBUTE_NAMES = ("type", "class", "label", "name", "category")
#: VIA 3 shape ids (``_VIA_RSHAPE`` in ``_via_metadata.js``).
VIA3_SHAPES = {
    1: "point", 2: "rectangle", 3: "circle", 4: "ellipse", 5: "line", 6: "polyline",
    7: "polygon", 8: "extreme rectangle", 9: "extreme circle",
}
#: Number of coordinates after the shape id, per VIA 3 shape (absent: any even number).
_VIA3_COUNTS = {1: 2, 2: 4, 3: 3, 4: 4, 5: 4, 8: 8, 9: 6}
_VIA2_SHAPES = ("rect", "circle", "ellipse", "polygon", "polyline", "point")
_VIA3_REGION_ANCHORS = ("FILE1_Z0_XY1", "FILE1_Z1_XY1")
_VIA3_IMAGE = 2
_SNIFF_VIA12 = re.compile(rb'"(?:_via_img_metadata|_via_settings|shape_attributes|region_attributes)"\s*:')
_SNIFF_VIA12_ENTRY = re.compile(rb'"filename"\s*:.*"regions"\s*:', re.DOTALL)
_SNIFF_VIA3 = re.compile(rb'^\s*\{\s*"project"\s*:\s*\{.*"(?:pid|vid_list|pname)"\s*:', re.DOTALL)



def _dig(doc: Any, *keys: str) -> Any:
    """``doc[k1][k2]...`` through JSON objects, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _scalar_text(value: Any) -> str:
    """A JSON scalar as text: strings as they are, numbers and booleans as JSON writes them."""
    return value if isinstance(value, str) else json.dumps(value)


def _load_json(path: Path) -> Any:
    return load_json(read_file(path), str(path), expected="a VIA JSON file")



def _inline_size(data_url: str) -> tuple[int, int] | None:
    """(H, W) of an image embedded as a ``data:...;base64,`` URL or plain base64, else None."""
    from PIL import Image

    text = data_url.split(",", 1)[1] if data_url.startswith("data:") else data_url
    try:
        with Image.open(io.BytesIO(base64.b64decode(text, validate=False))) as im:
            w, h = im.size
    except Exception:  # not a decodable image: the caller reports the item as missing
        return None
    return (h, w) if h > 0 and w > 0 else None


def _circumcircle(pts: np.ndarray) -> tuple[float, float, float] | None:
    """Center and radius of the circle through 3 points; None when they are collinear."""
    (ax, ay), (bx, by), (cx, cy) = pts.tolist()
    d = 2.0 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    scale = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0)
    if abs(d) <= 1e-12 * scale * scale:
        return None
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    return ux, uy, math.hypot(ax - ux, ay - uy)


@dataclass
class _Region:
    """One region before its class is known."""

    cls: type[Shape]
    geometry: dict[str, Any]
    attributes: dict[str, Any]  # attribute name -> raw JSON value
    where: tuple


@dataclass
class _Entry:
    """One image of the export with its regions."""

    name: str
    where: tuple
    regions: list[_Region] = field(default_factory=list)
    file_names: list[str] = field(default_factory=list)  # names to look the image up by
    inline: str | None = None


class _ViaReader:
    def __init__(self, path: Path, images: Path | None) -> None:
        self.path = path
        self.notes: list[Note] = []
        self.finder = ImageFinder(folder=path.parent, images=images)

    # -- errors and numbers ------------------------------------------------------------------

    def error(self, message: str, where: tuple) -> ParseError:
        return ParseError(self.path, message, where=json_pointer(where) or None)

    def obj(self, value: Any, where: tuple, what: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(f"expected {what} (a JSON object), got {type(value).__name__}", where)
        return value

    def num(self, value: Any, where: tuple) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(f"expected a number, got the text {value!r}", where) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"expected a number, got {json.dumps(value)[:40]}", where)
        value = to_float(value)
        if not math.isfinite(value):
            raise self.error(f"expected a finite number, got {value}", where)
        return value

    def field_num(self, attrs: Mapping, key: str, where: tuple, default: float | None = None) -> float:
        if key not in attrs or attrs[key] is None:
            if default is not None:
                return default
            raise self.error(f"missing {key!r} in the shape attributes", (*where, key))
        return self.num(attrs[key], (*where, key))

    def nonneg(self, attrs: Mapping, key: str, where: tuple) -> float:
        value = self.field_num(attrs, key, where)
        if value < 0:
            raise self.error(f"expected {key!r} >= 0, got {value}", (*where, key))
        return value

    def coords(self, value: Any, where: tuple) -> list[float]:
        if not isinstance(value, list):
            raise self.error(f"expected a list of numbers, got {type(value).__name__}", where)
        return [self.num(v, (*where, i)) for i, v in enumerate(value)]

    def note(self, code: str, message: str, item: str | None = None, where: tuple | None = None) -> None:
        self.notes.append(Note(code, message, item=item, where=json_pointer(where) if where else None))

    # -- VIA 1 / 2 shapes ---------------------------------------------------------------------

    def via2_shape(self, sa: Any, where: tuple) -> tuple[type[Shape], dict[str, Any]]:
        sa = self.obj(sa, where, "shape_attributes")
        kind = sa.get("name")
        if kind == "rect":
            x, y = self.field_num(sa, "x", where), self.field_num(sa, "y", where)
            w, h = self.nonneg(sa, "width", where), self.nonneg(sa, "height", where)
            return Box, {"xyxy": (x, y, x + w, y + h)}
        if kind == "circle":
            r = self.nonneg(sa, "r", where)
            cx, cy = self.field_num(sa, "cx", where), self.field_num(sa, "cy", where)
            return Ellipse, {"cx": cx, "cy": cy, "rx": r, "ry": r}
        if kind == "ellipse":
            theta = self.field_num(sa, "theta", where, default=0.0)
            return Ellipse, {
                "cx": self.field_num(sa, "cx", where), "cy": self.field_num(sa, "cy", where),
                "rx": self.nonneg(sa, "rx", where), "ry": self.nonneg(sa, "ry", where),
                "rotation_deg": math.degrees(theta),
            }
        if kind == "point":
            return Points, {"points_xy": [[self.field_num(sa, "cx", where), self.field_num(sa, "cy", where)]]}
        if kind in ("polygon", "polyline"):
            for key in ("all_points_x", "all_points_y"):
                if key not in sa:
                    raise self.error(f"missing {key!r} in the shape attributes of a {kind}", (*where, key))
            xs = self.coords(sa["all_points_x"], (*where, "all_points_x"))
            ys = self.coords(sa["all_points_y"], (*where, "all_points_y"))
            if len(xs) != len(ys):
                raise self.error(
                    f"'all_points_x' has {len(xs)} values but 'all_points_y' has {len(ys)}", where
                )
            return self.line_shape(kind, np.column_stack([xs, ys]) if xs else np.zeros((0, 2)), where)
        supported = ", ".join(_VIA2_SHAPES)
        raise self.error(f"unknown shape {kind!r}; supported are {supported}", (*where, "name"))

    def line_shape(self, kind: str, pts: np.ndarray, where: tuple) -> tuple[type[Shape], dict[str, Any]]:
        if kind == "polygon":
            if len(pts) >= 2 and np.array_equal(pts[0], pts[-1]):
                pts = pts[:-1]  # VIA 1 repeats the first vertex to close the path
            if len(pts) < 3:
                raise self.error(
                    "a polygon needs at least 3 vertices (a closing repeat of the first not counted), "
                    f"got {len(pts)}",
                    where,
                )
            return Polygon, {"points_xy": pts}
        if len(pts) < 2:
            raise self.error(f"a {kind} needs at least 2 points, got {len(pts)}", where)
        return Polyline, {"points_xy": pts}

    # -- VIA 1 / 2 documents -------------------------------------------------------------------

    def via2_entries(self, meta: Any, prefix: tuple) -> list[_Entry]:
        meta = self.obj(meta, prefix, "the image metadata")
        entries = []
        file_attributes: set[str] = set()
        for key, value in meta.items():
            where = (*prefix, key)
            value = self.obj(value, where, "an image entry {filename, size, regions}")
            name = value.get("filename")
            if not isinstance(name, str) or not name:
                raise self.error("expected a non-empty 'filename'", (*where, "filename"))
            entry = _Entry(item_name(name), where, file_names=[name])
            inline = value.get("base64_img_data")
            entry.inline = inline if isinstance(inline, str) and inline else None
            regions = value.get("regions", [])
            if isinstance(regions, dict):  # VIA 1: {"0": region, "1": region, ...}
                pairs = list(regions.items())
            elif isinstance(regions, list):
                pairs = list(enumerate(regions))
            else:
                raise self.error(
                    f"expected 'regions' as a list or object, got {type(regions).__name__}", (*where, "regions")
                )
            for rkey, region in pairs:
                rwhere = (*where, "regions", rkey)
                region = self.obj(region, rwhere, "a region {shape_attributes, region_attributes}")
                if "shape_attributes" not in region:
                    raise self.error("missing 'shape_attributes'", rwhere)
                cls, geometry = self.via2_shape(region["shape_attributes"], (*rwhere, "shape_attributes"))
                attrs = region.get("region_attributes") or {}
                attrs = self.obj(attrs, (*rwhere, "region_attributes"), "'region_attributes'")
                entry.regions.append(_Region(cls, geometry, dict(attrs), (*rwhere, "region_attributes")))
            fa = value.get("file_attributes")
            if isinstance(fa, dict):
                file_attributes.update(k for k, v in fa.items() if v not in (None, "", {}))
            entries.append(entry)
        if file_attributes:
            self.note("ignored-file-attributes", f"file attributes are not kept: {sorted(file_attributes)}")
        return entries

    def via2_declared(self, doc: Mapping) -> dict[str, dict]:
        attributes = doc.get("_via_attributes")
        if not isinstance(attributes, dict):
            return {}
        region = attributes.get("region")
        return {k: v for k, v in region.items() if isinstance(v, dict)} if isinstance(region, dict) else {}

    # -- the class -------------------------------------------------------------------------------

    def pick_class_attribute(
        self, present: list[str], class_attribute: str | None, ui_label: str | None = None
    ) -> str:
        if class_attribute is not None:
            if class_attribute not in present:
                raise ParseError(
                    self.path,
                    f"no region attribute {class_attribute!r} (given as class_attribute); "
                    f"the region attributes are {present}",
                )
            return class_attribute
        for cand in CLASS_ATTRIBUTE_NAMES:
            if cand in present:
                return cand
        for cand in CLASS_ATTRIBUTE_NAMES:
            for name in present:
                if name.lower() == cand:
                    return name
        if len(present) == 1:
            return present[0]
        if ui_label is not None and ui_label in present:
            return ui_label
        raise ParseError(
            self.path,
            "cannot tell which region attribute holds the class: the region attributes are "
            f"{present} and none is named one of {list(CLASS_ATTRIBUTE_NAMES)}; pass "
            "class_attribute='<name>' to read_via",
        )

    def class_value(self, value: Any, region: _Region, item: str, class_attribute: str) -> str | None:
        """The class of a region from its attribute value; None (with a note) when it has none."""
        if isinstance(value, dict):  # checkbox style {option: true}
            checked = [str(k) for k, v in value.items() if v]
            if len(checked) > 1:
                self.note(
                    "ambiguous-class",
                    f"skipped a region ({region.cls.kind}) with several classes checked in "
                    f"{class_attribute!r}: {checked}",
                    item, region.where,
                )
                return None
            value = checked[0] if checked else None
        elif isinstance(value, list):
            raise self.error(
                "expected a text, number or {option: true} class value, got a list",
                (*region.where, class_attribute),
            )
        text = None if value is None else _scalar_text(value)
        if text is None or not text.strip():
            self.note(
                "unlabeled-shape",
                f"skipped a region ({region.cls.kind}) without a value for the class attribute "
                f"{class_attribute!r}",
                item, region.where,
            )
            return None
        return text

    def attribute_text(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, dict):
            return ",".join(str(k) for k, v in value.items() if v)
        if isinstance(value, list):
            return ",".join(_scalar_text(v) for v in value)
        return _scalar_text(value)

    # -- building items ----------------------------------------------------------------------

    def find(self, names: list[str]) -> ImageSource | None:
        for name in names:
            posix = name.replace("\\", "/")
            local: Path | None = None
            if "://" in posix:
                parsed = urlparse(posix)
                if parsed.scheme == "file":
                    local = Path(unquote(parsed.path))
                posix = PurePosixPath(unquote(parsed.path)).name
            elif PurePosixPath(posix).is_absolute():
                local = Path(name)
            hit = self.finder.find(posix, None) if posix else None
            if hit is None and local is not None and is_file(local):
                hit = ImageSource(local)
            if hit is None:  # e.g. "C:\\data\\a.jpg" written by VIA on another machine
                beside = self.path.parent / PurePosixPath(posix).name
                hit = ImageSource(beside) if PurePosixPath(posix).name and is_file(beside) else None
            if hit is not None:
                return hit
        return None

    def place(self, entry: _Entry) -> tuple[tuple[int, int], ImageSource | None] | None:
        """(size_hw, image) of an entry, or None (with a note) when it cannot be placed."""
        n = len(entry.regions)
        image = self.find(entry.file_names)
        if image is not None:
            try:
                size_hw = image_size_hw(image)
            except ImageError as err:
                self.note(
                    "unreadable-image",
                    f"cannot read the image size ({err}); the item and its {n} region(s) are skipped",
                    entry.name, entry.where,
                )
                return None
            try:
                check_size_hw(size_hw)
            except ValueError as err:
                raise ImageError(f"{image}: {err}") from None
            return size_hw, image
        if entry.inline:
            size = _inline_size(entry.inline)
            if size is not None:
                try:
                    check_size_hw(size)
                except ValueError as err:
                    raise self.error(f"the embedded image: {err}", entry.where) from None
                self.note(
                    "inline-image", "the image is only embedded in the export; size read from it, no file linked",
                    entry.name, entry.where,
                )
                return size, None
        self.note(
            "missing-image",
            f"image file not found in {self.finder.looked_in()}; VIA stores no image size, so the "
            f"item and its {n} region(s) are skipped",
            entry.name, entry.where,
        )
        return None

    def build(self, entries: list[_Entry], class_attribute: str, declared_classes: list[str],
              decode: Any = None) -> tuple[list[Label], list[Item]]:
        """Items from entries; ``decode(attr_name, value)`` maps stored values (VIA 3 option ids)."""
        decode = decode or (lambda _name, value: value)
        # a declared option without text cannot be a class (regions with it are unlabeled)
        labels: dict[str, None] = dict.fromkeys(c for c in declared_classes if c.strip())
        items = []
        for entry in entries:
            shapes: list[Shape] = []
            for region in entry.regions:
                value = decode(class_attribute, region.attributes.get(class_attribute))
                label = self.class_value(value, region, entry.name, class_attribute)
                if label is None:
                    continue
                labels.setdefault(label)
                attributes = {}
                for key, value in region.attributes.items():
                    if key == class_attribute:
                        continue
                    text = self.attribute_text(decode(key, value))
                    if text is not None:
                        attributes[key] = text
                try:
                    shape = region.cls(label=label, attributes=attributes, **region.geometry)
                    check_shape(shape)
                    shapes.append(shape)
                except ValueError as err:
                    raise self.error(f"invalid {region.cls.kind}: {err}", region.where[:-1]) from err
            placed = self.place(entry)
            if placed is None:
                continue
            size_hw, image = placed
            items.append(Item(entry.name, size_hw, tuple(shapes), image))
        return [Label(name) for name in labels], items

    def read_via2(self, doc: Mapping, class_attribute: str | None) -> tuple[list[Label], list[Item]]:
        if "_via_img_metadata" in doc:
            entries = self.via2_entries(doc["_via_img_metadata"], ("_via_img_metadata",))
            declared = self.via2_declared(doc)
        else:
            entries = self.via2_entries(doc, ())
            declared = {}
        seen = (k for e in entries for r in e.regions for k in r.attributes)
        present = list(dict.fromkeys([*declared, *seen]))
        if not any(e.regions for e in entries):
            return [], self.build(entries, "", [])[1]
        chosen = self.pick_class_attribute(present, class_attribute)
        options = declared.get(chosen, {}).get("options")
        declared_classes = [str(k) for k in options] if isinstance(options, dict) else []
        return self.build(entries, chosen, declared_classes)

    # -- VIA 3 -----------------------------------------------------------------------------------

    def via3_shape(self, xy: list, where: tuple) -> tuple[type[Shape], dict[str, Any]]:
        shape_id = xy[0]
        if isinstance(shape_id, bool) or not isinstance(shape_id, int) or shape_id not in VIA3_SHAPES:
            known = ", ".join(f"{k} {v}" for k, v in VIA3_SHAPES.items())
            raise self.error(f"unknown VIA 3 shape id {json.dumps(shape_id)}; known are {known}", (*where, 0))
        c = [self.num(v, (*where, i)) for i, v in enumerate(xy[1:], start=1)]
        want = _VIA3_COUNTS.get(shape_id)
        kind = VIA3_SHAPES[shape_id]
        if (want is not None and len(c) != want) or (want is None and len(c) % 2):
            expected = f"{want}" if want is not None else "an even number of"
            raise self.error(
                f"a VIA 3 {kind} needs {expected} coordinates after the shape id, got {len(c)}", where
            )
        if shape_id == 1:
            return Points, {"points_xy": [c]}
        if shape_id == 2:
            x, y, w, h = c
            if w < 0 or h < 0:
                raise self.error(f"expected a rectangle width and height >= 0, got {w}, {h}", where)
            return Box, {"xyxy": (x, y, x + w, y + h)}
        if shape_id == 3:
            if c[2] < 0:
                raise self.error(f"expected a circle radius >= 0, got {c[2]}", (*where, 3))
            return Ellipse, {"cx": c[0], "cy": c[1], "rx": c[2], "ry": c[2]}
        if shape_id == 4:
            if c[2] < 0 or c[3] < 0:
                raise self.error(f"expected ellipse radii >= 0, got {c[2]}, {c[3]}", where)
            return Ellipse, {"cx": c[0], "cy": c[1], "rx": c[2], "ry": c[3]}
        pts = np.array(c, dtype=np.float64).reshape(-1, 2)
        if shape_id == 8:
            return Box, {"xyxy": (*pts.min(axis=0).tolist(), *pts.max(axis=0).tolist())}
        if shape_id == 9:
            circle = _circumcircle(pts)
            if circle is None:
                raise self.error(
                    "the 3 points of an extreme circle are collinear: no circle passes through them", where
                )
            cx, cy, r = circle
            return Ellipse, {"cx": cx, "cy": cy, "rx": r, "ry": r}
        return self.line_shape("polygon" if shape_id == 7 else "polyline", pts, where)

    def read_via3(self, doc: Mapping, class_attribute: str | None) -> tuple[list[Label], list[Item]]:
        for key in ("attribute", "file", "view", "metadata"):
            self.obj(doc.get(key), (key,), f"'{key}'")
        attributes: dict = doc["attribute"]
        region_attrs: dict[str, dict] = {}
        for aid, spec in attributes.items():
            spec = self.obj(spec, ("attribute", aid), "an attribute {aname, anchor_id, type, options}")
            if spec.get("anchor_id", _VIA3_REGION_ANCHORS[0]) in _VIA3_REGION_ANCHORS:
                region_attrs[str(aid)] = spec
        names = {aid: str(spec.get("aname", aid)) for aid, spec in region_attrs.items()}

        def decode(aname: str, value: Any) -> Any:
            aid = next((a for a, n in names.items() if n == aname), None)
            spec = region_attrs.get(aid) if aid is not None else None
            options = spec.get("options") if spec else None
            if not isinstance(options, dict) or spec.get("type") not in (2, 3, 4, 5) or value is None:
                return value
            ids = [v for v in str(value).split(",") if v != ""] if spec.get("type") == 2 else [str(value)]
            labels = [str(options.get(i, i)) for i in ids]
            if spec.get("type") == 2:
                return {lab: True for lab in labels}
            return labels[0] if labels else None

        loc_prefix = _dig(doc, "config", "file", "loc_prefix")
        loc_prefix = loc_prefix if isinstance(loc_prefix, dict) else {}
        entries: dict[str, _Entry] = {}
        skipped_views: set[str] = set()
        views: dict = doc["view"]
        project = doc.get("project") if isinstance(doc.get("project"), dict) else {}
        order = project.get("vid_list") if isinstance(project.get("vid_list"), list) else list(views)
        for vid in order:
            vid = str(vid)
            view = self.obj(views.get(vid), ("view", vid), "a view {fid_list}")
            fids = view.get("fid_list")
            if not isinstance(fids, list) or len(fids) != 1:
                self.note(
                    "skipped-file", f"view {vid!r} shows {fids!r}: only views of exactly one file are read",
                    where=("view", vid),
                )
                skipped_views.add(vid)
                continue
            fid = str(fids[0])
            spec = self.obj(doc["file"].get(fid), ("file", fid), "a file {fname, type, loc, src}")
            fname = spec.get("fname")
            if not isinstance(fname, str) or not fname:
                raise self.error("expected a non-empty 'fname'", ("file", fid, "fname"))
            if spec.get("type", _VIA3_IMAGE) != _VIA3_IMAGE:
                self.note(
                    "skipped-file", f"file type {spec.get('type')!r} is not an image (2); its regions are skipped",
                    fname, ("file", fid),
                )
                skipped_views.add(vid)
                continue
            entry = _Entry(item_name(fname), ("file", fid), file_names=[fname])
            src = spec.get("src")
            if isinstance(src, str) and src:
                if spec.get("loc") == 4:
                    entry.inline = src
                else:
                    entry.file_names.append(str(loc_prefix.get(str(spec.get("loc")), "")) + src)
            entries[vid] = entry

        ignored: dict[str, int] = {}
        for mid, m in doc["metadata"].items():
            where = ("metadata", mid)
            m = self.obj(m, where, "a metadata record {vid, z, xy, av}")
            vid = str(m.get("vid"))
            if vid in skipped_views:
                continue
            if vid not in entries:
                raise self.error(
                    f"metadata of view {vid!r}, which the project does not have", (*where, "vid")
                )
            xy, z = m.get("xy") or [], m.get("z") or []
            if not isinstance(xy, list) or not isinstance(z, list):
                raise self.error("expected 'xy' and 'z' as lists", where)
            if not xy or z:
                kind = "temporal or video" if z else "file-level"
                ignored[kind] = ignored.get(kind, 0) + 1
                continue
            cls, geometry = self.via3_shape(xy, (*where, "xy"))
            av = self.obj(m.get("av") or {}, (*where, "av"), "'av'")
            raw = {}
            for aid, value in av.items():
                if str(aid) not in names:
                    if str(aid) in attributes:
                        continue  # a file-level attribute value on a region: not a region attribute
                    raise self.error(
                        f"value of attribute id {aid!r}, which the project does not declare", (*where, "av", aid)
                    )
                raw[names[str(aid)]] = value
            entries[vid].regions.append(_Region(cls, geometry, raw, (*where, "av")))
        for kind, count in ignored.items():
            self.note("ignored-metadata", f"{count} {kind} metadata record(s) without a region are not kept")

        present = list(names.values())
        if not any(e.regions for e in entries.values()):
            return [], self.build(list(entries.values()), "", [])[1]
        ui = _dig(doc, "config", "ui", "spatial_region_label_attribute_id")
        ui_label = names.get(str(ui)) if ui is not None else None
        chosen = self.pick_class_attribute(present, class_attribute, ui_label)
        spec = next(s for a, s in region_attrs.items() if names[a] == chosen)
        options = spec.get("options")
        has_options = isinstance(options, dict) and spec.get("type") in (2, 3, 4, 5)
        declared = [str(v) for v in options.values()] if has_options else []
        return self.build(list(entries.values()), chosen, declared, decode)


def read_via(
    path: str | Path, *, images: str | Path | None = None, class_attribute: str | None = None
) -> Dataset:
    """Read a VIA 1, 2 or 3 JSON export (annotations or project file).

    Parameters
    ----------
    path : str or Path
        The ``.json`` file VIA saved: a VIA 1/2 annotation export, a VIA 2 project
        (``_via_img_metadata`` inside) or a VIA 3 project.
    images : str or Path, optional
        A folder to look for the image files in first (by the name as written, then its
        basename); then the JSON file's folder is searched (``images/<name>``, ``<name>``),
        then absolute paths and ``file://`` URLs as written.
    class_attribute : str, optional
        The region attribute that holds the class (VIA 3: its name). Default: the first of
        :data:`CLASS_ATTRIBUTE_NAMES` present (exact, then ignoring case), else the only
        region attribute, else (VIA 3) the attribute VIA shows as the region label.

    Returns
    -------
    Dataset
        One item per image that could be placed, in file order, named by the file name
        (URLs and absolute paths reduced to the file name). VIA 1/2 store no image size,
        so each size is read from the image file's header; an item whose image is not
        found is skipped with a ``missing-image`` note. Labels: the class attribute's
        declared options, then the classes seen. ``format="via"``, ``source=str(path)``.

    Raises
    ------
    ImageError
        ``images`` is given but is not a folder.
    ParseError
        Not JSON, not a VIA export, a missing or non-finite coordinate, a negative size, a
        polygon of fewer than 3 vertices, an unknown shape, or a class attribute that cannot
        be determined; the message names the file and the JSON pointer of the value.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "via.json"
    >>> region = {"shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 3, "height": 4},
    ...           "region_attributes": {"defect": "cavity"}}
    >>> _ = path.write_text(json.dumps({"b.png5": {"filename": "b.png", "size": 5, "regions": [region]}}))
    >>> ds = read_via(path)          # b.png is not there: the item cannot be placed
    >>> len(ds), ds.notes[0].code, [lab.name for lab in ds.labels]
    (0, 'missing-image', ['cavity'])
    """
    path = Path(path)
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    if not path.is_file():
        missing = "no such file" if not path.exists() else "expected a VIA .json file, got a folder"
        raise ParseError(path, missing)
    doc = _load_json(path)
    reader = _ViaReader(path, images_dir)
    if isinstance(doc, dict) and "metadata" in doc and "file" in doc and "project" in doc:
        labels, items = reader.read_via3(doc, class_attribute)
    elif isinstance(doc, dict) and (
        "_via_img_metadata" in doc
        or all(isinstance(v, dict) and ("filename" in v or "regions" in v) for v in doc.values())
    ):
        labels, items = reader.read_via2(doc, class_attribute)
    else:
        keys = list(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
        raise ParseError(
            path,
            "not a VIA export: expected an object of {filename, size, regions} entries (VIA 1/2), "
            f"a VIA 2 project with '_via_img_metadata', or a VIA 3 project; got {keys}",
        )
    return Dataset(tuple(labels), tuple(items), tuple(reader.notes), source=str(path), format="via")


def sniff_via(path: str | Path) -> bool:
    """True when ``path`` is a JSON file that looks like a VIA export (reads 4 KiB).

    VIA 1/2: a ``shape_attributes``/``region_attributes`` or ``_via_img_metadata`` key, or an
    entry with ``filename`` and ``regions``; VIA 3: an object starting with a ``project``
    holding ``pid``/``vid_list``/``pname``. COCO and LabelMe files have none of these.
    """
    path = Path(path)
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return False
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return False
    return bool(_SNIFF_VIA12.search(head) or _SNIFF_VIA12_ENTRY.search(head) or _SNIFF_VIA3.search(head))
