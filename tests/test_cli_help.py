"""``--help`` of every command at 80 columns (#14.9): every flag, help text and choice shown whole,
nothing eaten as markup, no type placeholders such as ``<bool>``, no line wider than the screen."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from defectlab.cli import app

runner = CliRunner()


def _commands():
    """(path of words, click command) of every command and subcommand."""
    group = typer.main.get_command(app)
    out = []

    def walk(cmd, path):
        ctx = typer.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if hasattr(sub, "list_commands"):
                walk(sub, path + [name])
            else:
                out.append((path + [name], sub))

    walk(group, [])
    return out


COMMANDS = _commands()


def _flat(text: str) -> str:
    """Lines joined as one text; a line broken after a hyphen joined back without the space."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_at_80_columns_shows_everything_whole(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    text = result.output
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, f"lines over 80 columns: {wide[:2]}"
    options = text.split("\nOptions:", 1)[-1]
    assert "<bool>" not in text and not re.search(r"--[\w-]+ <[^>]+>", options), "a type placeholder among the options"
    assert "…" not in text, "a help text was cut"
    flat = _flat(text)
    for param in command.params:
        for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
            if opt.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", flat), f"{opt} not shown whole"
        if param.help:
            assert _flat(param.help) in flat, f"{param.name}: help not shown whole: {param.help!r}"


@pytest.mark.parametrize("path, flag, choices", [
    (["convert"], "--task", ("detect", "segment")),
    (["prepare"], "--task", ("detect", "segment")),
    (["prepare"], "--fit", ("scale", "pad", "letterbox")),
    (["prepare"], "--normalization", ("minmax", "meanstd", "none")),
    (["measure"], "--size", ("diameter", "major_axis")),
    (["check"], "--fail-on", ("error", "warning", "never")),
])
def test_options_with_choices_list_them(path, flag, choices):
    lines = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80).output.splitlines()
    start = next(k for k, line in enumerate(lines) if line.lstrip().startswith(flag + " "))
    end = next((k for k in range(start + 1, len(lines)) if lines[k].lstrip().startswith("-")), len(lines))
    block = _flat("\n".join(lines[start:end]))
    for choice in choices:
        assert re.search(rf"(?<![\w-]){re.escape(choice)}(?![\w-])", block), f"{flag} does not list {choice}"


@pytest.mark.parametrize("command", ["info", "check", "overlay", "convert", "prepare", "measure"])
def test_the_export_is_any_readable_export(command):
    """The argument's help said 'a .xml, folder or .zip' (CVAT only) for info, check and overlay."""
    text = _flat(runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}, terminal_width=80).output)
    assert "any readable format" in text


def test_help_brackets_are_text_not_markup():
    """'[unet 50, maskrcnn 20]' in a help string was eaten as rich markup ('Most epochs .')."""
    found = [(p, param.help) for p, cmd in COMMANDS for param in cmd.params
             if param.help and re.search(r"\[[^\]]+\]", param.help)]
    assert found, "no help text with brackets to check"
    for path, help_text in found:
        text = _flat(runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80).output)
        assert _flat(help_text) in text


def test_an_install_hint_reaches_the_terminal_whole(capsys):
    """'pip install 'defectlab[torch]'' printed as "pip install 'defectlab'": '[torch]' was markup."""
    from defectlab.commands._console import fail

    with pytest.raises(typer.Exit):
        fail(ImportError("train needs torch, which is not installed here: pip install 'defectlab[torch]'"))
    assert "pip install 'defectlab[torch]'" in " ".join(capsys.readouterr().err.split())
