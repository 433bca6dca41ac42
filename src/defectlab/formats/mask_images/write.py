"""Writing int32 instance-id TIFFs (see the package docstring for the format facts)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..._output import input_paths, output_dir
from ...errors import DatasetError
from ...model import Dataset, Note
from ...raster import DEFAULT_LINE_WIDTH, instance_labels, instances, paint_order
from .._writing import WriteReport, check_items, copy_image
from ..classes_json import write_classes

__all__ = ["write_instance_tiffs", "INSTANCES_CSV_COLUMNS"]

#: The columns of ``instances.csv``, the class of every id of the label images.
INSTANCES_CSV_COLUMNS = ("image", "instance_id", "class_id", "label")



def write_instance_tiffs(
    dataset: Dataset,
    out: str | Path,
    *,
    overwrite: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    visible_only: bool = True,
) -> WriteReport:
    """Write one int32 instance-id TIFF per image, for napari, cellpose and StarDist.

    Layout written::

        OUT/labels/<key>.tif    (H, W) int32, 0 = background, ids 1..N (zlib-compressed)
        OUT/classes.json        class index -> {name, color, edge}
        OUT/instances.csv       image,instance_id,class_id,label — the class of every id
        OUT/images/<key>.<ext>  the image files, copied (where found)

    Parameters
    ----------
    dataset : Dataset
        Items; their area shapes and polylines are instances (points and tags are not).
    out : path
        Output folder; created atomically (see :func:`defectlab._output.output_dir`).
    overwrite : bool
        Replace an existing output folder.
    line_width : float
        Width in px of polyline masks (dislocation lines).
    visible_only : bool
        A label image holds one id per pixel: where instances overlap, the pixel belongs to
        the topmost (painted by ``z_order``, ties in file order, as
        :func:`defectlab.raster.instance_labels` does), and each overlap is noted. With
        ``False``, an overlap is refused instead (DatasetError), so no instance loses pixels.

    Returns
    -------
    WriteReport
        ``n_instances`` ids written; notes for degenerate shapes (no pixel), instances
        partly or fully covered, and images not found (not copied).

    Notes
    -----
    Ids are 1..N in paint order (the topmost instance has the largest id); an instance
    fully covered by others has no id. :func:`read_masks` reads the folder back, with the
    classes from ``instances.csv``.

    Examples
    --------
    >>> import tempfile, pathlib, tifffile
    >>> from defectlab.model import Dataset, Ellipse, Item, Label
    >>> ds = Dataset((Label("cavity"),), (Item("a.png", (16, 16), (
    ...     Ellipse(label="cavity", cx=5, cy=5, rx=3, ry=3),
    ...     Ellipse(label="cavity", cx=11, cy=11, rx=3, ry=3))),))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "tiffs"
    >>> write_instance_tiffs(ds, out).n_instances
    2
    >>> lab = tifffile.imread(out / "labels" / "a.tif"); lab.dtype, sorted(set(lab.ravel().tolist()))
    (dtype('int32'), [0, 1, 2])
    """
    import tifffile

    check_items(dataset, need_images=False, same_size=False)
    with_images = dataset.with_items([it for it in dataset.items if it.image is not None])
    check_items(with_images, need_images=True, same_size=False)
    class_index = dataset.class_index()
    notes: list[Note] = list(dataset.notes)
    n_instances = 0
    inputs = input_paths(dataset)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_classes(dataset, tmp / "classes.json")
        rows = [",".join(INSTANCES_CSV_COLUMNS)]
        for item in dataset.items:
            found, degenerate = instances(item, class_index, visible_only=False, line_width=line_width)
            notes.extend(degenerate)
            painted = instance_labels(item, line_width=line_width)
            by_index = {inst.index: inst for inst in found}
            lut = np.zeros(len(item.shapes) + 1, dtype=np.int32)
            next_id = 0
            for i in paint_order(item):
                inst = by_index.get(i)
                if inst is None:
                    continue
                visible = int(np.count_nonzero(painted[inst.crop.slices][inst.crop.bitmap] == i + 1))
                hidden = inst.crop.area - visible
                if hidden and not visible_only:
                    raise DatasetError(
                        f"{item.name}: shape {i} ({inst.shape.kind} {inst.shape.label!r}) has {hidden} of "
                        f"{inst.crop.area} pixels covered by shapes above it; an instance label image "
                        "holds one id per pixel — pass visible_only=True to keep the visible parts"
                    )
                if hidden:
                    what = f"{hidden} of {inst.crop.area} pixels" if visible else "fully (no id)"
                    notes.append(Note("covered-instance", f"{inst.shape.kind} {inst.shape.label!r}: covered "
                                      f"{what} by shapes above it", item=item.name, where=f"shape {i}"))
                if not visible:
                    continue
                next_id += 1
                lut[i + 1] = next_id
                rows.append(_csv_row(item.key, next_id, inst.class_id, inst.shape.label))
            n_instances += next_id
            dest = tmp / "labels" / f"{item.key}.tif"
            dest.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(dest, lut[painted], compression="zlib")
            if item.image is not None:
                copy_image(item, tmp / "images")
            else:
                notes.append(Note("missing-image", "image file not found; not copied", item=item.name))
        (tmp / "instances.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return WriteReport(Path(out), n_items=len(dataset.items), n_instances=n_instances, notes=notes)


def _csv_row(*values: object) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()
