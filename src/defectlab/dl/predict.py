"""The one prediction path: an image of any size → a :class:`Prediction`, for every architecture.

:func:`predict_image` (what :meth:`Model.predict <defectlab.dl.model_io.Model.predict>` calls)
reads and checks the image, then hands it to the model's architecture
(:meth:`Architecture.predict <defectlab.dl.archs.base.Architecture.predict>`): a U-Net
predicts in blended tiles (:mod:`defectlab.dl.tiles`) and splits its class mask into
instances; a Mask R-CNN detects in tiles of its training size and keeps each detection once.
:func:`predict_images` predicts files and writes masks, instances, overlays and pre-labels.

Examples
--------
>>> import numpy as np, torch
>>> from defectlab.dl.archs import unet
>>> from defectlab.dl.model_io import ClassInfo, Model
>>> _ = torch.manual_seed(0)
>>> net = unet.UNet(unet.UNetConfig(n_classes=2, base_filters=4, depth=2, bottleneck_dilations=(1,)))
>>> model = Model(net, unet.model_config(net.config, classes=[ClassInfo(1, "cavity")], tile_size=64, overlap=16))
>>> pred = model.predict(np.random.default_rng(0).random((100, 150)))
>>> pred.semantic.shape, pred.semantic.dtype, pred.instances.dtype
((100, 150), dtype('uint8'), dtype('int32'))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .._output import output_dir
from ..errors import DatasetError, DefectlabError, ImageError
from ..imaging.io import read_image, write_image
from ..model import ImageSource
from .options import PredictOptions

if TYPE_CHECKING:  # pragma: no cover
    from .model_io import Model

__all__ = [
    "IMAGE_SUFFIXES", "PRELABEL_FORMATS", "Prediction", "PredictReport", "TTAError", "find_images", "model_reference",
    "predict_image", "predict_images",
]

#: Pre-label formats :func:`predict_images` writes.
PRELABEL_FORMATS = ("cvat", "coco")

#: File suffixes taken as images when a folder is given.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


class TTAError(DefectlabError, ValueError):
    """Test-time augmentation asked of an architecture that does not do it."""


@dataclass
class Prediction:
    """What a model predicted for one image.

    Attributes
    ----------
    semantic : (H, W) uint8
        Class index per pixel, 0 = background.
    instances : (H, W) int32
        Instance id per pixel, 1..N, 0 = background.
    instance_classes : (N,) uint8
        Class of instance ``i`` at ``[i - 1]``.
    scores : (N,) float32
        Per instance: the Mask R-CNN detection score, or for a U-Net the mean probability
        of the instance's class over its pixels.
    classes : dict
        Class index -> name, from 1.
    confidence : (H, W) uint8, optional
        U-Net: the probability of the predicted class, ×255 rounded.
    probabilities : (C, H, W) float32 or float16, optional
        U-Net, on request: every class's probability (C includes the background).
    seconds : float
        Wall time of the prediction, s.
    engine : str
        What ran the net: ``"torch"``, ``"onnxruntime"`` or ``"onnxruntime-int8"``.
    uncertainty : (H, W) float32, optional
        With test-time augmentation (``tta=True``): the entropy of the 8 views' averaged
        class probabilities, nats (:mod:`defectlab.dl.uncertainty`).
    reliability : float, optional
        With ``tta=True``: ``1 - mean uncertainty / ln C`` over the predicted defects and
        their boundaries, in [0, 1] (1: every view sure of the same class).
    object_uncertainty : (N,) float32, optional
        With ``tta=True``: the mean uncertainty over each instance, nats.
    unlike : Unlikeness, optional
        How unlike the model's training images this image is
        (:func:`defectlab.dl.reference.compare`); None when the model folder has no
        ``reference.json``.
    members : list of Prediction, optional
        An ensemble's (``train --folds``) members' own predictions, each post-processed as
        that member alone is, when asked for (``predict_image(..., members=True)``): from the
        same net passes as the ensemble's mean.
    """

    semantic: np.ndarray
    instances: np.ndarray
    instance_classes: np.ndarray
    scores: np.ndarray
    classes: dict[int, str]
    confidence: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    seconds: float = 0.0
    engine: str = "torch"
    uncertainty: np.ndarray | None = None
    reliability: float | None = None
    object_uncertainty: np.ndarray | None = None
    unlike: Any = None
    members: list[Prediction] | None = None

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self.semantic.shape[0]), int(self.semantic.shape[1])

    @property
    def n_instances(self) -> int:
        return int(len(self.instance_classes))

    def counts(self) -> dict[str, int]:
        """Number of instances per class name (every class listed, zeros included)."""
        got = np.bincount(self.instance_classes.astype(np.int64), minlength=max(self.classes, default=0) + 1)
        return {name: int(got[i]) for i, name in self.classes.items()}


def _as_image(image: np.ndarray | str | Path) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return read_image(ImageSource(Path(image)))
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    return arr


def predict_image(model: Model, image: np.ndarray | str | Path, options: PredictOptions | None = None, *,
                  probabilities_dtype: Any = np.float32, progress: bool = False, members: bool = False,
                  **changes: Any) -> Prediction:
    """Predict one image of any size with a model of any architecture.

    Parameters
    ----------
    model : Model
        From :func:`~defectlab.dl.model_io.load_model` or training.
    image : (H, W) or (H, W, 3) array, or a path
        The raw micrograph (any dtype); normalized as in training.
    options : PredictOptions, optional
        :class:`~defectlab.dl.options.PredictOptions`; or give its fields by name:
        ``tile_size``, ``overlap``, ``margin``, ``batch_size``, ``engine`` (``"auto"``: ONNX
        Runtime on a CPU when installed, else PyTorch, see :mod:`defectlab.dl.engine`),
        ``probabilities`` (keep the (C, H, W) class probabilities), ``split``,
        ``min_area_px``, ``neck_ratio`` (how a class mask is split into instances, see
        :func:`defectlab.raster.split.split_instances`; line classes are never split),
        ``score_threshold``, ``mask_threshold`` (Mask R-CNN), ``tta`` (test-time
        augmentation, U-Net: the 8 flips and rotations averaged, and ``uncertainty``,
        ``reliability``, ``object_uncertainty`` set; :mod:`defectlab.dl.uncertainty`).
        ``unlike`` is set when the model folder has a ``reference.json``.
    probabilities_dtype : dtype
        ``np.float32`` or ``np.float16`` for ``Prediction.probabilities``.
    progress : bool
        Show a progress bar over tiles.
    members : bool
        With an ensemble (``train --folds``): also each member's own prediction, in
        ``Prediction.members`` (no further net passes: the members run for the mean anyway).

    Returns
    -------
    Prediction
    """
    options = PredictOptions.build(options, **changes)
    check_options(model, options)
    t0 = time.perf_counter()
    arr = _as_image(image)
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 1:
        raise ImageError(f"expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")
    own = {"members": True} if members and getattr(model, "members", None) else {}  # only ensembles have members
    pred = model.arch.predict(model, arr, options, probabilities_dtype=probabilities_dtype, progress=progress, **own)
    reference = model_reference(model)
    if reference is not None:
        from .reference import compare

        objects = [c.index for c in model.config.classes[1:] if not c.is_line]
        pred.unlike = compare(reference, arr, pred.instances, pred.instance_classes, objects)
    pred.seconds = time.perf_counter() - t0
    return pred


def check_options(model: Model, options: PredictOptions) -> None:
    """Refuse what ``model``'s architecture does not do: ``options.tta`` (a :class:`TTAError`),
    or another architecture's own options (``Architecture.check_predict_options``)."""
    if options.tta and not getattr(model.arch, "tta", False):
        raise TTAError(f"--tta (test-time augmentation): the {model.arch.title} ({model.architecture!r}) does not do "
                       "it; predict without --tta, or train a U-Net (defectlab train unet)")
    model.arch.check_predict_options(options)


def model_reference(model: Model) -> Any:
    """The :class:`~defectlab.dl.reference.Reference` of the model folder's training images
    (``reference.json``), read once; None for a model without one."""
    if "_reference" not in model.__dict__:
        from .reference import REFERENCE_FILE, read_reference

        path = Path(model.path) / REFERENCE_FILE if model.path else None
        model.__dict__["_reference"] = read_reference(path) if path is not None and path.is_file() else None
    return model.__dict__["_reference"]


@dataclass
class PredictReport:
    """What :func:`predict_images` wrote: the folder, per-image summaries, the pre-labels file."""

    out: Path
    images: list[dict[str, Any]] = field(default_factory=list)
    prelabels: Path | None = None
    prelabels_coco: Path | None = None
    notes: list[Any] = field(default_factory=list)
    unlike: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        n = sum(sum(im["instances"].values()) for im in self.images)
        return f"{len(self.images)} images, {n} instances -> {self.out}"


def find_images(paths: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every image: files as given (name = file name), folders searched
    recursively (name = path inside the folder, POSIX). Names must be unique."""
    found: list[tuple[str, Path]] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ImageError(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            found += [(f.relative_to(p).as_posix(), f) for f in files]
        elif p.is_file():
            found.append((p.name, p))
        else:
            raise ImageError(f"{p}: no such image file or folder")
    stems: dict[str, str] = {}
    for name, _ in found:
        stem = name.rsplit(".", 1)[0]
        if stem in stems:
            raise DatasetError(f"two images would be written as {stem!r} ({stems[stem]} and {name}); "
                               "give them different names or predict them separately")
        stems[stem] = name
    return found


def predict_images(
    model: Model,
    images: Sequence[str | Path],
    out: str | Path,
    options: PredictOptions | None = None,
    *,
    prelabels: str | Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> PredictReport:
    """Predict image files and write the results, the Python twin of ``defectlab predict``.

    Writes into ``out`` (atomically)::

        masks/<stem>.png           (H, W) uint8 class index, 0 = background
        instances/<stem>.tif       (H, W) int32 instance ids, 0 = background
        overlays/<stem>.png        classes in color over the micrograph, instance outlines
        probabilities/<stem>.npy   (C, H, W) float16, with ``probabilities=True`` (U-Net)
        uncertainty/<stem>.tif     (H, W) float32, with ``tta=True``: the entropy of the 8 views'
                                   mean, nats (:mod:`defectlab.dl.uncertainty`)
        uncertainty/<stem>.png     with ``tta=True``: that uncertainty in color over the micrograph
                                   (both also for an ensemble, ``train --folds``: the entropy of
                                   its members' mean, :mod:`defectlab.dl.ensemble`)
        prelabels/annotations.xml  with ``prelabels="cvat"``: CVAT for images 1.1 pre-labels
        prelabels/members/<fold>/annotations.xml   with an ensemble and ``prelabels="cvat"``
                                   (unless ``members=False``): each member's own pre-labels,
                                   post-processed alike, for ``measure``'s model uncertainty
        prelabels/coco/annotations/instances_default.json   with ``prelabels="coco"`` (or both,
                                   ``["cvat", "coco"]``): the same pre-labels as COCO (CVAT "COCO 1.0")
        summary.json               per image: size, instances per class, seconds; with ``tta=True``
                                   the reliability and each object's uncertainty; how unlike the
                                   training images it is (``unlike``, when the model folder has a
                                   ``reference.json``: :mod:`defectlab.dl.reference`)

    ``images`` are files or folders (searched recursively; the path inside the folder is the
    image's name in the pre-labels, which CVAT matches against the task's file names).
    ``options`` (or its fields by name) are those of :func:`predict_image`, and how the
    pre-labels are traced (``tolerance``, ``max_area_change``, see :mod:`defectlab.dl.prelabels`).
    ``report.unlike`` lists a note per image unlike the training set (and one if the model has
    no reference).
    """
    options = PredictOptions.build(options, **changes)
    check_options(model, options)
    own = getattr(model.arch, "predict_images", None)  # an architecture that writes more (stardist: polygons)
    if own is not None:
        return own(model, images, out, options, prelabels=prelabels, overwrite=overwrite, progress=progress)
    kinds = prelabel_kinds(prelabels)
    found = find_images(images)
    report = PredictReport(Path(out))
    items: list[Any] = []
    members = getattr(model, "members", None) if "cvat" in kinds and options.members else None
    member_items: list[list[Any]] = [[] for _ in members or ()]
    frame = {name: k for k, name in enumerate(sorted(name for name, _ in found))}
    from .._parallel import background_writes

    with output_dir(out, overwrite=overwrite, inputs=[p for _, p in found]) as tmp, \
            background_writes(2 if len(found) > 1 else 1) as writes:  # files encoded while the next image predicts
        it: Iterable[tuple[str, Path]] = found
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(found, desc="predict", unit="img")
        for name, path in it:
            image = read_image(ImageSource(path))
            pred = predict_image(model, image, options, probabilities_dtype=np.float16, members=bool(members))
            report.images.append(write_prediction(tmp, name, image, pred, model, submit=writes.submit))
            if kinds:  # traced now: only the polygons are kept, not the masks
                items.append(prelabel_item(pred, name, model, options, frame[name], report))
            for member, alone, got in zip(members or (), pred.members or (), member_items):  # for measure's model uncertainty
                got.append(prelabel_item(alone, name, member, options, frame[name], PredictReport(Path(out))))
        if kinds:
            write_prelabels(tmp, Path(out), items, kinds, model, report)
        for member_name, got in zip(getattr(model, "names", ()), member_items):
            write_member_prelabels(tmp / "prelabels", member_name, got, model)
        report.unlike = unlike_notes(model, report.images)
        write_summary(tmp, model, report)
    return report


def prelabel_kinds(prelabels: str | Sequence[str] | None) -> list[str]:
    """The pre-label formats asked for, checked against :data:`PRELABEL_FORMATS`."""
    kinds = [] if prelabels is None else [prelabels] if isinstance(prelabels, str) else list(prelabels)
    bad = [k for k in kinds if k not in PRELABEL_FORMATS]
    if bad:
        raise ValueError(f"expected prelabels among {', '.join(PRELABEL_FORMATS)}, got {bad[0]!r}")
    return kinds


def write_prediction(tmp: Path, name: str, image: np.ndarray, pred: Prediction, model: Model, *,
                     submit: Any = None) -> dict[str, Any]:
    """Write one image's masks, instances, overlay (and probabilities, uncertainty) under
    ``tmp``; return its summary entry. The probabilities are freed once written.

    ``submit``: ``BackgroundWrites.submit`` (:func:`defectlab._parallel.background_writes`), to
    encode the files on a writer thread while the next image is predicted; None: here, now."""
    from ..viz import overlay

    run = submit if submit is not None else (lambda write, *args, **kwargs: write(*args, **kwargs))

    stem = name.rsplit(".", 1)[0]
    files = [("masks", ".png", pred.semantic), ("instances", ".tif", pred.instances),
             ("overlays", ".png", overlay(image, pred.semantic, model.config.colors_rgb, outlines=pred.instances))]
    if pred.uncertainty is not None:
        from .uncertainty import uncertainty_picture

        files += [("uncertainty", ".tif", pred.uncertainty.astype(np.float32)),
                  ("uncertainty", ".png", uncertainty_picture(image, pred.uncertainty, len(model.config.classes)))]
    for sub, suffix, arr in files:
        dest = tmp / sub / f"{stem}{suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        picture = arr.ndim == 3  # overlays, uncertainty pictures: zlib level 1 writes a 1024² one in 63 ms, not 346
        run(write_image, dest, arr, png_compress_level=1 if picture else None)
    if pred.probabilities is not None:
        dest = tmp / "probabilities" / f"{stem}.npy"
        dest.parent.mkdir(parents=True, exist_ok=True)
        run(np.save, dest, pred.probabilities)
        pred.probabilities = None  # handed on: freed once written
    entry: dict[str, Any] = {"name": name, "size_hw": list(pred.size_hw), "instances": pred.counts(),
                             "seconds": round(pred.seconds, 3), "engine": pred.engine}
    if pred.uncertainty is not None:
        entry["reliability"] = round(float(pred.reliability), 4)  # type: ignore[arg-type]
        entry["mean_uncertainty"] = round(float(pred.uncertainty.mean()), 5)
        entry["objects"] = [{"id": i, "class": pred.classes.get(int(c), str(int(c))), "score": round(float(s), 4),
                             "uncertainty": round(float(u), 5)}
                            for i, (c, s, u) in enumerate(zip(pred.instance_classes, pred.scores,
                                                              pred.object_uncertainty), start=1)]  # type: ignore[arg-type]
    if pred.unlike is not None:
        entry["unlike"] = pred.unlike.as_dict()
    return entry


def prelabel_item(pred: Prediction, name: str, model: Model, options: PredictOptions, item_id: int,
                  report: PredictReport) -> Any:
    """The pre-labels item of one prediction (its notes added to ``report``)."""
    from .prelabels import prediction_item

    item, notes = prediction_item(pred.semantic, pred.instances, pred.instance_classes, name, model.classes,
                                  tolerance=options.tolerance, max_area_change=options.max_area_change, item_id=item_id)
    report.notes += notes
    return item


def write_prelabels(tmp: Path, out: Path, items: list[Any], kinds: Sequence[str], model: Model,
                    report: PredictReport) -> None:
    """Write the pre-labels of ``items`` in ``kinds`` under ``tmp/prelabels`` (``out`` is where
    ``tmp`` will be, for the report's paths)."""
    from .prelabels import prelabels_dataset, write_cvat_prelabels

    ds = prelabels_dataset(items, model.config.classes, notes=report.notes)
    (tmp / "prelabels").mkdir()
    if "cvat" in kinds:
        write_cvat_prelabels(ds, tmp / "prelabels" / "annotations.xml")
        report.prelabels = out / "prelabels" / "annotations.xml"
    if "coco" in kinds:
        from ..formats.coco_json import write_coco

        write_coco(ds, tmp / "prelabels" / "coco", copy_images=False)
        report.prelabels_coco = out / "prelabels" / "coco" / "annotations" / "instances_default.json"


def write_member_prelabels(prelabels: Path, name: str, items: list[Any], model: Model) -> Path:
    """An ensemble member's CVAT pre-labels, ``prelabels/members/<name>/annotations.xml``
    (the folder :func:`defectlab.measure` looks in for the spread between models)."""
    from ..measurement.run import MEMBERS_FOLDER
    from .prelabels import prelabels_dataset, write_cvat_prelabels

    dest = prelabels / MEMBERS_FOLDER / name / "annotations.xml"
    dest.parent.mkdir(parents=True)
    write_cvat_prelabels(prelabels_dataset(items, model.config.classes, notes=[]), dest)
    return dest


def unlike_notes(model: Model, entries: Sequence[dict[str, Any]]) -> list[str]:
    """One note per image flagged as unlike the training images, or one saying the model has
    no reference to compare with."""
    if model_reference(model) is None:
        return ["the model folder has no reference.json (trained before defectlab recorded one): images are not "
                "compared with the training images"]
    return [f"{e['name']}: unlike the training images: {e['unlike']['note']}" for e in entries
            if e.get("unlike", {}).get("flagged")]


def write_summary(tmp: Path, model: Model, report: PredictReport) -> None:
    """``summary.json``: the model, its classes, the images' entries and the notes on them."""
    import json

    (tmp / "summary.json").write_text(json.dumps({
        "model": str(model.path) if model.path else None, "architecture": model.architecture,
        "classes": model.classes, "images": report.images, "notes": report.unlike,
    }, indent=2) + "\n", encoding="utf-8")
