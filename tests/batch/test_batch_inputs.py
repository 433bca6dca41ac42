"""Inputs of a batch: folders, globs, list files -> sorted unique paths; output names."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectlab.batch.inputs import BatchError, Unit, check_keys, expand_inputs, key_of


def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_folder_is_searched_recursively_for_micrographs_only(tmp_path):
    _tree(tmp_path, ["b.TIF", "a.png", "run/c.dm4", "run/d.emd", "notes.md", ".hidden.png", ".cache/e.png",
                     "run/list.txt"])
    assert _rel(expand_inputs([tmp_path]), tmp_path) == ["a.png", "b.TIF", "run/c.dm4", "run/d.emd"]


def test_globs_lists_and_files_give_sorted_unique_absolute_paths(tmp_path, monkeypatch):
    _tree(tmp_path, ["frames/f2.tif", "frames/f1.tif", "frames/deep/f3.tif", "frames/readme.txt", "other/g.png"])
    (tmp_path / "frames.txt").write_text("# the frames\n\nframes/f1.tif\n  frames/deep  \nother/g.png\n")
    monkeypatch.chdir(tmp_path)
    got = expand_inputs(["frames.txt", "frames/*.tif", "frames/**/*.tif", tmp_path / "frames" / "f1.tif", "other"])
    assert all(p.is_absolute() for p in got)
    assert _rel(got, tmp_path) == ["frames/deep/f3.tif", "frames/f1.tif", "frames/f2.tif", "other/g.png"]
    # a broad glob keeps only micrographs
    assert _rel(expand_inputs(["frames/*"]), tmp_path) == ["frames/deep/f3.tif", "frames/f1.tif", "frames/f2.tif"]


def test_exports_mode_takes_folders_whole(tmp_path):
    _tree(tmp_path, ["run1/annotations.xml", "run1/images/a.png", "run2/annotations.xml", "task.zip"])
    got = expand_inputs([tmp_path / "run*", tmp_path / "task.zip", tmp_path / "run1"], kind="exports")
    assert _rel(got, tmp_path) == ["run1", "run2", "task.zip"]


@pytest.mark.parametrize("spec, message", [
    ("missing.tif", "missing.tif: no such file or folder"),
    ("nothing/*.tif", "the pattern matches no input"),
    ("empty", "empty: no input files"),
    ("list.txt", r"gone\.png \(listed in .*list\.txt\): no such file"),
    ("blank.lst", "blank.lst: the list of inputs is empty"),
])
def test_what_names_nothing_is_an_error_naming_it(tmp_path, monkeypatch, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("gone.png\n")
    (tmp_path / "blank.lst").write_text("# nothing\n\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BatchError, match=message):
        expand_inputs([spec])


def test_no_inputs_at_all_is_an_error():
    with pytest.raises(BatchError, match="no inputs given"):
        expand_inputs([])


def test_output_names_are_stems_and_must_not_collide(tmp_path):
    assert [key_of(n) for n in ("frame_01.tif", "Train/a.b.png", "run1")] == ["frame_01", "Train__a.b", "run1"]
    check_keys([Unit("a", tmp_path / "x/a.png"), Unit("b", tmp_path / "x/b.png")])
    with pytest.raises(BatchError, match=r"x/a\.png and .*y/a\.tif would both be written to out/a/"):
        check_keys([Unit("a", tmp_path / "x/a.png"), Unit("a", tmp_path / "y/a.tif")])
    with pytest.raises(BatchError, match="reserved"):
        check_keys([Unit("_batch", tmp_path / "_batch.png")])
