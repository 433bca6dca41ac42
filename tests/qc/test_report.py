"""The offline HTML report: self-contained, pictures embedded, every finding listed."""

from __future__ import annotations

import base64
import html
import io
import re
from html.parser import HTMLParser

import pytest
from PIL import Image

from defectlab.errors import OutputError
from defectlab.qc import check

_VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


class _Structure(HTMLParser):
    """Collects tags, checks that non-void tags nest, and records what would load from outside."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.external, self.ids, self.images, self.text = [], [], [], set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            if a["id"] in self.ids:
                self.errors.append(f"duplicate id {a['id']}")
            self.ids.add(a["id"])
        for key in ("src", "href"):
            v = a.get(key)
            if v and not (v.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) or v.startswith("#")):
                self.external.append((tag, key, v))
        if tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.external.append((tag, a))
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(planted, tmp_path_factory):
    ds, _ = planted
    result = check(ds, outlier_z=100)
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert result.write_report(path) == path
    return result, path, path.read_text(encoding="utf-8")


def test_report_is_self_contained_and_well_formed(report):
    result, path, text = report
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    parser = _Structure()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert parser.external == []
    # every link inside the page points at an element that exists
    for target in re.findall(r"href='#([^']+)'", text):
        assert target in parser.ids


def test_report_embeds_a_picture_of_every_image_and_every_located_finding(report):
    result, path, text = report
    parser = _Structure()
    parser.feed(text)
    pictures = [Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) for src in parser.images]
    located = [f for f in result.findings if f.box_xyxy is not None and f.image is not None]
    # micrographs and finding crops as JPEG (a tenth of the bytes), the 3 plots as PNG
    assert [p.format for p in pictures].count("JPEG") == len(result.dataset) + len(located)
    assert [p.format for p in pictures].count("PNG") == 3
    sizes = [p.size for p in pictures]
    for item in result.dataset:  # the micrograph of each image at full size (all are <= 1024 px)
        assert (item.size_hw[1], item.size_hw[0]) in sizes
    plots = 3  # sizes, edge offsets, solidity
    assert len(pictures) == len(result.dataset) + len(located) + plots


def test_report_lists_every_finding(report):
    result, path, text = report
    parser = _Structure()
    parser.feed(text)
    for n, f in enumerate(result.findings, start=1):
        assert f"row-{n}" in parser.ids and f"f-{n}" in parser.ids
        assert html.escape(f.message, quote=True) in text
    rows = re.findall(r"<tr id='row-(\d+)'>", text)
    assert len(rows) == len(result.findings)
    # the sortable table's script and the severity counts are there
    assert "sortable-table" in text and "addEventListener" in text
    counts = result.counts()
    assert f"{counts['error']} errors" in text


def test_report_is_not_overwritten_without_permission(report, planted):
    result, path, _ = report
    with pytest.raises(OutputError, match="exists"):
        result.write_report(path)
    with pytest.raises(OutputError, match="is a folder"):
        result.write_report(path.parent)
    before = path.stat().st_mtime_ns
    result.write_report(path, overwrite=True)
    assert path.stat().st_mtime_ns >= before
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_report_scales_large_images_down(planted, tmp_path):
    ds, _ = planted
    result = check(ds.with_items(ds.items[:1]), outlier_z=100)
    path = result.write_report(tmp_path / "small.html", max_picture_px=128)
    parser = _Structure()
    parser.feed(path.read_text(encoding="utf-8"))
    sizes = [Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size for src in parser.images]
    assert (128, 128) in sizes and (256, 256) not in sizes


def test_report_pictures_clean_images_only_up_to_a_limit(report, tmp_path):
    result, _, _ = report
    path = result.write_report(tmp_path / "few.html", max_clean_pictures=0)
    text = path.read_text(encoding="utf-8")
    clean = [it.name for it in result.dataset if not result.for_image(it.name)]
    assert clean == ["clean_0.png", "clean_1.png"]
    assert "2 more images without findings: clean_0.png, clean_1.png" in text
    parser = _Structure()
    parser.feed(text)
    assert not {"img-6", "img-7"} & parser.ids and "img-0" in parser.ids


def test_report_without_matplotlib_says_so(report, tmp_path, monkeypatch):
    import builtins

    result, _, _ = report
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    text = result.write_report(tmp_path / "plain.html", max_clean_pictures=0).read_text(encoding="utf-8")
    assert "The histograms need matplotlib" in text and "<img class='plot'" not in text


def test_report_of_25_large_frames_stays_a_few_mb(shared_data, tmp_path):
    """25 frames of 2048² of a real TEM texture (the workshop image tiled 4 x 4), 37 bubbles each
    and one duplicate: the report is a few MB (it was 39 MB of PNG on such an export), and every
    frame still has its picture and its finding's crop."""
    import numpy as np

    from defectlab import read
    from defectlab.model import Dataset, ImageSource, Item

    src = shared_data / "workshop"
    lab = read(src / "DL_for_Microscopy_Train_Lab_1.xml", images=src)
    big = np.tile(np.asarray(Image.open(src / "DL_for_Microscopy_Train_Img_1.png").convert("L")), (4, 4))
    items = []
    for k in range(25):
        path = tmp_path / f"frame_{k:02d}.png"
        Image.fromarray(np.roll(big, 7 * k, axis=0)).save(path)
        shapes = lab[0].shapes + lab[0].shapes[:1]
        items.append(Item(path.name, (2048, 2048), shapes, image=ImageSource(path)))
    result = check(Dataset(lab.labels, tuple(items)), outlier_z=100, use_images=False)
    report = result.write_report(tmp_path / "report.html")
    # measured: 5.6 MB (main: 14.6 MB here, all PNG; 39 MB on the export of issue 14)
    assert report.stat().st_size < 8e6, f"{report.stat().st_size / 1e6:.1f} MB"
    text = report.read_text(encoding="utf-8")
    assert text.count("<img class='micro'") == 25
    assert sum(f.code == "shape-duplicate" for f in result.findings) == 25
    for n, f in enumerate(result.findings, start=1):
        assert f"id='f-{n}'" in text


def test_report_lists_the_first_findings_of_each_check_and_counts_the_rest(planted, tmp_path):
    """Thousands of one finding make a page no one reads: the table keeps the first N of each code,
    says how many more there are, and every finding is still numbered (and boxed in its picture)."""
    from collections import Counter

    ds, _ = planted
    result = check(ds, outlier_z=100)
    by_code = Counter(f.code for f in result.findings)
    assert max(by_code.values()) >= 2  # the cap has something to cut
    text = result.write_report(tmp_path / "r.html", max_rows_per_code=1).read_text(encoding="utf-8")
    rows = [int(n) for n in re.findall(r"<tr id='row-(\d+)'>", text)]
    first = {}
    for n, f in enumerate(result.findings, start=1):
        first.setdefault(f.code, n)
    assert sorted(rows) == sorted(first.values())
    for code, n in by_code.items():
        if n > 1:
            assert f"{n - 1} more {html.escape(code)}" in text
    for n in range(1, len(result.findings) + 1):  # every finding keeps its caption in its image's section
        assert f"id='f-{n}'" in text


def test_report_made_by_worker_processes_is_the_one_made_in_process(planted, tmp_path):
    """The images' sections are drawn in a process pool: the same bytes as one process makes."""
    ds, _ = planted
    two = check(ds, outlier_z=100, workers=2)
    one = check(ds, outlier_z=100, workers=1)
    assert two.findings == one.findings
    assert list(map(repr, two.records)) == list(map(repr, one.records))  # NaN where NaN
    a = two.write_report(tmp_path / "a.html").read_text(encoding="utf-8")
    b = one.write_report(tmp_path / "b.html").read_text(encoding="utf-8")
    assert a.replace("workers = 2", "") == b.replace("workers = 1", "")
