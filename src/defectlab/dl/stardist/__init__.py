"""The star-convex instance model (StarDist's idea, in PyTorch): counts touching and
overlapping defects.

A net predicts, at every ``grid``-th pixel, the probability that the pixel is near an
object's center and the distances along K rays to that object's boundary; each candidate
is a star-convex polygon, and non-maximum suppression keeps one per object. Overlapping
labels stay overlapping: the targets are computed per instance (:mod:`defectlab.raster.stars`),
the NMS keeps polygons that overlap less than its threshold (:mod:`defectlab.raster.nms`),
and the outputs keep the polygons themselves.

Modules: :mod:`.net` (the net), :mod:`.data` (targets, crops), :mod:`.train` (the loss and
the validation; training itself is the one loop, :func:`defectlab.dl.train.train` of
``"stardist"``, see :mod:`defectlab.dl.archs.stardist`), :mod:`.predict` (tiles, candidates, NMS), :mod:`.thresholds`
(matching, threshold tuning), :mod:`.model` (the model folder), :mod:`.outputs`
(pre-labels, written predictions).
"""

from .model import StarModel, load_star_model
from .net import StarNet, StarNetConfig
from .predict import StarPrediction

__all__ = ["StarModel", "StarNet", "StarNetConfig", "StarPrediction", "load_star_model"]
