"""Writing CVAT for images 1.1 XML (see the package docstring for the format facts)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from xml.sax.saxutils import escape

import numpy as np

from ..._output import input_paths, output_dir
from ...errors import DatasetError, OutputError
from ...model import Box, Dataset, Ellipse, Item, Mask, Points, Polygon, Polyline, Shape, Tag
from .._writing import WriteReport, check_items

__all__ = ["write_cvat", "ANNOTATIONS_FILE"]

#: The annotation file's name in a CVAT export folder or zip.
ANNOTATIONS_FILE = "annotations.xml"

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_TEXT_ENTITIES = {"\r": "&#13;"}


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._attr_cache: dict[str, str] = {}

    @staticmethod
    def check(value: str, what: str) -> str:
        if not isinstance(value, str):
            raise DatasetError(f"{what}: expected a string, got {value!r}")
        bad = _XML_ILLEGAL.search(value)
        if bad:
            raise DatasetError(
                f"{what}: the character {bad.group()!r} cannot be written to XML (in {value!r})"
            )
        return value

    def attr(self, value: str, what: str) -> str:
        cached = self._attr_cache.get(value)
        if cached is None:
            cached = escape(self.check(value, what), _ATTR_ENTITIES)
            if len(self._attr_cache) < 10_000:
                self._attr_cache[value] = cached
        return cached

    def text(self, value: str, what: str) -> str:
        return escape(self.check(value, what), _TEXT_ENTITIES)

    def element(self, indent: int, tag: str, text: str, what: str) -> None:
        self.lines.append(f"{'  ' * indent}<{tag}>{self.text(text, what)}</{tag}>")


def _f(value: float) -> str:
    """The shortest decimal that reads back to the same float64."""
    return repr(float(value))


def _points_text(points_xy: np.ndarray) -> str:
    return ";".join(f"{x!r},{y!r}" for x, y in points_xy.tolist())


def _rle(bitmap: np.ndarray) -> list[int]:
    """CVAT run lengths of ``bitmap`` (row-major, starting with background)."""
    flat = bitmap.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def _skeleton_nodes(dataset: Dataset) -> dict[str, list[str]]:
    nodes: dict[str, dict[str, None]] = {}
    for item in dataset.items:
        for shape in item.shapes:
            if isinstance(shape, Points) and shape.names is not None:
                nodes.setdefault(shape.label, {}).update(dict.fromkeys(shape.names))
    return {label: list(names) for label, names in nodes.items()}


def _write_labels(w: _Writer, dataset: Dataset, nodes: dict[str, list[str]]) -> None:
    w.lines.append("      <labels>")
    for label in dataset.labels:
        what = f"label {label.name!r}"
        w.lines.append("        <label>")
        w.element(5, "name", label.name, what)
        if label.color:
            w.element(5, "color", label.color, what)
        w.element(5, "type", label.type, what)
        if not label.attributes:
            w.lines.append("          <attributes>")
            w.lines.append("          </attributes>")
        else:
            w.lines.append("          <attributes>")
            for spec in label.attributes:
                awhat = f"{what} attribute {spec.name!r}"
                values = "\n".join(spec.values)
                if len(spec.values) == 1 and len(spec.values[0].split()) > 1:
                    values += "\n"  # one value with spaces: the newline keeps it whole on read
                w.lines.append("            <attribute>")
                w.element(7, "name", spec.name, awhat)
                w.element(7, "mutable", "True" if spec.mutable else "False", awhat)
                w.element(7, "input_type", spec.input_type, awhat)
                w.element(7, "default_value", spec.default, awhat)
                w.element(7, "values", values, awhat)
                w.lines.append("            </attribute>")
            w.lines.append("          </attributes>")
        w.lines.append("        </label>")
    for parent, names in nodes.items():
        for name in names:
            if not name:
                raise DatasetError(f"label {parent!r}: a skeleton node needs a non-empty name")
            w.lines.append("        <label>")
            w.element(5, "name", name, f"skeleton node of {parent!r}")
            w.element(5, "type", "points", f"skeleton node of {parent!r}")
            w.element(5, "parent", parent, f"skeleton node of {parent!r}")
            w.lines.append("          <attributes>")
            w.lines.append("          </attributes>")
            w.lines.append("        </label>")
    w.lines.append("      </labels>")


def _write_shape(w: _Writer, shape: Shape, where: str) -> None:
    head = [f'label="{w.attr(shape.label, where)}"', f'source="{w.attr(shape.source, where)}"']
    if isinstance(shape, Tag):
        if shape.occluded:
            head.append('occluded="1"')
    else:
        head.append(f'occluded="{int(bool(shape.occluded))}"')
    tag = shape.kind
    children: list[str] = []
    if isinstance(shape, (Polygon, Polyline)) or (isinstance(shape, Points) and shape.names is None):
        head.append(f'points="{_points_text(shape.points_xy)}"')
    elif isinstance(shape, Points):
        tag = "skeleton"
        head.pop()  # CVAT writes no occluded on a skeleton
        if shape.occluded:
            head.append('occluded="1"')
        for name, (x, y) in zip(shape.names or (), shape.points_xy.tolist()):
            children.append(
                f'      <points label="{w.attr(name, where)}" source="{w.attr(shape.source, where)}" '
                f'outside="0" occluded="0" points="{x!r},{y!r}"/>'
            )
    elif isinstance(shape, Ellipse):
        head += [f'{k}="{_f(getattr(shape, k))}"' for k in ("cx", "cy", "rx", "ry")]
        if shape.rotation_deg:
            head.append(f'rotation="{_f(shape.rotation_deg)}"')
    elif isinstance(shape, Box):
        x1, y1, x2, y2 = shape.xyxy
        head += [f'xtl="{_f(x1)}"', f'ytl="{_f(y1)}"', f'xbr="{_f(x2)}"', f'ybr="{_f(y2)}"']
        if shape.rotation_deg:
            head.append(f'rotation="{_f(shape.rotation_deg)}"')
    elif isinstance(shape, Mask):
        h, wd = shape.bitmap.shape
        if h == 0 or wd == 0:
            raise DatasetError(f"{where}: a mask of size {h} x {wd} cannot be written to CVAT")
        rle = ", ".join(map(str, _rle(shape.bitmap)))
        head += [f'rle="{rle}"', f'left="{shape.left}"', f'top="{shape.top}"']
        head += [f'width="{wd}"', f'height="{h}"']
    elif isinstance(shape, Tag):
        tag = "tag"
    else:
        raise DatasetError(f"{where}: cannot write a {type(shape).__name__} to CVAT XML")
    if not isinstance(shape, Tag) or shape.z_order:
        head.append(f'z_order="{int(shape.z_order)}"')
    if shape.group:
        head.append(f'group_id="{int(shape.group)}"')
    for key, value in shape.attributes.items():
        children.append(
            f'      <attribute name="{w.attr(key, where)}">{w.text(str(value), where)}</attribute>'
        )
    if children:
        w.lines.append(f"    <{tag} {' '.join(head)}>")
        w.lines.extend(children)
        w.lines.append(f"    </{tag}>")
    else:
        w.lines.append(f"    <{tag} {' '.join(head)}/>")


def _subsets(dataset: Dataset) -> list[str | None]:
    """The items' subsets (None: no subset), in order of first appearance."""
    return list(dict.fromkeys(it.subset or None for it in dataset.items))


def _meta(w: _Writer, dataset: Dataset, subsets: list[str | None]) -> dict[str | None, int]:
    """``<meta>`` as CVAT writes it: a task export (``<task>``) for items of one subset (or none),
    a project export (``<project>`` with one ``<task>`` per subset) for several; the task id of
    each subset."""
    nodes = _skeleton_nodes(dataset)
    counts = {s: sum((it.subset or None) == s for it in dataset.items) for s in subsets}
    w.lines.append("  <meta>")
    if len(subsets) <= 1:
        w.lines += ["    <task>", f"      <size>{len(dataset.items)}</size>", "      <mode>annotation</mode>",
                    "      <overlap>0</overlap>"]
        if subsets and subsets[0]:
            w.element(3, "subset", subsets[0], "the subset")
        _write_labels(w, dataset, nodes)
        w.lines += ["    </task>", "  </meta>"]
        return {s: 0 for s in subsets}
    w.lines += ["    <project>", "      <tasks>"]
    ids = {s: k for k, s in enumerate(subsets, start=1)}
    for s in subsets:
        w.lines += ["        <task>", f"          <id>{ids[s]}</id>"]
        w.element(5, "name", s or "default", "the subset")
        w.lines += [f"          <size>{counts[s]}</size>", "          <mode>annotation</mode>"]
        w.element(5, "subset", s or "", "the subset")
        w.lines.append("        </task>")
    w.lines.append("      </tasks>")
    w.element(3, "subsets", "\n".join(s for s in subsets if s), "the subsets")
    _write_labels(w, dataset, nodes)
    w.lines += ["    </project>", "  </meta>"]
    return ids


def _render(dataset: Dataset) -> str:
    declared = {label.name for label in dataset.labels}
    subsets = _subsets(dataset)
    project = len(subsets) > 1
    w = _Writer()
    w.lines += ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>"]
    task_ids = _meta(w, dataset, subsets)
    for index, item in enumerate(dataset.items):
        where = f"item {item.name!r}"
        h, wd = item.size_hw
        image_id = item.id if item.id is not None else index
        head = f'<image id="{int(image_id)}" name="{w.attr(item.name, where)}"'
        if project and item.subset:
            head += f' subset="{w.attr(item.subset, where)}" task_id="{task_ids[item.subset]}"'
        head += f' width="{wd}" height="{h}"'
        if not item.shapes:
            w.lines.append(f"  {head}/>")
            continue
        w.lines.append(f"  {head}>")
        for shape in item.shapes:
            if shape.label not in declared:
                raise DatasetError(
                    f"{where}: the shape label {shape.label!r} is not among the dataset's labels "
                    f"{sorted(declared)}"
                )
            _write_shape(w, shape, where)
        w.lines.append("  </image>")
    w.lines += ["</annotations>", ""]
    return "\n".join(w.lines)


def _image_relpath(item: Item, project: bool) -> PurePosixPath:
    """Where CVAT's zip holds the item's image (and so datumaro and :func:`read_cvat` look):
    ``images/<name>`` in a task export, ``images/<subset>/<name>`` in a project export (names
    are checked by ``check_items`` first)."""
    parts = PurePosixPath(item.name.replace("\\", "/")).parts
    return PurePosixPath("images", *((item.subset,) if project and item.subset else ()), *parts)


def _write_text(path: Path, text: str, mode: int) -> None:
    """``text`` to ``path`` through a temporary file beside it, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise OutputError(f"{path}: cannot write ({err})") from err
        raise


def _write_file(dataset: Dataset, path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; a path ending in .xml names the file to write")
    source = Path(dataset.source) if dataset.source else None
    if source is not None and path.exists() and source.exists() and (
            path.resolve() == source.resolve() or (source.is_dir() and path.resolve().is_relative_to(source.resolve()))):
        raise OutputError(f"{path}: would replace a file of the input export ({source}); write the XML elsewhere")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: the folder {path.parent} does not exist")
    text = _render(dataset)
    _write_text(path, text, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_cvat(
    dataset: Dataset,
    out: str | Path,
    *,
    overwrite: bool = False,
    copy_images: bool | None = None,
) -> WriteReport:
    """Write ``dataset`` as a "CVAT for images 1.1" export.

    Layout written (a folder ``out``, as CVAT's own zip holds it)::

        OUT/annotations.xml                 the labels and shapes
        OUT/images/[<subset>/]<name>        the image files (copy_images, the default for a folder)

    or, when ``out`` ends in ``.xml``, that one file (no images).

    Parameters
    ----------
    dataset : Dataset
        Labels (with color, type and attributes) and items. Items keep their ``subset``
        (a project-style ``subset=`` attribute) and ``id`` (the item's index when None).
    out : str or Path
        The output folder, created atomically (see :func:`defectlab._output.output_dir`);
        or the ``.xml`` file to write, written to a temporary file beside it and moved into
        place, so a reader never sees half a file.
    overwrite : bool
        Replace an existing output folder or file.
    copy_images : bool, optional
        Copy the image files into ``OUT/images/`` (then every item needs one). Default: True
        for a folder; a ``.xml`` file holds no images (True there is an error).

    Returns
    -------
    WriteReport
        ``out``, ``n_items``, ``n_instances`` (shapes written) and the dataset's notes.

    Raises
    ------
    DatasetError
        A shape's label is not among the dataset's labels, a string holds a character XML
        cannot carry (e.g. ``"\\x00"``), or a mask is empty; with images copied, two items
        with one output name or a name that is absolute or climbs out with ``..``.
    ImageError
        ``copy_images`` and an image file is missing or its size differs from the declared one.
    OutputError
        ``out`` exists (without ``overwrite``), is a folder where a ``.xml`` file was named,
        its folder does not exist, or it is or holds the input export's file.
    ValueError
        ``copy_images=True`` with a ``.xml`` file.

    Notes
    -----
    Coordinates are written exactly (the shortest decimal that reads back to the same
    float64, e.g. ``0.30000000000000004``), where CVAT itself writes 2 decimals; rotations
    only when non-zero; masks as CVAT RLE over the mask's own box; points with ``names``
    as ``<skeleton>`` elements, their node names declared as sublabels (``<parent>``).
    :func:`~defectlab.formats.cvat_xml.read_cvat` reads the output back to equal labels and
    shapes. Not kept: ``Label.edge`` (CVAT has no place for it), ``group=0`` (CVAT's "no
    group"), the dataset's notes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from defectlab.model import Dataset, Ellipse, Item, Label
    >>> ds = Dataset((Label("cavity"),), (Item("a.png", (64, 64), (Ellipse(label="cavity", cx=9, cy=9, rx=3, ry=2),)),))
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> write_cvat(ds, tmp / "task", copy_images=False).n_instances, sorted(p.name for p in (tmp / "task").iterdir())
    (1, ['annotations.xml'])
    >>> _ = write_cvat(ds, tmp / "prelabels.xml"); (tmp / "prelabels.xml").is_file()
    True
    """
    out = Path(out)
    n_shapes = sum(len(it.shapes) for it in dataset.items)
    report = WriteReport(out, n_items=len(dataset.items), n_instances=n_shapes, notes=list(dataset.notes))
    if out.suffix.lower() == ".xml":
        if copy_images:
            raise ValueError(f"{out}: a .xml file holds no images; name a folder to copy them (copy_images=True)")
        _write_file(dataset, out, overwrite)
        return report
    copy = True if copy_images is None else bool(copy_images)
    if copy:
        check_items(dataset, need_images=True, same_size=False)
    text = _render(dataset)
    with output_dir(out, overwrite=overwrite, inputs=input_paths(dataset)) as tmp:
        (tmp / ANNOTATIONS_FILE).write_text(text, encoding="utf-8", newline="\n")
        project = len(_subsets(dataset)) > 1
        for item in dataset.items if copy else ():
            dest = tmp.joinpath(*_image_relpath(item, project).parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if item.image.member is not None:
                dest.write_bytes(item.image.read_bytes())
            else:
                shutil.copyfile(item.image.path, dest)
    return report
