"""docs/architecture.md names only what exists: every path, and every ``defectlab.…`` name (its
module, then the name defined there), read from the sources without importing them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _defined(path: Path) -> set[str]:
    """Top-level names a module defines or imports."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _resolve(dotted: str) -> str | None:
    """None when ``defectlab.a.b.name`` exists, else what is missing."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT / "src" / Path(*parts[:cut])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.is_file():
            rest = parts[cut:]
            if not rest:
                return None
            if len(rest) == 1 and rest[0] in _defined(module):
                return None
            if len(rest) == 2 and rest[0] in _defined(module):  # Class.method
                return None
            return f"{dotted}: {'.'.join(rest)} is not defined in {module.relative_to(ROOT)}"
    return f"{dotted}: no such module"


def test_every_path_and_name_on_the_page_exists():
    text = re.sub(r"```.*?```", "", DOC.read_text(encoding="utf-8"), flags=re.S)  # the diagram
    code = re.findall(r"`([^`]+)`", text)
    paths = [c for c in code if c.startswith(("src/", "tests/", "docs/")) and "<" not in c]  # not templates
    names = [c for c in code if re.fullmatch(r"defectlab(\.\w+)+", c)]
    assert len(paths) >= 30 and len(names) >= 20, (len(paths), len(names))
    missing = [p for p in paths if not (ROOT / p.rstrip("/")).exists()]
    assert missing == []
    unresolved = [why for name in names if (why := _resolve(name))]
    assert unresolved == []


def test_the_check_is_not_blind():
    assert _resolve("defectlab.qc.findings.CHECKS") is None
    assert _resolve("defectlab.qc.findings.NO_SUCH_THING") is not None
    assert _resolve("defectlab.nowhere.thing") is not None


def test_every_station_of_the_flow_has_its_package():
    """The table of stations lists every subpackage of defectlab (a new one is documented)."""
    text = DOC.read_text(encoding="utf-8")
    packages = sorted(p.name for p in (ROOT / "src" / "defectlab").iterdir()
                      if p.is_dir() and (p / "__init__.py").is_file() and p.name not in ("napari",))
    missing = [p for p in packages if f"`src/defectlab/{p}/`" not in text]
    assert missing == []
