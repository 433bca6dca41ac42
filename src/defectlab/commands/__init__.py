"""The commands of the ``defectlab`` CLI: one module each (or a pair), loaded when used.

Each module in :data:`COMMANDS` defines ``register(app: typer.Typer) -> None`` adding its
commands (a command's entry may name several modules: ``batch`` gathers the subcommands that
other modules, such as ``track``, add to its group), and imports only light modules at import time (no torch, no matplotlib). The table
is explicit — a module that fails to import breaks the CLI loudly instead of vanishing — and
holds each command's one-line help, so that ``defectlab --help`` lists every command without
importing any of them (``tests/test_cli.py`` checks that the line is the command's own).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["COMMANDS", "LazyGroup"]

#: Command -> (module(s) in this package, the first line of its help), in the order of the work.
COMMANDS: dict[str, tuple[str | tuple[str, ...], str]] = {
    "info": ("info", "Labels, shape counts by type and label, image sizes, and what was skipped and why."),
    "check": ("check", "Find labeling problems: image sizes, holes between masks, bad shapes, duplicates, concave "
                       "shapes, boundaries at the wrong edge, size outliers."),
    "convert": ("convert", "Convert an export to another format or to training data."),
    "overlay": ("overlay", "Draw the labels over the micrographs (one PNG per image)."),
    "prepare": ("prepare", "Tile, split and augment an export for training, in a format prepare writes (--to)."),
    "train": ("train", "Train a model on labeled micrographs; writes a model folder."),
    "predict": ("train", "Predict micrographs of any size: class masks, instance TIFFs, overlays, pre-labels for "
                         "CVAT."),
    "suggest": ("suggest", "Which unlabeled images to label next: the most uncertain and most unlike the training "
                           "set, with pre-labels."),
    "measure": ("measure", "Measure every defect in px and nm; counts, densities, size distributions, area "
                           "fraction, swelling."),
    "evaluate": ("measure", "Score predictions against labels: precision/recall/F1 at an IoU, pixel IoU/Dice, "
                            "COCO mAP, size errors."),
    "track": ("track", "Link defects over the frames of a video: tracks, lifetimes, growth rates, fates, CVAT "
                       "track pre-labels."),
    "plan": ("plan", "Measure a labeled set (sizes, bit depth, intensities, touching defects) and plan training "
                     "from it."),
    "export": ("export", "Export a trained U-Net as a bioimage.io model package (TorchScript + ONNX, test tensors, "
                         "docs)."),
    "batch": (("track", "batch"), "Many micrographs or exports at once, on Dask (a local cluster, or --scheduler "
                       "tcp://HOST:PORT); resumable."),
    "synth": ("synth", "Generate synthetic TEM-like micrographs with exact labels, as a CVAT export."),
    "synth-video": ("track", "Generate a synthetic in-situ video (drift, growth, appearance, coalescence) with its "
                             "true tracks."),
}


class LazyGroup(TyperGroup):
    """The ``defectlab`` group: a command's module is imported when that command is used
    (``defectlab --help`` imports none)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loaded: set[tuple[str, ...]] = set()

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS) + [name for name in self.commands if name not in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            try:
                self._load(COMMANDS[cmd_name][0])
            except ImportError as err:  # the module needs what a plain install lacks
                self.commands[cmd_name] = _unavailable(cmd_name, COMMANDS[cmd_name][1], err)
        return self.commands.get(cmd_name)

    def _load(self, modules: str | tuple[str, ...]) -> None:
        key = (modules,) if isinstance(modules, str) else tuple(modules)
        if key in self._loaded:
            return
        self._loaded.add(key)
        sub = typer.Typer(rich_markup_mode=None)
        for module in key:
            importlib.import_module(f"{__name__}.{module}").register(sub)
        for name, command in typer.main.get_group(sub).commands.items():
            self.commands.setdefault(name, finish(command))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from :data:`COMMANDS`, in full (no module imported)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


def finish(command: Any) -> Any:
    """``command`` as every defectlab command is: plain placeholders in its help, and one line
    naming the extra to install where it needs what a plain install lacks. For commands made
    after the table is loaded (``defectlab train <arch>``)."""
    _plain_placeholders(command)
    _missing_extras_fail_cleanly(command)
    return command


#: typer's type placeholders -> the plain ones of ``--help`` (``--tile <int>`` reads ``--tile INTEGER``).
_PLACEHOLDERS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "path": "PATH", "file": "FILE",
                 "directory": "DIR", "list[str]": "TEXT", "list[path]": "PATH", "list[int]": "INTEGER"}


def _plain_placeholders(command: Any) -> None:
    """Give every option of ``command`` (and of its subcommands) a plain placeholder where its
    module gave none: choices as ``[a|b]``, types as ``INTEGER``/``TEXT``/…, flags none."""
    from typer.core import TyperOption

    for sub in getattr(command, "commands", {}).values():
        _plain_placeholders(sub)
    ctx = typer.Context(command)
    for param in getattr(command, "params", []):
        if not isinstance(param, TyperOption) or param.metavar is not None or param.is_flag:
            continue
        shown = param.display_type(ctx).strip("<>")
        if "|" in shown:
            param.metavar = f"[{shown.removeprefix('list[').removesuffix(']')}]"
        else:
            param.metavar = _PLACEHOLDERS.get(shown, shown.upper())


def _missing_extras_fail_cleanly(command: Any) -> None:
    """A command (or subcommand) that needs what a plain install lacks ends in one line naming
    the extra to install (the library's ImportErrors say which), never a traceback."""
    import functools

    for sub in getattr(command, "commands", {}).values():
        _missing_extras_fail_cleanly(sub)
    callback = getattr(command, "callback", None)
    if callback is None or getattr(callback, "_fails_cleanly", False):
        return

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except ImportError as err:
            from ._console import fail

            fail(err if "pip install" in str(err) else
                 ImportError(f"{err}: a plain install lacks it; the extras of defectlab name what to install "
                             "(pip install 'defectlab[torch]', [batch], [track], [bioimageio], [microscope], …)"))

    run._fails_cleanly = True  # type: ignore[attr-defined]
    command.callback = run


def _unavailable(name: str, text: str, err: ImportError) -> Any:
    """A stand-in for a command whose module cannot be imported here: whatever its arguments
    (``--help`` too), it says what is missing in one line, exit code 1."""
    sub = typer.Typer(rich_markup_mode=None)

    @sub.command(name, help=text, add_help_option=False,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def unavailable(ctx: typer.Context) -> None:
        from ._console import fail

        fail(err)

    sub.command("_")(lambda: None)  # two commands: a group, whose commands dict holds the stand-in
    command = typer.main.get_group(sub).commands[name]
    _missing_extras_fail_cleanly(command)
    return command
