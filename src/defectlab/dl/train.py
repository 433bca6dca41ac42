"""Training: one loop for every architecture, writing a model folder.

:func:`train` trains any registered architecture (:mod:`defectlab.dl.archs`);
:func:`train_unet` and :func:`train_maskrcnn` are it for the built-in ones. Each writes a
model folder (:mod:`defectlab.dl.model_io`) atomically, with the training history, a
training-curve picture and a last-epoch checkpoint beside the best weights.

* **data** (:mod:`defectlab.dl.data`): a labeling export ``defectlab.read`` knows, a
  :class:`~defectlab.model.Dataset`, a written training folder (``write_unet`` for a U-Net,
  ``write_maskrcnn`` for a Mask R-CNN), or a ``prepare`` root: then training uses ``train/``,
  validation ``val/``, and ``test/`` is never read. Images are normalized as prediction
  normalizes them (:class:`~defectlab.imaging.io.MinMax`, per whole image: min-max, or
  ``normalization="percentile"``, recorded in ``config.json``).
* **auto** (``auto=True``, the default; ``--no-auto`` on the command line turns it off): the
  training data are measured and planned first (:mod:`defectlab.plan`, :mod:`defectlab.dl.auto`);
  the plan sets the tile, overlap, normalization (percentile clipping per image, full bit depth),
  augmentations, batch size, schedule (one-cycle) and starting weights (the shipped pretrained
  U-Net for defects it learned) the options leave to defaults — an option given explicitly
  wins — and is written as ``plan.json`` (with the fingerprint) into the model folder;
  ``config.json``'s ``training`` says ``auto`` and what was planned. A written training folder
  has no shapes to plan from: it trains with the fixed defaults (a note says so).
  ``auto=False`` trains exactly as before the plan existed (``benchmarks/bench_auto.py``
  compares the two).
* **split**: without validation data of its own, ``val_split`` of the images (at least one)
  are held out, chosen by the seed. A single image is split spatially where the
  architecture can (:meth:`~defectlab.dl.archs.base.Architecture.hold_out`; ``stardist``):
  its last ``val_split`` along the longer side is the validation part, and no training crop
  reaches into it. Otherwise (the U-Net and Mask R-CNN on one image, or ``val_split=0``) the
  training images are also the validation images, and the notes say so.
* **folds** (``folds=K``, ``--folds K``; per-pixel architectures): K models instead, each
  validated on its own fold of the images (one image: its own strip, for the U-Net too), the
  time budget shared; written as an ensemble folder (:mod:`defectlab.dl.ensemble`).
* **steps**: an epoch is about one pass over the training pixels in samples of the
  architecture's size (a crop of ``tile_size`` px), at least ``min_steps`` batches, or
  ``steps_per_epoch``; ``max_steps`` ends training after that many in all.
* **the step** is the architecture's (:class:`~defectlab.dl.archs.base.Job`): a batch drawn
  from the training samples (randomly flipped and rotated with ``augment``; the U-Net also
  takes ``augmentations``, e.g. the plan's contrast, gamma, noise, blur and zoom), its loss,
  the architecture's optimizer at ``lr``. ``schedule``: ``"plateau"`` halves the learning
  rate when the validation score stalls; ``"onecycle"`` warms up to ``lr`` over the first
  30 % of all planned steps and anneals it to almost 0 (``OneCycleLR``: the better choice for
  a short, fixed budget of steps, fitted to the time budget); ``"constant"`` keeps it.
* **validation** after every epoch: the validation images are predicted whole, exactly as
  :func:`~defectlab.dl.predict.predict_image` predicts them (on PyTorch), and scored by the
  architecture (per-class IoU over all their pixels, a class absent from both truth and
  prediction left out of the mean; object F1 for instance models). **Early stopping**
  after ``patience`` epochs without a better score (not with ``"onecycle"`` unless
  ``patience`` is given: its schedule anneals by the end of the planned steps, and a plateau
  at its high learning rate says little about where it ends: on crowded synthetic bubbles,
  ``benchmarks/bench_instances.py``, patience stopped it at 304 of 1200 CPU s, and the whole
  budget took object F1 from 0.684 to 0.783); the weights of the best epoch are the ones
  saved. Ctrl-C stops training and saves the best so far (during the first epoch: the weights of that moment, validated).
* **the time budget** (``time_budget_s``, ``--time 10min``; default
  :func:`default_budget_s`: 10 min on a CPU, 20 on a GPU; ``"off"``: none) counts from the
  call, data loading included. The first :data:`PROBE_STEPS` steps (less the first, which
  warms the kernels up) and the first validation are timed; from them the epochs that fit
  (``epochs`` at most) are fitted, and so is the one-cycle schedule's length, so that it
  anneals by the end of the budget. Training then stops before an epoch that would not fit
  (or within one, if the estimate was short), validates, and saves the best epoch. The
  progress bar shows the time left (``eta``); each history entry has ``eta_s``. An output
  folder that exists (without ``overwrite``) is refused before training, not after it.
* **seeded**: the same seed gives the same split, samples and initial weights (on a GPU,
  cuDNN may still differ in the last digits).

The U-Net (:mod:`defectlab.dl.archs.unet`) trains on random crops with ``"ce"``
(cross-entropy), ``"dice"`` (1 − mean soft Dice over the foreground classes) or ``"ce+dice"``
(their sum, the default), Adam. Mask R-CNN (:mod:`defectlab.dl.archs.maskrcnn`) trains from
scratch offline by default (``pretrained=True`` starts from torchvision's weights, online).

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> cfg = SyntheticConfig(size_hw=(64, 64), n_cavities=3, n_loops=0, n_precipitates=0, n_lines=0)
>>> ds = make_synthetic_dataset(tmp / "export", n_images=2, config=cfg)
>>> result = train_unet(ds, tmp / "model", epochs=1, steps_per_epoch=1, batch_size=2, tile_size=64,
...                     base_filters=4, progress=False, plot=False)
>>> sorted(p.name for p in (tmp / "model").iterdir())
['calibration.npy', 'checkpoint.pt', 'config.json', 'history.json', 'plan.json', 'postprocess.json', 'reference.json', 'weights.pt']
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

try:
    import torch
    from torch.utils.data import Subset
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from .._output import check_output, output_dir
from ..errors import DatasetError
from ..model import Dataset
from ..options import Options
from . import archs, auto
from .archs.base import MIN_SPLIT_PX, Architecture, Setup, count_parameters
from .data import Source, TrainingData, manifest_sha256, training_sources
from .model_io import Model, ModelConfig, ModelError, resolve_device, with_training, write_model_files
from .reference import REFERENCE_FILE, reference_from_training
from .warm_start import FROM_SCRATCH, warm_start
from .options import TrainOptions

__all__ = ["PROBE_STEPS", "TrainResult", "default_budget_s", "seed_everything", "train", "train_maskrcnn",
           "train_unet"]


@dataclass
class TrainResult:
    """What training produced.

    Attributes
    ----------
    model : Model
        The best epoch's net, in eval mode, ready to ``predict``.
    path : Path
        The model folder.
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (None where the architecture has
        none), ``val_iou`` (class name -> IoU), ``val_mean_iou``, the architecture's further
        ``val_*`` metrics (Mask R-CNN: ``val_f1``), ``lr``, ``steps``, ``seconds`` (this
        epoch's), ``elapsed_s`` (since training began), ``eta_s`` (the estimate of the time
        left, from the timed steps and validations).
    best_epoch : int
        1-based epoch whose weights were saved.
    stopped_early, interrupted, out_of_time : bool
        Early stopping triggered; Ctrl-C stopped training; the time budget ended it.
    notes : list of str
        What the user should know (validation on training images, training from scratch, …).
    plan : Plan or None
        With ``auto``: the :class:`~defectlab.plan.Plan` trained with (also ``plan.json``).
    """

    model: Model
    path: Path
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool = False
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    out_of_time: bool = False
    plan: Any = None

    @property
    def best(self) -> dict[str, Any]:
        return self.history[self.best_epoch - 1]

    def __str__(self) -> str:
        how = (" (stopped early)" if self.stopped_early else " (interrupted)" if self.interrupted
               else " (time budget)" if self.out_of_time else "")
        return (f"{len(self.history)} epochs{how}; best epoch {self.best_epoch}: mean IoU "
                f"{self.best['val_mean_iou']:.3f} -> {self.path}")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and GPUs) and return a numpy Generator for the rest."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def _split(n: int, val_split: float, rng: np.random.Generator) -> tuple[list[int], list[int], bool]:
    """(train indices, val indices, validated on the training images)."""
    if not 0 <= val_split < 1:
        raise ValueError(f"expected 0 <= val_split < 1, got {val_split!r}")
    if n < 2 or val_split == 0:
        return list(range(n)), list(range(n)), True
    n_val = min(n - 1, max(1, round(n * val_split)))
    order = rng.permutation(n).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val]), False


# ---------------------------------------------------------------------------------------------
# Plots and bookkeeping


def _plot_history(history: list[dict[str, Any]], path: Path, title: str) -> None:
    # a Figure with its own Agg canvas: no pyplot, no global backend switch (keeps notebooks' inline plots)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax1.plot(epochs, [h.get("val_loss", math.nan) for h in history], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax1.legend()
    names = sorted({k for h in history for k in h["val_iou"]})
    for name in names:
        ax2.plot(epochs, [h["val_iou"].get(name, math.nan) for h in history], ".-", label=name)
    ax2.plot(epochs, [h["val_mean_iou"] for h in history], "k-", lw=2, label="mean")
    if any("val_f1" in h for h in history):
        ax2.plot(epochs, [h.get("val_f1", math.nan) for h in history], "k--", label="object F1")
    ax2.set(xlabel="epoch", ylabel="IoU", ylim=(0, 1), title="validation")
    ax2.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def _finish(tmp: Path, net: torch.nn.Module, config: ModelConfig, history: list[dict[str, Any]],
            checkpoint: dict[str, Any], plot: bool, title: str, calibration: np.ndarray | None = None) -> None:
    """Write a trained model folder's files into ``tmp``: the model, its history, the
    last-epoch checkpoint and (``plot``) the training curve."""
    write_model_files(tmp, net, config, calibration)
    (tmp / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    torch.save(checkpoint, tmp / "checkpoint.pt")
    if plot:
        try:
            _plot_history(history, tmp / "training_curve.png", title)
        except ImportError:
            warnings.warn("matplotlib is not installed: no training_curve.png (pip install 'defectlab[plot]')",
                          UserWarning, stacklevel=3)


def _epoch_bar(epochs: int, progress: bool, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc=desc, unit="epoch")


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# The schedule and the clock


class _OneCycle:
    """torch's ``OneCycleLR`` (cosine warm-up from ``lr/25`` to ``lr`` over the first 30 % of the
    steps, cosine annealing to ``lr/25e4``; Adam's beta1 from 0.95 to 0.85 and back) whose
    number of steps may be set again while it runs: a time budget fixes it only once the
    first steps are timed."""

    def __init__(self, opt: torch.optim.Optimizer, lr: float, total: int, pct: float = 0.3) -> None:
        self.opt, self.lr, self.total, self.pct, self.done = opt, lr, max(1, total), pct, 0
        self._apply()

    @staticmethod
    def _cos(start: float, end: float, t: float) -> float:
        return end + (start - end) / 2 * (math.cos(math.pi * min(max(t, 0.0), 1.0)) + 1)

    def _apply(self) -> None:
        first, low = self.lr / 25, self.lr / 25 / 1e4
        peak = float(self.pct * self.total) - 1
        end = self.total - 1
        k = min(self.done, end)
        if k <= peak:
            t = k / peak if peak > 0 else 1.0
            lr, beta = self._cos(first, self.lr, t), self._cos(0.95, 0.85, t)
        else:
            t = (k - peak) / (end - peak) if end > peak else 1.0
            lr, beta = self._cos(self.lr, low, t), self._cos(0.85, 0.95, t)
        for group in self.opt.param_groups:
            group["lr"] = lr
            if "betas" in group:
                group["betas"] = (beta, group["betas"][1])

    def step(self) -> None:
        self.done += 1
        self._apply()

    def refit(self, total: int) -> None:
        self.total = max(self.done + 1, int(total))
        self._apply()


def default_budget_s(device: torch.device) -> float:
    """The time budget when none is given: a coffee break on a CPU, longer on a GPU."""
    from ..plan.planner import DEFAULT_BUDGET_S

    return DEFAULT_BUDGET_S["cpu" if device.type == "cpu" else "gpu"]


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


#: Steps timed (after the first, which warms the kernels up) before the budget is fitted.
PROBE_STEPS = 4
#: The epochs of a planned training (``auto``, ``epochs`` not given) with a time budget: as many as
#: the budget fits (the clock fits the last epoch and the one-cycle schedule to it).
BUDGET_EPOCHS = 1_000_000


@dataclass
class _Clock:
    """The run's time budget: measures a step and a validation, and says how many epochs and
    steps fit in what is left. ``deadline`` is on :func:`time.perf_counter`'s clock."""

    budget_s: float
    start: float
    epochs: int
    steps: int
    step_s: float | None = None
    val_s: float = 0.0

    @property
    def deadline(self) -> float:
        return self.start + self.budget_s

    @property
    def reserve(self) -> float:
        """Kept back for writing the model folder."""
        return min(30.0, 0.5 + 0.03 * self.budget_s) if math.isfinite(self.budget_s) else 0.0

    def left(self, now: float) -> float:
        return self.deadline - self.reserve - now

    def fit(self, now: float, epoch: int, done_in_epoch: int) -> tuple[int, int]:
        """(last epoch, steps of that epoch) that fit in the budget, from step ``done_in_epoch``
        of ``epoch``; (``epochs``, ``steps``) without a budget or a timed step."""
        if self.step_s is None or not math.isfinite(self.budget_s):
            return self.epochs, self.steps
        left = self.left(now)
        this = (self.steps - done_in_epoch) * self.step_s + self.val_s
        if this > left:
            fit = done_in_epoch + max(0, int((left - self.val_s) / self.step_s))
            return epoch, max(1, min(self.steps, fit))
        more = int((left - this) / (self.steps * self.step_s + self.val_s))
        return min(self.epochs, epoch + more), self.steps

    def eta(self, now: float, epoch: int, last_epoch: int) -> float:
        """Seconds left after ``epoch`` (validated) until ``last_epoch`` ends."""
        per = (self.step_s or 0.0) * self.steps + self.val_s
        return min(max(0.0, self.deadline - now), per * (last_epoch - epoch))


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class _Data:
    """The training and validation samples of one run, and what the model folder says of them."""

    train: TrainingData
    val: TrainingData
    train_idx: list[int]
    val_idx: list[int]
    same: bool
    description: str
    source: Any = None  # where the training samples came from (for the reference of the training images)
    strip: str | None = None  # one image split spatially: where its validation strip is

    def setup(self, options: TrainOptions, params: Options, device: torch.device, notes: list[str]) -> Setup:
        return Setup(Subset(self.train.samples, self.train_idx), Subset(self.val.samples, self.val_idx),
                     [self.train.sizes_hw[i] for i in self.train_idx], [self.val.sizes_hw[i] for i in self.val_idx],
                     self.train.classes, options, params, device, notes)


def fold_split(n: int, folds: int, seed: int) -> list[list[int]]:
    """The validation images of each of ``folds`` cross-validation folds of ``n`` images: a
    seeded permutation cut as evenly as possible, every image in exactly one fold.

    Examples
    --------
    >>> parts = fold_split(7, 3, seed=0)
    >>> [len(p) for p in parts], sorted(i for p in parts for i in p)
    ([3, 2, 2], [0, 1, 2, 3, 4, 5, 6])
    """
    if not 2 <= folds <= n:
        raise DatasetError(f"--folds {folds}: expected 2 to {n} folds for {n} images (each fold validates on at "
                           "least one)")
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(int(i) for i in part) for part in np.array_split(order, folds)]


def load_data(arch: Architecture, source: Source, options: TrainOptions) -> TrainingData:
    """``arch``'s training data of ``source``, normalized as ``options`` say."""
    extra = ({"normalization": arch.normalization(options.normalization)} if "normalization" in arch.planned
             else {})
    return arch.load_data(source, **extra)


def _fold_data(arch: Architecture, data: TrainingData, source: Source, fold: tuple[int, int],
               seed: int, notes: list[str]) -> _Data:
    """Fold ``k`` of ``K`` (0-based): its validation images, or one image's ``k``-th of ``K``
    strips across its longer side (:meth:`Architecture.hold_out`)."""
    k, folds = fold
    if len(data) == 1:
        held = arch.hold_out(data, (k / folds, (k + 1) / folds))
        if held is None:
            h, w = data.sizes_hw[0]
            raise DatasetError(f"{data.description}: one {w}x{h} image cannot be cut into {folds} strips for "
                               f"cross-validation by the {arch.title} (each at least {MIN_SPLIT_PX} px); use fewer "
                               "--folds or label more images")
        notes.append(f"fold {k + 1} of {folds}: one image, validated on its strip {held[2]}; no training crop reaches "
                     "into it")
        return _Data(held[0], held[1], list(range(len(held[0]))), [0], False, data.description, strip=held[2])
    val_idx = fold_split(len(data), folds, seed)[k]
    train_idx = [i for i in range(len(data)) if i not in val_idx]
    notes.append(f"fold {k + 1} of {folds}: validated on {len(val_idx)} of {len(data)} images, trained on the others")
    return _Data(data, data, train_idx, val_idx, False, data.description, source)


def _load(arch: Architecture, train_src: Source, val_src: Source | None, options: TrainOptions,
          rng: np.random.Generator, notes: list[str], fold: tuple[int, int] | None = None) -> _Data:
    val_split = options.val_split
    train_data = load_data(arch, train_src, options)
    notes += train_data.notes
    if not len(train_data):
        raise DatasetError(f"{train_src.description}: no images to train on")
    if fold is not None:
        return _fold_data(arch, train_data, train_src, fold, options.seed, notes)
    if val_src is None:
        held = (arch.hold_out(train_data, (1 - val_split, 1.0))
                if arch.spatial_validation and len(train_data) == 1 and val_split > 0 else None)
        if held is not None:  # one image, split spatially (the architecture's own cut)
            notes.append(f"one image, split spatially: validation on its strip {held[2]} (val_split {val_split:g}); "
                         "no training crop reaches into it")
            return _Data(held[0], held[1], list(range(len(held[0]))), [0], False, train_data.description,
                         strip=held[2])
        train_idx, val_idx, same = _split(len(train_data), val_split, rng)
        if same:
            notes.append("validation on the training images (one image, or val_split=0): the IoU is not a "
                         "held-out score")
        return _Data(train_data, train_data, train_idx, val_idx, same, train_data.description, train_src)
    val_data = load_data(arch, val_src, options)
    notes += val_data.notes
    if not len(val_data):
        raise DatasetError(f"{val_src.description}: no validation images")
    if [c.name for c in val_data.classes] != [c.name for c in train_data.classes]:
        raise DatasetError(f"{val_src.description}: classes {[c.name for c in val_data.classes]} differ from the "
                           f"training data's {[c.name for c in train_data.classes]}")
    return _Data(train_data, val_data, list(range(len(train_data))), list(range(len(val_data))), False,
                 f"{train_data.description}; validated on {val_data.description}", train_src)


def train(
    arch: str | Architecture,
    data: Dataset | str | Path,
    out: str | Path,
    options: TrainOptions | None = None,
    params: Options | None = None,
    *,
    images: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plot: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    on_plan: Callable[[Any], None] | None = None,
    fold: tuple[int, int] | None = None,
    **changes: Any,
) -> TrainResult:
    """Train a model of architecture ``arch`` and write it as a model folder.

    Parameters
    ----------
    arch : str or Architecture
        A registered architecture (``"unet"``, ``"maskrcnn"``, …) or one itself.
    data : Dataset, or path
        A labeling export, a Dataset (images found), a written training folder, or a
        ``prepare`` root (train on ``train/``, validate on ``val/``), see the module docstring.
    out : path
        The model folder to write (atomically; replaced only with ``overwrite``).
    options : TrainOptions, optional
        :class:`~defectlab.dl.options.TrainOptions` (fields left at None: the
        architecture's defaults); or give its fields by name (``epochs=``, ``lr=``, …).
    params : Options, optional
        The architecture's own options (``arch.Params``, e.g.
        :class:`~defectlab.dl.archs.unet.UNetParams`); or give their fields by name.
    images : path, optional
        Where the image files of an export are, if not beside it.
    overwrite, progress, plot : bool
        Replace ``out``; show a progress bar; write ``training_curve.png``.
    callback : callable, optional
        Called with each epoch's history entry.
    on_plan : callable, optional
        With ``auto``: called with the :class:`~defectlab.plan.Plan` before
        training starts (the command line prints it as a table).
    fold : (int, int), optional
        ``(k, K)``: train the ``k``-th (from 0) of ``K`` cross-validation folds, validated on its
        own images (what ``folds`` runs for each member, :mod:`defectlab.dl.ensemble`).

    Returns
    -------
    TrainResult
        With ``folds``: a :class:`~defectlab.dl.ensemble.FoldsResult` (the ensemble, each fold's
        TrainResult and the pooled scores).
    """
    start = time.perf_counter()
    arch = archs.get(arch) if isinstance(arch, str) else arch
    given = auto.given_names(arch, options, changes)
    asked = (options, params, dict(changes))
    options, params = arch.split_options(options, params, changes)
    if options.folds is not None and fold is None:
        from .ensemble import train_folds

        return train_folds(arch, data, out, options, asked, images=images, overwrite=overwrite,  # type: ignore[return-value]
                           progress=progress, plot=plot, callback=callback, on_plan=on_plan)
    auto.check_planned_options(arch, options)
    inputs = [data] if isinstance(data, (str, Path)) else ()
    check_output(out, overwrite=overwrite, inputs=inputs)  # now, not after the training
    dev = resolve_device(options.device)
    budget = options.time_budget_s if options.time_budget_s is not None else default_budget_s(dev)
    rng = seed_everything(options.seed)
    notes: list[str] = []
    train_src, val_src, said = training_sources(data, images=images)
    notes += said
    multiple = arch.multiple(params.to_dict()) if hasattr(arch, "multiple") else 1
    auto_plan = auto.plan_training(arch, train_src, options, given, dev, notes, multiple=multiple,
                                   progress=progress) if options.auto else None
    if auto_plan is not None:
        options = options.replace(**auto_plan.changes)
        if "epochs" not in given and math.isfinite(budget):  # the budget ends a planned training, not a cap
            options = options.replace(epochs=BUDGET_EPOCHS)
        if on_plan is not None:
            on_plan(auto_plan.plan)
    d = _load(arch, train_src, val_src, options, rng, notes, fold)
    job = arch.start(d.setup(options, params, dev, notes))
    started = None
    if options.init not in (None, FROM_SCRATCH):
        try:
            started = warm_start(job.net, job.config, options.init, head=arch.class_weights)
            notes.append(started.note())
        except ModelError as err:
            if "init" in given or auto_plan is None:
                raise
            notes.append(f"the plan's --init {options.init} does not fit this net ({err}): trained from scratch")
    net, epochs, batch_size = job.net, options.epochs, options.batch_size
    train_pixels = sum(h * w for h, w in (d.train.sizes_hw[i] for i in d.train_idx))
    steps = options.steps_per_epoch or max(options.min_steps,
                                           math.ceil(train_pixels / (job.sample_pixels * batch_size)))
    if options.max_steps is not None:
        steps = min(steps, options.max_steps)
    opt = job.optimizer(options.lr)
    planned = epochs * steps if options.max_steps is None else min(epochs * steps, options.max_steps)
    if options.schedule == "onecycle":
        step_sched = _OneCycle(opt, options.lr, planned)
    elif options.schedule == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                             patience=max(1, options.patience // 2))
    clock = _Clock(budget, start, epochs, steps)
    # one-cycle anneals by the end of its planned steps, where the model is best: a plateau at its
    # high learning rate is no reason to stop (unless --patience is given)
    patient = options.schedule != "onecycle" or "patience" in given
    last_epoch, last_steps = epochs, steps  # what fits the budget, once a step is timed
    model = Model(net, job.config, device=dev)
    history: list[dict[str, Any]] = []
    best, best_epoch, best_state = -math.inf, 0, None
    stopped_early = interrupted = out_of_time = False
    done_steps = 0
    probe_start = None

    def refit(now: float, epoch: int, done_in_epoch: int) -> None:
        nonlocal last_epoch, last_steps
        last_epoch, last_steps = clock.fit(now, epoch, done_in_epoch)
        if options.schedule == "onecycle":
            total = (last_epoch - 1) * steps + last_steps
            step_sched.refit(total if options.max_steps is None else min(total, options.max_steps))
        if bar is not None and bar.total != last_epoch:
            bar.total = last_epoch
            bar.refresh()

    def validated(epoch: int, losses: list[float], t0: float) -> dict[str, Any]:
        net.eval()
        t_val = time.perf_counter()
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                 **job.validate(model), "lr": opt.param_groups[0]["lr"], "steps": len(losses)}
        now = time.perf_counter()
        clock.val_s = max(clock.val_s, now - t_val)
        entry["seconds"] = round(now - t0, 3)
        entry["elapsed_s"] = round(now - start, 3)
        return entry

    bar = _epoch_bar(epochs, progress, f"train {job.title}" + (f", fold {fold[0] + 1}/{fold[1]}" if fold else ""))
    try:
        epoch = 0
        while epoch < last_epoch:
            epoch += 1
            t0 = time.perf_counter()
            net.train()
            losses = []
            for k in range(steps):
                if epoch == last_epoch and k >= last_steps:
                    break
                value = job.loss(job.batch(rng, batch_size))
                if not torch.isfinite(value):
                    raise FloatingPointError(f"the {job.title} loss became {float(value)} at epoch {epoch}; "
                                             f"lower the learning rate (now {options.lr})")
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                if options.schedule == "onecycle":
                    step_sched.step()
                losses.append(float(value.detach()))
                done_steps += 1
                if options.max_steps is not None and done_steps >= options.max_steps:
                    break
                now = time.perf_counter()
                if done_steps == 1:
                    probe_start = now
                elif done_steps == PROBE_STEPS or (epoch == 1 and k == steps - 1 and clock.step_s is None):
                    clock.step_s = (now - probe_start) / (done_steps - 1)
                    refit(now, epoch, k + 1)
                elif clock.step_s is not None and now + clock.step_s + clock.val_s > clock.deadline - clock.reserve:
                    out_of_time = True  # the estimate was short: stop here, validate, save
                    break
            if epoch == 1 and clock.step_s is None and done_steps == 1:  # a one-step epoch: time it whole
                clock.step_s = time.perf_counter() - t0
            entry = validated(epoch, losses, t0)
            if epoch == 1:
                refit(time.perf_counter(), epoch, len(losses))  # the validation is timed now
            entry["eta_s"] = round(clock.eta(time.perf_counter(), epoch, last_epoch), 1)
            history.append(entry)
            if callback is not None:
                callback(entry)
            score = job.score(entry)
            if options.schedule == "plateau":
                plateau.step(score)
            if score > best + 1e-4 or best_state is None:
                best, best_epoch = score, epoch
                best_state = copy.deepcopy(_state(net))
            if bar is not None:
                bar.update(1)
                shown = {"loss": f"{entry['train_loss']:.3f}", "iou": f"{entry['val_mean_iou']:.3f}"}
                shown.update({k[4:]: f"{v:.3f}" for k, v in entry.items()
                              if k.startswith("val_") and k not in ("val_loss", "val_iou", "val_mean_iou")})
                bar.set_postfix(**shown, best=best_epoch, eta=_duration(entry["eta_s"]))
            if epoch - best_epoch >= options.patience and patient:
                stopped_early = True
                break
            if options.max_steps is not None and done_steps >= options.max_steps:
                break
            if out_of_time:
                break
            if epoch < last_epoch and time.perf_counter() + clock.steps * (clock.step_s or 0) + clock.val_s \
                    > clock.deadline - clock.reserve:
                out_of_time = True
                break
        if epoch < epochs and last_epoch < epochs and not stopped_early:
            out_of_time = True
    except KeyboardInterrupt:
        interrupted = True
        if best_state is None:
            if done_steps == 0:
                raise
            entry = validated(len(history) + 1, losses, t0)  # not one epoch yet: keep what it learned
            history.append(entry)
            best, best_epoch, best_state = job.score(entry), entry["epoch"], _state(net)
            notes.append(f"interrupted during epoch 1 after {done_steps} steps: saved the weights of that moment")
        else:
            notes.append(f"interrupted during epoch {len(history) + 1}; saved the best of {len(history)} epochs")
    finally:
        if bar is not None:
            bar.close()
    if out_of_time:
        done = f"{len(history)} epochs, as planned" if epochs == BUDGET_EPOCHS else f"{len(history)} of {epochs} epochs"
        notes.append(f"the time budget ({_duration(budget)}) ended training after {done}; the best epoch's weights "
                     "are saved (--time gives more)")
    last_state = _state(net)
    net.load_state_dict(best_state)
    best_entry = history[best_epoch - 1]
    training = {
        "data": d.description, "data_manifest_sha256": manifest_sha256(d.train.manifest + (
            d.val.manifest if d.val is not d.train else [])),
        "n_train": len(d.train_idx), "n_val": len(d.val_idx), "validated_on_training_images": d.same,
        "train_images": [d.train.names[i] for i in d.train_idx], "val_images": [d.val.names[i] for i in d.val_idx],
        "epochs_run": len(history), "best_epoch": best_epoch,
        **{f"best_{k}": v for k, v in best_entry.items() if k.startswith("val_") and k != "val_loss"},
        "lr": options.lr, "schedule": options.schedule, "batch_size": batch_size, "steps_per_epoch": steps,
        "seed": options.seed, "device": str(dev), "parameters": count_parameters(net), "augment": options.augment,
        "auto": auto_plan is not None, "planned": dict(auto_plan.changes) if auto_plan is not None else None,
        "given": sorted(given), "init": None if started is None else started.to_dict(),
        **job.info(), "stopped_early": stopped_early, "interrupted": interrupted, "out_of_time": out_of_time,
        "time_budget_s": budget if math.isfinite(budget) else None, "step_seconds": clock.step_s,
        "validation_seconds": round(clock.val_s, 3), "notes": notes,
        "fold": None if fold is None else {"k": fold[0] + 1, "of": fold[1], "strip": d.strip},
        "torch_version": torch.__version__,
    }
    config = with_training(job.finish(Model(net, job.config, device=dev)), **training)
    checkpoint = {"epoch": len(history), "net": last_state, "optimizer": opt.state_dict(), "history": history}
    calibration = job.calibration(options.seed) if arch.exportable else None
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        _finish(tmp, net, config, history, checkpoint, plot, f"{job.title}, {len(d.train_idx)} training images",
                calibration)
        for name, contents in job.files().items():
            (tmp / name).write_bytes(contents)
        reference = reference_from_training(d.source, d.train, d.train_idx)  # what predict compares images with
        if reference.images:
            (tmp / REFERENCE_FILE).write_text(reference.to_json(), encoding="utf-8")
        if auto_plan is not None:
            _write_plan(tmp, auto_plan, train_src, plot)
    model = arch.on_load(Model(net, config, path=Path(out), device=dev, calibration=calibration), Path(out))
    return TrainResult(model, Path(out), history, best_epoch, stopped_early, interrupted, notes, out_of_time,
                       None if auto_plan is None else auto_plan.plan)


def _write_plan(folder: Path, planned: auto.AutoPlan, source: Source, plot: bool) -> None:
    """``plan.json`` (with the fingerprint) and, with ``plot``, ``plan.png`` into a model folder."""
    from ..plan import write_plan
    from ..plan.figure import PLAN_FIGURE, write_plan_figure

    write_plan(planned.plan, folder, fingerprint=planned.fingerprint, options=planned.options, overwrite=True)
    if plot and source.dataset is not None:
        try:
            write_plan_figure(planned.fingerprint, planned.plan, source.dataset, folder / PLAN_FIGURE,
                              context=planned.options.context)
        except ImportError:
            warnings.warn("matplotlib is not installed: no plan.png (pip install 'defectlab[plot]')", UserWarning,
                          stacklevel=3)


def train_unet(data: Dataset | str | Path, out: str | Path, options: TrainOptions | None = None,
               params: Options | None = None, **kwargs: Any) -> TrainResult:
    """Train a U-Net and write it as a model folder (the Python twin of ``defectlab train unet``):
    :func:`train` of ``"unet"`` (``kwargs``: its keywords, and the options by name).

    ``options`` / ``kwargs``: the :class:`~defectlab.dl.options.TrainOptions` (the U-Net's
    defaults: 50 epochs, batch 8, Adam at 1e-3, plateau schedule, 256 px crops, patience 10)
    and the U-Net's own :class:`~defectlab.dl.archs.unet.UNetParams` (``loss``,
    ``base_filters``, ``depth``, ``bottleneck_dilations``: 16, 3, (1, 2, 4) give ~0.63 M
    parameters), by name.
    """
    return train("unet", data, out, options, params, **kwargs)


def train_maskrcnn(data: Dataset | str | Path, out: str | Path, options: TrainOptions | None = None,
                   params: Options | None = None, **kwargs: Any) -> TrainResult:
    """Train a torchvision Mask R-CNN and write it as a model folder (``defectlab train maskrcnn``):
    :func:`train` of ``"maskrcnn"`` (``kwargs``: its keywords, and the options by name).

    ``options`` / ``kwargs``: the :class:`~defectlab.dl.options.TrainOptions` (Mask
    R-CNN's defaults: 20 epochs, batch 2, AdamW at 1e-4, constant rate, 512 px tiles —
    never resized; images smaller than it make it smaller, rounded down to a multiple of
    32 —, patience 5) and its own :class:`~defectlab.dl.archs.maskrcnn.MaskRCNNParams`
    (``backbone``: ``"resnet50"`` or ``"resnet18"``; ``pretrained``: start from
    torchvision's weights, downloaded on first use — needs internet; False, the default,
    trains from scratch), by name.
    """
    return train("maskrcnn", data, out, options, params, **kwargs)
