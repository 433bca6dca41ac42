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
            for reader in readers:
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
    sys.exit(1 if any(failures.values()) else 0)


if __name__ == "__main__":
    main()
