"""COCO instances JSON (``instances_*.json``, Roboflow's ``_annotations.coco.json``), read and written.

Glossary of the format facts this module relies on
--------------------------------------------------
document        one JSON object: ``images``, ``annotations``, ``categories`` (+ ``info``,
                ``licenses``). A bare JSON list is a *results* file (detections), not a dataset.
image           ``{id, file_name, width, height, …}``; ``file_name`` may hold folders.
category        ``{id, name, supercategory}``; ids need not be contiguous. Ids should start at
                1: datumaro (CVAT's importer) reads ``category_id`` 0 as "no label".
annotation      ``{id, image_id, category_id, segmentation, area, bbox, iscrowd}``.
bbox            ``[x, y, width, height]`` in continuous pixel coordinates, (0, 0) the top-left
                corner of the top-left pixel (pycocotools: "bbox=[0 0 1 1] encloses first pixel").
segmentation    either a list of polygons ``[[x0, y0, x1, y1, …], …]`` — the parts of one
                object, **unioned** (a polygon cannot express a hole) — or an RLE
                ``{"size": [h, w], "counts": …}`` over the *whole image*, **column-major**
                (Fortran order), runs alternating and starting with background; ``counts`` is a
                list (uncompressed) or a string (pycocotools' compressed form: 6 bits per
                character from ``'0'``, LEB128-like, each count from the third on stored as
                the difference to the count two before). Empty (``[]``): the object is its bbox.
iscrowd         0 or 1; usually 1 goes with RLE, but not always. torchvision's reference
                training ignores ``iscrowd: 1`` objects.
area            the pixel area of the object (some exporters write the box area instead).
extensions      CVAT and datumaro add ``"attributes": {"occluded": false, "rotation": 0.0, …}``
                to annotations; CVAT keeps a rotated box's angle (degrees, clockwise on screen)
                in ``attributes.rotation`` with the *unrotated* box in ``bbox``.
Roboflow        ``<split>/_annotations.coco.json`` with the images beside it (splits
                ``train``, ``valid``, ``test``); often a first category (id 0, named after the
                project, supercategory ``"none"``) that is the supercategory of every class
                and owns no annotation.
pycocotools     (checked with 2.0.11) fills polygons with the *even-odd* rule (a pentagram's
                inner star is empty; ours is non-zero winding); sends a polygon of exactly 4
                numbers down its box path (``frBbox``, which now raises ``TypeError`` on a
                list); needs a Fortran-ordered uint8 array in ``encode``; refuses counts that
                sum to more than ``h * w`` but decodes counts that sum to less into
                uninitialised memory — so this module checks every RLE and decodes it itself.

Layouts read
------------
* ``annotations/instances_<subset>.json`` + ``images/<subset>/…`` (COCO, datumaro, CVAT);
  ``instances_default.json`` is the subset-less file (``Item.subset`` None).
* ``<split>/_annotations.coco.json`` + images beside it (Roboflow): subsets from the folders.
* any single ``.json`` file, or a folder holding exactly one; the same in a ``.zip``.

Images are looked up by ``file_name`` in the ``images=`` folder first, then under the export
root (the folder above ``annotations/``, else the JSON's folder) as ``images/<subset>/``,
``images/``, ``<subset>/`` and the root itself.

What the reader does (each thing skipped is a :class:`~defectlab.model.Note`)
---------------------------------------------------------------------------
* polygons → one :class:`Polygon` per part; the parts of one annotation share a ``group``
  (the annotation id when it is free, else a new one), so they stay one object;
* RLE → a :class:`Mask` cropped to its pixels (``left``/``top`` = first column/row set);
  an empty one is skipped (``empty-mask``);
* no segmentation → a :class:`Box` from ``bbox`` (rotated by a CVAT ``rotation`` attribute);
* ``iscrowd: 1`` → attribute ``"iscrowd": "1"``; ``attributes`` → shape attributes as
  strings (``occluded`` → :attr:`Shape.occluded`); ``score`` → attribute ``"score"``;
* the annotation ``id`` is *not* kept (writers renumber); errors and notes name the
  annotation by JSON pointer (``/annotations/7``);
* categories that are another category's supercategory and that no annotation uses
  (Roboflow's parent) are dropped (``parent-category``); labels follow category ids.

What the writer adds: a ``"defectlab"`` object on an annotation when COCO cannot hold the
shape exactly — ``{"kind": "polyline", "points": […], "line_width": 3.0}``, ``{"kind":
"ellipse", "cx", "cy", "rx", "ry", "rotation_deg"}``, ``{"kind": "box", "xyxy": […],
"rotation_deg"}``, ``{"kind": "polygon", "points": […]}`` (a self-crossing polygon written
as RLE) — and ``group``, ``z_order``, ``source`` when not the defaults. Other COCO tools
ignore unknown keys and use the segmentation; :func:`read_coco` restores the shape from it.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.model import Dataset, Ellipse, Item, Label, Polyline
>>> ds = Dataset((Label("cavity"), Label("line")), (Item("a.png", (64, 64), (
...     Ellipse(label="cavity", cx=20.5, cy=30, rx=6, ry=4, rotation_deg=30),
...     Polyline(label="line", points_xy=[(5, 5), (40, 12.5)]))),))
>>> out = pathlib.Path(tempfile.mkdtemp()) / "coco"
>>> report = write_coco(ds, out, copy_images=False)
>>> sorted(p.name for p in (out / "annotations").iterdir()), report.n_instances
(['instances_default.json'], 2)
>>> back = read_coco(out)
>>> back[0].shapes == ds[0].shapes, [lab.name for lab in back.labels]
(True, ['cavity', 'line'])
"""

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

from .._output import output_dir
from ..errors import DatasetError, ImageError, ParseError
from ..limits import DEFAULTS, check_shape, check_size_hw, hint
from ..limits import current as current_limits
from ..model import Box, Dataset, Ellipse, Item, Label, Mask, Note, Points, Polygon, Polyline, Shape, Tag
from ..raster import DEFAULT_LINE_WIDTH, rasterize
from ._archive import SafeZip, is_zip
from ._training import WriteReport, check_items, copy_image, input_paths
from ._images import ImageFinder
from ._json import load_json, to_float
from ._text import read_file

__all__ = ["read_coco", "write_coco", "sniff_coco", "rle_counts"]

#: Roboflow's file name for a split's annotations.
ROBOFLOW_FILE = "_annotations.coco.json"
#: The key of defectlab's own data on annotations and categories.
EXTRA = "defectlab"
#: The default largest image side (px); the limit in force is
#: :attr:`defectlab.limits.Limits.max_image_side` (with ``max_image_pixels``).
MAX_SIDE = DEFAULTS.max_image_side
#: The subset name of the file that holds items without a subset.
DEFAULT_SUBSET = "default"

_INSTANCES = re.compile(r"(?:.*/)?instances_(.+)\.json")
_KNOWN_ANN_KEYS = {
    "id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "attributes",
    "score", EXTRA,
}
_SNIFF_BYTES = 4096
_SNIFF_KEYS = re.compile(rb'"(images|categories)"\s*:')  # "annotations" is in Labelbox rows too


# ---------------------------------------------------------------------------------------------
# RLE
# ---------------------------------------------------------------------------------------------


def rle_counts(counts: str) -> list[int]:
    """The run lengths of pycocotools' compressed RLE string (no check of their sum).

    Raises ValueError on a character outside ``'0'..'o'``, a string that ends inside a
    number, or a negative run.

    Examples
    --------
    >>> rle_counts("0d0n0")   # pycocotools.mask.encode of a 10 x 5 mask, first 2 columns set
    [0, 20, 30]
    """
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("the string ends inside a number")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"unexpected character {counts[p]!r} at {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        if x < 0:
            raise ValueError(f"a negative run ({x}) at character {p}")
        out.append(x)
    return out


def _rle_mask(counts: list[int], size_hw: tuple[int, int]) -> tuple[np.ndarray, int, int] | None:
    """Decode checked column-major runs to ``(bitmap, left, top)`` cropped to the set pixels.

    Only the columns the object spans are allocated, never the whole image.
    """
    h, _ = size_hw
    runs = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    fg = np.flatnonzero((np.arange(len(runs)) % 2 == 1) & (runs > 0))
    if fg.size == 0:
        return None
    s, e = starts[fg], ends[fg]
    c0, c1 = int(s.min()) // h, (int(e.max()) - 1) // h
    base, n = c0 * h, (c1 - c0 + 1) * h
    delta = np.zeros(n + 1, dtype=np.int8)
    delta[s - base] = 1  # set runs are disjoint and non-empty: starts differ, ends differ,
    delta[e - base] -= 1  # and an end meets a start only across an empty background run
    full = np.cumsum(delta[:-1], dtype=np.int8).astype(bool).reshape(c1 - c0 + 1, h).T  # (h, columns)
    rows = np.flatnonzero(full.any(axis=1))
    r0, r1 = int(rows[0]), int(rows[-1])
    return full[r0 : r1 + 1], c0, r0


def _encode_rle(crop_bitmap: np.ndarray, x0: int, y0: int, size_hw: tuple[int, int]) -> dict:
    """pycocotools' compressed RLE of one instance, over the whole image."""
    from pycocotools import mask as mask_utils

    full = np.zeros(size_hw, dtype=np.uint8, order="F")
    h, w = crop_bitmap.shape
    full[y0 : y0 + h, x0 : x0 + w] = crop_bitmap
    rle = mask_utils.encode(full)
    return {"size": [int(size_hw[0]), int(size_hw[1])], "counts": rle["counts"].decode("ascii")}


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
        raise ParseError(where, f"expected one COCO annotation file, found several JSON files: {sorted(found)[:10]}")
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

    def __init__(self, source: _Source, notes: list[Note]) -> None:
        self.src = source
        self.path = source.display
        self.notes = notes

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
            where = f"/annotations/{i}"
            ann = self.obj(ann, where)
            image_id = self.integer(self.get(ann, "image_id", where), f"{where}/image_id")
            if image_id not in anns:
                raise self.error(f"{where}/image_id", f"no image with id {image_id}")
            cat_id = self.integer(self.get(ann, "category_id", where), f"{where}/category_id")
            if cat_id not in by_id:
                raise self.error(f"{where}/category_id", f"unknown category id {cat_id}; the categories are {sorted(by_id)}")
            out.used.add(by_id[cat_id].name)
            unknown.update(k for k in ann if k not in _KNOWN_ANN_KEYS)
            extra = self.obj(ann[EXTRA], f"{where}/{EXTRA}") if EXTRA in ann else {}
            anns[image_id].append(_Ann(i, by_id[cat_id].name, ann, extra))
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

    def categories(self, value: Any) -> list[_Category]:
        cats: list[_Category] = []
        ids: set[int] = set()
        names: set[str] = set()
        for i, cat in enumerate(self.array(value, "/categories")):
            where = f"/categories/{i}"
            cat = self.obj(cat, where)
            cid = self.integer(self.get(cat, "id", where), f"{where}/id")
            name = self.get(cat, "name", where)
            if not isinstance(name, str) or not name:
                raise self.error(f"{where}/name", f"expected a non-empty name, got {_short(name)}")
            if cid in ids:
                raise self.error(f"{where}/id", f"the category id {cid} is declared twice")
            if name in names:
                raise self.error(f"{where}/name", f"the category name {name!r} is declared twice")
            ids.add(cid)
            names.add(name)
            sup = cat.get("supercategory") or ""
            extra = self.obj(cat[EXTRA], f"{where}/{EXTRA}") if EXTRA in cat else {}
            cats.append(_Category(cid, name, sup if isinstance(sup, str) else str(sup), extra, where))
        return sorted(cats, key=lambda c: c.id)

    def images(self, value: list) -> dict[int, tuple[str, tuple[int, int], int]]:
        out: dict[int, tuple[str, tuple[int, int], int]] = {}
        for j, im in enumerate(value):
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
        return out

    # -- annotations -------------------------------------------------------------------------

    def shapes(self, anns: list[_Ann], size_hw: tuple[int, int], item: str) -> list[Shape]:
        taken = {g for a in anns if isinstance(g := a.extra.get("group"), int) and not isinstance(g, bool)}
        shapes: list[Shape] = []
        for a in anns:
            where = f"/annotations/{a.index}"
            try:
                found = self.annotation(a, size_hw, item, taken)
                for shape in found:
                    check_shape(shape)
                shapes += found
            except ValueError as err:  # the model's own checks (x2 < x1, radii < 0, …), limits
                if isinstance(err, ParseError):
                    raise
                raise self.error(where, f"invalid annotation: {err}") from err
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
        decoded = _rle_mask(runs, size_hw)
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


def read_coco(path: str | Path, *, images: str | Path | None = None) -> Dataset:
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
    files = [_Reader(src, notes).read() for src in _sources(path, images_dir, notes)]

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
                return _sniff_bytes(fh.read(_SNIFF_BYTES))
        if not path.is_file():
            return False
        if is_zip(path):
            with SafeZip(path) as zf:
                names = zf.names()
            return any(re.fullmatch(r"annotations/instances_.+\.json", n) or n.endswith("/" + ROBOFLOW_FILE) or n == ROBOFLOW_FILE for n in names)
        if path.suffix.lower() != ".json":
            return False
        with open(path, "rb") as fh:
            return _sniff_bytes(fh.read(_SNIFF_BYTES))
    except (OSError, ParseError):
        return False


def _sniff_bytes(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"{") and b'"_via_' not in text and _SNIFF_KEYS.search(text) is not None


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


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
    from ..raster.contours import shape_polygons

    extra: dict[str, Any] = {}
    if isinstance(shape, Polyline):
        extra = {"kind": "polyline", "points": shape.points_xy.tolist(), "line_width": float(line_width)}
    elif isinstance(shape, Ellipse):
        extra = {"kind": "ellipse", "cx": shape.cx, "cy": shape.cy, "rx": shape.rx, "ry": shape.ry,
                 "rotation_deg": shape.rotation_deg}
    elif isinstance(shape, Box):
        extra = {"kind": "box", "xyxy": list(shape.xyxy), "rotation_deg": shape.rotation_deg}
    if isinstance(shape, Mask):
        return _encode_rle(crop.bitmap, crop.x0, crop.y0, size_hw), extra
    if isinstance(shape, Polygon) and not _is_simple(shape.points_xy):
        # pycocotools fills even-odd, we fill non-zero: only the pixels say the same to both
        extra = {"kind": "polygon", "points": shape.points_xy.tolist()}
        return _encode_rle(crop.bitmap, crop.x0, crop.y0, size_hw), extra
    rings, has_holes = shape_polygons(shape, size_hw, line_width=line_width)
    rings = [r for r in rings if len(r) >= 3]
    if has_holes or not rings:
        return _encode_rle(crop.bitmap, crop.x0, crop.y0, size_hw), extra
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
