"""A small column table: what the measurements are returned as (no pandas needed).

Each column is a 1-D numpy array of one length; names carry their unit (``area_px``,
``diameter_nm``). ``table.to_pandas()`` gives a DataFrame when pandas is installed;
``to_csv`` always works, ``to_parquet`` needs pyarrow (``pip install 'defectlab[parquet]'``).

Examples
--------
>>> t = Table({"label": ["cavity", "loop"], "area_px": [12, 30]})
>>> len(t), t.columns, t["area_px"].tolist()
(2, ['label', 'area_px'], [12, 30])
>>> t.filter(t["area_px"] > 20).rows()
[{'label': 'loop', 'area_px': 30}]
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["Table", "has_parquet"]


def has_parquet() -> bool:
    """True when pyarrow is installed (Parquet output)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _column(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        if arr.size == 0:
            arr = np.asarray([], dtype=np.float64)
        else:
            raise ValueError(f"table column {name!r}: expected 1-D values, got shape {arr.shape}")
    if arr.dtype.kind == "U" or (arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr)):
        arr = arr.astype(object)
    return arr


def _py(value: Any) -> Any:
    """A numpy scalar as a plain Python value (NaN stays a float)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


class Table:
    """Named 1-D columns of equal length, in order.

    Parameters
    ----------
    columns : mapping of str to sequence
        Column name -> values (strings, numbers, bools).
    """

    __slots__ = ("_cols",)

    def __init__(self, columns: Mapping[str, Any] | None = None) -> None:
        cols = {str(k): _column(v, str(k)) for k, v in (columns or {}).items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            sizes = {k: len(v) for k, v in cols.items()}
            raise ValueError(f"table: expected columns of one length, got {sizes}")
        self._cols = cols

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> "Table":
        """A table from dicts (missing values become NaN); ``columns`` fixes the order."""
        names = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
        return cls({n: [r.get(n, math.nan) for r in rows] for n in names})

    @classmethod
    def concat(cls, tables: Iterable["Table"], columns: Sequence[str] | None = None) -> "Table":
        """Tables one after the other; columns are the union (missing values NaN)."""
        tables = [t for t in tables]
        names = list(columns) if columns is not None else list(dict.fromkeys(c for t in tables for c in t.columns))
        out: dict[str, Any] = {}
        for n in names:
            parts = [t[n] if n in t._cols else np.full(len(t), np.nan) for t in tables]
            parts = [p for p in parts if len(p)]
            out[n] = np.concatenate([p.astype(object) if any(q.dtype == object for q in parts) else p
                                     for p in parts]) if parts else np.asarray([], dtype=np.float64)
        return cls(out)

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._cols[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns are {list(self._cols)}") from None

    @property
    def columns(self) -> list[str]:
        """Column names in order."""
        return list(self._cols)

    def filter(self, mask: Any) -> "Table":
        """The rows where ``mask`` (bool array of len(self)) is True."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != (len(self),):
            raise ValueError(f"table filter: expected a bool mask of length {len(self)}, got shape {m.shape}")
        return Table({k: v[m] for k, v in self._cols.items()})

    def with_column(self, name: str, values: Any) -> "Table":
        """A copy with a column added or replaced."""
        cols = dict(self._cols)
        cols[name] = values
        return Table(cols)

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dicts of plain Python values."""
        names = self.columns
        return [{n: _py(self._cols[n][i]) for n in names} for i in range(len(self))]

    def to_csv(self, path: str | Path) -> None:
        """Write a CSV file (header row; NaN written as an empty field)."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(self.columns)
            for row in self.rows():
                w.writerow(["" if isinstance(v, float) and math.isnan(v) else
                            (f"{v:.10g}" if isinstance(v, float) else v) for v in row.values()])

    def to_parquet(self, path: str | Path) -> None:
        """Write a Parquet file; needs pyarrow (``pip install 'defectlab[parquet]'``)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise ImportError("Parquet output needs pyarrow: pip install 'defectlab[parquet]'") from err
        arrays = {n: pa.array(list(v) if v.dtype == object else v) for n, v in self._cols.items()}
        pq.write_table(pa.table(arrays), path)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (pandas must be installed)."""
        import pandas as pd

        return pd.DataFrame({n: v for n, v in self._cols.items()})

    def __repr__(self) -> str:
        return f"Table({len(self)} rows: {', '.join(self.columns)})"

    def _repr_html_(self) -> str:  # Jupyter: the first 20 rows
        import html

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for row in self.rows()[:20]:
            cells = "".join(f"<td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td>"
                            for v in row.values())
            body.append(f"<tr>{cells}</tr>")
        more = f"<p>… {len(self) - 20} more rows</p>" if len(self) > 20 else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"
