"""YOLO class names: data.yaml, classes.txt / obj.names, the classes= option (see the package docstring)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from ...errors import ParseError
from ...limits import current as current_limits
from ...limits import hint as limit_hint
from ...model import Note
from .._text import decode_text, read_file
from .spec import NAMES_FILES

#: Largest data.yaml read: PyYAML scans ~0.2 MB/s of worst-case text (brackets), and a real one is a few KB.
_MAX_YAML_BYTES = 1 << 20

# ---------------------------------------------------------------------------------------------
# data.yaml
# ---------------------------------------------------------------------------------------------


@dataclass
class _Yaml:
    """A parsed data.yaml: its values and the 1-based line of each top-level key and of each name."""

    path: Path
    data: dict[str, Any]
    lines: dict[str, int]
    name_lines: list[int]

    def error(self, key: str, message: str) -> ParseError:
        return ParseError(self.path, message, line=self.lines.get(key), where=f"key {key!r}")


def _yaml_loader() -> type:
    """A SafeLoader that refuses aliases (``*name``): a data.yaml has no use for them, and
    nested aliases expand exponentially (the YAML "billion laughs")."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"found the alias *{event.anchor}: aliases are not allowed in a data.yaml",
                    event.start_mark)
            return super().compose_node(parent, index)

    return Loader


def _load_yaml(path: Path) -> _Yaml:
    import yaml

    raw = read_file(path)
    if len(raw) > _MAX_YAML_BYTES:
        raise ParseError(path, f"a data.yaml of {len(raw)} bytes is not plausible (limit {_MAX_YAML_BYTES})")
    text = decode_text(raw, str(path), expected="a YOLO data.yaml")
    try:
        loader = _yaml_loader()(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        place = {"line": mark.line + 1, "column": mark.column + 1} if mark else {}
        raise ParseError(path, f"not valid YAML: {err.problem or err.context}", **place) from err
    except yaml.YAMLError as err:
        raise ParseError(path, f"not valid YAML ({err})") from err
    except ValueError as err:  # a constructor's, e.g. Python refusing an integer of 5000 digits
        raise ParseError(path, f"not a usable data.yaml ({err})") from None
    except RecursionError:
        raise ParseError(path, "YAML nested too deeply to be a data.yaml") from None
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ParseError(path, f"expected a mapping with keys train, val, names, ...; got {got}", line=line)
    lines: dict[str, int] = {}
    name_lines: list[int] = []
    for key_node, value_node in node.value:
        key = str(key_node.value)
        lines[key] = key_node.start_mark.line + 1
        if key == "names" and isinstance(value_node, yaml.SequenceNode):
            name_lines = [n.start_mark.line + 1 for n in value_node.value]
        elif key == "names" and isinstance(value_node, yaml.MappingNode):
            name_lines = [k.start_mark.line + 1 for k, _ in value_node.value]
    data = {str(k): v for k, v in data.items()}
    return _Yaml(path, data, lines, name_lines)


def _names(doc: _Yaml, notes: list[Note]) -> list[str]:
    """Class names by index from ``names`` (list or map) and ``nc``."""
    names, nc = doc.data.get("names"), doc.data.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 0):
        raise doc.error("nc", f"expected the class count (a whole number >= 0) for 'nc', got {nc!r}")
    if nc is not None and nc > current_limits().max_classes:
        raise doc.error("nc", f"{nc} classes is over the limit of {current_limits().max_classes} "
                        f"({limit_hint('max_classes')})")
    if names is None:
        if nc is None:
            raise ParseError(doc.path, "missing key 'names' (the class names; 'nc' alone would do too)",
                             where="key 'names'")
        notes.append(Note("made-up-names", f"no 'names': the {nc} classes are called class_0, class_1, ... "
                          "as Ultralytics does", where=doc.path.name))
        return [f"class_{i}" for i in range(nc)]
    if not isinstance(names, (list, dict)):
        raise doc.error("names", f"expected a list or an {{index: name}} map for 'names', got {names!r}")
    values = list(names.values()) if isinstance(names, dict) else names
    lines = doc.name_lines if len(doc.name_lines) == len(values) else [doc.lines.get("names")] * len(values)
    if isinstance(names, list):
        pairs = list(zip(range(len(names)), names, lines))
    elif isinstance(names, dict):
        pairs = []
        for (k, v), line in zip(names.items(), lines):
            if isinstance(k, bool) or not isinstance(k, (int, str)) or not str(k).strip().isdigit():
                raise doc.error(
                    "names", f"expected class indices (whole numbers >= 0) as the keys of 'names', got {k!r}"
                )
            pairs.append((int(k), v, line))
    else:
        raise doc.error("names", f"expected a list or an {{index: name}} map for 'names', got {names!r}")
    pairs.sort(key=lambda t: t[0])
    indices = [k for k, _, _ in pairs]
    if indices != list(range(len(pairs))):
        present = set(indices)  # the first missing indices (a huge index must not make a huge range)
        missing = list(islice((i for i in range(max(indices, default=-1) + 1) if i not in present), 5))
        raise doc.error("names", f"expected class indices 0..{len(pairs) - 1} in 'names', "
                        f"got {indices[:10]}{' ...' if len(indices) > 10 else ''}"
                        + (f" (missing {missing[:5]})" if missing else " (an index twice)"))
    out: list[str] = []
    for i, v, line in pairs:
        if isinstance(v, bool) or v is None or not isinstance(v, (str, int, float)) or str(v).strip() == "":
            raise ParseError(doc.path, f"expected a class name for class {i}, got {v!r} "
                             "(quote names like yes, no, null in YAML)", line=line, where="key 'names'")
        out.append(str(v))
    dup = [n for n, c in Counter(out).items() if c > 1]
    if dup:
        idx = [i for i, n in enumerate(out) if n == dup[0]]
        raise doc.error(
            "names", f"the class name {dup[0]!r} is given to classes {idx}; expected unique names"
        )
    if nc is not None and nc != len(out):
        raise doc.error("nc", f"'nc' is {nc} but 'names' has {len(out)} names; expected them to match")
    return out


def _names_file(root: Path) -> Path | None:
    for name in NAMES_FILES:
        for folder in (root, root / "labels"):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_names_file(path: Path) -> list[str]:
    text = decode_text(read_file(path), str(path), expected="class names, one a line")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    for lineno, name in enumerate(names, start=1):
        if not name:
            raise ParseError(path, "expected a class name on every line, got an empty line", line=lineno)
        if name in names[: lineno - 1]:
            raise ParseError(
                path, f"the class name {name!r} appears twice; expected unique names", line=lineno
            )
    return names




def _classes_option(classes: Any) -> list[str] | None:
    """``classes=`` as a list of names by index: names in order, ``"a,b,c"``, or ``{index: name}``."""
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",")]
    if isinstance(classes, dict):
        keys = sorted(classes)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or keys != list(range(len(keys))):
            raise ValueError(f"classes: expected the indices 0..{len(keys) - 1} as keys, got {keys[:10]}")
        classes = [classes[k] for k in keys]
    names = list(classes)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"classes: expected class names (non-empty strings) in index order, got {names!r}")
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ValueError(f"classes: the name {dup[0]!r} is given twice; expected unique names")
    if len(names) > current_limits().max_classes:
        raise ValueError(f"classes: {len(names)} names is over the limit of {current_limits().max_classes} classes")
    return names


def _names_beside(folder: Path, notes: list[Note]) -> list[str] | None:
    """Class names for a plain label folder: ``classes.txt`` / ``obj.names`` in it or its parent,
    else the ``names`` of a data.yaml there."""
    for where in (folder, folder.parent):
        for name in NAMES_FILES:
            if (where / name).is_file():
                return _read_names_file(where / name)
    for yaml_path in (_find_yaml(folder), folder.parent / "data.yaml"):
        if yaml_path is not None and yaml_path.is_file():
            doc = _load_yaml(yaml_path)
            if "names" in doc.data or "nc" in doc.data:
                return _names(doc, notes)
    return None


def _find_yaml(folder: Path) -> Path | None:
    if (folder / "data.yaml").is_file():
        return folder / "data.yaml"
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".yaml", ".yml"))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = [p.name for p in found[:10]]
        raise ParseError(folder, f"expected one data.yaml, found several YAML files: {names}; "
                         f"pick one: read {folder / names[0]} (the file itself)")
    return None


