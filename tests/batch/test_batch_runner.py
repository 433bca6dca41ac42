"""The batch runner in one process (scheduler="sync"): results, resuming, failures, reports."""

from __future__ import annotations

import json
import os
import shutil
import socket

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import defectlab
from .batchkit import assert_tables_equal
from defectlab import batch
from defectlab.batch.records import read_record
from defectlab.cli import app
from defectlab.imaging.io import read_image
from defectlab.measurement import measure

KEYS = [f"synthetic_{i:03d}" for i in range(6)]


def _run(export, out, **kw):
    kw = {"pixel_size": "0.5nm", "thickness": "80nm", "scheduler": "sync", "progress": False, "figures": False, **kw}
    return batch.measure([export], out=out, **kw)


def _run_ids(out):
    return {k: read_record(out / k)["run_id"] for k in KEYS}


def test_batch_measure_equals_one_measure_of_the_whole_export(export, tmp_path):
    report = _run(export, tmp_path / "meas", figures=True)
    assert report.ok and report.counts["done"] == 6
    ref = measure(export, pixel_size="0.5nm", thickness="80nm")  # the single-process library call
    got = report.measurement
    assert len(got.defects) == len(ref.defects) > 20
    assert_tables_equal(got.defects, ref.defects)
    assert_tables_equal(got.per_image, ref.per_image)
    assert_tables_equal(got.per_set, ref.per_set, rtol=1e-12)  # areas pooled in another order
    assert got.histograms == ref.histograms
    # the batch's confidence intervals are measure's (the same tables, the same seeded bootstrap)
    assert got.intervals is not None and list(got.intervals["label"]) == list(ref.intervals["label"])
    assert_tables_equal(got.intervals, ref.intervals, rtol=1e-12)
    assert (tmp_path / "meas" / "_batch" / "intervals.csv").is_file()
    assert "95% confidence intervals" in (tmp_path / "meas" / "_batch" / "index.html").read_text()
    # the batch table on disk (Parquet with pyarrow) holds the same rows
    import pyarrow.parquet as pq

    disk = pq.read_table(tmp_path / "meas" / "_batch" / "defects.parquet").to_pydict()
    assert disk["image"] == list(ref.defects["image"])
    np.testing.assert_array_equal(disk["area_px"], ref.defects["area_px"])
    doc = json.loads((tmp_path / "meas" / "_batch" / "report.json").read_text())
    assert doc["counts"]["done"] == 6 and [u["key"] for u in doc["units"]] == KEYS
    assert (tmp_path / "meas" / "_batch" / "figures" / "size_histogram_cavity.png").is_file()
    assert "Statistics of the batch" in (tmp_path / "meas" / "_batch" / "index.html").read_text()


def test_rerun_skips_what_is_current_and_redoes_what_changed(export, tmp_path):
    out = tmp_path / "meas"
    first = _run(export, out)
    assert first.counts["done"] == 6 and set(_run_ids(out).values()) == {first.run_id}

    again = _run(export, out)
    assert again.counts == {"done": 0, "unchanged": 0, "skipped": 6, "failed": 0, "cancelled": 0}

    img = export / "images" / "synthetic_001.png"  # touched, not changed: hashed, kept
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    touched = _run(export, out)
    assert touched.counts["unchanged"] == 1 and touched.counts["skipped"] == 5
    assert _run_ids(out)["synthetic_001"] == first.run_id

    img = export / "images" / "synthetic_002.png"  # one pixel changed: redone
    arr = read_image(img).copy()
    arr[50, 50] ^= 0xFF
    Image.fromarray(arr).save(img)
    changed = _run(export, out)
    assert changed.counts["done"] == 1 and changed.counts["skipped"] == 5
    ids = _run_ids(out)
    assert ids["synthetic_002"] == changed.run_id and ids["synthetic_000"] == first.run_id

    assert _run(export, out, pixel_size="0.25nm").counts["done"] == 6  # another parameter: all redone
    assert _run(export, out, pixel_size="0.25nm", force=True).counts["done"] == 6


def test_after_a_crash_only_unfinished_inputs_run_again(export, tmp_path):
    out = tmp_path / "meas"
    first = _run(export, out)
    # what a run killed part-way leaves: an input never written, one whose files are incomplete,
    # and a half-written temporary folder of a process that no longer exists
    shutil.rmtree(out / "synthetic_000")
    (out / "synthetic_001" / "defects.npy").unlink()
    shutil.rmtree(out / "synthetic_002")
    half = out / ".batch-tmp" / f"synthetic_002.{socket.gethostname().replace('.', '_')}.999999999.abcd"
    half.mkdir(parents=True)
    (half / "defects.csv").write_text("half")

    second = _run(export, out)
    assert second.counts["done"] == 3 and second.counts["skipped"] == 3
    ids = _run_ids(out)
    assert {k for k, v in ids.items() if v == second.run_id} == {"synthetic_000", "synthetic_001", "synthetic_002"}
    assert {k for k, v in ids.items() if v == first.run_id} == {"synthetic_003", "synthetic_004", "synthetic_005"}
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert_tables_equal(second.measurement.defects, first.measurement.defects)


def test_a_corrupt_micrograph_is_recorded_and_the_rest_completes(export, tmp_path):
    out = tmp_path / "meas"
    bad = export / "images" / "synthetic_003.png"
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:100])  # truncated PNG
    report = _run(export, out)
    assert not report.ok and report.counts["done"] == 5 and report.counts["failed"] == 1
    (failure,) = report.failed
    assert failure["key"] == "synthetic_003" and str(bad) in failure["error"]
    assert "not a readable image" in failure["error"] and failure["error_type"] == "ImageError"
    assert not (out / "synthetic_003").exists()
    assert [i.key for i in report.measurement.images] == [k for k in KEYS if k != "synthetic_003"]
    doc = json.loads((out / "_batch" / "report.json").read_text())
    assert doc["counts"]["failed"] == 1 and "not a readable image" in json.dumps(doc["units"])
    assert "1 failed" in (out / "_batch" / "index.html").read_text()

    result = CliRunner().invoke(app, ["batch", "measure", str(export), "--out", str(out), "--pixel-size", "0.5nm",
                                      "--scheduler", "sync", "--no-progress", "--no-figures"])
    assert result.exit_code == 1, result.output
    assert "1 of 6 input(s) failed" in result.output and "synthetic_003.png" in result.output
    assert "5 already complete" in result.output  # the good ones were not redone

    bad.write_bytes(good_bytes)
    fixed = _run(export, out)
    assert fixed.ok and fixed.counts["done"] == 1 and fixed.counts["skipped"] == 5


def test_a_folder_that_is_not_a_batch_output_is_kept_unless_forced(export, tmp_path):
    out = tmp_path / "meas"
    (out / "synthetic_004").mkdir(parents=True)
    (out / "synthetic_004" / "mine.txt").write_text("someone's notes")
    report = _run(export, out)
    assert report.counts["failed"] == 1 and "not a batch output" in report.failed[0]["error"]
    assert (out / "synthetic_004" / "mine.txt").read_text() == "someone's notes"
    assert _run(export, out, force=True).ok


def test_bad_batches_fail_before_any_work(export, tmp_path):
    with pytest.raises(batch.BatchError, match="is inside the input folder"):
        _run(export, export / "meas")
    twin = tmp_path / "twin"
    shutil.copytree(export, twin)
    with pytest.raises(batch.BatchError, match="would both be written to out/synthetic_000/"):
        batch.measure([export, twin], out=tmp_path / "meas", scheduler="sync", progress=False)
    with pytest.raises(ValueError, match="pixel size"):
        _run(export, tmp_path / "meas", pixel_size="large")
    result = CliRunner().invoke(app, ["batch", "measure", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                                      "--scheduler", "sync"])
    assert result.exit_code == 1 and "no such file or folder" in result.output


def test_batch_convert_equals_the_writer_on_each_export(export, tmp_path):
    runs = tmp_path / "runs"
    for name in ("run1", "run2"):
        shutil.copytree(export, runs / name)
    (runs / "run2" / "annotations.xml").write_text(
        (runs / "run2" / "annotations.xml").read_text().replace('label="loop"', 'label="cavity"'))
    report = batch.convert([runs / "run*"], to="unet", out=tmp_path / "conv", scheduler="sync", progress=False)
    assert report.ok and [u["key"] for u in report.units] == ["run1", "run2"]
    for name in ("run1", "run2"):
        ref = tmp_path / "ref" / name
        defectlab.write_unet(defectlab.read(runs / name), ref)
        got = tmp_path / "conv" / name
        ref_files = sorted(p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file())
        got_files = sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file())
        assert got_files == sorted(ref_files + ["batch_record.json"])
        for rel in ref_files:
            if rel.endswith(".png"):
                np.testing.assert_array_equal(read_image(got / rel), read_image(ref / rel))
    assert batch.convert([runs / "run*"], to="unet", out=tmp_path / "conv", scheduler="sync",
                         progress=False).counts["skipped"] == 2


def test_an_unreadable_export_is_recorded_and_the_others_are_measured(export, tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<annotations><image id='0' name='a.png' width='10'")
    report = batch.measure([export, broken], out=tmp_path / "meas", pixel_size="0.5nm", scheduler="sync",
                           progress=False, figures=False)
    assert report.counts["done"] == 6 and report.counts["failed"] == 1 and not report.ok
    (failure,) = report.failed
    assert failure["key"] == "broken" and "broken.xml" in failure["error"] and failure["error_type"] == "ParseError"


def test_batch_predict_takes_the_predict_options_of_defectlab_predict(export, tmp_path):
    from defectlab.dl.model_io import load_model
    from defectlab.dl.predict import predict_image

    from .batchkit import tiny_unet

    model = tiny_unet(tmp_path / "model")
    report = batch.predict(model, [export / "images"], out=tmp_path / "pred", scheduler="sync", progress=False,
                           figures=False, pixel_size="0.5nm", tta=True, min_area_px=3, engine="torch")
    assert report.ok and report.counts["done"] == 6, report.failed
    loaded = load_model(model, device="cpu")
    for key in KEYS[:2]:  # the same call by hand, in this process and engine: the same arrays
        ref = predict_image(loaded, export / "images" / f"{key}.png", tta=True, min_area_px=3, engine="torch")
        np.testing.assert_array_equal(read_image(tmp_path / "pred" / key / "mask.png"), ref.semantic)
        np.testing.assert_array_equal(read_image(tmp_path / "pred" / key / "instances.tif"), ref.instances)
        np.testing.assert_array_equal(read_image(tmp_path / "pred" / key / "uncertainty.tif"), ref.uncertainty)
    assert read_record(tmp_path / "pred" / KEYS[0])["params"]["tta"] is True
    again = batch.predict(model, [export / "images"], out=tmp_path / "pred", scheduler="sync", progress=False,
                          figures=False, pixel_size="0.5nm", tta=True, min_area_px=3, engine="torch")
    assert again.counts["skipped"] == 6
    other = batch.predict(model, [export / "images"], out=tmp_path / "pred", scheduler="sync", progress=False,
                          figures=False, pixel_size="0.5nm", min_area_px=3, engine="torch")
    assert other.counts["done"] == 6 and not (tmp_path / "pred" / KEYS[0] / "uncertainty.tif").exists()

    result = CliRunner().invoke(app, ["batch", "predict", str(model), str(export / "images"), "--out",
                                      str(tmp_path / "star"), "--scheduler", "sync", "--prob-thresh", "0.4"])
    assert result.exit_code == 1 and "is for stardist models" in result.output, result.output
    assert not (tmp_path / "star").exists()


def test_batch_predict_with_an_ensemble_measures_each_member_for_the_intervals(export, tmp_path):
    from defectlab.dl.model_io import load_model

    from .batchkit import tiny_unet

    ens = tmp_path / "ens"
    ens.mkdir()
    for i, name in enumerate(("fold_1", "fold_2")):
        tiny_unet(ens / name, seed=i)
    (ens / "ensemble.json").write_text(json.dumps({"format": "defectlab-ensemble", "version": 1,
                                                   "members": [{"name": "fold_1"}, {"name": "fold_2"}]}))
    report = batch.predict(ens, [export / "images"], out=tmp_path / "pred", scheduler="sync", progress=False,
                           figures=False, pixel_size="0.5nm", min_area_px=3, engine="torch")
    assert report.ok and report.counts["done"] == 6, report.failed
    for name in ("fold_1", "fold_2"):  # each member's defects: what that model finds alone, predicted by hand
        alone = load_model(ens / name, device="cpu")
        for key in KEYS[:2]:
            rows = np.load(tmp_path / "pred" / key / "members" / name / "defects.npy")
            found = alone.predict(export / "images" / f"{key}.png", min_area_px=3, engine="torch")
            assert len(rows) == found.n_instances
    m = report.measurement
    assert m.settings["members"] == ["fold_1", "fold_2"]
    assert set(m.intervals["members"]) == {2}
    assert any(n.code == "model-uncertainty" for n in m.notes)
    # inputs predicted by different models cannot be mixed into one interval
    from defectlab.batch.inputs import BatchError
    from defectlab.batch.summary import summarize

    folders = [tmp_path / "pred" / k for k in KEYS]
    shutil.rmtree(folders[1] / "members")
    with pytest.raises(BatchError, match="synthetic_001: predicted by ensemble members none"):
        summarize(folders, list(m.labels))
    # a member's weights changed under the batch's outputs: a new digest, every input redone
    shutil.rmtree(ens / "fold_2")
    tiny_unet(ens / "fold_2", seed=5)
    again = batch.predict(ens, [export / "images"], out=tmp_path / "pred", scheduler="sync", progress=False,
                          figures=False, pixel_size="0.5nm", min_area_px=3, engine="torch")
    assert again.counts["done"] == 6
