"""Shapes → pixels. The only place where geometry becomes pixels; see ``raster.shapes`` for the rule."""

from .masks import Instance, instance_labels, instances, paint_order, semantic_mask
from .contours import ellipse_polygon, mask_to_polygons, shape_polygons
from .shapes import DEFAULT_LINE_WIDTH, Crop, ellipse_crop, polygon_crop, polyline_crop, rasterize

__all__ = [
    "Crop", "DEFAULT_LINE_WIDTH", "Instance", "ellipse_crop", "ellipse_polygon", "mask_to_polygons", "shape_polygons", "instance_labels", "instances",
    "paint_order", "polygon_crop", "polyline_crop", "rasterize", "semantic_mask",
]
