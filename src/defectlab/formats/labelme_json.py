"""LabelMe JSON (one ``.json`` per image, as the ``labelme`` desktop tool saves it), read.

Glossary of the format facts this module relies on (checked against labelme's
``label_file.py`` / ``_label_file.py``, ``utils/shape.py`` and ``widgets/canvas.py``)
---------------------------------------------------------------------------------
file            ``{version, flags, shapes, imagePath, imageData, imageHeight, imageWidth}``
                plus any other keys. ``imagePath`` is relative to the JSON file's folder
                (labelme normalises Windows backslashes); ``imageData`` is the image itself,
                base64, or null; ``imageHeight``/``imageWidth`` may be absent in old files.
                ``flags`` ``{name: bool}`` are image-level checkboxes.
shape           ``{label, points, group_id, shape_type, flags, description, mask}``:
                ``label`` a string, ``points`` a non-empty list of ``[x, y]``, ``group_id``
                an int or null (parts of one object share it), ``flags`` ``{name: bool}``,
                ``description`` text, ``mask`` a base64 PNG or null.
shape_type      ``polygon`` (> 2 points; also what a null/missing type means),
                ``rectangle`` (2 opposite corners, any order), ``circle`` (2 points: the
                center and a point on the circle, radius = their distance), ``line``
                (2 points), ``linestrip`` (an open polyline), ``point`` (1 point), ``points``
                (several points), ``oriented_rectangle`` (4 corners, newer labelme),
                ``mask`` (``points`` = the mask's top-left and bottom-right pixels; the PNG
                in ``mask`` is pasted with its top-left pixel at ``points[0]`` — labelme 5
                truncates that point to int, current labelme rounds it; both agree for the
                integer points labelme writes).
coordinates     labelme draws the image at (0, 0) on a Qt canvas and stores mouse positions
                in that continuous frame (``transformPos``), so on screen a coordinate is a
                position with pixel ``i`` covering ``[i, i+1)`` — the convention of this
                library, and coordinates are kept as written. While drawing, labelme keeps
                points inside ``[0, W-1] x [0, H-1]`` (``outOfPixmap``), so a shape drawn to
                the right or bottom edge of the image stops 1 px short of it in this frame.
                (labelme's own mask export,
                ``shape_to_mask`` with PIL ``ImageDraw``, treats integer coordinates as pixel
                centres and fills boundary pixels, so its label PNGs sit ½ px up-left of, and
                are fuller than, this library's exact masks of the same shapes.)

Mapping: polygon/oriented_rectangle → :class:`Polygon`, rectangle → :class:`Box`,
circle → :class:`Ellipse` (rx = ry), line/linestrip → :class:`Polyline`, point/points →
:class:`Points`, mask → :class:`Mask`; ``group_id`` → ``group``; shape ``flags`` →
attributes ``"true"``/``"false"``; ``description`` → attribute ``"description"``; image
``flags`` set to true → one :class:`Tag` each.

Notes (each a :class:`~defectlab.model.Note`): ``unlabeled-shape`` (empty label),
``missing-image`` (image file not found; the item is kept with its declared size),
``missing-size`` (no size declared nor readable: item skipped), ``ignored-key`` (shape keys
not kept), ``mask-origin-rounded``, ``not-labelme`` (a JSON in the folder that is not a
LabelMe file).

Examples
--------
>>> import json, pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> shapes = [{"label": "cavity", "points": [[10, 10], [13, 14]], "shape_type": "circle",
...            "group_id": None, "flags": {}, "description": ""}]
>>> _ = (folder / "a.json").write_text(json.dumps({"version": "5.4.1", "flags": {}, "shapes": shapes,
...     "imagePath": "a.png", "imageData": None, "imageHeight": 32, "imageWidth": 48}))
>>> ds = read_labelme(folder)
>>> e = ds[0].shapes[0]
>>> ds[0].size_hw, (e.cx, e.cy, e.rx), ds.notes[0].code
((32, 48), (10.0, 10.0, 5.0), 'missing-image')
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from ..errors import ImageError, ParseError
from ..imaging.io import image_size_hw
from ..limits import check_shape, check_size_hw
from ..model import (
    Box, Dataset, Ellipse, ImageSource, Item, Label, Mask, Note, Points, Polygon, Polyline, Shape, Tag,
)
from ..ordering import natural_sorted
from ._images import ImageFinder, is_file
from ._json import json_pointer, load_json, to_float
from ._text import SNIFF_BYTES, read_file

__all__ = ["read_labelme", "sniff_labelme", "SHAPE_TYPES"]

#: LabelMe shape types read, with the number of points each needs (None: "at least").
SHAPE_TYPES = {
    "polygon": (3, None), "rectangle": (2, 2), "circle": (2, 2), "line": (2, 2),
    "linestrip": (2, None), "point": (1, 1), "points": (1, None), "oriented_rectangle": (4, 4),
    "mask": (2, 2),
}
_SHAPE_KEYS = {"label", "points", "group_id", "shape_type", "flags", "description", "mask"}
_SNIFF_SHAPES = re.compile(rb'"shapes"\s*:\s*\[')
_SNIFF_OTHER = re.compile(rb'"(?:imagePath|shape_type|imageData|imageHeight)"\s*:|"version"\s*:\s*"\d')



class _LabelmeReader:
    def __init__(self, root: Path, images: Path | None) -> None:
        self.root = root  # the folder item names are relative to
        self.images = images
        self.notes: list[Note] = []
        self.labels: dict[str, None] = {}

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def error(path: Path, message: str, where: tuple) -> ParseError:
        return ParseError(path, message, where=json_pointer(where) or None)

    def num(self, path: Path, value: Any, where: tuple) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(path, f"expected a number, got {json.dumps(value)[:40]}", where)
        value = to_float(value)
        if not math.isfinite(value):
            raise self.error(path, f"expected a finite coordinate, got {value}", where)
        return value

    def points(self, path: Path, value: Any, where: tuple) -> np.ndarray:
        if not isinstance(value, list):
            got = type(value).__name__
            raise self.error(path, f"expected 'points' as a list of [x, y], got {got}", where)
        out = np.empty((len(value), 2), dtype=np.float64)
        for i, pair in enumerate(value):
            if not isinstance(pair, list) or len(pair) != 2:
                raise self.error(path, f"expected a point [x, y], got {json.dumps(pair)[:40]}", (*where, i))
            out[i, 0] = self.num(path, pair[0], (*where, i, 0))
            out[i, 1] = self.num(path, pair[1], (*where, i, 1))
        return out

    def size(self, path: Path, doc: dict) -> tuple[int, int] | None:
        values = []
        for key in ("imageHeight", "imageWidth"):
            v = doc.get(key)
            if v is None:
                return None
            number = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(to_float(v))
            if not number or v != int(v) or v <= 0:
                got = json.dumps(v)[:40]
                raise self.error(path, f"expected a positive whole number for {key!r}, got {got}", (key,))
            values.append(int(v))
        try:
            check_size_hw((values[0], values[1]))
        except ValueError as err:
            raise self.error(path, str(err), ()) from None
        return values[0], values[1]

    # -- geometry ----------------------------------------------------------------------------

    def mask(self, path: Path, shape: dict, pts: np.ndarray, where: tuple, item: str) -> dict[str, Any]:
        from PIL import Image

        data = shape.get("mask")
        if not isinstance(data, str) or not data:
            raise self.error(path, "a mask shape needs the mask as a base64 PNG in 'mask'", (*where, "mask"))
        try:
            with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as im:
                check_size_hw(im.size[::-1], "a mask")
                arr = np.asarray(im)
        except Exception as err:  # base64 and image decoders raise many types; report them alike
            raise self.error(path, f"'mask' is not a base64-encoded image of a usable size ({err})",
                             (*where, "mask")) from err
        if arr.ndim == 2:
            bitmap = arr != 0
        else:  # any colour channel set (an alpha channel ignored)
            bitmap = (arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]).any(axis=-1)
        x0, y0 = pts[0]
        left, top = int(round(x0)), int(round(y0))
        if (left, top) != (x0, y0):
            self.note(
                "mask-origin-rounded", f"mask origin {pts[0].tolist()} rounded to ({left}, {top})",
                item, path, where,
            )
        return {"bitmap": bitmap, "left": left, "top": top}

    def geometry(
        self, path: Path, shape: dict, where: tuple, item: str
    ) -> tuple[type[Shape], dict[str, Any]]:
        shape_type = shape.get("shape_type")
        if shape_type is None:
            shape_type = "polygon"  # what labelme's shape_to_mask does with a missing type
        if not isinstance(shape_type, str) or shape_type not in SHAPE_TYPES:
            raise self.error(
                path, f"unknown shape_type {shape_type!r}; supported are {', '.join(SHAPE_TYPES)}",
                (*where, "shape_type"),
            )
        if "points" not in shape:
            raise self.error(path, "missing 'points'", where)
        pts = self.points(path, shape["points"], (*where, "points"))
        low, high = SHAPE_TYPES[shape_type]
        if len(pts) < low or (high is not None and len(pts) > high):
            want = f"exactly {low}" if low == high else f"at least {low}"
            raise self.error(
                path, f"a {shape_type} needs {want} points, got {len(pts)}", (*where, "points")
            )
        if shape_type in ("polygon", "oriented_rectangle"):
            if len(pts) > 3 and np.array_equal(pts[0], pts[-1]):
                pts = pts[:-1]
            return Polygon, {"points_xy": pts}
        if shape_type == "rectangle":
            (xa, ya), (xb, yb) = pts.tolist()
            return Box, {"xyxy": (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))}
        if shape_type == "circle":
            (cx, cy), (px, py) = pts.tolist()
            r = math.hypot(px - cx, py - cy)
            return Ellipse, {"cx": cx, "cy": cy, "rx": r, "ry": r}
        if shape_type in ("line", "linestrip"):
            return Polyline, {"points_xy": pts}
        if shape_type in ("point", "points"):
            return Points, {"points_xy": pts}
        return Mask, self.mask(path, shape, pts, where, item)

    def note(self, code: str, message: str, item: str | None, path: Path, where: tuple = ()) -> None:
        place = str(path) + (json_pointer(where) and f" {json_pointer(where)}")
        self.notes.append(Note(code, message, item=item, where=place))

    # -- one file ----------------------------------------------------------------------------

    def item_name(self, json_path: Path, image_path: str) -> str:
        rel = PureWindowsPath(image_path).as_posix() if "\\" in image_path else image_path
        try:
            base = json_path.parent.relative_to(self.root).as_posix()
        except ValueError:
            base = ""
        parts: list[str] = [] if base in ("", ".") else base.split("/")
        for part in PurePosixPath(rel).parts:
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    return PurePosixPath(rel).name
                parts.pop()
            else:
                parts.append(part)
        if PurePosixPath(rel).is_absolute() or (len(rel) > 1 and rel[1] == ":"):
            return PurePosixPath(rel).name
        return "/".join(parts) or PurePosixPath(rel).name

    def find_image(self, json_path: Path, image_path: str) -> ImageSource | None:
        rel = PureWindowsPath(image_path).as_posix() if "\\" in image_path else image_path
        if self.images is not None:
            hit = ImageFinder(images=self.images).find(rel, None)
            if hit is not None:
                return hit
        local = Path(os.path.normpath(json_path.parent / rel))
        if rel and is_file(local):
            return ImageSource(local)
        return None

    def read_file(self, path: Path, doc: Any) -> Item | None:
        if not isinstance(doc, dict):
            raise self.error(path, f"expected a LabelMe JSON object, got {type(doc).__name__}", ())
        shapes_json = doc.get("shapes")
        if not isinstance(shapes_json, list):
            raise self.error(path, "expected 'shapes' as a list of shapes", ("shapes",))
        image_path = doc.get("imagePath")
        if not isinstance(image_path, str) or not image_path:
            raise self.error(path, "expected 'imagePath' as a non-empty string", ("imagePath",))
        name = self.item_name(path, image_path)
        shapes: list[Shape] = []
        ignored: set[str] = set()
        for i, s in enumerate(shapes_json):
            where = ("shapes", i)
            if not isinstance(s, dict):
                raise self.error(path, f"expected a shape object, got {type(s).__name__}", where)
            label = s.get("label")
            if not isinstance(label, str):
                got = json.dumps(label)[:40]
                raise self.error(path, f"expected 'label' as a string, got {got}", (*where, "label"))
            cls, geometry = self.geometry(path, s, where, name)
            if not label:
                self.note("unlabeled-shape", f"skipped a {cls.kind} with an empty label", name, path, where)
                continue
            group = s.get("group_id")
            if group is not None and (isinstance(group, bool) or not isinstance(group, int)):
                got = json.dumps(group)[:40]
                raise self.error(path, f"expected 'group_id' as an int or null, got {got}", (*where, "group_id"))
            attributes: dict[str, str] = {}
            flags = s.get("flags") or {}
            if not isinstance(flags, dict):
                raise self.error(path, "expected 'flags' as an object {name: bool}", (*where, "flags"))
            for key, value in flags.items():
                attributes[str(key)] = "true" if value else "false"
            description = s.get("description")
            if isinstance(description, str) and description:
                attributes["description"] = description
            ignored.update(k for k in s if k not in _SHAPE_KEYS)
            try:
                shape = cls(label=label, group=group, attributes=attributes, **geometry)
                check_shape(shape)
                shapes.append(shape)
            except ValueError as err:
                raise self.error(path, f"invalid {s.get('shape_type')}: {err}", where) from err
            self.labels.setdefault(label)
        if ignored:
            self.note("ignored-key", f"shape keys not kept: {sorted(ignored)}", name, path)
        image_flags = doc.get("flags") or {}
        if not isinstance(image_flags, dict):
            raise self.error(path, "expected 'flags' as an object {name: bool}", ("flags",))
        for flag, value in image_flags.items():
            if value is True:
                shapes.append(Tag(label=str(flag)))
                self.labels.setdefault(str(flag))

        size_hw = self.size(path, doc)
        image = self.find_image(path, image_path)
        if image is None:
            self.note(
                "missing-image",
                f"image file {image_path!r} not found beside the JSON"
                + (f" nor in {self.images}" if self.images is not None else ""),
                name, path,
            )
        if size_hw is None:
            size_hw = self.fallback_size(path, doc, image)
            if size_hw is None:
                self.note(
                    "missing-size",
                    "no imageHeight/imageWidth and no readable image: the item and its "
                    f"{len(shapes)} shape(s) are skipped",
                    name, path,
                )
                return None
        return Item(name, size_hw, tuple(shapes), image)

    def fallback_size(self, path: Path, doc: dict, image: ImageSource | None) -> tuple[int, int] | None:
        data = doc.get("imageData")
        if isinstance(data, str) and data:
            from PIL import Image

            try:
                with Image.open(io.BytesIO(base64.b64decode(data))) as im:
                    w, h = im.size
            except Exception:  # not a decodable image: fall back to the image file
                pass
            else:
                try:
                    check_size_hw((h, w))
                except ValueError as err:
                    raise self.error(path, f"the embedded image: {err}", ("imageData",)) from None
                return h, w
        if image is not None:
            try:
                size_hw = image_size_hw(image)
            except ImageError:
                return None
            try:
                check_size_hw(size_hw)
            except ValueError as err:
                raise ImageError(f"{image}: {err}") from None
            return size_hw
        return None


def _load(path: Path) -> Any:
    return load_json(read_file(path), str(path), expected="a LabelMe JSON file")


def read_labelme(path: str | Path, *, images: str | Path | None = None) -> Dataset:
    """Read LabelMe JSON files: one file, or every ``*.json`` in a folder (recursively).

    Parameters
    ----------
    path : str or Path
        A LabelMe ``.json`` file, or a folder of them (subfolders included, sorted by path).
        In a folder, JSON files that are not LabelMe files (neither ``shapes`` nor
        ``imagePath``) are skipped with a ``not-labelme`` note.
    images : str or Path, optional
        A folder to look for the image files in first (``imagePath``, then its basename);
        then ``imagePath`` is resolved against the JSON file's folder, as labelme does.

    Returns
    -------
    Dataset
        One item per JSON file, named by its ``imagePath`` resolved relative to ``path`` (a
        folder) or to the file's folder (e.g. ``ann/x.json`` with ``"../img/x.png"`` →
        ``"img/x.png"``). Size from ``imageHeight``/``imageWidth`` (else from ``imageData``
        or the image file). Labels in order of first appearance. ``format="labelme"``.

    Raises
    ------
    ImageError
        ``images`` is given but is not a folder.
    ParseError
        Not JSON, not a LabelMe file, an unknown ``shape_type``, a wrong number of points,
        a non-finite coordinate, a bad size or mask; the message names the file and the
        JSON pointer (e.g. ``/shapes/3/points/0/1``).

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "b.json"
    >>> _ = path.write_text(json.dumps({"shapes": [{"label": "loop", "shape_type": "rectangle",
    ...     "points": [[9, 2], [1, 8]]}], "imagePath": "b.png", "imageHeight": 10, "imageWidth": 10}))
    >>> read_labelme(path)[0].shapes[0].xyxy
    (1.0, 2.0, 9.0, 8.0)
    """
    path = Path(path)
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    if not path.exists():
        raise ParseError(path, "no such file or folder")
    if path.is_dir():
        files = natural_sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise ParseError(path, "no .json files in this folder: expected LabelMe JSON files")
        reader = _LabelmeReader(path, images_dir)
    else:
        files = [path]
        reader = _LabelmeReader(path.parent, images_dir)
    items = []
    for file in files:
        doc = _load(file)
        if path.is_dir() and not (isinstance(doc, dict) and ("shapes" in doc or "imagePath" in doc)):
            message = "a JSON file without 'shapes' nor 'imagePath': not read"
            reader.notes.append(Note("not-labelme", message, where=str(file)))
            continue
        item = reader.read_file(file, doc)
        if item is not None:
            items.append(item)
    labels = tuple(Label(name) for name in reader.labels)
    return Dataset(labels, tuple(items), tuple(reader.notes), source=str(path), format="labelme")


def _sniff_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return False
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return False
    return bool(_SNIFF_SHAPES.search(head) and _SNIFF_OTHER.search(head))


def sniff_labelme(path: str | Path) -> bool:
    """True when ``path`` is a LabelMe JSON file, or a folder whose first ``*.json`` is one.

    Looks at the first 4 KiB only: a ``"shapes": [`` key and one of ``imagePath``,
    ``shape_type``, ``imageData``, ``imageHeight`` or a ``"version": "5…"`` string. COCO and
    VIA files have no ``shapes`` list.
    """
    path = Path(path)
    try:
        if path.is_dir():
            jsons = (p for p in path.iterdir() if p.suffix.lower() == ".json" and p.is_file())
            first = min(jsons, default=None)
            return first is not None and _sniff_file(first)
        return path.is_file() and _sniff_file(path)
    except OSError:
        return False
