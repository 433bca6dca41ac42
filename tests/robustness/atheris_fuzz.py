"""Coverage-guided fuzzing of the readers with atheris (libFuzzer), seeded from ``fuzzkit``'s seeds.

Run as a script, once per process (libFuzzer's loop runs once and then exits the process)::

    python tests/robustness/atheris_fuzz.py --manifest seeds.json --work DIR --reader cvat [--reader coco ...]
        -- -max_total_time=60 -seed=1

``seeds.json`` lists the seed exports (:func:`write_manifest`, from :func:`fuzzkit.build_seeds`).
The fuzzer's input is one byte choosing the seed file to replace (and, in its low bit, whether
the format is detected or named) followed by that file's new content. The corpus starts with
every seed file of the chosen readers as it is. Each input is read with
:func:`fuzzkit.check_read` — the same check as the mutation kit's: a Dataset whose masks can be
made, or a :class:`~defectlab.errors.DefectlabError` naming a file of the export, within
``--seconds``. Anything else ends the run with the traceback, atheris' "Uncaught Python
exception" and a ``crash-*`` file of the input under ``--work`` (replay it with
``--replay FILE``).

When ``--fuzz-seconds`` are up it prints one line per reader (``atheris <reader>: <n> inputs, <ok>
ok, <errors> our errors``) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from collections import Counter
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `robustness` as a package, as pytest and the benchmark import it

from robustness.fuzzkit import Seed, _copy_tree, check_read, memory_cap  # noqa: E402

#: The modules each reader's reads go through: instrumented for coverage. ``defectlab`` itself and
#: what it imports eagerly (model, raster) are imported first, uninstrumented: instrumenting every
#: module costs ~3 s of start-up per process, these ~0.5 s.
READER_MODULES = {
    "cvat": ("safe_xml", "formats.cvat_xml.read"),
    "coco": ("formats.coco_json.spec", "formats.coco_json.read"),
    "yolo": ("formats.yolo_txt.spec", "formats.yolo_txt.read"),
    "via": ("formats.via_json",),
    "labelme": ("formats.labelme_json",),
    "labelbox": ("formats.labelbox_ndjson",),
    "masks": ("formats.mask_images.files", "formats.mask_images.pixels", "formats.mask_images.classes",
              "formats.mask_images.read"),
}
COMMON_MODULES = ("limits", "safe_zip", "formats._text", "formats._json", "formats._images")


def write_manifest(seeds: list[Seed], path: Path) -> None:
    """The seeds as JSON, for the fuzzing process."""
    rows = [{**asdict(s), "root": str(s.root)} for s in seeds]
    path.write_text(json.dumps(rows, default=str), encoding="utf-8")


def read_manifest(path: Path, readers: list[str]) -> list[Seed]:
    seeds = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        if row["reader"] in readers:
            seeds.append(Seed(row["reader"], row["name"], Path(row["root"]), row["target"],
                              tuple(map(tuple, row["files"])), tuple(map(tuple, row["options"]))))
    return seeds


class Target:
    """The fuzz target: (seed, file) slots, one working copy per seed, per-reader counts."""

    def __init__(self, seeds: list[Seed], work: Path, seconds: float, budget: float = float("inf")) -> None:


        self.slots: list[tuple[Seed, str, Path, bytes]] = []
        self.seconds = seconds
        self.deadline = time.process_time() + budget  # CPU seconds: a loaded machine fuzzes as long
        self.counts: dict[str, Counter] = {}
        by_reader: dict[str, list] = {}
        for seed in seeds:
            root = work / "copies" / seed.name
            if root.exists():
                shutil.rmtree(root)
            _copy_tree(seed.root, root)
            self.counts.setdefault(seed.reader, Counter())
            for rel, _kind in seed.files:
                by_reader.setdefault(seed.reader, []).append((seed, rel, root, (root / rel).read_bytes()))
        if not by_reader:
            raise SystemExit("no seed files for these readers")
        # every reader gets the same share of the 128 selector values, whatever its number of files
        share = 128 // len(by_reader)
        for reader, files in by_reader.items():
            if len(files) > share:
                raise SystemExit(f"{reader}: {len(files)} seed files, more than the {share} selector values it gets")
            self.slots += [files[k % len(files)] for k in range(share)]

    def corpus(self) -> list[bytes]:
        """Every seed file as it is, once, behind its selector byte (format named)."""
        first: dict[tuple[str, str], int] = {}
        for k, (seed, rel, _root, _original) in enumerate(self.slots):
            first.setdefault((seed.name, rel), k)
        return [bytes([2 * k]) + self.slots[k][3] for k in first.values()]

    def __call__(self, data: bytes) -> None:


        if not data:
            return
        seed, rel, root, original = self.slots[(data[0] >> 1) % len(self.slots)]
        detect = bool(data[0] & 1)
        path = root / rel
        path.write_bytes(data[1:])
        try:
            case = check_read(seed, root, rel, ["atheris input"], detect=detect, seconds=self.seconds)
        finally:
            path.write_bytes(original)
        self.counts[seed.reader][case.outcome] += 1
        if case.outcome not in ("ok", "error"):
            raise AssertionError(f"{case.outcome} reading {seed.name} ({rel} replaced"
                                 f"{', format detected' if detect else ''}):\n{case.detail}")
        if time.process_time() > self.deadline:  # libFuzzer's own -max_total_time exits without Python's atexit
            self.report()
            os._exit(0)

    def report(self) -> None:
        for reader, counts in sorted(self.counts.items()):
            print(f"atheris {reader}: {sum(counts.values())} inputs, {counts['ok']} ok, "
                  f"{counts['error']} our errors", flush=True)


def main(argv: list[str]) -> None:
    ours, _, fuzzer_args = " ".join(argv).partition(" -- ")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--reader", action="append", required=True)
    parser.add_argument("--fuzz-seconds", type=float, default=60.0, help="how long to fuzz (CPU seconds)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per input")
    parser.add_argument("--memory-gib", type=float, default=4.0)
    parser.add_argument("--replay", type=Path, help="run this one input (a crash-* file) and show the outcome")
    args = parser.parse_args(ours.split())

    import importlib

    import atheris

    importlib.import_module("defectlab")  # with what it imports eagerly: not instrumented (see READER_MODULES)

    with atheris.instrument_imports(include=["defectlab"]):
        for name in (*COMMON_MODULES, *(m for r in args.reader for m in READER_MODULES[r])):
            importlib.import_module(f"defectlab.{name}")
    import logging

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # it logs what it then raises
    warnings.simplefilter("ignore")
    args.work.mkdir(parents=True, exist_ok=True)
    target = Target(read_manifest(args.manifest, args.reader), args.work, args.seconds, args.fuzz_seconds)
    if args.replay is not None:
        target(args.replay.read_bytes())
        target.report()
        return
    corpus = args.work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir()
    for k, data in enumerate(target.corpus()):
        (corpus / f"seed{k:03d}").write_bytes(data)
    libfuzzer = [sys.argv[0], f"-artifact_prefix={args.work}{os.sep}", "-timeout=0", "-rss_limit_mb=0",
                 *fuzzer_args.split(), str(corpus)]
    with memory_cap(int(args.memory_gib * (1 << 30))):
        atheris.Setup(libfuzzer, target)
        atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
