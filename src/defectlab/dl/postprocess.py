"""Post-processing chosen on what scientists report: counts and sizes, not Dice.

A per-pixel classifier's class mask becomes objects by :func:`~defectlab.raster.split.split_instances`:
pieces under ``min_area_px`` pixels get no instance (specks of bright background, a few
noisy pixels), and touching round objects are split at necks narrower than ``neck_ratio``.
The fixed default (4 px) keeps specks of 5 px and more, which a labeler never draws; a count
of defects per image is then wrong even where the pixel IoU is fine.

:func:`choose_min_area` picks the minimum object area on the validation images: for each
candidate it makes the instances of the predicted mask exactly as prediction will, and
scores **count error + size error** against the labeled ones (made the same way, every
object kept), pooled over the images and the classes:

* count error: ``Σ |n_predicted − n_labeled| / Σ n_labeled``;
* size error: ``Σ n_labeled · |mean area predicted − mean area labeled| / mean area labeled``
  ``/ Σ n_labeled``, over the (image, class) pairs with labeled objects.

The candidates run from 1 px to half the median labeled area (never so large that a typical
defect would be dropped); the smallest of equal scores wins. Training stores the choice in
the model folder (``postprocess.json``, :data:`POSTPROCESS_FILE`) and prediction uses it,
unless ``PredictOptions.min_area_px`` is given. No torch here.

Examples
--------
>>> import numpy as np
>>> truth = np.zeros((40, 40), np.uint8); truth[5:15, 5:15] = 1; truth[25:35, 25:35] = 1
>>> pred = truth.copy(); pred[2:5, 30:33] = 1; pred[30:32, 2:5] = 1   # two specks, 9 and 6 px
>>> choice = choose_min_area([(pred, truth)], split=[1])
>>> choice["min_area_px"], choice["count_error"], choice["default_count_error"]
(12, 0.0, 1.0)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import ParseError
from ..raster.split import DEFAULT_NECK_RATIO, split_instances

__all__ = ["DEFAULT_MIN_AREA_PX", "POSTPROCESS_FILE", "choose_min_area", "read_postprocess", "report_errors"]

#: The model folder's file of post-processing settings chosen on the validation images.
POSTPROCESS_FILE = "postprocess.json"
#: The minimum object area of a model without a choice of its own.
DEFAULT_MIN_AREA_PX = 4


def _objects(semantic: np.ndarray, split: bool | Iterable[int], min_area_px: int,
             neck_ratio: float) -> dict[int, np.ndarray]:
    """class index -> (n,) areas in px of its instances."""
    inst, cls = split_instances(semantic, split=split, min_area_px=min_area_px, neck_ratio=neck_ratio)
    areas = np.bincount(inst.ravel(), minlength=len(cls) + 1)[1:]
    return {int(c): areas[cls == c] for c in np.unique(cls)}


def report_errors(predicted: Sequence[dict[int, np.ndarray]],
                  labeled: Sequence[dict[int, np.ndarray]]) -> tuple[float, float]:
    """(count error, size error) of predicted against labeled object areas (see the module docstring)."""
    n_true = diff = size = 0.0
    for pred, true in zip(predicted, labeled):
        for c in set(pred) | set(true):
            p, t = pred.get(c, np.zeros(0)), true.get(c, np.zeros(0))
            n_true += len(t)
            diff += abs(len(p) - len(t))
            if len(t):
                mean_t = float(t.mean())
                mean_p = float(p.mean()) if len(p) else 0.0
                size += len(t) * abs(mean_p - mean_t) / mean_t
    if n_true == 0:
        return (0.0 if diff == 0 else float("inf")), 0.0
    return diff / n_true, size / n_true


def _candidates(labeled: Sequence[dict[int, np.ndarray]]) -> list[int]:
    areas = np.concatenate([a for d in labeled for a in d.values()] or [np.zeros(0)])
    top = max(1, int(np.median(areas) // 2)) if len(areas) else DEFAULT_MIN_AREA_PX
    out, a = [], 1
    while a <= top:
        out.append(a)
        a = a + 1 if a < 4 else int(np.ceil(a * 1.25))
    return sorted(set(out) | ({DEFAULT_MIN_AREA_PX} if DEFAULT_MIN_AREA_PX <= top else set()))


def choose_min_area(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, split: bool | Iterable[int] = True,
                    neck_ratio: float = DEFAULT_NECK_RATIO) -> dict[str, Any]:
    """The minimum object area that best reproduces the labeled counts and sizes.

    Parameters
    ----------
    pairs : iterable of ((H, W), (H, W)) integer arrays
        (predicted, labeled) class-index masks of the validation images.
    split : bool or iterable of int
        The classes split at necks (as prediction splits them; line classes are not).
    neck_ratio : float
        The neck ratio prediction uses.

    Returns
    -------
    dict
        ``min_area_px``; its ``count_error`` and ``size_error``; those of the fixed default
        (``default_count_error``, ``default_size_error``); ``candidates`` tried;
        ``n_labeled`` objects; ``n_images``; ``method``.
    """
    split = split if isinstance(split, bool) else [int(c) for c in split]
    preds, truths = [], []
    for pred, truth in pairs:
        preds.append(np.asarray(pred))
        truths.append(_objects(np.asarray(truth), split, 1, neck_ratio))
    candidates = _candidates(truths)
    scores: dict[int, tuple[float, float]] = {}
    for a in sorted(set(candidates) | {DEFAULT_MIN_AREA_PX}):
        scores[a] = report_errors([_objects(p, split, a, neck_ratio) for p in preds], truths)
    best = min(candidates, key=lambda a: (sum(scores[a]), a))
    count, size = scores[best]
    d_count, d_size = scores[DEFAULT_MIN_AREA_PX]
    return {"min_area_px": int(best), "count_error": round(count, 6), "size_error": round(size, 6),
            "default_min_area_px": DEFAULT_MIN_AREA_PX, "default_count_error": round(d_count, 6),
            "default_size_error": round(d_size, 6), "candidates": [int(a) for a in candidates],
            "n_labeled": int(sum(len(a) for d in truths for a in d.values())), "n_images": len(preds),
            "neck_ratio": float(neck_ratio),
            "method": "least count error + size error on the validation images"}


def read_postprocess(folder: str | Path) -> dict[str, Any]:
    """A model folder's ``postprocess.json`` ({} without one); a bad file is a ParseError
    naming it."""
    path = Path(folder) / POSTPROCESS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ParseError(path, f"not valid JSON: {err.msg}", line=err.lineno, column=err.colno) from err
    if not isinstance(data, dict):
        raise ParseError(path, f"expected an object, got {type(data).__name__}", where="/")
    value = data.get("min_area_px")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ParseError(path, f"expected min_area_px an integer >= 1, got {value!r}", where="/min_area_px")
    return data
