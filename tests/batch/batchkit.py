"""Helpers of the batch tests: a slow task, table comparison, a Dask cluster on loopback.

The scheduler and workers of :func:`loopback_cluster` get this folder on their
``PYTHONPATH``: Dask unpickles tasks there, and :class:`SlowMeasure` is defined here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from defectlab.batch.tasks import MeasureTask


@dataclass(frozen=True)
class SlowMeasure(MeasureTask):
    """A measure task that first sleeps (so a test can act while it runs). Its records are
    those of MeasureTask: the delay is not a parameter of the results."""

    delay_s: float = 0.5

    def run(self, unit, dest):  # type: ignore[override]
        time.sleep(self.delay_s)
        return super().run(unit, dest)


def assert_tables_equal(a: Any, b: Any, *, rtol: float = 0.0) -> None:
    """Same columns, same length, same values (NaN equal to NaN); floats within ``rtol``."""
    assert a.columns == b.columns, (a.columns, b.columns)
    assert len(a) == len(b), (len(a), len(b))
    for name in a.columns:
        x, y = a[name], b[name]
        if x.dtype == object or y.dtype == object:
            assert list(x) == list(y), name
        elif rtol and x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=rtol, equal_nan=True, err_msg=name)
        else:
            assert x.dtype.kind == y.dtype.kind, (name, x.dtype, y.dtype)
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:  # workers first, then the scheduler; each in its own process group
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


@contextmanager
def loopback_cluster(folder: Path, n_workers: int = 2, timeout_s: float = 90) -> Iterator[str]:
    """A ``dask scheduler`` and ``dask worker`` (``n_workers`` processes) on 127.0.0.1, as
    separate processes; yields the scheduler address; always stopped at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    sched_file = folder / "scheduler.json"
    procs: list[subprocess.Popen] = []
    logs = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    try:
        log = open(folder / "scheduler.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(sched_file), "--idle-timeout", "600"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env))
        deadline = time.monotonic() + timeout_s
        address = None
        while address is None:
            if procs[0].poll() is not None:
                raise RuntimeError(f"the scheduler exited: {(folder / 'scheduler.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("the scheduler did not write its address in time")
            try:
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        assert address.startswith("tcp://127.0.0.1:"), address
        log = open(folder / "workers.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", str(n_workers),
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "60"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=max(1.0, deadline - time.monotonic()))
        yield address
    finally:
        _stop(procs[::-1])
        for log in logs:
            log.close()


def tiny_unet(folder: Path, seed: int = 0) -> Path:
    """An untrained one-class U-Net (4 filters, depth 2) saved as a model folder."""
    import torch

    from defectlab.dl.archs.unet import UNet, UNetConfig, model_config
    from defectlab.dl.model_io import ClassInfo, Model, save_model

    torch.manual_seed(seed)  # untrained: small random blobs, enough to compare runs
    net = UNet(UNetConfig(n_classes=2, base_filters=4, depth=2, bottleneck_dilations=(1,)))
    save_model(Model(net, model_config(net.config, classes=[ClassInfo(1, "cavity", edge="inner")],
                                       tile_size=96, overlap=16)), folder)
    return folder
