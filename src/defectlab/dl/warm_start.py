"""Start training from trained weights (``defectlab train unet … --init synthetic`` or ``--init MODEL``).

A few labeled micrographs teach a net from scratch slowly; a net that has already learned
what cavities, loops, precipitates and lines look like under many imaging conditions only
has to adapt. ``--init`` takes the weights of

* ``synthetic``: the U-Net shipped with the package (:data:`SHIPPED`), pretrained offline on
  defectlab's own synthetic micrographs (:mod:`defectlab.preparation.synthetic_pretrain`:
  every defect class, under and over focus, contrast, noise, thickness gradients, 8 and 16
  bit) by ``scripts/pretrain_synthetic.py``, whose ``README.md`` beside the weights says how;
* any model folder of the same architecture and net shape (a colleague's model, an earlier run).

Every tensor is loaded, except the class head's rows of classes the source does not have:
the background row, and those of classes of the same kind, are copied — the same name, or
names of the field for the same defect (:data:`~defectlab.dl.shipped.SAME_KIND`: a ``bubble`` or a ``void`` is a
``cavity``); the rows of other classes keep their fresh initialization. A net of another shape
(other ``--base-filters``, ``--depth``, dilations) is refused with the difference named:
nothing is loaded silently in part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .model_io import WEIGHTS_FILE, ModelConfig, ModelError, read_config, read_weights
from .shipped import FROM_SCRATCH, SAME_KIND, SHIPPED, defect_kind

__all__ = ["FROM_SCRATCH", "SAME_KIND", "SHIPPED", "WarmStart", "resolve_init", "warm_start"]


@dataclass(frozen=True)
class WarmStart:
    """What :func:`warm_start` did: the source, the tensors loaded, the classes whose head rows
    were copied (background included) and those left fresh."""

    source: str
    folder: Path
    loaded: int
    copied_classes: tuple[str, ...]
    fresh_classes: tuple[str, ...]

    def note(self) -> str:
        """One line for the training notes."""
        fresh = f"; new head rows for {', '.join(self.fresh_classes)}" if self.fresh_classes else ""
        return (f"started from the weights of {self.source} ({self.loaded} tensors; head rows copied for "
                f"{', '.join(self.copied_classes)}{fresh})")

    def to_dict(self) -> dict:
        return {"from": self.source, "tensors": self.loaded, "copied_classes": list(self.copied_classes),
                "fresh_classes": list(self.fresh_classes)}


def resolve_init(init: str | Path) -> tuple[str, Path]:
    """(name shown, model folder) of ``init``: a name of :data:`SHIPPED` or a model folder."""
    key = str(init)
    if key in SHIPPED:
        return f"the shipped '{key}' model", SHIPPED[key]
    folder = Path(init)
    if not folder.exists():
        raise ModelError(f"--init {key}: no such model folder; expected a model folder (config.json + "
                         f"{WEIGHTS_FILE}) or one of: {', '.join(SHIPPED)}")
    return str(folder), folder


def warm_start(net: nn.Module, config: ModelConfig, init: str | Path, *, head: str | None) -> WarmStart:
    """Load the weights of ``init`` into ``net`` (of ``config``), in place.

    Parameters
    ----------
    net : torch.nn.Module
        The freshly built net that training will train.
    config : ModelConfig
        Its config (architecture, params, classes with background first).
    init : str or path
        A name of :data:`SHIPPED` or a model folder.
    head : str, optional
        The state-dict key of the class head's weight (its bias is ``…bias``), whose first
        dimension is the number of classes: ``Architecture.class_weights``.

    Raises
    ------
    ModelError
        Another architecture, another net shape, or unreadable weights — naming the folder.
    """
    source, folder = resolve_init(init)
    src_config = read_config(folder)
    if src_config.architecture != config.architecture:
        raise ModelError(f"--init {init}: {folder} is a {src_config.architecture} model; this run trains a "
                         f"{config.architecture}")
    try:
        state = read_weights(folder)
    except ModelError as err:
        raise ModelError(f"--init {init}: {err}") from err
    head_keys = set() if head is None else {head, head.rsplit(".", 1)[0] + ".bias"}
    own = net.state_dict()
    differ = [f"{k} {list(state[k].shape)} vs {list(t.shape)}" for k, t in own.items()
              if k in state and k not in head_keys and tuple(state[k].shape) != tuple(t.shape)]
    missing = [k for k in own if k not in state]
    if differ or missing:
        what = f"{differ[0]}" if differ else f"{missing[0]} missing"
        raise ModelError(f"--init {init}: the net of {folder} has another shape than this run's "
                         f"({len(differ) + len(missing)} tensors differ, e.g. {what}): params "
                         f"{src_config.params} vs {config.params}")
    src_index = {defect_kind(c.name): c.index for c in src_config.classes}
    copied, fresh = [], []
    new_state = {}
    for key, tensor in own.items():
        if key not in head_keys:
            new_state[key] = state[key].to(tensor.dtype)
            continue
        rows = tensor.clone()
        for c in config.classes:
            i = 0 if c.index == 0 else src_index.get(defect_kind(c.name))
            if i is None or i >= state[key].shape[0]:
                continue
            rows[c.index] = state[key][i].to(tensor.dtype)
        new_state[key] = rows
    for c in config.classes:
        (copied if c.index == 0 or defect_kind(c.name) in src_index else fresh).append(c.name)
    net.load_state_dict(new_state)
    return WarmStart(source, folder, len(own), tuple(copied), tuple(fresh))
