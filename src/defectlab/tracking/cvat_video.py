"""CVAT for video 1.1 with tracks: written here, read back with their track ids.

Glossary of the format facts this module relies on (CVAT's documentation of "CVAT for video
1.1", its exporter ``cvat/apps/dataset_manager/formats/cvat.py`` and datumaro's
``cvat_format`` importer):

track           ``<track id label source [group_id]>`` directly under ``<annotations>``; one
                child shape element (``box``, ``polygon``, ``polyline``, ``points``,
                ``ellipse``, ``mask``) per frame, with ``frame``, ``keyframe`` (0/1),
                ``outside`` (0/1), ``occluded`` (0/1), ``z_order`` and the geometry.
frames          CVAT writes every frame of a track from its first keyframe on, the
                interpolated ones with ``keyframe="0"``; where the object leaves, one element
                with ``outside="1"`` (a keyframe) closes the track. An object that comes back
                has ``outside="0"`` again from that frame.
interpolation   between two keyframes CVAT interpolates boxes, ellipses and points linearly
                in their numbers; polygons are resampled, so their in-between frames are not
                a linear blend of the keyframes' vertices.
meta            ``<meta><task>`` with ``<mode>interpolation</mode>``, ``<size>`` (frames),
                ``<start_frame>``, ``<stop_frame>``, ``<labels>``, ``<original_size><width>
                <height>``. A task (not a job) is what every CVAT reader takes: datumaro's
                importer refuses ``<meta><job>``.
images          a CVAT video task's frames are ``images/frame_{frame:06d}.png`` in its zip.

What is written: every frame of each track from its first to its last frame (the frames
where the object is missing, ``outside="1"``), an ``outside="1"`` keyframe on the frame after
the last unless the video ends there; ``keyframe="1"`` on the first and last frames, on each
frame after a gap, and — for ellipses and boxes — on the frames that linear interpolation
between keyframes would miss by more than ``tolerance_px`` (so a labeler corrects a few
keyframes and CVAT fills in the rest). Polygons and masks are keyframes on every frame.

:func:`read_cvat_tracks` reads a video export with :func:`defectlab.read` (every frame's
shapes exactly as the CVAT reader gives them) and pairs each shape with the id of the
``<track>`` it came from, which :func:`defectlab.read` does not keep. The pairing follows
the reader's own order (tracks in file order, per frame) and is checked: labels must agree
shape for shape.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.model import Ellipse, Label
>>> tracks = [VideoTrack(7, "cavity", {f: Ellipse(label="cavity", cx=10 + f, cy=20, rx=4, ry=4) for f in range(5)})]
>>> out = pathlib.Path(tempfile.mkdtemp()) / "annotations.xml"
>>> write_cvat_video(tracks, out, labels=[Label("cavity", color="#1f77b4")], size_hw=(64, 64), n_frames=8)
>>> back = read_cvat_tracks(out)
>>> [(t.track_id, t.label, sorted(t.shapes)) for t in back.tracks]
[(7, 'cavity', [0, 1, 2, 3, 4])]
>>> back.keyframes[7]        # a straight line: first and last frame, and the outside frame
[0, 4, 5]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..errors import ParseError
from ..model import Box, Dataset, Ellipse, Label, Mask, Points, Polygon, Polyline, Shape

__all__ = ["VideoTrack", "VideoTracks", "annotations_xml", "read_cvat_tracks", "write_cvat_video", "DEFAULT_KEYFRAME_TOLERANCE"]

#: Largest miss, px, of CVAT's linear interpolation between written keyframes (ellipses, boxes).
DEFAULT_KEYFRAME_TOLERANCE = 0.5


@dataclass
class VideoTrack:
    """One object over the frames: ``shapes`` maps frame -> its shape on that frame.

    Frames missing from ``shapes`` between its first and last are written ``outside``.
    """

    track_id: int
    label: str
    shapes: Mapping[int, Shape]
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def first(self) -> int:
        return min(self.shapes)

    @property
    def last(self) -> int:
        return max(self.shapes)


@dataclass(frozen=True)
class VideoTracks:
    """Tracks read from a CVAT video export, with the dataset :func:`defectlab.read` gave."""

    dataset: Dataset
    tracks: tuple[VideoTrack, ...]
    keyframes: Mapping[int, list[int]]


def _num(v: float) -> str:
    return repr(float(v))  # the shortest decimal that reads back to the same float64


def _geometry(shape: Shape) -> tuple[str, dict[str, str]]:
    if isinstance(shape, Ellipse):
        attrs = {"cx": _num(shape.cx), "cy": _num(shape.cy), "rx": _num(shape.rx), "ry": _num(shape.ry)}
        if shape.rotation_deg:
            attrs["rotation"] = _num(shape.rotation_deg)
        return "ellipse", attrs
    if isinstance(shape, Box):
        x1, y1, x2, y2 = shape.xyxy
        attrs = {"xtl": _num(x1), "ytl": _num(y1), "xbr": _num(x2), "ybr": _num(y2)}
        if shape.rotation_deg:
            attrs["rotation"] = _num(shape.rotation_deg)
        return "box", attrs
    if isinstance(shape, (Polygon, Polyline, Points)):
        pts = ";".join(f"{_num(x)},{_num(y)}" for x, y in shape.points_xy)
        return shape.kind, {"points": pts}
    if isinstance(shape, Mask):
        flat = shape.bitmap.ravel()
        change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
        bounds = np.concatenate([[0], change, [flat.size]])
        runs = np.diff(bounds).tolist()
        if flat.size and flat[0]:
            runs = [0] + runs
        h, w = shape.bitmap.shape
        return "mask", {"rle": ", ".join(str(r) for r in runs), "left": str(shape.left), "top": str(shape.top),
                        "width": str(w), "height": str(h)}
    raise ValueError(f"a CVAT video track cannot hold a {shape.kind}")


def _numbers(shape: Shape) -> np.ndarray | None:
    """The numbers CVAT interpolates linearly, or None when it does not (polygons, masks)."""
    if isinstance(shape, Ellipse):
        return np.array([shape.cx, shape.cy, shape.rx, shape.ry, shape.rotation_deg])
    if isinstance(shape, Box):
        return np.array([*shape.xyxy, shape.rotation_deg])
    return None


def _keyframes(shapes: Mapping[int, Shape], tolerance: float) -> list[int]:
    """Frames to mark as keyframes so that linear interpolation stays within ``tolerance`` px."""
    frames = sorted(shapes)
    keys = {frames[0], frames[-1]}
    for a, b in zip(frames[:-1], frames[1:]):
        if b != a + 1:  # a gap: the frames around it are keyframes
            keys.update((a, b))
    if any(_numbers(shapes[f]) is None for f in frames):
        return frames
    # Douglas–Peucker over time, between consecutive keyframes
    runs = sorted(keys)
    out = set(runs)
    stack = [(runs[i], runs[i + 1]) for i in range(len(runs) - 1)]
    while stack:
        a, b = stack.pop()
        inside = [f for f in frames if a < f < b]
        if not inside:
            continue
        va, vb = _numbers(shapes[a]), _numbers(shapes[b])
        worst, at = 0.0, None
        for f in inside:
            t = (f - a) / (b - a)
            miss = np.abs(va + t * (vb - va) - _numbers(shapes[f]))
            miss[4 if len(miss) == 5 else -1] *= math.pi / 180 * 10  # rotation: degrees at 10 px radius
            m = float(miss.max())
            if m > worst:
                worst, at = m, f
        if at is not None and worst > tolerance:
            out.add(at)
            stack.extend([(a, at), (at, b)])
    return sorted(out)


def _label_xml(labels: Sequence[Label]) -> list[str]:
    lines = ["      <labels>"]
    for lab in labels:
        lines += ["        <label>", f"          <name>{escape(lab.name)}</name>"]
        if lab.color:
            lines.append(f"          <color>{escape(lab.color)}</color>")
        lines += [f"          <type>{escape(lab.type or 'any')}</type>", "          <attributes>", "          </attributes>",
                  "        </label>"]
    lines.append("      </labels>")
    return lines


def write_cvat_video(
    tracks: Iterable[VideoTrack],
    path: str | Path,
    *,
    labels: Sequence[Label],
    size_hw: tuple[int, int],
    n_frames: int,
    name: str = "defectlab tracks",
    tolerance_px: float = DEFAULT_KEYFRAME_TOLERANCE,
) -> None:
    """Write tracks as a "CVAT for video 1.1" ``annotations.xml`` (a task export).

    Parameters
    ----------
    tracks : iterable of VideoTrack
        Each with its shapes by frame (0-based frame numbers < ``n_frames``).
    path : str or Path
        The XML file to write (its folder must exist).
    labels : sequence of Label
        The task's labels; every track's label must be among them.
    size_hw : (int, int)
        Frame height and width, px.
    n_frames : int
        Frames of the video (``<size>``; ``stop_frame = n_frames - 1``).
    name : str
        The task name written in the meta.
    tolerance_px : float
        Keyframes are added until CVAT's linear interpolation between them misses no written
        ellipse or box by more than this (rotation counted at 10 px from the center).

    Raises
    ------
    ValueError
        A track with no shapes, a frame outside ``0..n_frames-1``, a label not declared, or a
        shape CVAT tracks cannot hold (tags).
    """
    names = {lab.name for lab in labels}
    h, w = size_hw
    out = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>", "  <meta>",
           "    <task>", "      <id>0</id>", f"      <name>{escape(name)}</name>", f"      <size>{n_frames}</size>",
           "      <mode>interpolation</mode>", "      <overlap>0</overlap>", "      <bugtracker></bugtracker>",
           "      <flipped>False</flipped>", "      <start_frame>0</start_frame>",
           f"      <stop_frame>{max(n_frames - 1, 0)}</stop_frame>", "      <frame_filter></frame_filter>",
           *_label_xml(labels), "      <original_size>", f"        <width>{w}</width>", f"        <height>{h}</height>",
           "      </original_size>", "    </task>", "  </meta>"]
    for track in tracks:
        if not track.shapes:
            raise ValueError(f"track {track.track_id}: no shapes")
        if track.label not in names:
            raise ValueError(f"track {track.track_id}: label {track.label!r} is not among the labels {sorted(names)}")
        frames = sorted(track.shapes)
        if frames[0] < 0 or frames[-1] >= n_frames:
            raise ValueError(f"track {track.track_id}: frames {frames[0]}..{frames[-1]} outside 0..{n_frames - 1}")
        keys = set(_keyframes(track.shapes, tolerance_px))
        source = track.shapes[frames[0]].source or "auto"
        out.append(f"  <track id={quoteattr(str(track.track_id))} label={quoteattr(track.label)} "
                   f"source={quoteattr(source)}>")
        last_shape: Shape | None = None
        for f in range(frames[0], min(frames[-1] + 2, n_frames)):
            shape = track.shapes.get(f)
            outside = shape is None
            if outside:
                shape = last_shape
                key = True  # CVAT marks the frame where an object leaves (or comes back) as a keyframe
            else:
                key = f in keys
            tag, geo = _geometry(shape)
            attrs = {"frame": str(f), "keyframe": str(int(key)), "outside": str(int(outside)),
                     "occluded": str(int(bool(shape.occluded))), "z_order": str(int(shape.z_order)), **geo}
            text = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
            out.append(f"    <{tag} {text}>")
            for k, v in {**track.attributes, **dict(shape.attributes)}.items():
                out.append(f"      <attribute name={quoteattr(k)}>{escape(str(v))}</attribute>")
            out.append(f"    </{tag}>")
            if not outside:
                last_shape = shape
        out.append("  </track>")
    out.append("</annotations>")
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")


def annotations_xml(path: str | Path) -> Path | None:
    """The XML (or zip) of an export given as a file or a folder; None when a folder holds none or several."""
    path = Path(path)
    if not path.is_dir():
        return path
    xml = path / "annotations.xml"
    if xml.is_file():
        return xml
    found = sorted(path.glob("*.xml"))
    return found[0] if len(found) == 1 else None


def read_cvat_tracks(path: str | Path, *, images: str | Path | None = None) -> VideoTracks:
    """Read a CVAT for video 1.1 export with the id of every shape's track.

    Parameters
    ----------
    path : str or Path
        The ``annotations.xml``, its folder, or the ``.zip`` CVAT downloads.
    images : str or Path, optional
        The folder of frame images, if not beside the export.

    Returns
    -------
    VideoTracks
        ``dataset``: what :func:`defectlab.read` gives (one item per frame, ``Item.id`` the
        frame number); ``tracks``: one :class:`VideoTrack` per ``<track>`` with a visible
        shape; ``keyframes``: track id -> frames marked ``keyframe="1"``.

    Raises
    ------
    ParseError
        Not a CVAT export with tracks, or its shapes cannot be paired with their tracks.
    """
    from ..formats import read
    from ..formats._archive import SafeZip, is_zip
    from ..formats._xml import parse_xml, parse_xml_file

    path = Path(path)
    ds = read(path, format="cvat", **({"images": images} if images is not None else {}))
    xml = annotations_xml(path)
    if xml is None:
        raise ParseError(path, "expected one annotations.xml in the folder")
    if is_zip(xml):
        with SafeZip(xml) as zf:
            member = next((n for n in zf.names() if n.rsplit("/", 1)[-1] == "annotations.xml"), None)
            if member is None:
                raise ParseError(xml, "no annotations.xml in the archive")
            root = parse_xml(zf.read(member), f"{xml}!{member}")
    else:
        root = parse_xml_file(str(xml))
    by_frame: dict[int, list[tuple[int, str]]] = {}
    keyframes: dict[int, list[int]] = {}
    track_labels: dict[int, str] = {}
    for node in root.children:
        if node.tag != "track":
            continue
        try:
            tid = int(node.attrib["id"])
        except (KeyError, ValueError) as err:
            raise ParseError(xml, "expected an integer track id", line=node.line, where="<track>") from err
        track_labels[tid] = node.attrib.get("label", "")
        for child in node.children:
            if child.tag == "attribute":
                continue
            frame = int(child.attrib.get("frame", "-1"))
            if child.attrib.get("keyframe") == "1":
                keyframes.setdefault(tid, []).append(frame)
            if child.attrib.get("outside") == "1":
                continue
            by_frame.setdefault(frame, []).append((tid, track_labels[tid]))
    per_track: dict[int, dict[int, Shape]] = {}
    for item in ds.items:
        expected = by_frame.get(item.id, [])
        if len(expected) != len(item.shapes) or any(lab != s.label for (_, lab), s in zip(expected, item.shapes)):
            raise ParseError(xml, f"frame {item.id}: {len(item.shapes)} shapes read but {len(expected)} visible "
                             "track shapes in the file; cannot pair shapes with tracks (skipped shapes? see notes)")
        for (tid, _), shape in zip(expected, item.shapes):
            per_track.setdefault(tid, {})[item.id] = shape
    tracks = tuple(VideoTrack(tid, track_labels[tid], per_track[tid]) for tid in track_labels if tid in per_track)
    return VideoTracks(ds, tracks, {k: sorted(set(v)) for k, v in keyframes.items()})
