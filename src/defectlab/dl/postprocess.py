"""Post-processing chosen on what scientists report: counts and sizes, not Dice.

A per-pixel classifier's class mask becomes objects by :func:`~defectlab.raster.split.split_instances`:
pieces under ``min_area_px`` pixels get no instance (specks of bright background, a few
noisy pixels), and touching round objects are split at necks narrower than ``neck_ratio``.
The fixed default (4 px) keeps specks of 5 px and more, which a labeler never draws; a count
of defects per image is then wrong even where the pixel IoU is fine.

:func:`choose_min_area` picks the minimum object area of each class on the validation images:
for each candidate it makes the instances of the predicted mask exactly as prediction will,
and scores **count error + size error** against the labeled ones (made the same way, every
object kept), over the images:

* count error: ``Σ |n_predicted − n_labeled| / Σ n_labeled``;
* size error: ``Σ n_labeled · |mean area predicted − mean area labeled| / mean area labeled``
  ``/ Σ n_labeled``, over the (image, class) pairs with labeled objects.

Each class labeled on the validation images gets its own choice (loops are ten times larger
than the cavities whose rim fragments a net may call loops); the candidates run from 1 px to
half the class's median labeled area (never so large that a typical defect would be dropped),
and of those whose score is within one object's worth (``1 / n_labeled``) of the best, the one
nearest the geometric middle of their range wins: a handful of validation objects cannot tell
close areas apart, and the middle keeps a margin both from the specks new images may have and
from the smallest defects. Other classes take one area chosen so on all classes pooled. Training
stores the choice in the model folder (``postprocess.json``, :data:`POSTPROCESS_FILE`) and
prediction uses it, unless ``PredictOptions.min_area_px`` is given. No torch here.

Examples
--------
>>> import numpy as np
>>> truth = np.zeros((40, 40), np.uint8); truth[5:15, 5:15] = 1; truth[25:35, 25:35] = 1
>>> pred = truth.copy(); pred[2:5, 30:33] = 1; pred[30:32, 2:5] = 1   # two specks, 9 and 6 px
>>> choice = choose_min_area([(pred, truth)], split=[1])
>>> choice["min_area_px_by_class"], choice["count_error"], choice["default_count_error"]
({'1': 24}, 0.0, 1.0)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import ParseError
from ..raster.split import DEFAULT_NECK_RATIO, split_instances

__all__ = ["DEFAULT_MIN_AREA_PX", "POSTPROCESS_FILE", "choose_min_area", "min_areas", "read_postprocess", "report_errors"]

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
    return _pooled(_errors_by_class(predicted, labeled).values())


def _candidates(labeled: Sequence[dict[int, np.ndarray]]) -> list[int]:
    areas = np.concatenate([a for d in labeled for a in d.values()] or [np.zeros(0)])
    top = max(1, int(np.median(areas) // 2)) if len(areas) else DEFAULT_MIN_AREA_PX
    out, a = [], 1
    while a <= top:
        out.append(a)
        a = a + 1 if a < 4 else int(np.ceil(a * 1.25))
    return sorted(set(out) | ({DEFAULT_MIN_AREA_PX} if DEFAULT_MIN_AREA_PX <= top else set()))


def _errors_by_class(predicted: Sequence[dict[int, np.ndarray]], labeled: Sequence[dict[int, np.ndarray]]
                     ) -> dict[int, np.ndarray]:
    """class -> [n labeled, Σ |count difference|, Σ n_labeled · relative mean-size error] over
    the images: the terms :func:`report_errors` pools (:func:`_pooled`)."""
    out: dict[int, np.ndarray] = {}
    for pred, true in zip(predicted, labeled):
        for c in set(pred) | set(true):
            p, t = pred.get(c, np.zeros(0)), true.get(c, np.zeros(0))
            size = 0.0
            if len(t):
                mean_t = float(t.mean())
                mean_p = float(p.mean()) if len(p) else 0.0
                size = len(t) * abs(mean_p - mean_t) / mean_t
            out[c] = out.get(c, np.zeros(3)) + np.array([len(t), abs(len(p) - len(t)), size], dtype=np.float64)
    return out


def _pooled(terms: Iterable[np.ndarray]) -> tuple[float, float]:
    """(count error, size error) of :func:`_errors_by_class` terms summed."""
    n, diff, size = np.sum(list(terms) or [np.zeros(3)], axis=0)
    if n == 0:
        return (0.0 if diff == 0 else float("inf")), 0.0
    return float(diff / n), float(size / n)


def _middle_near_best(candidates: Sequence[int], score: dict[int, float], n_labeled: float) -> int:
    """Of the candidates scoring within one object's worth (1 / n_labeled) of the best, the one
    nearest the geometric middle of their range."""
    best = min(score[a] for a in candidates)
    slack = 1.0 / n_labeled if n_labeled else 0.0
    near = [a for a in candidates if score[a] <= best + slack + 1e-12]
    middle = math.sqrt(min(near) * max(near))
    return min(near, key=lambda a: (abs(math.log(a / middle)), a))


def choose_min_area(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, split: bool | Iterable[int] = True,
                    neck_ratio: float = DEFAULT_NECK_RATIO) -> dict[str, Any]:
    """The minimum object area of each class that best reproduces the labeled counts and sizes.

    Each class labeled on the validation images gets its own minimum area (a speck that is
    no cavity is not a loop either, but loops are ten times larger): among the class's
    candidates (1 px to half its median labeled area), of those whose count error + size error
    is within one object's worth (``1 / n`` for ``n`` labeled objects of the class) of the best,
    the one nearest the geometric middle of their range — a few validation objects cannot tell
    close areas apart (a clean validation image scores 1 px as well as 20), and the middle keeps
    a margin from the specks of new images and from the smallest defects alike. Classes not labeled on the validation images take one minimum area
    chosen the same way on all classes pooled (``min_area_px``).

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
        ``min_area_px_by_class`` (class index as a string -> px), ``min_area_px`` (the pooled
        choice, for the other classes); the ``count_error`` and ``size_error`` of the choice;
        those of the fixed default (``default_count_error``, ``default_size_error``);
        ``candidates`` tried; ``n_labeled`` objects; ``n_images``; ``method``.
    """
    split = split if isinstance(split, bool) else [int(c) for c in split]
    preds, truths = [], []
    for pred, truth in pairs:
        preds.append(np.asarray(pred))
        truths.append(_objects(np.asarray(truth), split, 1, neck_ratio))
    labeled = sorted({c for t in truths for c, a in t.items() if len(a)})
    own = {c: _candidates([{c: t[c]} for t in truths if c in t]) for c in labeled}
    candidates = _candidates(truths)
    tried = sorted(set(candidates).union(*own.values(), {DEFAULT_MIN_AREA_PX}))
    terms = {a: _errors_by_class([_objects(p, split, a, neck_ratio) for p in preds], truths) for a in tried}
    pooled = {a: sum(_pooled(terms[a].values())) for a in tried}
    n_all = sum(len(a) for t in truths for a in t.values())
    single = _middle_near_best(candidates, pooled, n_all)
    by_class = {}
    for c in labeled:
        score = {a: sum(_pooled([terms[a][c]])) for a in own[c]}
        by_class[c] = _middle_near_best(own[c], score, sum(len(t.get(c, ())) for t in truths))
    chosen = [terms[by_class.get(c, single)].get(c, np.zeros(3)) for c in set().union(*terms.values())]
    count, size = _pooled(chosen)
    d_count, d_size = _pooled(terms[DEFAULT_MIN_AREA_PX].values())
    return {"min_area_px_by_class": {str(c): int(a) for c, a in by_class.items()}, "min_area_px": int(single),
            "count_error": round(count, 6), "size_error": round(size, 6),
            "default_min_area_px": DEFAULT_MIN_AREA_PX, "default_count_error": round(d_count, 6),
            "default_size_error": round(d_size, 6), "candidates": [int(a) for a in tried],
            "n_labeled": int(n_all), "n_images": len(preds), "neck_ratio": float(neck_ratio),
            "method": "per class: the geometric middle of the minimum areas within one object's worth of the "
                      "least count error + size error on the validation images"}


def min_areas(chosen: dict[str, Any]) -> tuple[int, dict[int, int]]:
    """(minimum area for every class, class index -> its own) of a :func:`choose_min_area` result
    or a ``postprocess.json`` (an older one has no per-class areas)."""
    by_class = {int(c): int(a) for c, a in (chosen.get("min_area_px_by_class") or {}).items()}
    return int(chosen.get("min_area_px") or DEFAULT_MIN_AREA_PX), by_class


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
    if value is not None and not _is_area(value):
        raise ParseError(path, f"expected min_area_px an integer >= 1, got {value!r}", where="/min_area_px")
    by_class = data.get("min_area_px_by_class", {})
    if not isinstance(by_class, dict):
        raise ParseError(path, f"expected min_area_px_by_class an object, got {type(by_class).__name__}",
                         where="/min_area_px_by_class")
    for key, area in by_class.items():
        if not (key.isdigit() and _is_area(area)):
            raise ParseError(path, f"expected a class index -> an integer >= 1, got {key!r}: {area!r}",
                             where=f"/min_area_px_by_class/{key}")
    return data


def _is_area(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
