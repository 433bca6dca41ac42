"""Labeling formats in and training formats out, under fixed names.

An explicit registry (no plugin discovery): each format names its reader, writer and a
``sniff`` function that recognises it from a path.

=============  =====  =====  ======================================================================
name           read   write  what
=============  =====  =====  ======================================================================
cvat           yes    yes    CVAT for images / video 1.1 XML (.xml, folder, or .zip download)
coco           yes    yes    COCO instances JSON (file, folder, zip; Roboflow splits)
yolo           yes    yes    Ultralytics/Roboflow YOLO .txt labels + data.yaml (detect, segment)
via            yes    no     VGG Image Annotator 1/2/3 JSON
labelme        yes    no     LabelMe JSON (a file per image, or a folder of them)
labelbox       yes    no     Labelbox NDJSON export v2
imagej-roi     yes    yes    ImageJ/Fiji ROIs: .roi, ROI Manager RoiSet.zip, a folder of ROI sets (roifile)
masks          yes    no     label mask images: class-index, binary, instance-id; CVAT Segmentation mask 1.1
instance-tiff  yes    yes    int32 instance-id TIFFs + classes.json + instances.csv (napari, cellpose, StarDist)
unet           no     yes    class-index PNG masks + images (+ stacked .npy)
maskrcnn       no     yes    images + compact per-image instance targets (.npz)
=============  =====  =====  ======================================================================

Formats are sniffed in the order of this table; the first that recognises a path wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import FormatError
from ..model import Dataset

__all__ = ["Format", "FORMATS", "detect_format", "format_names", "read", "write"]


@dataclass(frozen=True)
class Format:
    """A registered format: its name, what it is, and its functions (None where absent)."""

    name: str
    description: str
    read: Callable[..., Dataset] | None = None
    write: Callable[..., Any] | None = None
    sniff: Callable[[Path], bool] | None = None


def _cvat() -> Format:
    from .cvat_xml import read_cvat, sniff_cvat, write_cvat

    return Format("cvat", "CVAT for images/video 1.1 XML", read_cvat, write_cvat, sniff_cvat)


def _coco() -> Format:
    from .coco_json import read_coco, sniff_coco, write_coco

    return Format("coco", "COCO instances JSON (COCO, CVAT, datumaro, Roboflow)", read_coco, write_coco, sniff_coco)


def _yolo() -> Format:
    from .yolo_txt import read_yolo, sniff_yolo, write_yolo

    return Format("yolo", "YOLO (Ultralytics / Roboflow) detection + segmentation txt labels and data.yaml",
                  read_yolo, write_yolo, sniff_yolo)


def _via() -> Format:
    from .via_json import read_via, sniff_via

    return Format("via", "VGG Image Annotator (VIA 1/2/3) JSON", read_via, sniff=sniff_via)


def _labelme() -> Format:
    from .labelme_json import read_labelme, sniff_labelme

    return Format("labelme", "LabelMe JSON (a file per image, or a folder of them)", read_labelme, sniff=sniff_labelme)


def _labelbox() -> Format:
    from .labelbox_ndjson import read_labelbox, sniff_labelbox

    return Format("labelbox", "Labelbox NDJSON export v2", read_labelbox, sniff=sniff_labelbox)


def _imagej_roi() -> Format:
    from .imagej_roi import read_imagej_roi, sniff_imagej_roi, write_imagej_roi

    return Format("imagej-roi", "ImageJ/Fiji ROIs: .roi files, ROI Manager RoiSet.zip, a folder of them",
                  read_imagej_roi, write_imagej_roi, sniff_imagej_roi)


def _masks() -> Format:
    from .mask_images import read_masks, sniff_masks

    return Format("masks", "label mask images: class-index, binary or instance-id PNG/TIFF; "
                  "CVAT Segmentation mask 1.1; unet output", read_masks, sniff=sniff_masks)


def _instance_tiff() -> Format:
    from .mask_images import read_masks, write_instance_tiffs

    return Format("instance-tiff", "int32 instance-id TIFFs + classes.json + instances.csv (napari, cellpose, StarDist)",
                  read_masks, write_instance_tiffs)


def _unet() -> Format:
    from .unet import write_unet

    return Format("unet", "U-Net semantic masks (class-index PNG) + images", write=write_unet)


def _maskrcnn() -> Format:
    from .maskrcnn import write_maskrcnn

    return Format("maskrcnn", "Mask R-CNN images + per-image instance targets", write=write_maskrcnn)


_FACTORIES: dict[str, Callable[[], Format]] = {
    "cvat": _cvat,
    "coco": _coco,
    "yolo": _yolo,
    "via": _via,
    "labelme": _labelme,
    "labelbox": _labelbox,
    "imagej-roi": _imagej_roi,
    "masks": _masks,
    "instance-tiff": _instance_tiff,
    "unet": _unet,
    "maskrcnn": _maskrcnn,
}


class _Registry(dict):
    """Formats by name, each built on first use (keeps ``import defectlab`` light)."""

    def __missing__(self, name: str) -> Format:
        if name not in _FACTORIES:
            raise FormatError(f"unknown format {name!r}; known formats: {', '.join(_FACTORIES)}")
        fmt = self[name] = _FACTORIES[name]()
        return fmt


#: Every built-in format by name.
FORMATS: dict[str, Format] = _Registry()


def format_names(*, readable: bool = False, writable: bool = False) -> list[str]:
    """Names of the formats that can be read and/or written."""
    return [
        n for n in _FACTORIES
        if (not readable or FORMATS[n].read) and (not writable or FORMATS[n].write)
    ]


def detect_format(path: str | Path) -> str:
    """The name of the format of ``path`` (a file, folder or archive); FormatError if unknown.

    A zip archive that is unsafe (a member climbing out, a symbolic link, a zip bomb) or
    unreadable is a ParseError saying so, not an unknown format.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from defectlab.preparation.synthetic import make_synthetic_dataset
    >>> export = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> _ = make_synthetic_dataset(export, n_images=1)
    >>> detect_format(export), detect_format(export / "annotations.xml")
    ('cvat', 'cvat')
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder")
    if path.is_file():
        from ._archive import SafeZip, is_zip

        if is_zip(path):  # an unsafe, unreadable or bomb archive: say why (ParseError), whatever its format
            with SafeZip(path) as archive:
                archive.check_all()
    for name in format_names(readable=True):
        sniff = FORMATS[name].sniff
        if sniff is not None and sniff(path):
            return name
    raise FormatError(
        f"{path}: not a labeling export defectlab recognises; readable formats: "
        f"{', '.join(format_names(readable=True))}"
    )


def read(path: str | Path, *, format: str | None = None, **options: Any) -> Dataset:
    """Read a labeling export into a :class:`Dataset`.

    Parameters
    ----------
    path : path
        A file, a folder holding the export, or a .zip as the labeling tool downloads it.
    format : str, optional
        A registered format name; detected from the path when omitted.
    **options
        Passed to the format's reader (e.g. ``images="path/to/images"``).

    Examples
    --------
    >>> import tempfile, pathlib, defectlab
    >>> from defectlab.preparation.synthetic import make_synthetic_dataset
    >>> export = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> _ = make_synthetic_dataset(export, n_images=2)
    >>> ds = defectlab.read(export)
    >>> len(ds), [lab.name for lab in ds.labels][:2]
    (2, ['cavity', 'loop'])
    """
    name = format or detect_format(path)
    fmt = FORMATS[name]
    if fmt.read is None:
        raise FormatError(f"format {name!r} cannot be read; readable formats: {', '.join(format_names(readable=True))}")
    return fmt.read(path, **options)


def write(dataset: Dataset, path: str | Path, *, format: str, **options: Any) -> Any:
    """Write ``dataset`` to ``path`` in a registered ``format`` ("unet", "maskrcnn", "cvat", ...).

    Examples
    --------
    >>> import tempfile, pathlib, defectlab
    >>> from defectlab.preparation.synthetic import make_synthetic_dataset
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = make_synthetic_dataset(tmp / "export", n_images=1)
    >>> write(ds, tmp / "unet", format="unet").n_items
    1
    """
    fmt = FORMATS[format]
    if fmt.write is None:
        raise FormatError(f"format {format!r} cannot be written; writable formats: {', '.join(format_names(writable=True))}")
    return fmt.write(dataset, path, **options)
