"""Label mask images in (class-index, binary, instance-id; CVAT "Segmentation mask 1.1"),
instance-id TIFFs out.

Glossary of the format facts this module relies on
--------------------------------------------------
class image     (H, W) integer image, one class index per pixel, 0 = background: what U-Net
                training uses (defectlab's ``unet`` writer: ``masks/<key>.png`` uint8 +
                ``classes.json``). Objects are its connected regions of one value.
binary image    (H, W) image of 0 and 255 (or 0/1, or bool): one class, foreground vs. not.
instance image  (H, W) integer image, 0 = background, every other value one object (napari
                Labels layers, cellpose ``*_cp_masks.png`` / ``*_masks.tif``, StarDist
                ``masks/*.tif``, defectlab's :func:`write_instance_tiffs`); usually uint16 or
                int32, stored as 16-bit PNG or TIFF. An id may have several disjoint parts.
classes.json    defectlab's class table: ``{"0": {"name": "background", ...}, "1": {"name",
                "color": "#rrggbb", "edge"}, ...}`` (plain ``{"1": "cavity"}`` is read too).
instances.csv   defectlab's per-instance class table beside instance images:
                ``image,instance_id,class_id,label`` (``image`` = the key of ``labels/<key>.tif``).
CVAT "Segmentation mask 1.1" (CVAT's docs, ``format-smask``; CVAT's exporter runs datumaro's
``voc_segmentation`` converter with ``apply_colormap=True``):

- ``labelmap.txt``: one label per line, ``name:r,g,b:parts:actions`` (parts and actions
  comma lists, usually empty: ``cavity:250,50,83::``); empty lines and lines starting with
  ``#`` are skipped. Optional: without it the 21 Pascal VOC labels are meant. CVAT writes its
  task's labels in order with their colors, preceded by ``background:0,0,0::`` unless the
  task has a label named ``background``. The line index (from 0) is the class index of
  1-channel masks.
- ``SegmentationClass/<id>.png``: RGB, each pixel the color of its label. CVAT's docs: the
  background is a label named ``background`` (any case, any color), any label colored
  black, or else an implicit black background.
- ``SegmentationObject/<id>.png``: RGB, instance ``k`` (1, 2, ... in ascending z-order)
  painted with color ``k`` of the Pascal VOC colormap (:func:`voc_colormap`: 1 = (128, 0,
  0), 2 = (0, 128, 0), 3 = (128, 128, 0), ...), 0 = black = none. Polygons, boxes and
  ellipses are exported as masks; a group is one instance (labelled as its largest
  object). Color 255 = (224, 224, 192) is
  VOC's "void" (object borders in real VOC data): not an object.
- Masks "can have either 1 or 3 channels": a 1-channel mask holds indices directly.
- ``ImageSets/Segmentation/<subset>.txt``: item ids (image names without extension), one a
  line; CVAT writes ``default.txt``. Ids of images without annotations are listed too, but
  have no mask files.
- ``JPEGImages/<id>.<ext>``: the images, only when exported with "save images".

What the reader does with what it does not keep (each is a :class:`~defectlab.model.Note`):
``mask-kind`` (how the images were read), ``missing-image``, ``skipped-file`` (a file that is
not a PNG/TIFF, e.g. ``notes.txt``; a PNG/TIFF that cannot be decoded is a ParseError
instead), ``ignored-folder``, ``no-labelmap``, ``void-pixels``, ``mixed-class-instance``,
``unclassified-instance``, ``no-mask`` (a listed item with neither mask nor image),
``unlisted-mask``.

Limitation of semantic masks: two touching defects of one class are one region in a class
image, so they are read as **one** object; only instance images keep them apart.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from PIL import Image
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> m = np.zeros((8, 10), np.uint8); m[1:3, 1:4] = 1; m[5:7, 6:9] = 2
>>> Image.fromarray(m).save(folder / "a.png")
>>> ds = read_masks(folder, classes={1: "cavity", 2: "loop"})
>>> [(s.label, s.left, s.top, s.bitmap.shape) for s in ds[0].shapes]
[('cavity', 1, 1, (2, 3)), ('loop', 6, 5, (2, 3))]
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, Mapping

import numpy as np

from .._output import output_dir
from ..errors import DatasetError, ImageError, ParseError
from ..imaging.io import image_size_hw
from ..limits import check_size_hw
from ..model import Dataset, ImageSource, Item, Label, Mask, Note
from ..raster import DEFAULT_LINE_WIDTH, instance_labels, instances, paint_order
from ._archive import SafeZip, is_zip
from ._json import load_json
from ._text import decode_text, read_file
from ._training import WriteReport, check_items, copy_image, write_classes, input_paths

__all__ = ["read_masks", "sniff_masks", "write_instance_tiffs", "voc_colormap", "MASK_SUFFIXES"]

#: Suffixes of label image files (any case).
MASK_SUFFIXES = (".png", ".tif", ".tiff")
#: Suffixes of image files looked up for a mask, in order of preference.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: Name endings of mask files beside their images (cellpose ``_cp_masks``, ``_masks``, ...).
MASK_TAILS = ("_cp_masks", "_masks", "_mask", "_labels", "_label")
#: VOC's void color (index 255 of the colormap), used for object borders in real VOC data.
VOID_RGB = (224, 224, 192)
#: The Pascal VOC labels assumed when a CVAT export has no ``labelmap.txt``.
VOC_LABELS = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

Kind = Literal["auto", "class", "instance", "binary"]
_KINDS = ("auto", "class", "instance", "binary")
_CVAT_DIRS = ("SegmentationClass/", "SegmentationObject/")
_INSTANCES_CSV_COLUMNS = ("image", "instance_id", "class_id", "label")
_KNOWN_DIRS = {"SegmentationClass", "SegmentationObject", "ImageSets", "JPEGImages", "images", "masks", "labels"}


def voc_colormap(n: int = 256) -> np.ndarray:
    """The Pascal VOC colormap: (n, 3) uint8, row ``k`` the color of index ``k``.

    The bits of ``k`` are spread over the channels from the most significant bit down
    (bit 0 → red, bit 1 → green, bit 2 → blue, then the next three bits one place lower).

    Examples
    --------
    >>> voc_colormap(4).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    >>> tuple(voc_colormap()[255].tolist())
    (224, 224, 192)
    """
    idx = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for shift in range(7, -1, -1):
        for c in range(3):
            cmap[:, c] |= ((idx >> c) & 1) << shift
        idx = idx >> 3
    return cmap.astype(np.uint8)


def _pack(rgb: tuple[int, int, int]) -> int:
    return (int(rgb[0]) << 16) | (int(rgb[1]) << 8) | int(rgb[2])


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# ---------------------------------------------------------------------------------------------
# The files of an export: a folder or a zip, by relative POSIX path
# ---------------------------------------------------------------------------------------------


class _Tree:
    """The files under ``root`` (a folder or a zip archive), by relative POSIX path."""

    def __init__(self, root: Path, *, shallow: bool = False) -> None:
        self.root = root
        self.zip: SafeZip | None = None
        self.prefix = ""
        self.files: list[str] = []
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                rel_dir = Path(dirpath).relative_to(root).as_posix()
                if shallow and rel_dir == ".":  # one mask file: its folder, images/ and JPEGImages/
                    dirnames[:] = [d for d in ("images", "JPEGImages") if d in dirnames]
                else:
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        self.files.append(name if rel_dir == "." else f"{rel_dir}/{name}")
        else:
            self.zip = SafeZip(root)
            names = self.zip.names()
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) == 1 and all("/" in n for n in names) and not tops & _KNOWN_DIRS:
                self.prefix = f"{tops.pop()}/"  # one folder holds the whole export
            self.files = sorted(n[len(self.prefix):] for n in names if not n.endswith("/"))
        self._set = set(self.files)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def __contains__(self, rel: str) -> bool:
        return rel in self._set

    def display(self, rel: str) -> str:
        return f"{self.root}!{self.prefix}{rel}" if self.zip else str(self.root / rel)

    def source(self, rel: str) -> ImageSource:
        return ImageSource(self.root, self.prefix + rel) if self.zip else ImageSource(self.root / rel)

    def read_bytes(self, rel: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(self.prefix + rel)
        return read_file(self.root / rel, self.display(rel))

    def under(self, folder: str) -> list[str]:
        """Files under ``folder/`` (relative to it), in sorted order."""
        return [f[len(folder):] for f in self.files if f.startswith(folder)]

    def has_dir(self, folder: str) -> bool:
        return any(f.startswith(folder) for f in self.files)


def _is_mask_name(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in MASK_SUFFIXES


def _is_image_name(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES


def _stem(rel: str) -> str:
    p = PurePosixPath(rel)
    return str(p.with_suffix("")) if p.suffix else str(p)


def _strip_tail(stem: str) -> str:
    for tail in MASK_TAILS:
        if stem.endswith(tail) and len(stem) > len(tail):
            return stem[: -len(tail)]
    return stem


# ---------------------------------------------------------------------------------------------
# Decoding one label image
# ---------------------------------------------------------------------------------------------


def _decode(data: bytes, suffix: str, display: str, *, palette_as_rgb: bool) -> np.ndarray:
    """(H, W) integer/bool labels, or (H, W, 3) uint8 colors for a color image.

    ``palette_as_rgb``: a palette PNG gives its colors (CVAT) instead of its indices.
    """
    try:
        if suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(io.BytesIO(data)) as tf:
                if not tf.pages:
                    raise ValueError("no image in the file")
                shape = tf.pages[0].shape
                if len(shape) >= 2:  # refused from the header, before decoding: its 2 largest sides
                    _check_decoded_size(tuple(sorted(shape)[-2:]), display)
                arr = tf.asarray()
        else:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                _check_decoded_size(im.size[::-1], display)
                mode = im.mode
                if mode == "P":
                    im = im.convert("RGB") if palette_as_rgb else im
                elif mode in ("RGBA", "LA", "PA"):
                    im = im.convert("RGB" if mode != "LA" else "L")
                elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    raise ParseError(display, f"expected a label image, got a {mode} color image")
                arr = np.asarray(im)
                if mode.startswith("I;16"):
                    arr = arr.astype(np.uint16)
    except ParseError:
        raise
    except Exception as err:  # decoders raise many types; report them all the same way
        raise ParseError(display, f"not a readable label image ({type(err).__name__}: {err})") from err
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8:
        arr = arr[..., :3]
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            arr = arr[..., 0]  # gray stored as RGB
    elif arr.ndim != 2:
        raise ParseError(display, f"expected a 2-D label image, got an array of shape {arr.shape}")
    if arr.dtype.kind == "f":
        raise ParseError(
            display,
            f"expected integer labels, got a {arr.dtype} (floating point) image; save label "
            "images with an integer type (uint8, uint16, int32)",
        )
    if arr.dtype.kind not in "biu":
        raise ParseError(display, f"expected integer labels, got a {arr.dtype} image")
    if arr.dtype.kind == "i" and arr.ndim == 2 and arr.size and arr.min() < 0:
        r, c = np.argwhere(arr < 0)[0]
        raise ParseError(
            display, f"expected labels >= 0, got {int(arr[r, c])}", where=f"pixel x={c}, y={r}",
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ParseError(display, f"expected a non-empty label image, got shape {arr.shape}")
    return arr


def _check_decoded_size(size_hw: tuple[int, ...], display: str) -> None:
    try:
        check_size_hw((int(size_hw[0]), int(size_hw[1])), "a label image")
    except ValueError as err:
        raise ParseError(display, str(err)) from None


def _is_wide(source: ImageSource) -> bool:
    """True when the label image holds more than 8 bits per pixel (from its header only)."""
    try:
        fh = io.BytesIO(source.read_bytes()) if source.member else source.path
        if source.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(fh) as tf:
                return np.dtype(tf.pages[0].dtype).itemsize > 1
        from PIL import Image

        with Image.open(fh) as im:
            return im.mode.startswith("I")
    except Exception:  # the full decode reports it properly
        return False


def _colors_to_index(
    rgb: np.ndarray, table: Mapping[int, int], display: str, what: str, ambiguous: Mapping[int, str]
) -> np.ndarray:
    """(H, W, 3) colors → (H, W) int64 indices through ``table`` (packed rgb → index)."""
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    values, inverse = np.unique(packed, return_inverse=True)
    lut = np.empty(len(values), dtype=np.int64)
    for k, v in enumerate(values.tolist()):
        if v in ambiguous:
            r, c = np.argwhere(inverse.reshape(packed.shape) == k)[0]
            raise ParseError(display, ambiguous[v], where=f"pixel x={c}, y={r}")
        if v not in table:
            r, c = np.argwhere(inverse.reshape(packed.shape) == k)[0]
            color = (v >> 16, (v >> 8) & 255, v & 255)
            raise ParseError(
                display, f"the color {color} is not {what}", where=f"pixel x={c}, y={r}",
            )
        lut[k] = table[v]
    return lut[inverse].reshape(packed.shape)


# ---------------------------------------------------------------------------------------------
# Class tables: classes.json, labelmap.txt, classes=
# ---------------------------------------------------------------------------------------------


@dataclass
class _Classes:
    """Class value (as in the decoded class array) → label; colors of color-coded masks.

    Values: 0 is background, -1 is void (neither object nor background). In a CVAT export a
    label's value is its labelmap line index + 1 (so that 0 stays background).
    """

    names: dict[int, str] = field(default_factory=dict)
    colors: dict[int, str | None] = field(default_factory=dict)
    edges: dict[int, str | None] = field(default_factory=dict)
    by_color: dict[int, int] = field(default_factory=lambda: {0: 0})  # packed rgb -> value
    ambiguous: dict[int, str] = field(default_factory=dict)  # packed rgb -> why it cannot be read
    gray_lut: np.ndarray | None = None  # CVAT 1-channel masks: labelmap line index -> value
    used: set[int] = field(default_factory=set)
    extra: dict[str, None] = field(default_factory=dict)
    object_used: bool = False
    object_name: str = "object"

    def name(self, value: int) -> str:
        self.used.add(value)
        return self.names.get(value) or f"class_{value}"

    def labels(self, source: str) -> tuple[Label, ...]:
        out: dict[str, Label] = {}
        for value in sorted(set(self.names) | self.used):
            if value <= 0:
                continue
            name = self.names.get(value) or f"class_{value}"
            if name in out:
                raise ParseError(source, f"two classes are called {name!r}; class names must be unique")
            try:
                edge = self.edges.get(value)
                out[name] = Label(name, color=self.colors.get(value), edge=edge)  # type: ignore[arg-type]
            except ValueError as err:
                raise ParseError(source, f"class {value}: {err}") from err
        for name in [*self.extra, *([self.object_name] if self.object_used else [])]:
            out.setdefault(name, Label(name))
        return tuple(out.values())


def _text(data: bytes, display: str) -> str:
    return decode_text(data, display)


def _read_classes_json(data: bytes, display: str, table: _Classes) -> None:
    """defectlab's ``classes.json``: ``{"1": {"name", "color", "edge"}}`` or ``{"1": "name"}``."""
    doc = load_json(data, display, expected="a classes.json of class index -> class")
    if not isinstance(doc, dict):
        raise ParseError(
            display, f"expected an object of class index -> class, got {type(doc).__name__}", where="/"
        )
    for key, value in doc.items():
        try:
            index = int(key)
        except ValueError:
            raise ParseError(
                display, f"expected a class index (whole number) as key, got {key!r}", where=f"/{key}"
            ) from None
        if index < 0:
            raise ParseError(display, f"expected a class index >= 0, got {index}", where=f"/{key}")
        if isinstance(value, str):
            name, color, edge = value, None, None
        elif isinstance(value, dict):
            name, color, edge = value.get("name"), value.get("color"), value.get("edge")
        else:
            raise ParseError(
                display, f"expected a name or an object with 'name', got {value!r}", where=f"/{key}"
            )
        if not isinstance(name, str) or not name:
            raise ParseError(display, f"expected a non-empty class name, got {name!r}", where=f"/{key}/name")
        if color is not None and not (isinstance(color, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", color)):
            raise ParseError(
                display, f"expected a color like '#61b21f', got {color!r}", where=f"/{key}/color"
            )
        if edge not in (None, "inner", "outer"):
            raise ParseError(
                display, f"expected edge 'inner', 'outer' or null, got {edge!r}", where=f"/{key}/edge"
            )
        if index == 0:
            continue  # background, whatever it is called
        table.names[index], table.colors[index], table.edges[index] = name, color, edge
        if color is not None and int(color[1:], 16) != 0:  # black stays background
            packed = int(color[1:], 16)
            if packed in table.by_color:
                prev = table.by_color[packed]
                table.ambiguous[packed] = f"classes {prev} and {index} share the color {color}"
            table.by_color[packed] = index


def _read_labelmap(data: bytes, display: str, table: _Classes) -> None:
    """CVAT's / VOC's ``labelmap.txt``: ``name:r,g,b:parts:actions`` per line."""
    entries: list[tuple[str, tuple[int, ...] | None]] = []
    for lineno, raw in enumerate(_text(data, display).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) > 4 or not fields[0]:
            raise ParseError(display, f"expected 'name:r,g,b:parts:actions', got {line!r}", line=lineno)
        color = None
        if len(fields) > 1 and fields[1].strip():
            try:
                color = tuple(int(p) for p in fields[1].split(","))
            except ValueError:
                color = ()
            if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise ParseError(
                    display, f"expected a color 'r,g,b' (three numbers 0..255) for label {fields[0]!r}, "
                    f"got {fields[1]!r}", line=lineno,
                )
        if any(name == fields[0] for name, _ in entries):
            raise ParseError(display, f"the label {fields[0]!r} is declared twice", line=lineno)
        entries.append((fields[0], color))
    _set_label_entries(table, entries)


def _set_label_entries(table: _Classes, entries: list[tuple[str, tuple[int, ...] | None]]) -> None:
    """Labelmap entries → values (line index + 1); 'background' (any case) and black → 0."""
    if not any(c is not None for _, c in entries):  # datumaro: no colors at all -> VOC colormap
        cmap = voc_colormap(max(len(entries), 1)).tolist()
        entries = [(n, tuple(cmap[i])) for i, (n, _) in enumerate(entries)]
    gray = []
    for line, (name, color) in enumerate(entries):
        value = 0 if name.lower() == "background" or color == (0, 0, 0) else line + 1
        gray.append(value)
        if value:
            table.names[value] = name
            table.colors[value] = _hex(color) if color is not None else None  # type: ignore[arg-type]
        if color is not None:
            packed = _pack(color)  # type: ignore[arg-type]
            prev = table.by_color.get(packed)
            if prev is not None and prev != value and packed != 0:
                table.ambiguous[packed] = (
                    f"the color {color} belongs to two labels of labelmap.txt, "
                    f"{table.names.get(prev, 'background')!r} and {name!r}"
                )
            if packed != 0:
                table.by_color[packed] = value
    table.gray_lut = np.array(gray, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Objects from label arrays
# ---------------------------------------------------------------------------------------------


def _regions(ids: np.ndarray) -> list[tuple[int, int, int, np.ndarray]]:
    """(value, left, top, bitmap) of every non-zero value of ``ids``, by ascending value."""
    from scipy import ndimage

    top = int(ids.max()) if ids.size else 0
    if top <= max(4 * ids.size, 1 << 16):  # ids dense enough to index directly
        compact, values = ids.astype(np.intp, copy=False), None
    else:  # sparse, huge ids (e.g. hashes): number them 1..K first
        uniq, inverse = np.unique(ids, return_inverse=True)
        compact = inverse.reshape(ids.shape) + (0 if uniq[0] == 0 else 1)
        values = uniq if uniq[0] == 0 else np.concatenate([[0], uniq])
    out = []
    for k, sl in enumerate(ndimage.find_objects(compact), start=1):
        if sl is not None:
            value = k if values is None else int(values[k])
            out.append((value, sl[1].start, sl[0].start, compact[sl] == k))
    return out


def _components(classes: np.ndarray, connectivity: int) -> list[tuple[int, int, int, np.ndarray]]:
    """(class, left, top, bitmap) of every connected region of one non-zero class value."""
    from scipy import ndimage
    from skimage.measure import label as cc_label

    lab = cc_label(classes, background=0, connectivity=connectivity)
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is not None:
            bitmap = lab[sl] == k
            out.append((int(classes[sl][bitmap][0]), sl[1].start, sl[0].start, bitmap))
    return out


# ---------------------------------------------------------------------------------------------
# Finding images
# ---------------------------------------------------------------------------------------------


_Found = tuple[str, ImageSource]  # (name relative to the folder searched, the file)


class _ImageIndex:
    """Image files by stem in a few places, searched in order."""

    def __init__(self) -> None:
        self.places: list[tuple[str, dict[str, _Found], dict[str, list[_Found]]]] = []

    def add(self, where: str, files: list[tuple[str, ImageSource]]) -> None:
        by_stem: dict[str, tuple[str, ImageSource]] = {}
        by_base: dict[str, list[tuple[str, ImageSource]]] = {}
        rank = {s: i for i, s in enumerate(IMAGE_SUFFIXES)}
        for rel, src in sorted(files, key=lambda f: rank.get(PurePosixPath(f[0]).suffix.lower(), 99)):
            stem = _stem(rel)
            by_stem.setdefault(stem, (rel, src))
            by_base.setdefault(PurePosixPath(stem).name, []).append((rel, src))
        self.places.append((where, by_stem, by_base))

    def find(self, key: str) -> tuple[str, ImageSource] | None:
        for _, by_stem, by_base in self.places:
            if key in by_stem:
                return by_stem[key]
        base = PurePosixPath(key).name
        for _, _, by_base in self.places:
            hits = {_stem(rel) for rel, _ in by_base.get(base, [])}
            if len(hits) == 1:
                return by_base[base][0]
        return None

    def looked_in(self) -> str:
        return ", ".join(w for w, _, _ in self.places) or "nowhere"


def _user_images(folder: Path) -> list[tuple[str, ImageSource]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if _is_image_name(name):
                p = Path(dirpath) / name
                out.append((p.relative_to(folder).as_posix(), ImageSource(p)))
    return out


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One item to read: its key (relative stem) and its label images (paths in the tree)."""

    key: str
    instance: str | None = None
    klass: str | None = None
    subset: str | None = None
    mask_suffix: str = ".png"


class _Reader:
    """One read of one mask export; collects notes on the way."""

    def __init__(self, tree: _Tree, kind: str, connectivity: int) -> None:
        self.tree = tree
        self.kind = kind
        self.connectivity = connectivity
        self.table = _Classes()
        self.notes: list[Note] = []
        self.images = _ImageIndex()
        self.cvat = False
        self.per_instance: dict[tuple[str, int], tuple[int, str]] = {}
        self.counts: dict[str, int] = {}
        self._instance_colors: dict[int, int] | None = None

    def note(self, code: str, message: str, item: str | None = None, where: str | None = None) -> None:
        self.notes.append(Note(code, message, item=item, where=where))

    def apply_user_classes(self, classes: Mapping[int, str]) -> None:
        offset = 1 if self.cvat else 0  # CVAT: keyed by labelmap line index, like 1-channel masks
        for index, name in classes.items():
            if not isinstance(index, (int, np.integer)) or index < 0:
                raise ValueError(f"classes: expected class indices >= 0, got {index!r}")
            if not isinstance(name, str) or not name:
                raise ValueError(f"classes: expected a non-empty name for class {index}, got {name!r}")
            if index + offset > 0:
                self.table.names[int(index) + offset] = name
        named = [n for i, n in classes.items() if i + offset > 0]
        if len(named) == 1:
            self.table.object_name = named[0]

    def add_image_folder(self, where: str, folder: str) -> None:
        files = [(r, self.tree.source(folder + r)) for r in self.tree.under(folder) if _is_image_name(r)]
        self.images.add(where, files)

    # -- layouts -------------------------------------------------------------------------------

    def layout_cvat(self) -> list[_Entry]:
        if self.kind == "binary":
            raise ValueError(
                "kind='binary' does not apply to a CVAT Segmentation mask export (its masks are color-coded)"
            )
        self.cvat = True
        tree = self.tree
        if "labelmap.txt" in tree:
            _read_labelmap(tree.read_bytes("labelmap.txt"), tree.display("labelmap.txt"), self.table)
        else:
            cmap = voc_colormap(len(VOC_LABELS)).tolist()
            _set_label_entries(self.table, [(n, tuple(cmap[i])) for i, n in enumerate(VOC_LABELS)])
            self.note("no-labelmap", "no labelmap.txt: the 21 Pascal VOC labels and colors are assumed")
        masks: dict[str, dict[str, str]] = {}
        for folder, role in (("SegmentationClass/", "klass"), ("SegmentationObject/", "instance")):
            for rel in tree.under(folder):
                if _is_mask_name(rel):
                    masks.setdefault(_stem(rel), {})[role] = folder + rel
                else:
                    self.note("skipped-file", "not a PNG/TIFF label image", where=tree.display(folder + rel))
        listed: list[tuple[str, str | None]] = []
        lists = [r for r in tree.under("ImageSets/Segmentation/") if r.endswith(".txt") and "/" not in r]
        for rel in sorted(lists, key=lambda r: (r != "default.txt", r)):
            subset = rel[:-4]
            full = "ImageSets/Segmentation/" + rel
            for line in _text(tree.read_bytes(full), tree.display(full)).splitlines():
                if line.strip():
                    listed.append((line.strip(), None if subset == "default" else subset))
        self.add_image_folder("JPEGImages/", "JPEGImages/")
        self.add_image_folder("images/", "images/")
        entries: list[_Entry] = []
        for key, subset in listed:
            files = masks.get(key, {})
            entries.append(_Entry(key, files.get("instance"), files.get("klass"), subset))
        listed_keys = {k for k, _ in listed}
        for key, files in masks.items():
            if key not in listed_keys:
                if listed:
                    self.note("unlisted-mask", "not listed in ImageSets/Segmentation; read anyway", item=key)
                entries.append(_Entry(key, files.get("instance"), files.get("klass")))
        if self.kind == "class":
            for e in entries:
                e.instance = None
        return entries

    def read_side_files(self, folder: str) -> None:
        """``classes.json`` and ``instances.csv`` in ``folder`` of the tree, if there."""
        if folder + "classes.json" in self.tree:
            rel = folder + "classes.json"
            _read_classes_json(self.tree.read_bytes(rel), self.tree.display(rel), self.table)
        if folder + "instances.csv" in self.tree:
            rel = folder + "instances.csv"
            self.read_instances_csv(self.tree.read_bytes(rel), self.tree.display(rel))

    def layout_folders(self) -> list[_Entry]:
        tree = self.tree
        self.read_side_files("")
        inst_dir = "labels/" if tree.has_dir("labels/") else None
        class_dir = "masks/" if tree.has_dir("masks/") else None
        if inst_dir is None and self.kind in ("auto", "instance"):
            if self.kind == "instance" or self.any_wide(["masks/" + r for r in tree.under("masks/")]):
                inst_dir, class_dir = class_dir, None  # e.g. StarDist: masks/*.tif of instance ids
        if self.kind in ("class", "binary"):
            inst_dir, class_dir = None, class_dir or inst_dir
        entries: dict[str, _Entry] = {}
        for folder, role in ((inst_dir, "instance"), (class_dir, "klass")):
            if folder is None:
                continue
            for rel in tree.under(folder):
                if not _is_mask_name(rel):
                    self.note("skipped-file", "not a PNG/TIFF label image", where=tree.display(folder + rel))
                    continue
                e = entries.setdefault(_stem(rel), _Entry(_stem(rel), mask_suffix=PurePosixPath(rel).suffix))
                setattr(e, role, folder + rel)
        self.add_image_folder("images/", "images/")
        self.add_image_folder("JPEGImages/", "JPEGImages/")
        known = {"images", "JPEGImages", "labels", "masks", "classes.json", "instances.csv",
                 "images.npy", "masks.npy", "onehot.npy"}  # (the .npy: write_unet's stacks)
        for top in sorted({f.split("/", 1)[0] for f in tree.files} - known):
            self.note("skipped-file", "not part of a masks/ + labels/ layout; not read",
                      where=tree.display(top))
        return list(entries.values())

    def layout_flat(self, only: str | None = None) -> list[_Entry]:
        tree = self.tree
        top = [f for f in tree.files if "/" not in f]
        if only is None:
            self.read_side_files("")
            folders = sorted({f.split("/", 1)[0] for f in tree.files if "/" in f} - {"images", "JPEGImages"})
            for folder in folders:
                self.note("ignored-folder", "sub-folders of a folder of masks are not read",
                          where=tree.display(folder))
            candidates = [f for f in top if _is_mask_name(f)]
            tailed = [f for f in candidates if _strip_tail(_stem(f)) != _stem(f)]
            masks = tailed or candidates
        else:
            masks = [only]
        mask_set = set(masks)
        beside = [f for f in top if _is_image_name(f) and f not in mask_set]
        if only is None:
            for f in top:
                if not _is_image_name(f) and f not in mask_set and f not in ("classes.json", "instances.csv"):
                    self.note("skipped-file", "not a PNG/TIFF label image", where=tree.display(f))
        self.add_image_folder("images/", "images/")
        self.add_image_folder("JPEGImages/", "JPEGImages/")
        self.images.add("beside the masks", [(r, tree.source(r)) for r in beside])
        wide = self.kind == "instance" or (self.kind == "auto" and self.any_wide(masks))
        entries = []
        for rel in masks:
            e = _Entry(_strip_tail(_stem(rel)), mask_suffix=PurePosixPath(rel).suffix)
            if wide:
                e.instance = rel
            else:
                e.klass = rel
            entries.append(e)
        return entries

    def any_wide(self, rels: list[str]) -> bool:
        return any(_is_wide(self.tree.source(r)) for r in rels if _is_mask_name(r))

    def read_instances_csv(self, data: bytes, display: str) -> None:
        reader = csv.DictReader(io.StringIO(_text(data, display)))
        missing = [c for c in _INSTANCES_CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ParseError(
                display, f"expected the columns {','.join(_INSTANCES_CSV_COLUMNS)}; missing {missing}", line=1
            )
        for row in reader:
            try:
                iid, cid = int(row["instance_id"]), int(row["class_id"])
            except (TypeError, ValueError):
                raise ParseError(
                    display, f"expected whole numbers for instance_id and class_id, got "
                    f"{row['instance_id']!r}, {row['class_id']!r}", line=reader.line_num,
                ) from None
            if not row["label"]:
                raise ParseError(display, "expected a non-empty label", line=reader.line_num)
            self.per_instance[(row["image"], iid)] = (cid, row["label"])

    # -- one mask file -------------------------------------------------------------------------

    def labels_of(self, rel: str, role: str) -> np.ndarray:
        """The (H, W) int label array of one mask file: ids (instance) or class values (class)."""
        tree = self.tree
        display = tree.display(rel)
        arr = _decode(tree.read_bytes(rel), PurePosixPath(rel).suffix, display, palette_as_rgb=self.cvat)
        if arr.ndim == 2:
            if self.cvat and role == "klass":
                return self.cvat_gray(arr, display)
            return arr
        if self.cvat and role == "instance":
            if self._instance_colors is None:
                self._instance_colors = {_pack(c): k for k, c in enumerate(voc_colormap().tolist())}
                self._instance_colors[_pack(VOID_RGB)] = -1
            what = "a color of the VOC instance colormap"
            return _colors_to_index(arr, self._instance_colors, display, what, {})
        if self.cvat:
            table = {_pack(VOID_RGB): -1, **self.table.by_color}
            what = "the color of a label of labelmap.txt"
            return _colors_to_index(arr, table, display, what, self.table.ambiguous)
        if role == "klass" and len(self.table.by_color) > 1:
            what = "a class color of classes.json"
            return _colors_to_index(arr, self.table.by_color, display, what, self.table.ambiguous)
        raise ParseError(
            display, "expected a single-channel label image, got a color (RGB) image; color-coded "
            "class masks need a classes.json with colors (or labelmap.txt in a CVAT export)",
        )

    def cvat_gray(self, arr: np.ndarray, display: str) -> np.ndarray:
        lut = self.table.gray_lut
        assert lut is not None  # set by layout_cvat
        if arr.size and int(arr.max()) >= len(lut):
            r, c = np.argwhere(arr >= len(lut))[0]
            raise ParseError(
                display, f"the value {int(arr[r, c])} has no line in labelmap.txt, which has "
                f"{len(lut)} labels (values 0..{len(lut) - 1})", where=f"pixel x={c}, y={r}",
            )
        return lut[arr]

    def void(self, arr: np.ndarray, item: str, rel: str | None) -> np.ndarray:
        bad = arr < 0
        if bad.any():
            self.note("void-pixels", f"{int(bad.sum())} pixels of the VOC void color {VOID_RGB} are not part "
                      "of any object", item=item, where=self.tree.display(rel) if rel else None)
            arr = np.where(bad, 0, arr)
        return arr

    # -- one item ------------------------------------------------------------------------------

    def item(self, e: _Entry) -> Item | None:
        tree = self.tree
        inst = self.labels_of(e.instance, "instance") if e.instance else None
        klass = self.labels_of(e.klass, "klass") if e.klass else None
        if inst is not None and klass is not None and inst.shape != klass.shape:
            raise ParseError(
                tree.display(e.instance),  # type: ignore[arg-type]
                f"the instance mask is {inst.shape[1]}x{inst.shape[0]} (WxH) but the class mask "
                f"{tree.display(e.klass)} is {klass.shape[1]}x{klass.shape[0]}",  # type: ignore[arg-type]
            )
        image = self.images.find(e.key)
        name = image[0] if image else f"{e.key}{e.mask_suffix}"
        labels = inst if inst is not None else klass
        if labels is None:  # listed in ImageSets, but nothing was drawn on it
            if image is None:
                self.note("no-mask", "listed, but has neither a mask nor an image to give its size; "
                          "skipped", item=e.key)
                return None
            return Item(name, image_size_hw(image[1]), (), image[1], e.subset)
        size_hw = labels.shape[:2]
        if image is None:
            self.note("missing-image", f"image file not found in {self.images.looked_in()}", item=name)
        else:
            real_hw = image_size_hw(image[1])
            if real_hw != size_hw:
                raise ParseError(
                    tree.display(e.instance or e.klass),  # type: ignore[arg-type]
                    f"the mask is {size_hw[1]}x{size_hw[0]} (WxH) but its image {image[1]} is "
                    f"{real_hw[1]}x{real_hw[0]}",
                )
        shapes: list[Mask] = []
        if klass is not None:
            klass = self.void(klass, name, e.klass)
        if inst is not None:
            shapes = self.instance_shapes(self.void(inst, name, e.instance), klass, e.key, name)
        elif klass is not None:
            shapes = self.class_shapes(klass)
        return Item(name, size_hw, tuple(shapes), image[1] if image else None, e.subset)

    def class_shapes(self, klass: np.ndarray) -> list[Mask]:
        binary = self.kind == "binary" or klass.dtype == bool
        if not binary and self.kind == "auto" and not self.cvat:
            values = np.unique(klass)
            present = set(values.tolist())
            binary = 255 in present and present <= {0, 255} and 255 not in self.table.names
        kind = "binary" if binary else "class"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if binary:
            klass = (klass != 0).astype(np.uint8)
        return [
            Mask(label=self.table.name(c), bitmap=bm, left=x, top=y, source="file")
            for c, x, y, bm in _components(klass, self.connectivity)
        ]

    def instance_shapes(self, inst: np.ndarray, klass: np.ndarray | None, key: str, name: str) -> list[Mask]:
        self.counts["instance"] = self.counts.get("instance", 0) + 1
        return [
            Mask(label=self.instance_label(iid, x, y, bm, klass, key, name), bitmap=bm, left=x, top=y,
                 source="file")
            for iid, x, y, bm in _regions(inst)
        ]

    def instance_label(
        self, iid: int, x: int, y: int, bm: np.ndarray, klass: np.ndarray | None, key: str, name: str
    ) -> str:
        if klass is not None:
            h, w = bm.shape
            votes = klass[y : y + h, x : x + w][bm]
            values, counts = np.unique(votes[votes > 0], return_counts=True)
            if values.size:
                best = int(values[np.argmax(counts)])
                if values.size > 1:
                    parts = ", ".join(
                        f"{self.table.name(int(v))}: {int(c)} px" for v, c in zip(values, counts)
                    )
                    self.note("mixed-class-instance", f"instance {iid} covers several classes ({parts}); "
                              f"the majority {self.table.name(best)!r} is kept", item=name)
                return self.table.name(best)
            self.note("unclassified-instance", f"instance {iid} lies on background in the class mask; "
                      f"labelled {self.table.object_name!r}", item=name)
        elif (key, iid) in self.per_instance:
            cid, label = self.per_instance[(key, iid)]
            if self.table.names.setdefault(cid, label) == label:
                self.table.used.add(cid)
            else:
                self.table.extra[label] = None
            return label
        self.table.object_used = True
        return self.table.object_name

    def kind_note(self) -> None:
        what = {
            "class": "class-index images (a connected region of one class is one object)",
            "binary": "binary images (foreground = class 1)",
            "instance": "instance-id images (each value one object)",
        }
        for k, n in self.counts.items():
            hint = ""
            if k == "class" and self.kind == "auto":
                hint = "; pass kind='instance' if each value is one object"
            self.note("mask-kind", f"read {n} mask(s) as {what[k]}{hint}")


def read_masks(
    path: str | Path,
    *,
    images: str | Path | None = None,
    kind: Kind = "auto",
    classes: Mapping[int, str] | None = None,
    connectivity: int = 2,
) -> Dataset:
    """Read label mask images (PNG/TIFF) into a :class:`Dataset` of :class:`Mask` shapes.

    Parameters
    ----------
    path : str or Path
        One of, recognised in this order:

        - a CVAT "Segmentation mask 1.1" export, folder or ``.zip`` (``SegmentationClass/``,
          ``SegmentationObject/``, ``labelmap.txt``, ``ImageSets/Segmentation/*.txt``,
          ``JPEGImages/``);
        - a folder with ``labels/`` (instance images, e.g. :func:`write_instance_tiffs`
          output) and/or ``masks/`` (class images, e.g. ``write_unet`` output; or StarDist's
          16-bit instance TIFFs), with optional ``classes.json``, ``instances.csv``, ``images/``;
        - a folder of label images (its top level only). When some file names end in
          ``_cp_masks``, ``_masks``, ``_mask``, ``_labels`` or ``_label`` (cellpose), only those
          are masks and the other images beside them are their images;
        - a single label image file (``classes.json``, ``instances.csv`` and ``images/`` are
          also looked for one folder up, as in ``OUT/masks/a.png`` of a ``unet`` output).

        Files that are not PNG/TIFF are skipped with a ``skipped-file`` note; a PNG/TIFF that
        cannot be decoded is an error.
    images : str or Path, optional
        A folder searched first for the images, by the mask's stem (``sub/a`` → ``sub/a.png``,
        or ``a.*`` when unique). Then ``images/``, ``JPEGImages/`` and the mask's own folder.
    kind : {"auto", "class", "instance", "binary"}
        How to read the values. ``"auto"``: a CVAT export by its folders; ``labels/`` as
        instance images; otherwise images of more than 8 bits per pixel (uint16, int32) are
        instance images, 8-bit ones class images, and an 8-bit image of only 0 and 255 a
        binary one. A ``mask-kind`` note says what was decided. Palette PNGs give their
        indices (CVAT exports: their colors). ``"binary"``: any non-zero value is class 1.
    classes : mapping of int to str, optional
        Class index → name; overrides ``classes.json`` / ``labelmap.txt`` (for a CVAT export
        the index is the labelmap line, from 0). Unnamed classes are called ``class_1``,
        ``class_2``, ... With exactly one entry, instances that have no class image are given
        that name (else ``"object"``).
    connectivity : {1, 2}
        Neighbourhood of the connected regions of class images: 1 = 4-connected, 2 =
        8-connected (diagonal neighbours join).

    Returns
    -------
    Dataset
        One item per mask (size = the mask's size), in file (or ``ImageSets``) order; each
        object one :class:`Mask` cropped to its tight box (``left``/``top`` = its first
        column/row), ``source="file"``. Instance images: one Mask per id, ascending, its class
        from the matching class image (majority vote), else ``instances.csv``, else
        ``"object"``. Class images: one Mask per connected region of one class — touching
        defects of one class merge into one object (the limit of semantic masks). Labels:
        every declared class (background left out), then undeclared ones used, with colors.
        ``format="masks"``, ``source=str(path)``; ``notes`` say what was decided or skipped.

    Raises
    ------
    ParseError
        A label image cannot be decoded, is not 2-D, holds floats or negative values, has a
        color no label has, or differs in size from its image or its class mask (the
        message names both); a ``labelmap.txt`` line, ``classes.json`` or ``instances.csv``
        that does not parse (file and line / JSON pointer); an unsafe zip.
    ImageError
        ``images`` is not a folder, or an image file cannot be read.
    ValueError
        Bad ``kind``, ``connectivity`` or ``classes``.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> ids = np.zeros((6, 6), np.int32); ids[0:2, 0:2] = 7; ids[2:4, 2:4] = 9   # touching diagonally
    >>> tifffile.imwrite(folder / "a.tif", ids)
    >>> ds = read_masks(folder)
    >>> [(s.label, s.left, s.top, int(s.area())) for s in ds[0].shapes]
    [('object', 0, 0, 4), ('object', 2, 2, 4)]
    """
    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {_KINDS}, got {kind!r}")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity: expected 1 or 2, got {connectivity!r}")
    path = Path(path)
    if not path.exists():
        raise ParseError(path, "no such file or folder")
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    single = path.is_file() and not is_zip(path)
    if single and not _is_mask_name(path.name):
        raise ParseError(path, f"expected a label image ({', '.join(MASK_SUFFIXES)}), got {path.suffix!r}")
    tree = _Tree(path.parent, shallow=True) if single else _Tree(path)
    try:
        reader = _Reader(tree, kind, connectivity)
        if images_dir is not None:
            reader.images.add(str(images_dir), _user_images(images_dir))
        if single:
            _read_beside(reader, path)
            entries = reader.layout_flat(only=path.name)
        elif any(tree.has_dir(d) for d in _CVAT_DIRS):
            entries = reader.layout_cvat()
        elif tree.has_dir("labels/") or tree.has_dir("masks/"):
            entries = reader.layout_folders()
        else:
            entries = reader.layout_flat()
        reader.apply_user_classes(classes or {})
        items = [it for it in (reader.item(e) for e in entries) if it is not None]
        reader.kind_note()
        labels = reader.table.labels(str(path))
    finally:
        tree.close()
    return Dataset(labels, tuple(items), tuple(reader.notes), source=str(path), format="masks")


def _read_beside(reader: _Reader, path: Path) -> None:
    """For one mask file: the class tables and images of its folder, or of the folder above
    (``OUT/masks/a.png`` of a ``unet`` output: ``OUT/classes.json``, ``OUT/images/``)."""
    for folder in (path.parent, path.parent.parent):
        for name, read in (("classes.json", _read_classes_json), ("instances.csv", None)):
            f = folder / name
            if f.is_file():
                data = read_file(f)
                if read is not None:
                    read(data, str(f), reader.table)
                else:
                    reader.read_instances_csv(data, str(f))
        if any((folder / n).is_file() for n in ("classes.json", "instances.csv")):
            break
    for folder in (path.parent.parent / "images", path.parent.parent / "JPEGImages"):
        if folder.is_dir() and folder != path.parent:
            reader.images.add(str(folder), _user_images(folder))


def sniff_masks(path: str | Path) -> bool:
    """True when ``path`` looks like a mask export :func:`read_masks` reads without a hint.

    A folder (or zip) with ``SegmentationClass/`` or ``SegmentationObject/`` (CVAT
    Segmentation mask 1.1); a folder with ``classes.json`` and ``masks/`` or ``labels/``
    (defectlab's ``unet`` and instance-TIFF outputs). A bare folder of PNGs or a single
    PNG is not recognised (it may hold images): pass ``format="masks"``.
    """
    path = Path(path)
    try:
        if path.is_dir():
            if any((path / d.rstrip("/")).is_dir() for d in _CVAT_DIRS):
                return True
            folders = (path / "masks").is_dir() or (path / "labels").is_dir()
            return (path / "classes.json").is_file() and folders
        if path.is_file() and is_zip(path):
            with SafeZip(path) as zf:
                dirs = ("/SegmentationClass/", "/SegmentationObject/")
                return any(d in f"/{n}" for n in zf.names() for d in dirs)
    except (OSError, ParseError):
        return False
    return False


# ---------------------------------------------------------------------------------------------
# Writing instance TIFFs
# ---------------------------------------------------------------------------------------------


def write_instance_tiffs(
    dataset: Dataset,
    out: str | Path,
    *,
    overwrite: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    visible_only: bool = True,
) -> WriteReport:
    """Write one int32 instance-id TIFF per image, for napari, cellpose and StarDist.

    Layout written::

        OUT/labels/<key>.tif    (H, W) int32, 0 = background, ids 1..N (zlib-compressed)
        OUT/classes.json        class index -> {name, color, edge}
        OUT/instances.csv       image,instance_id,class_id,label — the class of every id
        OUT/images/<key>.<ext>  the image files, copied (where found)

    Parameters
    ----------
    dataset : Dataset
        Items; their area shapes and polylines are instances (points and tags are not).
    out : path
        Output folder; created atomically (see :func:`defectlab._output.output_dir`).
    overwrite : bool
        Replace an existing output folder.
    line_width : float
        Width in px of polyline masks (dislocation lines).
    visible_only : bool
        A label image holds one id per pixel: where instances overlap, the pixel belongs to
        the topmost (painted by ``z_order``, ties in file order, as
        :func:`defectlab.raster.instance_labels` does), and each overlap is noted. With
        ``False``, an overlap is refused instead (DatasetError), so no instance loses pixels.

    Returns
    -------
    WriteReport
        ``n_instances`` ids written; notes for degenerate shapes (no pixel), instances
        partly or fully covered, and images not found (not copied).

    Notes
    -----
    Ids are 1..N in paint order (the topmost instance has the largest id); an instance
    fully covered by others has no id. :func:`read_masks` reads the folder back, with the
    classes from ``instances.csv``.

    Examples
    --------
    >>> import tempfile, pathlib, tifffile
    >>> from defectlab.model import Dataset, Ellipse, Item, Label
    >>> ds = Dataset((Label("cavity"),), (Item("a.png", (16, 16), (
    ...     Ellipse(label="cavity", cx=5, cy=5, rx=3, ry=3),
    ...     Ellipse(label="cavity", cx=11, cy=11, rx=3, ry=3))),))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "tiffs"
    >>> write_instance_tiffs(ds, out).n_instances
    2
    >>> lab = tifffile.imread(out / "labels" / "a.tif"); lab.dtype, sorted(set(lab.ravel().tolist()))
    (dtype('int32'), [0, 1, 2])
    """
    import tifffile

    check_items(dataset, need_images=False, same_size=False)
    with_images = dataset.with_items([it for it in dataset.items if it.image is not None])
    check_items(with_images, need_images=True, same_size=False)
    class_index = dataset.class_index()
    notes: list[Note] = list(dataset.notes)
    n_instances = 0
    inputs = input_paths(dataset)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_classes(dataset, tmp / "classes.json")
        rows = [",".join(_INSTANCES_CSV_COLUMNS)]
        for item in dataset.items:
            found, degenerate = instances(item, class_index, visible_only=False, line_width=line_width)
            notes.extend(degenerate)
            painted = instance_labels(item, line_width=line_width)
            by_index = {inst.index: inst for inst in found}
            lut = np.zeros(len(item.shapes) + 1, dtype=np.int32)
            next_id = 0
            for i in paint_order(item):
                inst = by_index.get(i)
                if inst is None:
                    continue
                visible = int(np.count_nonzero(painted[inst.crop.slices][inst.crop.bitmap] == i + 1))
                hidden = inst.crop.area - visible
                if hidden and not visible_only:
                    raise DatasetError(
                        f"{item.name}: shape {i} ({inst.shape.kind} {inst.shape.label!r}) has {hidden} of "
                        f"{inst.crop.area} pixels covered by shapes above it; an instance label image "
                        "holds one id per pixel — pass visible_only=True to keep the visible parts"
                    )
                if hidden:
                    what = f"{hidden} of {inst.crop.area} pixels" if visible else "fully (no id)"
                    notes.append(Note("covered-instance", f"{inst.shape.kind} {inst.shape.label!r}: covered "
                                      f"{what} by shapes above it", item=item.name, where=f"shape {i}"))
                if not visible:
                    continue
                next_id += 1
                lut[i + 1] = next_id
                rows.append(_csv_row(item.key, next_id, inst.class_id, inst.shape.label))
            n_instances += next_id
            dest = tmp / "labels" / f"{item.key}.tif"
            dest.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(dest, lut[painted], compression="zlib")
            if item.image is not None:
                copy_image(item, tmp / "images")
            else:
                notes.append(Note("missing-image", "image file not found; not copied", item=item.name))
        (tmp / "instances.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return WriteReport(Path(out), n_items=len(dataset.items), n_instances=n_instances, notes=notes)


def _csv_row(*values: object) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()
