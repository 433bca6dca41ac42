"""Pictures of labels and predictions: colored masks over the micrograph (numpy only).

Plotting with matplotlib lives elsewhere; an overlay is a plain (H, W, 3) uint8 array that
any viewer opens, written as PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .imaging.io import normalize_minmax, read_image, write_image
from .model import Dataset, Item
from .raster import DEFAULT_LINE_WIDTH, instance_labels, semantic_mask

__all__ = ["overlay", "item_overlay", "write_overlays"]


def overlay(
    image: np.ndarray,
    semantic: np.ndarray,
    colors_rgb: Sequence[tuple[int, int, int]],
    *,
    alpha: float = 0.4,
    outlines: np.ndarray | None = None,
) -> np.ndarray:
    """Blend class colors over a grayscale micrograph.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) array
        The micrograph, any dtype; shown min-max normalized in gray.
    semantic : (H, W) uint8
        Class index per pixel (0 = background, left untouched).
    colors_rgb : sequence of (r, g, b)
        Color of class ``k`` at ``colors_rgb[k - 1]``.
    alpha : float
        Opacity of the fill.
    outlines : (H, W) int array, optional
        Instance ids; the boundary of each instance is drawn in full color.

    Returns
    -------
    (H, W, 3) uint8

    Examples
    --------
    >>> import numpy as np
    >>> out = overlay(np.zeros((4, 4)), np.eye(4, dtype=np.uint8), [(255, 0, 0)])
    >>> out[0, 0].tolist(), out[0, 1].tolist()
    ([102, 0, 0], [0, 0, 0])
    """
    base = normalize_minmax(image) * 255.0  # float32 gray levels
    out = np.repeat(np.clip(np.rint(base), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    lut = np.zeros((256, 3), dtype=np.float64)
    lut[1 : len(colors_rgb) + 1] = np.asarray(colors_rgb, dtype=np.float64).reshape(-1, 3)
    fg = semantic > 0
    if fg.any():  # the blend on the labeled pixels only, rounded from float32 as the gray ones are
        blend = ((1 - alpha) * base[fg][:, None] + alpha * lut[semantic[fg]]).astype(np.float32)
        out[fg] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    if outlines is not None:
        edge = _inner_boundaries(outlines) & fg
        out[edge] = lut[semantic[edge]].astype(np.uint8)
    return out


def _inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: labeled pixels (not 0) with a 4-neighbor in the image of another label
    (``skimage.segmentation.find_boundaries(labels, mode="inner")``, in numpy)."""
    edge = np.zeros(labels.shape, dtype=bool)
    rows = labels[1:] != labels[:-1]
    edge[1:] |= rows
    edge[:-1] |= rows
    cols = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= cols
    edge[:, :-1] |= cols
    return edge & (labels != 0)


def item_overlay(dataset: Dataset, item: Item, *, line_width: float = DEFAULT_LINE_WIDTH) -> np.ndarray:
    """The overlay picture of one item of ``dataset`` (its image must be found)."""
    colors = [lab.rgb(i) for i, lab in enumerate(dataset.labels)]
    image = read_image(item.image) if item.image is not None else np.zeros(item.size_hw, np.uint8)
    sem = semantic_mask(item, dataset.class_index(), line_width=line_width)
    return overlay(image, sem, colors, outlines=instance_labels(item, line_width=line_width))


def write_overlays(dataset: Dataset, out_dir: str | Path, *, limit: int | None = None) -> list[Path]:
    """Write ``<out_dir>/<key>.png`` overlays for the first ``limit`` items; returns the paths."""
    out_dir = Path(out_dir)
    paths = []
    for item in dataset.items[:limit]:
        path = out_dir / f"{item.key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, item_overlay(dataset, item))
        paths.append(path)
    return paths
