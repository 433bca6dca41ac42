"""napari writers: Shapes (and Points) layers back to CVAT for images 1.1 XML or COCO JSON."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

__all__ = ["write_cvat", "write_coco"]


def write_cvat(path: str, layer_data: Sequence[tuple[Any, dict, str]]) -> list[str]:
    """Write the layers as a CVAT XML file (one ``<image>`` per item they name)."""
    from ..formats.cvat_xml import write_cvat as write
    from ._layers import layers_dataset

    write(layers_dataset(layer_data), path)
    return [str(path)]


def write_coco(path: str, layer_data: Sequence[tuple[Any, dict, str]]) -> list[str]:
    """Write the Shapes layers as one COCO instances JSON file (images are not copied)."""
    from ..formats.coco_json import write_coco as write
    from ._layers import layers_dataset

    target = Path(path)
    with tempfile.TemporaryDirectory(prefix=".defectlab-napari-", dir=target.parent) as tmp:
        write(layers_dataset(layer_data), Path(tmp) / "coco", copy_images=False)
        produced = sorted((Path(tmp) / "coco" / "annotations").glob("instances_*.json"))
        if len(produced) != 1:
            from ..errors import DatasetError

            raise DatasetError(f"{path}: the layers hold images of {len(produced)} subsets, one COCO file each; "
                               "save them as CVAT XML (.xml) instead")
        produced = produced[0]
        mode = 0o666 & ~_umask()
        os.chmod(produced, mode)
        shutil.move(str(produced), target)
    return [str(target)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
