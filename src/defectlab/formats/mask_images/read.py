"""Reading label mask images (see the package docstring for the format facts)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, Mapping

import numpy as np

from ...errors import ImageError, ParseError
from ...imaging.io import image_size_hw
from ...model import Dataset, Item, Mask, Note
from ...safe_zip import SafeZip, is_zip
from .._text import decode_text, read_file
from .classes import VOC_LABELS, VOID_RGB, _Classes, _pack, _read_classes_json, _read_labelmap, _set_label_entries, voc_colormap
from .files import MASK_SUFFIXES, _ImageIndex, _is_image_name, _is_mask_name, _stem, _strip_tail, _Tree, _user_images
from .pixels import _colors_to_index, _components, _decode, _is_wide, _regions
from .write import INSTANCES_CSV_COLUMNS

__all__ = ["read_masks", "sniff_masks", "voc_colormap", "MASK_SUFFIXES"]

Kind = Literal["auto", "class", "instance", "binary"]
_KINDS = ("auto", "class", "instance", "binary")
_CVAT_DIRS = ("SegmentationClass/", "SegmentationObject/")

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
            for line in decode_text(tree.read_bytes(full), tree.display(full)).splitlines():
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
        reader = csv.DictReader(io.StringIO(decode_text(data, display), newline=""))
        try:
            self._instances_rows(reader, display)
        except csv.Error as err:  # e.g. a NUL, or a line break inside an unquoted field
            raise ParseError(display, f"not a readable CSV file ({err})", line=reader.line_num + 1) from None  # the line being read

    def _instances_rows(self, reader: csv.DictReader, display: str) -> None:
        missing = [c for c in INSTANCES_CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ParseError(
                display, f"expected the columns {','.join(INSTANCES_CSV_COLUMNS)}; missing {missing}", line=1
            )
        for row in reader:
            try:
                iid, cid = int(row["instance_id"]), int(row["class_id"])
            except (TypeError, ValueError):
                raise ParseError(
                    display, f"expected whole numbers for instance_id and class_id, got "
                    f"{row['instance_id']!r}, {row['class_id']!r}", line=reader.line_num,
                ) from None
            if iid < 1 or cid < 1:  # found by atheris: class 0 (background) named a label never declared
                raise ParseError(display, f"expected instance_id and class_id >= 1 (0 is the background), got "
                                 f"{iid}, {cid}", line=reader.line_num)
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
