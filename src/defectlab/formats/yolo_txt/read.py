"""Reading YOLO datasets (see the package docstring for the format facts)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import ImageError, ParseError
from ...imaging.io import image_size_hw
from ...limits import check_size_hw
from ...model import Dataset, ImageSource, Item, Label, Note
from ...ordering import natural_sorted
from ...safe_zip import is_zip
from .._images import exists, is_dir, is_file
from .._text import SNIFF_BYTES, decode_text, read_file
from .data_yaml import _classes_option, _find_yaml, _load_yaml, _names, _names_beside, _names_file, _read_names_file, _Yaml
from .label_files import _label_files, _looks_like_label_folder, _parse_labels, _row_shape, _Row
from .spec import ANY_SPLIT_FOLDER, IMG_SUFFIXES, NAMES_FILES, SPLIT_FOLDERS, SPLITS

__all__ = ["read_yolo", "sniff_yolo"]


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


def _labels_counterpart(path: Path) -> Path | None:
    """``path`` with its last ``images`` component replaced by ``labels`` (None if it has none)."""
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            return Path(*parts[:i], "labels", *parts[i + 1 :])
    return None


def _label_path(image: Path) -> Path:
    """The label file of an image (Ultralytics' rule; beside the image when no ``images`` folder)."""
    folder = _labels_counterpart(image.parent) or image.parent
    return folder / (image.name.rsplit(".", 1)[0] + ".txt")


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in natural order (``Frame-2`` before ``Frame-10``)."""
    found = []
    for dirpath, _dirs, files in os.walk(folder):
        found += [Path(dirpath) / f for f in files if Path(f).suffix.lower() in IMG_SUFFIXES]
    return natural_sorted(found)


def _item_name(image: Path, base: Path | None) -> str:
    """The name of an item: its path in the split folder ``base``; for listed images, the path
    after the last ``images`` folder without a split folder (``train``, ``val``, ``valid``,
    ``validation``, ``test``) right under it; else the file name."""
    if base is not None:
        try:
            return image.relative_to(base).as_posix()
        except ValueError:
            pass
    parts = image.parts
    idx = max((i for i, p in enumerate(parts[:-1]) if p == "images"), default=None)
    if idx is not None:
        rest = list(parts[idx + 1 :])
        if len(rest) > 1 and rest[0].lower() in ANY_SPLIT_FOLDER:
            rest = rest[1:]
        return "/".join(rest)
    return image.name


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass
class _Split:
    """The images of one split and the label folders to search for labels without an image."""

    name: str | None
    images: list[tuple[Path, Path | None]] = field(default_factory=list)  # (image, base folder)
    label_dirs: list[tuple[Path, Path]] = field(default_factory=list)  # (image folder, label folder)


class _YoloReader:
    def __init__(self, images: Path | None, lenient: bool = False) -> None:
        self.images = images
        self.lenient = lenient
        self.notes: list[Note] = []
        self._listing: dict[Path, dict[str, Path]] = {}

    def note(self, code: str, message: str, item: str | None = None, where: str | None = None) -> None:
        self.notes.append(Note(code, message, item=item, where=where))

    # -- where the splits are --------------------------------------------------------------

    def resolve(self, entry: str, key: str, root: Path, where: str) -> Path | None:
        """An existing image folder, image file or list file for a split entry (or a folder whose
        ``labels`` counterpart exists); None, with a note, when nothing is found."""
        literal = Path(entry)
        cand = literal if literal.is_absolute() else root / literal
        if exists(cand):
            return cand
        tried = [cand]
        if entry.startswith("../"):
            alt = root / entry[3:]
            if exists(alt):
                self.note("split-path", f"{key}: {entry!r} does not exist; read {alt} instead "
                          "(Ultralytics' rule for '../' entries)", where=where)
                return alt
            tried.append(alt)
        counterpart = _labels_counterpart(cand)
        if counterpart is not None and is_dir(counterpart):
            return cand  # labels without their images: found later through images=
        for folder in SPLIT_FOLDERS[key]:
            for alt in (root / folder / "images", root / "images" / folder):
                if is_dir(alt) and alt not in tried:
                    self.note(
                        "split-path", f"{key}: {entry!r} does not exist; read {alt} instead", where=where
                    )
                    return alt
        self.note("missing-split", f"{key}: {entry!r} not found (looked for {tried[0]}); split skipped",
                  where=where)
        return None

    def add_source(self, split: _Split, source: Path) -> None:
        if is_dir(source) or not exists(source):
            if is_dir(source):
                split.images += [(p, source) for p in _image_files(source)]
            labels = _labels_counterpart(source)
            if labels is not None and is_dir(labels):
                split.label_dirs.append((source, labels))
        elif source.suffix.lower() in IMG_SUFFIXES:
            split.images.append((source, None))
        else:
            self.read_list(split, source)

    def read_list(self, split: _Split, path: Path) -> None:
        text = decode_text(read_file(path), str(path), expected="a text file listing image paths")
        skipped = 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            if Path(entry).suffix.lower() not in IMG_SUFFIXES:
                skipped += 1
                continue
            rel = entry[2:] if entry.startswith("./") else entry
            cand = Path(rel)
            if not cand.is_absolute():
                cand = path.parent / rel
            if not is_file(cand):
                self.note("missing-image", f"listed image {entry!r} not found; skipped",
                          where=f"{path.name} line {lineno}")
                continue
            split.images.append((cand, None))
        if skipped:
            self.note(
                "not-an-image",
                f"{skipped} line(s) do not name an image file (suffixes {', '.join(sorted(IMG_SUFFIXES))}); "
                "ignored, as Ultralytics does",
                where=path.name,
            )

    def splits_from_yaml(self, doc: _Yaml) -> list[_Split]:
        yaml_dir = doc.path.parent
        root = yaml_dir
        base = doc.data.get("path")
        if isinstance(base, bool) or (base is not None and not isinstance(base, (str, int, float))):
            raise doc.error("path", f"expected a folder for 'path', got {base!r}")
        if base not in (None, ""):
            cand = Path(str(base))
            cand = cand if cand.is_absolute() else yaml_dir / cand
            if is_dir(cand):
                root = cand
            else:
                self.note(
                    "path-fallback",
                    f"path {str(base)!r} is not a folder here; read the splits relative to "
                    f"{yaml_dir} instead",
                    where=doc.path.name,
                )
        data = dict(doc.data)
        if "val" not in data and "validation" in data:
            data["val"] = data["validation"]
            doc.lines["val"] = doc.lines.get("validation", 0)
        if not any(data.get(k) for k in SPLITS):
            raise ParseError(
                doc.path,
                "expected at least one of the keys train, val, test (image folders or lists)",
                where="key 'train'",
            )
        splits: list[_Split] = []
        seen: dict[tuple, str] = {}
        for key in SPLITS:
            value = data.get(key)
            if value in (None, "", []):
                continue
            entries = value if isinstance(value, list) else [value]
            if not all(isinstance(e, str) and e for e in entries):
                raise doc.error(
                    key, f"expected a folder, a file or a list of them for {key!r}, got {value!r}"
                )
            where = f"{doc.path.name} line {doc.lines.get(key)}"
            sources = [s for s in (self.resolve(e, key, root, where) for e in entries) if s is not None]
            for source in sources:  # e.g. "train: /": would read every image on the machine
                if is_dir(source) and yaml_dir.resolve().is_relative_to(source.resolve()) and \
                        source.resolve() != yaml_dir.resolve():
                    raise doc.error(key, f"{key}: {str(source)!r} is a folder above the dataset's own folder "
                                    f"{yaml_dir}; expected the folder of the {key} images")
            ident = tuple(sorted(str(s.resolve()) for s in sources))
            if ident and ident in seen:
                self.note("same-split", f"{key} names the same images as {seen[ident]}; read them once, "
                          f"as {seen[ident]}", where=where)
                continue
            seen[ident] = key
            split = _Split(key)
            for source in sources:
                self.add_source(split, source)
            splits.append(split)
        return splits

    def splits_from_folder(self, root: Path) -> list[_Split]:
        """A bare ``images/`` + ``labels/`` folder: subsets are the first folder under images/."""
        by_subset: dict[str | None, _Split] = {}
        images_dir = root / "images"
        for image in _image_files(images_dir):
            rel = image.relative_to(images_dir).parts
            subset = rel[0] if len(rel) > 1 else None
            split = by_subset.setdefault(subset, _Split(subset))
            split.images.append((image, images_dir / subset if subset else images_dir))
        for sub in natural_sorted(p for p in (root / "labels").iterdir() if p.is_dir()):
            by_subset.setdefault(sub.name, _Split(sub.name)).label_dirs.append((images_dir / sub.name, sub))
        top = by_subset.setdefault(None, _Split(None))
        # last, so that the subsets claim the label files in their own folders first
        top.label_dirs.append((images_dir, root / "labels"))
        return [by_subset[k] for k in sorted(by_subset, key=lambda s: (s is None, s or ""))]

    def splits_from_labels(self, root: Path) -> list[_Split]:
        """A plain label folder: ``.txt`` files paired with images by stem (in ``images=``, else
        beside them)."""
        split = _Split(None)
        if self.images is None:
            self.images = root  # labels beside their images (darknet's layout)
        split.label_dirs.append((self.images, root))
        return [split]

    def note_unlabeled(self, items: list[Item], display: str) -> None:
        """Images of ``images=`` that no label file names: not items (the labels make the dataset)."""
        if self.images is None:
            return
        labeled = {it.image.path.resolve() for it in items if it.image is not None}
        unlabeled = [p for p in _image_files(self.images) if p.resolve() not in labeled]
        if unlabeled:
            self.note("unlabeled-image", f"{len(unlabeled)} image(s) in {self.images} have no label file "
                      f"and are not read, e.g. {unlabeled[0].name} (in a plain label folder the label "
                      "files make the dataset; an empty .txt marks an image without objects)", where=display)

    # -- images for labels that have none --------------------------------------------------

    def _stems(self, folder: Path) -> dict[str, Path]:
        listing = self._listing.get(folder)
        if listing is None:
            listing = {}
            try:
                for entry in natural_sorted(folder.iterdir()):
                    if entry.is_file() and entry.suffix.lower() in IMG_SUFFIXES:
                        listing.setdefault(entry.name.rsplit(".", 1)[0], entry)
            except OSError:
                pass
            self._listing[folder] = listing
        return listing

    def find_image(self, rel_stem: PurePosixPath, subset: str | None) -> Path | None:
        if self.images is None:
            return None
        candidates = []
        if subset:
            candidates.append(self.images / subset / rel_stem)
        candidates += [self.images / rel_stem, self.images / rel_stem.name]
        for cand in candidates:
            hit = self._stems(cand.parent).get(cand.name)
            if hit is not None:
                return hit
        return None

    # -- items -------------------------------------------------------------------------------

    def items(
        self, splits: list[_Split], names: list[str] | None, display: str
    ) -> tuple[list[Item], list[str]]:
        n_classes = len(names) if names is not None else None
        # pass 1: the images of every split, and the label files they claim
        work: list[tuple[_Split, list[tuple[Path, str, Path]]]] = []
        claimed: set[str] = set()
        for split in splits:
            seen: set[str] = set()
            entries = []
            for image, base in split.images:
                key = os.path.normpath(image)
                if key in seen:
                    self.note("duplicate-image", f"listed twice in {split.name}; read once", item=str(image))
                    continue
                seen.add(key)
                label = _label_path(image)
                claimed.add(os.path.normpath(label))
                entries.append((image, _item_name(image, base), label))
            work.append((split, entries))
        # pass 2: label files no image claims: their image may be in images=, else they are skipped
        for split, entries in work:
            for image_dir, label_dir in split.label_dirs:
                for label in natural_sorted(label_dir.rglob("*.txt")):
                    key = os.path.normpath(label)
                    if key in claimed or label.name in NAMES_FILES or not label.is_file():
                        continue
                    claimed.add(key)
                    rel_stem = PurePosixPath(label.relative_to(label_dir).as_posix()[: -len(".txt")])
                    image = self.find_image(rel_stem, split.name)
                    if image is None:
                        looked = f"{image_dir}" + (f" and {self.images}" if self.images and self.images != image_dir
                                                   else "")
                        self.note(
                            "label-without-image",
                            f"no image file for this label file (looked in {looked}); skipped: without "
                            "the image size its coordinates cannot be denormalized",
                            item=str(label),
                        )
                        continue
                    entries.append((image, (rel_stem.parent / image.name).as_posix(), label))
        # pass 3: sizes from the image headers, then the label lines
        pending: list[tuple[str, tuple[int, int], Path, str | None, Path, list[_Row]]] = []
        no_label: list[str] = []
        for split, entries in work:
            for image, name, label in entries:
                try:
                    size_hw = image_size_hw(image)
                except ImageError as err:
                    self.note("unreadable-image", f"{err}; item skipped", item=str(image))
                    continue
                try:
                    check_size_hw(size_hw)
                except ValueError as err:
                    raise ImageError(f"{image}: {err}") from None
                self.check_exif(image)
                if label.is_file():
                    refused: list[Note] | None = [] if self.lenient else None
                    rows = _parse_labels(label, n_classes, refused)
                    self.notes += [replace(n, item=name) for n in refused or ()]
                else:
                    rows = []
                    no_label.append(str(image))
                pending.append((name, size_hw, image, split.name, label, rows))
        if no_label:
            self.note(
                "no-label-file",
                f"{len(no_label)} image(s) have no label file (YOLO's way to mark an image without "
                f"objects), e.g. {no_label[0]}",
                where=display,
            )
        if names is None:
            top = max((r.class_id for *_, rows in pending for r in rows), default=-1)
            names = [f"class_{i}" for i in range(top + 1)]
            self.note(
                "made-up-names",
                f"no data.yaml, classes.txt or obj.names: the {top + 1} classes are called "
                "class_0, class_1, ...; name them with classes=[...] (--classes a,b,c)",
                where=display,
            )
        items = []
        for name, size_hw, image, subset, label, rows in pending:
            shapes = []
            for r in rows:
                if r.class_id >= len(names):  # only when lenient: a class the names do not cover
                    self.notes.append(Note("undeclared-label", f"class index {r.class_id} is out of range: the dataset "
                                           f"names {len(names)} classes (0..{len(names) - 1})", item=name,
                                           where=f"line {r.line}", file=str(label), line=r.line,
                                           shape=len(shapes)))
                shapes.append(_row_shape(r, names[r.class_id] if r.class_id < len(names) else f"class_{r.class_id}",
                                         size_hw))
            items.append(Item(name, size_hw, tuple(shapes), image=ImageSource(image), subset=subset))
        return items, names

    def check_exif(self, image: Path) -> None:
        if image.suffix.lower() not in (".jpg", ".jpeg"):
            return
        try:
            from PIL import Image

            with Image.open(image) as im:
                orientation = im.getexif().get(274, 1)
        except Exception:  # noqa: BLE001 - the size was read already; EXIF is a nicety
            return
        if orientation not in (None, 1):
            self.note(
                "exif-orientation",
                f"EXIF orientation {orientation}: labeling tools and Ultralytics show this image "
                "rotated, defectlab reads its stored pixels; the labels may not line up",
                item=str(image),
            )


def read_yolo(path: str | Path, *, images: str | Path | None = None, classes: Any = None,
              lenient: bool = False) -> Dataset:
    """Read a YOLO detection or segmentation dataset (Ultralytics or Roboflow layout, or a plain
    folder of label files).

    Parameters
    ----------
    path : str or Path
        A ``data.yaml``; a folder holding one (or a single other ``.yaml``); a bare folder
        with ``images/`` and ``labels/`` (subsets from the folders under ``images/``, class
        names from an optional ``classes.txt`` or ``obj.names``); or a plain folder of
        ``.txt`` label files, one per image, as published data often comes: each is paired
        by stem with an image in ``images`` (or beside it), class names from ``classes``, a
        ``classes.txt`` / ``obj.names`` / data.yaml ``names`` in the folder or its parent,
        else ``class_0``, ``class_1``, ... (with a note).
    images : str or Path, optional
        A folder to look for the image of a label file that has none in the export (tried as
        ``<images>/<subset>/<stem>.*``, ``<images>/<stem>.*``).
    classes : list of str, str or dict, optional
        The class names by index (``["cavity", "loop"]``, ``"cavity,loop"`` or ``{0: "cavity",
        1: "loop"}``); they replace the names the export gives (with a note when they differ).
    lenient : bool
        Read past what the strict reader refuses (see :func:`defectlab.formats.read`): a label
        line with a class index beyond the names is kept as ``class_<index>`` (note
        ``undeclared-label``); any other bad line is left out (``refused-shape``), each noted
        with its file and line.

    Returns
    -------
    Dataset
        One item per image, in split order (train, val, test), sorted by path within a split
        (list files: in their order); ``Item.subset`` is the split key; ``Item.size_hw`` is read
        from the image file's header.
        Boxes are :class:`~defectlab.model.Box`, polygons :class:`~defectlab.model.Polygon`, in
        absolute float pixels (normalized value x image width or height, not rounded), decided
        line by line. Labels in class-index order. ``format="yolo"``.

    Raises
    ------
    ValueError
        ``classes`` is not a list of unique names.
    ParseError
        No data.yaml, images/ + labels/, nor label files; YAML that is invalid or not a mapping; ``names``
        and ``nc`` both missing, not matching, or names not unique; a label line with a wrong
        number of fields, a non-numeric field, a coordinate outside [0, 1], or a class index
        out of range — each naming the file and the line (and column).

    Notes
    -----
    Skipped, each with a :class:`~defectlab.model.Note`: a label file without its image (its
    coordinates cannot be denormalized without the image size), an unreadable image, a split
    that is not found, a split naming the same images as an earlier one. An image without a
    label file is an item without shapes (YOLO's background image), counted in one note. A
    split entry that does not exist is looked for without a leading ``../`` (Ultralytics),
    then as ``<split>/images`` (Roboflow; ``valid`` for val) and ``images/<split>``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "images" / "train").mkdir(parents=True); (root / "labels" / "train").mkdir(parents=True)
    >>> Image.new("L", (200, 100)).save(root / "images" / "train" / "a.png")
    >>> lines = "0 0.5 0.5 0.2 0.4\\n1 0.1 0.1 0.3 0.1 0.2 0.5\\n"
    >>> _ = (root / "labels" / "train" / "a.txt").write_text(lines)
    >>> _ = (root / "data.yaml").write_text("train: images/train\\nnames: [cavity, loop]\\n")
    >>> ds = read_yolo(root)
    >>> ds[0].size_hw, ds[0].subset, ds[0].shapes[0].xyxy
    ((100, 200), 'train', (80.0, 30.0, 120.0, 70.0))
    >>> ds[0].shapes[1].points_xy.tolist()
    [[20.0, 10.0], [60.0, 10.0], [40.0, 50.0]]
    """
    path = Path(path)
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    if not path.exists():
        raise ParseError(path, "no such file or folder")
    if path.is_file() and is_zip(path):
        raise ParseError(path, "a zip archive: extract it, then read its folder")
    given = _classes_option(classes)
    reader = _YoloReader(images_dir, lenient)
    yaml_path = path if path.is_file() else _find_yaml(path)
    doc = _load_yaml(yaml_path) if yaml_path is not None else None
    plain = False
    if doc is not None and (path.is_file() or any(doc.data.get(k) for k in (*SPLITS, "validation"))
                            or not _label_files(path, limit=1)):
        names: list[str] | None = _names(doc, reader.notes)
        splits = reader.splits_from_yaml(doc)
    elif (path / "images").is_dir() and (path / "labels").is_dir():
        names_file = _names_file(path)
        names = _read_names_file(names_file) if names_file else None
        splits = reader.splits_from_folder(path)
    elif _label_files(path, limit=1):
        names = _names_beside(path, reader.notes)
        splits = reader.splits_from_labels(path)
        plain = True
    else:
        raise ParseError(path, "not a YOLO dataset: expected a data.yaml, images/ and labels/ folders, "
                         "or a folder of .txt label files (one per image; their images in images=)")
    if given is not None:
        if names is not None and names != given:
            reader.note("classes-option", f"classes= {given} replace the names the export gives {names}",
                        where=str(path))
        names = given
    items, names = reader.items(splits, names, str(path))
    if plain and not items:
        raise ImageError(f"{path}: no image file for any of its label files (looked for <stem>.jpg, .png, ... in "
                         f"{reader.images}); point to the images with images=DIR (--images DIR)")
    if plain:
        reader.note_unlabeled(items, str(path))
    labels = tuple(Label(n) for n in names)
    return Dataset(labels, tuple(items), tuple(reader.notes), source=str(path), format="yolo")


def _looks_like_data_yaml(head: bytes) -> bool:
    text = head.decode("utf-8", "replace")
    keys = {
        line.split(":", 1)[0].strip()
        for line in text.splitlines()
        if ":" in line and not line.startswith((" ", "\t", "#"))
    }
    return bool(keys & {"names", "nc"}) and bool(keys & {"train", "val", "test", "path"})


def sniff_yolo(path: str | Path) -> bool:
    """True when ``path`` looks like a YOLO dataset (reads a few KiB and folder names only).

    A ``.yaml``/``.yml`` file with top-level ``names`` or ``nc`` and a split key; a folder
    holding such a ``data.yaml``; a folder with ``images/`` and ``labels/`` sub-folders
    whose label files are ``.txt`` (or that holds no label file yet); or a folder whose
    first ``.txt`` files start with YOLO label lines.
    """
    path = Path(path)
    try:
        if path.is_dir():
            yaml_path = path / "data.yaml"
            if not yaml_path.is_file():
                # a bare images/ + labels/ folder; label *images* (instance TIFFs, masks) are not YOLO
                labels = path / "labels"
                if not ((path / "images").is_dir() and labels.is_dir()):
                    return _looks_like_label_folder(path)
                return next(labels.rglob("*.txt"), None) is not None or (
                    next((p for p in labels.rglob("*") if p.is_file()), None) is None)
            path = yaml_path
        if not path.is_file() or path.suffix.lower() not in (".yaml", ".yml"):
            return False
        with open(path, "rb") as fh:
            return _looks_like_data_yaml(fh.read(SNIFF_BYTES))
    except OSError:
        return False
