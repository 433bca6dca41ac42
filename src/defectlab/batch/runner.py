"""Run a task over thousands of inputs with Dask (``dask.distributed``).

Where it runs (``scheduler=``):

* ``None`` (default): the cluster named by the ``DASK_SCHEDULER_ADDRESS`` environment
  variable (or Dask's ``scheduler-address`` setting) when there is one, else a local
  cluster on this machine started for the run: one single-threaded worker process per CPU
  core (``workers=`` to choose), closed at the end;
* ``"tcp://HOST:PORT"``: an existing cluster (``dask scheduler`` + ``dask worker``s, or
  dask-jobqueue, dask-kubernetes, …); its workers must reach the same paths (a shared file
  system) and have defectlab installed;
* a ``distributed.Client`` or a cluster object (``LocalCluster``, ``SLURMCluster``, …);
* ``"sync"``: in this process, one input after the other, without Dask (the reference,
  and for debugging).

How a run goes:

1. The task is planned on the client: inputs expanded (:mod:`~defectlab.batch.inputs`),
   exports read (labels only), the model checked and hashed. Nothing heavy happens here.
2. Every output whose record says it is complete and current is skipped
   (:mod:`~defectlab.batch.records`); ``force=True`` redoes everything.
3. The rest are Dask tasks. Each writes ``out/<key>/`` atomically with its record
   (written in ``out/.batch-tmp/``, then renamed). An input that fails (a corrupt
   micrograph, …) returns its error, which the report keeps; the others go on. A worker
   that dies (killed, out of memory) has its tasks run again elsewhere by Dask; what it
   half-wrote is removed at the end of the run (or at the start of the next one).
4. The run report and the batch's statistics are written to ``out/_batch/``
   (:mod:`~defectlab.batch.report`), also when the run is interrupted (Ctrl-C): a rerun
   then processes only what is not complete.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .._parallel import default_workers  # worker processes of a local cluster: the usable cores
from ..errors import DefectlabError
from .inputs import BatchError, Unit
from .records import (RECORD_FORMAT, RECORD_VERSION, atomic_output, clean_tmp, input_stat, output_sizes, read_record,
                      record_state, sha256_path, write_record)
from .report import BatchReport, write_batch_folder
from .tasks import BatchTask, Plan

__all__ = ["default_workers", "execute_unit", "run_batch", "scheduler_address"]

#: Seconds to wait for a scheduler to answer, and for its first worker.
CONNECT_TIMEOUT_S = 30
WORKERS_TIMEOUT_S = 120

_OK = ("done", "unchanged", "skipped")




def scheduler_address(scheduler: Any = None) -> str | None:
    """The scheduler address a run uses: ``scheduler`` when it is one, else the
    ``DASK_SCHEDULER_ADDRESS`` environment variable, else Dask's ``scheduler-address`` setting."""
    if isinstance(scheduler, str) and scheduler != "sync":
        return scheduler
    if scheduler is not None:
        return None
    env = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if env:
        return env
    try:
        import dask
    except ImportError:
        return None
    return dask.config.get("scheduler-address", None) or None


# ---------------------------------------------------------------------------------------------
# What a worker runs


def _worker_name() -> str:
    dist = sys.modules.get("distributed")
    if dist is not None:
        try:
            return str(dist.get_worker().address)
        except ValueError:
            pass
    return f"pid {os.getpid()}"


def _message(err: BaseException, unit: Unit) -> str:
    msg = str(err) if isinstance(err, DefectlabError) else f"{type(err).__name__}: {err}"
    return msg if unit.source in msg else f"{unit.source}: {msg}"


def execute_unit(unit: Unit, *, task: BatchTask, out: str, expected: dict[str, Any], force: bool,
                 run_id: str) -> dict[str, Any]:
    """Process one unit into ``out/<key>/`` (atomically, with its record); never raises.

    Returns ``{"key", "input", "worker", "status", "seconds", …}``: status ``"done"``,
    ``"unchanged"`` (the input's bytes are those recorded: the output is kept and its
    record updated) or ``"failed"`` with ``error``, ``error_type`` (and ``traceback`` for
    errors defectlab did not raise on purpose).
    """
    t0 = time.perf_counter()
    target = Path(out) / unit.key
    result: dict[str, Any] = {"key": unit.key, "input": unit.source, "worker": _worker_name()}
    try:
        size, mtime = input_stat(unit.path)
        digest = sha256_path(unit.path, unit.member) if unit.path is not None else None
        want = {**expected, "labels_sha256": unit.labels_sha256}
        if not force and record_state(target, want, size=size, mtime_ns=mtime) in ("current", "check-input"):
            rec = read_record(target)
            if rec is not None and rec.get("input_sha256") == digest:
                rec.update(input=unit.source, input_size=size, input_mtime_ns=mtime)
                write_record(target, rec)
                return {**result, "status": "unchanged", "seconds": round(time.perf_counter() - t0, 4)}
        with atomic_output(out, unit.key) as tmp:
            summary = task.run(unit, tmp)
            record = {
                "format": RECORD_FORMAT, "key": unit.key, **want, "input": unit.source, "input_sha256": digest,
                "input_size": size, "input_mtime_ns": mtime, "outputs": output_sizes(tmp), "run_id": run_id,
                "seconds": round(time.perf_counter() - t0, 4), "worker": result["worker"],
                "finished_utc": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            }
            write_record(tmp, record)
        return {**result, "status": "done", "seconds": record["seconds"], "summary": summary}
    except Exception as err:  # one input's failure is reported, the batch goes on
        failure = {**result, "status": "failed", "seconds": round(time.perf_counter() - t0, 4),
                   "error": _message(err, unit), "error_type": type(err).__name__}
        if not isinstance(err, DefectlabError):
            failure["traceback"] = traceback.format_exc(limit=-8)
        return failure


# ---------------------------------------------------------------------------------------------
# Where it runs


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _scheduler_has_bokeh(dask_scheduler: Any = None) -> bool:
    """Run on the scheduler: can it serve the dashboard (its HTTP server always runs, the
    dashboard's pages only with bokeh)?"""
    return _has_bokeh()


def _dashboard(client: Any, local: bool) -> str | None:
    try:
        if local:
            return client.dashboard_link if _has_bokeh() else None
        if "dashboard" not in client.scheduler_info().get("services", {}):
            return None
        return client.dashboard_link if client.run_on_scheduler(_scheduler_has_bokeh) else None
    except Exception:  # the link is a convenience: never fail a run over it
        return None


@contextmanager
def connect(scheduler: Any = None, workers: int | None = None) -> Iterator[tuple[Any, str, str | None]]:
    """A Dask client for ``scheduler`` (see the module docstring): ``(client, description, dashboard)``.

    Raises
    ------
    BatchError
        The scheduler cannot be reached, or no worker joins it within
        :data:`WORKERS_TIMEOUT_S`; ``workers`` given with an existing cluster.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise BatchError("running on Dask needs dask.distributed: pip install 'defectlab[batch]' "
                         "(or scheduler='sync' to run in this process)") from err
    if isinstance(scheduler, Client):
        yield scheduler, str(scheduler.scheduler.address), _dashboard(scheduler, local=False)
        return
    address = scheduler_address(scheduler)
    if scheduler is not None and not isinstance(scheduler, str):  # a cluster object
        if not hasattr(scheduler, "scheduler_address"):
            raise TypeError(f"expected scheduler None, 'sync', an address, a Client or a cluster, got {scheduler!r}")
        with Client(scheduler) as client:
            yield client, str(scheduler.scheduler_address), _dashboard(client, local=False)
        return
    if address:
        if workers is not None:
            raise BatchError(f"workers={workers} sizes a local cluster; the cluster at {address} has its own workers")
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except Exception as err:
            raise BatchError(f"cannot reach the Dask scheduler at {address} ({type(err).__name__}: {err}); "
                             "is it running, and is the address right?") from err
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            except Exception as err:
                raise BatchError(f"no worker joined the Dask scheduler at {address} within {WORKERS_TIMEOUT_S} s; "
                                 "start some with: dask worker " + address) from err
            yield client, address, _dashboard(client, local=False)
        return
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"expected workers >= 1, got {workers}")
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=":0" if _has_bokeh() else None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client, f"local cluster ({n} worker process{'es' if n > 1 else ''})", _dashboard(client, local=True)


# ---------------------------------------------------------------------------------------------
# Progress


class _Progress:
    """A rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int, already: int, label: str) -> None:
        self.bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = Console(stderr=True)
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=self.console, transient=False)
        self.failed = 0
        self.bar.start()
        self.id = self.bar.add_task(label, total=total, completed=already, failed="")

    def print(self, text: str) -> None:
        if self.bar is not None:
            self.console.print(text, highlight=False, soft_wrap=True)

    def advance(self, status: str) -> None:
        if self.bar is None:
            return
        if status == "failed":
            self.failed += 1
        self.bar.update(self.id, advance=1, failed=f"[red]{self.failed} failed[/]" if self.failed else "")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ---------------------------------------------------------------------------------------------
# The run


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _check_out(out: Path, inputs: Sequence[Path], specs: Sequence[str | Path]) -> None:
    if out.exists() and not out.is_dir():
        raise BatchError(f"{out}: exists and is not a folder")
    folders = [Path(s).absolute() for s in specs if isinstance(s, (str, Path)) and Path(s).is_dir()]
    for p in list(inputs) + folders:
        if _inside(p, out):
            raise BatchError(f"{out}: holds the input {p}; choose an --out folder outside the inputs")
        if p.is_dir() and _inside(out, p):
            raise BatchError(f"{out}: is inside the input folder {p} (a rerun would take the outputs as inputs); "
                             "choose an --out folder outside it")


def _run_dask(client: Any, todo: list[Unit], call: Callable[..., dict[str, Any]], kwargs: dict[str, Any],
              done: Callable[[Unit, dict[str, Any]], None]) -> None:
    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    keys = [f"defectlab-{tag}-{u.key}" for u in todo]
    futures = dict(zip(client.map(call, todo, pure=False, key=keys, **kwargs), todo))
    try:
        for f in as_completed(list(futures)):
            unit = futures.pop(f)
            if f.status == "finished":
                done(unit, f.result())
            else:
                err = f.exception() if f.status == "error" else None
                if type(err).__name__ == "KilledWorker":
                    msg = (f"{unit.source}: the workers running it died several times (out of memory? a crash in a "
                           f"library?): {err}")
                else:
                    msg = f"{unit.source}: {type(err).__name__ if err else f.status}: {err}"
                done(unit, {"key": unit.key, "input": unit.source, "status": "failed", "error": msg,
                            "error_type": type(err).__name__ if err else f.status})
    finally:
        if futures:
            client.cancel(list(futures))


def run_batch(
    inputs: Sequence[str | Path] | str | Path,
    task: BatchTask,
    *,
    out: str | Path,
    scheduler: Any = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> BatchReport:
    """Run ``task`` on every input, on Dask, resumably; returns what happened.

    Parameters
    ----------
    inputs : path, or sequence of paths
        Files, folders, glob patterns, list files (:func:`~defectlab.batch.inputs.expand_inputs`).
    task : BatchTask
        :class:`~defectlab.batch.tasks.MeasureTask`, :class:`~defectlab.batch.tasks.PredictTask`,
        :class:`~defectlab.batch.tasks.ConvertTask`.
    out : path
        The output folder: ``out/<key>/`` per input, ``out/_batch/`` for the report and statistics.
    scheduler : None, str, Client or cluster
        Where to run (module docstring): None (``DASK_SCHEDULER_ADDRESS`` or a local cluster),
        ``"tcp://HOST:PORT"``, a Client, a cluster object, or ``"sync"`` (in this process).
    workers : int, optional
        Worker processes of the local cluster (default: the CPU cores).
    force : bool
        Redo every input, even those whose outputs are complete and current, and replace
        folders in ``out`` that are not batch outputs.
    progress : bool
        A progress bar (and the Dask dashboard's address, when it has one) on stderr.

    Returns
    -------
    BatchReport
        ``report.ok`` is False when some input failed or the run was interrupted;
        ``report.failed`` lists the failures with their errors; ``report.measurement``
        holds the batch's statistics (measure, predict).

    Raises
    ------
    BatchError
        The batch cannot start: no inputs, colliding output names, output folder inside an
        input, no scheduler or no workers. Errors of single inputs are not raised.
    KeyboardInterrupt
        After the report of the interrupted run is written.
    """
    t0 = time.perf_counter()
    specs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    out = Path(out).absolute()
    plan: Plan = task.plan(specs)
    _check_out(out, plan.inputs, specs)
    task = plan.task
    from .. import __version__

    expected = {"record_version": RECORD_VERSION, "task": task.name, "params": task.params(),
                "model_sha256": task.model_digest(), "defectlab_version": __version__}
    run_id = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    report = BatchReport(task.name, out, run_id=run_id)
    results: dict[str, dict[str, Any]] = {}
    for f in plan.failures:
        results[f"\0plan-{len(results)}"] = {**f, "status": "failed"}
    todo: list[Unit] = []
    for unit in plan.units:
        size, mtime = input_stat(unit.path)
        state = record_state(out / unit.key, {**expected, "labels_sha256": unit.labels_sha256}, size=size,
                             mtime_ns=mtime)
        if force:
            todo.append(unit)
        elif state == "current":
            results[unit.key] = {"key": unit.key, "input": unit.source, "status": "skipped"}
        elif state == "foreign":
            results[unit.key] = {"key": unit.key, "input": unit.source, "status": "failed", "error_type": "OutputError",
                                 "error": f"{out / unit.key}: exists and is not a batch output (no batch_record.json); "
                                          "move it away, or pass force=True (--force) to replace it"}
        else:
            todo.append(unit)
    out.mkdir(parents=True, exist_ok=True)
    clean_tmp(out, everything=True)

    bar = _Progress(progress and bool(todo), total=len(plan.units), already=len(plan.units) - len(todo),
                    label=task.name)

    def done(unit: Unit, result: dict[str, Any]) -> None:
        results[unit.key] = result
        bar.advance(result["status"])

    kwargs = {"task": task, "out": str(out), "expected": expected, "force": force, "run_id": run_id}
    try:
        if not todo:
            report.scheduler = "nothing to run"
        elif scheduler == "sync":
            report.scheduler = "in-process"
            for unit in todo:
                done(unit, execute_unit(unit, **kwargs))
        else:
            with connect(scheduler, workers) as (client, description, dashboard):
                report.scheduler, report.dashboard = description, dashboard
                if dashboard:
                    bar.print(f"Dask dashboard: {dashboard}")
                _run_dask(client, todo, execute_unit, kwargs, done)
    except KeyboardInterrupt:
        bar.stop()
        report.interrupted = True
        _finish(report, plan, results, out, t0)
        raise
    bar.stop()
    _finish(report, plan, results, out, t0)
    return report


def _finish(report: BatchReport, plan: Plan, results: dict[str, dict[str, Any]], out: Path, t0: float) -> None:
    """Compute the batch's statistics from the outputs that are complete, write ``out/_batch/``."""
    report.units = [r for k, r in results.items() if k.startswith("\0plan-")] + [
        results.get(u.key) or {"key": u.key, "input": u.source, "status": "cancelled"} for u in plan.units]
    task = plan.task
    opts = task.summary_options()
    if task.measures and opts is not None:
        from .summary import summarize

        folders = [out / u["key"] for u in report.units if u["status"] in _OK]
        try:
            report.measurement = summarize(
                folders, plan.labels, opts,
                settings={"task": task.name, **task.params(), "model_sha256": task.model_digest(),
                          "inputs": [str(p) for p in plan.inputs[:100]]})
        except DefectlabError as err:
            report.summary_error = str(err)
        else:
            uncalibrated = [i.key for i in report.measurement.images if not i.pixel_size_nm]
            if uncalibrated:
                import warnings

                from ..imaging.micrograph import CalibrationWarning
                from ..measurement.run import uncalibrated_message

                warnings.warn(uncalibrated_message(uncalibrated, len(report.measurement.images)), CalibrationWarning,
                              stacklevel=3)
    clean_tmp(out)
    report.seconds = time.perf_counter() - t0
    figures = bool(task.figures) if opts is not None else False
    if figures:
        import importlib.util

        figures = importlib.util.find_spec("matplotlib") is not None
    write_batch_folder(report, figures=figures)
