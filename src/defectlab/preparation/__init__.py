"""Preparing training data: tiles, splits, augmentations, resizing, and synthetic micrographs.

Main entry point: :func:`defectlab.preparation.pipeline.prepare` (``defectlab prepare`` on the
command line).
"""

from .augment import Augment
from .pipeline import prepare, read_manifest
from .resize import fit
from .splits import spatial_split, split_images
from .tiling import tile_item, tile_windows

__all__ = ["Augment", "fit", "prepare", "read_manifest", "spatial_split", "split_images", "tile_item", "tile_windows"]
