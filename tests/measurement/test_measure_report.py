"""The written reports: tables that read back, strict JSON, PNG figures the HTML page shows,
atomic and overwrite-safe output, and no pyplot."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from defectlab.errors import OutputError
from defectlab.measurement import evaluate, measure
from defectlab.measurement.table import Table
from defectlab.model import Dataset, Ellipse, Item, Label

PNG = b"\x89PNG\r\n\x1a\n"


def strict_json(path):
    def no_constants(name):
        raise ValueError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)


@pytest.fixture(scope="module")
def truth():
    shapes = tuple(Ellipse(label="cavity", cx=16 + 24 * (i % 5), cy=16 + 24 * (i // 5), rx=4 + i % 4, ry=4 + i % 3)
                   for i in range(15)) + (Ellipse(label="loop", cx=60, cy=110, rx=12, ry=6, rotation_deg=30),)
    return Dataset((Label("cavity"), Label("loop")), (Item("a.png", (128, 128), shapes),), source="in-memory")


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def check_html(folder):
    page = (folder / "index.html").read_text(encoding="utf-8")
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert srcs, "the page shows figures"
    for src in srcs:
        assert (folder / src).read_bytes()[:8] == PNG
    assert "http://" not in page and "https://" not in page  # offline
    return page


def test_measurement_report(tmp_path, truth):
    m = measure(truth, pixel_size="0.5nm", thickness="80nm")
    out = m.write(tmp_path / "out")
    rows = read_csv(out / "defects.csv")
    assert len(rows) == len(m.defects) == 16
    assert float(rows[0]["diameter_nm"]) == pytest.approx(m.defects["diameter_nm"][0], rel=1e-9)
    assert [r["label"] for r in read_csv(out / "per_set.csv")] == ["cavity", "loop"]
    summary = strict_json(out / "summary.json")
    assert summary["settings"]["pixel_size_nm"] == 0.5 and summary["calibrated"] is True
    assert summary["labels"]["cavity"]["count"] == 15
    assert summary["labels"]["loop"]["swelling_percent"] is None  # NaN written as null
    page = check_html(out)
    assert "size_histogram_cavity.png" in page and "border" in page


def test_parquet_tables_match_the_csv(tmp_path, truth):
    import pyarrow.parquet as pq

    out = measure(truth, pixel_size=1.0).write(tmp_path / "out")
    table = pq.read_table(out / "defects.parquet").to_pydict()
    rows = read_csv(out / "defects.csv")
    assert table["label"] == [r["label"] for r in rows]
    np.testing.assert_allclose(table["area_px"], [float(r["area_px"]) for r in rows])


def test_evaluation_report(tmp_path, truth):
    pred = truth.with_items([Item("a.png", (128, 128), truth[0].shapes[3:])])
    e = evaluate(pred, truth, pixel_size="0.5nm")
    out = e.write(tmp_path / "eval")
    for name in ("per_class", "per_image", "matches", "pred_defects", "true_defects", "pred_stats", "true_stats"):
        assert (out / f"{name}.csv").is_file()
    per_class = {r["label"]: r for r in read_csv(out / "per_class.csv")}
    assert int(per_class["cavity"]["fn"]) == 3 and float(per_class["cavity"]["recall"]) == pytest.approx(12 / 15)
    assert len(read_csv(out / "matches.csv")) == 13
    summary = strict_json(out / "summary.json")
    assert summary["iou_threshold"] == 0.5 and summary["overall"]["tp"] == 13
    page = check_html(out)
    assert "IoU ≥ 0.5" in page
    assert (out / "figures" / "size_scatter_cavity.png").is_file()


def test_output_is_not_overwritten_without_permission(tmp_path, truth):
    m = measure(truth, pixel_size=1.0)
    out = m.write(tmp_path / "out")
    (out / "marker").write_text("old")
    with pytest.raises(OutputError, match="overwrite"):
        m.write(out)
    assert (out / "marker").is_file()
    m.write(out, overwrite=True)
    assert not (out / "marker").exists() and (out / "index.html").is_file()


def test_no_pyplot_and_no_matplotlib_on_import(tmp_path):
    code = (
        "import sys, defectlab.measurement, defectlab.commands.measure\n"
        "assert 'matplotlib' not in sys.modules and 'torch' not in sys.modules\n"
        "from defectlab.measurement import measure\n"
        "from defectlab.model import Dataset, Item, Label, Ellipse\n"
        "ds = Dataset((Label('c'),), (Item('a.png', (32, 32), (Ellipse(label='c', cx=16, cy=16, rx=5, ry=5),)),))\n"
        f"measure(ds, pixel_size=1.0).write({str(tmp_path / 'o')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'a notebook backend must be left alone'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_table_basics():
    t = Table({"label": ["a", "b", "a"], "area_px": [1.0, float("nan"), 3.0]})
    assert t.filter(t["label"] == "a")["area_px"].tolist() == [1.0, 3.0]
    both = Table.concat([t, Table({"label": ["c"], "extra": [5]})])
    assert len(both) == 4 and np.isnan(both["area_px"][3]) and np.isnan(both["extra"][0])
    with pytest.raises(ValueError, match="one length"):
        Table({"a": [1, 2], "b": [1]})
    with pytest.raises(KeyError, match="no column 'x'"):
        t["x"]
