"""#17: ``measure`` reports confidence intervals of what scientists publish (count, density,
mean size, swelling) in its tables, summary.json, the page and the terminal."""

from __future__ import annotations

import csv
import json

from scipy.stats import chi2
from typer.testing import CliRunner

import defectlab
from defectlab.cli import app
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset


def test_measure_writes_intervals_that_hold_the_poisson_interval_of_each_count(tmp_path):
    make_synthetic_dataset(tmp_path / "export", n_images=2, config=SyntheticConfig(size_hw=(256, 256)), seed=4)
    res = CliRunner().invoke(app, ["measure", str(tmp_path / "export"), "--pixel-size", "0.5nm", "--thickness",
                                   "80nm", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "95% intervals" in " ".join(res.output.split())
    rows = {r["label"]: r for r in csv.DictReader(open(tmp_path / "m" / "intervals.csv", encoding="utf-8"))}
    per_set = {r["label"]: r for r in csv.DictReader(open(tmp_path / "m" / "per_set.csv", encoding="utf-8"))}
    ds = defectlab.read(tmp_path / "export")
    area_um2 = sum(it.size_hw[0] * it.size_hw[1] for it in ds) * (0.5e-3) ** 2
    assert set(rows) == set(per_set) and rows
    for label, row in rows.items():
        n = float(per_set[label]["count"])
        assert float(row["count"]) == n
        # Garwood's exact 95 % Poisson interval, from scipy's chi-square quantiles
        lo = chi2.ppf(0.025, 2 * n) / 2 if n > 0 else 0.0
        hi = chi2.ppf(0.975, 2 * (n + 1)) / 2
        # (the CSV holds 10 significant digits)
        assert float(row["count_lo"]) <= lo * (1 + 1e-8) and float(row["count_hi"]) >= hi * (1 - 1e-8), (label, row)
        assert float(row["density_per_um2_lo"]) <= n / area_um2 <= float(row["density_per_um2_hi"])
        assert float(row["density_per_um2_hi"]) * area_um2 >= hi - 1e-6
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert set(summary["intervals"]) == set(rows)
    page = (tmp_path / "m" / "index.html").read_text()
    assert "95% confidence intervals" in page and "intervals.csv" in page
