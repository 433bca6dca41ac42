"""Per-input measurement files, and the statistics of a whole batch built from them.

Each measured input's folder holds::

    defects.npy    the per-defect table (:data:`~defectlab.measurement.props.DEFECT_COLUMNS`) as
                   one structured array, lossless: the batch tables are built from these
    defects.csv    the same, for people
    image.json     the image's key, size, pixel size and its origin, covered pixels per
                   label, notes, and what the task adds (instances per class, seconds)
    members/<name>/defects.npy   predicted by an ensemble (``train --folds``): each member's own
                   defects of the image (model uncertainty in the batch's intervals)

The batch's statistics are those of :func:`defectlab.measurement.measure` on all the images at
once: the per-defect tables one after the other (in input order), per-image statistics,
per-set statistics and histograms. Per-image rows are computed image by image (the same
values as one call over everything, without its cost that grows with images × defects);
per-set rows pool the images by pixel size first, so their area sums are added in another
order than a single call would: nm-based areas and densities may differ from it in the
last digit (relative 1e-15), counts and sizes do not. The batch's confidence intervals
(``Measurement.intervals``, :mod:`defectlab.measurement.uncertainty`) are computed from the
same tables, with the members' where every input has them.

Examples
--------
>>> import tempfile, pathlib
>>> from defectlab.measurement import measure_item
>>> from defectlab.measurement.stats import ImageInfo
>>> from defectlab.model import Item, Ellipse
>>> item = Item("a.png", (64, 64), (Ellipse(label="cavity", cx=32, cy=32, rx=10, ry=10),))
>>> table, notes = measure_item(item, pixel_size_nm=0.5)
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_unit_measurement(folder, table, ImageInfo("a", (64, 64), 0.5, {"cavity": 316}), notes)
>>> m = summarize([folder], ["cavity"])
>>> int(m.per_set["count"][0]), float(m.per_set["density_per_um2"][0]) == 1 / (64 * 64 * 0.25) * 1e6
(1, True)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..measurement.options import MeasureOptions
from ..measurement.run import Measurement, set_histograms
from ..measurement.props import DEFECT_COLUMNS, empty_defect_table
from ..measurement.report import json_ready
from ..measurement.stats import ImageInfo, size_measures, statistics
from ..measurement.table import Table
from ..model import Note
from .inputs import BatchError

__all__ = ["read_member_defects", "read_unit_measurement", "summarize", "write_member_defects",
           "write_unit_measurement"]

DEFECTS_NPY = "defects.npy"
DEFECTS_CSV = "defects.csv"
IMAGE_JSON = "image.json"
#: The subfolder of an input's folder with each ensemble member's own defects.
MEMBERS_DIR = "members"


def _write_defects_npy(path: Path, defects: Table) -> None:
    """The per-defect table as one structured array, lossless."""
    cols = {n: (defects[n].astype(str) if defects[n].dtype == object else defects[n]) for n in defects.columns}
    rows = np.empty(len(defects), dtype=[(n, v.dtype) for n, v in cols.items()])
    for n, v in cols.items():
        rows[n] = v
    np.save(path, rows, allow_pickle=False)


def _read_defects_npy(path: Path) -> Table:
    rows = np.load(path, allow_pickle=False)
    return Table({n: rows[n] for n in rows.dtype.names})


def write_member_defects(folder: str | Path, member: str, defects: Table) -> None:
    """Write an ensemble member's own defects of an input, ``members/<member>/defects.npy``."""
    dest = Path(folder) / MEMBERS_DIR / member
    dest.mkdir(parents=True)
    _write_defects_npy(dest / DEFECTS_NPY, defects)


def read_member_defects(folder: str | Path) -> dict[str, Table]:
    """Member name -> its defects of the input in ``folder`` (empty without members)."""
    root = Path(folder) / MEMBERS_DIR
    if not root.is_dir():
        return {}
    try:
        return {p.parent.name: _read_defects_npy(p) for p in sorted(root.glob(f"*/{DEFECTS_NPY}"))}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BatchError(f"{root}: the ensemble members' measurement files cannot be read "
                         f"({type(err).__name__}: {err}); run the batch again with --force for this input") from err


def write_unit_measurement(folder: str | Path, defects: Table, info: ImageInfo, notes: Sequence[Note],
                           extra: Mapping[str, Any] | None = None) -> None:
    """Write ``defects.npy``, ``defects.csv`` and ``image.json`` of one image into ``folder``."""
    folder = Path(folder)
    _write_defects_npy(folder / DEFECTS_NPY, defects)
    defects.to_csv(folder / DEFECTS_CSV)
    doc = {
        "image": info.key, "size_hw": list(info.size_hw), "pixel_size_nm": info.pixel_size_nm,
        "calibration": info.calibration, "covered_px": dict(info.covered_px),
        "notes": [{"code": n.code, "message": n.message, "item": n.item, "where": n.where} for n in notes],
        **dict(extra or {}),
    }
    (folder / IMAGE_JSON).write_text(json.dumps(json_ready(doc), indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")


def read_unit_measurement(folder: str | Path) -> tuple[Table, ImageInfo, list[Note], dict[str, Any]]:
    """What :func:`write_unit_measurement` wrote: the table, the image info, notes, and all of image.json."""
    folder = Path(folder)
    try:
        table = _read_defects_npy(folder / DEFECTS_NPY)
        doc = json.loads((folder / IMAGE_JSON).read_text(encoding="utf-8"))
        info = ImageInfo(str(doc["image"]), (int(doc["size_hw"][0]), int(doc["size_hw"][1])),
                         doc["pixel_size_nm"], {str(k): int(v) for k, v in doc["covered_px"].items()},
                         doc.get("calibration"))
        notes = [Note(n["code"], n["message"], n.get("item"), n.get("where")) for n in doc.get("notes", [])]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise BatchError(f"{folder}: the measurement files cannot be read ({type(err).__name__}: {err}); "
                         "run the batch again with --force for this input") from err
    return table, info, notes, doc


def summarize(
    folders: Sequence[str | Path],
    labels: Sequence[str],
    options: MeasureOptions | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> Measurement:
    """The statistics of every image measured into ``folders``, as one :class:`Measurement`.

    Parameters
    ----------
    folders : sequence of path
        Output folders of a batch, each written by :func:`write_unit_measurement`.
    labels : sequence of str
        Labels to report, in order.
    options : MeasureOptions, optional
        As in :func:`defectlab.measurement.measure`; the statistics use ``thickness``,
        ``include_border``, ``cavity_labels``, ``size_measure`` and ``bins``.
    settings : mapping, optional
        Recorded in ``Measurement.settings``.

    The intervals (``Measurement.intervals``) mix the ensemble members' own defects when every
    folder has them (``members/<name>/``, the same members in each), as
    :func:`defectlab.measurement.measure` does with the members' pre-labels.
    """
    o = options if options is not None else MeasureOptions()
    tables: list[Table] = []
    infos: list[ImageInfo] = []
    notes: list[Note] = []
    by_member: list[dict[str, Table]] = []
    for folder in folders:
        t, info, n, _ = read_unit_measurement(folder)
        tables.append(t)
        infos.append(info)
        notes += n
        by_member.append(read_member_defects(folder))
    member_tables = _member_tables(folders, by_member)
    keys = [i.key for i in infos]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise BatchError(f"two inputs hold an image called {dup!r}; measure them into different --out folders")
    labels = list(labels)
    defects = Table.concat([t for t in tables if len(t)], DEFECT_COLUMNS) if any(len(t) for t in tables) \
        else empty_defect_table()
    stems = size_measures(defects, labels, o.size_measure)
    opts = dict(thickness_nm=o.thickness, include_border=o.include_border, cavity_labels=o.cavity_labels,
                measures=stems)
    parts = [statistics(t if len(t) else empty_defect_table(), [info], labels, **opts)[0]
             for t, info in zip(tables, infos)]
    per_image = Table.concat(parts, parts[0].columns) if parts else statistics(defects, [], labels, **opts)[0]
    per_set = _per_set(defects, infos, labels, opts)
    hists = set_histograms(defects, infos, labels, include_border=o.include_border, measures=stems, bins=o.bins)
    every = o.settings(labels)
    settings = {**dict(settings or {}), **{k: every[k] for k in ("thickness_nm", "include_border", "size",
                                                                  "cavity_labels")}}
    if member_tables:
        settings["members"] = sorted(by_member[0])
        notes.append(Note("model-uncertainty", f"the intervals include the spread between the {len(member_tables)} "
                                               "ensemble members that predicted these images (model uncertainty)"))
    m = Measurement(defects, per_image, per_set, tuple(infos), tuple(labels), hists, settings, tuple(notes))
    if not infos:
        return m
    from ..measurement.uncertainty import measurement_intervals

    return dataclasses.replace(m, intervals=measurement_intervals(m, member_tables))


def _member_tables(folders: Sequence[str | Path], by_member: Sequence[dict[str, Table]]) -> list[Table]:
    """Each ensemble member's defects of every input, one table per member (none without
    members); every input must have been predicted by the same members."""
    names = [sorted(d) for d in by_member]
    for folder, got in zip(folders, names):
        if got != names[0]:
            raise BatchError(f"{folder}: predicted by ensemble members {got or 'none'} ({MEMBERS_DIR}/), "
                             f"{folders[0]} by {names[0] or 'none'}: the inputs were predicted by different "
                             "models; run the batch again with --force")
    if not names or not names[0]:
        return []
    return [Table.concat([d[name] for d in by_member if len(d[name])], DEFECT_COLUMNS)
            if any(len(d[name]) for d in by_member) else empty_defect_table() for name in names[0]]


def _per_set(defects: Table, infos: Sequence[ImageInfo], labels: Sequence[str], opts: dict[str, Any]) -> Table:
    """Per-set statistics with the images pooled by pixel size (one pseudo-image per size)."""
    group_of: dict[float | None, int] = {}
    area: list[int] = []
    covered: list[dict[str, int]] = []
    code: dict[str, str] = {}
    for info in infos:
        g = group_of.setdefault(info.pixel_size_nm or None, len(group_of))
        if g == len(area):
            area.append(0)
            covered.append({})
        area[g] += info.size_hw[0] * info.size_hw[1]
        for lab, n in info.covered_px.items():
            covered[g][lab] = covered[g].get(lab, 0) + int(n)
        code[info.key] = f"\0group-{g}"
    groups = [ImageInfo(f"\0group-{g}", (1, area[g]), nm, covered[g]) for nm, g in group_of.items()]
    pooled = defects
    if len(defects):
        pooled = defects.with_column("image", np.asarray([code[k] for k in defects["image"]], dtype=object))
    _, per_set = statistics(pooled, groups, labels, **opts)
    return per_set.with_column("images", np.full(len(per_set), len(infos), dtype=np.int64))
