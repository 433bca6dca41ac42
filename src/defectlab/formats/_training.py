"""What the training-data writers share: classes.json, image files, size checks, progress."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from ..errors import DatasetError, ImageError
from ..imaging.io import image_size_hw
from ..model import Dataset, Item, Note

__all__ = ["WriteReport", "write_classes", "read_classes", "copy_image", "check_items", "progress_iter",
           "input_paths"]


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


def input_paths(dataset: Dataset) -> list[Path]:
    """What a writer must not overwrite: the dataset's image files and its export (file or folder).

    Given to :func:`defectlab._output.output_dir` as ``inputs``: an output folder holding one
    is refused, one inside the export folder needs ``overwrite=True``.
    """
    paths = [it.image.path for it in dataset.items if it.image is not None]
    if dataset.source:
        source = Path(dataset.source)
        try:
            if source.exists():
                paths.append(source)
        except OSError:
            pass
    return paths


def write_classes(dataset: Dataset, path: Path) -> None:
    """``classes.json``: ``{"0": {"name": "background", ...}, "1": {"name": ..., "color": ..., "edge": ...,
    "type": ...}}`` (``type``: the shape type the labeling tool declared, e.g. ``"polyline"``)."""
    classes: dict[str, dict] = {"0": {"name": "background", "color": "#000000", "edge": None, "type": "any"}}
    for i, lab in enumerate(dataset.labels, start=1):
        r, g, b = lab.rgb(i - 1)
        classes[str(i)] = {"name": lab.name, "color": f"#{r:02x}{g:02x}{b:02x}", "edge": lab.edge,
                           "type": lab.type}
    path.write_text(json.dumps(classes, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_classes(path: str | Path) -> dict[int, dict]:
    """Read ``classes.json`` back as ``{index: {"name", "color", "edge", "type"}}`` (``type`` only
    in files written since it was added)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {int(k): v for k, v in data.items()}


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


def copy_image(item: Item, images_dir: Path, *, link: bool = False) -> Path:
    """Copy (or symlink) the item's image file to ``images_dir/<key><suffix>``."""
    if item.image is None:
        raise ImageError(f"{item.name}: image file not found; point to it with --images DIR")
    dest = images_dir / f"{item.key}{item.image.suffix.lower()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if item.image.member is not None:
        dest.write_bytes(item.image.read_bytes())
    elif link:
        os.symlink(item.image.path.absolute(), dest)
    else:
        shutil.copyfile(item.image.path, dest)
    return dest


def progress_iter(items: Iterable[Item], *, total: int, desc: str, enabled: bool) -> Iterator[Item]:
    """``items`` with a progress bar (terminal or notebook) when ``enabled``."""
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="img")
