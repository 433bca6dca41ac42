"""Build the example notebooks (``NN_*.ipynb``) from their plain-text sources (``NN_*.py``).

The ``.py`` files (jupytext "percent" format: ``# %%`` starts a code cell, ``# %% [markdown]``
a text cell) are what is edited and reviewed; the ``.ipynb`` files are generated from them,
without outputs, and committed so that Jupyter, Colab and GitHub open them directly::

    python examples/build_notebooks.py            # (re)write every examples/NN_*.ipynb
    python examples/build_notebooks.py --check    # exit 1 when an .ipynb differs from its .py

The output is deterministic (cell ids from the cell's position, no tool versions in the
metadata), so an unchanged source gives a byte-identical notebook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

EXAMPLES = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}


def sources(folder: Path = EXAMPLES) -> list[Path]:
    """The notebook sources: ``NN_*.py`` in ``folder``, in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.py"))


def notebook_text(source: Path) -> str:
    """The ``.ipynb`` JSON for one ``.py`` source."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = {"jupytext": {"formats": "ipynb,py:percent"}, "kernelspec": dict(KERNELSPEC),
                   "language_info": dict(LANGUAGE_INFO)}
    for k, cell in enumerate(nb.cells):
        cell.id = f"cell-{k:02d}"
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that every .ipynb is up to date")
    args = parser.parse_args(argv)
    stale = []
    for source in sources():
        target = source.with_suffix(".ipynb")
        text = notebook_text(source)
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(EXAMPLES.parent)}")
    if stale:
        print(f"out of date (run python examples/build_notebooks.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
