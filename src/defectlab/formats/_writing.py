"""What the writers share: the report they return, the checks before writing, copying image files."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import DatasetError, ImageError
from ..imaging.io import image_size_hw
from ..model import Dataset, Item, Note

__all__ = ["WriteReport", "check_items", "copy_image"]


@dataclass
class WriteReport:
    """What a writer produced: the folder, how many items, and the notes on what it skipped."""

    out: Path
    n_items: int = 0
    n_instances: int = 0
    notes: list[Note] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.n_items} images -> {self.out}"
        if self.n_instances:
            text += f" ({self.n_instances} instances)"
        return text


def check_items(dataset: Dataset, *, need_images: bool, same_size: bool) -> None:
    """Refuse, with one clear message, what would make the output wrong.

    - an item whose output name (``Item.key``) is absolute, climbs out with ``..`` or holds a
      NUL: its files would be written outside the output folder;
    - two items with the same output name (``Item.key``);
    - missing image files, when the output needs pixels;
    - image files whose real size differs from the declared one;
    - (``same_size``) items of different sizes, which cannot be stacked.
    """
    for it in dataset.items:  # output file names come from item names: none may leave the folder
        key = it.key.replace("\\", "/")
        parts = PurePosixPath(key).parts
        if not parts or key.startswith("/") or ".." in parts or ":" in parts[0] or "\x00" in key:
            raise DatasetError(
                f"{it.name!r}" + (f" (subset {it.subset!r})" if it.subset else "")
                + ": an image name that is absolute, climbs out with '..' or holds a NUL would be "
                "written outside the output folder; rename the image in the export"
            )
    keys = Counter(it.key for it in dataset.items)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise DatasetError(f"two images would be written as {dup[0]!r}; image names must be unique per subset")
    if need_images:
        missing = [it.name for it in dataset.items if it.image is None]
        if missing:
            raise ImageError(
                f"{len(missing)} image file(s) not found, e.g. {missing[:3]}; "
                "point to them with --images DIR (images=...) or copy them beside the export"
            )
        for it in dataset.items:
            real = image_size_hw(it.image)
            if real[:2] != it.size_hw:
                raise ImageError(
                    f"{it.image}: image is {real[1]}x{real[0]} (WxH) but the export declares "
                    f"{it.size_hw[1]}x{it.size_hw[0]} for {it.name!r}"
                )
    if same_size:
        sizes = Counter(it.size_hw for it in dataset.items)
        if len(sizes) > 1:
            common = sizes.most_common(1)[0][0]
            odd = [f"{it.name} ({it.size_hw[1]}x{it.size_hw[0]})" for it in dataset.items if it.size_hw != common][:5]
            raise DatasetError(
                f"cannot stack images of different sizes: most are {common[1]}x{common[0]} (WxH) but "
                f"{', '.join(odd)} differ; write without stacking, or tile / pad them to one size first"
            )


def copy_image(item: Item, images_dir: Path, *, link: bool | str = False) -> Path:
    """Copy the item's image file to ``images_dir/<key><suffix>``; ``link=True``: symlink it
    instead; ``link="hard"``: hard-link it (a second name of the same file, for files the
    caller is about to delete, such as prepare's staged tiles; a copy where the two folders
    lie on different file systems)."""
    if item.image is None:
        raise ImageError(f"{item.name}: image file not found; point to it with --images DIR")
    dest = images_dir / f"{item.key}{item.image.suffix.lower()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if item.image.member is not None:
        dest.write_bytes(item.image.read_bytes())
    elif link == "hard":
        try:
            os.link(item.image.path, dest)
        except OSError:
            shutil.copyfile(item.image.path, dest)
    elif link:
        os.symlink(item.image.path.absolute(), dest)
    else:
        shutil.copyfile(item.image.path, dest)
    return dest
