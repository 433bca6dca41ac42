"""Which unlabeled images to label next (``defectlab suggest``): the most uncertain and most unlike the training set.

Each image is predicted with test-time augmentation (:mod:`defectlab.dl.uncertainty`) and
scored::

    score = uncertainty + unlikeness
    uncertainty = 1 - reliability          in [0, 1]: the mean entropy of the 8 views' averaged
                                           prediction over the predicted defects and their
                                           boundaries, over ln C
    unlikeness                             max |z| / 3 of the intensity features, or the share of
                                           objects outside the training sizes / 0.5
                                           (:mod:`defectlab.dl.reference`); >= 1: flagged

The two parts are added: an image flagged as unlike the training set (unlikeness >= 1) ranks
above in-distribution images unless they are very uncertain, and among similar images the
more uncertain comes first. A model folder without ``reference.json`` ranks by the
uncertainty alone (unlikeness 0, said in a note). The ``n`` best are written with their
pre-labels, to correct in CVAT and train on.

Writes into ``out`` (atomically)::

    suggest.csv                rank, image, score, uncertainty, unlikeness, reliability, flagged, note
                               (every image, best first)
    prelabels/annotations.xml  CVAT for images 1.1 pre-labels of the chosen images
    contact_sheet.png          the chosen images with their predictions (and uncertainty)
    uncertainty/, masks/, instances/, overlays/   the chosen images' predictions, as ``predict`` writes them
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .._output import output_dir
from ..errors import DefectlabError
from ..imaging.io import read_image
from ..model import ImageSource
from .options import PredictOptions
from .predict import (PredictReport, check_options, find_images, model_reference, predict_image, prelabel_item,
                      write_prediction, write_prelabels)

if TYPE_CHECKING:  # pragma: no cover
    from .model_io import Model

__all__ = ["SuggestError", "SuggestReport", "suggest_images"]


class SuggestError(DefectlabError, ValueError):
    """A bad request to ``suggest`` (e.g. ``--n 0``)."""


@dataclass
class SuggestReport:
    """What :func:`suggest_images` ranked (``rows``, best first) and wrote."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0
    prelabels: Path | None = None
    contact_sheet: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> list[dict[str, Any]]:
        return self.rows[:self.n]

    def __str__(self) -> str:
        return f"{self.n} of {len(self.rows)} images suggested -> {self.out}"


def suggest_images(model: Model, unlabeled: str | Path, out: str | Path, *, n: int = 5,
                   options: PredictOptions | None = None, overwrite: bool = False, progress: bool = True,
                   **changes: Any) -> SuggestReport:
    """Rank the images of ``unlabeled`` by what labeling them would teach ``model`` (module
    docstring) and write the ``n`` first with their pre-labels.

    Parameters
    ----------
    model : Model
        A per-pixel model (U-Net): the ranking needs test-time augmentation.
    unlabeled : path
        A folder of images (searched recursively) or one image file.
    out : path
        Output folder (see the module docstring).
    n : int
        How many to choose (all of them if there are fewer).
    options : PredictOptions, optional
        How to predict (or its fields by name); ``tta`` is always on.

    Returns
    -------
    SuggestReport
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SuggestError(f"suggest: --n: expected a number of images >= 1, got {n!r}")
    options = PredictOptions.build(options, **{**changes, "tta": True})
    check_options(model, options)
    found = find_images([unlabeled])
    report = SuggestReport(Path(out), n=min(int(n), len(found)))
    if model_reference(model) is None:
        report.notes.append("the model folder has no reference.json: ranked by uncertainty alone")
    if n > len(found):
        report.notes.append(f"asked for {n} images, {len(found)} found: all are suggested")
    kept: list[tuple[float, str, Path, Any]] = []  # the n best so far, with their predictions
    it: Iterable[tuple[str, Path]] = found
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(found, desc="suggest", unit="img")
    for name, path in it:
        pred = predict_image(model, read_image(ImageSource(path)), options)
        uncertainty = 1.0 - float(pred.reliability)  # type: ignore[arg-type]
        unlikeness = 0.0 if pred.unlike is None else float(pred.unlike.score)
        report.rows.append({"image": name, "score": uncertainty + unlikeness, "uncertainty": uncertainty,
                            "unlikeness": unlikeness, "reliability": float(pred.reliability),  # type: ignore[arg-type]
                            "flagged": bool(pred.unlike is not None and pred.unlike.flagged),
                            "note": "" if pred.unlike is None else pred.unlike.note})
        kept.append((uncertainty + unlikeness, name, path, pred))
        kept.sort(key=lambda k: -k[0])
        del kept[report.n:]
    report.rows.sort(key=lambda r: -r["score"])
    for rank, row in enumerate(report.rows, start=1):
        row["rank"] = rank
    with output_dir(out, overwrite=overwrite, inputs=[p for _, p in found]) as tmp:
        with (tmp / "suggest.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["rank", "image", "score", "uncertainty", "unlikeness", "reliability", "flagged", "note"])
            for r in report.rows:
                w.writerow([r["rank"], r["image"], f"{r['score']:.4f}", f"{r['uncertainty']:.4f}",
                            f"{r['unlikeness']:.4f}", f"{r['reliability']:.4f}", int(r["flagged"]), r["note"]])
        chosen = sorted(kept, key=lambda k: k[1])  # the pre-labels' frame ids follow the names
        pre = PredictReport(Path(out))
        items, pictures = [], []
        for item_id, (score, name, path, pred) in enumerate(chosen):
            image = read_image(ImageSource(path))
            write_prediction(tmp, name, image, pred, model)
            items.append(prelabel_item(pred, name, model, options, item_id, pre))
            pictures.append((score, name, image, pred))
        write_prelabels(tmp, Path(out), items, ["cvat"], model, pre)
        report.prelabels = pre.prelabels
        pictures.sort(key=lambda p: -p[0])
        _contact_sheet(tmp / "contact_sheet.png", pictures, model)
        report.contact_sheet = Path(out) / "contact_sheet.png"
    return report


def _contact_sheet(path: Path, pictures: list[tuple[float, str, np.ndarray, Any]], model: Model) -> None:
    """One row per chosen image: its prediction over it, and its uncertainty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz import overlay
    from .uncertainty import uncertainty_picture

    fig, axes = plt.subplots(len(pictures), 2, figsize=(7, 3.3 * len(pictures)), squeeze=False)
    for rank, (row, (score, name, image, pred)) in enumerate(zip(axes, pictures), start=1):
        row[0].imshow(overlay(image, pred.semantic, model.config.colors_rgb, outlines=pred.instances))
        row[0].set_title(f"#{rank} {name}: score {score:.2f}, {pred.n_instances} objects", fontsize=8)
        row[1].imshow(uncertainty_picture(image, pred.uncertainty, len(model.config.classes)))
        row[1].set_title(f"uncertainty (reliability {pred.reliability:.3f})", fontsize=8)
        for ax in row:
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
