"""The seed exports of the fuzzers, built once per session (``fuzzkit.build_seeds``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .fuzzkit import build_seeds


@pytest.fixture(scope="session")
def fuzz_seeds(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict:
    """``{"root": a scratch folder, "seeds": [Seed, ...], "by_reader": {reader: [Seed, ...]}}``."""
    root = tmp_path_factory.mktemp("fuzz")
    seeds = build_seeds(root / "seeds", shared_data)
    by_reader: dict[str, list] = {}
    for seed in seeds:
        by_reader.setdefault(seed.reader, []).append(seed)
    return {"root": root, "seeds": seeds, "by_reader": by_reader}
