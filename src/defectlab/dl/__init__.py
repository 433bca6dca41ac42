"""Deep learning with torch: datasets for training (needs the ``torch`` extra).

``import defectlab`` never imports this package; import it explicitly::

    from defectlab.dl import MaskRCNNDataset
"""

from .maskrcnn import DegenerateInstanceWarning, MaskRCNNDataset
from .segmentation import SegmentationDataset

__all__ = ["DegenerateInstanceWarning", "MaskRCNNDataset", "SegmentationDataset"]
