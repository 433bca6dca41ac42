"""What YOLO's reader and writer share: image suffixes, split folders, numbers (see the package docstring)."""

from __future__ import annotations

__all__ = ["IMG_SUFFIXES", "COORD_TOLERANCE", "DECIMALS", "SPLITS", "SPLIT_FOLDERS", "ANY_SPLIT_FOLDER",
           "SUBSET_SPLIT", "NAMES_FILES"]

#: Image file suffixes a split folder is searched for (Ultralytics' IMG_FORMATS).
IMG_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
)
#: How far outside [0, 1] a normalized coordinate may be (rounding of the writing tool).
COORD_TOLERANCE = 1e-6
#: Decimals written per normalized coordinate: the error is at most 0.5e-6 x the image size in px.
DECIMALS = 6

SPLITS = ("train", "val", "test")
#: Folder names a split is also looked for under (Roboflow writes ``valid``).
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
ANY_SPLIT_FOLDER = frozenset(f for folders in SPLIT_FOLDERS.values() for f in folders)
#: Subset names (lower-cased) written to each split.
SUBSET_SPLIT = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
NAMES_FILES = ("classes.txt", "obj.names")
