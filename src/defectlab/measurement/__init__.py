"""Measure defects in physical units, and score predictions against labels.

Two doors to the same functions: ``defectlab measure`` / ``defectlab evaluate`` on the
command line, and in Python::

    from defectlab.measurement import measure, evaluate
    m = measure("export/", pixel_size="0.38nm", thickness="80nm")   # Measurement
    m.per_set                     # Table: per label count, density, sizes, area fraction, swelling
    m.write("measure_out/")       # CSV (+ Parquet), summary.json, figures, index.html
    e = evaluate("predictions.xml", "export/", iou=0.5)
    e.overall["f1"], e.overall["mAP"]
    e.write("eval_out/")

Modules: :mod:`~defectlab.measurement.props` (per-defect measurements),
:mod:`~defectlab.measurement.stats` (statistics), :mod:`~defectlab.measurement.evaluate`
(predictions vs labels), :mod:`~defectlab.measurement.report` (files and figures),
:mod:`~defectlab.measurement.table` (the small column table they return).
"""

from .evaluate import Evaluation, coco_map, crop_iou, evaluate, iou_matrix, match_instances
from .options import EvaluateOptions, MeasureOptions
from .run import Measurement, measure, reported_labels
from .props import DEFECT_COLUMNS, measure_instances, measure_item
from .stats import ImageInfo, histogram, is_cavity_label, size_summary, statistics, swelling
from .table import Table

__all__ = [
    "DEFECT_COLUMNS", "EvaluateOptions", "Evaluation", "ImageInfo", "MeasureOptions", "Measurement", "Table",
    "coco_map", "crop_iou", "evaluate", "histogram", "iou_matrix", "is_cavity_label", "match_instances", "measure", "measure_instances",
    "measure_item", "reported_labels", "size_summary", "statistics", "swelling",
]
