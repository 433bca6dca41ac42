"""The options machinery: one frozen, validated dataclass per verb (:mod:`defectlab.options`), and
the CLI built from it (:mod:`defectlab.commands._options`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pytest
import typer
from typer.testing import CliRunner

from defectlab.commands._options import from_cli, with_options
from defectlab.options import Options, flag, label_tuple, number_or_name, option


def _size_hw(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(h), int(w)


@dataclass(frozen=True, slots=True)
class Toy(Options):
    verb: ClassVar[str] = "toy"

    ratio: float = option(0.5, help="A ratio.", above=0, max=1)
    count: int = option(3, help="How many.", min=1)
    mode: str = option("fast", help="How.", choices=("fast", "exact"))
    labels: tuple[str, ...] | None = option(None, help="Labels; repeat.", cli="--label", multiple=True)
    shape_hw: tuple[int, int] = option((4, 6), help="A size.", cli="--shape", parse=_size_hw,
                                       show=lambda hw: f"{hw[1]}x{hw[0]}", convert=lambda v: tuple(int(x) for x in v))
    loud: bool = flag(help="Say more.")
    quiet: bool = flag(True, help="Say less.", cli="--quiet/--chatty")
    hidden: int = option(7, help="Not on the command line.", cli=False)


def test_fields_are_validated_and_normalized():
    t = Toy(ratio=1, count=2.0, labels=["a", " b "])
    assert (t.ratio, type(t.ratio), t.count, type(t.count), t.labels) == (1.0, float, 2, int, ("a", "b"))
    assert dataclasses.is_dataclass(t) and not hasattr(t, "__dict__")  # slotted
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.ratio = 0.2  # type: ignore[misc]
    for changes, message in [
        ({"ratio": 0}, r"toy: ratio: expected a number in \(0, 1\], got 0"),
        ({"ratio": 1.5}, r"toy: ratio: expected a number in \(0, 1\], got 1.5"),
        ({"ratio": float("nan")}, "toy: ratio: expected a finite number"),
        ({"ratio": "half"}, "toy: ratio: expected a number, got 'half'"),
        ({"count": 0}, "toy: count: expected a number >= 1, got 0"),
        ({"count": 2.5}, "toy: count: expected an integer, got 2.5"),
        ({"count": True}, "toy: count: expected an integer, got True"),
        ({"mode": "slow"}, "toy: mode: expected one of fast, exact; got 'slow'"),
        ({"loud": "yes"}, "toy: loud: expected True or False, got 'yes'"),
        ({"labels": ["a", ""]}, "toy: labels: expected non-empty label names"),
        ({"mode": None}, "toy: mode: expected a value, got None"),
    ]:
        with pytest.raises(ValueError, match=message):
            Toy(**changes)


def test_build_applies_changes_and_refuses_unknown_names():
    base = Toy(count=5)
    assert Toy.build(base, mode="exact") == Toy(count=5, mode="exact")
    assert Toy.build(base) is base and Toy.build() == Toy()
    assert Toy.build({"count": 4}, ratio=0.25) == Toy(count=4, ratio=0.25)
    assert base.replace(count=6).count == 6
    with pytest.raises(TypeError, match="toy: no option 'cout'; the options are ratio, count"):
        Toy.build(cout=3)
    with pytest.raises(TypeError, match="expected Toy"):
        Toy.build("fast")  # type: ignore[arg-type]
    assert Toy(labels=("a",)).to_dict()["labels"] == ["a"] and Toy().to_dict()["shape_hw"] == [4, 6]


def test_shared_converters():
    assert label_tuple("a, b") == ("a", "b") and label_tuple([]) is None
    assert number_or_name("12") == 12 and number_or_name("Auto") == "auto"
    for bad in ("0", "many", 2.5, True):
        with pytest.raises(ValueError, match="expected a number of bins"):
            number_or_name(bad)


def _app():
    app = typer.Typer(add_completion=False)
    seen = {}

    @app.command()
    @with_options(options=Toy)
    def run(name: str, options: Toy, out: str = "o") -> None:
        seen["args"] = (name, out, options)

    @app.command()
    def other() -> None:  # a second command, so `run` keeps its name
        pass

    return app, seen


def test_cli_flags_defaults_and_values_come_from_the_dataclass():
    app, seen = _app()
    runner = CliRunner()
    result = runner.invoke(app, ["run", "x"])
    assert result.exit_code == 0, result.output
    assert seen["args"] == ("x", "o", Toy())
    result = runner.invoke(app, ["run", "x", "--ratio", "0.25", "--count", "9", "--mode", "exact", "--label", "a",
                                 "--label", "b", "--shape", "10x20", "--loud", "--chatty", "--out", "p"])
    assert result.exit_code == 0, result.output
    assert seen["args"] == ("x", "p", Toy(ratio=0.25, count=9, mode="exact", labels=("a", "b"), shape_hw=(20, 10),
                                          loud=True, quiet=False))
    help_text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for text in ("--ratio", "A ratio.", "--label", "--shape", "6x4", "--quiet", "--chatty", "fast|exact"):
        assert text in help_text, text
    assert "--hidden" not in help_text


@pytest.mark.parametrize("args, message", [
    (["--ratio", "2"], r"--ratio: expected a number in \(0, 1\], got 2.0"),
    (["--mode", "slow"], "--mode: expected one of fast, exact; got 'slow'"),
    (["--shape", "wide"], "--shape: invalid literal"),
])
def test_a_bad_value_is_one_line_naming_the_flag(args, message):
    import re

    app, _ = _app()
    result = CliRunner().invoke(app, ["run", "x", *args])
    assert result.exit_code == 1
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output


def test_from_cli_reads_back_what_the_help_shows():
    assert from_cli(Toy, {"shape_hw": "6x4", "labels": []}) == Toy()
    with pytest.raises(TypeError, match=r"no options class has a field \[.nope.\]"):
        with_options(exclude=("nope",), options=Toy)(lambda options: None)
