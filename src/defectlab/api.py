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
    from .dl.predict import PredictReport
    from .dl.train import TrainResult
    from .measurement import Evaluation, Measurement
    from .measurement.options import EvaluateOptions, MeasureOptions
    from .preparation.pipeline import PrepareReport
    from .qc import CheckResult, FixResult

__all__ = [
    "check", "evaluate", "fix", "load_model", "measure", "predict", "prepare", "read", "show", "synthetic",
    "train_maskrcnn", "train_unet",
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
    *,
    images: str | Path | None = None,
    edges: Mapping[str, str] | None = None,
    report: str | Path | None = None,
    overwrite: bool = False,
    solidity: float = 0.75,
    edge_tolerance: float = 2.0,
    hole_area_px: float = 100.0,
    min_area_px: float = 10.0,
    duplicate_iou: float = 0.95,
    overlap: float = 0.5,
    outside_tolerance_px: float = 1.0,
    outlier_z: float = 4.0,
    image_size_hw: tuple[int, int] | None = None,
    line_width: float = 3.0,
    use_images: bool = True,
    progress: bool = True,
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
    images : str or Path, optional
        Folder holding the image files, when ``export`` is a path (``--images``).
    edges : mapping, optional
        Label -> ``"inner"`` or ``"outer"`` (``--edge LABEL=inner``); default: the export's,
        else guessed from the label's name.
    report : str or Path, optional
        Also write the offline HTML report here (``--report``).
    overwrite : bool
        Replace an existing ``report``.
    solidity, edge_tolerance, hole_area_px, min_area_px, duplicate_iou, overlap : float
        Thresholds (``--solidity``, ``--edge-tolerance``, ``--hole-area``, ``--min-area``,
        ``--duplicate-iou``, ``--overlap``); see :class:`defectlab.qc.CheckConfig`.
    outside_tolerance_px, outlier_z, line_width : float
        Thresholds (``--outside-tolerance``, ``--outlier-z``, ``--line-width``).
    image_size_hw : (int, int), optional
        The size every image should have (``--image-size WxH``); default: each set's most
        common size.
    use_images : bool
        Read the image files; False checks the annotations only (``--no-images``).
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
    from .qc import check as run_check
    from .errors import OutputError

    if report is not None and Path(report).exists() and not overwrite:
        raise OutputError(f"{report}: exists; pass overwrite=True to replace it")
    result = run_check(export, images=images, edges=edges, solidity=solidity, edge_tolerance=edge_tolerance,
                       hole_area_px=hole_area_px, min_area_px=min_area_px, duplicate_iou=duplicate_iou,
                       overlap=overlap, outside_tolerance_px=outside_tolerance_px, outlier_z=outlier_z,
                       image_size_hw=image_size_hw, line_width=line_width, use_images=use_images,
                       progress=progress)
    if report is not None:
        result.write_report(report, overwrite=overwrite, progress=progress)
    return result


def fix(
    export: Dataset | str | Path,
    findings: Any = None,
    *,
    images: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    hole_area_px: float = 100.0,
    duplicate_iou: float = 0.95,
    outside_tolerance_px: float = 1.0,
    line_width: float = 3.0,
    progress: bool = True,
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
    images : str or Path, optional
        Folder holding the image files, when ``export`` is a path.
    out : str or Path, optional
        Also write the repaired copy there, in the export's format where defectlab writes it
        (else CVAT XML), with ``changes.json`` (``--fix``).
    overwrite : bool
        Replace an existing ``out``.
    hole_area_px, duplicate_iou, outside_tolerance_px, line_width : float
        The check's thresholds (same names and defaults as :func:`check`).
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
    from .qc import fix as run_fix

    return run_fix(export, findings, images=images, hole_area_px=hole_area_px, duplicate_iou=duplicate_iou,
                   outside_tolerance_px=outside_tolerance_px, line_width=line_width, out=out, overwrite=overwrite,
                   progress=progress)


# ---------------------------------------------------------------------------------------------
# Training data: prepare


def prepare(
    export: Dataset | str | Path,
    out: str | Path,
    *,
    to: str = "unet",
    tile: int | Sequence[int] | None = 256,
    stride: int | Sequence[int] | None = None,
    split: str | Sequence[float] = (0.8, 0.1, 0.1),
    augment: str | Sequence[str] | None = None,
    copies: int = 1,
    seed: int = 0,
    size: int | Sequence[int] | None = None,
    normalization: str = "minmax",
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> PrepareReport:
    """Tile, split and augment an export, and write it for training (U-Net, Mask R-CNN, YOLO, COCO).

    The Python door to ``defectlab prepare EXPORT --to unet --out OUT``; see
    :func:`defectlab.preparation.pipeline.prepare` for every option (``pad``, ``fill``,
    ``stratify``, ``spatial``, ``margin_px``, ``min_visible``, ``keep_empty``, ``fit``,
    ``line_width``, ``write_options``, ``preview``), which pass through ``**options``.

    Parameters
    ----------
    export : Dataset, str or Path
        A dataset whose items have their image files, or an export to read.
    out : str or Path
        Output folder (atomically; ``OUT/train``, ``OUT/val``, ``OUT/test`` for U-Net and
        Mask R-CNN, one YOLO/COCO layout otherwise), with ``manifest.json`` and previews.
    to : str
        ``"unet"``, ``"maskrcnn"``, ``"yolo"`` or ``"coco"`` (``--to``).
    tile : int or (int, int) or None
        Tile size in px; None or 0 keeps whole images (``--tile``).
    stride : int or (int, int), optional
        Step between tiles; default the tile size (``--stride``).
    split : str or (float, float, float)
        Train, val, test shares, or ``"keep"`` for the export's own subsets (``--split``).
    augment : str, optional
        Augmentations of the training tiles, e.g. ``"flip,rot90,noise"`` (``--augment``).
    copies : int
        Augmented copies per training tile (``--copies``).
    seed : int
        Seed of the split and the augmentations: same seed, same bytes (``--seed``).
    size : int or (int, int), optional
        Bring every image to this size first (``--size``).
    normalization : str
        ``"minmax"``, ``"meanstd"`` or ``"none"``, recorded for training and prediction.
    images : str or Path, optional
        Folder holding the image files, when ``export`` is a path (``--images``).
    overwrite, progress : bool
        Replace ``out``; show progress bars.

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
    from .preparation.pipeline import prepare as run_prepare

    return run_prepare(export, out, to=to, tile=tile, stride=stride, split=split, augment=augment, copies=copies,
                       seed=seed, size=size, normalization=normalization, images=images, overwrite=overwrite,
                       progress=progress, **options)


# ---------------------------------------------------------------------------------------------
# Deep learning (torch extra): train, load, predict


def train_unet(
    data: Dataset | str | Path,
    out: str | Path,
    *,
    epochs: int = 50,
    batch_size: int = 8,
    lr: float = 1e-3,
    loss: str = "ce+dice",
    val_split: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    tile_size: int = 256,
    patience: int = 10,
    base_filters: int = 16,
    depth: int = 3,
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plot: bool = True,
    **options: Any,
) -> TrainResult:
    """Train a U-Net (semantic segmentation) and write it as a model folder. Needs torch.

    The Python door to ``defectlab train unet DATA --out OUT``; see
    :func:`defectlab.dl.train.train_unet` for the rest of the options (``min_steps``,
    ``steps_per_epoch``, ``overlap``, ``augment``, ``bottleneck_dilations``, ``callback``).

    Parameters
    ----------
    data : Dataset, str or Path
        A ``write_unet`` folder, a Dataset with its images, or a labeling export.
    out : str or Path
        The model folder: ``config.json``, ``weights.pt``, ``history.json``,
        ``training_curve.png``.
    epochs, batch_size, lr, loss, val_split, seed, patience : optional
        Training (``--epochs``, ``--batch-size``, ``--lr``, ``--loss``, ``--val-split``,
        ``--seed``, ``--patience``).
    device : str
        ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    tile_size : int
        Training crop and prediction tile, px (``--tile``).
    base_filters, depth : int
        Width and depth of the net (16 and 3: about 0.63 M parameters).
    images : str or Path, optional
        Folder holding the image files of an export.
    overwrite, progress, plot : bool
        Replace ``out``; show progress bars; draw ``training_curve.png``.

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
    from .dl.train import train_unet as run

    return run(data, out, epochs=epochs, batch_size=batch_size, lr=lr, loss=loss, val_split=val_split, seed=seed,
               device=device, tile_size=tile_size, patience=patience, base_filters=base_filters, depth=depth,
               images=images, overwrite=overwrite, progress=progress, plot=plot, **options)


def train_maskrcnn(
    data: Dataset | str | Path,
    out: str | Path,
    *,
    epochs: int = 20,
    batch_size: int = 2,
    lr: float = 1e-4,
    val_split: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    backbone: str = "resnet50",
    pretrained: bool = False,
    tile_size: int = 512,
    patience: int = 5,
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plot: bool = True,
    **options: Any,
) -> TrainResult:
    """Train a torchvision Mask R-CNN (instance segmentation) and write a model folder. Needs torch.

    The Python door to ``defectlab train maskrcnn DATA --out OUT``; see
    :func:`defectlab.dl.train.train_maskrcnn` for the rest (``max_steps``,
    ``steps_per_epoch``, ``min_steps``, ``overlap``, ``augment``, ``callback``).

    Parameters
    ----------
    data : Dataset, str or Path
        A ``write_maskrcnn`` folder, a Dataset with its images, or a labeling export.
    out : str or Path
        The model folder.
    epochs, batch_size, lr, val_split, seed, patience : optional
        Training (``lr`` is AdamW's).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
    backbone : {"resnet50", "resnet18"}
        ResNet-50-FPN, or the lighter ResNet-18-FPN.
    pretrained : bool
        Start from torchvision's weights, downloaded once (needs internet). Default: from
        scratch, offline — slow to learn; use a GPU.
    tile_size : int
        Training crops and prediction tiles, px.
    images : str or Path, optional
        Folder holding the image files of an export.
    overwrite, progress, plot : bool
        Replace ``out``; show progress bars; draw ``training_curve.png``.

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
    from .dl.train import train_maskrcnn as run

    return run(data, out, epochs=epochs, batch_size=batch_size, lr=lr, val_split=val_split, seed=seed,
               device=device, backbone=backbone, pretrained=pretrained, tile_size=tile_size, patience=patience,
               images=images, overwrite=overwrite, progress=progress, plot=plot, **options)


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
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    engine: str = "auto",
    probabilities: bool = False,
    prelabels: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
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
    tile, overlap : int, optional
        Largest tile and least overlap, px (default: see
        :func:`~defectlab.dl.predict.predict_image`).
    batch_size : int, optional
        Tiles through the net at once (default: about a megapixel's worth).
    engine : {"auto", "torch", "onnxruntime"}
        U-Net: what runs the net (``"auto"``: ONNX Runtime on a CPU when installed).
    probabilities : bool
        U-Net: also write ``probabilities/<stem>.npy`` (C, H, W) float16.
    prelabels : {None, "cvat"}
        Also write pre-labels for CVAT (``--prelabels cvat``).
    device : str
        Where a model given as a path runs.
    overwrite, progress : bool
        Replace ``out``; show a progress bar.
    **options
        Passed to :func:`defectlab.dl.predict.predict_image` (``score_threshold``, …).

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
    return predict_images(model, paths, out, tile=tile, overlap=overlap, batch_size=batch_size, engine=engine,
                          probabilities=probabilities, prelabels=prelabels, overwrite=overwrite,
                          progress=progress, **options)


# ---------------------------------------------------------------------------------------------
# Results: measure, evaluate


def measure(
    source: Dataset | str | Path,
    options: MeasureOptions | None = None,
    *,
    out: str | Path | None = None,
    images: str | Path | None = None,
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

    m = run(source, options, images=images, progress=progress, **changes)
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
