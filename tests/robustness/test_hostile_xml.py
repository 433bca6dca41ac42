"""Hostile markup: entity expansion, external entities, DTDs from the network, deep nesting.

The CVAT reader (the XML format) and the YOLO ``data.yaml`` loader (YAML has its own
"billion laughs": aliases) must refuse all of these quickly, read nothing outside the file,
fetch nothing, and say where the problem is. A local HTTP server counts the requests a
parser might make, and a secret file checks that no entity reads local files.
"""

from __future__ import annotations

import http.server
import threading
import time
import zipfile
from pathlib import Path

import pytest

import defectlab
from defectlab import limits
from defectlab.errors import DefectlabError, FormatError, ParseError
from defectlab.formats.cvat_xml import read_cvat, sniff_cvat
from defectlab.formats.yolo_txt import read_yolo

HEADER = """<?xml version="1.0" encoding="utf-8"?>
{doctype}
<annotations>
  <version>1.1</version>
  <meta><job><labels><label><name>cavity</name></label></labels></job></meta>
  <image id="0" name="a.png" width="64" height="48">
    <box label="cavity" xtl="1" ytl="2" xbr="{xbr}" ybr="9" z_order="0" occluded="0"/>
  </image>
</annotations>
"""


def cvat_xml(path: Path, doctype: str = "", xbr: str = "8") -> Path:
    path.write_text(HEADER.format(doctype=doctype, xbr=xbr), encoding="utf-8")
    return path


@pytest.fixture()
def server():
    """A local HTTP server that serves a DTD and counts every request it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            hits.append(self.path)
            body = b'<!ENTITY fetched "FETCHED-FROM-THE-NETWORK">'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    return path


def test_the_template_itself_reads(tmp_path: Path) -> None:
    ds = read_cvat(cvat_xml(tmp_path / "ok.xml"))
    assert ds[0].shapes[0].xyxy == (1.0, 2.0, 8.0, 9.0)


def test_billion_laughs_is_refused_fast_at_the_doctype(tmp_path: Path) -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{k} "{f"&lol{k - 1};" * 10}">' for k in range(1, 10)
    ]
    doctype = "<!DOCTYPE annotations [" + "".join(entities) + "]>"
    path = cvat_xml(tmp_path / "laughs.xml", doctype, xbr="&lol9;")
    start = time.process_time()
    with pytest.raises(ParseError, match=r"laughs\.xml, line 2, column \d+: refusing a <!DOCTYPE annotations>"):
        read_cvat(path)
    assert time.process_time() - start < 0.5  # 10**9 "lol"s were never expanded
    assert not sniff_cvat(path)
    with pytest.raises(FormatError, match="not a labeling export"):  # detection refuses it too
        defectlab.read(path)


def test_quadratic_blowup_without_a_doctype_is_just_an_undefined_entity(tmp_path: Path) -> None:
    path = cvat_xml(tmp_path / "quad.xml", xbr="&a;" * 100_000)
    with pytest.raises(ParseError, match=r"quad\.xml, line \d+, column \d+: malformed XML: undefined entity"):
        read_cvat(path)


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file://{secret}">]>',
    '<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "{secret}">]>',
    '<!DOCTYPE annotations [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>',
])
def test_external_entities_read_no_local_file(tmp_path: Path, secret: Path, doctype: str) -> None:
    path = cvat_xml(tmp_path / "xxe.xml", doctype.format(secret=secret), xbr="&xxe;")
    with pytest.raises(ParseError, match=r"xxe\.xml, line 2.*refusing") as info:
        read_cvat(path)
    assert "TOP-SECRET" not in str(info.value)


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE annotations SYSTEM "{url}/evil.dtd">',
    '<!DOCTYPE annotations PUBLIC "-//EVIL//DTD//EN" "{url}/evil.dtd">',
    '<!DOCTYPE annotations [<!ENTITY % remote SYSTEM "{url}/p.dtd"> %remote;]>',
    '<!DOCTYPE annotations [<!ENTITY net SYSTEM "{url}/e.xml">]>',
])
def test_dtds_and_entities_on_the_network_are_never_fetched(tmp_path: Path, server, doctype: str) -> None:
    url, hits = server
    path = cvat_xml(tmp_path / "net.xml", doctype.format(url=url), xbr="8")
    with pytest.raises(ParseError, match=r"net\.xml, line 2.*refusing a <!DOCTYPE"):
        read_cvat(path)
    with pytest.raises(FormatError):
        defectlab.read(path)  # format detection reads the start of the file: it fetches nothing either
    time.sleep(0.05)
    assert hits == []


def test_the_same_in_a_zip(tmp_path: Path, server) -> None:
    url, hits = server
    archive = tmp_path / "export.zip"
    xml = HEADER.format(doctype=f'<!DOCTYPE annotations SYSTEM "{url}/evil.dtd">', xbr="8")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations.xml", xml)
    with pytest.raises(ParseError, match=r"export\.zip!annotations\.xml, line 2.*refusing"):
        read_cvat(archive)
    assert hits == []


def test_xinclude_is_not_processed(tmp_path: Path, secret: Path) -> None:
    xml = HEADER.format(doctype="", xbr="8").replace(
        "<image ", f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret}" parse="text"/>\n  <image ')
    path = tmp_path / "xinclude.xml"
    path.write_text(xml, encoding="utf-8")
    ds = read_cvat(path)  # an unknown element: skipped with a note, its href never opened
    assert [n.code for n in ds.notes if n.code == "ignored-element"] == ["ignored-element"]
    assert "TOP-SECRET" not in repr(ds.notes)


def test_deep_nesting_is_refused_at_the_limit_and_the_limit_can_be_raised(tmp_path: Path) -> None:
    deep = "<x>" * 100_000 + "</x>" * 100_000
    path = tmp_path / "deep.xml"
    path.write_text(HEADER.format(doctype="", xbr="8").replace("<version>", deep + "<version>"), encoding="utf-8")
    start = time.process_time()
    with pytest.raises(ParseError, match=r"deep\.xml, line 4, column \d+: elements nested deeper than 100 levels"
                                         r".*max_nesting_depth"):
        read_cvat(path)
    assert time.process_time() - start < 1.0
    moderate = tmp_path / "moderate.xml"
    moderate.write_text(HEADER.format(doctype="", xbr="8").replace("<version>", "<x>" * 150 + "</x>" * 150 + "<version>"),
                        encoding="utf-8")
    with pytest.raises(ParseError, match="nested deeper than 100"):
        read_cvat(moderate)
    with limits.override(max_nesting_depth=200):
        ds = read_cvat(moderate)  # the nested <x> is outside any image: skipped with a note
    assert len(ds) == 1 and any(n.code == "ignored-element" for n in ds.notes)


def test_unknown_encoding_in_the_declaration(tmp_path: Path) -> None:
    """Regression (fuzzing): ``encoding="utfnan"`` raised LookupError from expat, in read and detect."""
    path = tmp_path / "enc.xml"
    path.write_text(HEADER.format(doctype="", xbr="8").replace('encoding="utf-8"', 'encoding="utfnan"'))
    with pytest.raises(ParseError, match=r"enc\.xml, line 1: the XML declaration names an encoding"):
        read_cvat(path)
    assert not sniff_cvat(path)
    with pytest.raises(FormatError):
        defectlab.read(path)


@pytest.mark.parametrize("encoding", ["utf-7", "shift_jis", "utf-32", "big5"])
def test_multi_byte_encoding_in_the_declaration(tmp_path: Path, encoding: str) -> None:
    """Regression (atheris): ``encoding="utf-7"`` raised expat's ValueError "multi-byte encodings
    are not supported", in read and detect."""
    path = tmp_path / "enc.xml"
    path.write_text(HEADER.format(doctype="", xbr="8").replace('encoding="utf-8"', f'encoding="{encoding}"'))
    with pytest.raises(ParseError, match=r"enc\.xml, line 1: the XML declaration names an encoding the XML "
                                         r"parser cannot read .*save the file as UTF-8"):
        read_cvat(path)
    assert not sniff_cvat(path)
    with pytest.raises(FormatError):
        defectlab.read(path)


def test_utf16_xml_with_its_declaration_is_read_like_utf8(tmp_path: Path) -> None:
    """XML may be UTF-16 (it says so in a byte-order mark): read, not refused."""
    text = HEADER.format(doctype="", xbr="8").replace('encoding="utf-8"', 'encoding="utf-16"')
    (tmp_path / "u16.xml").write_bytes(text.encode("utf-16"))
    assert read_cvat(tmp_path / "u16.xml")[0].shapes == read_cvat(cvat_xml(tmp_path / "u8.xml"))[0].shapes


def test_character_references_to_nul_and_non_characters(tmp_path: Path) -> None:
    for i, ref in enumerate(("&#0;", "&#xFFFE;", "&#1;")):
        path = cvat_xml(tmp_path / f"ref{i}.xml", xbr="8" + ref)
        with pytest.raises(ParseError, match=rf"ref{i}\.xml, line \d+, column \d+: malformed XML"):
            read_cvat(path)


# ---------------------------------------------------------------------------------------------
# YAML (YOLO data.yaml)
# ---------------------------------------------------------------------------------------------


def yolo_root(tmp_path: Path, yaml_text: str) -> Path:
    from PIL import Image

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("L", (20, 10)).save(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text(yaml_text, encoding="utf-8")
    return tmp_path


def test_yaml_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    """Regression (fuzzing): nested aliases made read_yolo spin past 20 s (YAML "billion laughs")."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for k in range(1, 9):
        prev, cur = chr(ord("a") + k - 1), chr(ord("a") + k)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines += ["train: images/train", "names: *i"]
    root = yolo_root(tmp_path, "\n".join(lines) + "\n")
    start = time.process_time()
    with pytest.raises(ParseError, match=r"data\.yaml, line 2, column \d+: not valid YAML: found the alias \*a"):
        read_yolo(root)
    assert time.process_time() - start < 1.0


def test_yaml_python_tags_are_not_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    root = yolo_root(tmp_path, f"train: images/train\nnames: [a]\nx: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ParseError, match=r"data\.yaml, line 3, column 4: not valid YAML"):
        read_yolo(root)
    assert not marker.exists()


def test_yaml_deep_nesting(tmp_path: Path) -> None:
    root = yolo_root(tmp_path, "train: images/train\nnames: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(DefectlabError, match=r"data\.yaml"):
        read_yolo(root)


def test_yaml_that_is_not_utf8(tmp_path: Path) -> None:
    """Regression (fuzzing): UTF-16 or control characters raised yaml's ReaderError."""
    root = yolo_root(tmp_path, "")
    (root / "data.yaml").write_bytes("train: images/train\nnames: [a]\n".encode("utf-16-be"))
    with pytest.raises(ParseError, match=r"data\.yaml: not UTF-8 text: a NUL byte at line 1, column 1"):
        read_yolo(root)
    (root / "data.yaml").write_bytes(b"train: images/train\nnames: [a\x1a]\n")
    with pytest.raises(ParseError, match=r"data\.yaml: not valid YAML \(unacceptable character #x001a"):
        read_yolo(root)
