"""#17: ``measure`` of an ensemble's predictions puts the spread between its members into the
intervals (model uncertainty): the members' pre-labels given with ``--member`` / ``members=``, or
found beside the measured ones (``prelabels/members/<member>/annotations.xml``)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import defectlab
import defectlab.api
from defectlab.cli import app
from defectlab.errors import DatasetError
from defectlab.formats.cvat_xml.write import write_cvat
from defectlab.measurement import measure
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

MEMBERS = 3


def _drop(ds, every=None):
    """``ds`` with every ``every``-th shape of each image left out (a member that misses some)."""
    items = [dataclasses.replace(it, shapes=tuple(s for i, s in enumerate(it.shapes) if every is None or i % every),
                                 image=None)
             for it in ds.items]
    return dataclasses.replace(ds, items=tuple(items))


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble")
    make_synthetic_dataset(tmp / "export", n_images=3, config=SyntheticConfig(size_hw=(192, 192)), seed=2)
    ds = defectlab.read(tmp / "export")
    pre = tmp / "pred" / "prelabels"
    pre.mkdir(parents=True)
    write_cvat(_drop(ds), pre / "annotations.xml")  # the ensemble's own (every shape)
    members = [_drop(ds, 2 + j) for j in range(MEMBERS)]
    for j, member in enumerate(members):
        (pre / "members" / f"fold_{j + 1}").mkdir(parents=True)
        write_cvat(member, pre / "members" / f"fold_{j + 1}" / "annotations.xml")
    return tmp, ds, members


def _count(ds, label):
    return sum(1 for it in ds.items for s in it.shapes if s.label == label)


def _measure(path, tmp, run=measure, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run(path, images=tmp / "export" / "images", pixel_size="0.5nm", **kw)


def test_the_members_beside_the_predictions_are_mixed_into_the_intervals(predictions):
    tmp, ds, members = predictions
    m = _measure(tmp / "pred" / "prelabels" / "annotations.xml", tmp)
    assert len(m.settings["members"]) == MEMBERS
    assert any(n.code == "model-uncertainty" for n in m.notes)
    rows = {r["label"]: r for r in m.intervals.rows()}
    for label in {s.label for it in ds.items for s in it.shapes}:
        counts = [_count(member, label) for member in members]
        row = rows[label]
        assert row["members"] == MEMBERS
        # the point value is the members' mean, their spread the sample standard deviation
        assert row["count"] == pytest.approx(np.mean(counts))
        assert row["count_model_sd"] == pytest.approx(np.std(counts, ddof=1))
        assert row["count_lo"] <= min(counts) * 0.999 and row["count_hi"] >= max(counts)
    # the ensemble's own table counts every shape
    per_set = {r["label"]: r for r in m.per_set.rows()}
    assert all(per_set[k]["count"] == _count(ds, k) for k in rows if _count(ds, k))


def test_members_none_measures_the_predictions_alone(predictions):
    tmp, ds, _ = predictions
    m = _measure(tmp / "pred" / "prelabels" / "annotations.xml", tmp, run=defectlab.api.measure, members=(),
                 progress=False)
    assert "members" not in m.settings
    assert all(r["members"] == 1 for r in m.intervals.rows())


def test_a_member_of_other_images_is_named(predictions, tmp_path):
    tmp, ds, members = predictions
    short = dataclasses.replace(members[0], items=members[0].items[:-1])
    write_cvat(short, tmp_path / "member.xml")
    with pytest.raises(DatasetError, match=r"member\.xml: an ensemble member must predict the same images"):
        _measure(tmp / "pred" / "prelabels" / "annotations.xml", tmp, members=[tmp_path / "member.xml"])


def test_the_command_line_says_the_intervals_hold_the_members(predictions, tmp_path):
    tmp, _, _ = predictions
    res = CliRunner().invoke(app, ["measure", str(tmp / "pred" / "prelabels" / "annotations.xml"), "--images",
                                   str(tmp / "export" / "images"), "--pixel-size", "0.5nm", "--out",
                                   str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert f"with the spread of {MEMBERS} ensemble members" in " ".join(res.output.split())
    page = (tmp_path / "m" / "index.html").read_text(encoding="utf-8")
    assert f"one of the {MEMBERS} ensemble members" in page


def test_members_given_on_the_command_line(predictions, tmp_path):
    tmp, _, _ = predictions
    pre = tmp / "pred" / "prelabels"
    res = CliRunner().invoke(app, ["measure", str(pre / "annotations.xml"), "--images", str(tmp / "export" / "images"),
                                   "--pixel-size", "0.5nm", "--out", str(tmp_path / "m"),
                                   "--member", str(pre / "members" / "fold_1" / "annotations.xml"),
                                   "--member", str(pre / "members" / "fold_2" / "annotations.xml")])
    assert res.exit_code == 0, res.output
    assert "with the spread of 2 ensemble members" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["measure", str(pre / "annotations.xml"), "--images", str(tmp / "export" / "images"),
                                   "--out", str(tmp_path / "bad"), "--member", str(tmp / "export" / "nope.xml")])
    assert res.exit_code == 1 and "Traceback" not in res.output and "nope.xml" in res.output, res.output
