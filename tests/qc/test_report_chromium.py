"""The check report rendered by a real browser: headless Chromium (Debian's ``chromium``).

``make test`` installs the package (the ``chromium`` target of the Makefile). Without it these
tests fail, never skip: a report nobody has seen render is not tested.

What Chromium tells us, and how:

* ``--dump-dom`` prints the DOM after the page's scripts ran: the report's sort script marks
  ``<body data-sortable-tables=…>``; an instrumented copy of the report also records, on
  load, how many pictures decoded and sorts the findings table by a click;
* ``--enable-logging=stderr --v=0`` writes every console message (log, warning, error,
  uncaught exception) to stderr as ``…:CONSOLE…`` lines, without their level — the report
  logs nothing, so any console line is a problem;
* ``--screenshot`` gives the picture a person would see.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.qc import check

_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is not installed, so the HTML report cannot be tested: run `make test`, "
                "which installs Debian's 'chromium' package (or `sudo apt-get install chromium`)", pytrace=False)


def _run(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), *_FLAGS, f"--user-data-dir={profile}", *extra, page.absolute().as_uri()]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish rendering {page} within 120 s")
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done


def console_problems(stderr: str) -> list[str]:
    """The console messages and uncaught errors Chromium logged to stderr."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


_INSTRUMENT = """<script>window.addEventListener("load", function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) { if (!imgs[i].complete || imgs[i].naturalWidth === 0) { broken++; } }
  document.body.setAttribute("data-test-images", imgs.length + "/" + broken);
  var heads = document.querySelectorAll("table.sortable-table th.sortable");
  for (var k = 0; k < heads.length; k++) { if (heads[k].textContent === "code") { heads[k].click(); } }
});</script></body>"""


class _Rows(HTMLParser):
    """The findings table's rows in document order: (row id, text of the code cell)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list] = []
        self._cell: int | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and (a.get("id") or "").startswith("row-"):
            self.rows.append([a["id"], ""])
            self._cell = -1
        elif tag == "td" and self._cell is not None:
            self._cell += 1

    def handle_endtag(self, tag):
        if tag == "tr":
            self._cell = None

    def handle_data(self, data):
        if self._cell == 2:  # "#", severity, code
            self.rows[-1][1] += data


@pytest.fixture(scope="module")
def rendered(planted, tmp_path_factory):
    ds, _ = planted
    result = check(ds, outlier_z=100)
    folder = tmp_path_factory.mktemp("chromium")
    page = result.write_report(folder / "report.html")
    text = page.read_text(encoding="utf-8")
    assert "</body>" in text
    instrumented = folder / "instrumented.html"
    # the pictures load lazily, as a reader scrolls to them: the instrumented copy loads them all
    # before its load event, so that every one can be seen to decode
    assert "loading='lazy'" in text
    instrumented.write_text(text.replace("</body>", _INSTRUMENT).replace("loading='lazy' ", ""), encoding="utf-8")
    dom = _run(page, folder / "profile-dom", "--dump-dom")
    shot = folder / "shot.png"
    screen = _run(page, folder / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000",
                  "--hide-scrollbars")
    clicked = _run(instrumented, folder / "profile-click", "--dump-dom")
    return result, text, dom, screen, shot, clicked


def test_console_problems_are_seen(tmp_path):
    """The console check is not blind: a page that logs an error and throws is caught twice."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('broken on purpose');"
                    "window.notAFunction();</script></body></html>", encoding="utf-8")
    problems = console_problems(_run(page, tmp_path / "profile", "--dump-dom").stderr)
    assert any("broken on purpose" in p for p in problems)
    assert any("Uncaught TypeError" in p for p in problems)


def test_report_renders_without_console_errors(rendered):
    _, _, dom, screen, _, clicked = rendered
    for run in (dom, screen, clicked):
        assert console_problems(run.stderr) == []


def test_report_script_ran_and_every_finding_is_in_the_dom(rendered):
    result, _, dom, _, _, _ = rendered
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    assert 'data-sortable-tables="1"' in body  # set by the report's script once it has bound the headers
    parser = _Rows()
    parser.feed(dom.stdout)
    assert [row_id for row_id, _ in parser.rows] == [f"row-{n}" for n in range(1, len(result.findings) + 1)]
    assert [code.strip() for _, code in parser.rows] == [f.code for f in result.findings]


def test_every_picture_decodes_and_the_table_sorts_on_a_click(rendered):
    result, text, _, _, _, clicked = rendered
    n_images = len(re.findall(r"<img\b", text))
    assert n_images >= len(result.dataset) + 3  # a picture per image here, and the 3 histograms
    assert re.search(r'data-test-images="(\d+)/(\d+)"', clicked.stdout).groups() == (str(n_images), "0")
    parser = _Rows()
    parser.feed(clicked.stdout)
    codes = [code.strip() for _, code in parser.rows]
    assert sorted(row_id for row_id, _ in parser.rows) == sorted(f"row-{n}" for n in range(1, len(codes) + 1))
    assert codes == sorted(f.code for f in result.findings)  # sorted by code after the click
    assert codes != [f.code for f in result.findings]  # which is not the report's own order


def test_screenshot_shows_the_report(rendered):
    _, _, _, _, shot, _ = rendered
    assert shot.is_file(), "chromium wrote no screenshot"
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert rgb.shape == (2000, 1280, 3)
    assert rgb.std() > 20  # not a blank page
    # the style sheet applied: the red of the error badges (#e61e1e) and the orange of the warnings (#f0a000)
    for color in ((230, 30, 30), (240, 160, 0)):
        assert (np.abs(rgb - np.array(color)).max(axis=2) <= 8).sum() > 200, color
    # a micrograph is on the page: many gray levels
    gray = rgb[(rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])][:, 0]
    assert len(np.unique(gray)) > 100


# ---------------------------------------------------------------------------------------------
# The measure page (#14.10): its tables fit a 1280 px screen, with headers people read

_WIDTHS = """<script>window.addEventListener("load", function () {
  var wide = [], tables = document.querySelectorAll("table");
  for (var i = 0; i < tables.length; i++) {
    var box = tables[i].getBoundingClientRect();
    if (box.right > window.innerWidth + 0.5 || box.left < -0.5) { wide.push(i + ":" + Math.round(box.width)); }
  }
  document.body.setAttribute("data-test-widths",
    document.documentElement.scrollWidth + "/" + window.innerWidth + "/" + tables.length + "/" + wide.join(","));
});</script></body>"""


def test_measure_page_fits_a_1280_px_screen(tmp_path):
    from defectlab.measurement import measure
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    ds = make_synthetic_dataset(tmp_path / "export", n_images=2, config=SyntheticConfig(size_hw=(128, 128)))
    m = measure(ds, pixel_size="0.5nm", thickness="80nm")
    m.write(tmp_path / "m", figures=False)
    text = (tmp_path / "m" / "index.html").read_text(encoding="utf-8")
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", text)
    assert "mean (nm)" in headers and "per µm²" in headers and "size_mean_nm" not in headers
    page = tmp_path / "m" / "instrumented.html"
    page.write_text(text.replace("</body>", _WIDTHS), encoding="utf-8")
    dom = _run(page, tmp_path / "profile", "--window-size=1280,900", "--hide-scrollbars", "--dump-dom")
    scroll, inner, n_tables, wide = re.search(r'data-test-widths="(\d+)/(\d+)/(\d+)/([^"]*)"', dom.stdout).groups()
    assert int(inner) == 1280 and int(n_tables) >= 3
    assert int(scroll) <= 1280 and wide == "", f"page {scroll} px wide; tables past the screen: {wide}"
