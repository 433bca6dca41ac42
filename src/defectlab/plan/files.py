"""``plan.json``: a plan with its fingerprint and options, written into a folder and read back.

The file::

    {"format": "defectlab-plan", "version": 1,
     "plan": {...Plan.to_dict()...},
     "fingerprint": {...Fingerprint.to_dict()...},
     "options": {...the PlanOptions used...}}

It is written to a temporary file beside it and renamed into place, so a reader never sees
half of one; its mode follows the umask.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import OutputError, ParseError
from .fingerprint import Fingerprint
from .options import PlanOptions
from .planner import CHOICES, Normalization, Plan

__all__ = ["PLAN_FILE", "write_plan", "read_plan", "plan_from_dict"]

#: The file name of a plan in a folder (a model folder, or the ``--out`` of ``defectlab plan``).
PLAN_FILE = "plan.json"
_FORMAT = "defectlab-plan"
_VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_plan(plan: Plan, folder: str | Path, *, fingerprint: Fingerprint | None = None,
               options: PlanOptions | None = None, overwrite: bool = False) -> Path:
    """Write ``folder/plan.json`` (the folder is created if missing); returns its path.

    Raises
    ------
    OutputError
        ``folder`` is a file, or ``plan.json`` exists there and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder")
    path = folder / PLAN_FILE
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")
    doc = {"format": _FORMAT, "version": _VERSION, "plan": plan.to_dict(),
           "fingerprint": None if fingerprint is None else fingerprint.to_dict(),
           "options": None if options is None else options.to_dict()}
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{PLAN_FILE}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plan_from_dict(data: Any, *, path: str | Path = "plan.json") -> Plan:
    """A :class:`Plan` from the ``"plan"`` object of a ``plan.json``; ParseError naming the field."""
    if not isinstance(data, dict):
        raise ParseError(path, f"expected a JSON object, got {type(data).__name__}", where="/plan")
    names = [f.name for f in fields(Plan)]
    missing = [n for n in names if n not in data and n not in ("reasons", "given", "training_px", "init")]
    if missing:
        raise ParseError(path, f"expected the field {missing[0]!r}", where="/plan")
    n = data["normalization"]
    if not isinstance(n, dict):
        raise ParseError(path, "expected an object", where="/plan/normalization")
    try:
        norm = Normalization(**{k: (math.nan if v is None else v) if k.startswith("dataset_") else v
                                for k, v in n.items() if k in {f.name for f in fields(Normalization)}})
    except (TypeError, ValueError) as err:
        raise ParseError(path, str(err), where="/plan/normalization") from None
    values = {k: data[k] for k in names if k in data and k != "normalization"}
    for key in ("tile_size", "overlap", "batch_size", "steps", "training_px"):
        if key in values and (isinstance(values[key], bool) or not isinstance(values[key], int) or values[key] < 0):
            raise ParseError(path, f"expected a whole number >= 0, got {values[key]!r}", where=f"/plan/{key}")
    for key in ("arch", "augment", "schedule", "device"):
        if not isinstance(values[key], str):
            raise ParseError(path, f"expected a string, got {values[key]!r}", where=f"/plan/{key}")
    if not isinstance(values.get("init", ""), (str, type(None))):
        raise ParseError(path, f"expected a string or null, got {values['init']!r}", where="/plan/init")
    for key in ("budget_s", "step_seconds"):
        if isinstance(values[key], bool) or not isinstance(values[key], (int, float)) or not values[key] > 0:
            raise ParseError(path, f"expected a number > 0, got {values[key]!r}", where=f"/plan/{key}")
    reasons = values.get("reasons", {})
    if not isinstance(reasons, dict):
        raise ParseError(path, "expected an object", where="/plan/reasons")
    given = values.get("given", [])
    if not isinstance(given, list) or any(g not in CHOICES for g in given):
        raise ParseError(path, f"expected a list of choices among {list(CHOICES)}, got {given!r}",
                         where="/plan/given")
    values["given"] = tuple(given)
    return Plan(normalization=norm, **values)


def read_plan(source: str | Path) -> tuple[Plan, dict[str, Any]]:
    """Read a ``plan.json`` (or the one in a folder): the plan, and the whole document.

    Raises
    ------
    ParseError
        Not JSON, not a defectlab plan, or a field of the wrong kind (named by a JSON pointer).
    """
    path = Path(source)
    if path.is_dir():
        path = path / PLAN_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParseError(path, "no such file (write one with defectlab plan DATA --out DIR)") from None
    except json.JSONDecodeError as err:
        raise ParseError(path, f"not JSON: {err.msg}", line=err.lineno, column=err.colno) from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise ParseError(path, f"expected a defectlab plan (\"format\": \"{_FORMAT}\")", where="/format")
    if doc.get("version") != _VERSION:
        raise ParseError(path, f"expected version {_VERSION}, got {doc.get('version')!r}", where="/version")
    return plan_from_dict(doc.get("plan"), path=path), doc
