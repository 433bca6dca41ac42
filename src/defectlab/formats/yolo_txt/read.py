"""Reading YOLO datasets (see the package docstring for the format facts)."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ...errors import ImageError, ParseError
from ...imaging.io import image_size_hw
from ...limits import check_size_hw
from ...limits import current as current_limits
from ...limits import hint as limit_hint
from ...model import Box, Dataset, ImageSource, Item, Label, Note, Polygon, Shape
from ...safe_zip import is_zip
from .._images import exists, is_dir, is_file
from .._text import SNIFF_BYTES, decode_text, read_file
from .spec import ANY_SPLIT_FOLDER, COORD_TOLERANCE, IMG_SUFFIXES, NAMES_FILES, SPLIT_FOLDERS, SPLITS

__all__ = ["read_yolo", "sniff_yolo"]

#: Largest data.yaml read: PyYAML scans ~0.2 MB/s of worst-case text (brackets), and a real one is a few KB.
_MAX_YAML_BYTES = 1 << 20


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
    """Image files under ``folder``, recursively, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(folder):
        found += [Path(dirpath) / f for f in files if Path(f).suffix.lower() in IMG_SUFFIXES]
    return sorted(found)


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
# Label files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    """One label line: class index, normalized numbers (4 for a box, 2N for a polygon), line."""

    class_id: int
    values: np.ndarray
    line: int


def _parse_labels(path: Path, n_classes: int | None) -> list[_Row]:
    """The rows of a label file; ParseError naming the file, line and column of a bad field."""
    text = decode_text(read_file(path), str(path), expected="a YOLO label file")
    rows: list[_Row] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        n = len(tokens)
        if n != 5 and (n < 7 or n % 2 == 0):
            hint = " (6 fields look like a prediction with a confidence, not a label)" if n == 6 else ""
            raise ParseError(
                path,
                f"expected 5 fields (class xc yc w h) or an odd number >= 7 (class x1 y1 x2 y2 x3 y3 ...), "
                f"got {n}{hint}",
                line=lineno,
            )
        columns = []
        pos = 0
        for tok in tokens:
            pos = line.index(tok, pos)
            columns.append(pos + 1)
            pos += len(tok)
        try:
            cls = float(tokens[0])
        except ValueError:
            cls = math.nan
        if not (math.isfinite(cls) and cls == int(cls) and cls >= 0):
            raise ParseError(path, f"expected a class index (a whole number >= 0), got {tokens[0]!r}",
                             line=lineno, column=columns[0])
        class_id = int(cls)
        if n_classes is None and class_id >= current_limits().max_classes:
            raise ParseError(path, f"class index {class_id} is over the limit of {current_limits().max_classes} "
                             f"classes ({limit_hint('max_classes')})", line=lineno, column=columns[0])
        if n_classes is not None and class_id >= n_classes:
            raise ParseError(path, f"class index {class_id} is out of range: the dataset names {n_classes} "
                             f"classes (0..{n_classes - 1})", line=lineno, column=columns[0])
        values = np.empty(n - 1, dtype=np.float64)
        for k, tok in enumerate(tokens[1:]):
            try:
                v = float(tok)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise ParseError(path, f"expected a number for field {k + 2}, got {tok!r}",
                                 line=lineno, column=columns[k + 1])
            if not -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE:
                raise ParseError(
                    path,
                    f"expected a normalized coordinate in [0, 1] for field {k + 2}, got {tok} (pixel "
                    "coordinates? YOLO divides x by the image width, y by its height)",
                    line=lineno,
                    column=columns[k + 1],
                )
            values[k] = v
        rows.append(_Row(class_id, values, lineno))
    return rows


def _row_shape(row: _Row, label: str, size_hw: tuple[int, int]) -> Shape:
    """The shape of a row in absolute pixels (not rounded)."""
    h, w = size_hw
    v = row.values
    if len(v) == 4:
        xc, yc, bw, bh = v.tolist()
        cx, cy, half_w, half_h = xc * w, yc * h, bw * w / 2, bh * h / 2
        return Box(label=label, xyxy=(cx - half_w, cy - half_h, cx + half_w, cy + half_h), source="file")
    points_xy = v.reshape(-1, 2) * np.array([w, h], dtype=np.float64)
    return Polygon(label=label, points_xy=points_xy, source="file")


# ---------------------------------------------------------------------------------------------
# data.yaml
# ---------------------------------------------------------------------------------------------


@dataclass
class _Yaml:
    """A parsed data.yaml: its values and the 1-based line of each top-level key and of each name."""

    path: Path
    data: dict[str, Any]
    lines: dict[str, int]
    name_lines: list[int]

    def error(self, key: str, message: str) -> ParseError:
        return ParseError(self.path, message, line=self.lines.get(key), where=f"key {key!r}")


def _yaml_loader() -> type:
    """A SafeLoader that refuses aliases (``*name``): a data.yaml has no use for them, and
    nested aliases expand exponentially (the YAML "billion laughs")."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"found the alias *{event.anchor}: aliases are not allowed in a data.yaml",
                    event.start_mark)
            return super().compose_node(parent, index)

    return Loader


def _load_yaml(path: Path) -> _Yaml:
    import yaml

    raw = read_file(path)
    if len(raw) > _MAX_YAML_BYTES:
        raise ParseError(path, f"a data.yaml of {len(raw)} bytes is not plausible (limit {_MAX_YAML_BYTES})")
    text = decode_text(raw, str(path), expected="a YOLO data.yaml")
    try:
        loader = _yaml_loader()(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        place = {"line": mark.line + 1, "column": mark.column + 1} if mark else {}
        raise ParseError(path, f"not valid YAML: {err.problem or err.context}", **place) from err
    except yaml.YAMLError as err:
        raise ParseError(path, f"not valid YAML ({err})") from err
    except ValueError as err:  # a constructor's, e.g. Python refusing an integer of 5000 digits
        raise ParseError(path, f"not a usable data.yaml ({err})") from None
    except RecursionError:
        raise ParseError(path, "YAML nested too deeply to be a data.yaml") from None
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ParseError(path, f"expected a mapping with keys train, val, names, ...; got {got}", line=line)
    lines: dict[str, int] = {}
    name_lines: list[int] = []
    for key_node, value_node in node.value:
        key = str(key_node.value)
        lines[key] = key_node.start_mark.line + 1
        if key == "names" and isinstance(value_node, yaml.SequenceNode):
            name_lines = [n.start_mark.line + 1 for n in value_node.value]
        elif key == "names" and isinstance(value_node, yaml.MappingNode):
            name_lines = [k.start_mark.line + 1 for k, _ in value_node.value]
    data = {str(k): v for k, v in data.items()}
    return _Yaml(path, data, lines, name_lines)


def _names(doc: _Yaml, notes: list[Note]) -> list[str]:
    """Class names by index from ``names`` (list or map) and ``nc``."""
    names, nc = doc.data.get("names"), doc.data.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 0):
        raise doc.error("nc", f"expected the class count (a whole number >= 0) for 'nc', got {nc!r}")
    if nc is not None and nc > current_limits().max_classes:
        raise doc.error("nc", f"{nc} classes is over the limit of {current_limits().max_classes} "
                        f"({limit_hint('max_classes')})")
    if names is None:
        if nc is None:
            raise ParseError(doc.path, "missing key 'names' (the class names; 'nc' alone would do too)",
                             where="key 'names'")
        notes.append(Note("made-up-names", f"no 'names': the {nc} classes are called class_0, class_1, ... "
                          "as Ultralytics does", where=doc.path.name))
        return [f"class_{i}" for i in range(nc)]
    if not isinstance(names, (list, dict)):
        raise doc.error("names", f"expected a list or an {{index: name}} map for 'names', got {names!r}")
    values = list(names.values()) if isinstance(names, dict) else names
    lines = doc.name_lines if len(doc.name_lines) == len(values) else [doc.lines.get("names")] * len(values)
    if isinstance(names, list):
        pairs = list(zip(range(len(names)), names, lines))
    elif isinstance(names, dict):
        pairs = []
        for (k, v), line in zip(names.items(), lines):
            if isinstance(k, bool) or not isinstance(k, (int, str)) or not str(k).strip().isdigit():
                raise doc.error(
                    "names", f"expected class indices (whole numbers >= 0) as the keys of 'names', got {k!r}"
                )
            pairs.append((int(k), v, line))
    else:
        raise doc.error("names", f"expected a list or an {{index: name}} map for 'names', got {names!r}")
    pairs.sort(key=lambda t: t[0])
    indices = [k for k, _, _ in pairs]
    if indices != list(range(len(pairs))):
        present = set(indices)  # the first missing indices (a huge index must not make a huge range)
        missing = list(islice((i for i in range(max(indices, default=-1) + 1) if i not in present), 5))
        raise doc.error("names", f"expected class indices 0..{len(pairs) - 1} in 'names', "
                        f"got {indices[:10]}{' ...' if len(indices) > 10 else ''}"
                        + (f" (missing {missing[:5]})" if missing else " (an index twice)"))
    out: list[str] = []
    for i, v, line in pairs:
        if isinstance(v, bool) or v is None or not isinstance(v, (str, int, float)) or str(v).strip() == "":
            raise ParseError(doc.path, f"expected a class name for class {i}, got {v!r} "
                             "(quote names like yes, no, null in YAML)", line=line, where="key 'names'")
        out.append(str(v))
    dup = [n for n, c in Counter(out).items() if c > 1]
    if dup:
        idx = [i for i, n in enumerate(out) if n == dup[0]]
        raise doc.error(
            "names", f"the class name {dup[0]!r} is given to classes {idx}; expected unique names"
        )
    if nc is not None and nc != len(out):
        raise doc.error("nc", f"'nc' is {nc} but 'names' has {len(out)} names; expected them to match")
    return out


def _names_file(root: Path) -> Path | None:
    for name in NAMES_FILES:
        for folder in (root, root / "labels"):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_names_file(path: Path) -> list[str]:
    text = decode_text(read_file(path), str(path), expected="class names, one a line")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    for lineno, name in enumerate(names, start=1):
        if not name:
            raise ParseError(path, "expected a class name on every line, got an empty line", line=lineno)
        if name in names[: lineno - 1]:
            raise ParseError(
                path, f"the class name {name!r} appears twice; expected unique names", line=lineno
            )
    return names


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
    def __init__(self, images: Path | None) -> None:
        self.images = images
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
        for sub in sorted(p for p in (root / "labels").iterdir() if p.is_dir()):
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
                for entry in sorted(folder.iterdir()):
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
                for label in sorted(label_dir.rglob("*.txt")):
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
        pending: list[tuple[str, tuple[int, int], Path, str | None, list[_Row]]] = []
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
                    rows = _parse_labels(label, n_classes)
                else:
                    rows = []
                    no_label.append(str(image))
                pending.append((name, size_hw, image, split.name, rows))
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
        items = [
            Item(name, size_hw, tuple(_row_shape(r, names[r.class_id], size_hw) for r in rows),
                 image=ImageSource(image), subset=subset)
            for name, size_hw, image, subset, rows in pending
        ]
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


def _classes_option(classes: Any) -> list[str] | None:
    """``classes=`` as a list of names by index: names in order, ``"a,b,c"``, or ``{index: name}``."""
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",")]
    if isinstance(classes, dict):
        keys = sorted(classes)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or keys != list(range(len(keys))):
            raise ValueError(f"classes: expected the indices 0..{len(keys) - 1} as keys, got {keys[:10]}")
        classes = [classes[k] for k in keys]
    names = list(classes)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"classes: expected class names (non-empty strings) in index order, got {names!r}")
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ValueError(f"classes: the name {dup[0]!r} is given twice; expected unique names")
    if len(names) > current_limits().max_classes:
        raise ValueError(f"classes: {len(names)} names is over the limit of {current_limits().max_classes} classes")
    return names


def _label_files(folder: Path, limit: int | None = None) -> list[Path]:
    """The ``.txt`` files right in ``folder`` that may be label files (not ``classes.txt``), sorted."""
    found = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.suffix.lower() == ".txt" and entry.name not in NAMES_FILES and entry.is_file():
            found.append(entry)
            if limit is not None and len(found) >= limit:
                break
    return found


def _looks_like_label_line(line: str) -> bool:
    tokens = line.split()
    if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0) or not tokens[0].isdigit():
        return False
    try:
        return all(-COORD_TOLERANCE <= float(v) <= 1 + COORD_TOLERANCE for v in tokens[1:])
    except ValueError:
        return False


def _looks_like_label_folder(folder: Path) -> bool:
    """A few ``.txt`` files right in ``folder`` whose first lines are YOLO label lines."""
    seen_line = False
    for label in _label_files(folder, limit=3):
        with open(label, "rb") as fh:
            head = fh.read(SNIFF_BYTES).decode("utf-8", "replace")
        first = next((line for line in head.splitlines() if line.strip()), None)
        if first is None:
            continue  # an empty label file: an image without objects
        if not _looks_like_label_line(first):
            return False
        seen_line = True
    return seen_line


def _names_beside(folder: Path, notes: list[Note]) -> list[str] | None:
    """Class names for a plain label folder: ``classes.txt`` / ``obj.names`` in it or its parent,
    else the ``names`` of a data.yaml there."""
    for where in (folder, folder.parent):
        for name in NAMES_FILES:
            if (where / name).is_file():
                return _read_names_file(where / name)
    for yaml_path in (_find_yaml(folder), folder.parent / "data.yaml"):
        if yaml_path is not None and yaml_path.is_file():
            doc = _load_yaml(yaml_path)
            if "names" in doc.data or "nc" in doc.data:
                return _names(doc, notes)
    return None


def _find_yaml(folder: Path) -> Path | None:
    if (folder / "data.yaml").is_file():
        return folder / "data.yaml"
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".yaml", ".yml"))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = [p.name for p in found[:10]]
        raise ParseError(folder, f"expected one data.yaml, found several YAML files: {names}; "
                         f"pick one: read {folder / names[0]} (the file itself)")
    return None


def read_yolo(path: str | Path, *, images: str | Path | None = None, classes: Any = None) -> Dataset:
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
    reader = _YoloReader(images_dir)
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
