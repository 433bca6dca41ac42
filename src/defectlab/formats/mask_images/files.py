"""The files of a mask export (a folder or a zip, by relative POSIX path) and the images beside them."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ...model import ImageSource
from ...ordering import natural_sorted
from ...safe_zip import SafeZip
from .._text import read_file

#: Suffixes of label image files (any case).
MASK_SUFFIXES = (".png", ".tif", ".tiff")
#: Suffixes of image files looked up for a mask, in order of preference.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: Name endings of mask files beside their images (cellpose ``_cp_masks``, ``_masks``, ...).
MASK_TAILS = ("_cp_masks", "_masks", "_mask", "_labels", "_label")
_KNOWN_DIRS = {"SegmentationClass", "SegmentationObject", "ImageSets", "JPEGImages", "images", "masks", "labels"}

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
                    dirnames[:] = natural_sorted(d for d in dirnames if not d.startswith("."))
                for name in natural_sorted(filenames):
                    if not name.startswith("."):
                        self.files.append(name if rel_dir == "." else f"{rel_dir}/{name}")
        else:
            self.zip = SafeZip(root)
            names = self.zip.names()
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) == 1 and all("/" in n for n in names) and not tops & _KNOWN_DIRS:
                self.prefix = f"{tops.pop()}/"  # one folder holds the whole export
            self.files = natural_sorted(n[len(self.prefix):] for n in names if not n.endswith("/"))
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
        dirnames[:] = natural_sorted(d for d in dirnames if not d.startswith("."))
        for name in natural_sorted(filenames):
            if _is_image_name(name):
                p = Path(dirpath) / name
                out.append((p.relative_to(folder).as_posix(), ImageSource(p)))
    return out


