"""Fixtures of the batch tests: synthetic micrographs, a local Dask cluster, a loopback cluster."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import batchkit
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

CONFIG = SyntheticConfig(size_hw=(96, 96), n_cavities=4, n_loops=2, n_precipitates=1, n_lines=1)


@pytest.fixture(scope="session")
def export_master(tmp_path_factory) -> Path:
    """Six synthetic micrographs (96 × 96 px) with exact labels, as a CVAT export."""
    out = tmp_path_factory.mktemp("batch") / "export"
    make_synthetic_dataset(out, n_images=6, config=CONFIG, seed=7)
    return out


@pytest.fixture
def export(export_master, tmp_path) -> Path:
    """A private copy of the six-image export (tests may damage it)."""
    return Path(shutil.copytree(export_master, tmp_path / "export"))


@pytest.fixture(scope="session")
def local_cluster():
    """A real LocalCluster: two single-threaded worker processes."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def loopback_scheduler(tmp_path_factory) -> str:
    """A scheduler and two workers started as separate processes on 127.0.0.1; its address."""
    with batchkit.loopback_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address
