"""Imports point down: the lower floors (model/, raster/, imaging/, qc/, measurement/, preparation/)
never import the display code, the API or the command line above them (#15.4)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import defectlab

SRC = Path(defectlab.__file__).parent
UPPER = ("defectlab.notebook", "defectlab.api", "defectlab.cli", "defectlab.commands")


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (relative imports resolved), anywhere in the file."""
    package = ".".join(("defectlab", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                found += [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                found.append(node.module or "")
    return found


@pytest.mark.parametrize("floor", ["model", "raster", "imaging", "qc", "measurement", "preparation"])
def test_lower_floors_do_not_import_the_top(floor):
    bad = [(p.relative_to(SRC).as_posix(), m) for p in sorted((SRC / floor).rglob("*.py"))
           for m in _imports(p) if m.startswith(UPPER)]
    assert bad == []


def test_the_scan_sees_an_upward_import(tmp_path):
    """The scan is not blind: the old ``from ..notebook import show`` in model/dataset.py is found."""
    fake = SRC / "model" / "_probe_for_test.py"
    fake.write_text("def f():\n    from ..notebook import show\n    return show\n", encoding="utf-8")
    try:
        assert "defectlab.notebook" in _imports(fake)
    finally:
        fake.unlink()


def test_display_is_registered_by_the_display_code():
    from defectlab.model import display
    from defectlab.model.dataset import Dataset
    from defectlab.notebook import show, summary_html

    ds = Dataset((), ())
    assert display.renderer(ds, "html") is summary_html and display.renderer(ds, "show") is show
