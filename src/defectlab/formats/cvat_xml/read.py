"""Reading CVAT XML exports (see the package docstring for the format facts)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...errors import ImageError, ParseError
from ...limits import check_shape, check_size_hw
from ...model import (
    AttributeSpec,
    Box,
    Dataset,
    Ellipse,
    ImageSource,
    Item,
    Label,
    Mask,
    Note,
    Points,
    Polygon,
    Polyline,
    Shape,
    Tag,
)
from ...safe_zip import SafeZip, is_zip
from .._images import ImageFinder
from .._text import SNIFF_BYTES
from ...safe_xml import Node, parse_xml, parse_xml_file, root_tag

__all__ = ["read_cvat", "sniff_cvat", "SHAPE_ELEMENTS", "IMAGE_SUFFIXES"]

#: Shape elements a CVAT ``<image>`` or ``<track>`` may hold (``cuboid`` is skipped with a note).
SHAPE_ELEMENTS = ("box", "polygon", "polyline", "points", "ellipse", "mask", "skeleton", "tag", "cuboid")
#: Suffixes tried, in order, for the image file of a video frame.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Most frames a video export may declare (a guard against absurd ``stop_frame`` values).
MAX_FRAMES = 10_000_000

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
#: "x0,y0;x1,y1;…": exactly one comma in each ;-separated pair (checked per attribute).
_POINTS = re.compile(r"[^,;]+,[^,;]+(?:;[^,;]+,[^,;]+)*")
_STEP = re.compile(r"\s*step\s*=\s*(\d+)\s*")
_FLAGS = {"0": False, "1": True, "false": False, "true": True}


# ---------------------------------------------------------------------------------------------
# Finding the export: an .xml file, a folder, or a zip
# ---------------------------------------------------------------------------------------------


def _pick_xml(names: list[str], where: str) -> str:
    """The annotation file among ``names`` (posix paths relative to an export root)."""
    if "annotations.xml" in names:
        return "annotations.xml"
    top = [n for n in names if "/" not in n and n.lower().endswith(".xml")]
    if len(top) == 1:
        return top[0]
    nested = [n for n in names if n.endswith("/annotations.xml") and n.count("/") == 1]
    if len(nested) == 1 and not top:
        return nested[0]
    found = top or nested
    if found:
        raise ParseError(
            where, f"expected one annotations.xml, found several XML files: {sorted(found)[:10]}; "
            f"pick one: read {where}/{sorted(found)[0]} (the file itself)"
        )
    raise ParseError(where, "no annotations.xml (nor any other .xml file) in this CVAT export")


def _load(path: Path, images: Path | None) -> tuple[Node, str, ImageFinder]:
    """Parse the export at ``path``: (root element, name for errors, image finder)."""
    if not path.exists():
        raise ParseError(path, "no such file or folder")
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir() if p.is_file())
        xml = path / _pick_xml(names, str(path))
        return parse_xml_file(str(xml)), str(xml), ImageFinder(folder=path, images=images)
    if is_zip(path):
        with SafeZip(path) as zf:
            member = _pick_xml(zf.names(), str(path))
            display = f"{path}!{member}"
            with zf.open(member) as fh:
                root = parse_xml(fh, display)
            prefix = member.rpartition("/")[0]
            finder = ImageFinder(
                archive=path, members=zf.names(), prefix=prefix + "/" if prefix else "", images=images
            )
        return root, display, finder
    return parse_xml_file(str(path)), str(path), ImageFinder(folder=path.parent, images=images)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass
class _FrameSpace:
    """The frames of one task of a video export."""

    task_id: int | None
    subset: str | None
    frames: list[int] | None
    size_hw: tuple[int, int] | None
    node: Node


@dataclass
class _ItemDraft:
    name: str
    size_hw: tuple[int, int]
    subset: str | None
    id: int | None
    shapes: list[Shape] = field(default_factory=list)
    image: ImageSource | None = None


class _CvatReader:
    """One read of one CVAT XML document; collects notes on the way."""

    def __init__(self, display: str, finder: ImageFinder, lenient: bool = False) -> None:
        self.path = display
        self.finder = finder
        self.lenient = lenient
        self.default_subset: str | None = None
        self.notes: list[Note] = []
        self.labels: list[Label] = []
        self.label_names: set[str] = set()
        self.sublabels: dict[str, set[str]] = {}
        self._geometry: dict[str, Callable[[Node], tuple[type[Shape], dict[str, Any]]]] = {
            "polygon": lambda n: (Polygon, {"points_xy": self.points(n)}),
            "polyline": lambda n: (Polyline, {"points_xy": self.points(n)}),
            "points": lambda n: (Points, {"points_xy": self.points(n)}),
            "ellipse": self.ellipse,
            "box": self.box,
            "mask": self.mask,
            "tag": lambda n: (Tag, {}),
        }

    # -- small helpers ---------------------------------------------------------------------

    def error(self, node: Node, message: str, attr: str | None = None) -> ParseError:
        where = f"<{node.tag}>" + (f" attribute {attr!r}" if attr else "")
        return ParseError(self.path, message, line=node.line, column=node.column, where=where)

    def note(self, code: str, message: str, node: Node, item: str | None = None, shape: int | None = None) -> None:
        self.notes.append(Note(code, message, item=item, where=f"line {node.line}", file=self.path, line=node.line,
                               shape=shape))

    def refuse(self, err: ParseError, what: str, left_out: str, item: str | None = None) -> None:
        """Lenient reading: what the strict reader raises becomes a ``refused-<what>`` note saying
        what was ``left_out`` (re-raised when reading strictly)."""
        if not self.lenient:
            raise err
        self.notes.append(Note(f"refused-{what}", f"{err.message}; {left_out} left out", item=item,
                               where=f"line {err.line}", file=self.path, line=err.line))

    def lenient_shape(self, node: Node, item: str | None, index: int, track: Node | None = None) -> Shape | None:
        """:meth:`shape`, or None (with a note) for a shape the strict reader refuses, when lenient."""
        try:
            return self.shape(node, item, track, index=index)
        except ParseError as err:
            self.refuse(err, "shape", f"the <{node.tag}>", item)
            return None

    def attr(self, node: Node, key: str) -> str:
        value = node.attrib.get(key)
        if value is None:
            raise self.error(node, f"missing attribute {key!r} of <{node.tag}>", key)
        return value

    def num(self, node: Node, key: str, default: float | None = None) -> float:
        text = node.attrib.get(key)
        if text is None:
            if default is not None:
                return default
            raise self.error(node, f"missing attribute {key!r} of <{node.tag}>", key)
        try:
            value = float(text)
        except ValueError:
            raise self.error(node, f"expected a number for {key!r}, got {text!r}", key) from None
        if not math.isfinite(value):
            raise self.error(node, f"expected a finite number for {key!r}, got {text!r}", key)
        return value

    def integer(self, node: Node, key: str, default: int | None = None) -> int:
        text = node.attrib.get(key)
        if text is None:
            if default is not None:
                return default
            raise self.error(node, f"missing attribute {key!r} of <{node.tag}>", key)
        try:
            return int(text)
        except ValueError:
            raise self.error(node, f"expected a whole number for {key!r}, got {text!r}", key) from None

    def flag(self, node: Node, key: str) -> bool:
        text = node.attrib.get(key)
        if text is None:
            return False
        value = _FLAGS.get(text.strip().lower())
        if value is None:
            raise self.error(node, f"expected 0 or 1 for {key!r}, got {text!r}", key)
        return value

    def points(self, node: Node, key: str = "points") -> np.ndarray:
        text = self.attr(node, key)
        if _POINTS.fullmatch(text) is None:
            if not text.strip():
                raise self.error(node, f"expected points like 'x0,y0;x1,y1' for {key!r}, got none", key)
            raise self.error(
                node, f"expected points like 'x0,y0;x1,y1' for {key!r}, got {_clip(text)!r}", key
            )
        tokens = text.replace(";", ",").split(",")
        try:
            values = list(map(float, tokens))
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise self.error(
                node, f"expected points like 'x0,y0;x1,y1' for {key!r}, got the number {bad!r}", key
            ) from None
        if not math.isfinite(sum(values)) and not all(map(math.isfinite, values)):
            raise self.error(node, f"expected finite coordinates for {key!r}, got {_clip(text)!r}", key)
        return np.array(values, dtype=np.float64).reshape(-1, 2)

    # -- geometry of each shape element ----------------------------------------------------

    def ellipse(self, node: Node) -> tuple[type[Shape], dict[str, Any]]:
        return Ellipse, {
            "cx": self.num(node, "cx"),
            "cy": self.num(node, "cy"),
            "rx": self.num(node, "rx"),
            "ry": self.num(node, "ry"),
            "rotation_deg": self.num(node, "rotation", 0.0),
        }

    def box(self, node: Node) -> tuple[type[Shape], dict[str, Any]]:
        xyxy = tuple(self.num(node, key) for key in ("xtl", "ytl", "xbr", "ybr"))
        return Box, {"xyxy": xyxy, "rotation_deg": self.num(node, "rotation", 0.0)}

    def mask(self, node: Node) -> tuple[type[Shape], dict[str, Any]]:
        left, top = self.integer(node, "left"), self.integer(node, "top")
        width, height = self.integer(node, "width"), self.integer(node, "height")
        for key, value in (("width", width), ("height", height)):
            if value <= 0:
                raise self.error(node, f"expected a positive mask {key}, got {value}", key)
        try:
            check_size_hw((height, width), "a mask")
        except ValueError as err:
            raise self.error(node, str(err)) from None
        text = self.attr(node, "rle")
        try:
            values = [int(t) for t in text.split(",")]
        except ValueError:
            raise self.error(
                node, f"expected comma-separated whole numbers for 'rle', got {_clip(text)!r}", "rle"
            ) from None
        if any(v < 0 for v in values):
            raise self.error(node, "expected run lengths >= 0 in 'rle', got a negative one", "rle")
        if any(v > width * height for v in values):  # (and beyond int64)
            raise self.error(node, f"a run in 'rle' is longer than the mask's {width} * {height} pixels", "rle")
        runs = np.array(values, dtype=np.int64)
        total = int(runs.sum())
        if total != width * height:
            raise self.error(
                node,
                f"bad 'rle': the runs sum to {total}, expected width * height = "
                f"{width} * {height} = {width * height}",
                "rle",
            )
        values = (np.arange(len(runs)) % 2).astype(bool)  # background first
        bitmap = np.repeat(values, runs).reshape(height, width)
        return Mask, {"bitmap": bitmap, "left": left, "top": top}

    def skeleton(self, node: Node, label: str, item: str | None) -> dict[str, Any] | None:
        xy: list[np.ndarray] = []
        names: list[str] = []
        declared = self.sublabels.get(label)
        for child in node.children:
            if child.tag == "attribute":
                continue
            if child.tag != "points":
                raise self.error(child, f"expected <points> nodes in <skeleton>, got <{child.tag}>")
            name = self.attr(child, "label")
            if declared is not None and name not in declared:
                raise self.error(
                    child,
                    f"skeleton node {name!r} is not declared for label {label!r}; "
                    f"its nodes are {sorted(declared)}",
                    "label",
                )
            if self.flag(child, "outside"):
                continue
            if child.find("attribute") is not None:
                self.note(
                    "ignored-element",
                    f"the attributes of skeleton node {name!r} are not kept (only the skeleton's are)",
                    child,
                    item,
                )
            pts = self.points(child)
            xy.append(pts)
            names.extend([name] * len(pts))
        if not xy:
            self.note(
                "empty-skeleton", f"skipped a skeleton of {label!r}: every node is outside", node, item
            )
            return None
        return {"points_xy": np.concatenate(xy), "names": tuple(names)}

    # -- one shape element -----------------------------------------------------------------

    def shape(self, node: Node, item: str | None, track: Node | None = None, index: int | None = None) -> Shape | None:
        """The shape of ``node`` (in ``track`` for video exports), or None when it is skipped;
        ``index``: the place it takes in its item's shapes (for the notes of a lenient read)."""
        tag = node.tag
        if tag not in SHAPE_ELEMENTS:
            supported = ", ".join(f"<{s}>" for s in SHAPE_ELEMENTS)
            raise self.error(node, f"unknown shape element <{tag}>; supported are {supported}")
        owner = track if track is not None else node
        label = self.attr(owner, "label")
        if tag == "cuboid":
            self.note(
                "skipped-cuboid", f"skipped a cuboid of {label!r}: cuboids are not supported", node, item
            )
            return None
        if label == "":
            self.note("unlabeled-shape", f"skipped a <{tag}> with an empty label", node, item)
            return None
        if label not in self.label_names:
            declared = [lab.name for lab in self.labels]
            if not self.lenient:
                raise self.error(
                    owner, f"undeclared label {label!r}; the declared labels are {declared}", "label"
                )
            self.note("undeclared-label", f"undeclared label {label!r}; the declared labels are {declared}",
                      owner, item, shape=index)
        group = self.integer(owner, "group_id", 0)
        attributes: dict[str, str] = {}
        for child in node.children:
            if child.tag == "attribute":
                attributes[self.attr(child, "name")] = child.text
            elif not (tag == "skeleton" and child.tag == "points"):
                self.note("ignored-element", f"ignored <{child.tag}> inside <{tag}>", child, item)
        common: dict[str, Any] = {
            "label": label,
            "source": owner.attrib.get("source") or "manual",
            "occluded": self.flag(node, "occluded"),
            "z_order": self.integer(node, "z_order", 0),
            "group": group or None,
            "attributes": attributes,
        }
        if tag == "skeleton":
            geometry = self.skeleton(node, label, item)
            if geometry is None:
                return None
            cls: type[Shape] = Points
        else:
            cls, geometry = self._geometry[tag](node)
        try:
            shape = cls(**common, **geometry)
            check_shape(shape)
        except ValueError as err:  # the model's validation (too few points, x2 < x1, ...), limits
            few = cls in (Polygon, Polyline) and len(geometry["points_xy"]) < (3 if cls is Polygon else 2)
            if self.lenient and few:
                self.note("too-few-vertices", f"a <{tag}> of {len(geometry['points_xy'])} point(s) left out: {err}",
                          node, item)
                return None
            raise self.error(node, f"invalid <{tag}>: {err}") from err
        return shape

    # -- meta ------------------------------------------------------------------------------

    def read_labels(self, owner: Node | None) -> None:
        labels_node = owner.find("labels") if owner is not None else None
        if labels_node is None:
            return
        for node in labels_node.findall("label"):
            try:
                self.read_label(node)
            except ParseError as err:
                self.refuse(err, "label", "the <label> (its shapes are undeclared)")

    def read_label(self, node: Node) -> None:
        """One ``<label>`` of the meta (a skeleton node is a sublabel of its parent)."""
        name = node.findtext("name")
        if not name:
            raise self.error(node, "a <label> without a <name>")
        parent = (node.findtext("parent") or "").strip()
        if parent:
            self.sublabels.setdefault(parent, set()).add(name)
            return
        if name in self.label_names:
            raise self.error(node, f"the label {name!r} is declared twice")
        color = (node.findtext("color") or "").strip() or None
        if color is not None and not _COLOR.fullmatch(color):
            color_node = node.find("color")
            err = self.error(color_node if color_node is not None else node,
                             f"expected a label color like '#61b21f', got {color!r}")
            self.refuse(err, "label", f"the color of label {name!r}")
            color = None
        attributes = []
        attrs_node = node.find("attributes")
        for spec in attrs_node.findall("attribute") if attrs_node is not None else ():
            attr_name = spec.findtext("name")
            if not attr_name:
                raise self.error(spec, f"an <attribute> of label {name!r} without a <name>")
            attributes.append(
                AttributeSpec(
                    name=attr_name,
                    input_type=(spec.findtext("input_type") or "").strip() or "text",
                    default=spec.findtext("default_value") or "",
                    values=_split_values(spec.findtext("values") or ""),
                    mutable=(spec.findtext("mutable") or "").strip().lower() in ("true", "1"),
                )
            )
        label_type = (node.findtext("type") or "").strip() or "any"
        self.labels.append(Label(name, color=color, attributes=tuple(attributes), type=label_type))
        self.label_names.add(name)

    def meta_int(self, owner: Node, tag: str) -> int | None:
        child = owner.find(tag)
        if child is None or not child.text.strip():
            return None
        try:
            return int(child.text)
        except ValueError:
            raise self.error(child, f"expected a whole number in <{tag}>, got {child.text!r}") from None

    def frame_space(self, owner: Node, task_id: int | None, subset: str | None) -> _FrameSpace:
        start, stop = self.meta_int(owner, "start_frame"), self.meta_int(owner, "stop_frame")
        size = self.meta_int(owner, "size")
        step = 1
        filt = owner.find("frame_filter")
        if filt is not None and filt.text.strip():
            match = _STEP.fullmatch(filt.text)
            if match and int(match.group(1)) > 0:
                step = int(match.group(1))
            else:
                self.note(
                    "unknown-frame-filter",
                    f"cannot read the frame filter {filt.text.strip()!r}; items are the frames seen",
                    filt,
                )
                start = stop = size = None
        frames: list[int] | None = None
        if start is not None and stop is not None:
            count = len(range(start, stop + 1, step))
            if size is not None:
                count = min(count, size)
        elif size is not None:
            start, count = start or 0, size
        else:
            count = -1
        if count > MAX_FRAMES:
            raise self.error(owner, f"the export declares {count} frames, more than {MAX_FRAMES}")
        if count >= 0 and start is not None:
            frames = [start + i * step for i in range(count)]
        size_hw = None
        original = owner.find("original_size")
        if original is not None:
            w, h = self.meta_int(original, "width"), self.meta_int(original, "height")
            if w is not None and h is not None:
                if w <= 0 or h <= 0:
                    raise self.error(original, f"expected a positive frame size, got {w} x {h}")
                size_hw = (h, w)
                try:
                    check_size_hw(size_hw, "a frame")
                except ValueError as err:
                    raise self.error(original, str(err)) from None
        return _FrameSpace(task_id, subset, frames, size_hw, owner)

    # -- the document ----------------------------------------------------------------------

    def read(self, root: Node) -> tuple[list[Label], list[Item]]:
        if root.tag != "annotations":
            raise self.error(
                root,
                f"not a CVAT XML export: the root element is <{root.tag}>, expected <annotations>",
            )
        meta = root.find("meta")
        owner = None
        kind = None
        if meta is not None:
            for kind in ("job", "task", "project"):
                owner = meta.find(kind)
                if owner is not None:
                    break
        # a task export names the task's subset once, in its meta (a project export: on each <image>)
        self.default_subset = ((owner.findtext("subset") or "").strip() or None) if kind == "task" and owner is not None else None
        version = root.find("version")
        if version is not None and version.text.strip() not in ("1.0", "1.1"):
            self.note(
                "unknown-version", f"CVAT XML version {version.text.strip()!r}; read as 1.1", version
            )
        self.read_labels(owner)

        images: list[_ItemDraft] = []
        tracks: list[Node] = []
        for node in root.children:
            if node.tag == "image":
                try:
                    images.append(self.image(node))
                except ParseError as err:
                    self.refuse(err, "image", "the <image> with its shapes", node.attrib.get("name"))
            elif node.tag == "track":
                tracks.append(node)
            elif node.tag not in ("version", "meta"):
                self.note("ignored-element", f"ignored <{node.tag}> in <annotations>", node)

        if images:
            self.attach_tracks_to_images(tracks, images)
            drafts = images
        elif tracks or (owner is not None and (owner.findtext("mode") or "").strip() == "interpolation"):
            drafts = self.video_items(owner, kind, tracks)
        else:
            drafts = []
        items = []
        for d in drafts:
            items.append(Item(d.name, d.size_hw, tuple(d.shapes), d.image, d.subset, d.id))
        return self.labels, items

    def image(self, node: Node) -> _ItemDraft:
        name = self.attr(node, "name")
        width, height = self.integer(node, "width"), self.integer(node, "height")
        for key, value in (("width", width), ("height", height)):
            if value <= 0:
                raise self.error(node, f"expected a positive image {key}, got {value}", key)
        try:
            check_size_hw((height, width))
        except ValueError as err:
            raise self.error(node, str(err)) from None
        image_id = self.integer(node, "id") if "id" in node.attrib else None
        subset = node.attrib.get("subset") or self.default_subset
        draft = _ItemDraft(name, (height, width), subset, image_id)
        for child in node.children:
            shape = self.lenient_shape(child, name, len(draft.shapes))
            if shape is not None:
                draft.shapes.append(shape)
        draft.image = self.finder.find(name, subset)
        if draft.image is None:
            self.note("missing-image", f"image file not found in {self.finder.looked_in()}", node, name)
        return draft

    def attach_tracks_to_images(self, tracks: list[Node], images: list[_ItemDraft]) -> None:
        by_frame: dict[tuple[str | None, int], _ItemDraft] = {}
        for d in images:
            if d.id is not None:
                by_frame.setdefault((d.subset, d.id), d)
                by_frame.setdefault((None, d.id), d)
        for track in tracks:
            subset = track.attrib.get("subset") or None
            for node in track.children:
                try:
                    if node.tag == "attribute" or self.flag(node, "outside"):
                        continue
                    frame = self.integer(node, "frame")
                except ParseError as err:
                    self.refuse(err, "shape", f"the <{node.tag}> of the <track>")
                    continue
                draft = by_frame.get((subset, frame))
                if draft is None:
                    self.note(
                        "track-frame-without-image", f"no <image> with id {frame} for this track shape", node
                    )
                    continue
                shape = self.lenient_shape(node, draft.name, len(draft.shapes), track)
                if shape is not None:
                    draft.shapes.append(shape)

    def video_items(self, owner: Node | None, kind: str | None, tracks: list[Node]) -> list[_ItemDraft]:
        spaces: dict[int | None, _FrameSpace] = {}
        if owner is not None and kind == "project":
            tasks = owner.find("tasks")
            for task in tasks.findall("task") if tasks is not None else ():
                task_id = self.meta_int(task, "id")
                subset = (task.findtext("subset") or "").strip() or None
                spaces[task_id] = self.frame_space(task, task_id, subset)
        elif owner is not None:
            spaces[None] = self.frame_space(owner, None, self.default_subset)
        sole = next(iter(spaces.values())) if len(spaces) == 1 else None
        files: dict[tuple[int | None, int], tuple[str, ImageSource | None]] = {}

        def frame_file(space: _FrameSpace, frame: int) -> tuple[str, ImageSource | None]:
            """The item name and image file of a frame: ``frame_000010`` + the suffix found."""
            key = (space.task_id, frame)
            if key not in files:
                stem = _frame_stem(frame)
                files[key] = (stem, None)
                for suffix in IMAGE_SUFFIXES:
                    for variant in (suffix, suffix.upper()):
                        image = self.finder.find(stem + variant, space.subset)
                        if image is not None:
                            files[key] = (stem + variant, image)
                            return files[key]
            return files[key]

        shapes: dict[tuple[int | None, int], list[Shape]] = {}
        seen: dict[int | None, set[int]] = {}
        for track in tracks:
            task_id = self.integer(track, "task_id") if "task_id" in track.attrib else None
            space = spaces[task_id] if task_id in spaces else sole
            if space is None:
                subset = track.attrib.get("subset") or None
                space = spaces[task_id] = _FrameSpace(task_id, subset, None, None, track)
            for node in track.children:
                if node.tag == "attribute":
                    continue
                try:
                    frame = self.integer(node, "frame")
                    outside = self.flag(node, "outside")
                except ParseError as err:
                    self.refuse(err, "shape", f"the <{node.tag}> of the <track>")
                    continue
                seen.setdefault(space.task_id, set()).add(frame)
                if outside:
                    continue
                here = shapes.setdefault((space.task_id, frame), [])
                shape = self.lenient_shape(node, frame_file(space, frame)[0], len(here), track)
                if shape is not None:
                    here.append(shape)

        drafts = []
        for space in spaces.values():
            frames = sorted(set(space.frames or ()) | seen.get(space.task_id, set()))
            if frames and space.size_hw is None:
                raise self.error(
                    space.node,
                    "no <original_size> with <width> and <height> in the meta: the frame size of "
                    "this video export is unknown",
                )
            size_hw: tuple[int, int] = space.size_hw  # type: ignore[assignment]  # checked above
            for frame in frames:
                name, image = frame_file(space, frame)
                shapes_here = shapes.get((space.task_id, frame), [])
                drafts.append(_ItemDraft(name, size_hw, space.subset, frame, shapes_here, image))
                if image is None:
                    self.note(
                        "missing-image",
                        f"no image file {name}{{{','.join(IMAGE_SUFFIXES)}}} in {self.finder.looked_in()}",
                        space.node,
                        name,
                    )
        return drafts


def _frame_stem(frame: int) -> str:
    return f"frame_{frame:06d}"


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _split_values(text: str) -> tuple[str, ...]:
    parts = text.split("\n") if "\n" in text else text.split()
    return tuple(p.strip() for p in parts if p.strip())


def read_cvat(path: str | Path, *, images: str | Path | None = None, lenient: bool = False) -> Dataset:
    """Read a CVAT XML export ("CVAT for images 1.1" or "CVAT for video 1.1").

    Parameters
    ----------
    path : str or Path
        An ``.xml`` file; a folder holding ``annotations.xml`` (or a single ``.xml``) and
        ``images/``; or a ``.zip`` as CVAT downloads it (read in place, never extracted).
        Job, task and project exports are read alike.
    images : str or Path, optional
        A folder to look for image files in first, as ``images/<subset>/<name>``,
        ``images/<name>`` and ``images/<basename>`` (here ``images`` is this folder). Then
        the export itself is searched: ``images/<subset>/<name>``, ``images/<name>`` (then
        the same under ``imgs/``, ``img/``, ``Images/``, ``JPEGImages/``, ``frames/``),
        ``<subset>/<name>``, ``<name>`` relative to the XML's folder or the zip's root. A
        name that is absolute or climbs out with ``..`` is only looked up by its basename
        in this folder.
    lenient : bool
        Read what the strict reader refuses but can locate, as :func:`defectlab.qc.check` does:
        a shape with an undeclared label is kept (note ``undeclared-label``); a polygon of fewer
        than 3 points, a polyline of fewer than 2 (``too-few-vertices``), a shape, ``<image>`` or
        ``<label>`` with a missing or non-numeric attribute or any other refused value
        (``refused-shape``, ``refused-image``, ``refused-label``) is left out. Each note carries
        the file, line and (for a kept shape) the shape's index. Malformed XML is still an error.

    Returns
    -------
    Dataset
        Labels in declaration order (skeleton sublabels are not classes); one item per
        ``<image>`` (a project's image appears once per subset, ``Item.subset`` set), or one
        per video frame (``Item.id`` = frame number, name ``frame_000010.png``). Coordinates
        exactly as written. ``format="cvat"``, ``source=str(path)``; ``notes`` list what was
        skipped: unlabeled shapes, cuboids, missing images, ...

    Raises
    ------
    ImageError
        ``images`` is given but is not a folder.
    ParseError
        Not a CVAT XML export, malformed or truncated XML, a DOCTYPE or entity, an unknown
        shape element, a missing or non-numeric attribute, an undeclared label, a bad
        color, size or RLE, a shape the model refuses (a polygon of 2 points, ...), or an
        unsafe zip; the message names the file, the line and the element.

    Notes
    -----
    Skeletons become one :class:`~defectlab.model.Points` with ``names`` (node labels),
    nodes marked outside left out. Tracks become one shape per frame where they are not
    ``outside``; the track id is not kept, ``group_id`` becomes ``group``. ``group_id="0"``
    means "no group" in CVAT and is read as None.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> xml = pathlib.Path(tempfile.mkdtemp()) / "annotations.xml"
    >>> _ = xml.write_text('''<annotations><version>1.1</version><meta><job><labels>
    ...   <label><name>cavity</name><color>#61b21f</color><type>any</type></label></labels></job></meta>
    ...   <image id="0" name="a.png" width="64" height="64">
    ...     <ellipse label="cavity" occluded="0" cx="20.5" cy="30.25" rx="4" ry="3" rotation="30" z_order="0"/>
    ...   </image></annotations>''')
    >>> ds = read_cvat(xml)
    >>> ds[0].shapes[0].rotation_deg, ds.shape_counts()[("cavity", "ellipse")], ds.notes[0].code
    (30.0, 1, 'missing-image')
    """
    path = Path(path)
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise ImageError(f"{images_dir}: no such folder (given as images=)")
    root, display, finder = _load(path, images_dir)
    reader = _CvatReader(display, finder, lenient)
    labels, items = reader.read(root)
    try:
        return Dataset(tuple(labels), tuple(items), tuple(reader.notes), source=str(path), format="cvat")
    except ValueError as err:  # pragma: no cover - labels are checked while reading
        raise ParseError(display, str(err)) from err


def sniff_cvat(path: str | Path) -> bool:
    """True when ``path`` looks like a CVAT XML export (reads only a few KiB).

    An XML file whose root element is ``<annotations>``; a folder holding such an
    ``annotations.xml`` (or a single such ``.xml``); or a zip archive holding one (at its
    root or one folder down) — the same files :func:`read_cvat` would read.
    """
    path = Path(path)
    try:
        if path.is_dir():
            xml = path / _pick_xml(sorted(p.name for p in path.iterdir() if p.is_file()), str(path))
            with open(xml, "rb") as fh:
                return root_tag(fh.read(SNIFF_BYTES)) == "annotations"
        if not path.is_file():
            return False
        if is_zip(path):
            with SafeZip(path) as zf:
                member = _pick_xml(zf.names(), str(path))
                with zf.open(member) as fh:
                    return root_tag(fh.read(SNIFF_BYTES)) == "annotations"
        with open(path, "rb") as fh:
            return root_tag(fh.read(SNIFF_BYTES)) == "annotations"
    except (OSError, ParseError):
        return False
