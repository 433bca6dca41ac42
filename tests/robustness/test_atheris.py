"""Coverage-guided fuzzing of every reader (atheris / libFuzzer), time-bounded, seeded from the
seed exports of ``fuzzkit`` (the ``../shared/data`` samples among them).

The mutation kit (``test_fuzz_readers.py``) tries the mutations someone thought of; libFuzzer
keeps the inputs that reach new code and mutates those, which is how the three crashes of
issue #14.12 were found (an ``encoding="utf-7"`` declaration, a zip64 end record in a file's
tail, a zip member with an empty name). Here it runs for :data:`BUDGET_S` seconds over every
reader at once (one process: libFuzzer's loop runs once per process); each input must give a
Dataset or defectlab's own error naming a file of the export (``fuzzkit.check_read``). Longer
runs, one reader per process: ``benchmarks/fuzz_stats.py --atheris-seconds 300``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .atheris_fuzz import write_manifest
from .fuzzkit import READERS

#: CPU seconds of fuzzing per reader in the suite (each process also takes ~1.5 s to start).
BUDGET_S = 2
HARNESS = Path(__file__).with_name("atheris_fuzz.py")


def run_atheris(manifest: Path, work: Path, readers: list[str], seconds: float, seed: int,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """One fuzzing process for ``readers`` (``--fuzz-seconds`` of CPU time, libFuzzer ``-seed``)."""
    cmd = [sys.executable, str(HARNESS), "--manifest", str(manifest), "--work", str(work),
           *[a for r in readers for a in ("--reader", r)], "--fuzz-seconds", str(seconds),
           "--", f"-seed={seed}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20 * seconds + 300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def manifest(fuzz_seeds: dict) -> Path:
    path = fuzz_seeds["root"] / "atheris_seeds.json"
    write_manifest(fuzz_seeds["seeds"], path)
    return path


def test_atheris_finds_no_foreign_exception_in_any_reader(manifest: Path, tmp_path: Path) -> None:
    import importlib.util

    assert importlib.util.find_spec("atheris"), "atheris is not installed: pip install -e '.[dev]' (Linux x86_64)"
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # one process per reader
        runs = dict(zip(READERS, pool.map(lambda r: run_atheris(manifest, tmp_path / r, [r], BUDGET_S, seed=1),
                                          READERS)))
    for reader, run in runs.items():
        out = run.stdout + run.stderr
        assert run.returncode == 0, f"{reader}:\n{out[-6000:]}"
        found = re.findall(rf"^atheris {reader}: (\d+) inputs, (\d+) ok, (\d+) our errors$", run.stdout, re.M)
        assert len(found) == 1, out[-3000:]
        n, ok, errors = map(int, found[0])
        assert n >= 10 and n == ok + errors, (reader, n, ok, errors)
        assert not list((tmp_path / reader).glob("crash-*"))


def test_a_foreign_exception_ends_the_run_with_the_input_kept(manifest: Path, tmp_path: Path) -> None:
    """The harness itself can fail: a reader that raises a foreign exception is caught and its input kept."""
    bad = tmp_path / "sitecustomize.py"  # breaks the VIA reader in the fuzzing process only
    bad.write_text("import defectlab.formats as f\n"
                   "def _boom(*a, **k):\n    raise IndexError('planted')\n"
                   "f._FACTORIES['via'] = lambda: f.Format('via', 'planted', _boom)\n")
    env_path = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    run = run_atheris(manifest, tmp_path / "w", ["via"], 20, seed=1, env={"PYTHONPATH": env_path})
    assert run.returncode != 0
    assert "IndexError: planted" in run.stdout + run.stderr
    assert list((tmp_path / "w").glob("crash-*"))
