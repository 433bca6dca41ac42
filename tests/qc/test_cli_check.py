"""``defectlab check`` end to end: exit codes, --json, --edge, --report, clear errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from defectlab.cli import app
from defectlab.formats import read
from defectlab.formats.cvat_xml import write_cvat
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

runner = CliRunner()

CFG = SyntheticConfig(size_hw=(192, 192), n_cavities=6, n_loops=3, n_precipitates=2, n_lines=1,
                      loop_radius_px=(12.0, 20.0))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A clean export, and two CVAT files beside it with planted problems (same images):
    ``warnings.xml``: every loop drawn 3 px inside its outer edge; ``errors.xml``: the same,
    plus the first shape of the first image drawn twice."""
    root = tmp_path_factory.mktemp("cli_check")
    clean = root / "clean"
    make_synthetic_dataset(clean, n_images=2, config=CFG, seed=21)
    ds = read(clean)
    items = []
    for item in ds:
        shapes = [s.replace(rx=s.rx - 3, ry=s.ry - 3) if s.label == "loop" else s for s in item.shapes]
        items.append(type(item)(item.name, item.size_hw, tuple(shapes), image=item.image, id=item.id))
    loops = {(it.name, i) for it in items for i, s in enumerate(it.shapes) if s.label == "loop"}
    write_cvat(ds.with_items(items), root / "warnings.xml")
    first = items[0]
    items[0] = type(first)(first.name, first.size_hw, first.shapes + first.shapes[:1], image=first.image, id=first.id)
    write_cvat(ds.with_items(items), root / "errors.xml")
    return clean, root, loops


def _json(result):
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.stdout)


def test_clean_export_exits_0(exports):
    clean, _, _ = exports
    result = runner.invoke(app, ["check", str(clean)])
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s), 0 info" in result.output
    assert "guessed from the name" in result.output
    data = _json(runner.invoke(app, ["check", str(clean), "--json"]))
    assert data["findings"] == [] and data["failed"] is False
    assert {e["label"]: (e["edge"], e["how"]) for e in data["edges"]}["loop"] == ("outer", "guess")


def test_findings_exit_codes_and_json(exports):
    clean, root, loops = exports
    images = ["--images", str(clean / "images")]
    result = runner.invoke(app, ["check", str(root / "errors.xml"), *images, "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    got = {(f["image"], f["code"], f["shape"]) for f in data["findings"]}
    first = data["findings"][0]
    assert set(first) >= {"code", "severity", "image", "shape", "message", "location"}
    n_first = len(read(root / "errors.xml", images=clean / "images")[0].shapes)
    expected = {(name, "edge-off-convention", i) for name, i in loops}
    expected.add((read(root / "errors.xml", images=clean / "images")[0].name, "shape-duplicate", n_first - 1))
    assert got == expected
    assert data["failed"] is True and data["fail_on"] == "error"
    assert data["counts"] == {"error": 1, "warning": len(loops), "info": 0}

    assert runner.invoke(app, ["check", str(root / "errors.xml"), *images, "--fail-on", "never"]).exit_code == 0
    # warnings only: they fail only with --fail-on warning
    assert runner.invoke(app, ["check", str(root / "warnings.xml"), *images]).exit_code == 0
    assert runner.invoke(app, ["check", str(root / "warnings.xml"), *images, "--fail-on", "warning"]).exit_code == 2


def test_edge_option_and_tolerance(exports):
    clean, root, loops = exports
    images = ["--images", str(clean / "images")]
    data = _json(runner.invoke(app, ["check", str(root / "warnings.xml"), *images, "--json", "--edge", "loop=inner",
                                     "--edge", "cavity=inner"]))
    assert data["findings"] == []
    assert {e["label"]: e["how"] for e in data["edges"]} == {
        "cavity": "given", "loop": "given", "precipitate": "unknown", "dislocation line": "unknown"}
    data = _json(runner.invoke(app, ["check", str(root / "warnings.xml"), *images, "--json",
                                     "--edge-tolerance", "4"]))
    assert data["findings"] == [] and data["config"]["edge_tolerance"] == 4.0


def test_report_option(exports, tmp_path):
    clean, root, _ = exports
    out = tmp_path / "r.html"
    args = ["check", str(root / "errors.xml"), "--images", str(clean / "images"), "--report", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and out.is_file()
    assert "wrote" in result.output and "shape-duplicate" in out.read_text(encoding="utf-8")
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "exists" in again.output and "--overwrite" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 2


@pytest.mark.parametrize("extra, message", [
    (["--edge", "loop"], "expected LABEL=inner or LABEL=outer"),
    (["--edge", "loop=middle"], "expected LABEL=inner or LABEL=outer"),
    (["--edge", "void=inner"], "no label 'void'"),
    (["--image-size", "1024"], "expected WIDTHxHEIGHT"),
    (["--solidity", "1.5"], "--solidity: expected a number in (0, 1]"),
])
def test_bad_options_are_one_clear_line(exports, extra, message):
    clean, _, _ = exports
    result = runner.invoke(app, ["check", str(clean), *extra])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_missing_export_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["check", str(tmp_path / "nope.xml")])
    assert result.exit_code == 1 and "nope.xml" in result.output and "Traceback" not in result.output


def test_image_size_option(exports):
    clean, _, _ = exports
    data = _json(runner.invoke(app, ["check", str(clean), "--json", "--image-size", "256x192"]))
    assert {f["code"] for f in data["findings"]} == {"image-size-differs"}
    assert len(data["findings"]) == 2
