"""Labelbox NDJSON "export v2" (image projects), read.

Glossary of the format facts this module relies on (checked against docs.labelbox.com
"Export image annotations" and "Export quick reference", and the export-v2 fixtures and
composite-mask notebook of the ``labelbox-python`` repository)
-----------------------------------------------------------------------------------------
file            one JSON object per line, one line per data row (image).
data row        ``data_row {id, external_id, global_key, row_data, details}`` (``row_data``
                is usually the image URL; ``external_id``/``global_key`` are optional),
                ``media_attributes {height, width, mime_type, ...}``, ``attachments``,
                ``metadata_fields``, ``projects {<project id>: {name, labels: [...]}}``.
label           ``{id, label_kind, label_details, performance_details, annotations:
                {objects, classifications, relationships}}``; a data row may carry several
                labels (consensus, benchmarks) and rows of several projects.
object          ``{feature_id, feature_schema_id, name, value, annotation_kind,
                classifications}`` plus one geometry: ``bounding_box {top, left, height,
                width}`` (ImageBoundingBox), ``polygon [{x, y}, ...]`` (ImagePolygon; the first
                vertex is repeated at the end — dropped here), ``line [{x, y}, ...]``
                (ImagePolyline, ImageLine in older exports), ``point {x, y}`` (ImagePoint),
                ``mask {url}`` and/or ``composite_mask {url, color_rgb}``
                (ImageSegmentationMask). Absolute pixel coordinates, read as written.
masks           ``mask.url`` (``.../projects/{project}/annotations/{feature_id}/index/1/mask``)
                is a PNG of the image size with this object only; ``composite_mask.url``
                (``.../tasks/{task}/masks/{composite_mask_id}/index/1``) is one RGB PNG with
                every mask of the label, this object's pixels being exactly ``color_rgb``.
                Both URLs need the user's API key (and composite URLs expire after 30 days),
                so they cannot be read here: download them first and pass ``masks=``.
classifications ``{name, value, radio_answer {name, value, classifications}}``,
                ``{name, checklist_answers [{name, ...}]}`` or ``{name, text_answer
                {content}}``; on an object they are its attributes, at the label level they
                are image-level answers.

Mapping: bounding_box → :class:`Box`, polygon → :class:`Polygon`, line → :class:`Polyline`,
point → :class:`Points`, masks → :class:`Mask` (cropped to the set pixels); object
classifications → attributes (checklists comma-separated); global radio/checklist answers →
one :class:`Tag` per answer, labelled with the answer's name and with the attribute
``classification`` = the question's name.

Notes (each a :class:`~defectlab.model.Note`): ``missing-image`` (no local image file; the
item is kept with its size from ``media_attributes``), ``missing-size`` (no size: row
skipped), ``text-classification`` (free-text answers are not tags), ``several-labels``,
``ignored-relationships``, ``empty-mask``, ``not-image`` (video rows).

Examples
--------
>>> import json, pathlib, tempfile
>>> row = {"data_row": {"id": "ck1", "external_id": "a.png"},
...        "media_attributes": {"height": 64, "width": 80},
...        "projects": {"p1": {"labels": [{"annotations": {"objects": [
...            {"feature_id": "f1", "name": "cavity", "annotation_kind": "ImageBoundingBox",
...             "bounding_box": {"top": 5.0, "left": 10.0, "height": 4.0, "width": 6.0}}],
...            "classifications": []}}]}}}
>>> path = pathlib.Path(tempfile.mkdtemp()) / "export.ndjson"
>>> _ = path.write_text(json.dumps(row) + "\\n")
>>> ds = read_labelbox(path)
>>> ds[0].name, ds[0].size_hw, ds[0].shapes[0].xyxy
('a.png', (64, 80), (10.0, 5.0, 16.0, 9.0))
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Mapping
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import ImageError, ParseError
from ..imaging.io import image_size_hw, read_image
from ..limits import check_file_bytes, check_shape, check_size_hw
from ..model import Box, Dataset, Item, Label, Mask, Note, Points, Polygon, Polyline, Shape, Tag
from ._images import ImageFinder, is_file
from ._json import item_name as ref_name
from ._json import json_pointer, load_json, to_float
from ._text import SNIFF_BYTES

__all__ = ["read_labelbox", "sniff_labelbox", "GEOMETRY_KEYS"]

#: Geometry keys of an export-v2 object, in the order they are looked for.
GEOMETRY_KEYS = ("bounding_box", "polygon", "line", "point", "composite_mask", "mask")
_SNIFF_ROW = re.compile(rb'^\s*\{.*"(?:data_row|media_attributes)"\s*:\s*\{', re.DOTALL)
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
_DOWNLOAD_HINT = (
    "Labelbox mask URLs need your API key (and composite-mask URLs expire after 30 days), so "
    "defectlab does not download them: download the masks first (with the Labelbox SDK, "
    "e.g. urllib with client.headers, or a fresh export), save each as <feature_id>.png "
    "(single masks) or <composite_mask_id>.png (composite masks) in one folder, and pass "
    "masks=FOLDER (or a dict from URL or id to file) to read_labelbox"
)



def _is_byte(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255



class _LabelboxReader:
    def __init__(self, path: Path, images: Path | None, masks: Any, project_id: str | None) -> None:
        self.path = path
        self.folder = path.parent
        self.finder = ImageFinder(folder=path.parent, images=images)
        self.masks = masks
        self.project_id = project_id
        self.notes: list[Note] = []
        self.labels: dict[str, None] = {}
        self.projects_seen: dict[str, None] = {}
        self.line = 0
        self.item: str | None = None  # the data row being read, for notes
        self._decoded: dict[Path, np.ndarray] = {}  # mask files of the current row (composites are shared)

    # -- helpers -----------------------------------------------------------------------------

    def error(self, message: str, where: tuple = ()) -> ParseError:
        return ParseError(self.path, message, line=self.line, where=json_pointer(where) or None)

    def note(self, code: str, message: str, item: str | None = None, where: tuple = ()) -> None:
        place = f"line {self.line}" + (f" {json_pointer(where)}" if where else "")
        self.notes.append(Note(code, message, item=item, where=place))

    def obj(self, value: Any, where: tuple, what: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(f"expected {what} (a JSON object), got {type(value).__name__}", where)
        return value

    def lst(self, value: Any, where: tuple, what: str) -> list:
        if not isinstance(value, list):
            raise self.error(f"expected {what} (a JSON list), got {type(value).__name__}", where)
        return value

    def num(self, mapping: Mapping, key: str, where: tuple) -> float:
        if key not in mapping:
            raise self.error(f"missing {key!r}", (*where, key))
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"expected a number for {key!r}, got {json.dumps(value)[:40]}", (*where, key))
        value = to_float(value)
        if not math.isfinite(value):
            raise self.error(f"expected a finite number for {key!r}, got {value}", (*where, key))
        return value

    def xy_list(self, value: Any, where: tuple) -> np.ndarray:
        pts = self.lst(value, where, "a list of points {x, y}")
        out = np.empty((len(pts), 2), dtype=np.float64)
        for i, p in enumerate(pts):
            p = self.obj(p, (*where, i), "a point {x, y}")
            out[i] = self.num(p, "x", (*where, i)), self.num(p, "y", (*where, i))
        return out

    # -- masks -------------------------------------------------------------------------------

    def mask_file(self, spec: dict, keys: list[str], where: tuple) -> Path:
        """The local file of a mask reference: a local URL, or one found through ``masks=``."""
        url = spec.get("url")
        if not isinstance(url, str) or not url:
            raise self.error("expected the mask's 'url' as a non-empty string", (*where, "url"))
        parsed = urlparse(url)
        scheme = parsed.scheme.lower()
        if scheme in ("http", "https"):
            basename = PurePosixPath(unquote(parsed.path)).name
            candidates = [url, *keys]
            if basename.lower().endswith(_IMAGE_SUFFIXES):
                candidates.append(basename)
            found = self.lookup_mask([c for c in candidates if c])
            if found is not None:
                return found
            if self.masks is None:
                raise self.error(f"the mask is at a remote URL ({url}). {_DOWNLOAD_HINT}", (*where, "url"))
            raise self.error(
                f"no local file for the mask at {url} in masks=: looked for {candidates[1:]} "
                f"(with .png); {_DOWNLOAD_HINT}",
                (*where, "url"),
            )
        if scheme == "file":
            local = Path(unquote(parsed.path))
        elif scheme in ("",) or len(scheme) == 1:  # a plain path (or a Windows drive letter)
            local = Path(url)
            if not local.is_absolute():
                local = self.folder / local
        else:
            raise self.error(f"cannot read a mask from a {scheme!r} URL ({url})", (*where, "url"))
        if not is_file(local):
            raise self.error(f"mask file not found: {local}", (*where, "url"))
        return local

    def lookup_mask(self, keys: list[str]) -> Path | None:
        if self.masks is None:
            return None
        if isinstance(self.masks, Mapping):
            for key in keys:
                if key in self.masks:
                    return Path(self.masks[key])
            return None
        folder = Path(self.masks)
        for key in keys:
            if "/" in key or "\\" in key or key in (".", ".."):
                continue
            for name in (key, key + ".png"):
                if is_file(folder / name):
                    return folder / name
        return None

    def decode(self, file: Path, size_hw: tuple[int, int], where: tuple) -> np.ndarray:
        arr = self._decoded.get(file)
        if arr is None:
            try:
                header_hw = image_size_hw(file)
            except ImageError as err:
                raise self.error(f"cannot read the mask ({err})", where) from err
            if header_hw != tuple(size_hw):  # refused before decoding: a wrong or absurd size
                raise self.error(
                    f"the mask {file} is {header_hw[1]} x {header_hw[0]} px, expected the image size "
                    f"{size_hw[1]} x {size_hw[0]}", where,
                )
            try:
                arr = read_image(file)
            except ImageError as err:
                raise self.error(f"cannot read the mask ({err})", where) from err
            self._decoded[file] = arr
        if arr.shape[:2] != tuple(size_hw):
            raise self.error(
                f"the mask {file} is {arr.shape[1]} x {arr.shape[0]} px, expected the image size "
                f"{size_hw[1]} x {size_hw[0]}", where,
            )
        return arr

    def mask(self, o: dict, size_hw: tuple[int, int], where: tuple) -> tuple[type[Shape], dict] | None:
        feature_id = str(o.get("feature_id") or "")
        choices = []
        if o.get("composite_mask") is not None:
            what = "a composite mask {url, color_rgb}"
            spec = self.obj(o["composite_mask"], (*where, "composite_mask"), what)
            m = re.search(r"/masks/([^/]+)", urlparse(str(spec.get("url", ""))).path)
            choices.append(("composite_mask", spec, [m.group(1)] if m else []))
        if o.get("mask") is not None:
            spec = self.obj(o["mask"], (*where, "mask"), "a mask {url}")
            choices.append(("mask", spec, [feature_id] if feature_id else []))
        first_error: ParseError | None = None
        for key, spec, ids in choices:
            try:
                file = self.mask_file(spec, ids, (*where, key))
            except ParseError as err:
                first_error = first_error or err
                continue
            arr = self.decode(file, size_hw, (*where, key, "url"))
            if key == "composite_mask":
                color = spec.get("color_rgb")
                if not (isinstance(color, list) and len(color) == 3 and all(_is_byte(c) for c in color)):
                    got = json.dumps(color)[:40]
                    message = f"expected 'color_rgb' as [r, g, b] in 0..255, got {got}"
                    raise self.error(message, (*where, key, "color_rgb"))
                if arr.ndim == 2:  # a grey PNG can only hold grey colours
                    gray = color[0] == color[1] == color[2]
                    bitmap = arr == color[0] if gray else np.zeros(arr.shape, bool)
                else:
                    bitmap = np.all(arr[..., :3] == np.asarray(color, dtype=arr.dtype), axis=-1)
            else:
                bitmap = arr != 0 if arr.ndim == 2 else np.any(arr != 0, axis=-1)
            rows, cols = np.flatnonzero(bitmap.any(axis=1)), np.flatnonzero(bitmap.any(axis=0))
            if rows.size == 0:
                message = f"skipped a mask of {o.get('name')!r}: no pixel is set in {file}"
                self.note("empty-mask", message, self.item, where)
                return None
            crop = bitmap[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            return Mask, {"bitmap": crop, "left": int(cols[0]), "top": int(rows[0])}
        raise first_error if first_error is not None else self.error("expected a mask {url}", where)

    # -- objects and classifications ---------------------------------------------------------

    def answer_text(self, c: dict, where: tuple) -> tuple[str, str | None]:
        """(question name, answer text) of a classification; text None when unanswered."""
        name = c.get("name")
        if not isinstance(name, str):
            raise self.error("expected the classification's 'name' as a string", (*where, "name"))
        if isinstance(c.get("radio_answer"), dict):
            return name, str(c["radio_answer"].get("name", ""))
        if isinstance(c.get("checklist_answers"), list):
            answers = (str(a.get("name", "")) for a in c["checklist_answers"] if isinstance(a, dict))
            return name, ",".join(answers)
        if isinstance(c.get("text_answer"), dict):
            return name, str(c["text_answer"].get("content", ""))
        return name, None

    def attributes(self, classifications: Any, where: tuple) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, c in enumerate(self.lst(classifications or [], where, "'classifications'")):
            c = self.obj(c, (*where, i), "a classification")
            name, text = self.answer_text(c, (*where, i))
            if text is not None:
                out[name] = text
        return out

    def shape(self, o: Any, size_hw: tuple[int, int], where: tuple) -> Shape | None:
        o = self.obj(o, where, "an object {name, annotation_kind, <geometry>}")
        name = o.get("name")
        if not isinstance(name, str) or not name:
            raise self.error("expected the object's 'name' as a non-empty string", (*where, "name"))
        geometry_key = next((k for k in GEOMETRY_KEYS if o.get(k) is not None), None)
        cls: type[Shape]
        if geometry_key == "bounding_box":
            bw = (*where, "bounding_box")
            bb = self.obj(o["bounding_box"], bw, "a box {top, left, height, width}")
            top, left, h, w = (self.num(bb, k, bw) for k in ("top", "left", "height", "width"))
            if h < 0 or w < 0:
                raise self.error(f"expected a box height and width >= 0, got {h}, {w}", bw)
            cls, geometry = Box, {"xyxy": (left, top, left + w, top + h)}
        elif geometry_key == "polygon":
            pts = self.xy_list(o["polygon"], (*where, "polygon"))
            if len(pts) >= 2 and np.array_equal(pts[0], pts[-1]):
                pts = pts[:-1]  # export v2 closes polygons by repeating the first vertex
            if len(pts) < 3:
                raise self.error(
                    "a polygon needs at least 3 vertices (a closing repeat of the first not counted), "
                    f"got {len(pts)}",
                    (*where, "polygon"),
                )
            cls, geometry = Polygon, {"points_xy": pts}
        elif geometry_key == "line":
            pts = self.xy_list(o["line"], (*where, "line"))
            if len(pts) < 2:
                raise self.error(f"a line needs at least 2 points, got {len(pts)}", (*where, "line"))
            cls, geometry = Polyline, {"points_xy": pts}
        elif geometry_key == "point":
            pw = (*where, "point")
            p = self.obj(o["point"], pw, "a point {x, y}")
            cls, geometry = Points, {"points_xy": [[self.num(p, "x", pw), self.num(p, "y", pw)]]}
        elif geometry_key in ("composite_mask", "mask"):
            found = self.mask(o, size_hw, where)
            if found is None:
                return None
            cls, geometry = found
        else:
            kind = o.get("annotation_kind")
            raise self.error(
                f"unsupported object (annotation_kind {kind!r}): none of the geometries "
                f"{', '.join(GEOMETRY_KEYS)}", where,
            )
        attributes = self.attributes(o.get("classifications"), (*where, "classifications"))
        try:
            shape = cls(label=name, attributes=attributes, **geometry)
            check_shape(shape)
        except ValueError as err:
            raise self.error(f"invalid {geometry_key}: {err}", (*where, geometry_key)) from err
        self.labels.setdefault(name)
        return shape

    def tags(self, classifications: Any, where: tuple, item: str) -> list[Shape]:
        out: list[Shape] = []
        for i, c in enumerate(self.lst(classifications or [], where, "'classifications'")):
            cw = (*where, i)
            c = self.obj(c, cw, "a classification")
            name, _ = self.answer_text(c, cw)
            if isinstance(c.get("radio_answer"), dict):
                answers = [(c["radio_answer"], (*cw, "radio_answer"))]
            elif isinstance(c.get("checklist_answers"), list):
                answers = [(a, (*cw, "checklist_answers", j)) for j, a in enumerate(c["checklist_answers"])]
            else:
                message = f"the answer to {name!r} is not a choice: not kept as a tag"
                self.note("text-classification", message, item, cw)
                continue
            for answer, aw in answers:
                answer = self.obj(answer, aw, "an answer {name}")
                label = answer.get("name")
                if not isinstance(label, str) or not label:
                    raise self.error("expected the answer's 'name' as a non-empty string", (*aw, "name"))
                nested = self.attributes(answer.get("classifications"), (*aw, "classifications"))
                attributes = {"classification": name, **nested}
                out.append(Tag(label=label, attributes=attributes))
                self.labels.setdefault(label)
        return out

    # -- rows --------------------------------------------------------------------------------

    def size(self, row: dict) -> tuple[int, int] | None:
        media = row.get("media_attributes")
        if media is None:
            return None
        media = self.obj(media, ("media_attributes",), "'media_attributes'")
        if media.get("height") is None or media.get("width") is None:
            return None
        out = []
        for key in ("height", "width"):
            v = self.num(media, key, ("media_attributes",))
            if v <= 0 or v != int(v):
                raise self.error(
                    f"expected a positive whole number for {key!r}, got {v}", ("media_attributes", key)
                )
            out.append(int(v))
        try:
            check_size_hw((out[0], out[1]))
        except ValueError as err:
            raise self.error(str(err), ("media_attributes",)) from None
        return out[0], out[1]

    def row(self, row: Any) -> Item | None:
        row = self.obj(row, (), "a data row object {data_row, media_attributes, projects}")
        self._decoded.clear()
        projects = self.obj(row.get("projects") or {}, ("projects",), "'projects' {<project id>: {labels}}")
        self.projects_seen.update(dict.fromkeys(projects))
        dr = self.obj(row.get("data_row"), ("data_row",), "'data_row' {id, external_id, global_key, row_data}")
        ids = (dr[k] for k in ("external_id", "global_key", "id") if isinstance(dr.get(k), str) and dr[k])
        name = next(ids, None)
        if name is None:
            raise self.error("the data row has no 'external_id', 'global_key' nor 'id'", ("data_row",))
        item_name = self.item = ref_name(name)
        names = [name, dr.get("global_key"), dr.get("row_data")]
        image = None
        for candidate in names:
            if isinstance(candidate, str) and candidate:
                image = self.finder.find(ref_name(candidate), None)
                if image is not None:
                    break
        media = row.get("media_attributes")
        mime = media.get("mime_type") if isinstance(media, dict) else None
        if isinstance(mime, str) and mime and not mime.startswith("image/"):
            self.note("not-image", f"a {mime} data row: skipped", item_name)
            return None
        size_hw = self.size(row)
        if size_hw is None and image is not None:
            try:
                size_hw = image_size_hw(image)
            except ImageError:
                size_hw = None
            try:
                check_size_hw(size_hw or (1, 1))
            except ValueError as err:
                raise ImageError(f"{image}: {err}") from None
        if size_hw is None:
            message = "no media_attributes height/width and no readable image: row skipped"
            self.note("missing-size", message, item_name)
            return None

        shapes: list[Shape] = []
        n_labels = 0
        for pid, project in projects.items():
            if self.project_id is not None and pid != self.project_id:
                continue
            pw = ("projects", pid)
            project = self.obj(project, pw, "a project {labels}")
            for li, label in enumerate(self.lst(project.get("labels") or [], (*pw, "labels"), "'labels'")):
                lw = (*pw, "labels", li)
                label = self.obj(label, lw, "a label {annotations}")
                ann = self.obj(label.get("annotations") or {}, (*lw, "annotations"), "'annotations'")
                if ann.get("frames"):
                    self.note("not-image", "video frames are not read", item_name, (*lw, "annotations", "frames"))
                n_labels += 1
                aw = (*lw, "annotations")
                for oi, o in enumerate(self.lst(ann.get("objects") or [], (*aw, "objects"), "'objects'")):
                    shape = self.shape(o, size_hw, (*aw, "objects", oi))
                    if shape is not None:
                        shapes.append(shape)
                shapes.extend(self.tags(ann.get("classifications"), (*aw, "classifications"), item_name))
                relationships = self.lst(ann.get("relationships") or [], (*aw, "relationships"), "'relationships'")
                if relationships:
                    message = f"{len(relationships)} relationship(s) not kept"
                    self.note("ignored-relationships", message, item_name, (*aw, "relationships"))
        if n_labels > 1:
            message = f"{n_labels} labels on this data row: the shapes of all are kept"
            self.note("several-labels", message, item_name)
        if image is None:
            self.note("missing-image", f"image file not found in {self.finder.looked_in()}", item_name)
        return Item(item_name, size_hw, tuple(shapes), image)


def read_labelbox(
    path: str | Path,
    *,
    images: str | Path | None = None,
    masks: str | Path | Mapping[str, str | Path] | None = None,
    project_id: str | None = None,
) -> Dataset:
    """Read a Labelbox NDJSON export (export v2, image data rows).

    Parameters
    ----------
    path : str or Path
        The ``.ndjson`` file (one data row per line; ``.jsonl``/``.json`` alike).
    images : str or Path, optional
        A folder to look for image files in first, by ``external_id``, ``global_key`` and
        the file name of ``row_data``; then the export's folder is searched.
    masks : folder, or mapping, optional
        Where the downloaded mask PNGs are. A folder holding ``<feature_id>.png`` (single
        masks) or ``<composite_mask_id>.png`` (composite masks; the id is the URL segment
        after ``/masks/``), or files named like the URL's file name; or a mapping from the
        mask URL, the feature id or the composite mask id to a file. Mask URLs that are
        local paths or ``file://`` URLs are read directly.
    project_id : str, optional
        Read only this project's labels; by default the labels of every project in a row.

    Returns
    -------
    Dataset
        One item per image data row, in file order, named by ``external_id`` (else
        ``global_key``, else ``id``), sized by ``media_attributes``. Labels in order of
        first appearance (object names, then tag answers). ``format="labelbox"``.

    Raises
    ------
    ImageError
        ``images`` is given but is not a folder.
    ParseError
        A line that is not JSON or not a data row, a missing or non-finite coordinate, a
        polygon of fewer than 3 vertices, an object with no known geometry, a mask at a
        remote URL without ``masks=`` (the message says how to download them), a mask of the
        wrong size, an unknown ``project_id``. The message names the file, the line and the
        JSON pointer within the row.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "export.ndjson"
    >>> obj = {"feature_id": "f9", "name": "void", "annotation_kind": "ImageSegmentationMask",
    ...        "mask": {"url": "https://api.labelbox.com/api/v1/projects/p/annotations/f9/index/1/mask"}}
    >>> row = {"data_row": {"id": "r1"}, "media_attributes": {"height": 8, "width": 8},
    ...        "projects": {"p": {"labels": [{"annotations": {"objects": [obj]}}]}}}
    >>> _ = path.write_text(json.dumps(row) + "\\n")
    >>> try:
    ...     read_labelbox(path)
    ... except ParseError as err:
    ...     print(err.line, err.where, err.message[:27], "masks=FOLDER" in err.message)
    1 /projects/p/labels/0/annotations/objects/0/mask/url the mask is at a remote URL True
    """
    path = Path(path)
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    if masks is not None and not isinstance(masks, Mapping) and not Path(masks).is_dir():
        raise ImageError(f"{masks}: no such folder (given as masks=)")
    if not path.is_file():
        missing = "no such file" if not path.exists() else "expected an .ndjson file, got a folder"
        raise ParseError(path, missing)
    reader = _LabelboxReader(path, images_dir, masks, project_id)
    items = []
    try:
        with open(path, "rb") as fh:
            try:
                check_file_bytes(os.fstat(fh.fileno()).st_size)
            except ValueError as err:
                raise ParseError(path, str(err)) from None
            for number, raw in enumerate(fh, start=1):
                reader.line = number
                if not raw.strip():
                    continue
                row = load_json(raw, str(path), expected="a Labelbox NDJSON row", line=number)
                item = reader.row(row)
                if item is not None:
                    items.append(item)
    except OSError as err:
        raise ParseError(path, f"cannot read the file ({err.strerror or err})") from err
    if project_id is not None and project_id not in reader.projects_seen:
        projects = list(reader.projects_seen)
        raise ParseError(path, f"no project {project_id!r} in this export; its projects are {projects}")
    labels = tuple(Label(name) for name in reader.labels)
    return Dataset(labels, tuple(items), tuple(reader.notes), source=str(path), format="labelbox")


def sniff_labelbox(path: str | Path) -> bool:
    """True when ``path`` is a file whose first line looks like a Labelbox export-v2 data row.

    Reads 4 KiB: a JSON object with a ``data_row`` or ``media_attributes`` object key.
    """
    path = Path(path)
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return False
    return bool(_SNIFF_ROW.search(head.lstrip(b"\xef\xbb\xbf")))
