"""Measure a whole dataset (labels or predictions): calibration, per-defect table, statistics.

:func:`measure` is what ``defectlab measure`` runs; its result writes the report with
:meth:`Measurement.write`.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
>>> export = pathlib.Path(tempfile.mkdtemp()) / "export"
>>> _ = make_synthetic_dataset(export, n_images=2, config=SyntheticConfig(size_hw=(96, 96),
...     n_cavities=4, n_loops=1, n_precipitates=0, n_lines=0))
>>> m = measure(export, pixel_size="0.5nm", thickness="80nm")
>>> m.per_set["label"].tolist()[:2], int(m.per_set["count"][0])
(['cavity', 'loop'], 8)
"""

from __future__ import annotations

import dataclasses

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DatasetError, ImageError
from ..imaging.micrograph import CalibrationWarning, read_micrograph, read_pixel_size
from ..model import Dataset, Item, Note
from ..raster import DEFAULT_LINE_WIDTH, instances
from .options import MeasureOptions, SizeWarning
from .props import empty_defect_table, measure_instances
from .stats import ImageInfo, histogram, size_measures, statistics
from .table import Table

__all__ = [
    "MEMBERS_FOLDER", "PLAUSIBLE_SIZE_NM", "Measurement", "implausible_sizes", "item_calibration", "load_dataset",
    "measure", "members_beside", "reported_labels",
]


def load_dataset(source: Dataset | str | Path, images: str | Path | None = None) -> Dataset:
    """``source`` itself when it is a Dataset, else ``defectlab.read(source, images=images)``."""
    if isinstance(source, Dataset):
        return source
    from ..formats import read

    return read(source, images=images) if images is not None else read(source)


def item_calibration(
    item: Item, pixel_size_nm: float | None, *, pixels: bool
) -> tuple[np.ndarray | None, float | None, str | None, str | None]:
    """An item's micrograph (when ``pixels``), pixel size, its origin, and why it has none.

    Returns ``(array or None, nm or None, calibration or None, why or None)``; an explicit
    ``pixel_size_nm`` wins over the file's calibration.
    """
    if item.image is None:
        if pixel_size_nm:
            return None, pixel_size_nm, "override", None
        return None, None, None, "image file not found (use --images DIR, or give --pixel-size)"
    if pixels:
        m = read_micrograph(item.image, pixel_size=pixel_size_nm)
        if m.size_hw != item.size_hw:
            raise ImageError(f"{item.image}: image is {m.size_hw[1]}x{m.size_hw[0]} px (WxH), "
                             f"the labels of {item.name!r} say {item.size_hw[1]}x{item.size_hw[0]}")
        return m.array, m.pixel_size_nm, m.metadata.get("calibration"), m.metadata.get("why")
    if pixel_size_nm:
        return None, pixel_size_nm, "override", None
    nm, meta = read_pixel_size(item.image)
    return None, nm, meta.get("calibration"), meta.get("why")


def covered_px(found: Sequence[Any], size_hw: tuple[int, int], names: dict[int, str]) -> dict[str, int]:
    """Label -> pixels covered by its instances (overlaps counted once)."""
    canvases: dict[str, np.ndarray] = {}
    for inst in found:
        label = names[inst.class_id]
        canvas = canvases.get(label)
        if canvas is None:
            canvas = canvases[label] = np.zeros(size_hw, dtype=bool)
        canvas[inst.crop.slices] |= inst.crop.bitmap
    return {k: int(np.count_nonzero(v)) for k, v in canvases.items()}


def measure_dataset(
    dataset: Dataset,
    *,
    pixel_size_nm: float | None = None,
    intensity: bool = True,
    visible_only: bool = False,
    line_width: float = DEFAULT_LINE_WIDTH,
    progress: bool = False,
    desc: str = "measuring",
) -> tuple[Table, list[ImageInfo], list[Note]]:
    """Per-defect table of every item, the per-image info, and notes (what was not measured, why)."""
    from tqdm.auto import tqdm

    class_index = dataset.class_index()
    for it in dataset.items:  # labels used by shapes but not declared: classes after the declared ones
        for s in it.shapes:
            class_index.setdefault(s.label, len(class_index) + 1)
    names = {v: k for k, v in class_index.items()}
    tables: list[Table] = []
    infos: list[ImageInfo] = []
    notes: list[Note] = []
    for item in tqdm(dataset.items, desc=desc, unit="image", disable=not progress):
        array, nm, calibration, why = item_calibration(item, pixel_size_nm, pixels=intensity)
        if nm is None:
            notes.append(Note("no-calibration", f"no pixel size ({why}); measured in px only", item=item.name))
        found, skipped = instances(item, class_index, visible_only=visible_only, line_width=line_width)
        notes.extend(skipped)
        tables.append(measure_instances(found, item.size_hw, item_key=item.key, class_names=names,
                                        image=array, pixel_size_nm=nm))
        infos.append(ImageInfo(item.key, item.size_hw, nm, covered_px(found, item.size_hw, names), calibration))
    defects = Table.concat(tables) if tables else empty_defect_table()
    return defects, infos, notes


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure` found.

    Attributes
    ----------
    defects : Table
        One row per defect (:data:`~defectlab.measurement.props.DEFECT_COLUMNS`).
    per_image : Table
        One row per (image, label): counts, densities, sizes, area fraction, swelling.
    per_set : Table
        One row per label over all images.
    images : tuple of ImageInfo
        Each image's key, size, pixel size and its origin.
    labels : tuple of str
        The labels reported.
    histograms : dict
        label -> ``{"unit": "nm" or "px", "size_measure", "edges": [...], "counts": [...]}``.
    settings : dict
        The options used.
    notes : tuple of Note
        What was not measured or calibrated, and why.
    intervals : Table or None
        One row per label: 95 % confidence intervals of the per-set count, densities, mean
        size and swelling (:func:`~defectlab.measurement.uncertainty.intervals`: bootstrap over
        defects and images, never narrower than the Poisson interval of the count).
    """

    defects: Table
    per_image: Table
    per_set: Table
    images: tuple[ImageInfo, ...]
    labels: tuple[str, ...]
    histograms: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    notes: tuple[Note, ...] = field(default_factory=tuple)
    intervals: Table | None = None

    @property
    def calibrated(self) -> bool:
        """True when every image has a pixel size (nm values are filled)."""
        return bool(self.images) and all(i.pixel_size_nm for i in self.images)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: settings, images and their calibration, per-label statistics."""
        return {
            "settings": self.settings,
            "calibrated": self.calibrated,
            "images": [{"image": i.key, "size_hw": list(i.size_hw), "pixel_size_nm": i.pixel_size_nm,
                        "calibration": i.calibration} for i in self.images],
            "labels": {r["label"]: _clean(r) for r in self.per_set.rows()},
            "histograms": self.histograms,
            "intervals": {r["label"]: _clean(r) for r in self.intervals.rows()} if self.intervals is not None else {},
            "notes": [str(n) for n in self.notes],
        }

    def write(self, out: str | Path, *, overwrite: bool = False, figures: bool = True) -> Path:
        """Write CSV (+ Parquet with pyarrow) tables, ``summary.json``, figures and ``index.html``."""
        from .report import write_measurement

        return write_measurement(self, out, overwrite=overwrite, figures=figures)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def set_histograms(defects: Table, images: Sequence[ImageInfo], labels: Sequence[str], *, include_border: bool,
                   measures: dict[str, str], bins: int | str = "auto") -> dict[str, dict[str, Any]]:
    """Per label, the histogram of sizes (nm when every image is calibrated, else px)."""
    nm_of = {i.key: i.pixel_size_nm for i in images}
    calibrated = bool(images) and all(nm_of.values())
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        values = label_sizes(defects, label, nm_of if calibrated else None, include_border=include_border,
                             stem=measures[label])
        counts, e = histogram(values, bins=bins)
        out[label] = {"unit": "nm" if calibrated else "px", "size_measure": measures[label],
                      "edges": [float(x) for x in e], "counts": [int(c) for c in counts]}
    return out


def label_sizes(defects: Table, label: str, nm_of: dict[str, float | None] | None, *, include_border: bool,
                stem: str) -> np.ndarray:
    """Sizes (column ``<stem>_px``) of the sized defects of ``label``: in nm with ``nm_of``
    (image key -> pixel size), else px."""
    if len(defects) == 0:
        return np.zeros(0)
    sel = np.asarray(defects["label"] == label, bool)
    if not include_border:
        sel &= ~defects["touches_border"].astype(bool)
    px = defects[f"{stem}_px"][sel].astype(np.float64)
    if nm_of is None:
        return px
    scale = np.asarray([nm_of[k] or math.nan for k in defects["image"][sel]], dtype=np.float64)
    return px * scale


#: Declared label types whose shapes are never measured (no area, no line).
_UNMEASURED_TYPES = {"tag", "points", "skeleton", "cuboid"}


def reported_labels(dataset: Dataset) -> list[str]:
    """Labels reported: the declared ones (an image without defects of a label is a density of
    0, not a missing label) except tag/points-only ones, then undeclared labels used by shapes."""
    used = {s.label for it in dataset.items for s in it.shapes if s.is_area or s.kind == "polyline"}
    declared = [lab.name for lab in dataset.labels if lab.name in used or lab.type not in _UNMEASURED_TYPES]
    return declared + sorted(used - set(declared))


#: The folder beside measured pre-labels where :func:`measure` looks for the other members of
#: an ensemble (``prelabels/members/<member>/annotations.xml``, one subfolder per model).
MEMBERS_FOLDER = "members"


def members_beside(source: Dataset | str | Path) -> list[Path]:
    """The ensemble members' pre-labels beside a predictions export, in name order: for
    ``…/prelabels/annotations.xml`` (or its folder), ``…/prelabels/members/*/annotations.xml``;
    none for anything else."""
    if isinstance(source, Dataset):
        return []
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.name != "annotations.xml":
        return []
    return sorted((folder / MEMBERS_FOLDER).glob("*/annotations.xml"))


def _member_tables(ds: Dataset, members: Sequence[Dataset | str | Path], opts: MeasureOptions,
                   progress: bool) -> list[Table]:
    """The per-defect table of each ensemble member's predictions of ``ds``' images, measured
    as ``ds`` is (a member's items take ``ds``' image files, for the calibration and the
    intensities)."""
    by_key = {it.key: it for it in ds.items}
    tables = []
    for j, member in enumerate(members):
        mds = load_dataset(member)
        where = mds.source or str(member)
        keys = [it.key for it in mds.items]
        if sorted(keys) != sorted(by_key):
            missing, extra = sorted(set(by_key) - set(keys)), sorted(set(keys) - set(by_key))
            raise DatasetError(f"{where}: an ensemble member must predict the same images as the ensemble; "
                               f"missing {missing[:5]}, not in the ensemble's {extra[:5]}")
        for it in mds.items:
            if it.size_hw != by_key[it.key].size_hw:
                raise DatasetError(f"{where}: image {it.name!r} is {it.size_hw[1]}x{it.size_hw[0]} px (WxH), "
                                   f"the ensemble's is {by_key[it.key].size_hw[1]}x{by_key[it.key].size_hw[0]}")
        items = [dataclasses.replace(it, image=by_key[it.key].image) for it in mds.items]
        defects, _, _ = measure_dataset(dataclasses.replace(mds, items=tuple(items)), pixel_size_nm=opts.pixel_size,
                                        intensity=opts.intensity, visible_only=opts.visible_only,
                                        line_width=opts.line_width, progress=progress,
                                        desc=f"member {j + 1}/{len(members)}")
        tables.append(defects)
    return tables


def measure(
    source: Dataset | str | Path,
    options: MeasureOptions | None = None,
    *,
    images: str | Path | None = None,
    members: Sequence[Dataset | str | Path] | None = None,
    progress: bool = False,
    **changes: Any,
) -> Measurement:
    """Measure every defect of a labeling export or of predictions, in px and nm.

    Parameters
    ----------
    source : Dataset or path
        Labels or predictions: anything :func:`defectlab.read` reads (a CVAT export, a folder
        of mask images, …) or a Dataset.
    options : MeasureOptions, optional
        Calibration, thickness, border rule, cavity labels, size measure, bins, …
        (:class:`~defectlab.measurement.options.MeasureOptions`; default: its defaults).
    images : path, optional
        Folder of the micrographs, if not beside the export (their calibration and intensities).
    members : sequence of Dataset or path, optional
        The predictions of the same images by each member of the ensemble that predicted
        ``source`` (model uncertainty): the intervals then mix the members (see
        :mod:`~defectlab.measurement.uncertainty`). Default: the pre-labels in
        ``members/*/annotations.xml`` beside ``source`` (:func:`members_beside`), if any;
        ``()`` for none.
    progress : bool
        Show a progress bar.
    **changes
        Fields of :class:`~defectlab.measurement.options.MeasureOptions` by name, applied
        over ``options``: ``pixel_size="0.38nm"``, ``thickness="80nm"``, ``size_measure=``, ….

    Returns
    -------
    Measurement
        Tables, histograms, notes; ``.write(out)`` writes the report. A
        :class:`~defectlab.imaging.micrograph.CalibrationWarning` is issued when some images
        have no pixel size: their results are in px only.
    """
    opts = MeasureOptions.build(options, **changes)
    ds = load_dataset(source, images)
    defects, infos, notes = measure_dataset(ds, pixel_size_nm=opts.pixel_size, intensity=opts.intensity,
                                            visible_only=opts.visible_only, line_width=opts.line_width,
                                            progress=progress)
    labels = reported_labels(ds)
    measures = size_measures(defects, labels, opts.size_measure)
    per_image, per_set = statistics(defects, infos, labels, thickness_nm=opts.thickness,
                                    include_border=opts.include_border, cavity_labels=opts.cavity_labels,
                                    measures=measures)
    hists = set_histograms(defects, infos, labels, include_border=opts.include_border, measures=measures,
                           bins=opts.bins)
    uncalibrated = [i.key for i in infos if not i.pixel_size_nm]
    if uncalibrated:
        warnings.warn(uncalibrated_message(uncalibrated, len(infos)), CalibrationWarning, stacklevel=2)
    notes += implausible_sizes(per_set, opts.pixel_size)
    for note in notes:
        if note.code == "implausible-size":
            warnings.warn(note.message, SizeWarning, stacklevel=2)
    settings = {"source": ds.source if isinstance(source, Dataset) else str(source), **opts.settings(labels)}
    members = members_beside(source) if members is None else list(members)
    tables = _member_tables(ds, members, opts, progress) if members and infos else []
    if tables:
        settings["members"] = [m.source if isinstance(m, Dataset) else str(m) for m in members]
        notes.append(Note("model-uncertainty", f"the intervals include the spread between the {len(tables)} "
                                               f"ensemble members that predicted these images (model uncertainty)"))
    m = Measurement(defects, per_image, per_set, tuple(infos), tuple(labels), hists, settings, tuple(notes))
    if not infos:
        return m
    from .uncertainty import measurement_intervals

    return dataclasses.replace(m, intervals=measurement_intervals(m, tables))


#: Median defect sizes a TEM shows, nm: from a few atoms (a 0.1 nm cluster) to 5 µm (large
#: precipitates and voids); outside this range the pixel size is most likely in the wrong unit.
PLAUSIBLE_SIZE_NM = (0.1, 5000.0)


def implausible_sizes(per_set: Table, pixel_size_nm: float | None) -> list[Note]:
    """A note for each label whose median size (nm) lies outside :data:`PLAUSIBLE_SIZE_NM`.

    Examples
    --------
    >>> t = Table.from_rows([{"label": "cavity", "size_median_nm": 29500.0, "size_median_px": 59.0}])
    >>> print(implausible_sizes(t, 500.0)[0].message)  # doctest: +NORMALIZE_WHITESPACE
    cavity: median size 29500 nm (59 px) is implausible for a defect seen in TEM (0.1 nm to 5 µm); the pixel
    size is 500 nm: is its unit right (0.5um where 0.5nm was meant)?
    """
    lo, hi = PLAUSIBLE_SIZE_NM
    notes = []
    for row in per_set.rows() if len(per_set) else []:
        nm = row.get("size_median_nm")
        if nm is None or not isinstance(nm, float) or not math.isfinite(nm) or lo <= nm <= hi:
            continue
        px = row.get("size_median_px")
        pixel = f"the pixel size is {pixel_size_nm:g} nm" if pixel_size_nm else "check the files' pixel size"
        hint = " (0.5um where 0.5nm was meant)" if nm > hi else " (0.5A where 0.5nm was meant)"
        notes.append(Note("implausible-size", f"{row['label']}: median size {nm:.6g} nm ({px:.3g} px) is implausible "
                                              f"for a defect seen in TEM ({lo:g} nm to {hi / 1000:g} µm); {pixel}: is "
                                              f"its unit right{hint}?"))
    return notes


def uncalibrated_message(keys: Sequence[str], total: int) -> str:
    """The warning for images without a pixel size."""
    shown = ", ".join(keys[:5]) + (f", … ({len(keys) - 5} more)" if len(keys) > 5 else "")
    return (f"{len(keys)} of {total} image(s) have no pixel size calibration ({shown}): their measurements "
            f"are in px only (nm columns empty); give one with pixel_size='0.38nm' (--pixel-size 0.38nm)")
