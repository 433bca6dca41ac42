"""``defectlab convert``: an export in another format, or as training data.

:class:`ConvertOptions` holds the output format and the writers' own options (each applies to
the formats whose writer takes it: ``--stack`` to unet, ``--task`` to yolo, …);
:func:`convert` reads, checks that every option given applies, and writes.

Two rules of the command line live here, so that the API and ``defectlab batch convert`` follow
them too:

* ``to="cvat"`` writes ``OUT/annotations.xml`` when ``out`` names a folder — as CVAT's own
  task export does — and the file itself when ``out`` ends in ``.xml``;
* ``to="yolo"`` without a ``task`` writes polygons (``segment``) when the export has outlines
  (polygons, ellipses, masks) and boxes (``detect``) when it has boxes only; a note says
  which, so outlines never silently become boxes.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic import make_synthetic_dataset
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> ds = make_synthetic_dataset(tmp / "export", n_images=1)
>>> result = convert(ds, tmp / "yolo", to="yolo")
>>> result.task, result.notes[0].code
('segment', 'yolo-task')
>>> convert(ds, tmp / "cvat", to="cvat").path.name
'annotations.xml'
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import FormatError
from .model import Dataset, Note
from .options import Options, option

__all__ = ["ConvertOptions", "Converted", "convert", "writable_formats", "yolo_task"]

#: What CVAT's own task export names its XML.
CVAT_FILE = "annotations.xml"


def writable_formats() -> tuple[str, ...]:
    """The names of the formats defectlab writes (from the format registry)."""
    from .formats import format_names

    return tuple(format_names(writable=True))


@dataclass(frozen=True, slots=True)
class ConvertOptions(Options):
    """The output format and the writers' options; None means the writer's own default.

    Parameters
    ----------
    to : str
        A writable format (:func:`writable_formats`): ``unet``, ``maskrcnn``, ``coco``,
        ``yolo``, ``cvat``, ``instance-tiff``.
    stack, one_hot : bool, optional
        unet: also write ``images.npy`` and ``masks.npy`` (N, H, W); and ``onehot.npy``
        (N, C, H, W).
    visible_only : bool, optional
        maskrcnn, instance-tiff: keep only the visible part of overlapped instances.
    task : {"detect", "segment"}, optional
        yolo: boxes or polygons (default: segment when the export has outlines).
    line_width : float, optional
        Width in px of polyline (dislocation line) masks.
    link_images : bool, optional
        unet, maskrcnn: symlink the images instead of copying them.
    copy_images : bool, optional
        coco, yolo, cvat (into a folder), imagej-roi: copy the image files.
    """

    verb: ClassVar[str] = "convert"

    to: str = option("unet", help="Output format.", choices=writable_formats, metavar="FORMAT")
    stack: bool | None = option(None, help="unet: also write images.npy and masks.npy [N,H,W].", cli="--stack")
    one_hot: bool | None = option(None, help="unet: also write onehot.npy [N,C,H,W].", cli="--one-hot")
    visible_only: bool | None = option(
        None, help="maskrcnn, instance-tiff: keep only the visible part of overlapped instances.",
        cli="--visible-only/--full-extent")
    task: str | None = option(None, help="yolo: detect (boxes) or segment (polygons); default: segment when the "
                                         "export has outlines, else detect.", choices=("detect", "segment"))
    line_width: float | None = option(None, help="Width in px of polyline (dislocation line) masks (default: 3).",
                                      above=0, metavar="PX")
    link_images: bool | None = option(None, help="unet, maskrcnn: symlink images instead of copying.",
                                      cli="--link-images")
    copy_images: bool | None = option(None, help="coco, yolo, cvat (into a folder), imagej-roi: copy the image "
                                                 "files.", cli="--copy-images/--no-copy-images")

    def writer_options(self) -> dict[str, Any]:
        """The options given (not None) for the writer, by name; a FormatError naming the first
        one that does not apply to ``to``."""
        from .formats import FORMATS

        writer = FORMATS[self.to].write
        if writer is None:
            raise FormatError(f"format {self.to!r} cannot be written; writable formats: "
                              f"{', '.join(writable_formats())}")
        accepted = inspect.signature(writer).parameters
        given = {name: getattr(self, name) for name in _WRITER_FIELDS if getattr(self, name) is not None}
        wrong = [k for k in given if k not in accepted]
        if wrong:
            raise FormatError(f"--{wrong[0].replace('_', '-')} does not apply to --to {self.to}")
        return given


_WRITER_FIELDS = ("stack", "one_hot", "visible_only", "task", "line_width", "link_images", "copy_images")


def yolo_task(dataset: Dataset, task: str | None) -> tuple[str, Note | None]:
    """The YOLO task to write: ``task`` when given, else ``segment`` when the export has outlines
    (polygons, ellipses, masks) and ``detect`` for boxes only, with a note saying which.

    Examples
    --------
    >>> from defectlab.model import Box, Ellipse, Item, Label
    >>> ds = Dataset((Label("a"),), (Item("x.png", (8, 8), (Ellipse(label="a", cx=4, cy=4, rx=2, ry=2),)),))
    >>> yolo_task(ds, None)[0], yolo_task(ds, "detect")
    ('segment', ('detect', None))
    """
    if task is not None:
        return task, None
    outlines = Counter(s.kind for it in dataset.items for s in it.shapes if s.is_area and s.kind != "box")
    if not outlines:
        return "detect", None
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(outlines.items()))
    return "segment", Note("yolo-task", f"YOLO task: segment (polygons), since the export has outlines ({kinds}); "
                                        "task='detect' (--task detect) writes their boxes instead")


@dataclass
class Converted:
    """What :func:`convert` wrote.

    Attributes
    ----------
    dataset : Dataset
        What was read.
    path : Path
        The output: a folder, or the CVAT XML file.
    report : WriteReport or None
        The writer's report (None for a writer that returns none).
    task : str or None
        yolo: the task written.
    notes : list of Note
        What the conversion decided (the YOLO task) and the writer's notes.
    """

    dataset: Dataset
    path: Path
    report: Any = None
    task: str | None = None
    notes: list[Note] = field(default_factory=list)


def cvat_path(out: str | Path) -> Path:
    """Where ``--to cvat --out OUT`` writes: OUT itself when it ends in ``.xml``, else OUT/annotations.xml."""
    out = Path(out)
    return out if out.suffix.lower() == ".xml" else out / CVAT_FILE


def convert(
    source: Dataset | str | Path,
    out: str | Path,
    options: ConvertOptions | None = None,
    *,
    read: Any = None,
    overwrite: bool = False,
    progress: bool = False,
    **changes: Any,
) -> Converted:
    """Convert an export (or a Dataset) to the format ``options.to``.

    Parameters
    ----------
    source : Dataset, str or Path
        A Dataset, or an export to read (with ``read``).
    out : str or Path
        The output folder (for ``to="cvat"``: a folder for ``annotations.xml``, or a ``.xml``
        file).
    options : ConvertOptions, optional
        The format and the writer's options (:class:`ConvertOptions`); or give its fields by
        name (``to="unet"``, ``stack=True``, …).
    read : ReadOptions, optional
        How to read ``source`` when it is a path (:class:`defectlab.reading.ReadOptions`).
    overwrite : bool
        Replace an existing output.
    progress : bool
        Show the writer's progress bar (where it has one).

    Returns
    -------
    Converted

    Raises
    ------
    FormatError
        An option that does not apply to the format, or a format that cannot be written.
    OutputError
        The output exists (without ``overwrite``) or would replace an input.
    """
    from .formats import FORMATS, write
    from .reading import ReadOptions

    opts = ConvertOptions.build(options, **changes)
    given = opts.writer_options()
    if isinstance(source, Dataset):
        ds = source
    else:
        ds = (read if read is not None else ReadOptions()).read(source)
    notes: list[Note] = []
    task = None
    if opts.to == "yolo":
        task, note = yolo_task(ds, opts.task)
        given["task"] = task
        notes += [note] if note else []
    accepted = inspect.signature(FORMATS[opts.to].write).parameters
    if "progress" in accepted:
        given["progress"] = progress
    report = write(ds, out, format=opts.to, overwrite=overwrite, **given)
    notes += list(getattr(report, "notes", []) or [])
    path = cvat_path(out) if opts.to == "cvat" else Path(out)
    return Converted(ds, path, report, task, notes)
