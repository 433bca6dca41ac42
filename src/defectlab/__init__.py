"""defectlab: deep learning on microscopy images of materials defects.

From a labeling export to exact training data::

    import defectlab
    ds = defectlab.read("annotations.xml")      # CVAT job/task/project/video export, folder or .zip
    defectlab.write_unet(ds, "unet_data")       # masks/<stem>.png + images/ + classes.json
    defectlab.write_maskrcnn(ds, "mrcnn_data")  # images/ + targets/<stem>.npz + classes.json

``import defectlab`` stays light: it never imports torch or matplotlib. The torch
datasets live in :mod:`defectlab.dl`.
"""

from .errors import DatasetError, DefectlabError, FormatError, ImageError, OutputError, ParseError
from .formats import detect_format, read, write
from .formats.maskrcnn import instance_target, read_target, write_maskrcnn
from .formats.unet import write_unet
from .imaging.micrograph import read_micrograph
from .model import Box, Dataset, Ellipse, Item, Label, Mask, Points, Polygon, Polyline, Tag
from .raster import instance_labels, instances, rasterize, semantic_mask

from .api import (  # noqa: E402
    check,
    evaluate,
    fix,
    load_model,
    measure,
    predict,
    prepare,
    read,
    show,
    suggest,
    synthetic,
    train_maskrcnn,
    train_unet,
)
from .tracking.api import track  # noqa: E402  (light: numpy only until called)

__version__ = "0.1.0"

__all__ = [
    "Box", "Dataset", "DatasetError", "DefectlabError", "Ellipse", "FormatError", "ImageError",
    "Item", "Label", "Mask", "OutputError", "ParseError", "Points", "Polygon", "Polyline", "Tag",
    "__version__", "check", "detect_format", "evaluate", "fix", "load_model", "measure", "predict", "prepare",
    "show", "suggest", "synthetic", "train_maskrcnn", "train_unet", "instance_labels", "instance_target", "instances", "rasterize",
    "read", "read_micrograph", "read_target", "semantic_mask", "track", "write", "write_maskrcnn", "write_unet",
]
