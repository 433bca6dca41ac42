"""Finding an export's image files by name: beside the export (a folder or a zip) and in a
folder the user names. Shared by every reader."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterable

from ..model import ImageSource

__all__ = ["ImageFinder", "IMAGE_FOLDERS", "is_file", "is_dir", "exists"]

#: Folder names beside an export that image files are looked for in, in order (CVAT, COCO and
#: datumaro write ``images/``; published sets also use ``imgs/``, ``img/``, ``Images/``, VOC's
#: ``JPEGImages/``, ``frames/`` for in-situ series).
IMAGE_FOLDERS = ("images", "imgs", "img", "Images", "JPEGImages", "frames")


def is_file(path: Path) -> bool:
    """``path.is_file()``, False (not an error) for a name the OS refuses, e.g. too long.

    Paths built from an export's contents go through these three, so that a 5000-character
    file name in a hand-edited file reads as "not found", not as an OSError.
    """
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a name the OS refuses (see :func:`is_file`)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def exists(path: Path) -> bool:
    """``path.exists()``, False for a name the OS refuses (see :func:`is_file`)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


class ImageFinder:
    """Looks up image files by name next to the export (folder or zip) and in a user folder."""

    def __init__(
        self,
        *,
        folder: Path | None = None,
        archive: Path | None = None,
        members: Iterable[str] = (),
        prefix: str = "",
        images: Path | None = None,
    ) -> None:
        self.folder = folder
        self.archive = archive
        self.members = set(members)
        self.prefix = prefix
        self.images = images
        self._listings: dict[Path, dict[str, Path]] = {}

    def _file(self, base: Path, rel: str) -> Path | None:
        parent, _, name = rel.rpartition("/")
        directory = base / parent if parent else base
        listing = self._listings.get(directory)
        if listing is None:
            listing = {}
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        try:
                            if entry.is_file():
                                listing[entry.name] = Path(entry.path)
                        except OSError:
                            continue
            except OSError:
                pass
            self._listings[directory] = listing
        return listing.get(name)

    def candidates(self, name: str, subset: str | None) -> tuple[list[str], list[str]]:
        """(relative to the user's folder, relative to the export) names to try, in order."""
        posix = name.replace("\\", "/")
        parts = PurePosixPath(posix).parts
        safe = bool(parts) and not PurePosixPath(posix).is_absolute() and ".." not in parts
        sub_ok = subset is not None and subset not in ("", ".", "..") and not {"/", "\\"} & set(subset)
        user: list[str] = []
        export: list[str] = []
        if safe:
            if sub_ok:
                user.append(f"{subset}/{posix}")
            user.append(posix)
        base = parts[-1] if parts else ""
        if base not in ("", ".", "..") and base not in user:
            user.append(base)
        if safe:
            for folder in IMAGE_FOLDERS:
                if sub_ok:
                    export.append(f"{folder}/{subset}/{posix}")
                export.append(f"{folder}/{posix}")
            if sub_ok:
                export.append(f"{subset}/{posix}")
            export.append(posix)
        return user, export

    def find(self, name: str, subset: str | None) -> ImageSource | None:
        """The image called ``name`` (in ``subset``), or None when no candidate exists."""
        user, export = self.candidates(name, subset)
        if self.images is not None:
            for rel in user:
                hit = self._file(self.images, rel)
                if hit is not None:
                    return ImageSource(hit)
        if self.folder is not None:
            for rel in export:
                hit = self._file(self.folder, rel)
                if hit is not None:
                    return ImageSource(hit)
        if self.archive is not None:
            for rel in export:
                member = self.prefix + rel
                if member in self.members:
                    return ImageSource(self.archive, member)
        return None

    def looked_in(self) -> str:
        places = []
        if self.images is not None:
            places.append(str(self.images))
        if self.folder is not None:
            places.append(f"{self.folder} (and its {'/, '.join(IMAGE_FOLDERS[:3])}/, ...)")
        if self.archive is not None:
            places.append(f"{self.archive}!{self.prefix}")
        return " and ".join(places)
