"""``defectlab export MODEL --to bioimageio OUT.zip``: a trained model for other tools.

A thin wrapper over :func:`defectlab.dl.bioimageio.export_bioimageio`; its options are the
fields of :class:`~defectlab.dl.bioimageio.BioimageioOptions` (help texts from there).
torch and bioimageio are imported only when the command runs.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import typer


class ExportTarget(str, Enum):
    bioimageio = "bioimageio"


def _help(name: str) -> str:
    """The help text of a BioimageioOptions field, without importing torch (read from the source)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("defectlab.dl.bioimageio")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))  # type: ignore[union-attr, arg-type]
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            for kw in getattr(node.value, "keywords", []):
                if kw.arg == "metadata" and isinstance(kw.value, ast.Dict):
                    for k, v in zip(kw.value.keys, kw.value.values):
                        if isinstance(k, ast.Constant) and k.value == "help" and isinstance(v, ast.Constant):
                            return str(v.value)
    return ""


def export(
    model: Annotated[Path, typer.Argument(help="A trained model folder (config.json + weights.pt).")],
    out: Annotated[Path, typer.Argument(help="The package to write, e.g. model.bioimageio.zip.")],
    to: Annotated[ExportTarget, typer.Option("--to", help="What to export to: bioimageio (a model package for "
                                             "Fiji/deepImageJ, ilastik, QuPath, napari).")],
    name: Annotated[Optional[str], typer.Option("--name", help=_help("name"))] = None,
    description: Annotated[Optional[str], typer.Option("--description", help=_help("description"))] = None,
    author: Annotated[Optional[List[str]], typer.Option("--author", help=_help("authors"))] = None,
    license: Annotated[str, typer.Option("--license", help=_help("license"))] = "CC-BY-4.0",
    cite: Annotated[Optional[List[str]], typer.Option("--cite", help=_help("cite"))] = None,
    tag: Annotated[Optional[List[str]], typer.Option("--tag", help=_help("tags"))] = None,
    version: Annotated[str, typer.Option("--version", help=_help("version"))] = "0.1.0",
    pixel_size: Annotated[Optional[str], typer.Option("--pixel-size", help=_help("pixel_size"))] = None,
    sample: Annotated[Optional[Path], typer.Option("--sample", help=_help("sample"))] = None,
    git_repo: Annotated[Optional[str], typer.Option("--git-repo", help=_help("git_repo"))] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing package.")] = False,
) -> None:
    """Export a trained U-Net as a bioimage.io model package (TorchScript + ONNX, test tensors, docs)."""
    from defectlab.cli import console, fail
    from defectlab.errors import DefectlabError

    try:
        import bioimageio.spec  # noqa: F401

        from defectlab.dl.bioimageio import BioimageioOptions, export_bioimageio
    except ImportError as err:
        fail(ImportError(f"export --to bioimageio needs torch and bioimageio.spec, not importable here ({err}): "
                         "pip install 'defectlab[bioimageio]'"))

    try:
        options = BioimageioOptions(name=name, description=description, authors=tuple(author or ()),
                                    license=license, cite=tuple(cite or ()), tags=tuple(tag or ()),
                                    version=version, pixel_size=pixel_size, sample=sample, git_repo=git_repo)
        report = export_bioimageio(model, out, options, overwrite=overwrite)
    except (DefectlabError, ValueError) as err:
        fail(err)
    console.print(f"[green]wrote[/] {report}", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``export`` to the ``defectlab`` app."""
    app.command()(export)
