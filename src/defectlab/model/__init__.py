"""The data model: labels, shapes, items and datasets. See ``defectlab.model.shapes`` for
the coordinate convention."""

from .dataset import Dataset, ImageSource, Item, Note
from .labels import DEFAULT_COLORS, AttributeSpec, Edge, Label
from .shapes import SHAPE_KINDS, Box, Ellipse, Mask, Points, Polygon, Polyline, Shape, Tag

__all__ = [
    "AttributeSpec", "Box", "DEFAULT_COLORS", "Dataset", "Edge", "Ellipse", "ImageSource", "Item",
    "Label", "Mask", "Note", "Points", "Polygon", "Polyline", "SHAPE_KINDS", "Shape", "Tag",
]
