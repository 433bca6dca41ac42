"""MkDocs hooks: the CLI reference is generated from the code at every build.

``docs/cli.md`` holds the marker ``<!-- defectlab-cli -->``; it is replaced by the Markdown
that typer generates from ``defectlab.cli.app`` (the same as
``typer defectlab.cli utils docs --name defectlab``), so the page cannot drift from the
commands' real options, defaults and help.
"""

from __future__ import annotations

import html
import re

MARKER = "<!-- defectlab-cli -->"


def cli_markdown() -> str:
    """The reference of every ``defectlab`` command, as Markdown (headings from level 2)."""
    try:
        import typer
        from typer.cli import get_docs_for_click  # what `typer ... utils docs` runs
    except ImportError:  # its place inside typer moved: run the command itself
        import subprocess
        import sys

        text = subprocess.run([sys.executable, "-m", "typer", "defectlab.cli", "utils", "docs", "--name", "defectlab"],
                              capture_output=True, text=True, check=True).stdout
        return re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)  # headings from level 2; help escaped already
    from defectlab.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="defectlab")
    text = get_docs_for_click(obj=command, ctx=ctx, name="defectlab", indent=1)
    # help texts are plain text: keep "<stem>" or "x>=1" from being read as HTML
    lines = []
    for line in text.splitlines():
        m = re.match(r"^(\* `[^`]*`: )(.*)$", line)
        lines.append(m.group(1) + html.escape(m.group(2), quote=False) if m else line)
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_markdown())
    return markdown
