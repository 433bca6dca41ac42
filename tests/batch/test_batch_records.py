"""Completion records: digests, atomic writes, and when an output is complete and current."""

from __future__ import annotations

import hashlib
import os
import zipfile

from defectlab.batch.records import (RECORD_FILE, RECORD_FORMAT, input_stat, output_sizes, read_record,
                                     record_state, sha256_path, write_record)


def test_digests_match_hashlib(tmp_path):
    data = os.urandom(3 << 20)  # several read chunks
    (tmp_path / "a.bin").write_bytes(data)
    assert sha256_path(tmp_path / "a.bin") == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.writestr("images/m.png", b"member bytes")
    assert sha256_path(tmp_path / "x.zip", "images/m.png") == hashlib.sha256(b"member bytes").hexdigest()


def test_folder_digest_covers_names_and_contents(tmp_path):
    d = tmp_path / "export"
    (d / "images").mkdir(parents=True)
    (d / "annotations.xml").write_text("<a/>")
    (d / "images" / "a.png").write_bytes(b"1")
    first = sha256_path(d)
    assert sha256_path(d) == first
    (d / "images" / "a.png").write_bytes(b"2")
    second = sha256_path(d)
    (d / "images" / "a.png").rename(d / "images" / "b.png")
    assert len({first, second, sha256_path(d)}) == 3


def _record(folder, **fields):
    rec = {"format": RECORD_FORMAT, "record_version": 1, "task": "measure", "params": {"p": 1},
           "outputs": output_sizes(folder), **fields}
    write_record(folder, rec)
    return rec


def test_record_is_written_atomically_and_read_back(tmp_path):
    (tmp_path / "out.csv").write_text("a,b\n")
    rec = _record(tmp_path, input_sha256="abc")
    assert read_record(tmp_path) == rec
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORD_FILE, "out.csv"]  # no temporary left
    (tmp_path / RECORD_FILE).write_text("{not json")
    assert read_record(tmp_path) is None


def test_record_state_transitions(tmp_path):
    inp = tmp_path / "frame.tif"
    inp.write_bytes(b"pixels")
    out = tmp_path / "out" / "frame"
    expected = {"task": "measure", "params": {"p": 1}, "record_version": 1}
    assert record_state(out, expected, size=1, mtime_ns=1) == "missing"
    out.mkdir(parents=True)
    assert record_state(out, expected, size=1, mtime_ns=1) == "stale"  # empty folder: ours to fill
    (out / "someone.txt").write_text("not ours")
    assert record_state(out, expected, size=1, mtime_ns=1) == "foreign"
    (out / "someone.txt").unlink()
    (out / "defects.csv").write_text("x\n1\n")
    size, mtime = input_stat(inp)
    _record(out, input_size=size, input_mtime_ns=mtime)
    assert record_state(out, expected, size=size, mtime_ns=mtime) == "current"
    assert record_state(out, {**expected, "params": {"p": 2}}, size=size, mtime_ns=mtime) == "stale"
    os.utime(inp, ns=(mtime + 10**9, mtime + 10**9))  # touched: only a digest can tell
    assert record_state(out, expected, **dict(zip(("size", "mtime_ns"), input_stat(inp)))) == "check-input"
    (out / "defects.csv").write_text("x\n1\n2\n")  # an output changed size: redo
    assert record_state(out, expected, size=size, mtime_ns=mtime) == "stale"
    (out / "defects.csv").unlink()
    assert record_state(out, expected, size=size, mtime_ns=mtime) == "stale"


def test_atomic_output_replaces_and_cleans_up(tmp_path):
    import socket

    import pytest

    from defectlab.batch.records import TMP_DIR, atomic_output, clean_tmp

    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "old.txt").write_text("old")
    with atomic_output(tmp_path, "k") as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["new.txt"]
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path, "k") as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("the task failed")
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["new.txt"]  # the previous output stays
    host = socket.gethostname().replace(".", "_")
    dead = tmp_path / TMP_DIR / f"k.{host}.999999999.abc"
    alive = tmp_path / TMP_DIR / f"k.{host}.{os.getpid()}.def"
    other = tmp_path / TMP_DIR / "k.elsewhere.123.ghi"
    for d in (dead, alive, other):
        d.mkdir(parents=True)
    assert clean_tmp(tmp_path) == 1 and not dead.exists() and alive.exists() and other.exists()
    assert clean_tmp(tmp_path, everything=True) == 2 and not (tmp_path / TMP_DIR).exists()
