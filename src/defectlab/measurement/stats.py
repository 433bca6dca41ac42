"""Statistics of defects per image and per set: counts, densities, sizes, area fraction, swelling.

Definitions (per label; ``A`` is the image area, ``t`` the foil thickness):

- **count**: every defect in the image, border-touching ones included (they are in the
  area); ``count_border`` of them touch the image edge; ``count_sized`` are used for sizes.
- **number density**: count / A (``density_per_um2``, ``density_per_px2``), and
  count / (A·t) (``density_per_m3``) given a thickness.
- **size distribution**: of the equivalent diameter (``size_measure="diameter"``) or of the major
  axis (``size_measure="major_axis"``, e.g. for inclined loops); for labels whose defects are all
  polylines (dislocation lines), of their length. Border-touching defects are left out
  unless ``include_border=True``: their sizes are cut by the edge. Mean, standard deviation
  (ddof=1), standard error of the mean (std/√n), median, min, max, and a histogram.
- **area fraction**: pixels covered by the label's defects (overlaps counted once) / image pixels.
- **swelling** (cavity labels only): ``ΣπD³/6 ÷ (A·t − ΣπD³/6)``, cavities taken as spheres
  of their equivalent diameter D, over the sized cavities (``swelling_percent`` = ×100).

Per set, the sums are pooled over images: density = Σcount / ΣA, area fraction = Σcovered /
ΣA, swelling = ΣV / (Σ(A·t) − ΣV), sizes pooled over all sized defects. nm-based values of a
set are NaN unless every image has a pixel size.

Examples
--------
>>> round(swelling([10.0, 10.0], area_nm2=1000.0 * 1000.0, thickness_nm=100.0), 8)  # 2 cavities of 10 nm
1.047e-05
>>> size_summary([1.0, 2.0, 3.0])["sem"]
0.5773502691896258
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .table import Table

__all__ = [
    "CAVITY_PATTERN",
    "ImageInfo",
    "SIZE_MEASURES",
    "histogram",
    "is_cavity_label",
    "size_measures",
    "size_summary",
    "statistics",
    "swelling",
]

#: Labels whose name matches this (case-insensitive) are cavities, for swelling.
CAVITY_PATTERN = r"cavit|bubble|void|pore"
#: Allowed values of ``size``.
SIZE_MEASURES = ("diameter", "major_axis")


def is_cavity_label(name: str, cavity_labels: Sequence[str] | None = None) -> bool:
    """True when ``name`` is a cavity label: in ``cavity_labels`` (case-insensitive), or, when
    that is None, matching :data:`CAVITY_PATTERN` (cavity, bubble, void, pore).

    Examples
    --------
    >>> is_cavity_label("He bubble"), is_cavity_label("loop"), is_cavity_label("loop", ["Loop"])
    (True, False, True)
    """
    if cavity_labels is not None:
        return name.casefold() in {c.casefold() for c in cavity_labels}
    return re.search(CAVITY_PATTERN, name, flags=re.IGNORECASE) is not None


def size_summary(values: Iterable[float]) -> dict[str, float]:
    """n, mean, std (ddof=1), sem (std/√n), median, min, max of the finite ``values``."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        nan = math.nan
        return {"n": 0, "mean": nan, "std": nan, "sem": nan, "median": nan, "min": nan, "max": nan}
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    return {"n": n, "mean": float(v.mean()), "std": std, "sem": std / math.sqrt(n) if n > 1 else math.nan,
            "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def histogram(values: Iterable[float], bins: int | str | Sequence[float] = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(counts int64 (k,), edges float64 (k+1,)) of the finite ``values`` (numpy's binning)."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    counts, edges = np.histogram(v, bins=bins)
    return counts.astype(np.int64), edges


def swelling(diameters_nm: Iterable[float], *, area_nm2: float, thickness_nm: float) -> float:
    """Cavity swelling ``ΣπD³/6 ÷ (A·t − ΣπD³/6)`` as a fraction (ΔV/V).

    Parameters
    ----------
    diameters_nm : iterable of float
        Cavity diameters D, nm (spheres).
    area_nm2 : float
        Imaged area A, nm².
    thickness_nm : float
        Foil thickness t, nm.
    """
    d = np.asarray(list(diameters_nm), dtype=np.float64)
    v = float(np.sum(math.pi * d**3 / 6.0))
    return v / (area_nm2 * thickness_nm - v)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the statistics need to know of one image.

    ``covered_px``: label -> number of pixels covered by that label's defects (overlaps once).
    """

    key: str
    size_hw: tuple[int, int]
    pixel_size_nm: float | None
    covered_px: Mapping[str, int] = field(default_factory=dict)
    calibration: str | None = None


def size_measures(defects: Table, labels: Sequence[str], size_measure: str = "diameter") -> dict[str, str]:
    """Label -> the size column stem used for it: ``"length"`` when every defect of the label is
    a polyline (dislocation lines), else ``size_measure`` (``"diameter"`` or ``"major_axis"``)."""
    if size_measure not in SIZE_MEASURES:
        raise ValueError(f"expected size_measure in {SIZE_MEASURES}, got {size_measure!r}")
    out = {}
    for label in labels:
        kinds = defects["kind"][np.asarray(defects["label"] == label, bool)] if len(defects) else []
        out[label] = "length" if len(kinds) and all(k == "polyline" for k in kinds) else size_measure
    return out


def _stats_row(
    defects: Table,
    sel: np.ndarray,
    *,
    label: str,
    area_px: float,
    nm: float | None,
    covered_px: float,
    thickness_nm: float | None,
    include_border: bool,
    cavity: bool,
    stem: str,
) -> dict[str, Any]:
    nan = math.nan
    border = defects["touches_border"][sel].astype(bool) if len(defects) else np.zeros(0, bool)
    count = int(sel.sum())
    sized = sel.copy()
    if not include_border and count:
        sized[sel] = ~border
    px = size_summary(defects[f"{stem}_px"][sized]) if len(defects) else size_summary([])
    area_nm2 = area_px * nm * nm if nm else nan
    row: dict[str, Any] = {
        "label": label,
        "count": count,
        "count_border": int(border.sum()),
        "count_sized": int(sized.sum()),
        "image_area_px": area_px,
        "image_area_um2": area_nm2 * 1e-6,
        "density_per_px2": count / area_px if area_px else nan,
        "density_per_um2": count / area_nm2 * 1e6 if nm else nan,
        "density_per_m3": count / (area_nm2 * thickness_nm) * 1e27 if (nm and thickness_nm) else nan,
        "size_measure": stem,
        "size_mean_px": px["mean"], "size_std_px": px["std"], "size_sem_px": px["sem"],
        "size_median_px": px["median"], "size_min_px": px["min"], "size_max_px": px["max"],
        "size_mean_nm": px["mean"] * nm if nm else nan, "size_std_nm": px["std"] * nm if nm else nan,
        "size_sem_nm": px["sem"] * nm if nm else nan, "size_median_nm": px["median"] * nm if nm else nan,
        "size_min_nm": px["min"] * nm if nm else nan, "size_max_nm": px["max"] * nm if nm else nan,
        "area_fraction": covered_px / area_px if area_px else nan,
        "swelling_percent": nan,
    }
    if cavity and nm and thickness_nm:
        d_nm = defects["diameter_px"][sized] * nm
        row["swelling_percent"] = 100.0 * swelling(d_nm, area_nm2=area_nm2, thickness_nm=thickness_nm)
    return row


def statistics(
    defects: Table,
    images: Sequence[ImageInfo],
    labels: Sequence[str],
    *,
    thickness_nm: float | None = None,
    include_border: bool = False,
    cavity_labels: Sequence[str] | None = None,
    size_measure: str = "diameter",
    measures: Mapping[str, str] | None = None,
) -> tuple[Table, Table]:
    """Statistics per image and label, and per label over the set.

    Parameters
    ----------
    defects : Table
        Per-defect table (:data:`~defectlab.measurement.props.DEFECT_COLUMNS`) of all images.
    images : sequence of ImageInfo
        Every image measured (images without defects count: they add area).
    labels : sequence of str
        Labels to report, in order.
    thickness_nm : float, optional
        Foil thickness, for volume density and swelling.
    include_border : bool
        Use border-touching defects in size statistics and swelling too.
    cavity_labels : sequence of str, optional
        Labels that are cavities (swelling); by name (:func:`is_cavity_label`) when None.
    size_measure : {"diameter", "major_axis"}
        The size measure of the distribution.
    measures : mapping, optional
        Label -> size column stem, overriding :func:`size_measures` (to compare two tables
        on the same measure).

    Returns
    -------
    per_image : Table
        One row per (image, label): ``image`` and the columns listed in the module docstring.
    per_set : Table
        One row per label, pooled over the images, plus ``images`` (how many).
    """
    stems = {**size_measures(defects, labels, size_measure), **(measures or {})}
    img_col = defects["image"] if len(defects) else np.asarray([], dtype=object)
    lab_col = defects["label"] if len(defects) else np.asarray([], dtype=object)
    per_image: list[dict[str, Any]] = []
    for info in images:
        area_px = float(info.size_hw[0] * info.size_hw[1])
        in_image = img_col == info.key
        for label in labels:
            sel = in_image & (lab_col == label)
            row = _stats_row(defects, np.asarray(sel, bool), label=label, area_px=area_px, nm=info.pixel_size_nm,
                             covered_px=float(info.covered_px.get(label, 0)), thickness_nm=thickness_nm,
                             include_border=include_border, cavity=is_cavity_label(label, cavity_labels), stem=stems[label])
            per_image.append({"image": info.key, **row})

    all_calibrated = bool(images) and all(i.pixel_size_nm for i in images)
    per_set: list[dict[str, Any]] = []
    for label in labels:
        sel = np.asarray(lab_col == label, bool)
        area_px = float(sum(i.size_hw[0] * i.size_hw[1] for i in images))
        covered = float(sum(i.covered_px.get(label, 0) for i in images))
        # A set's physical values: each image's own pixel size, pooled.
        row = _stats_row(defects, sel, label=label, area_px=area_px, nm=None, covered_px=covered,
                         thickness_nm=thickness_nm, include_border=include_border, cavity=False, stem=stems[label])
        if all_calibrated:
            _pool_nm(row, defects, sel, images, thickness_nm=thickness_nm, include_border=include_border,
                     cavity=is_cavity_label(label, cavity_labels), stem=stems[label])
        per_set.append({"label": label, "images": len(images), **{k: v for k, v in row.items() if k != "label"}})
    return (Table.from_rows(per_image, ["image"] + _STATS_COLUMNS),
            Table.from_rows(per_set, ["label", "images"] + _STATS_COLUMNS[1:]))


_STATS_COLUMNS = [
    "label", "count", "count_border", "count_sized", "image_area_px", "image_area_um2",
    "density_per_px2", "density_per_um2", "density_per_m3", "size_measure",
    "size_mean_px", "size_std_px", "size_sem_px", "size_median_px", "size_min_px", "size_max_px",
    "size_mean_nm", "size_std_nm", "size_sem_nm", "size_median_nm", "size_min_nm", "size_max_nm",
    "area_fraction", "swelling_percent",
]


def _pool_nm(row: dict[str, Any], defects: Table, sel: np.ndarray, images: Sequence[ImageInfo], *,
             thickness_nm: float | None, include_border: bool, cavity: bool, stem: str) -> None:
    """Fill a set row's nm values from every image's own pixel size."""
    nm_of = {i.key: float(i.pixel_size_nm) for i in images if i.pixel_size_nm}
    area_nm2 = sum(i.size_hw[0] * i.size_hw[1] * nm_of[i.key] ** 2 for i in images)
    count = row["count"]
    row["image_area_um2"] = area_nm2 * 1e-6
    row["density_per_um2"] = count / area_nm2 * 1e6
    if thickness_nm:
        row["density_per_m3"] = count / (area_nm2 * thickness_nm) * 1e27
    sized = sel.copy()
    if not include_border and sel.any():
        sized[sel] = ~defects["touches_border"][sel].astype(bool)
    if len(defects):
        scale = np.asarray([nm_of.get(k, math.nan) for k in defects["image"][sized]], dtype=np.float64)
        s = size_summary(defects[f"{stem}_px"][sized] * scale)
        d_nm = defects["diameter_px"][sized] * scale
    else:
        s, d_nm = size_summary([]), np.zeros(0)
    for k in ("mean", "std", "sem", "median", "min", "max"):
        row[f"size_{k}_nm"] = s[k]
    if cavity and thickness_nm:
        v = float(np.sum(math.pi * d_nm**3 / 6.0))
        row["swelling_percent"] = 100.0 * v / (area_nm2 * thickness_nm - v)
