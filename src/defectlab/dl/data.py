"""What training reads: a labeling export, a Dataset, a written folder, or a ``prepare`` root.

:func:`training_sources` turns what the user gave into one or two :class:`Source`\\ s — the
training data, and the validation data when the input brings its own:

========================================  ==================================================
given                                      trained on / validated on
========================================  ==================================================
a labeling export (any format), Dataset    its images; ``val_split`` of them held out
a ``write_unet`` / ``write_maskrcnn``      its images; ``val_split`` of them held out
folder (``classes.json`` + ``masks/`` or
``targets/``), e.g. ``prepare``'s
``OUT/train``
a ``prepare`` root (``manifest.json``)     ``train/`` (or subset ``train``) / ``val/`` (or
                                           subset ``val``); ``test/`` is never read
========================================  ==================================================

An architecture then reads each :class:`Source` into its :class:`TrainingData`
(:meth:`Architecture.load_data <defectlab.dl.archs.base.Architecture.load_data>`): a U-Net
reads Datasets and ``write_unet`` folders, a Mask R-CNN Datasets and ``write_maskrcnn`` folders.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import DatasetError, FormatError, ParseError
from ..formats.classes_json import read_classes
from ..model import Dataset, Label
from .model_io import ClassInfo

__all__ = ["FOLDER_KINDS", "Source", "TrainingData", "class_info", "classes_from_json", "folder_kind",
           "manifest_sha256", "read_export", "sha256", "training_sources"]

#: Written training folders: kind -> (what it is called, the folder that marks it, the writer).
FOLDER_KINDS = {
    "unet": ("U-Net folder", "masks", "write_unet"),
    "maskrcnn": ("Mask R-CNN folder", "targets", "write_maskrcnn"),
}
_MANIFEST = "manifest.json"
_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Source:
    """One side of the training data: a Dataset (``dataset``) or a written folder (``folder``
    of ``kind`` ``"unet"`` or ``"maskrcnn"``), and how to name it in messages."""

    description: str
    dataset: Dataset | None = None
    folder: Path | None = None
    kind: str | None = None

    def refuse(self, arch_title: str, reads: str) -> FormatError:
        """The error for an architecture (``arch_title``) that trains on ``reads`` folders only."""
        what, marker, _ = FOLDER_KINDS[self.kind or ""]
        return FormatError(f"{self.folder}: a {what} ({marker}/); train {arch_title} on the labeling export or on a "
                           f"{FOLDER_KINDS[reads][2]} folder, or train {self.kind} on this one")


@dataclass
class TrainingData:
    """What an architecture read from a :class:`Source`.

    Attributes
    ----------
    samples : sequence
        What its training job draws from, one entry per image (indexable; the
        architecture's own kind: normalized image + mask, or a torch dataset's sample).
    names : list of str
        The image names, in the order of ``samples``.
    sizes_hw : list of (int, int)
        Each image's (H, W), px.
    classes : list of ClassInfo
        The foreground classes, from index 1.
    manifest : list of (str, str, str)
        ``(name, sha256 of the image file, sha256 of the labels)`` per image.
    description : str
        Where it came from (``"U-Net folder tiles/train"``).
    notes : list of str
        What the reader left out, said once.
    """

    samples: Sequence[Any]
    names: list[str]
    sizes_hw: list[tuple[int, int]]
    classes: list[ClassInfo]
    manifest: list[tuple[str, str, str]]
    description: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_sha256(entries: Iterable[tuple[str, str, str]]) -> str:
    """sha256 of the sorted lines ``name  sha256(image file)  sha256(labels)``."""
    lines = sorted(f"{n}\t{a}\t{b}" for n, a, b in entries)
    return sha256("\n".join(lines).encode())


def class_info(index: int, label: Label) -> ClassInfo:
    """The model class of a Dataset's label at ``index`` (from 1)."""
    return ClassInfo(index, label.name, "#{:02x}{:02x}{:02x}".format(*label.rgb(index - 1)), label.edge, label.type)


def classes_from_json(path: Path) -> list[ClassInfo]:
    """The foreground classes of a written folder's ``classes.json``."""
    try:
        raw = read_classes(path)
        classes = [ClassInfo(i, str(v["name"]), v.get("color"), v.get("edge"), str(v.get("type") or "any"))
                   for i, v in sorted(raw.items()) if i]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ParseError(path, f"expected {{index: {{\"name\": ...}}}} as written by write_unet ({err})") from err
    if [c.index for c in classes] != list(range(1, len(classes) + 1)):
        raise ParseError(path, f"expected class indices 1..N, got {[c.index for c in classes]}")
    return classes


def folder_kind(path: Path) -> str | None:
    """``"unet"`` or ``"maskrcnn"`` for a written training folder, else None."""
    if path.is_dir() and (path / "classes.json").is_file():
        for kind, (_, marker, _) in FOLDER_KINDS.items():
            if (path / marker).is_dir():
                return kind
    return None


def read_export(data: str | Path, images: str | Path | None = None) -> Dataset:
    """``defectlab.read`` of an export (with its ``images`` folder, if given)."""
    from ..formats import read

    return read(data, images=images) if images is not None else read(data)


def _one(path: Path, images: str | Path | None, label: str) -> Source:
    kind = folder_kind(path)
    if kind is not None:
        return Source(f"{FOLDER_KINDS[kind][0]} {path}{label}", folder=path, kind=kind)
    ds = read_export(path, images)
    return Source(f"dataset {ds.source or path}{label}", dataset=ds)


def _prepared_layout(root: Path) -> dict[str, str] | None:
    """A ``prepare`` root's ``layout`` (split -> ``"train/"`` or ``"subset train"``), else None."""
    path = root / _MANIFEST
    if not root.is_dir() or not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ParseError(path, f"not a readable prepare manifest ({err})") from err
    layout = manifest.get("layout") if isinstance(manifest, dict) else None
    if manifest.get("command") != "prepare" or not isinstance(layout, dict):
        return None
    return {str(k): str(v) for k, v in layout.items()}


def training_sources(data: Dataset | str | Path, *, images: str | Path | None = None
                     ) -> tuple[Source, Source | None, list[str]]:
    """``(train, val or None, notes)`` for what the user gave (see the module docstring).

    ``val`` is None when the data bring no validation images of their own: training then
    holds ``val_split`` of ``train`` out. A ``prepare`` root's ``test/`` (or subset ``test``)
    is never read.
    """
    if isinstance(data, Dataset):
        return Source(f"dataset {data.source or '(in memory)'}", dataset=data), None, []
    root = Path(data)
    layout = _prepared_layout(root)
    if layout is None:
        return _one(root, images, ""), None, []
    if "train" not in layout:
        raise DatasetError(f"{root}: a prepared folder without training data (its manifest lists "
                           f"{sorted(layout) or 'no splits'}); prepare again with a train share above 0")
    notes = []
    test = " The test split is not used." if "test" in layout else ""
    if all(v.endswith("/") for v in layout.values()):  # prepare --to unet | maskrcnn: one folder per split
        train = _one(root / "train", images, "")
        if "val" not in layout:
            notes.append(f"the prepared folder {root} has no val/: validating on a share of train/ (val_split).{test}")
            return train, None, notes
        notes.append(f"trained on train/ and validated on val/ of the prepared folder {root}.{test}")
        return train, _one(root / "val", images, ""), notes
    # prepare --to yolo | coco: one export whose items carry their split as subset
    ds = read_export(root, images)
    by_split = {s: ds.with_items([it for it in ds.items if (it.subset or "").lower() == s]) for s in _SPLITS}
    train = Source(f"dataset {root} (subset train)", dataset=by_split["train"])
    if not by_split["val"].items:
        notes.append(f"the prepared folder {root} has no val subset: validating on a share of train (val_split).{test}")
        return train, None, notes
    notes.append(f"trained on subset train and validated on subset val of the prepared folder {root}.{test}")
    return train, Source(f"dataset {root} (subset val)", dataset=by_split["val"]), notes
