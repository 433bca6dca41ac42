"""Mask R-CNN (instance segmentation) targets, in memory and on disk.

In memory, :func:`instance_target` gives one image's target the way torchvision's
detection models want it (as numpy; ``defectlab.dl.MaskRCNNDataset`` makes tensors):

``boxes``     float32 [N, 4]  x1, y1, x2, y2 pixel edges of each instance's pixels (x1 < x2 <= W)
``labels``    int64 [N]       class index from 1 per real class (0 is background)
``masks``     uint8 [N, H, W] built on request only (``dense=True``); otherwise ``crops``
``crops``     list of Crop    each instance's pixels in its own box — compact
``area``      float32 [N]     pixel count of each instance
``iscrowd``   int64 [N]       zeros
``image_id``  int             the item's position in the dataset

On disk (:func:`write_maskrcnn`)::

    OUT/images/<key>.<ext>   the image files
    OUT/targets/<key>.npz    boxes, labels, area, iscrowd, shape_index, size_hw, and the masks
                             as bit-packed crops (crop_xywh [N, 4] int32 + bits uint8)
    OUT/classes.json         index -> {name, color, edge}

The npz holds crops, not (N, H, W) arrays: a 1024×1024 image with 200 defects takes
kilobytes instead of 200 MB. :func:`read_target` restores the dense masks when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .._output import output_dir
from ..errors import ParseError
from ..model import Dataset, Item, Note
from ..raster import DEFAULT_LINE_WIDTH, Crop, instances
from .._output import input_paths
from ..progress import progress_iter
from ._writing import WriteReport, check_items, copy_image
from .classes_json import write_classes

__all__ = ["instance_target", "dense_masks", "write_maskrcnn", "read_target"]


def instance_target(
    item: Item,
    class_index: Mapping[str, int],
    *,
    image_id: int = 0,
    visible_only: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    dense: bool = False,
) -> tuple[dict, list[Note]]:
    """One item's Mask R-CNN target (numpy) and the notes on degenerate instances.

    Parameters
    ----------
    item : Item
    class_index : mapping
        Label name -> class index from 1.
    image_id : int
        Stored as ``target["image_id"]``.
    visible_only : bool
        Keep only each instance's visible part (not covered by shapes above it).
    line_width : float
        Width in px of polyline masks.
    dense : bool
        Also build ``masks`` uint8 [N, H, W].

    Examples
    --------
    >>> from defectlab.model import Item, Ellipse
    >>> it = Item("a.png", (32, 32), (Ellipse(label="loop", cx=10.5, cy=10.5, rx=4, ry=2),))
    >>> t, notes = instance_target(it, {"cavity": 1, "loop": 2})
    >>> t["boxes"].tolist(), t["labels"].tolist(), notes
    ([[6.0, 8.0, 15.0, 13.0]], [2], [])
    """
    inst, notes = instances(item, class_index, visible_only=visible_only, line_width=line_width)
    n = len(inst)
    target = {
        "boxes": np.array([i.box_xyxy for i in inst], dtype=np.float32).reshape(n, 4),
        "labels": np.array([i.class_id for i in inst], dtype=np.int64),
        "area": np.array([i.crop.area for i in inst], dtype=np.float32),
        "iscrowd": np.zeros(n, dtype=np.int64),
        "image_id": int(image_id),
        "shape_index": np.array([i.index for i in inst], dtype=np.int32),
        "crops": [i.crop for i in inst],
        "size_hw": item.size_hw,
    }
    if dense:
        target["masks"] = dense_masks(target["crops"], item.size_hw)
    return target, notes


def dense_masks(crops: list[Crop], size_hw: tuple[int, int]) -> np.ndarray:
    """uint8 [N, H, W] masks from crops (one image's worth only)."""
    out = np.zeros((len(crops), *size_hw), dtype=np.uint8)
    for k, crop in enumerate(crops):
        out[k][crop.slices] = crop.bitmap
    return out


def _pack(crops: list[Crop]) -> tuple[np.ndarray, np.ndarray]:
    xywh = np.array([(c.x0, c.y0, c.bitmap.shape[1], c.bitmap.shape[0]) for c in crops], dtype=np.int32)
    bits = np.packbits(np.concatenate([c.bitmap.ravel() for c in crops])) if crops else np.zeros(0, np.uint8)
    return xywh.reshape(len(crops), 4), bits


def _unpack(xywh: np.ndarray, bits: np.ndarray) -> list[Crop]:
    sizes = xywh[:, 2].astype(np.int64) * xywh[:, 3]
    flat = np.unpackbits(bits, count=int(sizes.sum())).astype(bool) if len(sizes) else np.zeros(0, bool)
    crops, start = [], 0
    for (x0, y0, w, h), size in zip(xywh.tolist(), sizes.tolist()):
        crops.append(Crop(x0, y0, flat[start : start + size].reshape(h, w)))
        start += size
    return crops


def read_target(path: str | Path, *, dense: bool = False) -> dict:
    """Read a target written by :func:`write_maskrcnn` (same keys as :func:`instance_target`).
    Examples
    --------
    >>> import tempfile, pathlib
    >>> from defectlab.preparation.synthetic import make_synthetic_dataset
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = make_synthetic_dataset(tmp / "export", n_images=1)
    >>> _ = write_maskrcnn(ds, tmp / "mrcnn")
    >>> target = read_target(tmp / "mrcnn" / "targets" / f"{ds[0].key}.npz", dense=True)
    >>> target["masks"].shape == (len(target["labels"]), *ds[0].size_hw), target["boxes"].dtype
    (True, dtype('float32'))
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        target = {
            "boxes": data["boxes"],
            "labels": data["labels"],
            "area": data["area"],
            "iscrowd": data["iscrowd"],
            "image_id": int(data["image_id"]),
            "shape_index": data["shape_index"],
            "size_hw": tuple(int(v) for v in data["size_hw"]),
            "crops": _unpack(data["crop_xywh"], data["bits"]),
        }
    except (OSError, KeyError, ValueError) as err:
        raise ParseError(path, f"not a defectlab Mask R-CNN target file ({err})") from err
    if dense:
        target["masks"] = dense_masks(target["crops"], target["size_hw"])
    return target


def write_maskrcnn(
    dataset: Dataset,
    out: str | Path,
    *,
    visible_only: bool = False,
    link_images: bool | str = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write Mask R-CNN training data: images, one compact target file per image, classes.json.

    Degenerate instances (shapes that cover no pixel center) are left out of the targets
    and listed in the report's notes. See the module docstring for the layout.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from defectlab.preparation.synthetic import make_synthetic_dataset
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = make_synthetic_dataset(tmp / "export", n_images=1)
    >>> report = write_maskrcnn(ds, tmp / "mrcnn")
    >>> bool(read_target(tmp / "mrcnn" / "targets" / f"{ds[0].key}.npz")["labels"].min() >= 1)
    True
    """
    check_items(dataset, need_images=True, same_size=False)
    class_index = dataset.class_index()
    report = WriteReport(Path(out), n_items=len(dataset.items), notes=list(dataset.notes))
    inputs = input_paths(dataset)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_classes(dataset, tmp / "classes.json")
        items = progress_iter(dataset.items, total=len(dataset.items), desc="Mask R-CNN targets", enabled=progress)
        for image_id, item in enumerate(items):
            target, notes = instance_target(
                item, class_index, image_id=image_id, visible_only=visible_only, line_width=line_width
            )
            report.notes.extend(notes)
            report.n_instances += len(target["crops"])
            xywh, bits = _pack(target["crops"])
            path = tmp / "targets" / f"{item.key}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(
                path, boxes=target["boxes"], labels=target["labels"], area=target["area"],
                iscrowd=target["iscrowd"], image_id=np.int64(image_id), shape_index=target["shape_index"],
                size_hw=np.array(item.size_hw, dtype=np.int32), crop_xywh=xywh, bits=bits,
            )
            copy_image(item, tmp / "images", link=link_images)
    return report
