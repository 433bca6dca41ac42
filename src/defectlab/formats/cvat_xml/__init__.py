"""CVAT XML: "CVAT for images 1.1" and "CVAT for video 1.1" exports, read (:mod:`.read`) and
written (:mod:`.write`).

Glossary of the format facts this module relies on
--------------------------------------------------
root            ``<annotations>``, then ``<version>1.1</version>``, ``<meta>``, then ``<image>``
                elements (images format) or ``<track>`` elements (video format).
meta            ``<meta>`` holds one of ``<job>``, ``<task>`` (what was exported) or
                ``<project>`` (with ``<tasks><task>…`` inside). Labels are in
                ``<job|task|project>/labels/label``.
label           ``name``, ``color`` (``#rrggbb``), ``type`` (any, bbox, ellipse, mask, polygon,
                polyline, points, skeleton, tag, cuboid), ``attributes/attribute`` with
                ``name, mutable, input_type, default_value, values``. ``values`` are
                newline-separated (current CVAT) or space-separated (old exports): split on
                newlines when the text has one, else on white space. A label with a
                ``<parent>`` is a skeleton node ("sublabel"), not a class.
image           ``<image id name width height [subset task_id]>``; ``subset``/``task_id`` only
                in project exports, where one image name may appear in several subsets.
shapes          children of ``<image>``: ``box`` (``xtl ytl xbr ybr [rotation]``), ``polygon``,
                ``polyline``, ``points`` (``points="x0,y0;x1,y1;…"``), ``ellipse``
                (``cx cy rx ry [rotation]``), ``mask`` (``rle left top width height``), ``tag``
                (no geometry), ``skeleton`` (one child ``<points label=node outside=0|1>`` per
                node), ``cuboid``. Common: ``label``, ``source``, ``occluded`` (0/1),
                ``z_order``, ``group_id`` (0 or absent: no group), child
                ``<attribute name="…">value</attribute>``.
rotation        degrees, clockwise on screen (y down), about the shape's center; written only
                when non-zero.
mask RLE        comma-separated run lengths, alternating, starting with background (0),
                row-major inside the ``width × height`` box whose top-left pixel is column
                ``left``, row ``top``; the runs sum to ``width * height``.
video           ``<track id label source [group_id]>`` holds one shape element per frame
                with ``frame outside occluded keyframe z_order``; ``outside="1"``: the object
                is not on that frame. CVAT writes every frame of a track (interpolated ones
                too), so nothing is interpolated here. Frames are the task's
                ``start_frame..stop_frame`` every ``frame_filter`` ``step=N``, ``size`` of them;
                their size is ``meta/task/original_size``; image files are
                ``images/frame_{frame:06d}.png``.
archive         CVAT downloads a zip holding ``annotations.xml`` and ``images/…`` (project
                exports: ``images/<subset>/…``).
coordinates     CVAT writes 2 decimals; this module reads them exactly as written and writes
                the shortest decimal that reads back to the same float64 (``repr``).

What the reader does with what it does not keep (each is a :class:`~defectlab.model.Note`):
``unlabeled-shape`` (``label=""``), ``skipped-cuboid``, ``empty-skeleton`` (every node
outside), ``missing-image``, ``ignored-element``, ``track-frame-without-image``,
``unknown-frame-filter``, ``unknown-version``. Track ids and ``keyframe`` flags are not kept;
skeleton nodes' ``occluded`` flags are not kept.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.model import Dataset, Ellipse, Item, Label
>>> ds = Dataset((Label("cavity", color="#61b21f"),),
...              (Item("a.png", (64, 64), (Ellipse(label="cavity", cx=10.5, cy=9, rx=3, ry=2),), id=0),))
>>> out = pathlib.Path(tempfile.mkdtemp()) / "annotations.xml"
>>> _ = write_cvat(ds, out)
>>> back = read_cvat(out)
>>> back.items[0].shapes == ds.items[0].shapes, back.labels == ds.labels
(True, True)
"""

from .read import IMAGE_SUFFIXES, SHAPE_ELEMENTS, read_cvat, sniff_cvat
from .write import write_cvat

__all__ = ["read_cvat", "write_cvat", "sniff_cvat", "SHAPE_ELEMENTS", "IMAGE_SUFFIXES"]
