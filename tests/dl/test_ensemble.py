"""Cross-validation folds and ensembles (``train --folds K``): folds cover every image once and no
fold model sees its validation images (nor, on one image, reaches into its strip); an ensemble of
identical members predicts what one does; two members' ensemble is the average of their own
probabilities; members' pre-labels are written for measure; bad folders and inputs are clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

import defectlab  # noqa: E402
from defectlab.cli import app  # noqa: E402
from defectlab.dl.ensemble import ENSEMBLE_FILE, EnsembleModel  # noqa: E402
from defectlab.dl.model_io import ModelError, load_model  # noqa: E402
from defectlab.dl.predict import predict_images  # noqa: E402
from defectlab.dl.train import fold_split, train, train_unet  # noqa: E402
from defectlab.errors import DatasetError, ParseError  # noqa: E402
from defectlab.formats.cvat_xml import read_cvat  # noqa: E402
from defectlab.imaging.io import write_image  # noqa: E402
from defectlab.model import Dataset, Ellipse, ImageSource, Item, Label  # noqa: E402

from test_train import TINY, cavities  # noqa: E402  (tests/dl is on sys.path, not a package)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


QUICK = dict(TINY, epochs=1, min_steps=2, batch_size=2)


def test_fold_split_covers_every_image_once_evenly_and_is_seeded():
    for n, k in ((5, 2), (7, 3), (10, 5), (4, 4)):
        parts = fold_split(n, k, seed=3)
        flat = [i for p in parts for i in p]
        assert sorted(flat) == list(range(n)) and len(set(flat)) == n
        assert max(map(len, parts)) - min(map(len, parts)) <= 1 and len(parts) == k
        assert parts == fold_split(n, k, seed=3)
    assert fold_split(10, 5, seed=0) != fold_split(10, 5, seed=1)
    with pytest.raises(DatasetError, match="expected 2 to 3 folds for 3 images"):
        fold_split(3, 4, seed=0)


def test_fold_models_never_see_their_validation_images_and_the_folder_predicts(tmp_path):
    ds = cavities(tmp_path, 5, seed=2)
    result = train_unet(ds, tmp_path / "cv", folds=3, **QUICK)
    summary = json.loads((tmp_path / "cv" / ENSEMBLE_FILE).read_text())
    assert summary["folds"] == 3 and [m["name"] for m in summary["members"]] == ["fold_1", "fold_2", "fold_3"]
    names = {it.key for it in ds}
    seen = []
    for m in summary["members"]:
        training = json.loads((tmp_path / "cv" / m["name"] / "config.json").read_text())["training"]
        val, trained = set(training["val_images"]), set(training["train_images"])
        assert val and not val & trained and val | trained == names
        assert sorted(val) == sorted(m["validated_on"]) and training["fold"]["of"] == 3
        seen += training["val_images"]
        assert load_model(tmp_path / "cv" / m["name"]).classes == {1: "cavity"}  # each loads on its own
    assert sorted(seen) == sorted(names)  # every image validated on exactly once
    ious = [m["val_mean_iou"] for m in summary["members"]]
    assert summary["pooled"]["val_mean_iou"]["mean"] == pytest.approx(np.mean(ious))
    assert summary["pooled"]["val_mean_iou"]["sd"] == pytest.approx(np.std(ious, ddof=1))
    model = load_model(tmp_path / "cv")
    assert isinstance(model, EnsembleModel) and len(model.members) == 3
    assert isinstance(result.model, EnsembleModel) and result.path == tmp_path / "cv"
    assert all(r.path == tmp_path / "cv" / f"fold_{i}" for i, r in enumerate(result.folds, start=1))
    pred = model.predict(ds.items[0].image.path)
    # an ensemble's uncertainty: the entropy of the members' mean, at most ln C
    assert pred.uncertainty is not None and pred.uncertainty.shape == pred.semantic.shape
    assert 0 <= pred.uncertainty.min() and pred.uncertainty.max() <= np.log(2) + 1e-6
    assert (tmp_path / "cv" / "reference.json").is_file()


def test_one_image_folds_validate_on_disjoint_strips_no_training_crop_reaches_in(tmp_path, monkeypatch):
    """The image's gray value is its column, so the normalized training samples say which columns
    a fold trained on: none of its validation strip's."""
    from defectlab.dl.archs import base

    h, w, k = 64, 256, 4
    write_image(tmp_path / "g.png", np.tile(np.arange(w, dtype=np.uint8), (h, 1)))
    discs = tuple(Ellipse(label="cavity", cx=x, cy=32.0, rx=7.0, ry=7.0) for x in range(16, w, 32))
    ds = Dataset((Label("cavity", type="ellipse"),), (Item("g.png", (h, w), discs, image=ImageSource(tmp_path / "g.png")),))
    trained_cols: list[set[int]] = []
    real = base._crop_batch

    def spy(samples, *args, **kwargs):
        cols = set()
        for s in samples:
            cols |= set(np.rint(s.image[0] * (w - 1)).astype(int).tolist())
        if not trained_cols or trained_cols[-1] != cols:
            trained_cols.append(cols)
        return real(samples, *args, **kwargs)

    monkeypatch.setattr(base, "_crop_batch", spy)
    result = train_unet(ds, tmp_path / "cv", folds=k, **QUICK)
    strips = [m["strip"] for m in result.summary["members"]]
    edges = [round(i * w / k) for i in range(k + 1)]
    assert strips == [f"x in [{a}, {b})" for a, b in zip(edges, edges[1:])]  # disjoint, covering the image
    training_sets = trained_cols  # each fold's training crops (and calibration crops: the same samples)
    assert len(training_sets) == k
    for (a, b), cols in zip(zip(edges, edges[1:]), training_sets):
        assert cols == set(range(0, a)) | set(range(b, w))
    assert all(m["validated_on"] == [ds.items[0].key] for m in result.summary["members"])


def _copy_members(src: Path, out: Path, names: list[str]) -> None:
    out.mkdir()
    for name in names:
        shutil.copytree(src, out / name)
    (out / ENSEMBLE_FILE).write_text(json.dumps({"format": "defectlab-ensemble", "version": 1,
                                                 "members": [{"name": n} for n in names]}))


def test_an_ensemble_of_identical_members_predicts_what_one_does(tmp_path):
    ds = cavities(tmp_path, 2)
    train_unet(ds, tmp_path / "one", **QUICK)
    _copy_members(tmp_path / "one", tmp_path / "same", ["a", "b", "c"])
    one, same = load_model(tmp_path / "one"), load_model(tmp_path / "same")
    for it in ds:
        p1, p3 = one.predict(it.image.path), same.predict(it.image.path)
        assert np.array_equal(p1.semantic, p3.semantic) and np.array_equal(p1.instances, p3.instances)
        assert np.array_equal(p1.instance_classes, p3.instance_classes)
        # members that agree: the uncertainty is each pixel's own entropy, as test-time augmentation would give
        # for views that agree
        assert p3.uncertainty is not None
    from defectlab.dl.bioimageio import export_bioimageio
    from defectlab.errors import FormatError

    with pytest.raises(FormatError, match="an ensemble of 3 models.*export a member"):
        export_bioimageio(same, tmp_path / "same.zip")


def test_two_members_average_their_own_probabilities(tmp_path):
    ds = cavities(tmp_path, 2, size=96)
    train_unet(ds, tmp_path / "a", seed=0, **QUICK)
    train_unet(ds, tmp_path / "b", seed=5, **QUICK)
    out = tmp_path / "ab"
    out.mkdir()
    for name in ("a", "b"):
        shutil.copytree(tmp_path / name, out / name)
    (out / ENSEMBLE_FILE).write_text(json.dumps({"format": "defectlab-ensemble", "version": 1,
                                                 "members": [{"name": "a"}, {"name": "b"}]}))
    ens = load_model(out)
    path = ds.items[0].image.path
    pa = load_model(tmp_path / "a").predict(path, engine="torch", probabilities=True).probabilities
    pb = load_model(tmp_path / "b").predict(path, engine="torch", probabilities=True).probabilities
    pe = ens.predict(path, engine="torch", probabilities=True)
    mean = (pa.astype(np.float64) + pb) / 2
    assert not np.allclose(pa, pb, atol=1e-2)  # two different members
    # blending tiles is linear in the probabilities, so the mean of blended = blended mean; measured max
    # difference here 6e-8 (float32 rounding)
    assert np.abs(pe.probabilities - mean).max() < 1e-5
    entropy = -(mean * np.log(np.clip(mean, 1e-12, 1))).sum(axis=0)
    assert np.abs(pe.uncertainty - entropy).max() < 1e-4
    assert np.array_equal(pe.semantic, np.argmax(pe.probabilities, axis=0))
    # each member's own prediction, from the ensemble's net passes, is what that member predicts alone
    for tta in (False, True):
        got = ens.predict(path, engine="torch", tta=tta, members=True).members
        for member, own in zip(ens.members, got):
            alone = member.predict(path, engine="torch", tta=tta)
            assert np.array_equal(own.semantic, alone.semantic) and np.array_equal(own.instances, alone.instances)
            assert np.array_equal(own.confidence, alone.confidence)
            assert np.allclose(own.scores, alone.scores)
    assert not np.array_equal(got[0].semantic, got[1].semantic)
    assert ens.predict(path, engine="torch").members is None  # only when asked


def test_members_prelabels_are_written_for_measure_and_read_back(tmp_path):
    ds = cavities(tmp_path, 4, seed=4)
    train_unet(ds, tmp_path / "cv", folds=2, **QUICK)
    model = load_model(tmp_path / "cv")
    images = [it.image.path for it in ds]
    report = predict_images(model, images, tmp_path / "pred", prelabels="cvat", progress=False)
    main = read_cvat(report.prelabels)
    for name in ("fold_1", "fold_2"):
        member = read_cvat(tmp_path / "pred" / "prelabels" / "members" / name / "annotations.xml")
        assert [it.name for it in member] == [it.name for it in main]
        assert [lab.name for lab in member.labels] == [lab.name for lab in main.labels]
    assert (tmp_path / "pred" / "uncertainty").is_dir()
    measured = defectlab.measure(report.prelabels, pixel_size="1nm", figures=False, progress=False)
    assert [Path(p).parent.name for p in measured.settings["members"]] == ["fold_1", "fold_2"]
    none = predict_images(model, images, tmp_path / "pred2", prelabels="cvat", members=False, progress=False)
    assert not (none.out / "prelabels" / "members").exists()


def test_ctrl_c_during_the_second_fold_keeps_the_first(tmp_path, monkeypatch):
    from defectlab.dl.archs import base

    ds = cavities(tmp_path, 4)
    calls = {"n": 0}
    real = base._SemanticJob.loss

    def loss(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # fold 1 ran 2 steps; the first step of fold 2
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(base._SemanticJob, "loss", loss)
    result = train_unet(ds, tmp_path / "cv", folds=2, steps_per_epoch=2, **{k: v for k, v in QUICK.items()
                                                                            if k != "min_steps"})
    assert result.interrupted and len(result.folds) == 1
    summary = json.loads((tmp_path / "cv" / ENSEMBLE_FILE).read_text())
    assert summary["interrupted"] and [m["name"] for m in summary["members"]] == ["fold_1"]
    assert len(load_model(tmp_path / "cv").members) == 1


def test_bad_inputs_and_folders_are_clear_errors(tmp_path):
    ds = cavities(tmp_path, 2)
    with pytest.raises(DatasetError, match="expected 2 to 2 folds for 2 images"):
        train_unet(ds, tmp_path / "cv", folds=3, **QUICK)
    assert not (tmp_path / "cv").exists()
    with pytest.raises(ValueError, match="folds.*per-pixel architectures"):
        train("stardist", ds, tmp_path / "st", folds=2, progress=False, plot=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ENSEMBLE_FILE).write_text("{oops")
    with pytest.raises(ParseError, match="ensemble.json.*not valid JSON"):
        load_model(bad)
    (bad / ENSEMBLE_FILE).write_text(json.dumps({"format": "defectlab-ensemble", "members": [{"name": "fold_1"}]}))
    with pytest.raises(ModelError, match="member 'fold_1' is missing"):
        load_model(bad)
    (bad / ENSEMBLE_FILE).write_text(json.dumps({"format": "defectlab-ensemble", "members": [{"name": "../x"}]}))
    with pytest.raises(ParseError, match="/members/0/name"):
        load_model(bad)


def test_cli_train_folds_prints_the_table_and_predict_uses_the_ensemble(tmp_path):
    from defectlab.formats.cvat_xml import write_cvat

    ds = cavities(tmp_path, 3)
    write_cvat(ds, tmp_path / "annotations.xml")
    runner = CliRunner()
    got = runner.invoke(app, ["train", "unet", str(tmp_path / "annotations.xml"), "--out", str(tmp_path / "cv"),
                              "--folds", "3", "--epochs", "1", "--min-steps", "2", "--batch-size", "2", "--tile", "64",
                              "--base-filters", "8", "--depth", "2", "--no-plot", "--no-auto"])
    assert got.exit_code == 0, got.output
    assert "cross-validation" in got.output and "mean ± sd" in got.output and "fold_3" in got.output
    got = runner.invoke(app, ["predict", str(tmp_path / "cv"), str(tmp_path / "img_0.png"), "--out",
                              str(tmp_path / "pred"), "--prelabels", "cvat"])
    assert got.exit_code == 0, got.output
    assert (tmp_path / "pred" / "prelabels" / "members" / "fold_2" / "annotations.xml").is_file()
    got = runner.invoke(app, ["train", "unet", str(tmp_path / "annotations.xml"), "--out", str(tmp_path / "cv4"),
                              "--folds", "4", "--no-auto"])
    assert got.exit_code != 0 and "expected 2 to 3 folds for 3 images" in got.output
    assert "Traceback" not in got.output
