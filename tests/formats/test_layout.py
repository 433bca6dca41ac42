"""The shape of formats/: a package per big format (reader and writer apart), one writer
signature, one sniff size, and no private helper of formats/ used from another floor."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import defectlab
from defectlab.formats import FORMATS, format_names

from defectlab.model import Dataset, Ellipse, Item, Label

SRC = Path(defectlab.__file__).parent
PACKAGES = ("cvat_xml", "coco_json", "yolo_txt", "mask_images")
#: The largest module under formats/ (the big four were 1,000-1,200 lines each before the split).
MAX_LINES = 800


def _modules(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, as absolute dotted names (relative ones resolved)."""
    package = ".".join(("defectlab", *path.relative_to(SRC).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names]  # `from ..formats import _archive`
    return out


@pytest.mark.parametrize("name", PACKAGES)
def test_each_big_format_is_a_package_with_its_reader_and_writer_apart(name: str) -> None:
    folder = SRC / "formats" / name
    assert (folder / "read.py").is_file() and (folder / "write.py").is_file()
    package = importlib.import_module(f"defectlab.formats.{name}")
    for public in package.__all__:  # the public names stay where they were
        assert getattr(package, public) is not None


def test_no_module_of_formats_is_a_big_room() -> None:
    sizes = {p.relative_to(SRC).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in _modules(SRC / "formats")}
    assert max(sizes.values()) <= MAX_LINES, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.parametrize("name", format_names(writable=True))
def test_every_writer_takes_dataset_out_and_overwrite_and_returns_a_write_report(name: str, tmp_path: Path) -> None:
    write = FORMATS[name].write
    params = list(inspect.signature(write).parameters.values())
    assert [p.name for p in params[:2]] == ["dataset", "out"]
    overwrite = inspect.signature(write).parameters["overwrite"]
    assert overwrite.kind is inspect.Parameter.KEYWORD_ONLY and overwrite.default is False
    ds = Dataset((Label("cavity"),), (Item("a.png", (16, 16), (Ellipse(label="cavity", cx=8, cy=8, rx=3, ry=2),)),))
    options = {"copy_images": False} if "copy_images" in inspect.signature(write).parameters else {}
    if name in ("unet", "maskrcnn"):  # these need the pixels: give the item an image
        from PIL import Image
        import numpy as np

        from defectlab.model import ImageSource

        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "a.png")
        ds = ds.with_items([Item("a.png", (16, 16), ds[0].shapes, ImageSource(tmp_path / "a.png"))])
    report = write(ds, tmp_path / "out", **options)
    assert type(report).__name__ == "WriteReport" and report.n_items == 1
    with pytest.raises(defectlab.OutputError, match="exists"):
        write(ds, tmp_path / "out", **options)
    assert type(write(ds, tmp_path / "out", overwrite=True, **options)).__name__ == "WriteReport"


def test_one_sniff_size() -> None:
    defined = [p.relative_to(SRC).as_posix() for p in _modules(SRC)
               if "SNIFF_BYTES =" in p.read_text(encoding="utf-8")]
    assert defined == ["formats/_text.py"]


def test_no_private_module_of_formats_is_used_from_another_package() -> None:
    offenders = []
    for path in _modules(SRC):
        if path.is_relative_to(SRC / "formats"):
            continue
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[:2] == ["defectlab", "formats"] and len(parts) > 2 and parts[2].startswith("_"):
                offenders.append(f"{path.relative_to(SRC)}: {mod}")
    assert offenders == []


def test_the_data_model_imports_no_floor_above_it() -> None:
    above = ("formats", "qc", "dl", "preparation", "measurement", "batch", "commands", "cli", "api", "raster")
    offenders = [f"{p.relative_to(SRC)}: {mod}" for p in _modules(SRC / "model") for mod in _imports(p)
                 if mod.split(".")[:2][-1] in above and mod.startswith("defectlab.")]
    assert offenders == []
