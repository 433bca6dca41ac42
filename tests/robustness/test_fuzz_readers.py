"""Fuzzing every reader: mutated exports give a Dataset or defectlab's own error, nothing else.

Seeds (see ``fuzzkit.py``): the real sample exports of ``../shared/data`` (CVAT task, project,
video and job exports, the workshop's CVAT XMLs, COCO and Roboflow COCO, YOLO and Roboflow
YOLO, VIA 1 and 2) and small exports written here with defectlab's writers and synthetic
images (CVAT with every shape type, plain and zipped; COCO, plain and zipped; YOLO detect and
segment; VIA 2 and 3; LabelMe; Labelbox; U-Net masks, instance TIFFs and a CVAT Segmentation
mask export). Hypothesis drives a ``random.Random`` through ``fuzzkit.mutate``: byte flips,
truncation, deleted/duplicated/swapped lines and JSON keys, numbers replaced by NaN,
Infinity, 1e308, -1, 5000-digit integers or text, deep nesting, UTF-16/Latin-1 re-encoding,
empty files, DOCTYPEs and entities, YAML alias bombs, PNG/TIFF headers declaring 10⁶ × 10⁶
px, evil zip members.

What is asserted for every case: the read returns a Dataset whose masks can be made, or
raises a :class:`~defectlab.errors.DefectlabError` whose message names a file of the export
(for a :class:`~defectlab.errors.ParseError`: its ``path`` is that file) — within 20 s and a
bounded amount of memory. ``benchmarks/fuzz_stats.py`` runs the same cases by the thousand.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defectlab.errors import ParseError

from .fuzzkit import READERS, memory_cap, run_case

#: Examples per reader: sized so the file runs in well under a minute on 2 cores.
EXAMPLES = 60


@pytest.fixture(scope="module")
def seeds(fuzz_seeds: dict) -> dict:
    return fuzz_seeds


def test_every_reader_has_seeds_and_the_shared_samples_are_among_them(seeds: dict) -> None:
    by_reader = seeds["by_reader"]
    assert sorted(by_reader) == sorted(READERS)
    shared = {s.name for ss in by_reader.values() for s in ss if "shared" in s.name or "workshop" in s.name}
    for reader in ("cvat", "coco", "yolo", "via"):  # the formats ../shared/data has samples of
        assert any(name.startswith(reader) for name in shared), reader
    for ss in by_reader.values():
        for seed in ss:
            assert seed.files, seed.name
            assert (seed.root / seed.target).exists(), seed.name


def test_unmutated_seeds_read_cleanly(seeds: dict) -> None:
    """The baseline: every seed itself is read without error (so errors below come from mutations)."""
    import defectlab

    for ss in seeds["by_reader"].values():
        for seed in ss:
            options = {k: (seed.root / "masks" if k == "masks" else v) for k, v in seed.options}
            ds = defectlab.read(seed.root / seed.target, format=seed.reader, **options)
            assert len(ds) >= 1, seed.name


@pytest.mark.parametrize("reader", READERS)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pick=st.integers(min_value=0, max_value=1000), rnd=st.randoms(use_true_random=False))
def test_mutated_exports_give_a_dataset_or_our_error(reader: str, seeds: dict, pick: int,
                                                     rnd: random.Random) -> None:
    candidates = seeds["by_reader"][reader]
    seed = candidates[pick % len(candidates)]
    with memory_cap(4 << 30):
        case = run_case(seed, rnd, seeds["root"] / "work", seconds=20.0)
    assert case.outcome in ("ok", "error"), (
        f"{case.outcome} on {case.seed} ({case.file} mutated: {'; '.join(case.how)}):\n{case.detail}"
    )
    if isinstance(case.error, ParseError):
        root = seeds["root"] / "work" / seed.name
        named = Path(case.error.path.split("!", 1)[0])
        assert named == root or root in named.parents, case.error
        assert case.error.path in str(case.error)
