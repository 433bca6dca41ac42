"""What the training images looked like (``reference.json``), and how unlike them a new image is.

Training records, in the model folder, a small reference of its training images
(:func:`training_reference`): per image the raw intensity percentiles (1, 50, 99 %) and the
noise level (a robust standard deviation of neighboring pixels' differences), and the
distribution of the labeled objects' equivalent diameters (px; connected regions of each
non-line class in the class masks). Prediction compares each image with it
(:func:`compare`) on four features:

=================  ===============================================  ======================
feature            of an image                                      spread floor
=================  ===============================================  ======================
``level``          median intensity, raw                            0.1 × the training
                                                                    images' median range
``contrast``       ln(p99 − p1): the intensity range                ln 1.5
``noise``          ln(noise / (p99 − p1)): noise relative to range  ln 1.5
``median_position``  (p50 − p1) / (p99 − p1): 1 − it if inverted     0.05
=================  ===============================================  ======================

A feature's z-score is its distance from the training images' median over their spread
(1.4826 × the median absolute deviation, a standard deviation for normal data), the spread
never below the floor: a model trained on one or a few images has no spread of its own, and
the floors say what is "far" then (a range 1.5× wider is one unit). An image is **unlike the
training set** when a z-score exceeds :data:`Z_FLAG` = 3 (three spreads: the range 3.4× wider or
narrower, the median moved by 0.15 of the range), or when at least :data:`MIN_OBJECTS`
predicted objects were found and more than half of them have equivalent diameters outside the
training objects' 1–99 % range widened by 25 % (in distribution, about 2 % would be). Its
**unlikeness** is the larger of ``max |z| / Z_FLAG`` and ``(share of objects outside) / 0.5``:
1 or more is flagged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ParseError

__all__ = ["MIN_OBJECTS", "REFERENCE_FILE", "Reference", "Unlikeness", "Z_FLAG", "compare", "diameters_px",
           "image_stats", "read_reference", "training_reference"]

#: The reference's file in a model folder.
REFERENCE_FILE = "reference.json"
#: A z-score over this flags an image.
Z_FLAG = 3.0
#: Sizes are compared only when a prediction has at least this many objects.
MIN_OBJECTS = 3
#: Widening of the training objects' 1–99 % diameter range before counting objects outside it.
SIZE_MARGIN = 1.25
_FEATURES = ("level", "contrast", "noise", "median_position")
_MOST_PIXELS = 1 << 20


def image_stats(image: np.ndarray) -> dict[str, float]:
    """Raw intensity percentiles ``p1``, ``p50``, ``p99`` and the ``noise`` level of an image.

    ``noise`` is 1.4826 × the median absolute deviation of horizontally neighboring pixels'
    differences, over √2: the standard deviation of white noise, little moved by edges.
    Large images are subsampled to about a megapixel (rows and columns at a stride).

    Examples
    --------
    >>> g = np.random.default_rng(0).normal(100, 5, (256, 256))
    >>> s = image_stats(g); round(s["p50"]), round(s["noise"])
    (100, 5)
    """
    from ..imaging.io import to_gray

    g = np.asarray(to_gray(np.asarray(image)), dtype=np.float64)
    step = max(1, int(math.ceil(math.sqrt(g.size / _MOST_PIXELS))))
    rows = g[::step]
    p1, p50, p99 = (float(v) for v in np.percentile(rows[:, ::step], [1, 50, 99]))
    d = np.diff(rows, axis=1).ravel()
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2) if d.size else 0.0
    return {"p1": p1, "p50": p50, "p99": p99, "noise": noise}


def diameters_px(instances_or_mask: np.ndarray, classes: Sequence[int] | None = None) -> np.ndarray:
    """Equivalent diameters ``2 sqrt(area / pi)`` (px, float64) of the connected regions of
    each class in ``classes`` of a class mask (or of every id of an instance image, with
    ``classes=None``)."""
    from scipy import ndimage

    if classes is None:
        areas = np.bincount(instances_or_mask.ravel().astype(np.int64))[1:]
    else:
        areas_l = []
        for c in classes:
            lab, n = ndimage.label(instances_or_mask == c)
            if n:
                areas_l.append(np.bincount(lab.ravel())[1:])
        areas = np.concatenate(areas_l) if areas_l else np.zeros(0, np.int64)
    areas = areas[areas > 0]
    return 2.0 * np.sqrt(areas.astype(np.float64) / math.pi)


def _features(stats: dict[str, float]) -> dict[str, float]:
    rng = max(stats["p99"] - stats["p1"], 1e-12)
    return {"level": stats["p50"], "contrast": math.log(rng), "noise": math.log(max(stats["noise"], 1e-12) / rng),
            "median_position": (stats["p50"] - stats["p1"]) / rng}


@dataclass
class Reference:
    """The training images' statistics (:func:`image_stats` per image) and objects' sizes.

    Attributes
    ----------
    images : list of dict
        ``name``, ``p1``, ``p50``, ``p99``, ``noise`` per training image (raw intensities).
    diameters_px : dict or None
        ``n`` and the quantiles ``q01``, ``q05``, ``q50``, ``q95``, ``q99`` of the labeled
        objects' equivalent diameters, px; None without objects.
    """

    images: list[dict[str, Any]]
    diameters_px: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"format": "defectlab-reference", "version": 1, "images": self.images,
                           "diameters_px": self.diameters_px,
                           "rule": f"flagged when a feature's robust z-score exceeds {Z_FLAG:g} or more than half of "
                                   f"at least {MIN_OBJECTS} predicted objects lie outside the diameters' "
                                   f"q01/{SIZE_MARGIN:g}..q99*{SIZE_MARGIN:g}", "notes": self.notes},
                          indent=2) + "\n"

    def spread(self) -> dict[str, tuple[float, float]]:
        """Feature -> (median, spread) over the training images (see the module docstring)."""
        feats = [_features(im) for im in self.images]
        ranges = [im["p99"] - im["p1"] for im in self.images]
        floors = {"level": 0.1 * max(float(np.median(ranges)), 1e-12), "contrast": math.log(1.5),
                  "noise": math.log(1.5), "median_position": 0.05}
        out = {}
        for name in _FEATURES:
            v = np.array([f[name] for f in feats], dtype=np.float64)
            med = float(np.median(v))
            out[name] = (med, max(1.4826 * float(np.median(np.abs(v - med))), floors[name]))
        return out


def read_reference(path: str | Path) -> Reference:
    """A ``reference.json`` (a file, or the model folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / REFERENCE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        images = [{"name": str(im["name"]), **{k: float(im[k]) for k in ("p1", "p50", "p99", "noise")}}
                  for im in raw["images"]]
        sizes = raw.get("diameters_px")
        sizes = None if sizes is None else {k: float(v) for k, v in sizes.items()}
    except json.JSONDecodeError as err:
        raise ParseError(path, f"not JSON: {err.msg}", where=f"line {err.lineno}") from err
    except (KeyError, TypeError, ValueError) as err:
        raise ParseError(path, f"expected a defectlab reference (images with name, p1, p50, p99, noise), got {err!r}",
                         where="/images") from err
    if not images:
        raise ParseError(path, "expected at least one training image", where="/images")
    return Reference(images, sizes, list(raw.get("notes", [])))


def _quantiles(d: np.ndarray) -> dict[str, float] | None:
    if not d.size:
        return None
    q = np.quantile(d, [0.01, 0.05, 0.5, 0.95, 0.99])
    return {"n": float(d.size), **{k: round(float(v), 3) for k, v in zip(("q01", "q05", "q50", "q95", "q99"), q)}}


def training_reference(images: Sequence[tuple[str, np.ndarray]], masks: Sequence[np.ndarray] = (),
                       object_classes: Sequence[int] = ()) -> Reference:
    """The reference of training images ``(name, raw image)`` and their class masks
    (objects: the connected regions of ``object_classes``)."""
    stats = [{"name": name, **{k: round(v, 6) for k, v in image_stats(img).items()}} for name, img in images]
    d = [diameters_px(m, list(object_classes)) for m in masks]
    return Reference(stats, _quantiles(np.concatenate(d)) if d else None)


@dataclass(frozen=True)
class Unlikeness:
    """How unlike the training images one image is (:func:`compare`).

    ``z``: feature -> z-score; ``outside``: share of the predicted objects whose sizes are
    outside the training range (None: not compared); ``score``: the unlikeness (>= 1:
    flagged); ``note``: why it is flagged, or "".
    """

    z: dict[str, float]
    outside: float | None
    score: float
    note: str

    @property
    def flagged(self) -> bool:
        return self.score >= 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 3), "flagged": self.flagged, "z": {k: round(v, 2) for k, v in self.z.items()},
                "objects_outside_sizes": None if self.outside is None else round(self.outside, 3), "note": self.note}


_SAY = {"level": "median intensity", "contrast": "intensity range", "noise": "noise relative to the range",
        "median_position": "where the median sits in the range (inverted contrast?)"}


def compare(reference: Reference, image: np.ndarray, instances: np.ndarray | None = None,
            instance_classes: np.ndarray | None = None, object_classes: Sequence[int] | None = None) -> Unlikeness:
    """How unlike ``reference``'s images ``image`` and its predicted objects are (module docstring).

    ``instances`` (H, W) int32 and ``instance_classes`` (N,) give the predicted objects;
    those of ``object_classes`` (None: all) are compared with the training sizes.
    """
    feats = _features(image_stats(image))
    z = {name: (feats[name] - med) / s for name, (med, s) in reference.spread().items()}
    said = [f"{_SAY[k]} {v:+.1f} spreads from the training images'" for k, v in z.items() if abs(v) > Z_FLAG]
    outside = None
    sizes = reference.diameters_px
    if sizes is not None and instances is not None and instance_classes is not None:
        d = diameters_px(instances)
        if len(d) == len(instance_classes) and object_classes is not None:
            d = d[np.isin(instance_classes, list(object_classes))]
        if len(d) >= MIN_OBJECTS:
            lo, hi = sizes["q01"] / SIZE_MARGIN, sizes["q99"] * SIZE_MARGIN
            outside = float(np.mean((d < lo) | (d > hi)))
            if outside > 0.5:
                said.append(f"{outside:.0%} of the objects' diameters (median {np.median(d):.1f} px) outside the "
                            f"training objects' {lo:.1f}-{hi:.1f} px")
    score = max(max(abs(v) for v in z.values()) / Z_FLAG, 0.0 if outside is None else outside / 0.5)
    return Unlikeness(z, outside, score, "; ".join(said))


def reference_from_training(source: Any, data: Any, indices: Sequence[int]) -> Reference:
    """The reference of the training images ``indices`` of ``data`` (a
    :class:`~defectlab.dl.data.TrainingData` read from ``source``, a
    :class:`~defectlab.dl.data.Source`): the raw images read again from the source, the
    objects from the samples' class masks where they have them (per-pixel architectures).
    An image that cannot be read again is left out with a note: the reference never stops
    training."""
    from ..imaging.io import read_image
    from ..model import ImageSource

    by_key = {}
    if getattr(source, "dataset", None) is not None:
        by_key = {it.key: it.image for it in source.dataset.items if it.image is not None}
    folder = getattr(source, "folder", None)
    images, masks, notes = [], [], []
    for i in indices:
        name = data.names[i]
        try:
            if name in by_key:
                img = read_image(by_key[name])
            elif folder is not None:
                hits = [p for p in sorted((Path(folder) / "images").glob(f"{name}.*"))
                        if p.suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")]
                if not hits:
                    raise FileNotFoundError(f"no image {name}.* under {Path(folder) / 'images'}")
                img = read_image(ImageSource(hits[0]))
            else:
                raise FileNotFoundError(f"no image file for {name}")
        except (OSError, ValueError) as err:
            notes.append(f"{name}: left out of the reference ({err})")
            continue
        images.append((name, img))
        mask = getattr(data.samples[i], "mask", None)
        if isinstance(mask, np.ndarray) and mask.ndim == 2:
            masks.append(mask)
    if not images:
        return Reference([], None, notes)
    ref = training_reference(images, masks, [c.index for c in data.classes if not c.is_line])
    ref.notes = notes
    return ref
