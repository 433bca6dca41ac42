"""The example notebooks run top to bottom in a Jupyter kernel and draw their figures.

Each committed ``examples/NN_*.ipynb`` is executed with nbclient in a kernel of this
interpreter (the venv's python through ipykernel), in ``examples/`` as a user's Jupyter would,
with its outputs written under a temporary folder (``DEFECTLAB_WORK``) and the training
notebook in its tiny CPU settings (``DEFECTLAB_SMOKE=1``). A cell that raises fails the test
with the cell and its traceback; each notebook must draw exactly the figures its cells draw
(``image/png`` outputs; a library call that switches matplotlib to Agg shows up here), and print
no warning. The notebooks must also be exactly what ``build_notebooks.py``
makes of their ``.py`` sources, so the two never drift apart.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("[0-9][0-9]_*.ipynb"))
KERNEL = "defectlab-test"
#: Seconds one cell may take before the run is stopped (a hang guard, not a speed test).
CELL_TIMEOUT = 300

#: The figures each notebook draws: on the synthetic data, and on the workshop's files in
#: ../shared/data/workshop, which the test suite has beside the repository (tests/conftest.py).
FIGURES = {
    "01_cvat_to_training_data": 7,
    "02_check_and_fix_labels": 4,
    "03_train_predict_prelabels": 5,
    "04_measure_and_compare": 4,
    "05_ecosystem": 3,
    "06_insitu_kinetics": 3,
}


def _build_module():
    spec = importlib.util.spec_from_file_location("build_notebooks", EXAMPLES / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec running this interpreter, and the environment the notebooks run in."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "defectlab tests", "language": "python",
    }))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        mp.setenv("DEFECTLAB_SMOKE", "1")
        mp.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the figures
        yield mp


def test_every_notebook_has_a_source_and_an_expected_figure_count():
    sources = {p.stem for p in _build_module().sources(EXAMPLES)}
    assert sources == {p.stem for p in NOTEBOOKS} == set(FIGURES)


def test_notebooks_are_built_from_their_sources():
    build = _build_module()
    for source in build.sources(EXAMPLES):
        committed = source.with_suffix(".ipynb").read_text(encoding="utf-8")
        assert committed == build.notebook_text(source), (
            f"{source.with_suffix('.ipynb').name} is out of date: run python examples/build_notebooks.py")


def _outputs(nb, output_type: str | None = None):
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if output_type is None or o.output_type == output_type]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws(path, kernel_env, tmp_path, shared_data):
    assert (shared_data / "workshop").is_dir()  # the notebooks' "your own files" part runs on it
    kernel_env.setenv("DEFECTLAB_WORK", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    assert not _outputs(nb), f"{path.name} is committed with outputs"
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()  # raises CellExecutionError, naming the cell, when a cell fails

    assert not _outputs(nb, "error")
    figures = sum("image/png" in o.get("data", {}) for o in _outputs(nb) if o.output_type in
                  ("display_data", "execute_result"))
    assert figures == FIGURES[path.stem], f"{path.name} drew {figures} figures, expected {FIGURES[path.stem]}"
    warned = [o["text"] for o in _outputs(nb, "stream") if o["name"] == "stderr" and "Warning" in o["text"]]
    assert not warned, f"{path.name} printed warnings: {warned}"
    assert any(tmp_path.iterdir()), "the notebook wrote nothing under DEFECTLAB_WORK"
