"""Fuzz statistics: N mutated exports per reader, and what came out of each read.

Run::

    .venv/bin/python benchmarks/fuzz_stats.py                 # 2000 inputs per reader
    .venv/bin/python benchmarks/fuzz_stats.py --n 200 --reader cvat --show 5

For every reader (cvat, coco, via, labelbox, yolo, labelme, masks) the script copies one of
its seed exports (the real samples of ``../shared/data`` and small exports written here by
defectlab's own writers), mutates one file of it 1–3 times (byte flips, truncation, deleted /
duplicated / swapped lines and JSON keys, numbers replaced by NaN, Infinity, 1e308, -1,
5000-digit integers or text, deep nesting, UTF-16 / Latin-1 re-encoding, empty files, XML
DOCTYPEs and entities, YAML alias bombs, PNG/TIFF headers declaring 10⁶ × 10⁶ px, evil zip
members — see ``tests/robustness/fuzzkit.py``), reads it with ``defectlab.read`` and, when
that succeeds, rasterizes every item's masks. Each input is one of:

* **ok** — a Dataset came back (and its masks were made);
* **our errors** — a ``defectlab.errors.DefectlabError`` naming a file of the export;
  ``named file`` counts those naming the mutated file itself;
* **other** — any other exception, or one of our errors naming no file (target: 0);
* **timeouts** — no answer within ``--seconds`` (target: 0).

The process's address space is capped at its size + ``--memory-gib`` so that a runaway
allocation shows up as ``other`` (MemoryError) instead of waking the OOM killer.

``--atheris-seconds S`` then fuzzes each reader for S CPU seconds with atheris (coverage-guided
libFuzzer, ``tests/robustness/atheris_fuzz.py``, seeded with the same seed exports, one process
per reader) and prints a second table: inputs, ok, our errors, and other (libFuzzer stops at the
first foreign exception, whose traceback is printed and whose input is kept in ``--keep DIR``)::

    nice .venv/bin/python benchmarks/fuzz_stats.py --n 0 --atheris-seconds 300 --keep fuzz_out
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from robustness.fuzzkit import READERS, build_seeds, memory_cap, run_case  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="inputs per reader")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--reader", action="append", choices=READERS, help="only these readers (repeatable)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per input")
    parser.add_argument("--memory-gib", type=float, default=4.0, help="address space allowed beyond the start")
    parser.add_argument("--show", type=int, default=3, help="print this many failures per reader")
    parser.add_argument("--no-shared", action="store_true", help="only the synthetic seeds")
    parser.add_argument("--atheris-seconds", type=float, default=0.0,
                        help="then fuzz each reader this many CPU seconds with atheris (0: not)")
    parser.add_argument("--keep", type=Path, help="atheris: keep its corpora and crash inputs here")
    args = parser.parse_args()

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # it logs what it then raises
    shared = ROOT.parent / "shared" / "data"
    shared = None if args.no_shared or not shared.is_dir() else shared
    readers = args.reader or list(READERS)
    rows = []
    failures: dict[str, list] = defaultdict(list)
    slow_cases: list = []
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        seeds = build_seeds(Path(tmp) / "seeds", shared)
        by_reader = defaultdict(list)
        for s in seeds:
            by_reader[s.reader].append(s)
        work = Path(tmp) / "work"
        work.mkdir()
        with memory_cap(int(args.memory_gib * (1 << 30))):
            for reader in readers if args.n else ():
                rnd = random.Random(f"{args.seed}-{reader}")
                counts: Counter = Counter()
                start = time.perf_counter()
                slowest, slowest_case = 0.0, None
                for i in range(args.n):
                    seed = rnd.choice(by_reader[reader])
                    case_rnd = random.Random(rnd.getrandbits(64))
                    case = run_case(seed, case_rnd, work, seconds=args.seconds)
                    if case.seconds > slowest:
                        slowest, slowest_case = case.seconds, case
                    counts[case.outcome] += 1
                    counts["named"] += case.named_file
                    if case.outcome in ("crash", "timeout"):
                        failures[reader].append(case)
                    if sys.stderr.isatty():
                        print(f"\r{reader}: {i + 1}/{args.n}", end="", file=sys.stderr, flush=True)
                if sys.stderr.isatty():
                    print(file=sys.stderr)
                rows.append((reader, args.n, counts["ok"], counts["error"], counts["named"], counts["crash"],
                             counts["timeout"], len(by_reader[reader]), time.perf_counter() - start, slowest))
                slow_cases.append((reader, slowest_case))
        atheris_rows = _atheris(seeds, readers, args, Path(tmp)) if args.atheris_seconds > 0 else []

    head = ("reader", "inputs", "ok", "our errors", "named file", "other", "timeouts", "seeds", "time s", "slowest read s")
    widths = [max(len(h), 9) for h in head]
    print(" | ".join(h.rjust(w) for h, w in zip(head, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        cells = [row[0], *map(str, row[1:8]), f"{row[8]:.1f}", f"{row[9]:.2f}"]
        print(" | ".join(c.rjust(w) for c, w in zip(cells, widths)))
    total = [sum(r[k] for r in rows) for k in range(1, 7)]
    print(" | ".join(c.rjust(w) for c, w in zip(["total", *map(str, total)], widths)))
    print("\nslowest read per reader:")
    for reader, case in slow_cases:
        if case is not None:
            print(f"  {reader}: {case.seconds:.2f} s, {case.outcome}, seed {case.seed}, {case.file}: "
                  f"{'; '.join(case.how)[:150]}")
    for reader, cases in failures.items():
        for case in cases[: args.show]:
            print(f"\n--- {reader} {case.outcome}: seed {case.seed}, file {case.file}, {'; '.join(case.how)}")
            print(case.detail or repr(case.error))
    if atheris_rows:
        print(f"\natheris, {args.atheris_seconds:g} CPU s per reader:")
        head = ("reader", "inputs", "ok", "our errors", "other", "wall s")
        print(" | ".join(h.rjust(10) for h in head))
        print("-|-".join("-" * 10 for _ in head))
        for reader, n, ok, errors, other, wall, _tail in atheris_rows:
            print(" | ".join(str(c).rjust(10) for c in (reader, n, ok, errors, other, f"{wall:.0f}")))
        for reader, *_rest, tail in atheris_rows:
            if tail:
                print(f"\n--- atheris {reader}: a foreign exception\n{tail}")
    sys.exit(1 if any(failures.values()) or any(r[4] for r in atheris_rows) else 0)


def _atheris(seeds, readers, args, tmp: Path) -> list[tuple]:
    """Fuzz each reader with atheris for ``--atheris-seconds`` CPU seconds, one process each."""
    import re
    import subprocess

    from robustness.atheris_fuzz import write_manifest

    manifest = tmp / "atheris_seeds.json"
    write_manifest(seeds, manifest)
    keep = args.keep or tmp / "atheris"
    rows = []
    for reader in readers:
        work = keep / reader
        start = time.perf_counter()
        run = subprocess.run([sys.executable, str(ROOT / "tests" / "robustness" / "atheris_fuzz.py"),
                              "--manifest", str(manifest), "--work", str(work), "--reader", reader,
                              "--fuzz-seconds", str(args.atheris_seconds), "--seconds", str(args.seconds),
                              "--memory-gib", str(args.memory_gib), "--", f"-seed={args.seed + 1}"],
                             capture_output=True, text=True)
        wall = time.perf_counter() - start
        found = re.findall(rf"^atheris {reader}: (\d+) inputs, (\d+) ok, (\d+) our errors$", run.stdout, re.M)
        n, ok, errors = map(int, found[-1]) if found else (0, 0, 0)
        other = int(run.returncode != 0)
        tail = "" if not other else (run.stdout + run.stderr)[-4000:]
        rows.append((reader, n + other, ok, errors, other, wall, tail))
        if sys.stderr.isatty():
            print(f"atheris {reader}: {n + other} inputs, {other} other", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
