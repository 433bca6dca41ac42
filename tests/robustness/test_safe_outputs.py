"""Safe outputs: written beside the target, moved into place only when complete; the old
output or nothing after a failure or a kill; inputs never modified; ``--overwrite`` needed.

Every writer (U-Net, Mask R-CNN, COCO, YOLO, instance TIFFs, CVAT XML) and the ``convert``
command are checked; every command run here hashes its input tree before and after. The
last tests start ``defectlab convert`` in a subprocess on a larger synthetic export, send
SIGINT, SIGTERM or SIGKILL while it writes, and look at what is left.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

import defectlab
from defectlab._output import clean_stale, output_dir
from defectlab.errors import OutputError
from defectlab.formats import maskrcnn, unet
from defectlab.formats.coco_json import write as coco_write
from defectlab.formats.mask_images import write as masks_write
from defectlab.formats.yolo_txt import write as yolo_write
from defectlab.formats.coco_json import write_coco
from defectlab.formats.cvat_xml import write_cvat
from defectlab.formats.mask_images import write_instance_tiffs
from defectlab.formats.yolo_txt import write_yolo
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

WRITERS: dict[str, tuple[Callable, object]] = {  # name: (writer, the module whose copy_image it calls)
    "unet": (defectlab.write_unet, unet),
    "maskrcnn": (defectlab.write_maskrcnn, maskrcnn),
    "coco": (write_coco, coco_write),
    "yolo": (write_yolo, yolo_write),
    "instance-tiff": (write_instance_tiffs, masks_write),
}


def tree_hash(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path) with the SHA-256 of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    config = SyntheticConfig(size_hw=(48, 64), n_cavities=2, n_loops=1, n_precipitates=1, n_lines=1)
    make_synthetic_dataset(tmp_path / "export", n_images=3, config=config, seed=3)
    return tmp_path / "export"


def cli(*args: str, watch: Path):
    """Run ``defectlab ARGS`` (in this process) and check that the tree ``watch`` (the input) is
    byte for byte unchanged; returns the result with ``returncode`` and ``stderr``."""
    from typer.testing import CliRunner

    from defectlab.cli import app

    before = tree_hash(watch)
    result = CliRunner().invoke(app, list(args))
    assert tree_hash(watch) == before, f"defectlab {' '.join(args)} modified its input"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return SimpleNamespace(returncode=result.exit_code, stderr=result.output)


# ---------------------------------------------------------------------------------------------
# Every writer: a temporary sibling, moved into place at the end
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writers_build_the_output_in_a_temporary_sibling(tmp_path: Path, export: Path, name: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write, module = WRITERS[name]
    ds = defectlab.read(export)
    out = tmp_path / "out"
    seen: list[tuple[bool, Path]] = []
    real = module.copy_image

    def spy(item, images_dir, **kw):
        seen.append((out.exists(), images_dir))
        return real(item, images_dir, **kw)

    monkeypatch.setattr(module, "copy_image", spy)
    before = tree_hash(export)
    write(ds, out)
    assert seen and not any(exists for exists, _ in seen)  # the target appears only at the end
    for _, images_dir in seen:
        staging = next(p for p in images_dir.parents if p.parent == tmp_path)
        assert staging.name.startswith(f".out.tmp-{os.getpid()}-")
    assert out.is_dir() and leftovers(tmp_path, "out") == []
    assert tree_hash(export) == before


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_failure_midway_leaves_the_previous_output_and_no_temporary_folder(
        tmp_path: Path, export: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    write, module = WRITERS[name]
    ds = defectlab.read(export)
    out = tmp_path / "out"
    write(ds, out)
    previous = tree_hash(out)
    real = module.copy_image
    calls = []

    def failing(item, images_dir, **kw):
        calls.append(item.name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(item, images_dir, **kw)

    monkeypatch.setattr(module, "copy_image", failing)
    with pytest.raises(OSError, match="disk full"):
        write(ds, out, overwrite=True)
    assert tree_hash(out) == previous
    assert leftovers(tmp_path, "out") == []
    (tmp_path / "new").mkdir()
    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        write(ds, tmp_path / "new" / "out")  # no previous output: nothing is left at all
    assert list((tmp_path / "new").iterdir()) == []


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_existing_output_is_replaced_only_with_overwrite(tmp_path: Path, export: Path, name: str) -> None:
    write, _ = WRITERS[name]
    ds = defectlab.read(export)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(OutputError, match=r"exists and is not empty; pass overwrite=True \(--overwrite\)"):
        write(ds, out)
    assert (out / "mine.txt").read_text() == "keep me"
    write(ds, out, overwrite=True)
    assert not (out / "mine.txt").exists()


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("where", ["the export", "its parent", "its images folder"])
def test_an_output_holding_the_input_is_refused_even_with_overwrite(tmp_path: Path, export: Path, name: str,
                                                                    where: str) -> None:
    write, _ = WRITERS[name]
    ds = defectlab.read(export)
    out = {"the export": export, "its parent": tmp_path, "its images folder": export / "images"}[where]
    before = tree_hash(tmp_path)
    with pytest.raises(OutputError, match="would hold or replace the input"):
        write(ds, out, overwrite=True)
    assert tree_hash(tmp_path) == before
    assert leftovers(out.parent, out.name) == []


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_new_folder_inside_the_export_leaves_the_export_untouched(tmp_path: Path, export: Path, name: str) -> None:
    write, _ = WRITERS[name]
    ds = defectlab.read(export)
    before = tree_hash(export)
    write(ds, export / "derived")
    after = {k: v for k, v in tree_hash(export).items() if not k.startswith("derived/")}
    assert after == before
    with pytest.raises(OutputError, match="an existing folder inside the input .* is not replaced"):
        write(ds, export / "derived", overwrite=True)  # it might hold input files: never replaced


def test_an_existing_folder_of_the_export_holding_its_annotations_is_never_replaced(tmp_path: Path,
                                                                                    export: Path) -> None:
    coco = tmp_path / "coco"
    write_coco(defectlab.read(export), coco)  # annotations/instances_default.json + images/
    ds = defectlab.read(coco)
    before = tree_hash(coco)
    for out in (coco / "annotations", coco):
        with pytest.raises(OutputError, match="input"):
            defectlab.write_unet(ds, out, overwrite=True)
    assert tree_hash(coco) == before


def test_write_cvat_is_atomic_and_never_replaces_its_input(tmp_path: Path, export: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ds = defectlab.read(export)
    before = tree_hash(export)
    with pytest.raises(OutputError, match="would replace a file of the input export"):
        write_cvat(ds, export / "annotations.xml")
    single = defectlab.read(export / "annotations.xml")
    with pytest.raises(OutputError, match="would replace a file of the input export"):
        write_cvat(single, export / "annotations.xml")
    assert tree_hash(export) == before
    target = tmp_path / "copy.xml"
    write_cvat(ds, target)
    previous = target.read_bytes()

    def failing_fsync(_fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OutputError, match="cannot write"):
        write_cvat(ds.with_items(ds.items[:1]), target, overwrite=True)
    assert target.read_bytes() == previous
    assert leftovers(tmp_path, "copy.xml") == []


# ---------------------------------------------------------------------------------------------
# output_dir's own rules
# ---------------------------------------------------------------------------------------------


def test_stale_folders_of_dead_processes_are_cleaned_and_live_ones_left(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has ended
    (tmp_path / f".out.tmp-{dead_pid}-abc").mkdir()
    (tmp_path / f".out.tmp-{dead_pid}-abc" / "half.png").write_bytes(b"x")
    live = tmp_path / f".out.tmp-{os.getppid()}-xyz"  # our parent process runs
    live.mkdir()
    (tmp_path / f".other.tmp-{dead_pid}-abc").mkdir()  # another target's: not ours to touch
    with output_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out", live.name, f".other.tmp-{dead_pid}-abc"])


def test_a_kill_between_the_two_renames_is_repaired_by_the_next_run(tmp_path: Path) -> None:
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)
    old = tmp_path / f".out.old-{dead}"  # the previous output, moved aside; the new one never arrived
    old.mkdir()
    (old / "previous.txt").write_text("previous")
    assert [p.name for p in clean_stale(tmp_path / "out")] == [old.name]
    assert (tmp_path / "out" / "previous.txt").read_text() == "previous"
    assert leftovers(tmp_path, "out") == []


def test_sigterm_handler_is_ours_only_inside_the_block(tmp_path: Path) -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with output_dir(tmp_path / "out"):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_inside_the_block_cleans_up_and_exits_143(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys\n"
        "from defectlab._output import output_dir\n"
        f"with output_dir({str(tmp_path / 'out')!r}) as tmp:\n"
        "    (tmp / 'half.txt').write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    (tmp / 'never.txt').write_text('never')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 143, run.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to, out_name", [("unet", "out"), ("maskrcnn", "out"), ("coco", "out"), ("yolo", "out"),
                                          ("instance-tiff", "out"), ("cvat", "out"), ("cvat", "out.xml")])
def test_cli_convert_needs_overwrite_and_never_modifies_its_input(tmp_path: Path, export: Path, to: str,
                                                                  out_name: str) -> None:
    out = tmp_path / out_name
    first = cli("convert", str(export), "--to", to, "--out", str(out), watch=export)
    assert first.returncode == 0, first.stderr
    written = tree_hash(out) if out.is_dir() else {"": hashlib.sha256(out.read_bytes()).hexdigest()}
    again = cli("convert", str(export), "--to", to, "--out", str(out), watch=export)
    assert again.returncode == 1 and "--overwrite" in " ".join(again.stderr.split())
    assert (tree_hash(out) if out.is_dir() else {"": hashlib.sha256(out.read_bytes()).hexdigest()}) == written
    assert cli("convert", str(export), "--to", to, "--out", str(out), "--overwrite", watch=export).returncode == 0
    inside = cli("convert", str(export), "--to", to, "--out", str(tmp_path), "--overwrite", watch=export)
    assert inside.returncode == 1 and "would hold or replace the input" in " ".join(inside.stderr.split())
    if out_name == "out" and to == "cvat":  # a folder: the export as CVAT zips it, images beside the XML
        back = defectlab.read(out)
        assert (out / "annotations.xml").is_file() and not [n for n in back.notes if n.code == "missing-image"]
    assert leftovers(tmp_path, out.name) == []


def test_cli_info_and_overlay_do_not_modify_their_input(tmp_path: Path, export: Path) -> None:
    assert cli("info", str(export), watch=export).returncode == 0
    assert cli("info", str(export / "annotations.xml"), "--json", watch=export).returncode == 0
    assert cli("overlay", str(export), "--out", str(tmp_path / "overlays"), watch=export).returncode == 0


# ---------------------------------------------------------------------------------------------
# Killing a running convert
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic 192 x 192 micrographs, ~30 shapes each: a few seconds of U-Net writing."""
    root = tmp_path_factory.mktemp("kill") / "export"
    config = SyntheticConfig(size_hw=(192, 192), n_cavities=16, n_loops=6, n_precipitates=6, n_lines=2)
    make_synthetic_dataset(root, n_images=24, config=config, seed=7)
    return root


def _convert_and_kill(export: Path, out: Path, sig: signal.Signals, overwrite: bool) -> subprocess.Popen:
    """Start ``convert --to unet --stack``, wait until it has written a few masks, send ``sig``."""
    args = [sys.executable, "-m", "defectlab.cli", "convert", str(export), "--to", "unet", "--stack",
            "--one-hot", "--out", str(out)] + (["--overwrite"] if overwrite else [])
    # a shell without job control starts background commands with SIGINT ignored, and a child
    # inherits that: give it the default disposition, so Python turns SIGINT into Ctrl-C
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        staging = [p for p in out.parent.glob(f".{out.name}.tmp-{proc.pid}-*")]
        if staging and len(list((staging[0] / "masks").glob("*.png"))) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"convert ended before it could be interrupted: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.005)
    else:
        proc.kill()
        pytest.fail("convert never started writing")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
@pytest.mark.parametrize("previous", [False, True], ids=["no previous output", "previous output"])
def test_killing_convert_midway_leaves_the_old_output_or_none(tmp_path: Path, big_export: Path,
                                                               sig: signal.Signals, previous: bool) -> None:
    before_input = tree_hash(big_export)
    out = tmp_path / "unet"
    old = None
    if previous:
        out.mkdir()
        (out / "previous.txt").write_text("the previous output")
        old = tree_hash(out)
    proc = _convert_and_kill(big_export, out, sig, overwrite=previous)
    assert proc.returncode != 0
    assert tree_hash(big_export) == before_input
    if previous:
        assert tree_hash(out) == old  # the old output, whole
    else:
        assert not out.exists()  # or nothing
    stray = leftovers(tmp_path, "unet")
    if sig is signal.SIGKILL:  # uncatchable: the half-written folder stays, named for the dead process
        assert stray == [p.name for p in tmp_path.glob(f".unet.tmp-{proc.pid}-*")] and len(stray) == 1
        ds = defectlab.read(big_export)
        defectlab.write_unet(ds.with_items(ds.items[:2]), out, overwrite=True)  # the next run ...
        assert leftovers(tmp_path, "unet") == []  # ... removes it
        assert len(list((out / "masks").glob("*.png"))) == 2
    else:
        assert stray == []
