"""Batches on real Dask clusters: a LocalCluster of two worker processes, and a scheduler with
workers started as separate processes on 127.0.0.1 — equal results, killed workers,
interrupted runs, failures, the model loaded once per worker."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from .batchkit import SlowMeasure, assert_tables_equal, tiny_unet
from defectlab import batch
from defectlab.batch.records import read_record
from defectlab.cli import app
from defectlab.imaging.io import read_image
from defectlab.measurement import MeasureOptions, measure

KEYS = [f"synthetic_{i:03d}" for i in range(6)]
OPTS = {"pixel_size": "0.5nm", "thickness": "80nm", "progress": False, "figures": False}


def _assert_same_measurement(a, b):
    assert_tables_equal(a.defects, b.defects)
    assert_tables_equal(a.per_image, b.per_image)
    assert_tables_equal(a.per_set, b.per_set)


def _executing(dask_worker):
    return dask_worker.state.executing_count


def _slow(delay_s):
    return SlowMeasure(options=MeasureOptions(pixel_size="0.5nm", thickness="80nm"), figures=False, delay_s=delay_s)


def test_local_cluster_equals_the_single_process_run(export, local_cluster, tmp_path):
    dist = batch.measure([export], out=tmp_path / "dist", scheduler=local_cluster, **OPTS)
    one = batch.measure([export], out=tmp_path / "one", scheduler="sync", **OPTS)
    assert dist.ok and dist.counts["done"] == 6 and dist.scheduler == local_cluster.scheduler_address
    _assert_same_measurement(dist.measurement, one.measurement)
    assert_tables_equal(dist.measurement.defects, measure(export, pixel_size="0.5nm").defects)
    workers = {read_record(tmp_path / "dist" / k)["worker"] for k in KEYS}
    assert workers <= set(local_cluster.scheduler_info["workers"])


def test_predict_on_a_local_cluster_loads_the_model_once_per_worker(export, local_cluster, tmp_path):
    from distributed import Client

    from defectlab.batch import tasks
    from defectlab.dl.model_io import load_model

    model = tiny_unet(tmp_path / "model")
    report = batch.predict(model, [export / "images"], out=tmp_path / "pred", scheduler=local_cluster,
                           pixel_size="0.5nm", progress=False, figures=False)
    assert report.ok and report.counts["done"] == 6, report.failed
    with Client(local_cluster) as client:
        loads = client.run(tasks.model_loads)
    assert sum(loads.values()) <= len(loads) < 6  # at most once per worker process, for six images

    reference = load_model(model, device="cpu")
    defects = report.measurement.defects
    assert len(defects) > 0
    for key in KEYS:
        image = read_image(export / "images" / f"{key}.png")
        # the workers run one thread, this process more: measured on the 2-core AMD EPYC (this net with seeds
        # 0-9 on these images, torch and ONNX Runtime, 1 and 2 threads), probabilities at most 6e-8 apart and
        # no class flipped; so classes must agree wherever the top two are more than 1e-6 apart
        ref = reference.predict(image, probabilities=True)
        top2 = np.sort(ref.probabilities, axis=0)[-2:]
        clear = top2[1] - top2[0] > 1e-6
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(read_image(tmp_path / "pred" / key / "mask.png")[clear], ref.semantic[clear])
        inst = read_image(tmp_path / "pred" / key / "instances.tif")
        rows = defects.filter(defects["image"] == key)
        ids = np.arange(1, inst.max() + 1)
        np.testing.assert_array_equal(rows["area_px"], np.bincount(inst.ravel())[1:])
        cy, cx = np.asarray(ndimage.center_of_mass(np.ones_like(inst), inst, ids)).reshape(-1, 2).T
        np.testing.assert_allclose(rows["centroid_x_px"], cx + 0.5, atol=1e-9)
        np.testing.assert_allclose(rows["centroid_y_px"], cy + 0.5, atol=1e-9)
        np.testing.assert_allclose(rows["area_nm2"], rows["area_px"] * 0.25)
    again = batch.predict(model, [export / "images"], out=tmp_path / "pred", scheduler="sync", progress=False,
                          pixel_size="0.5nm", figures=False)
    assert again.counts["skipped"] == 6  # current: same images, model, parameters
    (model / "config.json").write_text((model / "config.json").read_text() + "\n")  # another model digest
    one = batch.predict(model, [export / "images" / "synthetic_000.png"], out=tmp_path / "pred", scheduler="sync",
                        progress=False, pixel_size="0.5nm", figures=False)
    assert one.counts["done"] == 1 and read_record(tmp_path / "pred" / "synthetic_000")["run_id"] == one.run_id


def test_an_existing_scheduler_by_address_by_environment_and_from_the_cli(export, loopback_scheduler, tmp_path,
                                                                          monkeypatch):
    by_address = batch.measure([export], out=tmp_path / "a", scheduler=loopback_scheduler, **OPTS)
    assert by_address.ok and by_address.scheduler == loopback_scheduler
    one = batch.measure([export], out=tmp_path / "one", scheduler="sync", **OPTS)
    _assert_same_measurement(by_address.measurement, one.measurement)

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", loopback_scheduler)
    by_env = batch.measure([export], out=tmp_path / "a", force=True, **OPTS)
    assert by_env.ok and by_env.counts["done"] == 6 and by_env.scheduler == loopback_scheduler
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")

    (export / "images" / "synthetic_005.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = CliRunner().invoke(app, ["batch", "measure", str(export), "--out", str(tmp_path / "cli"),
                                      "--pixel-size", "0.5nm", "--scheduler", loopback_scheduler, "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "1 of 6 input(s) failed" in result.output and "synthetic_005.png" in result.output
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["_batch"] + KEYS[:5]


def test_an_interrupted_run_is_resumed_with_only_the_unfinished_inputs(export, loopback_scheduler, tmp_path):
    from distributed import Client

    out = tmp_path / "meas"
    armed = threading.Event()
    armed.set()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if armed.is_set():
            raise KeyboardInterrupt

    stop = threading.Event()

    def press_ctrl_c():  # once the first input is written, as a person would press Ctrl-C
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop.is_set() and not any(out.glob("*/batch_record.json")):
            time.sleep(0.02)
        if not stop.is_set():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    signal.signal(signal.SIGINT, on_sigint)
    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    try:
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            # 1.5 s per input: the batch is still running when the first record appears
            batch.run_batch([export], _slow(1.5), out=out, scheduler=loopback_scheduler, progress=False)
    finally:
        armed.clear()  # a signal that comes late lands in the disarmed handler, never in a later test
        stop.set()
        presser.join()
        time.sleep(0.3)
        signal.signal(signal.SIGINT, previous)
    with Client(loopback_scheduler, timeout=30) as client:  # tasks already running finish on their own
        deadline = time.monotonic() + 30
        while sum(client.run(_executing).values()) and time.monotonic() < deadline:
            time.sleep(0.05)
    import json

    first = json.loads((out / "_batch" / "report.json").read_text())
    assert first["interrupted"] and first["counts"]["cancelled"] >= 1
    finished = {k for k in KEYS if read_record(out / k) is not None}
    assert 1 <= len(finished) < 6

    second = batch.measure([export], out=out, scheduler=loopback_scheduler, **OPTS)
    assert second.ok and second.counts["done"] == 6 - len(finished) and second.counts["skipped"] == len(finished)
    assert {k for k in KEYS if read_record(out / k)["run_id"] == second.run_id} == set(KEYS) - finished
    _assert_same_measurement(second.measurement,
                             batch.measure([export], out=tmp_path / "one", scheduler="sync", **OPTS).measurement)


def test_a_worker_killed_in_the_middle_of_a_batch(export, local_cluster, tmp_path):
    from distributed import Client

    killed: list[int] = []
    with Client(local_cluster) as client:
        pids = client.run(os.getpid)

        def kill_a_busy_worker():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                busy = [a for a, tasks in client.processing().items() if tasks and a in pids]
                if busy:
                    time.sleep(0.2)  # inside the task's sleep
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(pids[busy[0]])
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        report = batch.run_batch([export], _slow(1.0), out=tmp_path / "meas", scheduler=local_cluster,
                                 progress=False)
        killer.join(timeout=5)
    assert killed, "no worker was busy to be killed"
    assert report.ok and report.counts["done"] == 6, report.units
    assert not [p.name for p in (tmp_path / "meas").iterdir() if p.name.startswith(".")]
    one = batch.measure([export], out=tmp_path / "one", scheduler="sync", **OPTS)
    _assert_same_measurement(report.measurement, one.measurement)
