"""The CVAT XML that ``write_cvat`` (and so ``predict --prelabels cvat``) writes is read by other
CVAT readers: datumaro's importer and FiftyOne's (#14.11).

datumaro itself is too heavy for ``make test`` (it pulls in its own ML stack), so this file
carries a small independent reader that does what datumaro's CVAT importer does, step for step,
written from its source (open-edge-platform/datumaro, ``src/datumaro/plugins/data_formats/cvat/
base.py``: ``CvatImporter.find_sources``, ``CvatBase._parse_meta``, ``_parse``, ``_load_items``;
``format.py``: ``SUPPORTED_IMPORT_SHAPES``), and FiftyOne's label lookup
(``fiftyone/utils/cvat.py``, ``load_cvat_image_annotations``: ``annotations/meta/task/labels``).
It uses the standard library's ElementTree, not defectlab's parser.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.formats.cvat_xml import read_cvat, write_cvat
from defectlab.model import Box, Dataset, Ellipse, ImageSource, Item, Label, Polygon, Polyline

#: datumaro's CvatPath.SUPPORTED_IMPORT_SHAPES (ellipses are not among them: datumaro drops them)
DATUMARO_SHAPES = {"box", "polygon", "polyline", "points", "mask"}


class ImportError_(Exception):
    """datumaro's DatasetImportError."""


def datumaro_sources(xml_path: Path) -> list[str | None]:
    """``CvatImporter.find_sources``: a project gives one source per ``<subset>``, a task one
    source; anything else is refused."""
    meta = ET.parse(xml_path).getroot().find("meta")
    if meta is None:
        raise ImportError_("CVAT XML file should have <meta> tag.")
    if meta.find("project") is not None:
        subsets = [s.text for s in meta.iter("subset")]
        if not subsets:
            raise ImportError_("CVAT XML should include <subset> tags.")
        return subsets
    if meta.find("task") is not None:
        return [None]
    raise ImportError_("CVAT XML file should have a <meta> -> <task> or <meta> -> <project> subtree.")


def datumaro_read(xml_path: Path, subset: str | None) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """``CvatBase``: (label names, item id -> [(shape type, label name)]) of one source."""
    root = ET.parse(xml_path).getroot()
    meta = root.find("meta")
    labels = []
    for label in meta.iter("label"):  # _parse_meta: every <label> of the meta, name and attributes
        labels.append(label.find("name").text)
        for attr in label.iter("attribute"):
            attr.find("name").text, attr.find("input_type").text  # noqa: B018 - both must exist
    own_subset = subset or xml_path.stem  # SubsetBase: a task's subset is the file's stem
    images_dir = xml_path.parent / "images"
    items: dict[str, list[tuple[str, str]]] = {}
    for image in root.iter("image"):
        if image.get("subset") is not None and image.get("subset") != own_subset:
            continue  # _parse: shapes of another subset are not this source's
        name = image.get("name")
        shapes = []
        for el in image:
            if el.tag in DATUMARO_SHAPES or el.tag == "tag":
                label = el.get("label")
                if label not in labels:  # LabelCategories.find(label)[0] is None
                    raise ImportError_(f"label {label!r} is not in the meta")
                shapes.append((el.tag, label))
        # _load_items: the image must be at images/<name> or images/<subset>/<name>
        if not (images_dir / name).exists() and not (images_dir / own_subset / name).exists():
            raise ImportError_(f"Cannot find an image which has name={name}.")
        items[Path(name).stem] = shapes
    return labels, items


def fiftyone_labels(xml_path: Path) -> list[str]:
    """FiftyOne's ``load_cvat_image_annotations``: the label names under annotations/meta/task/labels."""
    task = ET.parse(xml_path).getroot().find("meta/task")
    return [] if task is None else [lab.findtext("name") for lab in task.findall("labels/label")]


def _dataset(root: Path, subsets: tuple[str | None, ...]) -> Dataset:
    labels = (Label("cavity", color="#61b21f"), Label("dislocation line", type="polyline"), Label("loop"))
    items = []
    for k, subset in enumerate(subsets):
        path = root / f"src_{k}.png"
        Image.fromarray(np.full((40, 60), 30 * k, np.uint8)).save(path)
        shapes = (Polygon(label="cavity", points_xy=[(5, 5), (20, 6), (12, 18)]),
                  Box(label="loop", xyxy=(30, 10, 45, 22)),
                  Polyline(label="dislocation line", points_xy=[(2, 35), (50, 30)]),
                  Ellipse(label="cavity", cx=40, cy=30, rx=4, ry=3))
        items.append(Item(f"frame_{k}.png", (40, 60), shapes, ImageSource(path), subset=subset, id=k))
    return Dataset(labels, tuple(items))


EXPECTED_SHAPES = [("polygon", "cavity"), ("box", "loop"), ("polyline", "dislocation line")]  # ellipse dropped


@pytest.mark.parametrize("subsets", [(None, None), ("Train", "Train")])
def test_a_task_export_is_read_by_datumaro_and_fiftyone(tmp_path: Path, subsets) -> None:
    ds = _dataset(tmp_path, subsets)
    out = tmp_path / "task"
    write_cvat(ds, out)
    xml = out / "annotations.xml"
    assert datumaro_sources(xml) == [None]
    labels, items = datumaro_read(xml, None)
    assert labels == ["cavity", "dislocation line", "loop"] == fiftyone_labels(xml)
    assert items == {"frame_0": EXPECTED_SHAPES, "frame_1": EXPECTED_SHAPES}
    back = read_cvat(out)  # and defectlab reads its subset back from the task's meta
    assert [it.subset for it in back] == list(subsets) and not back.notes


def test_a_project_export_gives_one_datumaro_source_per_subset(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, ("Train", "Validation", "Train"))
    out = tmp_path / "project"
    write_cvat(ds, out)
    xml = out / "annotations.xml"
    assert datumaro_sources(xml) == ["Train", "Validation"]
    assert datumaro_read(xml, "Train")[1] == {"frame_0": EXPECTED_SHAPES, "frame_2": EXPECTED_SHAPES}
    assert datumaro_read(xml, "Validation")[1] == {"frame_1": EXPECTED_SHAPES}
    assert [(it.name, it.subset) for it in read_cvat(out)] == [(it.name, it.subset) for it in ds]


def test_prelabels_xml_is_a_task_export(tmp_path: Path) -> None:
    """Pre-labels are one file uploaded to a CVAT task: ``<meta><task>``, which FiftyOne needs."""
    ds = _dataset(tmp_path, (None,))
    xml = tmp_path / "prelabels.xml"
    write_cvat(ds, xml)
    assert datumaro_sources(xml) == [None]
    assert fiftyone_labels(xml) == ["cavity", "dislocation line", "loop"]


def test_the_independent_reader_refuses_a_job_export(shared_data: Path) -> None:
    """The reader above is datumaro's judge: the workshop's job export (``<meta><job>``) fails it."""
    with pytest.raises(ImportError_, match=r"<meta> -> <task> or <meta> -> <project>"):
        datumaro_sources(shared_data / "workshop" / "DL_for_Microscopy_Train_eg_lab.xml")
    assert fiftyone_labels(shared_data / "workshop" / "DL_for_Microscopy_Train_eg_lab.xml") == []
