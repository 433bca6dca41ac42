"""Reading COCO instances JSON (see the package docstring for the format facts)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

from ...errors import ImageError, ParseError
from ...limits import DEFAULTS, check_shape, check_size_hw, hint
from ...limits import current as current_limits
from ...model import Box, Dataset, Ellipse, Item, Label, Mask, Note, Polygon, Polyline, Shape
from ...safe_zip import SafeZip, is_zip
from .._images import ImageFinder
from .._json import load_json, to_float
from .._text import SNIFF_BYTES, read_file
from .spec import DEFAULT_SUBSET, EXTRA, ROBOFLOW_FILE, rle_counts, rle_crop

__all__ = ["read_coco", "sniff_coco"]

#: The default largest image side (px); the limit in force is
#: :attr:`defectlab.limits.Limits.max_image_side` (with ``max_image_pixels``).
MAX_SIDE = DEFAULTS.max_image_side
_INSTANCES = re.compile(r"(?:.*/)?instances_(.+)\.json")
_KNOWN_ANN_KEYS = {
    "id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "attributes",
    "score", EXTRA,
}
_SNIFF_KEYS = re.compile(rb'"(images|categories)"\s*:')  # "annotations" is in Labelbox rows too


# ---------------------------------------------------------------------------------------------
# Finding the annotation files: a .json, a folder, or a zip
# ---------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """One annotation file to read."""

    display: str            # for messages: the path (zip: archive!member)
    rel: str                # its name relative to the export, for notes
    subset: str | None      # as named by the layout ("default" kept, for image look-up)
    load: Callable[[], bytes]
    finder: ImageFinder


def _subset_of(rel: str, folder_name: str | None) -> str | None:
    match = _INSTANCES.fullmatch(rel)
    if match:
        return match.group(1)
    if PurePosixPath(rel).name == ROBOFLOW_FILE:
        parent = PurePosixPath(rel).parent.name
        return parent or folder_name or None
    return None


def _pick(names: list[str], where: str, notes: list[Note]) -> list[str]:
    """The annotation files among ``names`` (posix paths relative to the export)."""
    inst = [n for n in names if _INSTANCES.fullmatch(n) and n.count("/") <= 1]
    if inst:
        for n in names:
            if n not in inst and n.startswith("annotations/"):
                notes.append(Note("ignored-file", "not an instances_*.json file; not read", where=n))
        return inst
    roboflow = [n for n in names if PurePosixPath(n).name == ROBOFLOW_FILE]
    if roboflow:
        return roboflow
    top = [n for n in names if "/" not in n]
    if len(top) == 1:
        return top
    nested = [n for n in names if n.startswith("annotations/")]
    if not top and len(nested) == 1:
        return nested
    found = top or nested
    if found:
        raise ParseError(where, f"expected one COCO annotation file, found several JSON files: {sorted(found)[:10]}; "
                         f"pick one: read {where}/{sorted(found)[0]} (the file itself)")
    raise ParseError(
        where, "no COCO annotation file: expected annotations/instances_<subset>.json, "
        f"<split>/{ROBOFLOW_FILE} or a single .json file"
    )


def _folder_names(root: Path) -> list[str]:
    names: list[str] = []
    for p in sorted(root.iterdir()):
        if p.is_file() and p.suffix.lower() == ".json":
            names.append(p.name)
        elif p.is_dir() and p.name == "annotations":
            names += [f"annotations/{q.name}" for q in sorted(p.iterdir()) if q.is_file() and q.suffix.lower() == ".json"]
        elif p.is_dir() and (p / ROBOFLOW_FILE).is_file():
            names.append(f"{p.name}/{ROBOFLOW_FILE}")
    return names


def _export_root(rel: str) -> str:
    """The folder (posix, relative) that holds ``images/``: above ``annotations/``, else the JSON's."""
    parent = PurePosixPath(rel).parent
    if parent.name == "annotations":
        parent = parent.parent
    return "" if str(parent) == "." else str(parent)


def _sources(path: Path, images: Path | None, notes: list[Note]) -> list[_Source]:
    if not path.exists():
        raise ParseError(path, "no such file or folder")
    if path.is_dir():
        out = []
        for rel in _pick(_folder_names(path), str(path), notes):
            file = path / rel
            root = file.parent.parent if file.parent.name == "annotations" else file.parent
            out.append(_Source(str(file), rel, _subset_of(rel, path.name), partial(read_file, file),
                               ImageFinder(folder=root, images=images)))
        return out
    if is_zip(path):
        with SafeZip(path) as zf:
            members = zf.names()
        candidates = [
            n for n in members if n.lower().endswith(".json") and (
                "/" not in n or (n.count("/") == 1 and (n.startswith("annotations/") or n.endswith("/" + ROBOFLOW_FILE)))
            )
        ]
        out = []
        for rel in _pick(candidates, str(path), notes):
            root = _export_root(rel)

            def load(member: str = rel) -> bytes:
                with SafeZip(path) as z:
                    return z.read(member)

            finder = ImageFinder(archive=path, members=members, prefix=root + "/" if root else "", images=images)
            out.append(_Source(f"{path}!{rel}", rel, _subset_of(rel, None), load, finder))
        return out
    root = path.parent.parent if path.parent.name == "annotations" else path.parent
    rel = f"annotations/{path.name}" if path.parent.name == "annotations" else path.name
    return [_Source(str(path), rel, _subset_of(rel, path.parent.name), partial(read_file, path),
                    ImageFinder(folder=root, images=images))]


# ---------------------------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------------------------


@dataclass
class _Category:
    id: int
    name: str
    supercategory: str
    extra: dict
    where: str


@dataclass
class _Ann:
    index: int   # position in "annotations"
    label: str
    data: dict
    extra: dict
    undeclared: bool = False  # (lenient) its category_id names no category


@dataclass
class _File:
    source: _Source
    categories: list[_Category] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


def _attr_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


class _Reader:
    """One COCO document; checks every value it uses and names it by JSON pointer."""

    def __init__(self, source: _Source, notes: list[Note], lenient: bool = False) -> None:
        self.src = source
        self.path = source.display
        self.notes = notes
        self.lenient = lenient

    def refuse(self, err: ParseError, what: str, left_out: str, item: str | None = None) -> None:
        """Lenient reading: the error becomes a ``refused-<what>`` note (re-raised when strict)."""
        if not self.lenient:
            raise err
        self.notes.append(Note(f"refused-{what}", f"{err.message} (at {err.where}); {left_out} left out", item=item,
                               where=f"{self.src.rel} {err.where}", file=self.path))

    # -- checked values ----------------------------------------------------------------------

    def error(self, where: str, message: str) -> ParseError:
        return ParseError(self.path, message, where=where)

    def get(self, obj: dict, key: str, where: str) -> Any:
        if key not in obj:
            raise self.error(where, f"missing key {key!r}")
        return obj[key]

    def obj(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a JSON object, got {_kind(value)}")
        return value

    def array(self, value: Any, where: str) -> list:
        if not isinstance(value, list):
            raise self.error(where, f"expected a JSON array, got {_kind(value)}")
        return value

    def num(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(where, f"expected a number, got {_kind(value)} {_short(value)}")
        number = to_float(value)
        if not math.isfinite(number):
            raise self.error(where, f"expected a finite number, got {_short(value)}")
        return number

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(where, f"expected a whole number, got {_kind(value)} {_short(value)}")
        return value

    def numbers(self, value: Any, where: str) -> np.ndarray:
        values = self.array(value, where)
        for j, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(f"{where}/{j}", f"expected a number, got {_kind(v)} {_short(v)}")
        try:
            arr = np.array(values, dtype=np.float64)
        except OverflowError:  # an integer beyond float range
            arr = np.array([to_float(v) for v in values], dtype=np.float64)
        if not np.isfinite(arr).all():
            j = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise self.error(f"{where}/{j}", f"expected a finite number, got {_short(values[j])}")
        return arr

    def points(self, value: Any, where: str) -> np.ndarray:
        """``[x0, y0, x1, y1, …]`` with at least 3 points."""
        flat = self.numbers(value, where)
        if len(flat) % 2:
            raise self.error(where, f"expected x, y pairs, got an odd count of {len(flat)} numbers")
        if len(flat) < 6:
            raise self.error(
                where, f"expected a polygon of at least 3 points (6 numbers), got {len(flat)} numbers"
                + (" (pycocotools would take 4 numbers for a box)" if len(flat) == 4 else "")
            )
        return flat.reshape(-1, 2)

    # -- the document ------------------------------------------------------------------------

    def read(self) -> _File:
        doc = load_json(self.src.load(), self.path, expected="a COCO JSON file")
        if isinstance(doc, list):
            raise self.error("/", "expected a COCO object with 'images', 'annotations' and 'categories', "
                             "got a JSON array (a COCO results file?)")
        doc = self.obj(doc, "/")
        if "images" not in doc:
            raise self.error("/", f"not a COCO instances file: no 'images' (keys: {sorted(doc)[:10]})")
        out = _File(self.src)
        out.categories = self.categories(doc.get("categories", []))
        by_id = {c.id: c for c in out.categories}
        images = self.images(self.array(doc["images"], "/images"))
        anns: dict[int, list[_Ann]] = {image_id: [] for image_id in images}
        unknown: Counter = Counter()
        for i, ann in enumerate(self.array(doc.get("annotations", []), "/annotations")):
            try:
                self.annotation_entry(i, ann, anns, by_id, out, unknown)
            except ParseError as err:
                self.refuse(err, "shape", "the annotation")
        if unknown:
            self.notes.append(Note("ignored-field", f"annotation keys not read: {sorted(unknown)}", where=self.src.rel))
        subset = None if self.src.subset == DEFAULT_SUBSET else self.src.subset
        for image_id, (name, size_hw, j) in images.items():
            shapes = self.shapes(anns[image_id], size_hw, name)
            image = self.src.finder.find(name, self.src.subset)
            if image is None:
                self.notes.append(Note("missing-image", f"image file not found in {self.src.finder.looked_in()}",
                                       item=name, where=f"{self.src.rel} /images/{j}"))
            out.items.append(Item(name, size_hw, tuple(shapes), image, subset, image_id))
        return out

    def annotation_entry(self, i: int, ann: Any, anns: dict[int, list[_Ann]], by_id: dict[int, _Category],
                         out: _File, unknown: Counter) -> None:
        where = f"/annotations/{i}"
        ann = self.obj(ann, where)
        image_id = self.integer(self.get(ann, "image_id", where), f"{where}/image_id")
        if image_id not in anns:
            raise self.error(f"{where}/image_id", f"no image with id {image_id}")
        cat_id = self.integer(self.get(ann, "category_id", where), f"{where}/category_id")
        undeclared = cat_id not in by_id
        if undeclared and not self.lenient:
            raise self.error(f"{where}/category_id", f"unknown category id {cat_id}; the categories are {sorted(by_id)}")
        label = f"category {cat_id}" if undeclared else by_id[cat_id].name
        out.used.add(label)
        unknown.update(k for k in ann if k not in _KNOWN_ANN_KEYS)
        extra = self.obj(ann[EXTRA], f"{where}/{EXTRA}") if EXTRA in ann else {}
        anns[image_id].append(_Ann(i, label, ann, extra, undeclared))

    def categories(self, value: Any) -> list[_Category]:
        cats: list[_Category] = []
        ids: set[int] = set()
        names: set[str] = set()
        for i, cat in enumerate(self.array(value, "/categories")):
            where = f"/categories/{i}"
            try:
                cat = self.obj(cat, where)
                cid = self.integer(self.get(cat, "id", where), f"{where}/id")
                name = self.get(cat, "name", where)
                if not isinstance(name, str) or not name:
                    raise self.error(f"{where}/name", f"expected a non-empty name, got {_short(name)}")
                if cid in ids:
                    raise self.error(f"{where}/id", f"the category id {cid} is declared twice")
                if name in names:
                    raise self.error(f"{where}/name", f"the category name {name!r} is declared twice")
            except ParseError as err:
                self.refuse(err, "label", "the category (its annotations are undeclared)")
                continue
            ids.add(cid)
            names.add(name)
            sup = cat.get("supercategory") or ""
            extra = self.obj(cat[EXTRA], f"{where}/{EXTRA}") if EXTRA in cat else {}
            cats.append(_Category(cid, name, sup if isinstance(sup, str) else str(sup), extra, where))
        return sorted(cats, key=lambda c: c.id)

    def images(self, value: list) -> dict[int, tuple[str, tuple[int, int], int]]:
        out: dict[int, tuple[str, tuple[int, int], int]] = {}
        for j, im in enumerate(value):
            try:
                self.image_entry(j, im, out)
            except ParseError as err:
                self.refuse(err, "image", "the image with its annotations", im.get("file_name") if isinstance(im, dict)
                            and isinstance(im.get("file_name"), str) else None)
        return out

    def image_entry(self, j: int, im: Any, out: dict[int, tuple[str, tuple[int, int], int]]) -> None:
        """One entry of ``images`` into ``out``: id -> (file name, size, index)."""
        where = f"/images/{j}"
        im = self.obj(im, where)
        image_id = self.integer(self.get(im, "id", where), f"{where}/id")
        if image_id in out:
            raise self.error(f"{where}/id", f"the image id {image_id} is declared twice")
        name = self.get(im, "file_name", where)
        if not isinstance(name, str) or not name:
            raise self.error(f"{where}/file_name", f"expected a non-empty file name, got {_short(name)}")
        size = []
        for key in ("height", "width"):
            v = self.integer(self.get(im, key, where), f"{where}/{key}")
            side = current_limits().max_image_side
            if not 0 < v <= side:
                raise self.error(f"{where}/{key}", f"expected an image {key} from 1 to {side}, got {v}"
                                 + (f" ({hint('max_image_side')})" if v > side else ""))
            size.append(v)
        try:
            check_size_hw((size[0], size[1]))
        except ValueError as err:
            raise self.error(where, str(err)) from None
        out[image_id] = (name, (size[0], size[1]), j)

    # -- annotations -------------------------------------------------------------------------

    def shapes(self, anns: list[_Ann], size_hw: tuple[int, int], item: str) -> list[Shape]:
        taken = {g for a in anns if isinstance(g := a.extra.get("group"), int) and not isinstance(g, bool)}
        shapes: list[Shape] = []
        for a in anns:
            where = f"/annotations/{a.index}"
            try:
                try:
                    found = self.annotation(a, size_hw, item, taken)
                    for shape in found:
                        check_shape(shape)
                except ValueError as err:  # the model's own checks (x2 < x1, radii < 0, …), limits
                    if isinstance(err, ParseError):
                        raise
                    raise self.error(where, f"invalid annotation: {err}") from err
            except ParseError as err:
                self.refuse(err, "shape", "the annotation", item)
                continue
            if a.undeclared:
                for k in range(len(shapes), len(shapes) + len(found)):
                    self.notes.append(Note("undeclared-label", f"annotation {a.index}: category_id names no category",
                                           item=item, where=f"{self.src.rel} {where}", file=self.path, shape=k))
            shapes += found
        return shapes

    def common(self, a: _Ann) -> tuple[dict[str, Any], float | None]:
        """Shape fields from the annotation (label, attributes, …) and a CVAT box rotation."""
        where = f"/annotations/{a.index}"
        attrs_in = self.obj(a.data.get("attributes") or {}, f"{where}/attributes")
        attrs = {str(k): _attr_text(v) for k, v in attrs_in.items()}
        occluded = False
        if attrs_in.get("occluded") in (True, False, 0, 1, "true", "false"):
            occluded = attrs.pop("occluded") in ("true", "1")
        rotation = None
        if "rotation" in attrs_in and isinstance(attrs_in["rotation"], (int, float)) and not isinstance(attrs_in["rotation"], bool):
            rotation = self.num(attrs_in["rotation"], f"{where}/attributes/rotation")
            del attrs["rotation"]
        crowd = a.data.get("iscrowd", 0)
        if crowd not in (0, 1, True, False):
            raise self.error(f"{where}/iscrowd", f"expected 0 or 1, got {_short(crowd)}")
        if crowd:
            attrs["iscrowd"] = "1"
        if "score" in a.data:
            attrs["score"] = _attr_text(a.data["score"])
        fields: dict[str, Any] = {"label": a.label, "occluded": occluded, "attributes": attrs}
        x = a.extra
        for key, kind in (("z_order", int), ("group", int), ("source", str)):
            if key in x:
                v = x[key]
                if isinstance(v, bool) or not isinstance(v, kind):
                    raise self.error(f"{where}/{EXTRA}/{key}", f"expected {'a whole number' if kind is int else 'a string'}, got {_short(v)}")
                fields[key] = v
        return fields, rotation

    def annotation(self, a: _Ann, size_hw: tuple[int, int], item: str, taken: set[int]) -> list[Shape]:
        where = f"/annotations/{a.index}"
        fields, rotation = self.common(a)
        if rotation and not self.is_box(a):  # a rotation only turns a bbox; elsewhere it stays an attribute
            fields["attributes"]["rotation"] = _attr_text(a.data["attributes"]["rotation"])
        bbox = None
        if "bbox" in a.data:
            bbox = self.numbers(a.data["bbox"], f"{where}/bbox")
            if len(bbox) != 4:
                raise self.error(f"{where}/bbox", f"expected [x, y, width, height], got {len(bbox)} numbers")
            if bbox[2] < 0 or bbox[3] < 0:
                raise self.error(f"{where}/bbox", f"expected a width and height >= 0, got {bbox[2]:g} x {bbox[3]:g}")
        restored = self.restore(a, fields)
        if restored is not None:
            return [restored]
        seg = a.data.get("segmentation")
        if isinstance(seg, dict):
            shape = self.rle(seg, f"{where}/segmentation", size_hw, fields)
            if shape is None:
                self.notes.append(Note("empty-mask", "an RLE with no pixel set; skipped", item=item, where=f"{self.src.rel} {where}"))
                return []
            return [shape]
        parts = self.array(seg, f"{where}/segmentation") if seg is not None else []
        if all(isinstance(p, list) and not p for p in parts):  # [] and [[]]: no segmentation
            parts = []
        if parts:
            polys = [self.points(p, f"{where}/segmentation/{k}") for k, p in enumerate(parts)]
            if len(polys) > 1 and "group" not in fields:
                ann_id = a.data.get("id")
                good = isinstance(ann_id, int) and not isinstance(ann_id, bool) and ann_id > 0 and ann_id not in taken
                fields["group"] = ann_id if good else max(taken | {0}) + 1
                taken.add(fields["group"])
            return [Polygon(points_xy=p, **fields) for p in polys]
        if bbox is None:
            raise self.error(where, "expected a 'segmentation' or a 'bbox'")
        x, y, w, h = bbox.tolist()
        return [Box(xyxy=(x, y, x + w, y + h), rotation_deg=rotation or 0.0, **fields)]

    @staticmethod
    def is_box(a: _Ann) -> bool:
        seg = a.data.get("segmentation")
        no_seg = seg is None or (isinstance(seg, list) and all(isinstance(p, list) and not p for p in seg))
        return no_seg and "kind" not in a.extra

    def rle(self, seg: dict, where: str, size_hw: tuple[int, int], fields: dict) -> Mask | None:
        size = self.numbers(self.get(seg, "size", where), f"{where}/size")
        if len(size) != 2 or tuple(size.tolist()) != size_hw:
            raise self.error(f"{where}/size", f"expected the image size [{size_hw[0]}, {size_hw[1]}] (height, "
                             f"width), got {self.get(seg, 'size', where)!r}")
        counts = self.get(seg, "counts", where)
        if isinstance(counts, str):
            try:
                runs = rle_counts(counts)
            except ValueError as err:
                raise self.error(f"{where}/counts", f"not a pycocotools compressed RLE: {err}") from None
        else:
            runs = [self.integer(v, f"{where}/counts/{k}") for k, v in enumerate(self.array(counts, f"{where}/counts"))]
            if any(r < 0 for r in runs):
                raise self.error(f"{where}/counts", "expected run lengths >= 0, got a negative one")
        total = sum(runs)
        if total != size_hw[0] * size_hw[1]:
            raise self.error(f"{where}/counts", f"the runs sum to {total}, expected height * width = "
                             f"{size_hw[0]} * {size_hw[1]} = {size_hw[0] * size_hw[1]}")
        decoded = rle_crop(runs, size_hw)
        if decoded is None:
            return None
        bitmap, left, top = decoded
        return Mask(bitmap=bitmap, left=left, top=top, **fields)

    def restore(self, a: _Ann, fields: dict) -> Shape | None:
        """The shape defectlab wrote in the annotation's extra object, if it names one."""
        x = a.extra
        if "kind" not in x:
            return None
        where = f"/annotations/{a.index}/{EXTRA}"
        kind = x["kind"]
        if kind in ("polyline", "polygon"):
            pts = self.array(self.get(x, "points", where), f"{where}/points")
            xy = []
            for k, p in enumerate(pts):
                pair = self.numbers(p, f"{where}/points/{k}")
                if len(pair) != 2:
                    raise self.error(f"{where}/points/{k}", f"expected [x, y], got {len(pair)} numbers")
                xy.append(pair)
            cls = Polyline if kind == "polyline" else Polygon
            return cls(points_xy=np.array(xy).reshape(-1, 2), **fields)
        if kind == "ellipse":
            geo = {k: self.num(self.get(x, k, where), f"{where}/{k}") for k in ("cx", "cy", "rx", "ry", "rotation_deg")}
            return Ellipse(**geo, **fields)
        if kind == "box":
            xyxy = self.numbers(self.get(x, "xyxy", where), f"{where}/xyxy")
            if len(xyxy) != 4:
                raise self.error(f"{where}/xyxy", f"expected 4 numbers, got {len(xyxy)}")
            rot = self.num(self.get(x, "rotation_deg", where), f"{where}/rotation_deg")
            return Box(xyxy=tuple(xyxy.tolist()), rotation_deg=rot, **fields)
        raise self.error(f"{where}/kind", f"expected 'polyline', 'polygon', 'ellipse' or 'box', got {_short(kind)}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _short(value: Any, n: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _label_of(cat: _Category) -> Label:
    x = cat.extra
    color = x.get("color") if isinstance(x.get("color"), str) else None
    edge = x.get("edge") if x.get("edge") in ("inner", "outer") else None
    kind = x.get("type") if isinstance(x.get("type"), str) and x.get("type") else "any"
    try:
        return Label(cat.name, color=color, edge=edge, type=kind)
    except ValueError:
        return Label(cat.name)


def read_coco(path: str | Path, *, images: str | Path | None = None, lenient: bool = False) -> Dataset:
    """Read a COCO instances export (COCO, datumaro, CVAT "COCO 1.0", Roboflow "COCO JSON").

    Parameters
    ----------
    path : str or Path
        An instances ``.json`` file; a folder holding ``annotations/instances_<subset>.json``
        (one subset per file: ``train``, ``val``, …), Roboflow's ``<split>/_annotations.coco.json``
        (one subset per folder), or a single ``.json``; or such a folder as a ``.zip``.
    images : str or Path, optional
        A folder to look for image files in first (as ``<subset>/<file_name>``,
        ``<file_name>``, then the base name).
    lenient : bool
        Read past what the strict reader refuses (see :func:`defectlab.formats.read`): an
        annotation whose ``category_id`` names no category is kept under the label
        ``"category <id>"`` (note ``undeclared-label``); an annotation, image or category entry
        with a missing or wrong value is left out (``refused-shape``, ``refused-image``,
        ``refused-label``, each naming its JSON pointer).

    Returns
    -------
    Dataset
        Labels in category-id order (first file first); one item per image (``Item.id`` =
        image id, ``Item.subset`` from the file or folder name, None for ``default``);
        ``format="coco"``, ``source=str(path)``. See the module docstring for how each
        annotation becomes shapes.

    Raises
    ------
    ImageError
        ``images`` is given but is not a folder.
    ParseError
        Not JSON, not a COCO object (a list, no ``images``), a missing key, a non-numeric,
        non-finite or negative value, an unknown image or category id, a polygon of fewer
        than 3 points, an RLE whose size differs from its image's or whose runs do not sum
        to height × width; the message names the file and the JSON pointer.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "instances_train.json"
    >>> _ = f.write_text(json.dumps({
    ...     "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
    ...     "categories": [{"id": 1, "name": "cavity", "supercategory": ""}],
    ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
    ...                      "segmentation": [[1, 1, 5, 1, 5, 4]], "bbox": [1, 1, 4, 3], "area": 6}]}))
    >>> ds = read_coco(f)
    >>> ds[0].subset, ds[0].shapes[0].points_xy.tolist(), [n.code for n in ds.notes]
    ('train', [[1.0, 1.0], [5.0, 1.0], [5.0, 4.0]], ['missing-image'])
    """
    path = Path(path)
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    notes: list[Note] = []
    files = [_Reader(src, notes, lenient).read() for src in _sources(path, images_dir, notes)]

    used = set().union(*(f.used for f in files)) if files else set()
    parents = {c.supercategory for f in files for c in f.categories if c.supercategory and c.supercategory != c.name}
    labels: dict[str, Label] = {}
    dropped: set[str] = set()
    kept_supers: set[str] = set()
    for f in files:
        for cat in f.categories:
            if cat.name in parents and cat.name not in used:
                if cat.name not in dropped:
                    notes.append(Note("parent-category", f"category {cat.id} {cat.name!r} is the supercategory of "
                                      "other categories and no annotation uses it: not a class", where=f"{f.source.rel} {cat.where}"))
                dropped.add(cat.name)
                continue
            labels.setdefault(cat.name, _label_of(cat))
            if cat.supercategory not in ("", "none"):
                kept_supers.add(cat.supercategory)
    kept_supers -= dropped
    if kept_supers:
        notes.append(Note("ignored-field", f"category supercategories are not kept: {sorted(kept_supers)}"))
    items = [it for f in files for it in f.items]
    return Dataset(tuple(labels.values()), tuple(items), tuple(notes), source=str(path), format="coco")


def sniff_coco(path: str | Path) -> bool:
    """True when ``path`` looks like a COCO export (reads a few KiB of one file at most).

    A ``.json`` file that starts with ``{`` and names ``"images"`` or ``"categories"`` in
    its first 4 KiB; a folder with ``annotations/instances_*.json`` or Roboflow's
    ``<split>/_annotations.coco.json``; a zip holding either.
    """
    path = Path(path)
    try:
        if path.is_dir():
            names = _folder_names(path)
            if any(_INSTANCES.fullmatch(n) and n.count("/") <= 1 for n in names) or any(
                n.endswith(ROBOFLOW_FILE) for n in names
            ):
                return True
            top = [n for n in names if "/" not in n]
            if len(top) != 1:
                return False
            with open(path / top[0], "rb") as fh:
                return _sniff_bytes(fh.read(SNIFF_BYTES))
        if not path.is_file():
            return False
        if is_zip(path):
            with SafeZip(path) as zf:
                names = zf.names()
            return any(re.fullmatch(r"annotations/instances_.+\.json", n) or n.endswith("/" + ROBOFLOW_FILE) or n == ROBOFLOW_FILE for n in names)
        if path.suffix.lower() != ".json":
            return False
        with open(path, "rb") as fh:
            return _sniff_bytes(fh.read(SNIFF_BYTES))
    except (OSError, ParseError):
        return False


def _sniff_bytes(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"{") and b'"_via_' not in text and _SNIFF_KEYS.search(text) is not None
