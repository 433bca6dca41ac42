"""Work spread over the CPU cores: an ordered map over worker processes, for the per-image loops.

``check``, its report and ``convert`` do the same independent work for every image; on a
2-core machine two processes halve the wall time. :func:`ordered_map` runs a module-level
function over the items in worker processes (forked where that is safe, so nothing is
imported again; :func:`start_method`) and yields the results in the items' order, one at a time (memory stays that of
a few items); with one worker, or one item, it is a plain loop in this process, the reference
path the tests compare the pool with.

:func:`background_writes` is the other half: file writes (PNG encoding, copies) handed to
threads — Pillow's encoder and file copies release the GIL, so encoding runs on the second core
while this thread rasterizes the next image — with a bound on how many wait, so memory stays that
of a few images.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

__all__ = ["BackgroundWrites", "background_writes", "default_workers", "ordered_map", "resolve_workers",
           "start_method"]


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None, n_items: int) -> int:
    """``workers`` (None: every core) capped at the number of items, at least 1."""
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ValueError(f"expected workers >= 1 (an integer) or None, got {workers!r}")
    n = default_workers() if workers is None else int(workers)
    return max(1, min(n, n_items))


def start_method() -> str:
    """How worker processes start: ``"fork"`` while that is safe, else ``"forkserver"`` (or
    ``"spawn"``).

    A forked child gets a copy of every lock of this process but none of its other threads: a
    lock held by one of them at the fork stays held forever, and the worker hangs. That is the
    case once torch has run here (its OpenMP and oneDNN thread pools; in a notebook, training and
    then ``prepare`` in the same kernel), or while any other thread runs (writer threads, a
    progress bar's monitor). Then the workers start from a fresh interpreter instead: about half
    a second of imports each, instead of a hang.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and "torch" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


_TASK: tuple[Callable[..., Any], tuple[Any, ...]] | None = None


def _init(fn: Callable[..., Any], shared: tuple[Any, ...]) -> None:
    global _TASK
    _TASK = (fn, shared)


def _call(arg: Any) -> Any:
    assert _TASK is not None  # set by _init in every worker
    fn, shared = _TASK
    try:
        return fn(*shared, arg)
    except Exception as err:
        try:  # the error travels back pickled: one that does not survive it would stall the pool
            pickle.loads(pickle.dumps(err))
        except Exception:  # noqa: BLE001
            raise RuntimeError(f"{type(err).__name__}: {err}") from None
        raise


@contextmanager
def ordered_map(fn: Callable[..., Any], items: Iterable[Any], *, n_items: int, workers: int | None = None,
                shared: tuple[Any, ...] = ()) -> Iterator[Iterator[Any]]:
    """``fn(*shared, item)`` for each item, in the items' order, over ``workers`` processes.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled by name where processes are spawned).
    items : iterable
        Its last argument, one per call (pickled to the workers).
    n_items : int
        How many items there are (the pool is not larger).
    workers : int, optional
        Processes; None: every core (:func:`default_workers`). 1: a loop in this process.
    shared : tuple
        The first arguments of every call, sent to each worker once.

    Yields
    ------
    iterator
        The results, in order. An exception in a call is raised here, in the caller.

    Examples
    --------
    >>> with ordered_map(divmod, [7, 9], n_items=2, workers=1, shared=(100,)) as results:
    ...     list(results)
    [(14, 2), (11, 1)]
    """
    n = resolve_workers(workers, n_items)
    if n == 1:
        yield (fn(*shared, item) for item in items)
        return
    ctx = multiprocessing.get_context(start_method())
    with ctx.Pool(n, initializer=_init, initargs=(fn, shared)) as pool:
        yield pool.imap(_call, items, chunksize=1)


class BackgroundWrites:
    """Calls (file writes) run by threads, at most ``2 × threads`` waiting; see :func:`background_writes`."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="defectlab-write") if threads > 1 else None
        self._slots = threading.BoundedSemaphore(2 * threads)
        self._pending: list[Future] = []

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` in a writer thread (here, at once, with one thread); an
        earlier call's error is raised here."""
        if self._pool is None:
            fn(*args, **kwargs)
            return
        self._raise_done()
        self._slots.acquire()  # wait while 2 x threads writes are queued: memory stays bounded
        future = self._pool.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda _: self._slots.release())
        self._pending.append(future)

    def _raise_done(self) -> None:
        still = []
        for f in self._pending:
            if f.done():
                f.result()  # raises the call's error
            else:
                still.append(f)
        self._pending = still

    def wait(self) -> None:
        """Wait for every call; raise the first error."""
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


@contextmanager
def background_writes(workers: int | None = None) -> Iterator[BackgroundWrites]:
    """Writes handed to ``workers`` threads (None: every core; 1: done at once in this thread).

    Every write has finished when the block ends; the first write's error is raised then (or at a
    later ``submit``). When the block raises, the writes already queued still finish before the
    error goes on, so no thread writes into a folder being removed.

    Examples
    --------
    >>> out = []
    >>> with background_writes(2) as writes:
    ...     for k in range(3):
    ...         writes.submit(out.append, k)
    >>> sorted(out)
    [0, 1, 2]
    """
    writes = BackgroundWrites(default_workers() if workers is None else resolve_workers(workers, workers))
    try:
        yield writes
        writes.wait()
    finally:
        writes.close()
