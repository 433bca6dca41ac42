"""U-Net (semantic segmentation) training data.

Layout written::

    OUT/images/<key>.<ext>    the image files, copied (or linked)
    OUT/masks/<key>.png       (H, W) uint8 class index, 0 = background, classes from 1 in label order
    OUT/classes.json          index -> {name, color, edge}
    OUT/images.npy            (optional, stack=True) [N, H, W] float32, each image min-max normalized
    OUT/masks.npy             (optional, stack=True) [N, H, W] uint8
    OUT/onehot.npy            (optional, one_hot=True) [N, C, H, W] uint8, C = classes + 1 (channel 0 = background)

``<key>`` is the image name without extension, under its subset folder when the export has subsets.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from .._output import output_dir
from .._parallel import background_writes, ordered_map
from ..imaging.io import normalize_minmax, read_image, write_image
from ..model import Dataset
from ..raster import DEFAULT_LINE_WIDTH, semantic_mask
from .._output import input_paths
from ..progress import progress_iter
from ._writing import WriteReport, check_items, copy_image
from .classes_json import write_classes

__all__ = ["write_unet"]

#: Below this many pixels in all, one process writes (a pool's start costs more than it saves).
_POOL_MIN_PIXELS = 4 * 2**20


def _write_item(tmp: Path, class_index: dict, line_width: float, link_images: bool | str, item) -> None:
    """One item's mask PNG and image copy (what a worker process of :func:`write_unet` does)."""
    mask = semantic_mask(item, class_index, line_width=line_width)
    mask_path = tmp / "masks" / f"{item.key}.png"
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    write_image(mask_path, mask)
    copy_image(item, tmp / "images", link=link_images)


def _copy_mask(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)


def write_unet(
    dataset: Dataset,
    out: str | Path,
    *,
    stack: bool = False,
    one_hot: bool = False,
    link_images: bool | str = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    masks: Mapping[str, str | Path] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write U-Net training data: class-index masks beside copies of the images.

    Parameters
    ----------
    dataset : Dataset
        Items with their image files found (``Item.image``).
    out : path
        Output folder; created atomically (see :func:`defectlab._output.output_dir`).
    stack : bool
        Also write ``images.npy`` [N, H, W] float32 and ``masks.npy`` [N, H, W] uint8;
        refused when images differ in size.
    one_hot : bool
        Also write ``onehot.npy`` [N, C, H, W] uint8 (implies ``stack``).
    link_images : bool or "hard"
        Symlink the images instead of copying them; ``"hard"``: hard-link them (see
        :func:`~defectlab.formats._writing.copy_image`).
    line_width : float
        Width in px of polyline masks (dislocation lines).
    masks : mapping of item key -> path, optional
        Mask PNGs already written for some items (``write_image`` of their
        ``semantic_mask(item, dataset.class_index(), line_width=line_width)``), copied as they
        are instead of rasterized again. ``prepare`` hands in its tiles' masks, cut from each
        source image's mask (the same pixels: see :mod:`defectlab.preparation.tiling`).
    overwrite : bool
        Replace an existing output folder.
    progress : bool
        Show a progress bar.

    Returns
    -------
    WriteReport

    Examples
    --------
    >>> import defectlab, tempfile, pathlib
    >>> from defectlab.preparation.synthetic import make_synthetic_dataset
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = make_synthetic_dataset(tmp / "export", n_images=2)
    >>> write_unet(ds, tmp / "unet").n_items
    2
    """
    stack = stack or one_hot
    check_items(dataset, need_images=True, same_size=stack)
    class_index = dataset.class_index()
    n, n_classes = len(dataset.items), len(class_index) + 1
    inputs = input_paths(dataset)
    masks = {k: Path(v) for k, v in (masks or {}).items()}
    unknown = set(masks) - {it.key for it in dataset.items}
    if unknown:
        raise ValueError(f"write_unet: masks handed in for no item of the dataset, e.g. {sorted(unknown)[0]!r}")
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_classes(dataset, tmp / "classes.json")
        images_npy = masks_npy = onehot_npy = None
        if stack and n:
            h, w = dataset.items[0].size_hw
            images_npy = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.float32, (n, h, w))
            masks_npy = np.lib.format.open_memmap(tmp / "masks.npy", "w+", np.uint8, (n, h, w))
            if one_hot:
                onehot_npy = np.lib.format.open_memmap(tmp / "onehot.npy", "w+", np.uint8, (n, n_classes, h, w))
        drawn = [it for it in dataset.items if it.key not in masks]
        if not stack and sum(h * w for h, w in (it.size_hw for it in drawn)) >= _POOL_MIN_PIXELS:
            # every core rasterizes, encodes and copies images of its own; nothing comes back but the order
            with ordered_map(_write_item, drawn, n_items=len(drawn),
                             shared=(tmp, class_index, line_width, link_images)) as done:
                for _ in progress_iter(done, total=len(drawn), desc="U-Net masks", enabled=progress):
                    pass
            for item in dataset.items:  # the masks handed in: copies only
                if item.key in masks:
                    _copy_mask(masks[item.key], tmp / "masks" / f"{item.key}.png")
                    copy_image(item, tmp / "images", link=link_images)
            return WriteReport(Path(out), n_items=n, notes=list(dataset.notes))
        # the PNG encoding and the copies run in threads (both cores) while this one rasterizes the next mask
        with background_writes() as writes:
            for i, item in enumerate(progress_iter(dataset.items, total=n, desc="U-Net masks", enabled=progress)):
                mask_path = tmp / "masks" / f"{item.key}.png"
                given = masks.get(item.key)
                if given is not None:
                    writes.submit(_copy_mask, given, mask_path)
                    mask = read_image(given) if masks_npy is not None else None
                else:
                    mask = semantic_mask(item, class_index, line_width=line_width)
                    mask_path.parent.mkdir(parents=True, exist_ok=True)
                    writes.submit(write_image, mask_path, mask)
                writes.submit(copy_image, item, tmp / "images", link=link_images)
                if images_npy is not None:
                    images_npy[i] = normalize_minmax(read_image(item.image))
                    masks_npy[i] = mask
                if onehot_npy is not None:
                    onehot_npy[i] = mask[None, :, :] == np.arange(n_classes, dtype=np.uint8)[:, None, None]
        for arr in (images_npy, masks_npy, onehot_npy):
            if arr is not None:
                arr.flush()
        del images_npy, masks_npy, onehot_npy
    return WriteReport(Path(out), n_items=n, notes=list(dataset.notes))
