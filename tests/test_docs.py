"""The documentation builds with warnings as errors, documents every command and public
function (each with an example the doctests run), and its getting-started page works as
written."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import defectlab
from defectlab import api, notebook

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``mkdocs build --strict`` into a temporary folder (no network needed)."""
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                          str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stderr[-4000:]}"
    assert "WARNING" not in run.stderr, run.stderr
    return out


def test_every_page_is_built_with_its_figures(site):
    pages = {p.name for p in site.glob("*.html")}
    assert pages >= {"index.html", "notebooks.html", "formats.html", "rasterization.html", "conventions.html",
                     "cli.html", "api.html", "errors.html"}
    for page, figure in (("rasterization.html", "img/rasterization.png"), ("conventions.html", "img/conventions.png")):
        assert f'src="{figure}"' in (site / page).read_text(encoding="utf-8")
        assert (site / figure).stat().st_size > 10_000
    built = "".join(p.read_text(encoding="utf-8") for p in site.glob("*.html"))
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', built), "the site loads something from the web"


def test_cli_page_documents_every_command_and_option(site):
    import typer

    from defectlab.cli import app

    page = (site / "cli.html").read_text(encoding="utf-8")
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        assert f"defectlab {name}</code>" in page, f"command {name} missing from cli.html"
        for param in group.get_command(ctx, name).params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in page, f"{name} {opt} missing from cli.html"


def test_api_page_documents_the_api(site):
    page = (site / "api.html").read_text(encoding="utf-8")
    for name in api.__all__:
        target = "defectlab.notebook.show" if name == "show" else f"defectlab.api.{name}"
        assert f'id="{target}"' in page, f"{target} missing from api.html"


def _public_functions():
    names = {f"defectlab.{n}": getattr(defectlab, n) for n in defectlab.__all__}
    names.update({f"defectlab.api.{n}": getattr(api, n) for n in api.__all__})
    names.update({f"defectlab.notebook.{n}": getattr(notebook, n) for n in notebook.__all__})
    return sorted((name, obj) for name, obj in names.items() if inspect.isfunction(obj))


@pytest.mark.parametrize("name, fn", _public_functions(), ids=[n for n, _ in _public_functions()])
def test_public_function_has_a_docstring_with_an_example(name, fn):
    doc = inspect.getdoc(fn) or ""
    assert doc, f"{name} has no docstring"
    assert ">>>" in doc, f"{name}: its docstring has no example (>>>); pytest runs them as doctests"


def _blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def test_getting_started_works_as_written(tmp_path):
    """The page's commands and Python, run in order on a CVAT-style zip (annotations.xml + images/)."""
    export = tmp_path / "export"
    api.synthetic(export, n=2, size=128, seed=1)
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as zf:
        for p in sorted(export.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(export).as_posix())
    shutil.rmtree(export)
    page = DOCS / "index.md"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MPLBACKEND": "Agg"}
    for block in _blocks(page, "bash"):
        for line in block.strip().splitlines():
            run = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
            assert run.returncode == 0, f"{line}\n{run.stderr}"
    (python,) = _blocks(page, "python")
    run = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for folder in ("unet", "unet_py"):
        assert sorted(p.name for p in (tmp_path / folder / "masks").iterdir()) == ["synthetic_000.png",
                                                                                  "synthetic_001.png"]
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["synthetic_000.png", "synthetic_001.png"]


def test_figures_script_draws_the_figures(tmp_path):
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.main(["--out", str(tmp_path)])
    from PIL import Image

    for path in paths:
        committed = DOCS / "img" / path.name
        with Image.open(path) as new, Image.open(committed) as old:
            assert new.size == old.size  # the committed picture is this script's
