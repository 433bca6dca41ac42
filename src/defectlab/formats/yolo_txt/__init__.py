"""YOLO (Ultralytics / Roboflow) detection and segmentation datasets, read (:mod:`.read`) and written
(:mod:`.write`); what both use in :mod:`.spec`.

Glossary of the format facts this module relies on
--------------------------------------------------
label file      one ``.txt`` per image, same stem; one object per line, fields separated by
                white space; empty lines are ignored. A missing or empty label file means
                "no objects" (a background image).
detect line     ``class xc yc w h``: box center and size.
segment line    ``class x1 y1 x2 y2 … xn yn``: a polygon of at least 3 points.
coordinates     normalized: x by the image width, y by the image height, into [0, 1]. YOLO
                stores no image size, so the sizes come from the image files.
class           a 0-based index into ``names``.
label path      the image path with its last ``images`` folder replaced by ``labels`` and
                the suffix by ``.txt``: ``images/train/a.jpg`` → ``labels/train/a.txt``
                (Ultralytics' ``img2label_paths``).
data.yaml       ``path`` (dataset root), ``train``, ``val``, ``test``: each a folder of images
                (searched recursively), an image file, a ``.txt`` file listing image paths
                (``./x`` relative to the list's folder), or a list of those; ``names``: a list
                or an ``{index: name}`` map; ``nc``: the class count (must match ``names``;
                alone, Ultralytics names the classes ``class_0``, …).
image suffixes  bmp dng jpeg jpg mpo png tif tiff webp pfm heic (Ultralytics' IMG_FORMATS).
Roboflow        ``<split>/images``, ``<split>/labels`` beside ``data.yaml``, whose entries
                read ``../train/images``, ``../valid/images``; Ultralytics retries such an
                entry without its leading ``../`` when it does not exist.
numbers         Ultralytics writes ``%g`` (6 significant digits), CVAT and datumaro
                ``%.6f``; this module writes ``%.6f``.

How Ultralytics differs from this reader (and why)
--------------------------------------------------
* Ultralytics decides "box or polygon" once per *file* (any line with more than 6 fields
  makes every line a polygon), so a box line in a polygon file is misread. This reader
  decides per *line*: 5 fields → box, an odd count ≥ 7 → polygon, anything else is an error.
* Ultralytics tolerates coordinates in [-0.01, 1.01]; this reader accepts [0, 1] within
  :data:`COORD_TOLERANCE` and refuses the rest (a sign of pixel or wrongly scaled labels).
* Ultralytics resolves a relative ``path`` against the working directory (then its datasets
  folder), and a missing ``path`` as the folder of ``data.yaml``; this reader resolves a
  relative ``path`` against the folder of ``data.yaml`` too, and falls back to that folder,
  with a note, when ``path`` does not exist (e.g. an absolute path from another machine).

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic import make_synthetic_dataset
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> ds = make_synthetic_dataset(tmp / "export", n_images=1)
>>> report = write_yolo(ds, tmp / "yolo", task="segment")
>>> back = read_yolo(tmp / "yolo")
>>> [lab.name for lab in back.labels] == [lab.name for lab in ds.labels], len(back)
(True, 1)
"""

from .read import read_yolo, sniff_yolo
from .spec import COORD_TOLERANCE, DECIMALS, IMG_SUFFIXES
from .write import write_yolo

__all__ = ["read_yolo", "write_yolo", "sniff_yolo", "IMG_SUFFIXES", "COORD_TOLERANCE", "DECIMALS"]
