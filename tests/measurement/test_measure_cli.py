"""``defectlab measure`` and ``defectlab evaluate`` end to end, on synthetic exports and the
workshop's real one; expected counts parsed from the XML here."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from typer.testing import CliRunner

import defectlab
from defectlab.cli import app
from defectlab.formats.cvat_xml import write_cvat

runner = CliRunner()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("measure_cli") / "export"
    result = runner.invoke(app, ["synth", str(out), "--n", "2", "--size", "128", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return out


def xml_counts(path):
    root = ET.parse(path).getroot()
    return Counter(el.get("label") for im in root.iter("image") for el in im if el.tag in ("ellipse", "polygon", "polyline"))


def per_set(folder):
    with open(folder / "per_set.csv", newline="", encoding="utf-8") as fh:
        return {r["label"]: r for r in csv.DictReader(fh)}


def test_measure_with_pixel_size_and_thickness(export, tmp_path):
    out = tmp_path / "m"
    result = runner.invoke(app, ["measure", str(export), "--out", str(out), "--pixel-size", "0.5nm",
                                 "--thickness", "80nm"])
    assert result.exit_code == 0, result.output
    counts = xml_counts(export / "annotations.xml")
    rows = per_set(out)
    area_um2 = 2 * 128 * 128 * 0.25 * 1e-6
    for label, n in counts.items():
        assert int(rows[label]["count"]) == n
        assert float(rows[label]["density_per_um2"]) == pytest.approx(n / area_um2, rel=1e-9)
    assert float(rows["cavity"]["swelling_percent"]) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["thickness_nm"] == 80.0
    assert "no pixel size" not in result.output


def test_measure_without_calibration_says_so(export, tmp_path):
    result = runner.invoke(app, ["measure", str(export), "--out", str(tmp_path / "m"), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "no pixel size calibration" in result.output and "px only" in result.output


@pytest.mark.parametrize("args, message", [
    (["--pixel-size", "big"], "expected a pixel size"),
    (["--thickness", "80 parsecs"], "thickness with a length unit"),
    (["--size", "radius"], "--size: expected one of diameter, major_axis"),
])
def test_measure_bad_options(export, tmp_path, args, message):
    result = runner.invoke(app, ["measure", str(export), "--out", str(tmp_path / "m"), *args])
    assert result.exit_code == 1
    assert message in result.output


def test_measure_refuses_to_overwrite(export, tmp_path):
    out = tmp_path / "m"
    args = ["measure", str(export), "--out", str(out), "--pixel-size", "1", "--no-figures"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_evaluate_prints_the_threshold_and_scores(export, tmp_path):
    truth = defectlab.read(export)
    dropped = sum(len(it.shapes) - len(it.shapes[2:]) for it in truth.items)
    pred = truth.with_items([it.__class__(it.name, it.size_hw, it.shapes[2:], image=it.image, id=it.id)
                             for it in truth.items])
    pred_xml = tmp_path / "pred.xml"
    write_cvat(pred, pred_xml)
    total = sum(xml_counts(export / "annotations.xml").values())
    for iou in ("0.5", "0.7"):
        out = tmp_path / f"e{iou}"
        figures = ["--figures"] if iou == "0.5" else ["--no-figures"]
        result = runner.invoke(app, ["evaluate", str(pred_xml), str(export), "--out", str(out), "--iou", iou,
                                     "--pixel-size", "0.5nm", *figures])
        assert result.exit_code == 0, result.output
        assert (out / "figures").is_dir() == (iou == "0.5")
        assert f"IoU ≥ {iou}" in result.output
        overall = json.loads((out / "summary.json").read_text())["overall"]
        assert overall["iou_threshold"] == float(iou)
        assert (overall["tp"], overall["fp"], overall["fn"]) == (total - dropped, 0, dropped)
        assert overall["precision"] == 1.0


def test_evaluate_reports_a_missing_file_clearly(export, tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.xml"), str(export), "--out", str(tmp_path / "e")])
    assert result.exit_code == 1 and "nope.xml" in result.output


def test_workshop_bubbles_in_px(shared_data, tmp_path):
    """The workshop's CVAT job export has no calibration: results in px, and a warning."""
    lab = shared_data / "workshop" / "DL_for_Microscopy_Train_Lab_1.xml"
    result = runner.invoke(app, ["measure", str(lab), "--out", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "px only" in result.output
    row = per_set(tmp_path / "w")["bubble"]
    assert int(row["count"]) == 37 and row["size_measure"] == "diameter"
    assert float(row["size_mean_px"]) > 0 and row["size_mean_nm"] == ""
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert summary["settings"]["cavity_labels"] == ["bubble"]


def test_evaluate_a_folder_of_instance_tiffs(export, tmp_path):
    """Predictions as a model writes them: one instance-id TIFF per image (read by defectlab.read)."""
    from defectlab.formats.mask_images import write_instance_tiffs

    write_instance_tiffs(defectlab.read(export), tmp_path / "pred")
    out = tmp_path / "e"
    result = runner.invoke(app, ["evaluate", str(tmp_path / "pred"), str(export), "--out", str(out),
                                 "--pixel-size", "0.5nm", "--no-figures"])
    assert result.exit_code == 0, result.output
    overall = json.loads((out / "summary.json").read_text())["overall"]
    total = sum(xml_counts(export / "annotations.xml").values())
    assert (overall["tp"], overall["fp"], overall["fn"], overall["pixel_iou"]) == (total, 0, 0, 1.0)
