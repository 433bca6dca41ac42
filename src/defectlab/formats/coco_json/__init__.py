"""COCO instances JSON (``instances_*.json``, Roboflow's ``_annotations.coco.json``), read (:mod:`.read`)
and written (:mod:`.write`); the RLE codec and defectlab's keys in :mod:`.spec`.

Glossary of the format facts this module relies on
--------------------------------------------------
document        one JSON object: ``images``, ``annotations``, ``categories`` (+ ``info``,
                ``licenses``). A bare JSON list is a *results* file (detections), not a dataset.
image           ``{id, file_name, width, height, …}``; ``file_name`` may hold folders.
category        ``{id, name, supercategory}``; ids need not be contiguous. Ids should start at
                1: datumaro (CVAT's importer) reads ``category_id`` 0 as "no label".
annotation      ``{id, image_id, category_id, segmentation, area, bbox, iscrowd}``.
bbox            ``[x, y, width, height]`` in continuous pixel coordinates, (0, 0) the top-left
                corner of the top-left pixel (pycocotools: "bbox=[0 0 1 1] encloses first pixel").
segmentation    either a list of polygons ``[[x0, y0, x1, y1, …], …]`` — the parts of one
                object, **unioned** (a polygon cannot express a hole) — or an RLE
                ``{"size": [h, w], "counts": …}`` over the *whole image*, **column-major**
                (Fortran order), runs alternating and starting with background; ``counts`` is a
                list (uncompressed) or a string (pycocotools' compressed form: 6 bits per
                character from ``'0'``, LEB128-like, each count from the third on stored as
                the difference to the count two before). Empty (``[]``): the object is its bbox.
iscrowd         0 or 1; usually 1 goes with RLE, but not always. torchvision's reference
                training ignores ``iscrowd: 1`` objects.
area            the pixel area of the object (some exporters write the box area instead).
extensions      CVAT and datumaro add ``"attributes": {"occluded": false, "rotation": 0.0, …}``
                to annotations; CVAT keeps a rotated box's angle (degrees, clockwise on screen)
                in ``attributes.rotation`` with the *unrotated* box in ``bbox``.
Roboflow        ``<split>/_annotations.coco.json`` with the images beside it (splits
                ``train``, ``valid``, ``test``); often a first category (id 0, named after the
                project, supercategory ``"none"``) that is the supercategory of every class
                and owns no annotation.
pycocotools     (checked with 2.0.11) fills polygons with the *even-odd* rule (a pentagram's
                inner star is empty; ours is non-zero winding); sends a polygon of exactly 4
                numbers down its box path (``frBbox``, which now raises ``TypeError`` on a
                list); needs a Fortran-ordered uint8 array in ``encode``; refuses counts that
                sum to more than ``h * w`` but decodes counts that sum to less into
                uninitialised memory — so this module checks every RLE and decodes it itself.

Layouts read
------------
* ``annotations/instances_<subset>.json`` + ``images/<subset>/…`` (COCO, datumaro, CVAT);
  ``instances_default.json`` is the subset-less file (``Item.subset`` None).
* ``<split>/_annotations.coco.json`` + images beside it (Roboflow): subsets from the folders.
* any single ``.json`` file, or a folder holding exactly one; the same in a ``.zip``.

Images are looked up by ``file_name`` in the ``images=`` folder first, then under the export
root (the folder above ``annotations/``, else the JSON's folder) as ``images/<subset>/``,
``images/`` (then the same under ``imgs/``, ``img/``, ``Images/``, ``JPEGImages/``, ``frames/``),
``<subset>/`` and the root itself.

What the reader does (each thing skipped is a :class:`~defectlab.model.Note`)
---------------------------------------------------------------------------
* polygons → one :class:`Polygon` per part; the parts of one annotation share a ``group``
  (the annotation id when it is free, else a new one), so they stay one object;
* RLE → a :class:`Mask` cropped to its pixels (``left``/``top`` = first column/row set);
  an empty one is skipped (``empty-mask``);
* no segmentation → a :class:`Box` from ``bbox`` (rotated by a CVAT ``rotation`` attribute);
* ``iscrowd: 1`` → attribute ``"iscrowd": "1"``; ``attributes`` → shape attributes as
  strings (``occluded`` → :attr:`Shape.occluded`); ``score`` → attribute ``"score"``;
* the annotation ``id`` is *not* kept (writers renumber); errors and notes name the
  annotation by JSON pointer (``/annotations/7``);
* categories that are another category's supercategory and that no annotation uses
  (Roboflow's parent) are dropped (``parent-category``); labels follow category ids.

What the writer adds: a ``"defectlab"`` object on an annotation when COCO cannot hold the
shape exactly — ``{"kind": "polyline", "points": […], "line_width": 3.0}``, ``{"kind":
"ellipse", "cx", "cy", "rx", "ry", "rotation_deg"}``, ``{"kind": "box", "xyxy": […],
"rotation_deg"}``, ``{"kind": "polygon", "points": […]}`` (a self-crossing polygon written
as RLE) — and ``group``, ``z_order``, ``source`` when not the defaults. Other COCO tools
ignore unknown keys and use the segmentation; :func:`read_coco` restores the shape from it.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.model import Dataset, Ellipse, Item, Label, Polyline
>>> ds = Dataset((Label("cavity"), Label("line")), (Item("a.png", (64, 64), (
...     Ellipse(label="cavity", cx=20.5, cy=30, rx=6, ry=4, rotation_deg=30),
...     Polyline(label="line", points_xy=[(5, 5), (40, 12.5)]))),))
>>> out = pathlib.Path(tempfile.mkdtemp()) / "coco"
>>> report = write_coco(ds, out, copy_images=False)
>>> sorted(p.name for p in (out / "annotations").iterdir()), report.n_instances
(['instances_default.json'], 2)
>>> back = read_coco(out)
>>> back[0].shapes == ds[0].shapes, [lab.name for lab in back.labels]
(True, ['cavity', 'line'])
"""

from .read import read_coco, sniff_coco
from .spec import rle_counts
from .write import write_coco

__all__ = ["read_coco", "write_coco", "sniff_coco", "rle_counts"]
