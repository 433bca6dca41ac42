"""napari reader: any labeling export defectlab reads, as an image and a layer per label."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

__all__ = ["get_reader", "read_layers"]


def read_layers(path: str | Path) -> list[tuple[Any, dict, str]]:
    """Layer data for every item of the export at ``path``: its micrograph (when found), one
    Shapes layer per label (label colors), Points layers for point labels."""
    from ..formats import read
    from ..imaging.micrograph import read_micrograph
    from ._layers import dataset_layers

    ds = read(path)
    layers: list[tuple[Any, dict, str]] = []
    for k, item in enumerate(ds.items):
        image, nm = None, None
        if item.image is not None:
            mic = read_micrograph(item.image)
            image, nm = mic.array, mic.pixel_size_nm
        got, _ = dataset_layers(ds, image=image, item_index=k, pixel_size_nm=nm)
        if len(ds.items) > 1:  # one image at a time on screen: the first, the others hidden
            for _, attrs, _ in got:
                attrs["name"] = f"{item.stem} · {attrs['name']}"
                attrs["visible"] = k == 0
        layers += got
    return layers


def get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    """The npe2 reader hook: :func:`read_layers` when defectlab recognises ``path``, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    from ..errors import DefectlabError
    from ..formats import detect_format

    try:
        detect_format(path)
    except (DefectlabError, OSError):
        return None
    return lambda p: read_layers(p[0] if isinstance(p, list) else p)
