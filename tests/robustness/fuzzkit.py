"""Seed exports for every reader, the mutations applied to them, and one checked read.

Shared by ``test_fuzz_readers.py`` (driven by hypothesis) and ``benchmarks/fuzz_stats.py``
(driven by ``random.Random``): both hand a ``random.Random`` to :func:`mutate`, so a failing
case is replayed from its seed.

A *seed* is a small export on disk (a real sample from ``../shared/data`` or one made here
with defectlab's own writers and synthetic images) plus the files of it that may be mutated,
each with a kind (``xml``, ``json``, ``ndjson``, ``yaml``, ``txt``, ``csv``, ``png``, ``tiff``,
``zip``). A *case* copies a seed to a fresh folder, mutates one of its files 1–3 times and
reads the export (its format named, or in one case of five detected). The outcome is ``ok``
(a Dataset, whose masks are then rasterized), ``error`` (a
:class:`~defectlab.errors.DefectlabError` that names a path of the export), ``crash``
(anything else, or an error that names no file) or ``timeout``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import traceback
import warnings
import zipfile
import time
import zlib
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

__all__ = ["Seed", "Case", "build_seeds", "mutate", "run_case", "check_read", "memory_cap", "time_limit", "READERS"]

READERS = ("cvat", "coco", "via", "labelbox", "yolo", "labelme", "masks")


@dataclass(frozen=True)
class Seed:
    """One export to mutate: ``reader`` format, files under ``root``, ``target`` to read."""

    reader: str
    name: str
    root: Path
    target: str
    files: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, Any], ...] = ()


@dataclass
class Case:
    """The outcome of reading one mutated export."""

    seed: str
    reader: str
    file: str
    how: list[str]
    outcome: str  # "ok", "error", "crash", "timeout"
    error: BaseException | None = None
    detail: str = ""
    named_file: bool = False  # the error names the mutated file itself (not only the export)
    seconds: float = 0.0  # the read (and the masks), not the copying and mutating


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------


def _copy_tree(src: Path, dst: Path, only: Callable[[Path], bool] = lambda p: True) -> None:
    """Copy files (not their read-only modes) from ``src`` to ``dst``."""
    for p in sorted(src.rglob("*")):
        if p.is_file() and only(p):
            out = dst / p.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, out)


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _files(root: Path, kinds: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Every file under ``root`` whose suffix is in ``kinds``, with its kind."""
    out = []
    for p in sorted(root.rglob("*")):
        kind = kinds.get(p.suffix.lower())
        if p.is_file() and kind:
            out.append((p.relative_to(root).as_posix(), kind))
    return tuple(out)


def _zip_folder(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())


def _synthetic(cache: Path):
    """A small synthetic CVAT export (2 images, 64 x 64) and a dataset with every shape type."""
    from defectlab.model import Box, Dataset, Ellipse, Item, Mask, Points, Polygon, Polyline, Tag
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    config = SyntheticConfig(size_hw=(64, 64), n_cavities=2, n_loops=1, n_precipitates=1, n_lines=1)
    ds = make_synthetic_dataset(cache / "synth_export", n_images=2, config=config, seed=0)
    extra = (
        Box(label="cavity", xyxy=(3.5, 4.25, 20.0, 17.5), rotation_deg=30.0),
        Points(label="loop", points_xy=[(5.0, 6.0), (7.5, 8.5)]),
        Mask(label="precipitate", bitmap=np.eye(6, dtype=bool) | np.eye(6, dtype=bool)[::-1], left=40, top=40),
        Polygon(label="precipitate", points_xy=[(30, 30), (40, 31), (35, 42.5)], group=3),
        Polyline(label="dislocation line", points_xy=[(1, 60), (30, 50), (60, 62)]),
        Ellipse(label="loop", cx=50.5, cy=12.0, rx=6.0, ry=3.5, rotation_deg=-20.0),
        Tag(label="cavity"),
    )
    first = ds.items[0]
    rich = Dataset(ds.labels, (Item(first.name, first.size_hw, first.shapes + extra, first.image, id=0),
                               *ds.items[1:]), source=ds.source)
    return ds, rich


def _seed(reader: str, name: str, root: Path, target: str, kinds: dict[str, str],
          options: tuple = (), extra: tuple[tuple[str, str], ...] = ()) -> Seed:
    return Seed(reader, name, root, target, _files(root, kinds) + extra, options)


def _cvat_seeds(cache: Path, shared: Path | None, ds) -> list[Seed]:
    from defectlab.formats.cvat_xml import write_cvat

    out = []
    root = cache / "cvat_synth"
    _copy_tree(cache / "synth_export", root)
    write_cvat(ds, root / "annotations.xml", overwrite=True)  # the rich dataset (every shape type) replaces the copy
    out.append(_seed("cvat", "cvat-synthetic", root, "", {".xml": "xml"}))
    zroot = cache / "cvat_zip"
    zroot.mkdir()
    _zip_folder(root, zroot / "export.zip")
    out.append(_seed("cvat", "cvat-synthetic-zip", zroot, "export.zip", {".zip": "zip"}))
    if shared is not None:
        for sub in ("all_shapes", "task_export", "project_export", "video_export"):
            dst = cache / f"cvat_{sub}"
            _copy_tree(shared / "formats" / "cvat" / sub, dst)
            out.append(_seed("cvat", f"cvat-shared-{sub}", dst, "", {".xml": "xml"}))
        for xml in ("DL_for_Microscopy_Train_eg_lab.xml", "DL_for_Microscopy_Train_Lab_1.xml"):
            dst = cache / f"workshop_{xml[:-4]}"
            dst.mkdir()
            shutil.copyfile(shared / "workshop" / xml, dst / xml)
            out.append(_seed("cvat", f"cvat-workshop-{xml[18:-4]}", dst, xml, {".xml": "xml"}))
    return out


def _coco_seeds(cache: Path, shared: Path | None, ds) -> list[Seed]:
    from defectlab.formats.coco_json import write_coco

    root = cache / "coco_synth"
    write_coco(ds, root)
    out = [_seed("coco", "coco-synthetic", root, "", {".json": "json"})]
    zroot = cache / "coco_zip"
    zroot.mkdir()
    _zip_folder(root, zroot / "coco.zip")
    out.append(_seed("coco", "coco-synthetic-zip", zroot, "coco.zip", {".zip": "zip"}))
    if shared is not None:
        for sub in ("coco/instances", "roboflow/coco"):
            dst = cache / sub.replace("/", "_")
            _copy_tree(shared / "formats" / sub, dst)
            out.append(_seed("coco", f"coco-shared-{sub.replace('/', '-')}", dst, "", {".json": "json"}))
    return out


def _yolo_seeds(cache: Path, shared: Path | None, ds) -> list[Seed]:
    from defectlab.formats.yolo_txt import write_yolo

    out = []
    kinds = {".txt": "txt", ".yaml": "yaml"}
    for task in ("detect", "segment"):
        root = cache / f"yolo_{task}"
        write_yolo(ds, root, task=task)
        out.append(_seed("yolo", f"yolo-synthetic-{task}", root, "", kinds))
    if shared is not None:
        for sub in ("yolo/detection", "yolo/segmentation", "roboflow/yolo"):
            dst = cache / sub.replace("/", "_")
            _copy_tree(shared / "formats" / sub, dst)
            out.append(_seed("yolo", f"yolo-shared-{sub.replace('/', '-')}", dst, "", kinds))
    return out


def _via_seeds(cache: Path, shared: Path | None) -> list[Seed]:
    from PIL import Image

    out = []
    root = cache / "via_synth"
    root.mkdir()
    Image.new("L", (64, 48)).save(root / "a.png")
    Image.new("L", (32, 40)).save(root / "b.png")
    regions = [
        {"shape_attributes": {"name": "rect", "x": 1.5, "y": 2, "width": 10, "height": 4},
         "region_attributes": {"type": "cavity", "note": "x"}},
        {"shape_attributes": {"name": "circle", "cx": 20, "cy": 10, "r": 3},
         "region_attributes": {"type": {"loop": True}}},
        {"shape_attributes": {"name": "ellipse", "cx": 20, "cy": 30, "rx": 6, "ry": 3, "theta": 0.5},
         "region_attributes": {"type": "loop"}},
        {"shape_attributes": {"name": "polygon", "all_points_x": [1, 9, 5, 1], "all_points_y": [1, 2, 9, 1]},
         "region_attributes": {"type": "precipitate"}},
        {"shape_attributes": {"name": "polyline", "all_points_x": [3, 30, 40], "all_points_y": [40, 35, 44]},
         "region_attributes": {"type": "line"}},
        {"shape_attributes": {"name": "point", "cx": 7, "cy": 8}, "region_attributes": {"type": "cavity"}},
    ]
    via2 = {"_via_settings": {}, "_via_img_metadata": {
        "a.png100": {"filename": "a.png", "size": 100, "regions": regions, "file_attributes": {}},
        "b.png50": {"filename": "b.png", "size": "50", "regions": {"0": regions[0], "1": regions[3]},
                    "file_attributes": {"shot": 1}}},
        "_via_attributes": {"region": {"type": {"type": "dropdown", "options": {"cavity": "", "loop": ""}}}}}
    (root / "via2.json").write_text(json.dumps(via2, indent=1))
    out.append(_seed("via", "via-synthetic-2", root, "via2.json", {}, extra=(("via2.json", "json"),)))
    root3 = cache / "via3_synth"
    root3.mkdir()
    Image.new("L", (64, 48)).save(root3 / "a.png")
    via3 = {
        "project": {"pid": "__VIA_PROJECT_ID__", "pname": "t", "vid_list": ["1"]},
        "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}},
                   "ui": {"spatial_region_label_attribute_id": "1"}},
        "attribute": {"1": {"aname": "type", "anchor_id": "FILE1_Z0_XY1", "type": 4,
                            "options": {"0": "cavity", "1": "loop"}, "default_option_id": ""}},
        "file": {"1": {"fid": "1", "fname": "a.png", "type": 2, "loc": 1, "src": "a.png"}},
        "view": {"1": {"fid_list": ["1"]}},
        "metadata": {
            "1_a": {"vid": "1", "flg": 0, "z": [], "xy": [2, 1, 2, 10, 5], "av": {"1": "0"}},
            "1_b": {"vid": "1", "flg": 0, "z": [], "xy": [4, 20, 20, 5, 3], "av": {"1": "1"}},
            "1_c": {"vid": "1", "flg": 0, "z": [], "xy": [7, 1, 1, 9, 2, 5, 9], "av": {"1": "0"}},
            "1_d": {"vid": "1", "flg": 0, "z": [], "xy": [9, 30, 30, 40, 30, 35, 35], "av": {"1": "1"}},
        },
    }
    (root3 / "via3.json").write_text(json.dumps(via3, indent=1))
    out.append(_seed("via", "via-synthetic-3", root3, "via3.json", {}, extra=(("via3.json", "json"),)))
    if shared is not None:
        for name, n_images in (("via1_unit_test_annotation2.json", None), ("via2_sherlock_tracks.json", 8)):
            dst = cache / f"via_shared_{name[:4]}"
            dst.mkdir()
            shutil.copyfile(shared / "formats" / "via" / name, dst / name)
            doc = json.loads((dst / name).read_text())
            meta = doc.get("_via_img_metadata", doc)
            for k, entry in enumerate(meta.values()):
                if n_images is not None and k >= n_images:
                    break
                img = dst / entry["filename"]
                img.parent.mkdir(parents=True, exist_ok=True)
                Image.new("L", (400, 300)).save(img, format="PNG")
            out.append(Seed("via", f"via-shared-{name[:4]}", dst, name, ((name, "json"),)))
    return out


def _labelme_seeds(cache: Path) -> list[Seed]:
    from PIL import Image

    root = cache / "labelme_synth"
    root.mkdir()
    Image.new("L", (48, 32)).save(root / "a.png")
    bitmap = np.zeros((4, 5), np.uint8)
    bitmap[1:3, 1:4] = 255
    shapes = [
        {"label": "cavity", "points": [[10, 10], [13, 14]], "shape_type": "circle", "group_id": None,
         "flags": {"faint": True}, "description": "d"},
        {"label": "loop", "points": [[9, 2], [1, 8]], "shape_type": "rectangle", "group_id": 2, "flags": {}},
        {"label": "precipitate", "points": [[1, 1], [9, 2], [5, 9]], "shape_type": "polygon"},
        {"label": "line", "points": [[1, 1], [9, 2], [20, 9]], "shape_type": "linestrip"},
        {"label": "line", "points": [[1, 1], [9, 2]], "shape_type": "line"},
        {"label": "cavity", "points": [[3, 3]], "shape_type": "point"},
        {"label": "cavity", "points": [[20, 20], [24, 23]], "shape_type": "mask",
         "mask": base64.b64encode(_png_bytes(bitmap)).decode()},
        {"label": "loop", "points": [[30, 5], [40, 8], [38, 15], [28, 12]], "shape_type": "oriented_rectangle"},
    ]
    doc = {"version": "5.4.1", "flags": {"good": True}, "shapes": shapes, "imagePath": "a.png",
           "imageData": None, "imageHeight": 32, "imageWidth": 48}
    (root / "a.json").write_text(json.dumps(doc, indent=1))
    small = np.zeros((12, 16), np.uint8)
    doc_b = {"version": "4.0.0", "flags": {}, "shapes": shapes[:2], "imagePath": "../sub/b.png",
             "imageData": base64.b64encode(_png_bytes(small)).decode()}
    (root / "sub").mkdir()
    (root / "sub" / "b.json").write_text(json.dumps(doc_b, indent=1))
    return [_seed("labelme", "labelme-synthetic", root, "", {".json": "json"})]


def _labelbox_seeds(cache: Path) -> list[Seed]:
    from PIL import Image

    root = cache / "labelbox_synth"
    root.mkdir()
    Image.new("L", (50, 40)).save(root / "tem_001.png")
    mask = np.zeros((40, 50), np.uint8)
    mask[5:9, 10:14] = 255
    (root / "masks").mkdir()
    (root / "masks" / "f5.png").write_bytes(_png_bytes(mask))
    objects = [
        {"feature_id": "f1", "name": "loop", "annotation_kind": "ImageBoundingBox",
         "classifications": [{"name": "habit", "radio_answer": {"name": "111", "classifications": []}},
                             {"name": "notes", "text_answer": {"content": "faint"}}],
         "bounding_box": {"top": 12.64, "left": 20.96, "height": 4.25, "width": 1.44}},
        {"feature_id": "f2", "name": "cavity", "annotation_kind": "ImagePolygon",
         "polygon": [{"x": 14.7, "y": 11.8}, {"x": 14.2, "y": 10.4}, {"x": 5.7, "y": 11.8}, {"x": 14.7, "y": 11.8}]},
        {"feature_id": "f3", "name": "dislocation", "annotation_kind": "ImagePolyline",
         "line": [{"x": 1, "y": 2}, {"x": 30, "y": 20}]},
        {"feature_id": "f4", "name": "cavity", "annotation_kind": "ImagePoint", "point": {"x": 3, "y": 4}},
        {"feature_id": "f5", "name": "void", "annotation_kind": "ImageSegmentationMask",
         "mask": {"url": "masks/f5.png"}},
    ]
    classifications = [{"name": "quality", "radio_answer": {"name": "good"}},
                       {"name": "tags", "checklist_answers": [{"name": "a"}, {"name": "b"}]}]
    rows = []
    for k, objs in enumerate((objects, objects[:2], [])):
        rows.append({
            "data_row": {"id": f"ck{k}", "external_id": "tem_001.png" if k == 0 else f"tem_00{k + 1}.png",
                         "row_data": "https://storage.example.com/x.png"},
            "media_attributes": {"height": 40, "width": 50, "mime_type": "image/png"},
            "projects": {"p1": {"name": "TEM", "labels": [{"annotations": {
                "objects": objs, "classifications": classifications if k == 0 else [],
                "relationships": []}}]}},
        })
    (root / "export.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [Seed("labelbox", "labelbox-synthetic", root, "export.ndjson",
                 (("export.ndjson", "ndjson"), ("masks/f5.png", "png")), (("masks", None),))]


def _masks_seeds(cache: Path, ds) -> list[Seed]:
    from defectlab.formats.mask_images import write_instance_tiffs
    from defectlab.formats.unet import write_unet

    out = []
    kinds = {".png": "png", ".tif": "tiff", ".json": "json", ".csv": "csv", ".txt": "txt"}
    root = cache / "masks_unet"
    write_unet(ds, root)
    files = tuple(f for f in _files(root, kinds) if not f[0].startswith("images/"))
    out.append(Seed("masks", "masks-unet", root, "", files))
    root = cache / "masks_tiff"
    write_instance_tiffs(ds, root)
    files = tuple(f for f in _files(root, kinds) if not f[0].startswith("images/"))
    out.append(Seed("masks", "masks-instance-tiff", root, "", files))
    out.append(Seed("masks", "masks-single-tiff", root, files[-1][0] if files[-1][1] == "tiff" else
                    next(f for f, k in files if k == "tiff"), files))
    # CVAT "Segmentation mask 1.1"
    from defectlab.formats.mask_images import voc_colormap

    root = cache / "masks_cvat"
    for sub in ("SegmentationClass", "SegmentationObject", "ImageSets/Segmentation", "JPEGImages"):
        (root / sub).mkdir(parents=True)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                       "cavity:250,50,83::\nloop:61,61,245::\n")
    klass = np.zeros((24, 32, 3), np.uint8)
    klass[2:6, 3:9] = (250, 50, 83)
    klass[10:20, 12:16] = (61, 61, 245)
    obj = np.zeros((24, 32, 3), np.uint8)
    cmap = voc_colormap(3)
    obj[2:6, 3:9] = cmap[1]
    obj[10:20, 12:16] = cmap[2]
    (root / "SegmentationClass" / "a.png").write_bytes(_png_bytes(klass))
    (root / "SegmentationObject" / "a.png").write_bytes(_png_bytes(obj))
    (root / "JPEGImages" / "a.png").write_bytes(_png_bytes(np.zeros((24, 32), np.uint8)))
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("a\n")
    files = tuple(f for f in _files(root, kinds) if not f[0].startswith("JPEGImages/"))
    out.append(Seed("masks", "masks-cvat", root, "", files))
    return out


def build_seeds(cache: Path, shared: Path | None) -> list[Seed]:
    """Every seed export, written under ``cache`` (an empty folder); ``shared``: ../shared/data."""
    cache.mkdir(parents=True, exist_ok=True)
    ds, rich = _synthetic(cache)
    return [
        *_cvat_seeds(cache, shared, rich),
        *_coco_seeds(cache, shared, rich),
        *_yolo_seeds(cache, shared, ds),
        *_via_seeds(cache, shared),
        *_labelme_seeds(cache),
        *_labelbox_seeds(cache),
        *_masks_seeds(cache, ds),
    ]


# ---------------------------------------------------------------------------------------------
# Mutations: each takes (bytes, Random) and returns (bytes, what was done)
# ---------------------------------------------------------------------------------------------

#: Number texts that break readers: not finite, out of range, too many digits, not numbers.
BAD_NUMBERS = (
    "NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "1e308", "-1e308", "1e309", "1e-400", "-1",
    "-0", "0", "1" + "0" * 30, "9" * 5000, "-" + "9" * 400, "0.5", "abc", "", "1e1000000", "0x10",
    "1_0", "+1", ".", "--1", "1e", "\u0661", "1000000", "100000000000", "4294967296", "-2147483649",
)
#: Raw JSON values (text) put in place of any value of a JSON document.
BAD_JSON = (
    "NaN", "Infinity", "-Infinity", "1e308", "-1e308", "1e400", "-1", "0", "-0", "1" + "0" * 30,
    "9" * 5000, "1.5", '"abc"', '""', "null", "true", "false", "[]", "{}", "[" * 150 + "]" * 150,
    "[" * 50_000 + "]" * 50_000, '"' + "x" * 100_000 + '"', '"../../../etc/passwd"', '"/etc/passwd"',
    '"\\u0000"', '"\\ud800"', '{"a": ' * 120 + "1" + "}" * 120, "[1e308, -1e308, 1e308]",
    '[[0, 0], [1e308, 0], [0, 1e308]]', "1000000", "-1000000", "100000000000",
)
#: Attribute or element texts put into XML.
BAD_XML = (
    "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e400", "-1", "", "abc", "1" * 5000, "0", "-0",
    "1e-400", "1,2;3", "&amp;", "&foo;", "&#0;", "<", "1.5", "1000000", "1000000000", "0,0;1e308,0;0,1e308",
    "nan,nan;1,1;2,2", "1,1", "1;2", "../../etc/passwd", "/etc/passwd", "\u00e9", "true",
)
ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252")


def _pick_span(data: bytes, rnd: random.Random) -> tuple[int, int]:
    if not data:
        return 0, 0
    a = rnd.randrange(len(data))
    return a, min(len(data), a + rnd.choice((1, 2, 8, 64, 1024)))


def m_flip(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    if not data:
        return b"\x00", "flip (empty -> NUL)"
    buf = bytearray(data)
    n = rnd.choice((1, 1, 2, 8, 32))
    for _ in range(n):
        i = rnd.randrange(len(buf))
        buf[i] ^= 1 << rnd.randrange(8) if rnd.random() < 0.7 else rnd.randrange(1, 256)
    return bytes(buf), f"flip {n} byte(s)"


def m_truncate(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    n = rnd.randrange(len(data) + 1) if data else 0
    return data[:n], f"truncate to {n} bytes"


def m_empty(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    return rnd.choice((b"", b" \n", b"\xef\xbb\xbf", b"\x00")), "empty"


def m_splice(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    a, b = _pick_span(data, rnd)
    op = rnd.choice(("delete", "duplicate", "garbage", "double"))
    if op == "delete":
        return data[:a] + data[b:], f"delete bytes {a}:{b}"
    if op == "duplicate":
        return data[:b] + data[a:b] + data[b:], f"duplicate bytes {a}:{b}"
    if op == "double":
        return data + data, "file written twice"
    junk = bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 4, 64))))
    return data[:a] + junk + data[a:], f"insert {len(junk)} random bytes at {a}"


def m_lines(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    lines = data.split(b"\n")
    if len(lines) < 2:
        return m_splice(data, rnd)
    i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
    op = rnd.choice(("delete", "duplicate", "swap", "long"))
    if op == "delete":
        del lines[i]
    elif op == "duplicate":
        lines.insert(i, lines[j])
    elif op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines.insert(i, lines[j] * 2000)
    return b"\n".join(lines), f"{op} line {i + 1}"


def m_encoding(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    text = data.decode("utf-8", "replace")
    op = rnd.choice(ENCODINGS + ("bom", "invalid", "nul"))
    if op == "bom":
        return b"\xef\xbb\xbf" + data, "UTF-8 BOM added"
    if op == "invalid":
        i = rnd.randrange(len(data) + 1)
        return data[:i] + rnd.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80")) + data[i:], "invalid UTF-8"
    if op == "nul":
        i = rnd.randrange(len(data) + 1)
        return data[:i] + b"\x00" + data[i:], "NUL byte"
    if op in ("latin-1", "cp1252"):
        i = rnd.randrange(len(text) + 1)
        text = text[:i] + "\u00e9\u00b5m" + text[i:]  # "éµm": not ASCII
    return text.encode(op, "replace"), f"re-encoded as {op}"


_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def m_number(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    found = list(_NUMBER.finditer(data))
    if not found:
        return m_splice(data, rnd)
    m = rnd.choice(found)
    bad = rnd.choice(BAD_NUMBERS)
    return data[: m.start()] + bad.encode() + data[m.end():], f"number {m.group()[:20]!r} -> {bad[:20]!r}"


_SENTINEL = "\u2603sentinel\u2603"


def _json_nodes(doc: Any, limit: int = 20_000) -> list[tuple[Any, Any]]:
    """(container, key) of values in a JSON document, breadth first, at most ``limit``."""
    out: list[tuple[Any, Any]] = []
    queue = deque([doc])
    while queue and len(out) < limit:
        node = queue.popleft()
        pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in pairs:
            out.append((node, k))
            if isinstance(v, (dict, list)):
                queue.append(v)
    return out


def _json_text_mutation(text: str, rnd: random.Random) -> tuple[str, str] | None:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    nodes = _json_nodes(doc)
    if not nodes:
        return None
    container, key = rnd.choice(nodes)
    op = rnd.choice(("replace", "replace", "replace", "delete", "duplicate", "rename", "wrap", "swap"))
    raw = None
    if op == "replace":
        raw = rnd.choice(BAD_JSON)
        container[key] = _SENTINEL
    elif op == "delete":
        del container[key]
    elif op == "duplicate":
        if isinstance(container, list):
            container.insert(key, json.loads(json.dumps(container[key])))
        else:
            raw = None
            dump = json.dumps(container[key])
            container[key] = _SENTINEL
            raw = dump + ", " + json.dumps(key) + ": " + dump  # the key twice in one object
            raw = raw  # 'key: v, key: v' via the sentinel below
    elif op == "rename" and isinstance(container, dict):
        container[key + rnd.choice(("_", "X", ""))[:1] if isinstance(key, str) else key] = container.pop(key)
    elif op == "wrap":
        container[key] = rnd.choice(([container[key]], {"value": container[key]}))
    else:  # swap with another value of the document
        other_c, other_k = rnd.choice(nodes)
        try:
            container[key], other_c[other_k] = other_c[other_k], container[key]
        except (KeyError, IndexError):
            pass
    out = json.dumps(doc, allow_nan=True, ensure_ascii=rnd.random() < 0.5)
    if raw is not None:
        if op == "duplicate":
            # replace  "key": "<sentinel>"  with  "key": v, "key": v
            out = out.replace(json.dumps(key) + ": " + json.dumps(_SENTINEL), raw, 1)
            out = out.replace(json.dumps(_SENTINEL), "null", 1)
        else:
            out = out.replace(json.dumps(_SENTINEL, ensure_ascii=False), raw, 1).replace(json.dumps(_SENTINEL), raw, 1)
    return out, f"json {op} at {str(key)[:30]!r}" + (f" -> {raw[:30]!r}" if raw and op == "replace" else "")


def m_json(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    done = _json_text_mutation(data.decode("utf-8", "replace"), rnd)
    if done is None:
        return m_number(data, rnd)
    return done[0].encode("utf-8", "surrogatepass"), done[1]


def m_ndjson(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    lines = data.split(b"\n")
    idx = [i for i, line in enumerate(lines) if line.strip()]
    if not idx:
        return m_splice(data, rnd)
    i = rnd.choice(idx)
    done = _json_text_mutation(lines[i].decode("utf-8", "replace"), rnd)
    if done is None:
        return m_number(data, rnd)
    lines[i] = done[0].replace("\n", " ").encode("utf-8", "surrogatepass")
    return b"\n".join(lines), f"line {i + 1}: {done[1]}"


_ATTR = re.compile(rb'(\s[\w:.-]+=")([^"]*)(")')
_TEXT = re.compile(rb">([^<]+)<")


def m_xml(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    op = rnd.choice(("attr", "attr", "attr", "text", "drop-attr", "nest", "doctype", "rename", "entity"))
    if op in ("attr", "drop-attr"):
        found = list(_ATTR.finditer(data))
        if found:
            m = rnd.choice(found)
            if op == "drop-attr":
                return data[: m.start()] + data[m.end():], f"xml drop attribute {m.group(1)[:20]!r}"
            bad = rnd.choice(BAD_XML).encode()
            return data[: m.start(2)] + bad + data[m.end(2):], f"xml {m.group(1)[:20]!r} -> {bad[:20]!r}"
    if op == "text":
        found = [m for m in _TEXT.finditer(data) if m.group(1).strip()]
        if found:
            m = rnd.choice(found)
            bad = rnd.choice(BAD_XML).encode()
            return data[: m.start(1)] + bad + data[m.end(1):], f"xml text {m.group(1)[:20]!r} -> {bad[:20]!r}"
    starts = [m.end() for m in re.finditer(rb"<[\w]+[^<>]*>", data)]
    if op == "nest" and starts:
        n = rnd.choice((50, 300, 100_000))
        i = rnd.choice(starts)
        return data[:i] + b"<x>" * n + b"</x>" * n + data[i:], f"xml {n} nested elements"
    if op == "doctype":
        decl = rnd.choice((
            b'<!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;">]>',
            b'<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
            b'<!DOCTYPE a SYSTEM "http://example.invalid/evil.dtd">',
            b'<!DOCTYPE a [<!ENTITY % p SYSTEM "http://example.invalid/p.dtd"> %p;]>',
        ))
        at = data.find(b"<annotations")
        at = at if at >= 0 else 0
        return data[:at] + decl + b"\n" + data[at:], "xml DOCTYPE"
    if op == "entity" and starts:
        i = rnd.choice(starts)
        return data[:i] + rnd.choice((b"&xxe;", b"&lol9;", b"&#x0;", b"&amp")) + data[i:], "xml entity reference"
    if op == "rename" and starts:
        m = rnd.choice(list(re.finditer(rb"<(\w+)", data)))
        return data[: m.start(1)] + b"zz" + data[m.end(1):], f"xml rename <{m.group(1)[:20]!r}>"
    return m_lines(data, rnd)


def m_yaml(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    op = rnd.choice(("value", "value", "aliases", "nest", "tag", "number"))
    if op == "aliases":
        bomb = b"a: &a [x, x, x, x, x, x, x, x, x]\n"
        for k in range(1, 9):
            prev = chr(ord("a") + k - 1).encode()
            cur = chr(ord("a") + k).encode()
            bomb += cur + b": &" + cur + b" [" + b", ".join([b"*" + prev] * 9) + b"]\n"
        key = rnd.choice((b"names", b"train", b"i"))
        return data + b"\n" + bomb + key + b": *i\n", f"yaml alias bomb as {key.decode()}"
    if op == "nest":
        n = rnd.choice((200, 100_000))
        return data + b"\nnames: " + b"[" * n + b"]" * n + b"\n", f"yaml {n} nested lists"
    if op == "tag":
        return data + b"\nx: !!python/object/apply:os.system ['echo pwned']\n", "yaml python tag"
    if op == "value":
        lines = data.split(b"\n")
        idx = [i for i, line in enumerate(lines) if b":" in line]
        if idx:
            i = rnd.choice(idx)
            head = lines[i].split(b":", 1)[0]
            bad = rnd.choice((b"", b"-1", b"[]", b"{}", b"null", b"/", b"/etc", b"../../..", b"1e400",
                              b".nan", b"[a, b, a]", b"{0: a, 2: b}", b"{x: a}", b"99999", b"true", b"'\x00'"))
            lines[i] = head + b": " + bad
            return b"\n".join(lines), f"yaml {head[:20]!r} -> {bad[:20]!r}"
    return m_number(data, rnd)


# -- images ----------------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def huge_png(width: int, height: int, *, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A PNG header declaring ``width x height`` with a tiny (valid-CRC) zlib stream of zeros."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def huge_tiff(width: int, height: int, *, bits: int = 8) -> bytes:
    """A little-endian TIFF whose one strip declares ``width x height`` px, deflated from 1 KiB."""
    data = zlib.compress(b"\x00" * 1024)
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bits), (259, 3, 1, 8),  # deflate
        (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(data)),
    ]
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_at
        if typ == 3:
            ifd += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_at) + ifd + data


def m_png(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    op = rnd.choice(("flip", "flip", "truncate", "huge", "odd", "header"))
    if op == "huge":
        w, h = rnd.choice(((10**6, 10**6), (70_000, 1), (1, 70_000), (0, 0), (2**31 - 1, 2**31 - 1), (40_000, 40_000)))
        return huge_png(w, h), f"png declaring {w} x {h}"
    if op == "odd":
        from PIL import Image

        arr = rnd.choice((
            np.full((5, 7), -3, np.int32), np.zeros((5, 7, 4), np.uint8), np.ones((5, 7), np.float32),
            np.zeros((5, 7), np.uint16) + 65535, np.zeros((1, 1), np.uint8), np.full((5, 7, 3), 7, np.uint8),
        ))
        buf = io.BytesIO()
        try:
            Image.fromarray(arr).save(buf, format=rnd.choice(("PNG", "TIFF", "BMP", "GIF")))
        except (OSError, ValueError, TypeError, KeyError):
            return m_flip(data, rnd)
        return buf.getvalue(), f"image of {arr.dtype} {arr.shape}"
    if op == "header" and len(data) > 33:
        i = rnd.randrange(8, 33)
        buf = bytearray(data)
        buf[i] = rnd.randrange(256)
        body = bytes(buf[12:29])
        buf[29:33] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)  # keep the IHDR CRC valid
        return bytes(buf), f"png IHDR byte {i} changed (valid CRC)"
    if op == "truncate":
        return m_truncate(data, rnd)
    return m_flip(data, rnd)


def m_tiff(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    op = rnd.choice(("flip", "flip", "truncate", "huge", "odd"))
    if op == "huge":
        w, h = rnd.choice(((10**6, 10**6), (70_000, 1), (40_000, 40_000), (0, 5)))
        return huge_tiff(w, h, bits=rnd.choice((8, 16, 32))), f"tiff declaring {w} x {h}"
    if op == "odd":
        import tifffile

        arr = rnd.choice((
            np.full((5, 7), -3, np.int32), np.ones((5, 7), np.float32), np.zeros((3, 5, 7), np.uint16),
            np.zeros((5, 7), np.int64) + 2**40, np.zeros((0, 7), np.uint8), np.zeros((5, 7, 3), np.uint8),
            np.zeros((5, 7), np.complex64),
        ))
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "writing zero-size array to nonconformant TIFF": wanted
            tifffile.imwrite(buf, arr)
        return buf.getvalue(), f"tiff of {arr.dtype} {arr.shape}"
    if op == "truncate":
        return m_truncate(data, rnd)
    return m_flip(data, rnd)


def m_zip(data: bytes, rnd: random.Random) -> tuple[bytes, str]:
    op = rnd.choice(("member", "member", "member", "flip", "truncate", "evil"))
    if op in ("flip", "truncate"):
        return (m_flip if op == "flip" else m_truncate)(data, rnd)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(i, zf.read(i)) for i in zf.infolist()]
    except Exception:  # noqa: BLE001 - an earlier mutation broke the archive: flip bytes instead
        return m_flip(data, rnd)
    buf = io.BytesIO()
    how = "zip"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if op == "member" and members:
            k = rnd.randrange(len(members))
            info, body = members[k]
            kind = _kind_of(info.filename)
            body, how = mutate(body, kind, rnd, depth=1)
            members[k] = (info, body)
            how = f"zip member {info.filename}: {how}"
        for info, body in members:
            zf.writestr(info.filename, body)
        if op == "evil":
            name = rnd.choice(("../evil.xml", "/etc/evil.json", "a/../../x.png", "C:/x.json", "a\x00b"))
            try:
                zf.writestr(name, b"<annotations/>")
                how = f"zip member {name!r} added"
            except ValueError:
                how = "zip rewritten"
    return buf.getvalue(), how


def _kind_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return {".xml": "xml", ".json": "json", ".ndjson": "ndjson", ".yaml": "yaml", ".yml": "yaml", ".txt": "txt",
            ".csv": "csv", ".png": "png", ".jpg": "png", ".tif": "tiff", ".tiff": "tiff", ".zip": "zip"}.get(suffix, "bin")


_GENERIC = (m_flip, m_truncate, m_empty, m_splice)
_TEXT_OPS = (m_lines, m_encoding, m_number)
_BY_KIND: dict[str, tuple] = {
    "xml": (m_xml, m_xml, m_xml, *_TEXT_OPS, *_GENERIC),
    "json": (m_json, m_json, m_json, m_json, *_TEXT_OPS, *_GENERIC),
    "ndjson": (m_ndjson, m_ndjson, m_ndjson, m_ndjson, *_TEXT_OPS, *_GENERIC),
    "yaml": (m_yaml, m_yaml, m_yaml, *_TEXT_OPS, *_GENERIC),
    "txt": (m_number, m_number, m_lines, m_encoding, *_GENERIC),
    "csv": (m_number, m_lines, m_encoding, *_GENERIC),
    "png": (m_png, m_png, m_png, m_flip, m_truncate, m_empty),
    "tiff": (m_tiff, m_tiff, m_tiff, m_flip, m_truncate, m_empty),
    "zip": (m_zip, m_zip, m_zip, m_zip, m_flip, m_truncate),
    "bin": _GENERIC,
}


def mutate(data: bytes, kind: str, rnd: random.Random, depth: int = 0) -> tuple[bytes, str]:
    """``data`` (a file of ``kind``) changed by 1 to 3 mutations; returns it and what was done."""
    steps = []
    for _ in range(1 if depth else rnd.choice((1, 1, 1, 2, 3))):
        op = rnd.choice(_BY_KIND.get(kind, _GENERIC))
        data, how = op(data, rnd)
        steps.append(how)
    return data, "; ".join(steps)


# ---------------------------------------------------------------------------------------------
# Running one case
# ---------------------------------------------------------------------------------------------


class Timeout(BaseException):
    """Raised by :func:`time_limit` (a BaseException, so no ``except Exception`` swallows it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Timeout` in the main thread after ``seconds`` (SIGALRM)."""

    def fire(_sig, _frame):
        raise Timeout(f"no answer after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def memory_cap(extra_bytes: int) -> Iterator[None]:
    """Cap this process's address space at its current size + ``extra_bytes`` (Linux).

    A bug that allocates without bound then raises MemoryError here (counted as a crash)
    instead of waking the machine's OOM killer.
    """
    try:
        with open("/proc/self/statm") as fh:
            vsz = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vsz + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _prepare(seed: Seed, rnd: random.Random, work: Path) -> tuple[Path, str, str]:
    root = work / seed.name
    if root.exists():
        shutil.rmtree(root)
    _copy_tree(seed.root, root)
    rel, kind = rnd.choice(seed.files)
    data = (root / rel).read_bytes()
    new, how = mutate(data, kind, rnd)
    (root / rel).write_bytes(new)
    return root, rel, how


def _use(ds) -> None:
    """What a user does next with a Dataset: class index, masks of every (bounded) item."""
    from defectlab.raster import instance_labels, semantic_mask

    index = ds.class_index()
    for item in ds.items:
        h, w = item.size_hw
        if h * w <= 1 << 22:
            semantic_mask(item, index)
            instance_labels(item)


def run_case(seed: Seed, rnd: random.Random, work: Path, *, seconds: float = 20.0) -> Case:
    """Mutate one file of a copy of ``seed`` under ``work``, read it, and classify the outcome."""
    root, rel, how = _prepare(seed, rnd, work)
    detect = rnd.random() < 0.2  # one case in five lets defectlab detect the format (the sniffers)
    return check_read(seed, root, rel, [how], detect=detect, seconds=seconds)


def check_read(seed: Seed, root: Path, rel: str, how: list[str], *, detect: bool, seconds: float = 20.0) -> Case:
    """Read the (mutated) copy of ``seed`` at ``root`` (its file ``rel`` changed as ``how`` says),
    with the seed's format or, with ``detect``, the format detected; classify the outcome."""
    import defectlab
    from defectlab.errors import DefectlabError, ParseError

    case = Case(seed.name, seed.reader, rel, how + (["format detected"] if detect else []), "ok")
    options = {k: (root / "masks" if k == "masks" else v) for k, v in seed.options}
    start = time.perf_counter()
    try:
        with time_limit(seconds), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = defectlab.read(root / seed.target, format=None if detect else seed.reader,
                                **({} if detect else options))
            _use(ds)
    except Timeout as err:
        case.outcome, case.error, case.detail = "timeout", err, str(err)
    except DefectlabError as err:
        case.outcome, case.error = "error", err
        text = str(err)
        case.named_file = Path(rel).name in text
        named = str(root) in text or (isinstance(err, ParseError) and str(root) in err.path)
        if not named:
            case.outcome, case.detail = "crash", f"the error names no file of the export: {text[:300]}"
    except BaseException as err:  # noqa: BLE001 - what the fuzzing is here to find
        if isinstance(err, KeyboardInterrupt):
            raise
        case.outcome, case.error = "crash", err
        case.detail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
    case.seconds = time.perf_counter() - start
    return case
