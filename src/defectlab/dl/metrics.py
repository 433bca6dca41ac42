"""Validation metrics on label images: per-class pixel IoU and object F1.

The same definitions as :mod:`defectlab.measurement.evaluate` (which scores predictions
against labels as shapes): the pixel IoU of a class is ``|P∩T| / |P∪T|`` over all pixels; a
predicted object matches a true one at IoU ≥ ``iou``, one-to-one, by that module's
:func:`~defectlab.measurement.evaluate.match_instances` on the objects' crops
(:func:`~defectlab.measurement.evaluate.iou_matrix`). Training computes them on the arrays
it has (class masks, instance ids) without making shapes of them.
"""

from __future__ import annotations

import numpy as np

from ..measurement.evaluate import iou_matrix, match_instances
from ..raster import Crop

__all__ = ["class_iou", "iou_counts", "label_crops", "object_f1"]


def iou_counts(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(intersection, union)`` pixel counts of each class 0..n_classes-1, (n_classes,) float64."""
    p = np.asarray(pred, dtype=np.int64).ravel()
    t = np.asarray(truth, dtype=np.int64).ravel()
    conf = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    return inter, union.astype(np.float64)


def class_iou(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> dict[int, float]:
    """IoU of each class 1..n_classes-1 over all pixels; classes absent from both are left out.

    Examples
    --------
    >>> class_iou(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), 3)
    {1: 0.6666666666666666}
    """
    inter, union = iou_counts(pred, truth, n_classes)
    return {c: float(inter[c] / union[c]) for c in range(1, n_classes) if union[c] > 0}


def label_crops(instances: np.ndarray) -> list[Crop]:
    """The objects of an (H, W) instance-id image (0 = background) as tight crops, by id."""
    from scipy import ndimage

    ids = np.asarray(instances)
    return [Crop(box[1].start, box[0].start, ids[box] == i)
            for i, box in enumerate(ndimage.find_objects(np.where(ids > 0, ids, 0)), start=1) if box is not None]


def object_f1(pred_instances: np.ndarray, true_instances: np.ndarray, *, iou: float = 0.5) -> dict[str, float]:
    """Object-level precision, recall and F1: objects match one-to-one at IoU >= ``iou``.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` (1.0 when both are empty).

    Examples
    --------
    >>> a = np.zeros((4, 8), int); a[:, :3] = 1; a[:, 5:] = 2
    >>> b = np.zeros((4, 8), int); b[:, :3] = 7
    >>> object_f1(a, b)["f1"]
    0.6666666666666666
    """
    p, t = label_crops(pred_instances), label_crops(true_instances)
    tp = len(match_instances(iou_matrix(p, t), iou))
    fp, fn = len(p) - tp, len(t) - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}
