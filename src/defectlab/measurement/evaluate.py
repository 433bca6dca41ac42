"""Predictions against labels: pixel scores, matched objects, COCO mAP, and the science numbers.

What is computed (per class, and over all classes):

- **pixel IoU and Dice**: of the union of the class's instances in the prediction and in the
  labels, pooled over all images: ``IoU = |P∩T| / |P∪T|``, ``Dice = 2|P∩T| / (|P|+|T|)``.
- **object matching** at an IoU threshold (default 0.5): in each image and class, the IoU of
  every predicted and true instance (computed on their crops), then a one-to-one assignment
  (Hungarian, :func:`scipy.optimize.linear_sum_assignment`) that first maximizes the number
  of pairs with IoU ≥ threshold, then their total IoU. Matched pairs are true positives,
  unmatched predictions false positives, unmatched labels false negatives →
  precision, recall, F1.
- **COCO mAP** (pycocotools ``COCOeval``, ``iouType="segm"``): AP averaged over IoU
  0.50:0.05:0.95, and AP at 0.5 and 0.75; masks as RLE built from each instance's crop placed
  in a full-size Fortran-ordered array one instance at a time. Predictions are ranked by
  their ``score`` attribute (all 1.0 when they carry none — then ties keep file order, and
  mAP says less). ``maxDets`` is raised to the largest number of predictions in an image
  (COCO's 100 would drop the rest).
- **the science numbers**, from the same measurements of both sides: mean size error %,
  number density error %, area fraction difference, swelling difference (percentage points),
  and a two-sample Kolmogorov–Smirnov test (:func:`scipy.stats.ks_2samp`) of the size
  distributions.

Examples
--------
>>> from defectlab.model import Dataset, Item, Label, Ellipse
>>> truth = Dataset((Label("cavity"),), (Item("a.png", (64, 64), (
...     Ellipse(label="cavity", cx=20, cy=20, rx=6, ry=6), Ellipse(label="cavity", cx=44, cy=40, rx=8, ry=8))),))
>>> pred = truth.with_items([Item("a.png", (64, 64), truth[0].shapes[:1])])   # one defect missed
>>> e = evaluate(pred, truth, pixel_size="0.5nm")
>>> e.overall["precision"], e.overall["recall"], round(e.overall["f1"], 4)
(1.0, 0.5, 0.6667)
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DatasetError
from ..imaging.micrograph import CalibrationWarning
from ..model import Dataset, Item, Note
from ..raster import Crop, Instance, instances
from .options import EvaluateOptions
from .run import item_calibration, label_sizes, load_dataset, reported_labels, uncalibrated_message
from .props import measure_instances, shape_score
from .stats import ImageInfo, histogram, is_cavity_label, statistics
from .table import Table

__all__ = ["Evaluation", "coco_map", "crop_iou", "evaluate", "iou_matrix", "match_instances"]


def crop_iou(a: Crop, b: Crop) -> float:
    """Intersection over union of two crops' pixels (0 when both are empty).

    Examples
    --------
    >>> import numpy as np
    >>> crop_iou(Crop(0, 0, np.ones((2, 2), bool)), Crop(1, 0, np.ones((2, 2), bool)))
    0.3333333333333333
    """
    return float(iou_matrix([a], [b])[0, 0])


def _boxes(crops: Sequence[Crop]) -> np.ndarray:
    return np.array([(c.x0, c.y0, c.x0 + c.bitmap.shape[1], c.y0 + c.bitmap.shape[0]) for c in crops],
                    dtype=np.int64).reshape(-1, 4)


def iou_matrix(pred: Sequence[Crop], true: Sequence[Crop]) -> np.ndarray:
    """IoU of every predicted and true instance, from their crops.

    Only pairs whose boxes overlap are intersected, on the overlap window.

    Parameters
    ----------
    pred, true : sequence of Crop
        Instances' pixels (any crop, tight or not).

    Returns
    -------
    (len(pred), len(true)) float64 array in [0, 1].
    """
    out = np.zeros((len(pred), len(true)), dtype=np.float64)
    if not len(pred) or not len(true):
        return out
    bp, bt = _boxes(pred), _boxes(true)
    ap = np.array([c.area for c in pred], dtype=np.float64)
    at = np.array([c.area for c in true], dtype=np.float64)
    x1 = np.maximum(bp[:, None, 0], bt[None, :, 0])
    y1 = np.maximum(bp[:, None, 1], bt[None, :, 1])
    x2 = np.minimum(bp[:, None, 2], bt[None, :, 2])
    y2 = np.minimum(bp[:, None, 3], bt[None, :, 3])
    for i, j in zip(*np.nonzero((x2 > x1) & (y2 > y1))):
        p, t = pred[i], true[j]
        xa, ya, xb, yb = x1[i, j], y1[i, j], x2[i, j], y2[i, j]
        inter = np.count_nonzero(p.bitmap[ya - p.y0 : yb - p.y0, xa - p.x0 : xb - p.x0]
                                 & t.bitmap[ya - t.y0 : yb - t.y0, xa - t.x0 : xb - t.x0])
        if inter:
            out[i, j] = inter / (ap[i] + at[j] - inter)
    return out


def match_instances(iou: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(pred index, true index, IoU)`` with IoU ≥ ``threshold``.

    The assignment (Hungarian) maximizes the number of matches first, then their total IoU:
    the cost of a pair is ``−(1 + IoU / (2·min(P, T)))`` when IoU ≥ threshold and 0
    otherwise; the IoU part of any assignment sums to less than 1/2, less than one match.

    Examples
    --------
    >>> import numpy as np
    >>> match_instances(np.array([[0.9, 0.6], [0.7, 0.0]]))   # greedy would take 0.9 and leave row 1 alone
    [(0, 1, 0.6), (1, 0, 0.7)]
    """
    from scipy.optimize import linear_sum_assignment

    iou = np.asarray(iou, dtype=np.float64)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"expected an IoU threshold in (0, 1], got {threshold!r}")
    if iou.size == 0:
        return []
    valid = iou >= threshold
    if not valid.any():
        return []
    n = min(iou.shape)
    cost = -np.where(valid, 1.0 + iou / (2.0 * n), 0.0)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols) if valid[r, c]]


# ---------------------------------------------------------------------------------------------
# COCO mAP


def _rle(crop: Crop, buf: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    buf[crop.slices] = crop.bitmap
    rle = mask_utils.encode(buf)
    buf[crop.slices] = 0
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def coco_map(
    pairs: Sequence[tuple[tuple[int, int], Sequence[Instance], Sequence[Instance], Sequence[float]]],
    class_names: Mapping[int, str],
) -> dict[str, Any]:
    """COCO segmentation AP through pycocotools' ``COCOeval``.

    Parameters
    ----------
    pairs : sequence of (size_hw, predicted instances, true instances, prediction scores)
        One entry per image.
    class_names : mapping
        Class id -> name (COCO category ids are the class ids).

    Returns
    -------
    dict
        ``mAP`` (IoU 0.50:0.95), ``AP50``, ``AP75``, ``max_dets``, and ``per_class``: name ->
        AP (IoU 0.50:0.95), NaN for a class without labels.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, gts, dts = [], [], []
    max_dets = 100
    for img_id, (size_hw, pred, true, scores) in enumerate(pairs, start=1):
        h, w = size_hw
        images.append({"id": img_id, "height": h, "width": w})
        buf = np.zeros((h, w), dtype=np.uint8, order="F")
        for inst in true:
            x1, y1, x2, y2 = inst.box_xyxy
            gts.append({"id": len(gts) + 1, "image_id": img_id, "category_id": inst.class_id,
                        "segmentation": _rle(inst.crop, buf), "area": float(inst.crop.area),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
        for inst, score in zip(pred, scores):
            x1, y1, x2, y2 = inst.box_xyxy
            dts.append({"id": len(dts) + 1, "image_id": img_id, "category_id": inst.class_id,
                        "segmentation": _rle(inst.crop, buf), "area": float(inst.crop.area),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0, "score": float(score)})
        max_dets = max(max_dets, len(pred))
    nan = math.nan
    result: dict[str, Any] = {"mAP": nan, "AP50": nan, "AP75": nan, "max_dets": max_dets,
                              "per_class": {n: nan for n in class_names.values()}}
    if not gts:
        return result
    if not dts:
        result.update(mAP=0.0, AP50=0.0, AP75=0.0,
                      per_class={n: (0.0 if any(g["category_id"] == c for g in gts) else nan)
                                 for c, n in class_names.items()})
        return result
    gt = COCO()
    gt.dataset = {"images": images, "annotations": gts,
                  "categories": [{"id": c, "name": n} for c, n in class_names.items()]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dts)
        ev = COCOeval(gt, dt, iouType="segm")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    # COCOeval.summarize() reads maxDets=100 whatever params say: average the accumulated
    # precision [T iou thresholds, R recall points, K classes, A area ranges, M maxDets] here,
    # at area "all" and the last maxDets, as summarize does (-1 marks "no labels").
    precision = ev.eval["precision"][:, :, :, 0, -1]
    thresholds = ev.params.iouThrs

    def mean(p: np.ndarray) -> float:
        p = p[p > -1]
        return float(p.mean()) if p.size else nan

    result.update(mAP=mean(precision), AP50=mean(precision[np.isclose(thresholds, 0.5)]),
                  AP75=mean(precision[np.isclose(thresholds, 0.75)]))
    for k, cat in enumerate(ev.params.catIds):
        result["per_class"][class_names[cat]] = mean(precision[:, :, k])
    return result


# ---------------------------------------------------------------------------------------------
# Pairing predictions with labels


def _pair_items(pred: Dataset, true: Dataset) -> tuple[list[tuple[Item | None, Item]], list[Note]]:
    """(prediction item or None, label item) for every label item, matched by key, then by stem."""
    notes: list[Note] = []
    by_key = {it.key: it for it in pred.items}
    by_stem: dict[str, list[Item]] = {}
    for it in pred.items:
        by_stem.setdefault(it.stem.rsplit("/", 1)[-1], []).append(it)
    used: set[int] = set()
    pairs: list[tuple[Item | None, Item]] = []
    for t in true.items:
        p = by_key.get(t.key)
        if p is None:
            cands = by_stem.get(t.stem.rsplit("/", 1)[-1], [])
            p = cands[0] if len(cands) == 1 else None
        if p is None:
            notes.append(Note("no-prediction", "no predicted item for this image: every label counts as missed",
                              item=t.name))
        else:
            if p.size_hw != t.size_hw:
                raise DatasetError(f"{t.name}: predictions are {p.size_hw[1]}x{p.size_hw[0]} px (WxH), labels "
                                   f"{t.size_hw[1]}x{t.size_hw[0]}; expected the same image size")
            used.add(id(p))
        pairs.append((p, t))
    for p in pred.items:
        if id(p) not in used:
            notes.append(Note("unmatched-prediction", "predicted image has no labels; not evaluated", item=p.name))
    return pairs, notes


def _class_map(pred: Dataset, true: Dataset, true_labels: Sequence[str]) -> tuple[dict[str, str], list[Note]]:
    """Predicted label name -> label name: exact, then case-insensitive, then the only label."""
    used = {s.label for it in pred.items for s in it.shapes if s.is_area or s.kind == "polyline"}
    folded = {n.casefold(): n for n in true_labels}
    out: dict[str, str] = {}
    notes: list[Note] = []
    for name in sorted(used):
        if name in true_labels:
            out[name] = name
        elif name.casefold() in folded:
            out[name] = folded[name.casefold()]
            notes.append(Note("label-case", f"predicted label {name!r} taken as {out[name]!r}"))
        elif len(true_labels) == 1:
            out[name] = true_labels[0]
            notes.append(Note("label-mapped", f"predicted label {name!r} taken as the only label {true_labels[0]!r}"))
        else:
            raise DatasetError(f"predicted label {name!r} is not a label of the ground truth; labels are "
                               f"{list(true_labels)}")
    return out, notes


def _union(found: Sequence[Instance], class_id: int, size_hw: tuple[int, int]) -> np.ndarray:
    out = np.zeros(size_hw, dtype=bool)
    for inst in found:
        if inst.class_id == class_id:
            out[inst.crop.slices] |= inst.crop.bitmap
    return out


# ---------------------------------------------------------------------------------------------
# The evaluation


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` found.

    Attributes
    ----------
    iou_threshold : float
        The IoU at which objects match.
    per_class : Table
        One row per label: pixel IoU/Dice, TP/FP/FN, precision/recall/F1, AP, the science
        numbers of both sides and their errors, KS statistic and p-value.
    overall : dict
        The same scores over all classes (pooled counts; mAP over classes).
    per_image : Table
        One row per (image, label): pixel and object scores.
    matches : Table
        One row per matched pair: image, label, pred/true shape index, IoU, both sizes
        (``size_measure``: the equivalent diameter, the major axis, or a line's length).
    pred_defects, true_defects : Table
        The per-defect measurements of both sides, with ``matched`` (index of the partner
        shape, −1 when unmatched).
    pred_stats, true_stats : Table
        Per-label statistics of both sides (see :mod:`defectlab.measurement.stats`).
    histograms : dict
        label -> ``{"unit", "size_measure", "edges", "pred", "true"}`` on shared bins.
    settings : dict
    notes : tuple of Note
    """

    iou_threshold: float
    per_class: Table
    overall: dict[str, Any]
    per_image: Table
    matches: Table
    pred_defects: Table
    true_defects: Table
    pred_stats: Table
    true_stats: Table
    histograms: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    notes: tuple[Note, ...] = field(default_factory=tuple)
    calibrated: bool = False

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        def clean(row: dict[str, Any]) -> dict[str, Any]:
            return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}

        return {
            "iou_threshold": self.iou_threshold,
            "settings": self.settings,
            "calibrated": self.calibrated,
            "overall": clean(self.overall),
            "per_class": {r["label"]: clean(r) for r in self.per_class.rows()},
            "histograms": self.histograms,
            "notes": [str(n) for n in self.notes],
        }

    def write(self, out: str | Path, *, overwrite: bool = False, figures: bool = True) -> Path:
        """Write CSV (+ Parquet with pyarrow) tables, ``summary.json``, figures and ``index.html``."""
        from .report import write_evaluation

        return write_evaluation(self, out, overwrite=overwrite, figures=figures)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else math.nan
    r = tp / (tp + fn) if tp + fn else math.nan
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
    return p, r, f


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _error_pct(pred: float, true: float) -> float:
    return 100.0 * (pred - true) / true if (true and math.isfinite(true) and math.isfinite(pred)) else math.nan


def evaluate(
    predictions: Dataset | str | Path,
    labels: Dataset | str | Path,
    options: EvaluateOptions | None = None,
    *,
    images: str | Path | None = None,
    progress: bool = False,
    **changes: Any,
) -> Evaluation:
    """Score predictions against labels: pixels, objects, COCO mAP and the science numbers.

    Parameters
    ----------
    predictions, labels : Dataset or path
        Anything :func:`defectlab.read` reads (CVAT pre-labels, a folder of instance mask
        images, …). Images are paired by key (subset/stem), then by file stem; labels by name
        (then case-insensitively; a prediction label is taken as the only ground-truth label
        when there is one, e.g. ``object`` of plain instance masks).
    options : EvaluateOptions, optional
        The IoU at which a prediction matches a label, and the measurement options
        (:class:`~defectlab.measurement.options.EvaluateOptions`). ``pixel_size`` overrides
        the files' calibration; else it is read from the labels' images, then the
        predictions' images.
    images : path, optional
        Folder of the micrographs (for their calibration), if not beside the exports.
    progress : bool
        Show a progress bar.
    **changes
        Fields of :class:`~defectlab.measurement.options.EvaluateOptions` by name, applied
        over ``options`` (``iou=0.7``, ``pixel_size="0.5nm"``, …).

    Returns
    -------
    Evaluation
        ``.overall``, ``.per_class`` …; ``.write(out)`` writes the report.
    """
    opts = EvaluateOptions.build(options, **changes)
    iou, nm_override, t_nm = opts.iou, opts.pixel_size, opts.thickness
    include_border, cavity_labels, size = opts.include_border, opts.cavity_labels, opts.size_measure
    visible_only, line_width, bins = opts.visible_only, opts.line_width, opts.bins
    true_ds = load_dataset(labels, images)
    pred_ds = load_dataset(predictions, images)
    label_names = reported_labels(true_ds)
    name_map, notes = _class_map(pred_ds, true_ds, label_names)
    class_index = {n: i for i, n in enumerate(label_names, start=1)}
    pred_index = {p: class_index[t] for p, t in name_map.items()}
    names = {v: k for k, v in class_index.items()}
    lines = {s.label for it in true_ds.items for s in it.shapes if s.kind == "polyline"}
    areas = {s.label for it in true_ds.items for s in it.shapes if s.is_area}
    # One size measure per label for both sides, from the labels: a line's length, else `size`.
    size_stem = {n: "length" if (n in lines and n not in areas) else size for n in label_names}
    pairs, pair_notes = _pair_items(pred_ds, true_ds)
    notes.extend(pair_notes)

    from tqdm.auto import tqdm

    k = len(label_names)
    pix = np.zeros((k, 3), dtype=np.int64)  # inter, pred, true
    obj = np.zeros((k, 3), dtype=np.int64)  # tp, fp, fn
    per_image, match_rows = [], []
    pred_tables, true_tables, pred_infos, true_infos, coco_pairs = [], [], [], [], []
    for p_item, t_item in tqdm(pairs, desc="evaluating", unit="image", disable=not progress):
        _, nm, calibration, why = item_calibration(t_item, nm_override, pixels=False)
        if nm is None and p_item is not None and p_item.image is not None:
            _, nm, calibration, why = item_calibration(p_item, None, pixels=False)
        if nm is None:
            notes.append(Note("no-calibration", f"no pixel size ({why}); measured in px only", item=t_item.name))
        t_found, skipped = instances(t_item, class_index, visible_only=visible_only, line_width=line_width)
        notes.extend(skipped)
        if p_item is not None:
            p_item = Item(t_item.name, p_item.size_hw, tuple(
                s.replace(label=names[pred_index[s.label]]) if s.label in pred_index else s for s in p_item.shapes),
                image=p_item.image, subset=t_item.subset, id=p_item.id)
            p_found, skipped = instances(p_item, class_index, visible_only=visible_only, line_width=line_width)
            notes.extend(Note(n.code, n.message, item=f"{n.item} (prediction)", where=n.where) for n in skipped)
        else:
            p_found = []
        key, size_hw = t_item.key, t_item.size_hw
        p_tab = measure_instances(p_found, size_hw, item_key=key, class_names=names, pixel_size_nm=nm)
        t_tab = measure_instances(t_found, size_hw, item_key=key, class_names=names, pixel_size_nm=nm)
        p_partner = np.full(len(p_found), -1, dtype=np.int64)
        t_partner = np.full(len(t_found), -1, dtype=np.int64)
        p_cov, t_cov = {}, {}
        for ci, label in enumerate(label_names, start=1):
            pm, tm = _union(p_found, ci, size_hw), _union(t_found, ci, size_hw)
            inter, np_, nt = int(np.count_nonzero(pm & tm)), int(np.count_nonzero(pm)), int(np.count_nonzero(tm))
            pix[ci - 1] += (inter, np_, nt)
            p_cov[label], t_cov[label] = np_, nt
            pi = [i for i, x in enumerate(p_found) if x.class_id == ci]
            ti = [j for j, x in enumerate(t_found) if x.class_id == ci]
            m = match_instances(iou_matrix([p_found[i].crop for i in pi], [t_found[j].crop for j in ti]), iou)
            tp, fp, fn = len(m), len(pi) - len(m), len(ti) - len(m)
            obj[ci - 1] += (tp, fp, fn)
            for a, b, v in m:
                pa, tb = pi[a], ti[b]
                p_partner[pa], t_partner[tb] = p_found[pa].index, t_found[tb].index
                stem = size_stem[label]
                match_rows.append({"image": key, "label": label, "pred_index": p_found[pa].index,
                                   "true_index": t_found[tb].index, "iou": v, "size_measure": stem,
                                   "pred_size_px": float(p_tab[f"{stem}_px"][pa]),
                                   "true_size_px": float(t_tab[f"{stem}_px"][tb]),
                                   "pred_size_nm": float(p_tab[f"{stem}_nm"][pa]),
                                   "true_size_nm": float(t_tab[f"{stem}_nm"][tb]),
                                   "true_touches_border": bool(t_tab["touches_border"][tb])})
            if np_ or nt or pi or ti:
                prec, rec, f1 = _prf(tp, fp, fn)
                per_image.append({"image": key, "label": label, "pixel_iou": _ratio(inter, np_ + nt - inter),
                                  "pixel_dice": _ratio(2 * inter, np_ + nt), "tp": tp, "fp": fp, "fn": fn,
                                  "precision": prec, "recall": rec, "f1": f1,
                                  "n_pred": len(pi), "n_true": len(ti)})
        pred_tables.append(p_tab.with_column("matched", p_partner))
        true_tables.append(t_tab.with_column("matched", t_partner))
        pred_infos.append(ImageInfo(key, size_hw, nm, p_cov, calibration))
        true_infos.append(ImageInfo(key, size_hw, nm, t_cov, calibration))
        scores = [shape_score(x.shape) for x in p_found]
        coco_pairs.append((size_hw, p_found, t_found, [1.0 if math.isnan(s) else s for s in scores]))

    pred_defects = Table.concat(pred_tables) if pred_tables else Table()
    true_defects = Table.concat(true_tables) if true_tables else Table()
    if len(pred_defects) and np.all(np.isnan(pred_defects["score"].astype(np.float64))):
        notes.append(Note("no-scores", "predictions carry no score attribute: COCO AP ranks them all as 1.0 "
                          "(ties in file order)"))
    stat_kw = dict(thickness_nm=t_nm, include_border=include_border, cavity_labels=cavity_labels,
                   size_measure=size, measures=size_stem)
    _, pred_stats = statistics(pred_defects, pred_infos, label_names, **stat_kw)
    _, true_stats = statistics(true_defects, true_infos, label_names, **stat_kw)
    coco = coco_map(coco_pairs, names)
    calibrated = bool(true_infos) and all(i.pixel_size_nm for i in true_infos)
    nm_of = {i.key: i.pixel_size_nm for i in true_infos} if calibrated else None
    unit = "nm" if calibrated else "px"

    hists: dict[str, dict[str, Any]] = {}
    rows = []
    from scipy.stats import ks_2samp

    pred_rows, true_rows = pred_stats.rows(), true_stats.rows()
    for ci, label in enumerate(label_names):
        tp, fp, fn = (int(x) for x in obj[ci])
        inter, np_, nt = (int(x) for x in pix[ci])
        prec, rec, f1 = _prf(tp, fp, fn)
        ps, ts = pred_rows[ci], true_rows[ci]
        measure = size_stem[label]
        p_sizes = label_sizes(pred_defects, label, nm_of, include_border=include_border, stem=measure)
        t_sizes = label_sizes(true_defects, label, nm_of, include_border=include_border, stem=measure)
        p_sizes, t_sizes = p_sizes[np.isfinite(p_sizes)], t_sizes[np.isfinite(t_sizes)]
        if len(p_sizes) and len(t_sizes):
            with warnings.catch_warnings():  # "exact calculation unsuccessful, switching to asymp": fine
                warnings.simplefilter("ignore", RuntimeWarning)
                ks = ks_2samp(p_sizes, t_sizes)
            ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)
        else:
            ks_stat = ks_p = math.nan
        both = np.concatenate([p_sizes, t_sizes])
        _, edges = histogram(both, bins=bins)
        hists[label] = {"unit": unit, "size_measure": measure, "edges": [float(x) for x in edges],
                        "pred": [int(c) for c in histogram(p_sizes, edges)[0]] if len(edges) else [],
                        "true": [int(c) for c in histogram(t_sizes, edges)[0]] if len(edges) else []}
        density = "density_per_um2" if calibrated else "density_per_px2"
        cavity = is_cavity_label(label, cavity_labels)
        rows.append({
            "label": label, "pixel_iou": _ratio(inter, np_ + nt - inter), "pixel_dice": _ratio(2 * inter, np_ + nt),
            "tp": tp, "fp": fp, "fn": fn, "precision": prec, "recall": rec, "f1": f1,
            "ap": coco["per_class"].get(label, math.nan),
            "n_pred": tp + fp, "n_true": tp + fn,
            f"size_mean_pred_{unit}": ps[f"size_mean_{unit}"], f"size_mean_true_{unit}": ts[f"size_mean_{unit}"],
            "size_mean_error_percent": _error_pct(ps[f"size_mean_{unit}"], ts[f"size_mean_{unit}"]),
            f"{density}_pred": ps[density], f"{density}_true": ts[density],
            "density_error_percent": _error_pct(ps[density], ts[density]),
            "area_fraction_pred": ps["area_fraction"], "area_fraction_true": ts["area_fraction"],
            "area_fraction_difference": ps["area_fraction"] - ts["area_fraction"],
            "swelling_percent_pred": ps["swelling_percent"] if cavity else math.nan,
            "swelling_percent_true": ts["swelling_percent"] if cavity else math.nan,
            "swelling_difference_percent_points": (ps["swelling_percent"] - ts["swelling_percent"]) if cavity else math.nan,
            "ks_statistic": ks_stat, "ks_pvalue": ks_p,
        })
    tp, fp, fn = (int(x) for x in obj.sum(axis=0))
    inter, np_, nt = (int(x) for x in pix.sum(axis=0))
    prec, rec, f1 = _prf(tp, fp, fn)
    overall = {"iou_threshold": float(iou), "tp": tp, "fp": fp, "fn": fn, "precision": prec, "recall": rec,
               "f1": f1, "pixel_iou": _ratio(inter, np_ + nt - inter), "pixel_dice": _ratio(2 * inter, np_ + nt),
               "mAP": coco["mAP"], "AP50": coco["AP50"], "AP75": coco["AP75"], "coco_max_dets": coco["max_dets"],
               "images": len(pairs)}
    if not calibrated:
        missing = [i.key for i in true_infos if not i.pixel_size_nm]
        if missing:
            warnings.warn(uncalibrated_message(missing, len(true_infos)), CalibrationWarning, stacklevel=2)
    settings = {
        "predictions": pred_ds.source if isinstance(predictions, Dataset) else str(predictions),
        "labels": true_ds.source if isinstance(labels, Dataset) else str(labels),
        "iou_threshold": float(iou), **opts.settings(label_names),
    }
    match_cols = ["image", "label", "pred_index", "true_index", "iou", "size_measure", "pred_size_px", "true_size_px",
                  "pred_size_nm", "true_size_nm", "true_touches_border"]
    image_cols = ["image", "label", "pixel_iou", "pixel_dice", "tp", "fp", "fn", "precision", "recall", "f1",
                  "n_pred", "n_true"]
    return Evaluation(
        iou_threshold=float(iou), per_class=Table.from_rows(rows), overall=overall,
        per_image=Table.from_rows(per_image, image_cols), matches=Table.from_rows(match_rows, match_cols),
        pred_defects=pred_defects, true_defects=true_defects, pred_stats=pred_stats, true_stats=true_stats,
        histograms=hists, settings=settings, notes=tuple(notes), calibrated=calibrated,
    )

