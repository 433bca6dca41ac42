"""Safe output folders: written beside the target, moved into place only when complete.

A failed or interrupted run leaves the previous output (or nothing), never half of a new
one:

* the output is written into ``.<name>.tmp-<pid>-<random>`` beside the target and renamed
  to the target only when the ``with`` block ends without an error;
* an exception — and Ctrl-C (SIGINT) or SIGTERM, which are turned into exceptions while the
  block runs in the main thread — deletes the temporary folder;
* replacing an existing target moves it aside to ``.<name>.old-<pid>``, renames the new
  folder into place with SIGINT and SIGTERM held back, then deletes the old one;
* SIGKILL (or a power cut) cannot be caught: it can leave a ``.<name>.tmp-<pid>-*`` or
  ``.<name>.old-<pid>`` sibling. The next run for the same target removes those of a
  process that no longer runs, and puts a ``.old-`` folder back when the kill came between
  the two renames and the target is missing.

An existing output is replaced only with ``overwrite=True``; an output folder that equals or
contains an input (an image file, the export's file or folder) is refused even then, and so is
replacing an existing folder inside an input folder (it may hold input files the writer does
not know of, e.g. a COCO export's ``annotations/``). A *new* folder inside an export folder is
allowed: it modifies no input.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from .errors import OutputError

if TYPE_CHECKING:
    from .model import Dataset

__all__ = ["check_output", "output_dir", "clean_stale", "umask", "input_paths"]


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _alive(pid: int) -> bool:
    """True when a process ``pid`` exists (or cannot be probed: assume it runs)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale(target: str | Path) -> list[Path]:
    """Remove what killed runs left beside ``target``; returns the paths removed or restored.

    A ``.<name>.tmp-<pid>-*`` folder of a process that no longer runs is deleted. A
    ``.<name>.old-<pid>`` folder of such a process is the previous output: it is put back
    when ``target`` is missing (the kill came between the two renames), else deleted.
    Folders of running processes (another run writing the same target now) are left alone.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> parent = pathlib.Path(tempfile.mkdtemp())
    >>> (parent / ".out.tmp-999999999-abcd").mkdir()   # a dead process's half-written output
    >>> [p.name for p in clean_stale(parent / "out")], list(parent.iterdir())
    (['.out.tmp-999999999-abcd'], [])
    """
    target = Path(target).absolute()
    parent = target.parent
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(tmp|old)-(\d+)(?:-.*)?")
    done: list[Path] = []
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return done
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not target.exists():
            os.replace(entry, target)
        else:
            shutil.rmtree(entry, ignore_errors=True)
        done.append(entry)
    return done


class _Interrupted(SystemExit):
    """SIGTERM during an output block: leaves like ``sys.exit(143)`` after the clean-up."""


@contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM raises (so ``finally`` clean-ups run);
    Ctrl-C already raises KeyboardInterrupt. Handlers other than the default are kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):  # pragma: no cover - platforms without SIGTERM
        yield
        return
    if previous is not signal.SIG_DFL:
        yield
        return

    def raise_exit(signum: int, _frame: object) -> None:
        raise _Interrupted(128 + signum)

    signal.signal(signal.SIGTERM, raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered after the block) around the final renames."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _check_inputs(target: Path, inputs: Iterable[str | Path], overwrite: bool) -> None:
    for inp in inputs:
        inp = Path(inp).absolute()
        if _inside(inp, target):
            raise OutputError(f"{target}: the output folder would hold or replace the input {inp}; choose another --out")
        if overwrite and target.exists() and inp.is_dir() and _inside(target, inp):
            raise OutputError(
                f"{target}: an existing folder inside the input {inp} is not replaced (it may hold input "
                "files, e.g. annotations); choose another --out, or delete it yourself"
            )


def check_output(target: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """The checks :func:`output_dir` makes before it writes, alone: for a long run (training)
    to fail at once, not after the work. Returns the absolute target; raises :class:`OutputError`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> parent = pathlib.Path(tempfile.mkdtemp())
    >>> (parent / "out").mkdir(); _ = (parent / "out" / "a.txt").write_text("a")
    >>> check_output(parent / "out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    defectlab.errors.OutputError: ...out: exists and is not empty; pass overwrite=True (--overwrite) to replace it
    """
    target = Path(target).absolute()
    _check_inputs(target, inputs, overwrite)
    clean_stale(target)
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"{target}: exists and is not a folder")
        if any(target.iterdir()) and not overwrite:
            raise OutputError(f"{target}: exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    return target


@contextmanager
def output_dir(target: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder that becomes ``target`` when the block succeeds.

    Parameters
    ----------
    target : path
        The output folder to create.
    overwrite : bool
        Replace an existing non-empty ``target``; without it, an existing one is an error.
    inputs : paths
        Input files or folders; a target equal to, or containing, one is refused always (so
        an input is never deleted or overwritten).

    Raises
    ------
    OutputError
        ``target`` is a file, exists without ``overwrite``, holds an input, or is an existing
        folder inside an input folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> with output_dir(out) as tmp:
    ...     _ = (tmp / "a.txt").write_text("a")
    ...     out.exists(), tmp.name.startswith(".out.tmp-")
    (False, True)
    >>> sorted(p.name for p in out.iterdir()), [p.name for p in out.parent.iterdir()]
    (['a.txt'], ['out'])
    """
    target = check_output(target, overwrite=overwrite, inputs=inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private (0700); the output gets the usual mode
    with _signals_as_exceptions():
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)  # a dead process's with this process's id
        try:
            with _signals_held():
                moved = False
                if target.exists():
                    os.replace(target, old)
                    moved = True
                try:
                    os.replace(tmp, target)
                except BaseException:
                    if moved:
                        os.replace(old, target)  # put the previous output back
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
        finally:
            shutil.rmtree(old, ignore_errors=True)


def input_paths(dataset: "Dataset") -> list[Path]:
    """What a writer must not overwrite: the dataset's image files and its export (file or folder).

    Given to :func:`defectlab._output.output_dir` as ``inputs``: an output folder holding one
    is refused, one inside the export folder needs ``overwrite=True``.
    """
    paths = [it.image.path for it in dataset.items if it.image is not None]
    if dataset.source:
        source = Path(dataset.source)
        try:
            if source.exists():
                paths.append(source)
        except OSError:
            pass
    return paths
