"""Confidence intervals of counts, densities, mean sizes and swelling.

Expected values come from outside the code under test: the χ² form of the exact Poisson
interval (scipy.stats), Student's t interval of a mean, the quantiles of a Poisson mixture
(scipy.stats), :func:`defectlab.measurement.statistics` for the point values, and — for
coverage — point processes simulated here with a known density and size distribution.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from defectlab.measurement import ImageInfo, measure
from defectlab.measurement.table import Table
from defectlab.measurement.uncertainty import (
    INTERVAL_COLUMNS,
    IntervalOptions,
    intervals,
    measurement_intervals,
    poisson_interval,
)
from defectlab.model import Box, Dataset, Item, Label


def defect_table(keys, diameters, *, label="cavity", border=None):
    n = len(keys)
    return Table({"image": list(keys), "label": [label] * n, "kind": ["ellipse"] * n,
                  "touches_border": np.zeros(n, bool) if border is None else np.asarray(border, bool),
                  "diameter_px": np.asarray(diameters, np.float64)})


def one_row(table):
    rows = table.rows()
    assert len(rows) == 1
    return rows[0]


# ----------------------------------------------------------------------------------------
# Analytic intervals


@pytest.mark.parametrize("n", [0, 1, 5, 50, 400])
def test_poisson_interval_is_the_chi2_garwood_interval(n):
    lo, hi = poisson_interval(n, 0.95)
    want_lo = 0.0 if n == 0 else scipy.stats.chi2.ppf(0.025, 2 * n) / 2
    want_hi = scipy.stats.chi2.ppf(0.975, 2 * n + 2) / 2
    assert lo == pytest.approx(want_lo, rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(want_hi, rel=1e-9)


def test_poisson_interval_textbook_values():
    assert poisson_interval(0) == pytest.approx((0.0, 3.689), abs=1e-3)  # Garwood's table
    assert poisson_interval(10) == pytest.approx((4.795, 18.390), abs=1e-3)
    with pytest.raises(ValueError, match="count >= 0"):
        poisson_interval(-1)


def test_poisson_bootstrap_matches_the_exact_poisson_interval():
    """With every cavity of one size, swelling is a monotone function of the count, and it has
    no exact-interval floor: its interval is the bootstrap's own, and must follow Garwood's."""
    n, d, side, nm, t = 400, 10.0, 1000, 1.0, 100.0
    ci = one_row(intervals(defect_table(["a"] * n, [d] * n), [ImageInfo("a", (side, side), nm)], ["cavity"],
                           thickness_nm=t, options=IntervalOptions(n_boot=4000)))
    v = math.pi * d ** 3 / 6
    swell = lambda count: 100 * count * v / (side * side * t - count * v)  # noqa: E731
    lo, hi = poisson_interval(n)
    assert ci["swelling_percent"] == pytest.approx(swell(n))
    assert ci["swelling_percent_lo"] == pytest.approx(swell(lo), rel=0.02)
    assert ci["swelling_percent_hi"] == pytest.approx(swell(hi), rel=0.02)
    assert ci["count_lo"] == pytest.approx(lo, rel=0.02) and ci["count_hi"] == pytest.approx(hi, rel=0.02)
    assert ci["count_bound_by"] == "counting"  # one image: no between-images interval


def test_mean_size_interval_matches_students_t():
    rng = np.random.default_rng(3)
    d = rng.normal(12.0, 3.0, 300)
    ci = one_row(intervals(defect_table(["a"] * len(d), d), [ImageInfo("a", (2000, 2000), None)], ["cavity"],
                           options=IntervalOptions(n_boot=4000)))
    half = scipy.stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert ci["size_mean_px"] == pytest.approx(d.mean())
    assert ci["size_mean_px_lo"] == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert ci["size_mean_px_hi"] == pytest.approx(d.mean() + half, abs=0.1 * half)


def test_zero_count_has_the_exact_upper_bound():
    ci = one_row(intervals(defect_table([], []), [ImageInfo("a", (100, 100), None)], ["cavity"]))
    assert (ci["count"], ci["count_lo"]) == (0.0, 0.0)
    assert ci["count_hi"] == pytest.approx(scipy.stats.chi2.ppf(0.975, 2) / 2)
    assert ci["density_per_px2_hi"] == pytest.approx(ci["count_hi"] / 1e4)
    assert math.isnan(ci["size_mean_px"]) and math.isnan(ci["size_mean_px_lo"])


def test_no_bound_falls_below_zero_when_few_images_widen_the_interval():
    # every defect in one of 3 images: the between-images replicates run from 0 to 3x the
    # count, and the t-widening for 3 images (sqrt(3/2) t(2) / z = 2.69) would put the lower
    # bound at 10 - 2.69 * 10 < 0; a count, a density and a size are never negative
    images = [ImageInfo(k, (100, 100), 0.5) for k in "abc"]
    ci = one_row(intervals(defect_table(["a"] * 10, np.linspace(4, 8, 10)), images, ["cavity"]))
    assert ci["count_bound_by"] == "images"
    widened = 10 - math.sqrt(1.5) * scipy.stats.t.ppf(0.975, 2) / scipy.stats.norm.ppf(0.975) * 10
    assert widened < 0
    for name in ("count", "density_per_px2", "density_per_um2", "size_mean_px"):
        assert ci[f"{name}_lo"] >= 0, name
    assert ci["count_lo"] == 0.0 and ci["count_hi"] > 20


# ----------------------------------------------------------------------------------------
# Model uncertainty: a mixture over ensemble members


def test_members_give_the_quantiles_of_the_poisson_mixture():
    counts = (100, 140)
    members = [defect_table(["a"] * c, [8.0] * c) for c in counts]
    ci = one_row(intervals(members, [ImageInfo("a", (500, 500), None)], ["cavity"],
                           options=IntervalOptions(n_boot=8000)))
    k = np.arange(0, 300)
    cdf = np.mean([scipy.stats.poisson.cdf(k, c) for c in counts], axis=0)
    want_lo, want_hi = k[np.searchsorted(cdf, 0.025)], k[np.searchsorted(cdf, 0.975)]
    assert ci["members"] == 2
    assert ci["count"] == pytest.approx(120.0)
    assert ci["count_lo"] == pytest.approx(want_lo, abs=2)
    assert ci["count_hi"] == pytest.approx(want_hi, abs=2)
    assert ci["count_model_sd"] == pytest.approx(np.std(counts, ddof=1))
    # Wider than one member alone, which the exact interval of 120 counts would be.
    lo, hi = poisson_interval(120)
    assert ci["count_hi"] - ci["count_lo"] > 1.3 * (hi - lo)


def test_identical_members_add_no_width():
    t = defect_table(["a"] * 200, np.linspace(5, 15, 200))
    one = one_row(intervals(t, [ImageInfo("a", (500, 500), None)], ["cavity"], options=IntervalOptions(n_boot=4000)))
    three = one_row(intervals([t, t, t], [ImageInfo("a", (500, 500), None)], ["cavity"],
                              options=IntervalOptions(n_boot=4000, seed=1)))
    assert three["count_model_sd"] == 0.0
    for name in ("count", "size_mean_px"):
        width1 = one[f"{name}_hi"] - one[f"{name}_lo"]
        width3 = three[f"{name}_hi"] - three[f"{name}_lo"]
        assert width3 == pytest.approx(width1, rel=0.1)


# ----------------------------------------------------------------------------------------
# Coverage on simulated point processes with a known answer

SIDE = 200
LAM = 30 / SIDE ** 2  # defects per px²: 30 per image on average
MU, SIGMA = 1.5, 0.4  # log-normal diameters, px
TRUE_MEAN = math.exp(MU + SIGMA ** 2 / 2)


def simulate(rng, rates):
    keys, diameters = [], []
    for j, rate in enumerate(rates):
        n = rng.poisson(rate * SIDE * SIDE)
        keys += [f"i{j}"] * n
        diameters += list(rng.lognormal(MU, SIGMA, n))
    return defect_table(keys, diameters), [ImageInfo(f"i{j}", (SIDE, SIDE), None) for j in range(len(rates))]


def coverage(rates_of, repeats, **options):
    rng = np.random.default_rng(11)
    density = size = 0
    widths = []
    for r in range(repeats):
        t, images = simulate(rng, rates_of(rng))
        ci = one_row(intervals(t, images, ["cavity"], options=IntervalOptions(n_boot=400, seed=r, **options)))
        density += ci["density_per_px2_lo"] <= LAM <= ci["density_per_px2_hi"]
        size += ci["size_mean_px_lo"] <= TRUE_MEAN <= ci["size_mean_px_hi"]
        widths.append((ci["count_hi"] - ci["count_lo"]) / (2 * 1.96 * math.sqrt(ci["count"])))
    return density / repeats, size / repeats, float(np.mean(widths))


def test_coverage_of_a_homogeneous_poisson_process():
    """4 images of one density: the 95 % intervals hold the true density and mean size in at
    least 95 % of repeats (measured with these seeds: 150 of 150 and 0.973; 1 s.d. of a 0.95
    coverage over 150 repeats is 0.018) — on the wide side for the density, as the
    between-images interval of 4 images is itself uncertain — and are less than twice as wide
    as the Poisson interval of the count (measured 1.6×)."""
    density, size, width = coverage(lambda rng: np.full(4, LAM), 150)
    assert 0.9 <= density and 0.9 <= size
    assert width < 2.0


def test_coverage_when_images_differ_needs_the_between_images_interval():
    """Densities drawn per image from a gamma distribution (10 images): counting statistics
    alone cover the true mean density in about half the repeats (measured 0.48 of 60); with
    the between-images bootstrap 0.953 of 150."""
    rates = lambda rng: rng.gamma(2.0, LAM / 2.0, 10)  # noqa: E731  mean LAM, s.d. LAM/√2
    density, _, _ = coverage(rates, 150)
    counting_only, _, _ = coverage(rates, 60, min_images=10 ** 6)
    assert density >= 0.87
    assert counting_only <= 0.6


# ----------------------------------------------------------------------------------------
# Point values: the same as the statistics of the set


def test_point_values_equal_the_set_statistics():
    shapes_a = (Box(label="cavity", xyxy=(20, 20, 30, 30)), Box(label="cavity", xyxy=(50, 50, 70, 60)),
                Box(label="cavity", xyxy=(0, 70, 8, 80)), Box(label="loop", xyxy=(150, 10, 160, 20)))
    shapes_b = (Box(label="cavity", xyxy=(10, 10, 16, 16)), Box(label="loop", xyxy=(40, 40, 60, 52)),
                Box(label="loop", xyxy=(70, 20, 90, 30)))
    ds = Dataset((Label("cavity"), Label("loop")),
                 (Item("a.png", (100, 200), shapes_a), Item("b.png", (120, 120), shapes_b)))
    m = measure(ds, pixel_size="2nm", thickness="50nm")
    ci = measurement_intervals(m, options=IntervalOptions(n_boot=500))
    assert ci.columns == list(INTERVAL_COLUMNS)
    for want, got in zip(m.per_set.rows(), ci.rows()):
        assert got["label"] == want["label"] and got["images"] == 2
        for name in ("count", "density_per_px2", "density_per_um2", "density_per_m3", "size_mean_px",
                     "size_mean_nm", "swelling_percent"):
            if want["label"] == "loop" and name == "swelling_percent":
                assert math.isnan(got[name]) and math.isnan(got[f"{name}_lo"])
                continue
            assert got[name] == pytest.approx(want[name]), name
            assert got[f"{name}_lo"] <= got[name] <= got[f"{name}_hi"], name


def test_uncalibrated_images_leave_nm_values_empty():
    t = defect_table(["a"] * 20 + ["b"] * 10, np.full(30, 6.0))
    ci = one_row(intervals(t, [ImageInfo("a", (100, 100), 0.5), ImageInfo("b", (100, 100), None)], ["cavity"],
                           thickness_nm=80.0, options=IntervalOptions(n_boot=200)))
    assert ci["count"] == 30 and ci["density_per_px2"] == pytest.approx(30 / 2e4)
    for name in ("density_per_um2", "density_per_m3", "size_mean_nm", "swelling_percent"):
        assert math.isnan(ci[name]) and math.isnan(ci[f"{name}_lo"]) and math.isnan(ci[f"{name}_hi"])


def test_border_defects_count_but_are_not_sized():
    t = defect_table(["a"] * 4, [10.0, 10.0, 10.0, 40.0], border=[False, False, False, True])
    ci = one_row(intervals(t, [ImageInfo("a", (100, 100), None)], ["cavity"], options=IntervalOptions(n_boot=200)))
    assert ci["count"] == 4 and ci["size_mean_px"] == 10.0
    ci = one_row(intervals(t, [ImageInfo("a", (100, 100), None)], ["cavity"], include_border=True,
                           options=IntervalOptions(n_boot=200)))
    assert ci["size_mean_px"] == pytest.approx(17.5)


# ----------------------------------------------------------------------------------------
# Bad input


def test_bad_input_is_named():
    t = defect_table(["a", "zz"], [5.0, 5.0])
    with pytest.raises(ValueError, match="image 'zz', which is not among the images"):
        intervals(t, [ImageInfo("a", (10, 10), None)], ["cavity"])
    with pytest.raises(ValueError, match="at least one image"):
        intervals(t, [], ["cavity"])
    with pytest.raises(ValueError, match="at least one defect table"):
        intervals([], [ImageInfo("a", (10, 10), None)], ["cavity"])
    with pytest.raises(ValueError, match=r"intervals: level: expected a number in \[0.5, 0.999\], got 1.0"):
        IntervalOptions(level=1.0)
    with pytest.raises(ValueError, match="intervals: n_boot: expected an integer, got 500.5"):
        IntervalOptions(n_boot=500.5)
    with pytest.raises(ValueError, match="intervals: min_images: expected a number >= 2, got 1"):
        IntervalOptions(min_images=1)
