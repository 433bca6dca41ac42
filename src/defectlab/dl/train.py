"""Training: one loop for every architecture, writing a model folder.

:func:`train` trains any registered architecture (:mod:`defectlab.dl.archs`);
:func:`train_unet` and :func:`train_maskrcnn` are it for the built-in ones. Each writes a
model folder (:mod:`defectlab.dl.model_io`) atomically, with the training history, a
training-curve picture and a last-epoch checkpoint beside the best weights.

* **data** (:mod:`defectlab.dl.data`): a labeling export ``defectlab.read`` knows, a
  :class:`~defectlab.model.Dataset`, a written training folder (``write_unet`` for a U-Net,
  ``write_maskrcnn`` for a Mask R-CNN), or a ``prepare`` root: then training uses ``train/``,
  validation ``val/``, and ``test/`` is never read. Images are normalized as prediction
  normalizes them (:class:`~defectlab.imaging.io.MinMax`, per whole image).
* **split**: without validation data of its own, ``val_split`` of the images (at least one)
  are held out, chosen by the seed; with a single image, or ``val_split=0``, the training
  images are also the validation images (and the notes say so).
* **steps**: an epoch is about one pass over the training pixels in samples of the
  architecture's size (a crop of ``tile_size`` px), at least ``min_steps`` batches, or
  ``steps_per_epoch``; ``max_steps`` ends training after that many in all.
* **the step** is the architecture's (:class:`~defectlab.dl.archs.base.Job`): a batch drawn
  from the training samples (randomly flipped and rotated with ``augment``), its loss,
  the architecture's optimizer at ``lr``. ``schedule``: ``"plateau"`` halves the learning
  rate when the validation score stalls; ``"onecycle"`` warms up to ``lr`` over the first
  30 % of all planned steps and anneals it to almost 0 (``OneCycleLR``: the better choice for
  a short, fixed budget of steps); ``"constant"`` keeps it.
* **validation** after every epoch: the validation images are predicted whole, exactly as
  :func:`~defectlab.dl.predict.predict_image` predicts them (on PyTorch), and scored by the
  architecture (per-class IoU over all their pixels, a class absent from both truth and
  prediction left out of the mean; object F1 for instance models). **Early stopping**
  after ``patience`` epochs without a better score; the weights of the best epoch are the
  ones saved. Ctrl-C stops training and saves the best so far.
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
['calibration.npy', 'checkpoint.pt', 'config.json', 'history.json', 'weights.pt']
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

from .._output import output_dir
from ..errors import DatasetError
from ..model import Dataset
from ..options import Options
from . import archs
from .archs.base import Architecture, Setup, count_parameters
from .data import TrainingData, manifest_sha256, training_sources
from .model_io import Model, ModelConfig, resolve_device, with_training, write_model_files
from .options import TrainOptions

__all__ = ["TrainResult", "seed_everything", "train", "train_maskrcnn", "train_unet"]


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
        ``val_*`` metrics (Mask R-CNN: ``val_f1``), ``lr``, ``steps``, ``seconds``.
    best_epoch : int
        1-based epoch whose weights were saved.
    stopped_early, interrupted : bool
        Early stopping triggered; Ctrl-C stopped training.
    notes : list of str
        What the user should know (validation on training images, training from scratch, …).
    """

    model: Model
    path: Path
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool = False
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        return self.history[self.best_epoch - 1]

    def __str__(self) -> str:
        how = " (stopped early)" if self.stopped_early else " (interrupted)" if self.interrupted else ""
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

    def setup(self, options: TrainOptions, params: Options, device: torch.device, notes: list[str]) -> Setup:
        return Setup(Subset(self.train.samples, self.train_idx), Subset(self.val.samples, self.val_idx),
                     [self.train.sizes_hw[i] for i in self.train_idx], [self.val.sizes_hw[i] for i in self.val_idx],
                     self.train.classes, options, params, device, notes)


def _load(arch: Architecture, data: Dataset | str | Path, images: str | Path | None, val_split: float,
          rng: np.random.Generator, notes: list[str]) -> _Data:
    train_src, val_src, said = training_sources(data, images=images)
    notes += said
    train_data = arch.load_data(train_src)
    notes += train_data.notes
    if not len(train_data):
        raise DatasetError(f"{train_src.description}: no images to train on")
    if val_src is None:
        train_idx, val_idx, same = _split(len(train_data), val_split, rng)
        if same:
            notes.append("validation on the training images (one image, or val_split=0): the IoU is not a "
                         "held-out score")
        return _Data(train_data, train_data, train_idx, val_idx, same, train_data.description)
    val_data = arch.load_data(val_src)
    notes += val_data.notes
    if [c.name for c in val_data.classes] != [c.name for c in train_data.classes]:
        raise DatasetError(f"{val_src.description}: classes {[c.name for c in val_data.classes]} differ from the "
                           f"training data's {[c.name for c in train_data.classes]}")
    if not len(val_data):
        raise DatasetError(f"{val_src.description}: no validation images")
    return _Data(train_data, val_data, list(range(len(train_data))), list(range(len(val_data))), False,
                 f"{train_data.description}; validated on {val_data.description}")


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

    Returns
    -------
    TrainResult
    """
    arch = archs.get(arch) if isinstance(arch, str) else arch
    options, params = arch.split_options(options, params, changes)
    dev = resolve_device(options.device)
    rng = seed_everything(options.seed)
    notes: list[str] = []
    d = _load(arch, data, images, options.val_split, rng, notes)
    job = arch.start(d.setup(options, params, dev, notes))
    net, epochs, batch_size = job.net, options.epochs, options.batch_size
    train_pixels = sum(h * w for h, w in (d.train.sizes_hw[i] for i in d.train_idx))
    steps = options.steps_per_epoch or max(options.min_steps,
                                           math.ceil(train_pixels / (job.sample_pixels * batch_size)))
    if options.max_steps is not None:
        steps = min(steps, options.max_steps)
    opt = job.optimizer(options.lr)
    if options.schedule == "onecycle":
        step_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=options.lr, total_steps=epochs * steps,
                                                         pct_start=0.3)
    elif options.schedule == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                             patience=max(1, options.patience // 2))
    model = Model(net, job.config, device=dev)
    history: list[dict[str, Any]] = []
    best, best_epoch, best_state = -math.inf, 0, None
    stopped_early = interrupted = False
    done_steps = 0
    bar = _epoch_bar(epochs, progress, f"train {job.title}")
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            net.train()
            losses = []
            for _ in range(steps):
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
            net.eval()
            entry = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                     **job.validate(model), "lr": opt.param_groups[0]["lr"], "steps": len(losses),
                     "seconds": round(time.perf_counter() - t0, 3)}
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
                bar.set_postfix(**shown, best=best_epoch)
            if epoch - best_epoch >= options.patience:
                stopped_early = True
                break
            if options.max_steps is not None and done_steps >= options.max_steps:
                break
    except KeyboardInterrupt:
        interrupted = True
        if best_state is None:
            raise
        notes.append(f"interrupted during epoch {len(history) + 1}; saved the best of {len(history)} epochs")
    finally:
        if bar is not None:
            bar.close()
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
        **job.info(), "stopped_early": stopped_early, "interrupted": interrupted, "notes": notes,
        "torch_version": torch.__version__,
    }
    config = with_training(job.finish(Model(net, job.config, device=dev)), **training)
    checkpoint = {"epoch": len(history), "net": last_state, "optimizer": opt.state_dict(), "history": history}
    calibration = job.calibration(options.seed) if arch.exportable else None
    with output_dir(out, overwrite=overwrite, inputs=[data] if isinstance(data, (str, Path)) else ()) as tmp:
        _finish(tmp, net, config, history, checkpoint, plot, f"{job.title}, {len(d.train_idx)} training images",
                calibration)
        for name, contents in job.files().items():
            (tmp / name).write_bytes(contents)
    model = Model(net, config, path=Path(out), device=dev, calibration=calibration)
    return TrainResult(model, Path(out), history, best_epoch, stopped_early, interrupted, notes)


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
