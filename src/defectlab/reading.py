"""How an export is read (:class:`ReadOptions`), and what was read (:func:`describe`).

Every command that reads a labeling export (``info``, ``check``, ``convert``, ``overlay``,
``measure``, ``evaluate``, ``prepare``) takes the same three options, declared once here:
``--from`` (the format, when detection from the path is not wanted), ``--images`` (the folder
of the image files, when they are not beside the export) and ``--classes`` (the class names of
a YOLO export that has no ``data.yaml`` or ``classes.txt``).

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic import make_synthetic_dataset
>>> export = pathlib.Path(tempfile.mkdtemp()) / "export"
>>> _ = make_synthetic_dataset(export, n_images=2)
>>> ds = ReadOptions(format="cvat").read(export)
>>> d = describe(ds)
>>> d["format"], d["images"], [lab["name"] for lab in d["labels"]][:2]
('cvat', 2, ['cavity', 'loop'])
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .errors import FormatError
from .model import Dataset
from .options import Options, label_tuple, option

__all__ = ["ReadOptions", "describe", "readable_formats"]


def readable_formats() -> tuple[str, ...]:
    """The names of the formats defectlab reads (from the format registry)."""
    from .formats import format_names

    return tuple(format_names(readable=True))


def _folder(value: Any) -> Path:
    return Path(value)


@dataclass(frozen=True, slots=True)
class ReadOptions(Options):
    """How to read a labeling export.

    Parameters
    ----------
    format : str, optional
        A readable format (``"cvat"``, ``"coco"``, ``"yolo"``, …); detected from the path when
        None.
    images : path, optional
        The folder holding the image files, when they are not beside the export.
    classes : tuple of str, optional
        Class names in class-index order (``"a,b,c"``), for a YOLO export without ``data.yaml``
        or ``classes.txt``.
    """

    verb: ClassVar[str] = "read"

    format: str | None = option(None, help="Input format, when detection from the path is not wanted.",
                                cli="--from", choices=readable_formats, metavar="FORMAT")
    images: Path | None = option(None, help="Folder holding the image files, if not beside the export.",
                                 convert=_folder, metavar="DIR")
    classes: tuple[str, ...] | None = option(
        None, help="Class names in class-index order, a,b,c (YOLO labels without data.yaml or classes.txt).",
        convert=label_tuple, metavar="A,B,C")

    def reader_options(self, path: str | Path) -> dict[str, Any]:
        """The keyword arguments for the reader of ``path``'s format; a FormatError where one
        does not apply to it."""
        options: dict[str, Any] = {}
        if self.images is not None:
            options["images"] = self.images
        if self.classes is not None:
            from .formats import FORMATS, detect_format

            name = self.format or detect_format(path)
            reader = FORMATS[name].read
            if reader is None or "classes" not in inspect.signature(reader).parameters:
                raise FormatError(f"{path}: --classes (classes=) names the classes of YOLO labels; "
                                  f"this export is {name}, whose reader takes its class names from the file")
            options["classes"] = self.classes
        return options

    def read(self, path: str | Path, **more: Any) -> Dataset:
        """Read the export at ``path`` (``more``: further options of its reader)."""
        from .formats import read

        return read(path, format=self.format, **self.reader_options(path), **more)


def describe(dataset: Dataset) -> dict[str, Any]:
    """What an export holds, as ``defectlab info --json`` prints it.

    Returns
    -------
    dict
        ``source``, ``format``, ``images``, ``missing_images``, ``subsets``, ``image_sizes_wh``
        (``"WxH"`` -> count), ``labels`` (name, color, type, ``edge`` and ``edge_how``:
        ``"label"`` when the export declares it, ``"guess"`` when guessed from the name as
        ``defectlab check`` does, else None; ``shapes`` by kind) and ``notes``.
    """
    from .qc.edges import resolve_edges

    counts = dataset.shape_counts()
    sizes = Counter(f"{it.size_hw[1]}x{it.size_hw[0]}" for it in dataset.items)
    edges = resolve_edges(dataset.labels)
    labels = []
    for lab in dataset.labels:
        edge, how = edges.get(lab.name, (None, "unknown"))
        labels.append({"name": lab.name, "color": lab.color, "type": lab.type, "edge": edge,
                       "edge_how": how if edge else None,
                       "shapes": {k: n for (name, k), n in counts.items() if name == lab.name}})
    return {
        "source": dataset.source, "format": dataset.format, "images": len(dataset),
        "missing_images": sum(1 for it in dataset.items if it.image is None),
        "subsets": dataset.subsets(), "image_sizes_wh": dict(sizes), "labels": labels,
        "notes": [{"code": n.code, "item": n.item, "where": n.where, "message": n.message} for n in dataset.notes],
    }
