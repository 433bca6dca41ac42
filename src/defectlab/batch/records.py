"""Completion records: what makes one output of a batch *complete and current*.

Every output folder ``out/<key>/`` holds ``batch_record.json``, written inside the folder
before the folder is renamed into place (so the record appears with the outputs, at once)::

    {"format": "defectlab-batch-record", "record_version": 1,
     "task": "measure", "key": "frame_0001",
     "input": "/data/frames/frame_0001.tif", "input_sha256": "…", "input_size": 8388736,
     "input_mtime_ns": 1718000000000000000, "labels_sha256": "…" or null,
     "model_sha256": "…" or null, "params": {…}, "defectlab_version": "0.1.0",
     "outputs": {"defects.npy": 5120, …}, "run_id": "…", "seconds": 0.41,
     "worker": "tcp://10.0.0.7:40123", "finished_utc": "2025-01-01T12:00:00Z"}

An output is **current** when its record exists and names the same task, parameters,
model digest, labels digest and defectlab version as the batch now running, every output
it lists is there with the size it had, and the input is the same. "The same input" is
decided cheaply first: the same size and modification time (``mtime_ns``) as recorded.
When only the size or time differ, the input is hashed (SHA-256) on a worker; an equal
digest means the file was touched but not changed, and the record is brought up to date
without redoing the work.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "out.txt").write_text("result")
>>> rec = {"format": RECORD_FORMAT, "record_version": RECORD_VERSION, "outputs": output_sizes(folder)}
>>> write_record(folder, rec); read_record(folder)["outputs"]
{'out.txt': 6}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = [
    "RECORD_FILE", "RECORD_FORMAT", "RECORD_VERSION", "TMP_DIR", "atomic_output", "clean_tmp", "input_stat",
    "output_sizes", "read_record", "record_state", "sha256_bytes", "sha256_file", "sha256_path", "write_record",
]

RECORD_FILE = "batch_record.json"
#: Where outputs are written before they are renamed into place, inside the output folder.
TMP_DIR = ".batch-tmp"
RECORD_FORMAT = "defectlab-batch-record"
RECORD_VERSION = 1

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: str | Path, member: str | None = None) -> str:
    """Hex SHA-256 of an input: a file's bytes, a zip member's bytes, or a folder's files.

    A folder's digest covers every file in it (recursively, hidden ones included), by
    relative path and content, in sorted order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> sha256_path(d / "a.txt") == sha256_bytes(b"x")
    True
    """
    path = Path(path)
    if member is not None:
        from ..safe_zip import SafeZip

        with SafeZip(path) as zf:
            return sha256_bytes(zf.read(member))
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
            h.update(sha256_file(f).encode("ascii"))
        return h.hexdigest()
    return sha256_file(path)


def input_stat(path: str | Path | None) -> tuple[int | None, int | None]:
    """``(size, mtime_ns)`` of an input for the quick check; a folder's: file count and the
    newest mtime of its files; ``(None, None)`` when there is none."""
    if path is None:
        return None, None
    p = Path(path)
    try:
        if p.is_dir():
            stats = [f.stat() for f in p.rglob("*") if f.is_file()]
            return len(stats), max((s.st_mtime_ns for s in stats), default=0)
        st = p.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def output_sizes(folder: str | Path) -> dict[str, int]:
    """Relative POSIX path -> size in bytes of every file in ``folder`` but the record."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != RECORD_FILE}


def write_record(folder: str | Path, record: Mapping[str, Any]) -> None:
    """Write ``folder/batch_record.json`` atomically (a temporary file renamed over it)."""
    folder = Path(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{RECORD_FILE}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(record), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, folder / RECORD_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The record in ``folder``, or None when it is missing, unreadable or not a record."""
    try:
        data = json.loads((Path(folder) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        return None
    return data


def _outputs_intact(folder: Path, outputs: Any) -> bool:
    if not isinstance(outputs, dict):
        return False
    for name, size in outputs.items():
        try:
            if (folder / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def record_state(folder: str | Path, expected: Mapping[str, Any], *, size: int | None,
                 mtime_ns: int | None) -> str:
    """How the output in ``folder`` stands against what the batch would write now.

    Parameters
    ----------
    folder : path
        ``out/<key>``.
    expected : mapping
        The record fields that must be equal: ``task``, ``params``, ``model_sha256``,
        ``labels_sha256``, ``defectlab_version``, ``record_version`` (the input's path is not
        compared: a moved data folder with the same files is still current).
    size, mtime_ns : int or None
        The input's :func:`input_stat` now.

    Returns
    -------
    str
        ``"missing"`` (no folder), ``"foreign"`` (a folder without a record: not a batch
        output), ``"stale"`` (to be redone), ``"check-input"`` (current unless the input's
        bytes changed: hash it), ``"current"``.
    """
    folder = Path(folder)
    if not folder.exists():
        return "missing"
    rec = read_record(folder)
    if rec is None:
        if folder.is_dir() and ((folder / RECORD_FILE).exists() or not any(folder.iterdir())):
            return "stale"  # an empty folder, or ours with a damaged record
        return "foreign"
    if any(rec.get(k) != v for k, v in expected.items()):
        return "stale"
    if not _outputs_intact(folder, rec.get("outputs")):
        return "stale"
    if rec.get("input_size") == size and rec.get("input_mtime_ns") == mtime_ns:
        return "current"
    return "check-input"


# ---------------------------------------------------------------------------------------------
# Atomic output folders


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


@contextmanager
def atomic_output(out: str | Path, key: str) -> Iterator[Path]:
    """Yield an empty folder that becomes ``out/<key>`` (replacing it) when the block succeeds.

    The folder is made in ``out/.batch-tmp/`` (named ``<key>.<host>.<pid>.<random>``) and
    renamed into place; an error removes it. Unlike a temporary folder beside the target,
    finding leftovers never lists ``out`` itself, which holds one folder per input (100,000
    of them in a large batch). A process killed while writing leaves its folder in
    ``.batch-tmp``: :func:`clean_tmp` removes those at the start of the next run.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_output(out, "frame_1") as tmp:
    ...     _ = (tmp / "a.txt").write_text("a")
    >>> sorted(p.name for p in out.iterdir()), (out / "frame_1" / "a.txt").read_text()
    (['.batch-tmp', 'frame_1'], 'a')
    """
    out = Path(out)
    target = out / key
    staging = out / TMP_DIR
    staging.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.{_host()}.{os.getpid()}.", dir=staging))
    try:
        yield tmp
        old = None
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f"{key}.{_host()}.{os.getpid()}.old.", dir=staging))
            os.replace(target, old / "previous")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_tmp(out: str | Path, *, everything: bool = False) -> int:
    """Remove what killed or interrupted runs left in ``out/.batch-tmp``; returns how many.

    Folders of processes on this host that no longer run are removed; with ``everything``
    (at the start of a run, before any task of it is sent) those of other hosts too —
    tasks of an earlier, interrupted run that still write there only lose work whose
    result nobody waits for (a folder renamed into place half-deleted is caught by its
    record, which lists every output with its size). The folder is removed when empty.
    """
    staging = Path(out) / TMP_DIR
    if not staging.is_dir():
        return 0
    host, n = _host(), 0
    for entry in staging.iterdir():
        parts = entry.name.split(".")
        try:
            mine = parts[-3] == host or parts[-4] == host
            pid = int(parts[-2] if parts[-3] == host else parts[-3])
        except (IndexError, ValueError):
            mine, pid = False, -1
        if everything or (mine and not _pid_alive(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            n += 1
    try:
        staging.rmdir()
    except OSError:
        pass
    return n
