"""The notebook-first API (:mod:`defectlab.api`): same names and defaults as the library and the
CLI, light to import, a clear message without torch, and each wrapper doing what it says."""

from __future__ import annotations

import inspect
import subprocess
import sys
import zipfile
from enum import Enum
from pathlib import Path

import numpy as np
import pytest
import typer
import typer.testing
from PIL import Image

from defectlab import api
from defectlab.errors import OutputError
from defectlab.model import Ellipse, Item


def _params(fn):
    return inspect.signature(fn).parameters


def _library():
    """(api function, the library function it wraps)."""
    from defectlab.dl import model_io, predict, train
    from defectlab.formats import read
    from defectlab.measurement import evaluate, measure
    from defectlab.preparation import pipeline
    from defectlab.qc import check, fix

    return [(api.read, read), (api.check, check), (api.fix, fix), (api.prepare, pipeline.prepare),
            (api.train_unet, train.train_unet), (api.train_maskrcnn, train.train_maskrcnn),
            (api.load_model, model_io.load_model), (api.predict, predict.predict_images),
            (api.measure, measure), (api.evaluate, evaluate)]


@pytest.mark.parametrize("index", range(10))
def test_defaults_are_the_library_defaults(index):
    ours, theirs = _library()[index]
    mine, lib = _params(ours), _params(theirs)
    shared = [n for n, p in mine.items() if p.default is not inspect.Parameter.empty and n in lib]
    assert shared, f"{ours.__name__}: no keyword shared with {theirs.__module__}.{theirs.__name__}"
    for name in shared:
        expected = True if name == "progress" else lib[name].default  # notebooks show progress, like the CLI
        assert mine[name].default == expected, f"{ours.__name__}({name}=): {mine[name].default!r} != {expected!r}"
    # every library keyword is reachable: named here, or passed through **options
    passes_on = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in mine.values())
    missing = [n for n, p in lib.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in mine]
    assert passes_on or not missing, f"{ours.__name__} cannot pass {missing}"


#: CLI command -> (api function, CLI parameter name -> API parameter name), for the commands whose
#: options are not an options dataclass yet
CLI = {
    "synth": (api.synthetic, {}),
    "check": (api.check, {"hole_area": "hole_area_px", "min_area": "min_area_px",
                          "outside_tolerance": "outside_tolerance_px", "edge": "edges",
                          "image_size": "image_size_hw"}),
    "prepare": (api.prepare, {}),
    "train": (api.train_unet, {"tile": "tile_size"}),
    "predict": (api.predict, {}),
}


def _options_commands():
    """CLI command -> (api function, library function, options class): one dataclass for all three."""
    from defectlab import measurement
    from defectlab.measurement.options import EvaluateOptions, MeasureOptions

    return {"measure": (api.measure, measurement.measure, MeasureOptions),
            "evaluate": (api.evaluate, measurement.evaluate, EvaluateOptions)}


def _plain(value):
    value = value.value if isinstance(value, Enum) else value
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _click_command(command):
    from defectlab.cli import app

    group = typer.main.get_command(app)
    return group.get_command(typer.Context(group), command)


@pytest.mark.parametrize("command", sorted(CLI))
def test_defaults_are_the_cli_defaults(command):
    click_command = _click_command(command)
    fn, renames = CLI[command]
    mine = _params(fn)
    compared = 0
    for p in click_command.params:
        name = renames.get(p.name, p.name)
        if name not in mine or p.default is None or mine[name].default is inspect.Parameter.empty:
            continue  # a CLI default of None means "the library's default"
        assert _plain(mine[name].default) == _plain(p.default), f"{command} --{p.name}"
        compared += 1
    assert compared >= 3, f"{command}: only {compared} defaults compared"
    if command == "train":  # the architecture-specific options of maskrcnn
        maskrcnn = _params(api.train_maskrcnn)
        by_name = {p.name: p.default for p in click_command.params}
        assert maskrcnn["backbone"].default == by_name["backbone"].value
        assert maskrcnn["pretrained"].default == by_name["pretrained"]


@pytest.mark.parametrize("command", ["measure", "evaluate"])
def test_options_are_declared_once_for_cli_api_and_library(command):
    """The CLI's flags, their defaults and the API's and library's keywords are the dataclass's fields."""
    import dataclasses

    from defectlab.commands._options import cli_fields, flag_of, from_cli

    fn, lib, cls = _options_commands()[command]
    click_command = _click_command(command)
    by_name = {p.name: p for p in click_command.params}
    fields = cli_fields(cls)
    assert len(fields) >= 3, f"{command}: only {len(fields)} options"
    for f in fields:
        assert f.name in by_name, f"{command}: no flag for {cls.__name__}.{f.name}"
        assert flag_of(f) in by_name[f.name].opts
    # the defaults the CLI parses when no flag is given are the dataclass's defaults
    assert from_cli(cls, {f.name: by_name[f.name].default for f in fields}) == cls()
    # the API and the library take the dataclass, and each field by its name
    for callable_ in (fn, lib):
        params = _params(callable_)
        assert params["options"].default is None
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        assert not [f.name for f in dataclasses.fields(cls) if f.name in params], "a field re-declared"
    help_text = typer.testing.CliRunner().invoke(
        __import__("defectlab.cli", fromlist=["app"]).app, [command, "--help"], env={"COLUMNS": "200"}).output
    for f in fields:
        if f.default is not None and not isinstance(f.default, bool):
            shown = f.metadata["show"](f.default) if f.metadata["show"] else str(f.default)
            assert shown in help_text, f"{command} --help does not show the default of {flag_of(f)}"


def test_import_defectlab_stays_light():
    code = ("import sys, defectlab, defectlab.api, defectlab.notebook; "
            "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib', 'dask', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("fn, missing", [
    (lambda: api.train_unet("data", "out"), "torch"),
    (lambda: api.train_maskrcnn("data", "out"), "torch"),
    (lambda: api.load_model("model"), "torch"),
    (lambda: api.predict("model", "images", "out"), "torch"),
])
def test_torch_missing_says_how_to_install_it(monkeypatch, fn, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError, match=r"needs torch, which is not installed here: pip install 'defectlab\[torch\]'"):
        fn()


def test_torchvision_missing_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match=r"train_maskrcnn needs torchvision.*defectlab\[torch\]"):
        api.train_maskrcnn("data", "out")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "export"
    api.synthetic(out, n=2, size=(48, 80), n_cavities=3, n_loops=0, n_precipitates=0, n_lines=0, seed=5)
    return out


def test_synthetic_writes_the_size_and_defects_asked_for(export):
    ds = api.read(export)
    assert len(ds) == 2
    for item in ds:
        assert item.size_hw == (48, 80)
        assert 1 <= len(item.shapes) <= 3 and {s.label for s in item.shapes} == {"cavity"}
        with Image.open(item.image.path) as im:
            assert im.size == (80, 48)  # PIL: (width, height)


def test_read_finds_images_elsewhere(export, tmp_path):
    xml = tmp_path / "annotations.xml"
    xml.write_bytes((export / "annotations.xml").read_bytes())
    assert all(it.image is None for it in api.read(xml))
    found = api.read(xml, images=export / "images")
    assert [it.image.path for it in found] == [export / "images" / it.name for it in found]
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as zf:  # the zip CVAT downloads
        zf.write(xml, "annotations.xml")
        for p in (export / "images").iterdir():
            zf.write(p, f"images/{p.name}")
    assert [it.image.member for it in api.read(tmp_path / "task.zip")] == [f"images/{it.name}" for it in found]


def test_check_writes_its_report_once_unless_overwrite(export, tmp_path):
    report = tmp_path / "report.html"
    result = api.check(export, report=report, progress=False)
    assert report.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    with pytest.raises(OutputError, match="exists; pass overwrite=True"):
        api.check(export, report=report, progress=False)
    again = api.check(export, report=report, overwrite=True, progress=False)
    assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in result.findings]


def _ellipse_pixels(e: Ellipse, size_hw) -> int:
    """Pixels whose centers lie in an axis-aligned ellipse (the rule, written independently)."""
    yy, xx = np.mgrid[0:size_hw[0], 0:size_hw[1]] + 0.5
    return int((((xx - e.cx) / e.rx) ** 2 + ((yy - e.cy) / e.ry) ** 2 <= 1).sum())


def test_measure_counts_pixels_by_the_center_rule_and_writes_when_asked(tmp_path):
    e = Ellipse(label="cavity", cx=20.3, cy=15.7, rx=6.2, ry=4.1)
    from defectlab.model import Dataset, Label

    ds = Dataset((Label("cavity"),), (Item("a.png", (32, 48), (e,)),))
    m = api.measure(ds, pixel_size="0.5nm", out=tmp_path / "m", figures=False, progress=False)
    assert m.defects["area_px"].tolist() == [_ellipse_pixels(e, (32, 48))]
    assert m.defects["area_nm2"].tolist() == [pytest.approx(_ellipse_pixels(e, (32, 48)) * 0.25)]
    assert (tmp_path / "m" / "index.html").is_file() and (tmp_path / "m" / "defects.csv").is_file()


def test_evaluate_scores_a_missed_defect(tmp_path):
    from defectlab.model import Dataset, Label

    a = Ellipse(label="cavity", cx=10, cy=10, rx=4, ry=4)
    b = Ellipse(label="cavity", cx=30, cy=20, rx=5, ry=3)
    truth = Dataset((Label("cavity"),), (Item("a.png", (32, 48), (a, b)),))
    pred = truth.with_items([Item("a.png", (32, 48), (a,))])
    e = api.evaluate(pred, truth, pixel_size="1nm", out=tmp_path / "e", figures=False, progress=False)
    assert (e.overall["tp"], e.overall["fp"], e.overall["fn"]) == (1, 0, 1)
    assert e.overall["precision"] == 1.0 and e.overall["recall"] == 0.5
    n_a, n_b = _ellipse_pixels(a, (32, 48)), _ellipse_pixels(b, (32, 48))
    assert e.overall["pixel_iou"] == pytest.approx(n_a / (n_a + n_b))
    assert (tmp_path / "e" / "summary.json").is_file()


def test_prepare_tiles_every_image(export, tmp_path):
    report = api.prepare(export, tmp_path / "tiles", to="maskrcnn", tile=(24, 40), split=(1, 0, 0), progress=False,
                         preview=False)
    # 48 x 80 images in 24 x 40 tiles: 2 x 2 tiles each
    assert report.counts["train"]["tiles"] == 2 * 4
    assert len(list((tmp_path / "tiles" / "train" / "targets").glob("*.npz"))) == 8


@pytest.fixture(scope="module")
def model_folder(export, tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("model") / "model"
    api.train_unet(export, out, epochs=1, batch_size=2, tile_size=16, base_filters=4, depth=2, min_steps=1,
                   val_split=0, progress=False, plot=False)
    return out


def test_predict_takes_a_model_folder_and_one_image(model_folder, export, tmp_path):
    image = export / "images" / "synthetic_000.png"
    report = api.predict(str(model_folder), image, tmp_path / "pred", device="cpu", progress=False)
    assert [im["name"] for im in report.images] == ["synthetic_000.png"]
    with Image.open(tmp_path / "pred" / "masks" / "synthetic_000.png") as im:
        assert im.size == (80, 48)
    model = api.load_model(model_folder, device="cpu", classes=["cavity", "loop", "precipitate", "dislocation line"])
    expected = model.predict(np.asarray(Image.open(image))).semantic
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pred" / "masks" / "synthetic_000.png")), expected)


def test_show_is_the_notebook_function():
    from defectlab import notebook

    assert api.show is notebook.show
    assert set(api.__all__) >= {"read", "check", "fix", "measure", "evaluate", "prepare", "train_unet",
                                "train_maskrcnn", "load_model", "predict", "synthetic", "show"}
    assert Path(api.__file__).name == "api.py"


def test_measure_and_prepare_stay_functions_beside_their_subpackages():
    """``defectlab.measure`` / ``defectlab.prepare`` are API functions and subpackages: importing a
    submodule later must not rebind the names to the packages (``defectlab/__init__`` imports
    the subpackages before binding the functions)."""
    code = ("import defectlab, defectlab.api; import defectlab.measurement.props, defectlab.preparation.tiling; "
            "from defectlab.measurement import Table; from defectlab.preparation.synthetic import SyntheticConfig; "
            "print(defectlab.measure is defectlab.api.measure, defectlab.prepare is defectlab.api.prepare)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
