"""Safe output folders: written beside the target, moved into place only when complete.

A failed or interrupted run leaves the previous output (or nothing), never half of a new
one; an existing output is replaced only with ``overwrite=True``; an output folder that
contains or equals an input is refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError

__all__ = ["output_dir"]


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


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
        Input files or folders; a target equal to, inside, or containing one is refused
        (so an input is never deleted or overwritten).
    """
    target = Path(target).absolute()
    for inp in inputs:
        inp = Path(inp).absolute()
        if _inside(inp, target) or (inp.is_dir() and _inside(target, inp) and overwrite and target.exists()):
            raise OutputError(f"{target}: the output folder would hold or replace the input {inp}; choose another --out")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"{target}: exists and is not a folder")
        if any(target.iterdir()) and not overwrite:
            raise OutputError(f"{target}: exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
