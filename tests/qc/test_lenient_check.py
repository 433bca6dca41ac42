"""``check`` reads leniently: what the strict reader refuses but can locate becomes a finding with
its file, line and shape; only an unreadable file is an error, and ``--json`` prints JSON even then.

Expected lines are found in the test's own files by plain text search (``_line_of``), never from
the reader; the strict reader's refusal of the same files is asserted alongside.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import defectlab
from defectlab.cli import app
from defectlab.errors import ParseError

runner = CliRunner()

#: A CVAT task export with one problem of each kind the issue names, one per line.
CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels>
    <label><name>cavity</name><color>#61b21f</color><type>any</type></label>
  </labels></task></meta>
  <image id="0" name="a.png" width="64" height="48">
    <ellipse label="cavity" source="manual" occluded="0" cx="20" cy="20" rx="4" ry="3" z_order="0"/>
    <polygon label="void" source="manual" occluded="0" points="40,10;50,10;45,20" z_order="0"/>
    <polygon label="cavity" source="manual" occluded="0" points="1,1;10,1" z_order="0"/>
    <box label="cavity" source="manual" occluded="0" xtl="abc" ytl="1" xbr="5" ybr="6" z_order="0"/>
    <ellipse label="cavity" source="manual" occluded="0" cx="40" cy="40" ry="3" z_order="0"/>
  </image>
</annotations>
"""


def _line_of(text: str, needle: str) -> int:
    (line,) = [k for k, row in enumerate(text.splitlines(), start=1) if needle in row]
    return line


@pytest.fixture()
def cvat(tmp_path: Path) -> Path:
    export = tmp_path / "export"
    (export / "images").mkdir(parents=True)
    (export / "annotations.xml").write_text(CVAT)
    Image.new("L", (64, 48)).save(export / "images" / "a.png")
    return export


def test_the_strict_reader_refuses_the_export(cvat: Path) -> None:
    with pytest.raises(ParseError, match=r"undeclared label 'void'"):
        defectlab.read(cvat)


def test_check_finds_every_refused_shape_with_file_line_and_shape(cvat: Path) -> None:
    result = defectlab.check(cvat)
    xml = str(cvat / "annotations.xml")
    got = {(f.code, f.image, f.shape, f.file, f.line) for f in result.findings
           if f.code in ("label-undeclared", "read-refused", "shape-too-few-vertices")}
    assert got == {
        ("label-undeclared", "a.png", 1, xml, _line_of(CVAT, 'label="void"')),
        ("shape-too-few-vertices", "a.png", None, xml, _line_of(CVAT, 'points="1,1;10,1"')),
        ("read-refused", "a.png", None, xml, _line_of(CVAT, 'xtl="abc"')),
        ("read-refused", "a.png", None, xml, _line_of(CVAT, 'cy="40"')),
    }
    refused = {f.line: f.message for f in result.findings if f.code == "read-refused"}
    assert "expected a number for 'xtl', got 'abc'" in refused[_line_of(CVAT, 'xtl="abc"')]
    assert "missing attribute 'rx'" in refused[_line_of(CVAT, 'cy="40"')]
    assert [s.kind for s in result.dataset[0].shapes] == ["ellipse", "polygon"]  # the two that could be built
    assert result.failed("error")


def test_check_json_carries_file_and_line_and_exits_2(cvat: Path) -> None:
    out = runner.invoke(app, ["check", str(cvat), "--json", "--no-images"])
    assert out.exit_code == 2, out.output
    data = json.loads(out.stdout)
    by_code = {}
    for f in data["findings"]:
        by_code.setdefault(f["code"], []).append(f)
    (undeclared,) = by_code["label-undeclared"]
    assert undeclared["shape"] == 1 and undeclared["location"]["line"] == _line_of(CVAT, 'label="void"')
    assert undeclared["location"]["file"].endswith("annotations.xml")
    assert (undeclared["location"]["x"], undeclared["location"]["y"]) == (45.0, 15.0)  # the polygon's box center
    assert len(by_code["read-refused"]) == 2 and len(by_code["shape-too-few-vertices"]) == 1


def test_check_json_prints_json_for_an_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "annotations.xml"
    bad.write_text(CVAT[: CVAT.index("<image")] + "<image id='0' name='a.png'")  # truncated
    out = runner.invoke(app, ["check", str(bad), "--json"])
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert data["failed"] is True and data["findings"] == []
    assert data["error"]["type"] == "ParseError" and data["error"]["file"] == str(bad)
    assert data["error"]["line"] == _line_of(bad.read_text(), "<image")
    missing = runner.invoke(app, ["check", str(tmp_path / "nope.xml"), "--json"])
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["message"]
    plain = runner.invoke(app, ["check", str(bad)])  # without --json: one line, no traceback
    assert plain.exit_code == 1 and "Traceback" not in plain.output


def test_coco_is_read_leniently(tmp_path: Path) -> None:
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
           "categories": [{"id": 1, "name": "cavity"}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "segmentation": [], "iscrowd": 0},
               {"id": 2, "image_id": 1, "category_id": 7, "bbox": [20, 20, 10, 10], "segmentation": [], "iscrowd": 0},
               {"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, "x", 10, 10], "segmentation": [], "iscrowd": 0},
               {"id": 4, "image_id": 9, "category_id": 1, "bbox": [1, 1, 10, 10], "segmentation": [], "iscrowd": 0},
           ]}
    path = tmp_path / "instances_default.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ParseError, match="unknown category id 7"):
        defectlab.read(path)
    result = defectlab.check(path, use_images=False)
    got = sorted((f.code, f.shape, f.file) for f in result.findings if f.code in ("label-undeclared", "read-refused"))
    assert got == [("label-undeclared", 1, str(path)), ("read-refused", None, str(path)),
                   ("read-refused", None, str(path))]
    messages = " ".join(f.message for f in result.findings if f.code == "read-refused")
    assert "/annotations/2/bbox/1" in messages and "/annotations/3/image_id" in messages
    assert [s.label for s in result.dataset[0].shapes] == ["cavity", "category 7"]


def test_yolo_is_read_leniently(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("L", (100, 50)).save(tmp_path / "images" / "a.png")
    text = "0 0.5 0.5 0.2 0.2\n3 0.2 0.2 0.1 0.1\n0 0.5 abc 0.2 0.2\n0 0.1 0.1\n"
    (tmp_path / "labels" / "a.txt").write_text(text)
    (tmp_path / "classes.txt").write_text("cavity\nloop\n")
    with pytest.raises(ParseError, match="class index 3 is out of range"):
        defectlab.read(tmp_path)
    result = defectlab.check(tmp_path)
    label_file = str(tmp_path / "labels" / "a.txt")
    got = sorted((f.code, f.shape, f.file, f.line) for f in result.findings
                 if f.code in ("label-undeclared", "read-refused"))
    assert got == [("label-undeclared", 1, label_file, 2), ("read-refused", None, label_file, 3),
                   ("read-refused", None, label_file, 4)]


def test_fix_after_a_lenient_read_says_what_the_copy_lacks(cvat: Path, tmp_path: Path) -> None:
    result = defectlab.check(cvat)
    fixed = defectlab.fix(result.dataset, result, out=tmp_path / "fixed")
    assert any("3 part(s) of the export the strict reader refuses are not in the repaired copy" in n
               for n in fixed.notes)
    assert fixed.not_fixable["read-refused"] == 2
