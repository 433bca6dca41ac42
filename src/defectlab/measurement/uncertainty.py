"""Confidence intervals for count, number density, mean size and swelling.

A measured density is one draw of a random process: the defects that happened to be in
the imaged area, the images that happened to be taken, and — for predictions — the model
that happened to be trained. :func:`intervals` puts an interval around each set value of
:func:`~defectlab.measurement.stats.statistics` that accounts for all three:

**Counting statistics** (defects as a random point process over the imaged area). A
Poisson bootstrap over defects: in each replicate every defect is counted ``w ~ Poisson(1)``
times, so the total count varies as a Poisson count would and every size statistic with it
(the Poisson bootstrap of Hanley & MacGibbon, 2006). For the count and the densities the
interval is never narrower than the exact Poisson interval of the count
(:func:`poisson_interval`, Garwood 1936), which the bootstrap approaches for large counts and
which stays right for small ones (a count of 0 has an interval of 0 to 3.7 at 95 %).

**Between images** (the material varies from place to place more than counting alone says).
A cluster bootstrap over images: each replicate draws as many images as there are, with
replacement, and pools them as :func:`statistics` pools a set (density = Σcount / Σarea, …).
It carries the counting noise too, so it is used *instead of* the counting interval where it
is wider, not added to it. It needs at least ``min_images`` images (3 by default). A spread
estimated from ``k`` images is itself uncertain: the replicates' spread about the point value
is widened by ``sqrt(k / (k − 1)) · t(k − 1) / z`` (the bootstrap's variance of a mean of ``k``
clusters is ``(k − 1) / k`` of the sample variance, and Student's t quantile replaces the
normal one). Measured on simulated Poisson processes (``tests/measurement/test_uncertainty.py``):
with 4 images of one density the 95 % interval held the true density in 150 of 150 repeats,
1.6× as wide as the Poisson interval (on the safe side: 4 images cannot show that the
density does not vary); with densities varying between 10 images (gamma-distributed),
0.95 — where counting statistics alone held it in 0.48.

**Model uncertainty** (predictions only): given the per-defect tables of several ensemble
members measured on the same images, each replicate first draws one member at random, then
resamples that member's defects or images. The replicates are then a mixture over members,
whose spread is the counting spread plus the spread between members (the law of total
variance). The point value is the mean over members.

The interval of each value is the union of its counting interval and its between-images
interval; ``<what>_bound_by`` says which one was wider. Percentile intervals from
``n_boot`` replicates; everything is drawn from ``numpy.random.default_rng(seed)``.

Examples
--------
>>> from defectlab.measurement.stats import ImageInfo
>>> from defectlab.measurement.table import Table
>>> n = 100
>>> defects = Table({"image": ["a"] * n, "label": ["cavity"] * n, "kind": ["ellipse"] * n,
...                  "touches_border": [False] * n, "diameter_px": [10.0] * n})
>>> ci = intervals(defects, [ImageInfo("a", (1000, 1000), None)], ["cavity"])
>>> row = ci.rows()[0]
>>> row["count"], round(row["count_lo"]), round(row["count_hi"])
(100.0, 81, 122)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..options import Options, option
from .stats import ImageInfo, is_cavity_label, size_measures
from .table import Table

__all__ = ["IntervalOptions", "INTERVAL_COLUMNS", "INTERVAL_VALUES", "intervals", "measurement_intervals", "poisson_interval"]

#: The values given an interval (each also as ``<name>_lo`` and ``<name>_hi``), in column order.
INTERVAL_VALUES: tuple[str, ...] = (
    "count", "density_per_px2", "density_per_um2", "density_per_m3",
    "size_mean_px", "size_mean_nm", "swelling_percent",
)

_CHUNK = 256  # replicates drawn at once (bounds the memory of the Poisson weights) …
_CHUNK_WEIGHTS = 16_000_000  # … and fewer where there are many defects (a batch's million: 128 MB, not 2 GB)


@dataclass(frozen=True, slots=True)
class IntervalOptions(Options):
    """How the confidence intervals of :func:`intervals` are computed.

    Examples
    --------
    >>> IntervalOptions(level=0.9).level
    0.9
    >>> IntervalOptions(n_boot=10)
    Traceback (most recent call last):
    ...
    ValueError: intervals: n_boot: expected a number >= 100, got 10
    """

    verb: ClassVar[str] = "intervals"

    level: float = option(0.95, help="Confidence level of the intervals (0.95: 95 % intervals).", min=0.5,
                          max=0.999)
    n_boot: int = option(2000, help="Bootstrap replicates per interval (more: steadier bounds, slower).",
                         cli="--n-boot", min=100)
    seed: int = option(0, help="Seed of the bootstrap draws.", cli="--interval-seed")
    min_images: int = option(3, help="Least images for the between-images bootstrap (fewer: counting statistics "
                                     "only).", min=2)


def poisson_interval(count: float, level: float = 0.95) -> tuple[float, float]:
    """The exact (Garwood) two-sided interval of the mean of a Poisson count.

    ``lo = Γ⁻¹(α/2; n)`` (0 for ``n = 0``), ``hi = Γ⁻¹(1 − α/2; n + 1)`` with ``α = 1 − level``
    (the χ² form ``χ²(α/2; 2n)/2`` of the textbooks). A non-integer ``count`` (a mean over
    ensemble members) is taken as it is.

    Examples
    --------
    >>> [round(v, 2) for v in poisson_interval(0)], [round(v, 2) for v in poisson_interval(10)]
    ([0.0, 3.69], [4.8, 18.39])
    """
    from scipy.special import gammaincinv  # the inverse of the regularized lower incomplete gamma

    n = float(count)
    if not (math.isfinite(n) and n >= 0):
        raise ValueError(f"expected a count >= 0, got {count!r}")
    alpha = 1.0 - float(level)
    lo = 0.0 if n == 0 else float(gammaincinv(n, alpha / 2))
    return lo, float(gammaincinv(n + 1, 1 - alpha / 2))


@dataclass(frozen=True, slots=True)
class _Member:
    """One member's defects of one label, as arrays over defects (d) and images (i)."""

    image: np.ndarray  # (d,) int image index
    sized: np.ndarray  # (d,) bool: used for sizes
    size_px: np.ndarray  # (d,) float
    size_nm: np.ndarray  # (d,) float (NaN uncalibrated)
    volume_nm3: np.ndarray  # (d,) float: πD³/6 of sized cavities, else 0


def _member(defects: Table, label: str, index_of: Mapping[str, int], nm: np.ndarray, *, stem: str,
            include_border: bool) -> _Member:
    if len(defects) == 0:
        empty = np.zeros(0)
        return _Member(np.zeros(0, np.int64), np.zeros(0, bool), empty, empty, empty)
    sel = np.asarray(defects["label"] == label, bool)
    keys = defects["image"][sel]
    unknown = sorted({str(k) for k in keys if k not in index_of})
    if unknown:
        raise ValueError(f"intervals: defects of image {unknown[0]!r}, which is not among the images given")
    image = np.asarray([index_of[k] for k in keys], dtype=np.int64)
    sized = np.ones(len(image), bool) if include_border else ~defects["touches_border"][sel].astype(bool)
    size_px = np.where(sized, defects[f"{stem}_px"][sel].astype(np.float64), 0.0)
    scale = nm[image] if len(image) else np.zeros(0)
    d_nm = defects["diameter_px"][sel].astype(np.float64) * scale
    volume = np.where(sized, math.pi * d_nm ** 3 / 6.0, 0.0)
    return _Member(image, sized, size_px, size_px * scale, volume)


class _Sums:
    """Replicate sums: count, sized count, Σsize px, Σsize nm, Σvolume (each (r,)), area px and nm²."""

    def __init__(self, count, sized, size_px, size_nm, volume, area_px, area_nm2) -> None:
        self.count, self.sized, self.size_px, self.size_nm = count, sized, size_px, size_nm
        self.volume, self.area_px, self.area_nm2 = volume, area_px, area_nm2

    def values(self, thickness_nm: float | None, swelling: bool) -> dict[str, np.ndarray]:
        """The interval values of these sums (NaN where undefined)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {
                "count": self.count.astype(np.float64),
                "density_per_px2": self.count / self.area_px,
                "density_per_um2": self.count / self.area_nm2 * 1e6,
                "density_per_m3": (self.count / (self.area_nm2 * thickness_nm) * 1e27 if thickness_nm
                                   else np.full(self.count.shape, np.nan)),
                "size_mean_px": np.where(self.sized > 0, self.size_px / self.sized, np.nan),
                "size_mean_nm": np.where(self.sized > 0, self.size_nm / self.sized, np.nan),
                "swelling_percent": (100.0 * self.volume / (self.area_nm2 * thickness_nm - self.volume)
                                     if (thickness_nm and swelling) else np.full(self.count.shape, np.nan)),
            }
        return out


def _point(m: _Member, area_px: np.ndarray, area_nm2: np.ndarray) -> _Sums:
    one = np.ones((1, len(m.image)))
    return _weighted(m, one, area_px.sum(keepdims=True), area_nm2.sum(keepdims=True))


def _weighted(m: _Member, w: np.ndarray, area_px: np.ndarray, area_nm2: np.ndarray) -> _Sums:
    """Sums with per-defect weights ``w`` (r, d)."""
    return _Sums(w.sum(axis=1), w @ m.sized.astype(np.float64), w @ m.size_px, w @ m.size_nm, w @ m.volume_nm3,
                 area_px, area_nm2)


def _per_image(m: _Member, k: int) -> np.ndarray:
    """(5, k): per image count, sized count, Σsize px, Σsize nm, Σvolume."""
    cols = (np.ones(len(m.image)), m.sized.astype(np.float64), m.size_px, m.size_nm, m.volume_nm3)
    return np.stack([np.bincount(m.image, weights=c, minlength=k) for c in cols])


def _replicates(members: Sequence[_Member], area_px: np.ndarray, area_nm2: np.ndarray, *, scheme: str,
                n_boot: int, rng: np.random.Generator, thickness_nm: float | None,
                swelling: bool) -> dict[str, np.ndarray]:
    """``n_boot`` bootstrap values of every interval value, each replicate from one random member."""
    k = len(area_px)
    which = rng.integers(0, len(members), n_boot)
    parts: list[dict[str, np.ndarray]] = []
    for j, m in enumerate(members):
        todo = int(np.count_nonzero(which == j))
        if scheme == "images":
            per_image = _per_image(m, k)
        chunk = max(1, min(_CHUNK, _CHUNK_WEIGHTS // max(1, len(m.image))))
        for start in range(0, todo, chunk):
            r = min(chunk, todo - start)
            if scheme == "counting":
                w = rng.poisson(1.0, (r, len(m.image))).astype(np.float64)
                sums = _weighted(m, w, np.full(r, area_px.sum()), np.full(r, area_nm2.sum()))
            else:
                mult = rng.multinomial(k, np.full(k, 1.0 / k), r).astype(np.float64)  # (r, k)
                c = mult @ per_image.T  # (r, 5)
                sums = _Sums(c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4], mult @ area_px, mult @ area_nm2)
            parts.append(sums.values(thickness_nm, swelling))
    return {name: np.concatenate([p[name] for p in parts]) for name in INTERVAL_VALUES}


def _spread(scheme: str, k: int, level: float) -> float:
    """How much the replicates' spread about the point value is widened: 1 for counting; for
    ``k`` images ``sqrt(k / (k - 1)) · t(k − 1) / z`` — the bootstrap's variance of a mean of
    ``k`` clusters is ``(k − 1) / k`` of the sample variance, and a spread estimated from ``k``
    images needs Student's t quantile, not the normal one."""
    if scheme != "images":
        return 1.0
    from scipy.special import ndtri, stdtrit

    q = 1 - (1 - level) / 2
    return math.sqrt(k / (k - 1)) * float(stdtrit(k - 1, q)) / float(ndtri(q))


def _bounds(values: np.ndarray, level: float, point: float, spread: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size < 0.5 * values.size:  # undefined in most replicates (no sized defect, no pixel size)
        return math.nan, math.nan
    alpha = 1.0 - level
    lo, hi = np.percentile(point + spread * (finite - point), [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return max(0.0, float(lo)), float(hi)  # every value is >= 0: the widening may not take a bound below


def _label_row(members: Sequence[_Member], area_px: np.ndarray, area_nm2: np.ndarray, *,
               thickness_nm: float | None, swelling: bool, options: IntervalOptions,
               rng: np.random.Generator) -> dict[str, Any]:
    points = [_point(m, area_px, area_nm2).values(thickness_nm, swelling) for m in members]
    row: dict[str, Any] = {"members": len(members), "images": len(area_px), "level": options.level}
    for name in INTERVAL_VALUES:
        row[name] = float(np.mean([p[name][0] for p in points]))
    schemes = ["counting"] + (["images"] if len(area_px) >= options.min_images else [])
    found = {s: _replicates(members, area_px, area_nm2, scheme=s, n_boot=options.n_boot, rng=rng,
                            thickness_nm=thickness_nm, swelling=swelling) for s in schemes}
    count_lo, count_hi = poisson_interval(row["count"], options.level)
    exact = {"count": 1.0, "density_per_px2": 1.0 / area_px.sum(),
             "density_per_um2": 1e6 / area_nm2.sum(),
             "density_per_m3": 1e27 / (area_nm2.sum() * thickness_nm) if thickness_nm else math.nan}
    widest: dict[str, str] = {}
    for name in INTERVAL_VALUES:
        if not math.isfinite(row[name]):
            row[f"{name}_lo"] = row[f"{name}_hi"] = math.nan
            continue
        got = {s: _bounds(found[s][name], options.level, row[name], _spread(s, len(area_px), options.level))
               for s in schemes}
        if name in exact:  # counting statistics are never narrower than the exact Poisson interval
            lo, hi = got["counting"]
            got["counting"] = (min(lo, count_lo * exact[name]), max(hi, count_hi * exact[name]))
        got = {s: b for s, b in got.items() if math.isfinite(b[0])}
        if not got:
            row[f"{name}_lo"] = row[f"{name}_hi"] = math.nan
            continue
        row[f"{name}_lo"] = min(b[0] for b in got.values())
        row[f"{name}_hi"] = max(b[1] for b in got.values())
        widest[name] = max(got, key=lambda s: got[s][1] - got[s][0])
    row["count_bound_by"] = widest.get("count", "")
    row["size_bound_by"] = widest.get("size_mean_px", "")
    row["swelling_bound_by"] = widest.get("swelling_percent", "")
    counts = [p["count"][0] for p in points]
    sizes = [p["size_mean_px"][0] for p in points]
    row["count_model_sd"] = float(np.std(counts, ddof=1)) if len(points) > 1 else math.nan
    row["size_mean_px_model_sd"] = float(np.std(sizes, ddof=1)) if len(points) > 1 else math.nan
    return row


#: Columns of the table :func:`intervals` returns.
INTERVAL_COLUMNS: tuple[str, ...] = (
    ("label", "members", "images", "level")
    + tuple(c for name in INTERVAL_VALUES for c in (name, f"{name}_lo", f"{name}_hi"))
    + ("count_bound_by", "size_bound_by", "swelling_bound_by", "count_model_sd", "size_mean_px_model_sd")
)


def intervals(
    defects: Table | Sequence[Table],
    images: Sequence[ImageInfo],
    labels: Sequence[str],
    *,
    thickness_nm: float | None = None,
    include_border: bool = False,
    cavity_labels: Sequence[str] | None = None,
    size_measure: str = "diameter",
    measures: Mapping[str, str] | None = None,
    options: IntervalOptions = IntervalOptions(),
) -> Table:
    """Confidence intervals of the per-set count, densities, mean size and swelling, per label.

    Parameters
    ----------
    defects : Table, or sequence of Table
        The per-defect table (:data:`~defectlab.measurement.props.DEFECT_COLUMNS`; the columns
        ``image``, ``label``, ``kind``, ``touches_border``, ``diameter_px`` and the size column
        are used) of all images — or one such table per ensemble member, each measured on the
        same ``images`` (model uncertainty; see the module docstring).
    images : sequence of ImageInfo
        Every image measured, with its size and pixel size (images without defects count:
        they add area).
    labels : sequence of str
        Labels to report, in order.
    thickness_nm, include_border, cavity_labels, size_measure, measures
        As for :func:`~defectlab.measurement.stats.statistics`, whose definitions the values
        follow (pooled over the set).
    options : IntervalOptions
        Level, replicates, seed, least images for the between-images bootstrap.

    Returns
    -------
    Table
        One row per label, columns :data:`INTERVAL_COLUMNS`: ``members`` and ``images`` (how
        many), ``level`` (the confidence level), each value of :data:`INTERVAL_VALUES` with ``_lo`` and ``_hi`` (NaN where the
        value is undefined: nm without a pixel size for every image, per m³ and swelling
        without a thickness, swelling for non-cavity labels, sizes without sized defects),
        ``count_bound_by`` / ``size_bound_by`` / ``swelling_bound_by`` (``"counting"`` or
        ``"images"``: which interval was wider), and the spread between members
        (``count_model_sd``, ``size_mean_px_model_sd``; NaN for one member).

    Raises
    ------
    ValueError
        No images, a defect of an image that is not in ``images``, or bad options.
    """
    tables = [defects] if isinstance(defects, Table) else list(defects)
    if not tables:
        raise ValueError("intervals: expected at least one defect table")
    if not images:
        raise ValueError("intervals: expected at least one image")
    index_of = {info.key: i for i, info in enumerate(images)}
    area_px = np.asarray([float(i.size_hw[0] * i.size_hw[1]) for i in images])
    calibrated = all(i.pixel_size_nm for i in images)
    nm = np.asarray([float(i.pixel_size_nm) if i.pixel_size_nm else math.nan for i in images])
    area_nm2 = area_px * nm ** 2 if calibrated else np.full(len(images), math.nan)
    pooled = Table.concat([t for t in tables if len(t)]) if any(len(t) for t in tables) else tables[0]
    stems = {**size_measures(pooled, labels, size_measure), **(measures or {})}
    rng = np.random.default_rng(options.seed)
    rows = []
    for label in labels:
        members = [_member(t, label, index_of, nm, stem=stems[label], include_border=include_border)
                   for t in tables]
        swelling = calibrated and is_cavity_label(label, cavity_labels)
        row = _label_row(members, area_px, area_nm2, thickness_nm=thickness_nm, swelling=swelling,
                         options=options, rng=rng)
        rows.append({"label": label, **row})
    return Table.from_rows(rows, list(INTERVAL_COLUMNS))


def measurement_intervals(
    measurement: Any,
    members: Sequence[Table] = (),
    *,
    options: IntervalOptions = IntervalOptions(),
) -> Table:
    """:func:`intervals` for a :class:`~defectlab.measurement.run.Measurement`, with its settings.

    Parameters
    ----------
    measurement : Measurement
        What :func:`~defectlab.measurement.measure` returned (labels or an ensemble's
        averaged prediction).
    members : sequence of Table
        Optional per-defect tables of the ensemble members on the same images (model
        uncertainty); when given, they are the members and ``measurement.defects`` is not
        resampled (its images, labels and settings are used).
    options : IntervalOptions
        Level, replicates, seed.
    """
    s = measurement.settings
    return intervals(list(members) or measurement.defects, measurement.images, measurement.labels,
                     thickness_nm=s.get("thickness_nm"), include_border=bool(s.get("include_border")),
                     cavity_labels=s.get("cavity_labels"), size_measure=s.get("size", "diameter"),
                     options=options)
