"""Label mask images in (class-index, binary, instance-id; CVAT "Segmentation mask 1.1"; :mod:`.read`),
instance-id TIFFs out (:mod:`.write`).

Glossary of the format facts this module relies on
--------------------------------------------------
class image     (H, W) integer image, one class index per pixel, 0 = background: what U-Net
                training uses (defectlab's ``unet`` writer: ``masks/<key>.png`` uint8 +
                ``classes.json``). Objects are its connected regions of one value.
binary image    (H, W) image of 0 and 255 (or 0/1, or bool): one class, foreground vs. not.
instance image  (H, W) integer image, 0 = background, every other value one object (napari
                Labels layers, cellpose ``*_cp_masks.png`` / ``*_masks.tif``, StarDist
                ``masks/*.tif``, defectlab's :func:`write_instance_tiffs`); usually uint16 or
                int32, stored as 16-bit PNG or TIFF. An id may have several disjoint parts.
classes.json    defectlab's class table: ``{"0": {"name": "background", ...}, "1": {"name",
                "color": "#rrggbb", "edge"}, ...}`` (plain ``{"1": "cavity"}`` is read too).
instances.csv   defectlab's per-instance class table beside instance images:
                ``image,instance_id,class_id,label`` (``image`` = the key of ``labels/<key>.tif``).
CVAT "Segmentation mask 1.1" (CVAT's docs, ``format-smask``; CVAT's exporter runs datumaro's
``voc_segmentation`` converter with ``apply_colormap=True``):

- ``labelmap.txt``: one label per line, ``name:r,g,b:parts:actions`` (parts and actions
  comma lists, usually empty: ``cavity:250,50,83::``); empty lines and lines starting with
  ``#`` are skipped. Optional: without it the 21 Pascal VOC labels are meant. CVAT writes its
  task's labels in order with their colors, preceded by ``background:0,0,0::`` unless the
  task has a label named ``background``. The line index (from 0) is the class index of
  1-channel masks.
- ``SegmentationClass/<id>.png``: RGB, each pixel the color of its label. CVAT's docs: the
  background is a label named ``background`` (any case, any color), any label colored
  black, or else an implicit black background.
- ``SegmentationObject/<id>.png``: RGB, instance ``k`` (1, 2, ... in ascending z-order)
  painted with color ``k`` of the Pascal VOC colormap (:func:`voc_colormap`: 1 = (128, 0,
  0), 2 = (0, 128, 0), 3 = (128, 128, 0), ...), 0 = black = none. Polygons, boxes and
  ellipses are exported as masks; a group is one instance (labelled as its largest
  object). Color 255 = (224, 224, 192) is
  VOC's "void" (object borders in real VOC data): not an object.
- Masks "can have either 1 or 3 channels": a 1-channel mask holds indices directly.
- ``ImageSets/Segmentation/<subset>.txt``: item ids (image names without extension), one a
  line; CVAT writes ``default.txt``. Ids of images without annotations are listed too, but
  have no mask files.
- ``JPEGImages/<id>.<ext>``: the images, only when exported with "save images".

What the reader does with what it does not keep (each is a :class:`~defectlab.model.Note`):
``mask-kind`` (how the images were read), ``missing-image``, ``skipped-file`` (a file that is
not a PNG/TIFF, e.g. ``notes.txt``; a PNG/TIFF that cannot be decoded is a ParseError
instead), ``ignored-folder``, ``no-labelmap``, ``void-pixels``, ``mixed-class-instance``,
``unclassified-instance``, ``no-mask`` (a listed item with neither mask nor image),
``unlisted-mask``.

Limitation of semantic masks: two touching defects of one class are one region in a class
image, so they are read as **one** object; only instance images keep them apart.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from PIL import Image
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> m = np.zeros((8, 10), np.uint8); m[1:3, 1:4] = 1; m[5:7, 6:9] = 2
>>> Image.fromarray(m).save(folder / "a.png")
>>> ds = read_masks(folder, classes={1: "cavity", 2: "loop"})
>>> [(s.label, s.left, s.top, s.bitmap.shape) for s in ds[0].shapes]
[('cavity', 1, 1, (2, 3)), ('loop', 6, 5, (2, 3))]
"""

from .read import MASK_SUFFIXES, read_masks, sniff_masks, voc_colormap
from .write import write_instance_tiffs

__all__ = ["read_masks", "sniff_masks", "write_instance_tiffs", "voc_colormap", "MASK_SUFFIXES"]
