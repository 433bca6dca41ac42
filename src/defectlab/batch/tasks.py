"""What a batch does to each input: measure, convert, predict.

A task is a small frozen dataclass: picklable (it travels to the workers) and pure (its
:meth:`~BatchTask.run` reads one input and writes files into the folder it is given, nothing
else). The runner makes that folder atomic: it is a temporary folder renamed to
``out/<key>/`` only when the task returned, with its completion record inside.

=========  ================================  =================================================
task       one input is                      ``out/<key>/`` holds
=========  ================================  =================================================
measure    a labeled image of an export      ``defects.npy``/``.csv``, ``image.json``
           (exports are read on the client,
           each image is a unit)
predict    a micrograph file                 ``mask.png`` (uint8 class index),
                                             ``instances.tif`` (int32 ids), ``overlay.png``,
                                             ``defects.npy``/``.csv``, ``image.json``; with an
                                             ensemble (``train --folds``) each member's own
                                             ``members/<fold>/defects.npy`` too
convert    a labeling export                 the export in another format (``--to``)
=========  ================================  =================================================

The predict task loads its model once per worker process (a small cache keyed by the model
folder and the SHA-256 of its files), not once per image.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
>>> export = pathlib.Path(tempfile.mkdtemp()) / "export"
>>> _ = make_synthetic_dataset(export, n_images=2, config=SyntheticConfig(size_hw=(64, 64), n_lines=0))
>>> plan = MeasureTask(options=MeasureOptions(pixel_size="0.5nm")).plan([export])
>>> [u.key for u in plan.units], plan.labels[:2]
(['synthetic_000', 'synthetic_001'], ('cavity', 'loop'))
>>> dest = pathlib.Path(tempfile.mkdtemp())
>>> plan.task.run(plan.units[0], dest)["defects"] > 0, sorted(p.name for p in dest.iterdir())
(True, ['defects.csv', 'defects.npy', 'image.json'])
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

from ..errors import DefectlabError
from ..conversion import ConvertOptions
from ..dl.options import PredictOptions
from ..measurement.options import MeasureOptions
from ..reading import ReadOptions
from .inputs import BatchError, Unit, check_keys, expand_inputs, key_of
from .records import sha256_bytes

__all__ = [
    "BatchTask", "ConvertTask", "MeasureTask", "Plan", "PredictTask", "cached_model",
    "model_loads", "model_sha256",
]


@dataclass
class Plan:
    """A task made ready on the client: the units to run and what the summary needs.

    Attributes
    ----------
    task : BatchTask
        The task with everything resolved that every worker needs (e.g. the model digest).
    units : list of Unit
        One per output folder, in input order.
    inputs : list of Path
        The inputs named (files, folders).
    labels : tuple of str
        Labels reported in the batch's statistics.
    failures : list of dict
        Inputs that could not even be planned (an unreadable export): ``{"key", "input", "error"}``.
    notes : list of Note
        What reading the inputs skipped.
    """

    task: "BatchTask"
    units: list[Unit]
    inputs: list[Path]
    labels: tuple[str, ...] = ()
    failures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Any] = field(default_factory=list)


class BatchTask:
    """The interface of a batch task; subclasses are frozen dataclasses."""

    #: The task's name (in records and reports).
    name: ClassVar[str] = "task"
    #: True when every output holds a measurement (``defects.npy``, ``image.json``).
    measures: ClassVar[bool] = False

    def plan(self, inputs: Sequence[str | Path]) -> Plan:  # pragma: no cover - interface
        """Expand ``inputs`` into units, on the client (cheap: no image is read)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:  # pragma: no cover - interface
        """JSON-ready parameters that change an input's outputs (kept in every record)."""
        raise NotImplementedError

    def model_digest(self) -> str | None:
        """SHA-256 of the model the task uses, if any."""
        return None

    def run(self, unit: Unit, dest: Path) -> dict[str, Any]:  # pragma: no cover - interface
        """Process one unit, writing into the existing empty folder ``dest``; a small JSON-ready summary."""
        raise NotImplementedError

    def summary_options(self) -> MeasureOptions | None:
        """How to summarize measured outputs (None: no summary)."""
        return None

    #: Draw the batch's figures (tasks that measure).
    figures: bool = False


def labels_digest(item: Any, label_names: Sequence[str]) -> str:
    """SHA-256 of an item's labels (name, size, shapes) and the batch's class order."""
    return sha256_bytes(pickle.dumps((item.name, item.size_hw, item.shapes, tuple(label_names)), protocol=4))


# ---------------------------------------------------------------------------------------------
# measure


@dataclass(frozen=True)
class MeasureTask(BatchTask):
    """Measure every labeled image of labeling exports (or of predictions read as exports).

    Parameters
    ----------
    images : path, optional
        Folder of the micrographs, if not beside the exports.
    options : MeasureOptions
        As in :func:`defectlab.measurement.measure`: ``pixel_size``, ``visible_only``,
        ``line_width`` and ``intensity`` change each image's outputs; ``thickness``,
        ``include_border``, ``cavity_labels``, ``size_measure`` and ``bins`` only the batch's
        statistics.
    figures : bool
        Draw the batch's size histograms.
    """

    name: ClassVar[str] = "measure"
    measures: ClassVar[bool] = True

    images: Path | None = None
    options: MeasureOptions = MeasureOptions()
    figures: bool = True

    def params(self) -> dict[str, Any]:
        o = self.options
        return {"pixel_size_nm": o.pixel_size, "visible_only": o.visible_only, "line_width": o.line_width,
                "intensity": o.intensity}

    def summary_options(self) -> MeasureOptions:
        return self.options

    def plan(self, inputs: Sequence[str | Path]) -> Plan:
        from ..formats import read
        from ..measurement.run import reported_labels
        from ..model import Label

        paths = expand_inputs(inputs, kind="exports")
        label_objs: dict[str, Label] = {}
        reported: list[str] = []
        items: list[Any] = []
        failures: list[dict[str, Any]] = []
        notes: list[Any] = []
        for path in paths:
            try:
                ds = read(path, images=self.images) if self.images is not None else read(path)
            except DefectlabError as err:
                failures.append({"key": key_of(path.name), "input": str(path), "error": str(err),
                                 "error_type": type(err).__name__})
                continue
            for lab in ds.labels:
                label_objs.setdefault(lab.name, lab)
            for it in ds.items:  # labels used but not declared: after the declared ones, as measure() does
                for s in it.shapes:
                    if s.label not in label_objs:
                        label_objs[s.label] = Label(s.label)
            reported += [lab for lab in reported_labels(ds) if lab not in reported]
            items += ds.items
            notes += ds.notes
        labels = tuple(label_objs.values())
        names = [lab.name for lab in labels]
        units = [Unit(key_of(it.key), it.image.path if it.image else None, it.image.member if it.image else None,
                      item=it, labels=labels, labels_sha256=labels_digest(it, names)) for it in items]
        check_keys(units)
        return Plan(self, units, paths, tuple(reported), failures, notes)

    def run(self, unit: Unit, dest: Path) -> dict[str, Any]:
        from ..measurement.run import measure_dataset
        from ..model import Dataset
        from .summary import write_unit_measurement

        if unit.item is None:
            raise BatchError(f"{unit.source}: a measure unit needs its labeled item")
        ds = Dataset(labels=unit.labels, items=(unit.item,))
        o = self.options
        defects, infos, notes = measure_dataset(ds, pixel_size_nm=o.pixel_size, intensity=o.intensity,
                                                visible_only=o.visible_only, line_width=o.line_width)
        write_unit_measurement(dest, defects, infos[0], notes)
        return {"defects": len(defects), "notes": len(notes)}


# ---------------------------------------------------------------------------------------------
# convert


@dataclass(frozen=True)
class ConvertTask(BatchTask):
    """Convert each labeling export to another format (``out/<export>/``), as
    :func:`defectlab.conversion.convert` does (``to="cvat"``: ``out/<export>/annotations.xml``).

    Parameters
    ----------
    options : ConvertOptions
        The output format and the writer's options.
    read : ReadOptions
        How the exports are read (their format, the images folder, YOLO class names).
    """

    name: ClassVar[str] = "convert"

    options: ConvertOptions = ConvertOptions()
    read: ReadOptions = ReadOptions()

    def params(self) -> dict[str, Any]:
        given = self.options.writer_options()
        return {"to": self.options.to, "from": self.read.format, "options": {k: given[k] for k in sorted(given)}}

    def plan(self, inputs: Sequence[str | Path]) -> Plan:
        try:
            self.options.writer_options()
        except DefectlabError as err:
            raise BatchError(str(err)) from err
        paths = expand_inputs(inputs, kind="exports")
        units = [Unit(key_of(p.name), p) for p in paths]
        check_keys(units)
        return Plan(self, units, paths)

    def run(self, unit: Unit, dest: Path) -> dict[str, Any]:
        from ..conversion import convert

        if unit.path is None:
            raise BatchError(f"{unit.source}: a convert unit needs an export path")
        result = convert(self.read.read(unit.path), dest, self.options, overwrite=True)
        return {"images": len(result.dataset), "notes": len(result.notes) + len(result.dataset.notes)}


# ---------------------------------------------------------------------------------------------
# predict


_MODELS: "OrderedDict[tuple[str, str, str], Any]" = OrderedDict()
_LOADS: list[tuple[str, str, str]] = []
_LOCK = threading.Lock()


def model_sha256(folder: str | Path) -> str:
    """SHA-256 over a model folder's ``config.json`` and ``weights.pt`` (an ensemble's, ``train
    --folds``: over its ``ensemble.json`` and every member folder's)."""
    from ..dl.ensemble import ENSEMBLE_FILE
    from .records import sha256_file

    folder = Path(folder)
    names = ["config.json", "weights.pt"]
    if (folder / ENSEMBLE_FILE).is_file():
        members = sorted(p.parent.name for p in folder.glob("*/config.json"))
        names = [ENSEMBLE_FILE] + [f"{m}/{n}" for m in members for n in names]
    parts = []
    for name in names:
        try:
            parts.append(f"{name}:{sha256_file(folder / name)}")
        except OSError as err:
            raise BatchError(f"{folder / name}: cannot be read ({err}); a model folder holds config.json and "
                             "weights.pt") from err
    return sha256_bytes("\n".join(parts).encode())


def cached_model(folder: str | Path, digest: str, device: str = "auto") -> Any:
    """The model of ``folder`` loaded once per process (the two most recent ones are kept).

    ``digest`` (:func:`model_sha256` when the batch started) is checked when the model is
    loaded: a model folder changed during a batch is an error, not a silent mix.
    """
    key = (str(Path(folder).absolute()), digest, str(device))
    with _LOCK:
        model = _MODELS.get(key)
        if model is not None:
            _MODELS.move_to_end(key)
            return model
        if model_sha256(folder) != digest:
            raise BatchError(f"{folder}: the model files changed since the batch started; run it again")
        from ..dl.model_io import load_model

        model = load_model(folder, device=device)
        _MODELS[key] = model
        _LOADS.append(key)
        while len(_MODELS) > 2:
            _MODELS.popitem(last=False)
        return model


def model_loads() -> int:
    """How many times this process loaded a model (for checking the cache)."""
    return len(_LOADS)


def prediction_masks_item(pred: Any, name: str) -> Any:
    """An :class:`~defectlab.model.Item` of a prediction: one Mask shape per instance, with its
    class as label and its score as the ``score`` attribute (exact pixels, no tracing)."""
    import numpy as np
    from scipy import ndimage

    from ..model import Item, Mask

    shapes = []
    for i, sl in enumerate(ndimage.find_objects(pred.instances), start=1):
        if sl is None or i > len(pred.instance_classes):
            continue
        cls = int(pred.instance_classes[i - 1])
        shapes.append(Mask(label=pred.classes[cls], bitmap=pred.instances[sl] == i, left=sl[1].start,
                           top=sl[0].start, source="auto",
                           attributes={"score": repr(float(np.float32(pred.scores[i - 1])))}))
    return Item(name=name, size_hw=pred.size_hw, shapes=tuple(shapes))


@dataclass(frozen=True)
class PredictTask(BatchTask):
    """Predict micrographs with a trained model and measure what it found.

    Parameters
    ----------
    model : path
        A model folder (``config.json`` + ``weights.pt``), reachable by every worker.
    device : str
        ``"auto"`` (CUDA > MPS > CPU on each worker), ``"cpu"``, ``"cuda"``, …
    prediction : PredictOptions
        How to predict, as for :func:`defectlab.dl.predict.predict_image` (tiles, engine,
        ``tta``, minimum area, the architecture's own thresholds, …); ``batch_size`` bounds a
        worker's memory (tiles through the net at once; default about a megapixel), whatever
        the image size. With ``tta`` each image also gets ``uncertainty.tif``.
    overlays : bool
        Also write ``overlay.png`` (classes in color over the micrograph).
    options : MeasureOptions
        How the defects found are measured (``pixel_size`` overrides the files' calibration)
        and the batch's statistics computed.
    figures : bool
        Draw the batch's size histograms.
    model_sha256 : str, optional
        Filled in by :meth:`plan`.
    """

    name: ClassVar[str] = "predict"
    measures: ClassVar[bool] = True

    model: Path
    device: str = "auto"
    prediction: PredictOptions = PredictOptions()
    overlays: bool = True
    options: MeasureOptions = MeasureOptions()
    figures: bool = True
    model_sha256: str | None = None

    def params(self) -> dict[str, Any]:
        # batch_size and device change speed, not results, and are left out on purpose
        prediction = {k: v for k, v in self.prediction.to_dict().items() if k != "batch_size"}
        return {"pixel_size_nm": self.options.pixel_size, **prediction, "overlays": self.overlays}

    def model_digest(self) -> str | None:
        return self.model_sha256

    def summary_options(self) -> MeasureOptions:
        return self.options

    def plan(self, inputs: Sequence[str | Path]) -> Plan:
        try:
            from ..dl.model_io import load_model
            from ..dl.predict import check_options
        except ImportError as err:
            raise BatchError(f"batch predict needs torch: pip install 'defectlab[torch]' ({err})") from err
        folder = Path(self.model).absolute()
        model = load_model(folder, device="cpu")  # checks the folder now, not on every worker
        check_options(model, self.prediction)  # and what the architecture does not do (--tta, others' options)
        digest = model_sha256(folder)
        paths = expand_inputs(inputs, kind="micrographs")
        units = [Unit(key_of(p.name), p) for p in paths]
        check_keys(units)
        task = replace(self, model=folder, model_sha256=digest)
        return Plan(task, units, paths, tuple(model.classes.values()))

    def run(self, unit: Unit, dest: Path) -> dict[str, Any]:
        from ..dl.predict import predict_image
        from ..imaging.io import write_image
        from ..imaging.micrograph import read_micrograph
        from ..measurement.run import covered_px
        from ..measurement.props import measure_instances
        from ..measurement.stats import ImageInfo
        from ..raster import instances
        from .summary import write_member_defects, write_unit_measurement

        if self.model_sha256 is None or unit.path is None:
            raise BatchError("a predict task runs after plan() (it needs the model digest and a file)")
        model = cached_model(self.model, self.model_sha256, self.device)
        m = read_micrograph(unit.path, pixel_size=self.options.pixel_size)
        pred = predict_image(model, m.array, self.prediction, members=True)  # an ensemble's members: the same passes
        write_image(dest / "mask.png", pred.semantic)
        write_image(dest / "instances.tif", pred.instances)
        if pred.uncertainty is not None:
            write_image(dest / "uncertainty.tif", pred.uncertainty)
        if self.overlays:
            from ..viz import overlay

            write_image(dest / "overlay.png", overlay(m.array, pred.semantic, model.config.colors_rgb,
                                                      outlines=pred.instances))
        names = dict(model.classes)

        def measured(p: Any) -> tuple[Any, Any, Any, Any]:
            item = prediction_masks_item(p, unit.path.name)  # type: ignore[union-attr]
            found, notes = instances(item, {name: i for i, name in names.items()},
                                     visible_only=self.options.visible_only, line_width=self.options.line_width)
            defects = measure_instances(found, item.size_hw, item_key=item.key, class_names=names, image=m.array,
                                        pixel_size_nm=m.pixel_size_nm)
            return item, found, notes, defects

        item, found, notes, defects = measured(pred)
        info = ImageInfo(item.key, item.size_hw, m.pixel_size_nm, covered_px(found, item.size_hw, names),
                         m.metadata.get("calibration"))
        write_unit_measurement(dest, defects, info, notes,
                               {"instances": pred.counts(), "seconds_predict": round(pred.seconds, 4)})
        for member, own in zip(getattr(model, "names", ()), pred.members or ()):  # the batch's model uncertainty
            write_member_defects(dest, member, measured(own)[3])
        return {"defects": len(defects), "instances": pred.counts()}
