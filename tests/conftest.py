"""Shared test setup: the path to ../shared/data, and a reproducible hypothesis profile for CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (real exports from other tools)."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"expected the shared test data at {SHARED_DATA}")
    return SHARED_DATA
