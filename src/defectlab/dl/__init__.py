"""Deep learning with torch: architectures, training, prediction (needs the ``torch`` extra).

``import defectlab`` never imports this package. Importing it is light too: torch is imported
by the modules that use it — :mod:`~defectlab.dl.archs` (the architecture names) and
:mod:`~defectlab.dl.options` (the options of train and predict) never do. The datasets load
torch when first used::

    from defectlab.dl import MaskRCNNDataset

Modules, bottom up: :mod:`~defectlab.dl.options`, :mod:`~defectlab.dl.archs` (the registry),
:mod:`~defectlab.dl.model_io` (model folders), :mod:`~defectlab.dl.engine` (what runs a net),
:mod:`~defectlab.dl.tiles` (tiled, blended prediction), :mod:`~defectlab.dl.predict` (the
prediction path), :mod:`~defectlab.dl.archs.base` (what an architecture declares) and one
module per architecture, :mod:`~defectlab.dl.data` and :mod:`~defectlab.dl.train` (the one
training loop).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DegenerateInstanceWarning", "MaskRCNNDataset", "SegmentationDataset"]

#: Public names -> the module defining them (imported on first use: it needs torch).
_LAZY = {"DegenerateInstanceWarning": "maskrcnn_dataset", "MaskRCNNDataset": "maskrcnn_dataset",
         "SegmentationDataset": "segmentation_dataset"}


def __getattr__(name: str) -> Any:  # PEP 562: the datasets' modules import torch
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
