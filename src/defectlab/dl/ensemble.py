"""Cross-validation folds and ensembles: ``train --folds K``, and predicting with all K models.

``defectlab train unet DATA --folds 5 --out OUT`` (``train(..., folds=5)``) trains five models
by the one training loop (:func:`defectlab.dl.train.train`), each validated on its own fold:

* **several images**: a seeded permutation cut as evenly as possible
  (:func:`~defectlab.dl.train.fold_split`), every image validated on by exactly one model and
  never trained on by it;
* **one image**: its ``k``-th of ``K`` strips across the longer side
  (:meth:`Architecture.hold_out <defectlab.dl.archs.base.Architecture.hold_out>`); the model
  trains on the parts before and after the strip, and no training crop reaches into it.

The time budget (``--time``) is the whole run's: each fold gets what is left divided by the
folds still to train. A prepare root with its own ``val/`` is refused (each fold brings its
own validation images; train on the export, or on the root's ``train/``). The folder::

    OUT/ensemble.json     the members, what each validated on, its scores (per-class IoU,
                          count and size error of its chosen minimum areas — chosen on those
                          same images, so slightly optimistic) and the pooled estimate over
                          the folds: mean and standard deviation
    OUT/fold_1/ …         each a complete model folder (``load_model(OUT / "fold_1")`` predicts alone)
    OUT/reference.json    the statistics of all the training images (predict flags unlike ones)

Written atomically: ``OUT`` appears when every fold is trained. Ctrl-C during a fold saves
that fold's best epoch (as training does) and ends the run with the folds trained so far as
the ensemble (``ensemble.json`` says ``interrupted``); before the first fold has a model,
nothing is written.

:func:`~defectlab.dl.model_io.load_model` of such a folder gives an :class:`EnsembleModel`:
prediction runs each tile through every member (each its own engine) and averages their
class probabilities, then post-processes as one model does, with each class's minimum object
area the median of the members' choices. Its uncertainty map (``uncertainty/<stem>.tif``) is
the entropy of that average (:mod:`defectlab.dl.uncertainty`: high where the members disagree
or are all unsure), with ``--tta`` over every member's 8 views. With CVAT pre-labels, each
member's own (post-processed alike) are written too, ``prelabels/members/fold_k/annotations.xml``:
what ``defectlab measure`` draws on for the spread between models in its confidence intervals.
Per-pixel architectures (``unet``) only.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._output import check_output, output_dir
from ..errors import DatasetError, ParseError
from .model_io import Model, ModelError, load_model, resolve_device

__all__ = ["ENSEMBLE_FILE", "EnsembleModel", "FoldsResult", "load_ensemble", "train_folds"]

#: The file that makes a folder an ensemble.
ENSEMBLE_FILE = "ensemble.json"
_FORMAT = "defectlab-ensemble"


class EnsembleModel(Model):
    """Models of one architecture, classes, tile and normalization predicting as one.

    ``config`` is the first member's (what they share), with ``training`` the ensemble's
    summary; ``members`` are the loaded member models; ``postprocess`` the members' median
    minimum areas (each member predicts with it too, so their objects compare).
    """

    def __init__(self, members: Sequence[Model], *, path: str | Path | None = None,
                 summary: dict[str, Any] | None = None) -> None:
        if not members:
            raise ModelError(f"{path}: an ensemble without members")
        first = members[0]
        for m in members[1:]:
            for what in ("architecture", "classes", "tile_size", "overlap", "normalization", "params"):
                if getattr(m.config, what) != getattr(first.config, what):
                    raise ModelError(f"{path}: members {first.path} and {m.path} differ in {what}; an ensemble's "
                                     "members must predict alike")
        super().__init__(first.net, replace(first.config, training=dict(summary or {})), path=path,
                         device=first.device, calibration=first.calibration)
        self.members = list(members)
        self.names = [m.path.name if m.path is not None else f"member_{i + 1}" for i, m in enumerate(members)]
        self.postprocess = median_postprocess([getattr(m, "postprocess", {}) for m in members])
        for m in self.members:
            m.postprocess = self.postprocess  # type: ignore[attr-defined]

    def to(self, device: Any) -> "EnsembleModel":
        for m in self.members:
            m.to(device)
        self.device = resolve_device(device)
        return self


def median_postprocess(chosen: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One post-processing of several models' choices (``postprocess.json``): each minimum
    area the median (rounded) of those that chose one; {} if none did."""
    from .postprocess import min_areas

    chosen = [c for c in chosen if c]
    if not chosen:
        return {}
    pairs = [min_areas(c) for c in chosen]
    classes = sorted({k for _, by in pairs for k in by})
    by_class = {str(k): int(round(float(np.median([by[k] for _, by in pairs if k in by])))) for k in classes}
    return {"min_area_px": int(round(float(np.median([least for least, _ in pairs])))),
            "min_area_px_by_class": by_class, "rule": f"the median of the {len(chosen)} members' choices"}


# ---------------------------------------------------------------------------------------------
# Reading an ensemble folder


def _read_summary(folder: Path) -> dict[str, Any]:
    path = folder / ENSEMBLE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ParseError(path, f"not valid JSON: {err.msg}", line=err.lineno, column=err.colno) from err
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ParseError(path, f"expected an object with \"format\": \"{_FORMAT}\"", where="/format")
    members = data.get("members")
    if not isinstance(members, list) or not members:
        raise ParseError(path, "expected a non-empty list of members", where="/members")
    for i, m in enumerate(members):
        name = m.get("name") if isinstance(m, dict) else None
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ParseError(path, f"expected a member's folder name, got {name!r}", where=f"/members/{i}/name")
    return data


def load_ensemble(path: str | Path, *, device: Any = "auto", classes: Any = None) -> EnsembleModel:
    """The :class:`EnsembleModel` of a folder ``train --folds`` wrote (its ``ensemble.json``
    names the member folders beside it; each is loaded and checked as a model folder)."""
    folder = Path(path)
    summary = _read_summary(folder)
    members = []
    for m in summary["members"]:
        sub = folder / m["name"]
        if not sub.is_dir():
            raise ModelError(f"{folder / ENSEMBLE_FILE}: member {m['name']!r} is missing ({sub} is not a folder)")
        members.append(load_model(sub, device=device, classes=classes))
    return EnsembleModel(members, path=folder, summary=summary)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class FoldsResult:
    """What ``train --folds`` produced: the ensemble, each fold's :class:`~defectlab.dl.train.TrainResult`
    (``path`` its member folder), ``ensemble.json`` (``summary``: per fold and pooled) and notes."""

    model: EnsembleModel
    path: Path
    folds: list[Any]
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    def __str__(self) -> str:
        pooled = self.summary["pooled"]["val_mean_iou"]
        return (f"{len(self.folds)} of {self.summary['folds']} folds"
                f"{' (interrupted)' if self.interrupted else ''}; validation mean IoU {pooled['mean']:.3f} "
                f"± {pooled['sd']:.3f} (sd over folds) -> {self.path}")


def _member_entry(name: str, result: Any) -> dict[str, Any]:
    training = result.model.config.training
    chosen = getattr(result.model, "postprocess", {}) or {}
    best = result.best
    return {"name": name, "fold": training["fold"]["k"], "validated_on": training["val_images"],
            "strip": training["fold"]["strip"], "trained_on": training["train_images"],
            "val_iou": best["val_iou"], "val_mean_iou": best["val_mean_iou"],
            "count_error": chosen.get("count_error"), "size_error": chosen.get("size_error"),
            "epochs_run": len(result.history), "best_epoch": result.best_epoch,
            "interrupted": result.interrupted, "out_of_time": result.out_of_time}


def _spread(values: Sequence[float | None]) -> dict[str, Any]:
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def pooled(members: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over the folds of each validation score (``val_mean_iou``,
    each class's IoU where its fold had it, count and size error)."""
    classes = sorted({c for m in members for c in m["val_iou"]})
    return {"val_mean_iou": _spread([m["val_mean_iou"] for m in members]),
            "val_iou": {c: _spread([m["val_iou"].get(c) for m in members]) for c in classes},
            "count_error": _spread([m["count_error"] for m in members]),
            "size_error": _spread([m["size_error"] for m in members])}


def train_folds(arch: Any, data: Any, out: str | Path, options: Any, asked: tuple[Any, Any, dict[str, Any]], *,
                images: Any = None, overwrite: bool = False, progress: bool = True, plot: bool = True,
                callback: Any = None, on_plan: Any = None) -> FoldsResult:
    """``options.folds`` models of ``arch`` on folds of ``data``, written as an ensemble folder
    ``out`` (see the module docstring); :func:`defectlab.dl.train.train` runs this when ``folds`` is set.

    ``options`` are the resolved training options; ``asked`` the ``(options, params, keywords)``
    ``train`` was given, handed to each fold's run as they were (so that ``auto`` plans what
    was not given), with the fold's share of the time budget."""
    from .archs.base import SemanticArchitecture
    from .data import training_sources
    from .reference import REFERENCE_FILE, reference_from_training
    from .train import default_budget_s, load_data, train

    k_folds = int(options.folds)
    if not isinstance(arch, SemanticArchitecture):
        raise ValueError(f"--folds: cross-validation ensembles are built for per-pixel architectures (unet); "
                         f"train the {arch.title} without --folds")
    start = time.perf_counter()
    inputs = [data] if isinstance(data, (str, Path)) else ()
    check_output(out, overwrite=overwrite, inputs=inputs)
    train_src, val_src, _ = training_sources(data, images=images)
    if val_src is not None:
        raise DatasetError(f"{val_src.description}: --folds validates each model on its own fold of the images, but "
                           "this prepare root brings its own val/ split; train on the labeling export, or on the "
                           "root's train/ folder")
    budget = (options.time_budget_s if options.time_budget_s is not None
              else default_budget_s(resolve_device(options.device)))
    results: list[Any] = []
    notes = [f"{k_folds}-fold cross-validation: the time budget is shared, each fold gets what is left divided by "
             "the folds still to train"] if math.isfinite(budget) else []
    interrupted = False
    out = Path(out)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        for k in range(k_folds):
            left = budget - (time.perf_counter() - start)
            share = max(1.0, left / (k_folds - k)) if math.isfinite(budget) else budget
            given, params, changes = asked
            changes = {**{n: v for n, v in changes.items() if n != "folds"}, "time_budget_s": share}
            try:
                result = train(arch, data, tmp / f"fold_{k + 1}", None if given is None else given.replace(folds=None),
                               params, images=images, progress=progress, plot=plot, callback=callback,
                               on_plan=on_plan if k == 0 else None, fold=(k, k_folds), **changes)
            except KeyboardInterrupt:
                if not results:
                    raise
                interrupted = True
                break
            results.append(result)
            if result.interrupted:
                interrupted = True
                break
        if interrupted:
            notes.append(f"interrupted: the ensemble holds the {len(results)} of {k_folds} folds trained")
        members = [_member_entry(f"fold_{i + 1}", r) for i, r in enumerate(results)]
        summary = {"format": _FORMAT, "version": 1, "architecture": arch.name, "folds": k_folds,
                   "split": "strips of one image" if members[0]["strip"] else "images", "seed": options.seed,
                   "time_budget_s": budget if math.isfinite(budget) else None, "interrupted": interrupted,
                   "members": members, "pooled": pooled(members),
                   "seconds": round(time.perf_counter() - start, 1)}
        (tmp / ENSEMBLE_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        everything = load_data(arch, train_src, options)
        reference = reference_from_training(train_src, everything, range(len(everything)))
        if reference.images:
            (tmp / REFERENCE_FILE).write_text(reference.to_json(), encoding="utf-8")
    for i, r in enumerate(results):
        r.path = out / f"fold_{i + 1}"
    model = load_ensemble(out, device=options.device)
    return FoldsResult(model, out, results, summary, notes, interrupted)
