"""The notebook-first Python API: one function per command, with the same names and defaults.

``defectlab`` re-exports these, so a notebook reads::

    import defectlab

    ds = defectlab.read("cvat_export.zip")          # defectlab info cvat_export.zip
    ds                                              # a summary table in Jupyter
    defectlab.show(ds, 0)                           # the micrograph with its labels
    result = defectlab.check(ds)                    # defectlab check cvat_export.zip
    defectlab.write_unet(ds, "unet")                # defectlab convert … --to unet --out unet
    defectlab.prepare(ds, "tiles", to="maskrcnn")   # defectlab prepare … --to maskrcnn --out tiles
    run = defectlab.train_unet("unet", "model")     # defectlab train unet unet --out model
    defectlab.predict(run.model, "new_images/", "pred", prelabels="cvat")
    m = defectlab.measure(ds, pixel_size="0.38nm")  # defectlab measure … --pixel-size 0.38nm

==========================================  ===============================================
Python                                      command line
==========================================  ===============================================
``read(path, format=, images=)``            ``defectlab info PATH --from --images``
``synthetic(out, n=8, size=512, seed=0)``   ``defectlab synth OUT --n 8 --size 512 --seed 0``
``check(export, report=)``                  ``defectlab check EXPORT --report``
``fix(export, result, out=)``               ``defectlab check EXPORT --fix OUT``
``prepare(export, out, to="unet")``         ``defectlab prepare EXPORT --to unet --out OUT``
``train(arch, data, out)``                  ``defectlab train ARCH DATA --out OUT``
``train_unet(data, out)``                   ``defectlab train unet DATA --out OUT``
``train_maskrcnn(data, out)``               ``defectlab train maskrcnn DATA --out OUT``
``load_model(path)``, ``predict(…)``        ``defectlab predict MODEL IMAGES --out OUT``
``measure(source, out=)``                   ``defectlab measure SOURCE --out OUT``
``evaluate(predictions, labels, out=)``     ``defectlab evaluate PRED LABELS --out OUT``
``show(dataset, i)``                        ``defectlab overlay EXPORT --out OUT``
==========================================  ===============================================

Options keep their names (``--pixel-size`` ↔ ``pixel_size``) and their defaults, with one
difference made for notebooks: ``progress`` is True, as on the command line.

Everything heavy is imported inside the functions: ``import defectlab`` stays fast and never
imports torch or matplotlib. The torch-based functions (:func:`train_unet`,
:func:`train_maskrcnn`, :func:`load_model`, :func:`predict`) raise an ImportError that says
how to install the ``torch`` extra when torch is missing.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .model import Dataset
from .notebook import show

if TYPE_CHECKING:  # pragma: no cover
    from .dl.model_io import Model
    from .dl.options import PredictOptions, TrainOptions
    from .dl.predict import PredictReport
    from .dl.train import TrainResult
    from .measurement import Evaluation, Measurement
    from .measurement.options import EvaluateOptions, MeasureOptions
    from .preparation.options import PrepareOptions
    from .preparation.pipeline import PrepareReport
    from .qc import CheckResult, FixResult
    from .qc.options import CheckOptions

__all__ = [
    "check", "evaluate", "fix", "load_model", "measure", "predict", "prepare", "read", "show", "suggest", "synthetic",
    "train", "train_maskrcnn", "train_unet",
]

#: How to get the torch extra, in the words of the error torch-based functions raise.
TORCH_INSTALL = ("pip install 'defectlab[torch]' (in a notebook: %pip install 'defectlab[torch]'; "
                 "Google Colab has torch already)")


def _require(what: str, modules: Sequence[str] = ("torch",)) -> None:
    """Raise an ImportError naming the extra to install when one of ``modules`` is missing."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise ImportError(f"{what} needs {name}, which is not installed here: {TORCH_INSTALL}") from err
        except ImportError as err:  # installed, but broken (e.g. a CUDA library missing)
            raise ImportError(f"{what} needs {name}, which is installed but cannot be imported ({err}); "
                              f"reinstall it: {TORCH_INSTALL}") from err


# ---------------------------------------------------------------------------------------------
# Labels in: read, synthetic, check


def read(path: str | Path, *, format: str | None = None, images: str | Path | None = None,
         **options: Any) -> Dataset:
    """Read a labeling export (CVAT, COCO, YOLO, VIA, LabelMe, Labelbox, mask images, …).

    The Python door to ``defectlab info PATH [--from FORMAT] [--images DIR]``.

    Parameters
    ----------
    path : str or Path
        A file, a folder holding the export, or the ``.zip`` the labeling tool downloads.
    format : str, optional
        A format name (``"cvat"``, ``"coco"``, ``"yolo"``, …); detected from the path when
        omitted (``--from``).
    images : str or Path, optional
        The folder holding the image files, if they are not beside the export (``--images``).
    **options
        Passed on to the format's reader (e.g. ``class_attribute=`` for VIA).

    Returns
    -------
    Dataset
        Labels, one item per image (its shapes in absolute float pixels), and ``notes`` on
        anything the reader skipped. In Jupyter it shows as a summary table.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> export = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> _ = dl.synthetic(export, n=2, size=128)
    >>> ds = dl.read(export / "annotations.xml")
    >>> len(ds), ds.format, [lab.name for lab in ds.labels]
    (2, 'cvat', ['cavity', 'loop', 'precipitate', 'dislocation line'])
    """
    from .formats import read as read_export

    if images is not None:
        options["images"] = images
    return read_export(path, format=format, **options)


def synthetic(out: str | Path, *, n: int = 8, size: int | tuple[int, int] = 512, seed: int = 0,
              overwrite: bool = False, **config: Any) -> Dataset:
    """Write synthetic TEM-like micrographs with exact labels, as a CVAT export.

    The Python door to ``defectlab synth OUT --n 8 --size 512 --seed 0``: ``OUT/images/*.png``
    and ``OUT/annotations.xml``, with cavities (inner edge), loops (outer edge), precipitates
    and dislocation lines (see :mod:`defectlab.preparation.synthetic`).

    Parameters
    ----------
    out : str or Path
        Folder to write (atomically; an existing non-empty one only with ``overwrite``).
    n : int
        Number of images.
    size : int or (int, int)
        Image width and height in px, or ``(H, W)``.
    seed : int
        Random seed: the same seed gives the same images.
    overwrite : bool
        Replace an existing folder.
    **config
        More :class:`~defectlab.preparation.synthetic.SyntheticConfig` fields: ``n_cavities``,
        ``n_loops``, ``n_precipitates``, ``n_lines``, ``noise``, ``blur_px``, ….

    Returns
    -------
    Dataset
        The labels as written, each item with its image file.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "synth"
    >>> ds = dl.synthetic(out, n=3, size=(96, 128), n_lines=0)
    >>> len(ds), ds[0].size_hw, sorted(p.name for p in out.iterdir())
    (3, (96, 128), ['annotations.xml', 'images'])
    """
    from .preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    size_hw = (int(size), int(size)) if isinstance(size, int) else tuple(size)
    cfg = SyntheticConfig(size_hw=size_hw, **config)
    return make_synthetic_dataset(out, n_images=n, config=cfg, seed=seed, overwrite=overwrite)


def check(
    export: Dataset | str | Path,
    options: CheckOptions | None = None,
    *,
    images: str | Path | None = None,
    report: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> CheckResult:
    """Find the labeling problems that spoil training, before they cost a training run.

    The Python door to ``defectlab check EXPORT``: missing images and wrong sizes, shapes
    without pixels, self-intersecting polygons, duplicates, holes between masks, two defects
    drawn as one, boundaries at the wrong edge (inner edge for cavities, outer edge for
    loops), size outliers. Every code is explained in :data:`defectlab.qc.CHECKS`.

    Parameters
    ----------
    export : Dataset, str or Path
        A dataset, or an export to read.
    options : CheckOptions, optional
        :class:`~defectlab.qc.options.CheckOptions`; or give its fields by name:
        ``edges={"loop": "outer"}`` (``--edge``), ``solidity``, ``edge_tolerance``,
        ``hole_area_px``, ``min_area_px``, ``duplicate_iou``, ``overlap``,
        ``outside_tolerance_px``, ``outlier_z``, ``image_size_hw``, ``line_width``,
        ``use_images`` (``--no-images``).
    images : str or Path, optional
        Folder holding the image files, when ``export`` is a path (``--images``).
    report : str or Path, optional
        Also write the offline HTML report here (``--report``).
    overwrite : bool
        Replace an existing ``report``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    CheckResult
        ``findings`` (most serious first), ``stats`` per label, ``failed("error")``; shows as
        a table in Jupyter, and :func:`defectlab.notebook.show_findings` draws them.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> from defectlab.model import Ellipse
    >>> ds = dl.synthetic(pathlib.Path(tempfile.mkdtemp()) / "export", n=1, size=128)
    >>> dl.check(ds, progress=False).counts()["error"]
    0
    >>> first = ds[0]
    >>> doubled = ds.with_items([first.__class__(first.name, first.size_hw, first.shapes + first.shapes[:1],
    ...                                          image=first.image)])
    >>> [f.code for f in dl.check(doubled, progress=False).findings if f.severity == "error"]
    ['shape-duplicate']
    """
    from .errors import OutputError
    from .qc import check as run

    if report is not None and Path(report).exists() and not overwrite:
        raise OutputError(f"{report}: exists; pass overwrite=True to replace it")
    result = run(export, options, images=images, progress=progress, **changes)
    if report is not None:
        result.write_report(report, overwrite=overwrite, progress=progress)
    return result


def fix(
    export: Dataset | str | Path,
    findings: Any = None,
    options: CheckOptions | None = None,
    *,
    images: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> FixResult:
    """Repair what needs no person: holes between masks, shapes outside the image, duplicates.

    The Python door to ``defectlab check EXPORT --fix OUT``; see :mod:`defectlab.qc.repair` for
    what each repair does. Every change is listed, the input is never modified, and the
    findings that need a person are counted in ``not_fixable``.

    Parameters
    ----------
    export : Dataset, str or Path
        The dataset that was checked, or an export to read.
    findings : CheckResult or iterable of Finding, optional
        What to repair, e.g. the result of :func:`check`; default: check the annotations now.
    options : CheckOptions, optional
        The check's options (by default those of ``findings`` when it is a CheckResult); or
        give its fields by name (``hole_area_px``, ``duplicate_iou``, …).
    images : str or Path, optional
        Folder holding the image files, when ``export`` is a path.
    out : str or Path, optional
        Also write the repaired copy there, in the export's format where defectlab writes it
        (else CVAT XML), with ``changes.json`` (``--fix``).
    overwrite : bool
        Replace an existing ``out``.
    progress : bool
        Show a progress bar while checking.

    Returns
    -------
    FixResult
        ``dataset`` (repaired), ``changes``, ``skipped``, ``not_fixable``, ``write(out)``.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> ds = dl.synthetic(pathlib.Path(tempfile.mkdtemp()) / "export", n=1, size=128)
    >>> first = ds[0]
    >>> doubled = ds.with_items([first.__class__(first.name, first.size_hw, first.shapes + first.shapes[:1],
    ...                                          image=first.image)])
    >>> repaired = dl.fix(doubled, dl.check(doubled, progress=False))
    >>> [c.action for c in repaired.changes], len(repaired.dataset[0].shapes) == len(first.shapes)
    (['dropped'], True)
    """
    from .qc import fix as run

    return run(export, findings, options, images=images, out=out, overwrite=overwrite, progress=progress, **changes)


# ---------------------------------------------------------------------------------------------
# Training data: prepare


def prepare(
    export: Dataset | str | Path,
    out: str | Path,
    options: PrepareOptions | None = None,
    *,
    images: str | Path | None = None,
    write_options: Mapping[str, Any] | None = None,
    preview: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> PrepareReport:
    """Tile, split and augment an export, and write it for training (U-Net, Mask R-CNN, YOLO, COCO).

    The Python door to ``defectlab prepare EXPORT --to unet --out OUT``:
    :func:`defectlab.preparation.prepare`.

    Parameters
    ----------
    export : Dataset, str or Path
        A labeling export (or a Dataset whose items have their image files).
    out : str or Path
        Output folder: ``train/``, ``val/``, ``test/`` (unet, maskrcnn) or the format's
        layout with one subset per split, ``manifest.json`` and ``preview/``.
    options : PrepareOptions, optional
        :class:`~defectlab.preparation.options.PrepareOptions`; or give its fields by name:
        ``to`` (``--to``), ``tile``, ``stride``, ``split``, ``augment``, ``copies``, ``seed``,
        ``image_size_hw`` (``--size``), ``fit``, ``normalization``, ``task``, ….
    images : str or Path, optional
        Folder holding the image files, when ``export`` is a path (``--images``).
    write_options : mapping, optional
        More keyword arguments for the writer.
    preview, overwrite, progress : bool
        Draw ``preview/``; replace ``out``; show progress bars.

    Returns
    -------
    PrepareReport
        ``counts`` per split, ``manifest``, ``notes``.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = dl.synthetic(tmp / "export", n=4, size=128)
    >>> report = dl.prepare(ds, tmp / "tiles", to="unet", tile=64, split=(0.5, 0.25, 0.25), progress=False)
    >>> {s: c["tiles"] for s, c in report.counts.items()}
    {'train': 8, 'val': 4, 'test': 4}
    """
    from .preparation.pipeline import prepare as run

    return run(export, out, options, images=images, write_options=write_options, preview=preview,
               overwrite=overwrite, progress=progress, **changes)


# ---------------------------------------------------------------------------------------------
# Deep learning (torch extra): train, load, predict


def train(
    arch: str,
    data: Dataset | str | Path,
    out: str | Path,
    options: TrainOptions | None = None,
    params: Any = None,
    *,
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plot: bool = True,
    callback: Any = None,
    **changes: Any,
) -> TrainResult:
    """Train a model of any registered architecture and write it as a model folder. Needs torch.

    The Python door to ``defectlab train ARCH DATA --out OUT``: :func:`defectlab.dl.train.train`.
    :func:`train_unet` and :func:`train_maskrcnn` are this for the built-in architectures;
    one registered elsewhere (:func:`defectlab.dl.archs.register`) trains the same way.

    Parameters
    ----------
    arch : str
        The architecture's name (``"unet"``, ``"maskrcnn"``, …: :func:`defectlab.dl.archs.names`).
    data : Dataset, str or Path
        A labeling export, a Dataset with its images, a written training folder of the
        architecture's kind, or a ``prepare`` root (trained on ``train/``, validated on ``val/``).
    out : str or Path
        The model folder: ``config.json``, ``weights.pt``, ``history.json``,
        ``training_curve.png``.
    options : TrainOptions, optional
        :class:`~defectlab.dl.options.TrainOptions` (None fields: the architecture's
        defaults); or its fields by name.
    params : optional
        The architecture's own options (its ``Params``); or their fields by name.
    images : str or Path, optional
        Folder holding the image files of an export.
    overwrite, progress, plot : bool
        Replace ``out``; show progress bars; draw ``training_curve.png``.
    callback : callable, optional
        Called with each epoch's history entry.

    Returns
    -------
    TrainResult
        With ``folds=K`` (cross-validation): a :class:`~defectlab.dl.ensemble.FoldsResult`,
        the K models' ensemble (``model``), each fold's result and the scores pooled over them.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = dl.synthetic(tmp / "export", n=2, size=64, n_loops=0, n_precipitates=0, n_lines=0)
    >>> run = dl.train("unet", ds, tmp / "model", epochs=1, batch_size=2, tile_size=64, base_filters=4,
    ...                depth=2, min_steps=1, progress=False, plot=False)
    >>> run.model.architecture, run.model.classes[1]
    ('unet', 'cavity')
    """
    _require("train")
    from .dl.train import train as run

    return run(arch, data, out, options, params, images=images, overwrite=overwrite, progress=progress, plot=plot,
               callback=callback, **changes)


def train_unet(
    data: Dataset | str | Path,
    out: str | Path,
    options: TrainOptions | None = None,
    params: Any = None,
    **kwargs: Any,
) -> TrainResult:
    """Train a U-Net (semantic segmentation) and write it as a model folder. Needs torch.

    The Python door to ``defectlab train unet DATA --out OUT``: :func:`defectlab.dl.train.train`
    of the ``unet`` architecture.

    Parameters
    ----------
    data : Dataset, str or Path
        A labeling export, a Dataset with its images, a ``write_unet`` folder, or a
        ``prepare`` root (trained on ``train/``, validated on ``val/``).
    out : str or Path
        The model folder: ``config.json``, ``weights.pt``, ``history.json``,
        ``training_curve.png``.
    options : TrainOptions, optional
        :class:`~defectlab.dl.options.TrainOptions`; or give its fields by name: ``epochs``
        (50), ``batch_size`` (8), ``lr`` (1e-3), ``schedule``, ``val_split``, ``seed``,
        ``device``, ``tile_size`` (256 px), ``patience``, ``steps_per_epoch``, …
    params : UNetParams, optional
        The U-Net's own options (:class:`~defectlab.dl.archs.unet.UNetParams`); or by name:
        ``loss`` (``"ce+dice"``), ``base_filters`` (16), ``depth`` (3),
        ``bottleneck_dilations`` — about 0.63 M parameters by default.
    **kwargs
        The options by name, and :func:`train`'s keywords: ``images`` (the folder holding
        an export's image files), ``overwrite``, ``progress`` (True), ``plot`` (draw
        ``training_curve.png``), ``callback`` (called with each epoch's history entry).

    Returns
    -------
    TrainResult
        ``model`` (ready to ``predict``), ``history`` per epoch, ``best_epoch``, ``path``.

    Raises
    ------
    ImportError
        torch is not installed (the message says how to install it).

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = dl.synthetic(tmp / "export", n=2, size=64, n_loops=0, n_precipitates=0, n_lines=0)
    >>> run = dl.train_unet(ds, tmp / "model", epochs=1, batch_size=2, tile_size=64, base_filters=4,
    ...                     depth=2, min_steps=1, progress=False, plot=False)
    >>> run.model.classes[1], len(run.history), (tmp / "model" / "weights.pt").is_file()
    ('cavity', 1, True)
    """
    _require("train_unet")
    return train("unet", data, out, options, params, **kwargs)


def train_maskrcnn(
    data: Dataset | str | Path,
    out: str | Path,
    options: TrainOptions | None = None,
    params: Any = None,
    **kwargs: Any,
) -> TrainResult:
    """Train a torchvision Mask R-CNN (instance segmentation) and write a model folder. Needs torch.

    The Python door to ``defectlab train maskrcnn DATA --out OUT``:
    :func:`defectlab.dl.train.train` of the ``maskrcnn`` architecture.

    Parameters
    ----------
    data : Dataset, str or Path
        A labeling export, a Dataset with its images, a ``write_maskrcnn`` folder, or a
        ``prepare --to maskrcnn`` root (trained on ``train/``, validated on ``val/``).
    out : str or Path
        The model folder.
    options : TrainOptions, optional
        :class:`~defectlab.dl.options.TrainOptions`; or give its fields by name: ``epochs``
        (20), ``batch_size`` (2), ``lr`` (1e-4, AdamW's), ``tile_size`` (512 px),
        ``patience`` (5), ``max_steps``, …
    params : MaskRCNNParams, optional
        Mask R-CNN's own options (:class:`~defectlab.dl.archs.maskrcnn.MaskRCNNParams`); or
        by name: ``backbone`` (``"resnet50"`` or the lighter ``"resnet18"``), ``pretrained``
        (start from torchvision's weights, downloaded once: needs internet; default: from
        scratch, offline — slow to learn; use a GPU).
    **kwargs
        The options by name, and :func:`train`'s keywords (``images``, ``overwrite``,
        ``progress``, ``plot``, ``callback``).

    Returns
    -------
    TrainResult

    Raises
    ------
    ImportError
        torch or torchvision is not installed (the message says how to install them).

    Examples
    --------
    >>> import tempfile, pathlib, warnings, defectlab.api as dl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = dl.synthetic(tmp / "export", n=1, size=64, n_loops=0, n_precipitates=0, n_lines=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")        # "training from scratch": it says so in run.notes
    ...     run = dl.train_maskrcnn(ds, tmp / "model", epochs=1, batch_size=1, tile_size=64,
    ...                             backbone="resnet18", max_steps=1, progress=False, plot=False)
    >>> run.model.architecture, run.model.classes[1]
    ('maskrcnn', 'cavity')
    """
    _require("train_maskrcnn", ("torch", "torchvision"))
    return train("maskrcnn", data, out, options, params, **kwargs)


def load_model(path: str | Path, *, device: str = "auto", classes: Sequence[str] | None = None) -> Model:
    """Load a trained model folder (``config.json`` + ``weights.pt``), checking everything. Needs torch.

    Parameters
    ----------
    path : str or Path
        The folder written by :func:`train_unet`, :func:`train_maskrcnn` or the CLI.
    device : str
        ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    classes : sequence of str, optional
        The class names the caller expects, in order; a ModelError if the model's differ.

    Returns
    -------
    Model
        ``model.predict(image)`` gives a :class:`~defectlab.dl.predict.Prediction`:
        ``semantic`` (H, W) uint8, ``instances`` (H, W) int32, ``scores``.

    Raises
    ------
    ImportError
        torch is not installed (the message says how to install it).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, defectlab.api as dl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = dl.synthetic(tmp / "export", n=1, size=64, n_loops=0, n_precipitates=0, n_lines=0)
    >>> _ = dl.train_unet(ds, tmp / "model", epochs=1, batch_size=1, tile_size=64, base_filters=4, depth=2,
    ...                   min_steps=1, progress=False, plot=False)
    >>> model = dl.load_model(tmp / "model", device="cpu")
    >>> pred = model.predict(np.zeros((100, 120), np.uint8))
    >>> pred.semantic.shape, pred.semantic.dtype
    ((100, 120), dtype('uint8'))
    """
    _require("load_model")
    from .dl.model_io import load_model as run

    return run(path, device=device, classes=classes)


def predict(
    model: Model | str | Path,
    images: str | Path | Sequence[str | Path],
    out: str | Path,
    options: PredictOptions | None = None,
    *,
    prelabels: str | Sequence[str] | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> PredictReport:
    """Predict micrographs of any size and write masks, instances, overlays and CVAT pre-labels. Needs torch.

    The Python door to ``defectlab predict MODEL IMAGES --out OUT``. For one image in memory
    use ``model.predict(image)``.

    Parameters
    ----------
    model : Model, str or Path
        A loaded model, or a model folder (loaded on ``device``).
    images : path or sequence of paths
        Image files or folders (searched recursively).
    out : str or Path
        Output folder: ``masks/``, ``instances/``, ``overlays/``, ``summary.json`` and, with
        ``prelabels="cvat"``, ``prelabels/annotations.xml`` to upload to CVAT.
    options : PredictOptions, optional
        :class:`~defectlab.dl.options.PredictOptions`; or give its fields by name:
        ``tile_size``, ``overlap``, ``batch_size``, ``engine`` (``"auto"``: ONNX Runtime on
        a CPU when installed), ``probabilities`` (also write ``probabilities/<stem>.npy``),
        ``min_area_px``, ``neck_ratio``, ``score_threshold``, …
    prelabels : {None, "cvat", "coco"} or a list of them
        Also write pre-labels for CVAT (``--prelabels cvat``) and/or COCO.
    device : str
        Where a model given as a path runs.
    overwrite, progress : bool
        Replace ``out``; show a progress bar.

    Returns
    -------
    PredictReport
        ``out``, per-image ``images`` summaries, ``prelabels`` (the XML's path), ``notes``.

    Raises
    ------
    ImportError
        torch is not installed (the message says how to install it).

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = dl.synthetic(tmp / "export", n=2, size=64, n_loops=0, n_precipitates=0, n_lines=0)
    >>> run = dl.train_unet(ds, tmp / "model", epochs=1, batch_size=2, tile_size=64, base_filters=4, depth=2,
    ...                     min_steps=1, progress=False, plot=False)
    >>> report = dl.predict(run.model, tmp / "export" / "images", tmp / "pred", prelabels="cvat", progress=False)
    >>> len(report.images), sorted(p.name for p in (tmp / "pred").iterdir())
    (2, ['instances', 'masks', 'overlays', 'prelabels', 'summary.json'])
    """
    _require("predict")
    from .dl.predict import predict_images

    if isinstance(model, (str, Path)):
        model = load_model(model, device=device)
    paths = [images] if isinstance(images, (str, Path)) else list(images)
    return predict_images(model, paths, out, options, prelabels=prelabels, overwrite=overwrite, progress=progress,
                          **changes)


def suggest(
    model: Model | str | Path,
    unlabeled: str | Path,
    out: str | Path,
    *,
    n: int = 5,
    options: PredictOptions | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> Any:
    """Which unlabeled images to label next, with their pre-labels. Needs torch.

    The Python door to ``defectlab suggest MODEL UNLABELED --n 5 --out OUT``: every image is
    predicted with test-time augmentation and scored ``uncertainty + unlikeness`` (``1 -
    reliability``, plus how far outside the training images' statistics it is, see
    :mod:`defectlab.dl.suggest`); the ``n`` best are written with CVAT pre-labels.

    Parameters
    ----------
    model : Model, str or Path
        A loaded U-Net model, or its folder (loaded on ``device``).
    unlabeled : str or Path
        A folder of images (searched recursively).
    out : str or Path
        Output folder: ``suggest.csv``, ``prelabels/annotations.xml``, ``contact_sheet.png``,
        the chosen images' ``masks/``, ``instances/``, ``overlays/``, ``uncertainty/``.
    n : int
        How many images to choose.
    options : PredictOptions, optional
        How to predict (or its fields by name); test-time augmentation is always on.

    Returns
    -------
    SuggestReport
        ``rows`` (rank, image, score and its parts, every image, best first), ``chosen``,
        ``prelabels``, ``contact_sheet``, ``notes``.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> labeled = dl.synthetic(tmp / "labeled", n=2, size=64, n_loops=0, n_precipitates=0, n_lines=0)
    >>> _ = dl.synthetic(tmp / "new", n=3, size=64, seed=1, n_loops=0, n_precipitates=0, n_lines=0)
    >>> run = dl.train_unet(labeled, tmp / "model", epochs=1, tile_size=64, base_filters=4, depth=2, min_steps=1,
    ...                     progress=False, plot=False)
    >>> report = dl.suggest(tmp / "model", tmp / "new" / "images", tmp / "next", n=2, progress=False)
    >>> [r["rank"] for r in report.chosen], (tmp / "next" / "suggest.csv").is_file()
    ([1, 2], True)
    """
    _require("suggest")
    from .dl.suggest import suggest_images

    if isinstance(model, (str, Path)):
        model = load_model(model, device=device)
    return suggest_images(model, unlabeled, out, n=n, options=options, overwrite=overwrite, progress=progress,
                          **changes)


# ---------------------------------------------------------------------------------------------
# Results: measure, evaluate


def measure(
    source: Dataset | str | Path,
    options: MeasureOptions | None = None,
    *,
    out: str | Path | None = None,
    images: str | Path | None = None,
    members: Sequence[Dataset | str | Path] | None = None,
    figures: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> Measurement:
    """Measure every defect in px and nm: sizes, counts, densities, area fraction, swelling.

    The Python door to ``defectlab measure SOURCE --out OUT``: :func:`defectlab.measurement.measure`,
    and the report written when ``out`` is given.

    Parameters
    ----------
    source : Dataset, str or Path
        Labels or predictions: an export, a folder of mask images, or a Dataset.
    options : MeasureOptions, optional
        :class:`~defectlab.measurement.options.MeasureOptions`; or give its fields by name
        (``pixel_size="0.38nm"``, ``thickness="80nm"``, ``include_border=``,
        ``cavity_labels=``, ``size_measure=``, ``bins=``, …).
    out : str or Path, optional
        Also write the tables (CSV), ``summary.json``, figures and ``index.html`` here.
    images : str or Path, optional
        Folder of the micrographs (their calibration) if not beside the export.
    members : sequence of Dataset, str or Path, optional
        The ensemble members' predictions of the same images, whose spread the intervals
        then hold (model uncertainty); default: those in ``members/*/annotations.xml``
        beside ``source``, if any; ``()``: none.
    figures, overwrite : bool
        With ``out``: draw the PNG figures; replace an existing folder.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Measurement
        ``defects`` (one row per defect: ``area_px``, ``diameter_nm``, …), ``per_image``,
        ``per_set`` tables (each shows as a table in Jupyter); ``write(out)``.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> ds = dl.synthetic(pathlib.Path(tempfile.mkdtemp()) / "export", n=1, size=128, n_loops=0,
    ...                   n_precipitates=0, n_lines=0)
    >>> m = dl.measure(ds, pixel_size="0.5nm", progress=False)
    >>> row = m.per_set.rows()[0]
    >>> row["label"], row["count"] == len(ds[0].shapes)
    ('cavity', True)
    """
    from .measurement import measure as run

    m = run(source, options, images=images, members=members, progress=progress, **changes)
    if out is not None:
        m.write(out, overwrite=overwrite, figures=figures)
    return m


def evaluate(
    predictions: Dataset | str | Path,
    labels: Dataset | str | Path,
    options: EvaluateOptions | None = None,
    *,
    out: str | Path | None = None,
    images: str | Path | None = None,
    figures: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    **changes: Any,
) -> Evaluation:
    """Score predictions against labels: precision, recall, F1, pixel IoU, COCO mAP, size errors.

    The Python door to ``defectlab evaluate PREDICTIONS LABELS --out OUT``:
    :func:`defectlab.measurement.evaluate`, and the report written when ``out`` is given.

    Parameters
    ----------
    predictions, labels : Dataset, str or Path
        Predicted and true shapes (CVAT pre-labels, instance masks, exports, Datasets);
        images are paired by name.
    options : EvaluateOptions, optional
        :class:`~defectlab.measurement.options.EvaluateOptions`: ``iou`` and the fields of
        :class:`~defectlab.measurement.options.MeasureOptions`; or give them by name.
    out : str or Path, optional
        Also write tables, ``summary.json``, figures and ``index.html`` here.
    images, figures, overwrite, progress
        As for :func:`measure`.

    Returns
    -------
    Evaluation
        ``overall`` (``precision``, ``recall``, ``f1``, ``mAP``, …), ``per_class``, ``matches``.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab.api as dl
    >>> ds = dl.synthetic(pathlib.Path(tempfile.mkdtemp()) / "export", n=1, size=128)
    >>> e = dl.evaluate(ds, ds, pixel_size="0.5nm", progress=False)   # labels against themselves: perfect
    >>> e.overall["precision"], e.overall["recall"], e.overall["pixel_iou"]
    (1.0, 1.0, 1.0)
    """
    from .measurement import evaluate as run

    e = run(predictions, labels, options, images=images, progress=progress, **changes)
    if out is not None:
        e.write(out, overwrite=overwrite, figures=figures)
    return e
