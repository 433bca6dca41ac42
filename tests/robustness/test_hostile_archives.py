"""Hostile archives, for every reader that accepts a zip (cvat, coco, masks / instance-tiff).

A member named with ``..``, an absolute path or a drive letter, a symbolic link, a zip bomb
by compression ratio or by declared size, a member that lies about its size: each is refused
with the archive and member named, quickly, and nothing is ever written — readers read zips in
place, and a conversion of an export whose *image names* climb out writes nothing outside its
output folder (nor the folder itself).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import defectlab
from defectlab import limits
from defectlab.errors import DatasetError, ParseError

READERS = ("cvat", "coco", "masks")


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def export_members(reader: str, image_name: str = "a.png") -> dict[str, bytes]:
    """The members of a small valid export of ``reader``, one 8 x 10 image with one object."""
    image = png(np.full((8, 10), 100, np.uint8))
    if reader == "cvat":
        xml = (f'<annotations><version>1.1</version><meta><job><labels><label><name>cavity</name></label>'
               f'</labels></job></meta><image id="0" name="{image_name}" width="10" height="8">'
               '<box label="cavity" xtl="1" ytl="1" xbr="5" ybr="4" occluded="0" z_order="0"/></image></annotations>')
        return {"annotations.xml": xml.encode(), f"images/{Path(image_name).name}": image}
    if reader == "coco":
        doc = {"images": [{"id": 1, "file_name": image_name, "width": 10, "height": 8}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 3],
                                "segmentation": [], "area": 12, "iscrowd": 0}],
               "categories": [{"id": 1, "name": "cavity"}]}
        return {"annotations/instances_default.json": json.dumps(doc).encode(),
                f"images/{Path(image_name).name}": image}
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[1:4, 1:5] = (250, 50, 83)
    return {"labelmap.txt": b"background:0,0,0::\ncavity:250,50,83::\n", "SegmentationClass/a.png": png(rgb),
            "ImageSets/Segmentation/default.txt": b"a\n", "JPEGImages/a.png": image}


def write_zip(path: Path, members: dict[str, bytes], *, extra: list[zipfile.ZipInfo | tuple] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for item in extra:
            if isinstance(item, tuple):
                zf.writestr(*item)
    return path


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("reader", READERS)
def test_the_valid_export_reads(tmp_path: Path, reader: str) -> None:
    ds = defectlab.read(write_zip(tmp_path / "ok.zip", export_members(reader)), format=reader)
    assert len(ds) == 1 and len(ds[0].shapes) == 1 and ds[0].image is not None


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("member, why", [
    ("../evil.png", "climbs out"),
    ("images/../../evil.png", "climbs out"),
    ("..\\..\\evil.png", "climbs out"),
    ("/etc/evil.png", "absolute"),
    ("C:/Windows/evil.png", "absolute"),
    ("c:evil.png", "absolute"),
])
def test_members_that_leave_the_archive_are_refused(tmp_path: Path, reader: str, member: str, why: str) -> None:
    before = snapshot(tmp_path)
    archive = write_zip(tmp_path / "evil.zip", export_members(reader), extra=[(member, b"x")])
    with pytest.raises(ParseError, match=rf"evil\.zip!{re.escape(member)}: refusing the archive.*{why}"):
        defectlab.read(archive, format=reader)
    assert snapshot(tmp_path).keys() - before.keys() == {"evil.zip"}  # nothing extracted anywhere


@pytest.mark.parametrize("reader", READERS)
def test_symlink_members_are_refused(tmp_path: Path, reader: str) -> None:
    info = zipfile.ZipInfo("images/b.png")
    info.create_system = 3  # Unix: the mode bits below are read
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = tmp_path / "link.zip"
    write_zip(archive, export_members(reader))
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ParseError, match=r"link\.zip!images/b\.png: refusing the archive: the member it is a symbolic link"):
        defectlab.read(archive, format=reader)


@pytest.mark.parametrize("reader", READERS)
def test_zip_bomb_by_ratio_is_refused_before_inflating(tmp_path: Path, reader: str) -> None:
    members = export_members(reader)
    name = next(iter(members))  # the annotation file (or labelmap) itself
    members[name] = members[name] + b" " * 50_000_000  # 50 MB of spaces: ~1000:1
    archive = write_zip(tmp_path / "bomb.zip", members)
    assert archive.stat().st_size < 200_000
    start = time.process_time()
    with pytest.raises(ParseError, match=rf"bomb\.zip!{name}: refusing a member compressed \d+:1.*zip bomb"):
        defectlab.read(archive, format=reader)
    assert time.process_time() - start < 1.0  # refused from the directory, not by inflating


@pytest.mark.parametrize("reader", READERS)
def test_zip_bomb_by_size_is_refused_and_the_limit_can_be_raised(tmp_path: Path, reader: str) -> None:
    members = export_members(reader)
    archive = write_zip(tmp_path / "big.zip", members)
    size = max(len(data) for data in members.values())
    with limits.override(max_file_bytes=size - 1):
        with pytest.raises(ParseError, match=rf"big\.zip!\S+: refusing a member of {size} bytes uncompressed "
                                             rf"\(the limit is {size - 1}; defectlab\.limits: raise max_file_bytes"):
            defectlab.read(archive, format=reader)
    with limits.override(max_file_bytes=size):
        assert len(defectlab.read(archive, format=reader)) == 1


def _lie_about_size(archive: Path, member: str, declared: int) -> None:
    """Patch the uncompressed size of ``member`` in its local header and central directory entry."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    fake = declared.to_bytes(4, "little")
    data[info.header_offset + 22: info.header_offset + 26] = fake
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = int.from_bytes(data[at + 28: at + 30], "little")
        if data[at + 46: at + 46 + name_len] == member.encode():
            data[at + 24: at + 28] = fake
            break
        at = data.find(b"PK\x01\x02", at + 4)
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize("reader", READERS)
def test_members_that_hold_more_than_they_declare_are_refused(tmp_path: Path, reader: str) -> None:
    members = export_members(reader)
    name = next(iter(members))
    archive = write_zip(tmp_path / "liar.zip", members)
    _lie_about_size(archive, name, 10)
    with pytest.raises(ParseError, match=rf"liar\.zip!{name}"):
        defectlab.read(archive, format=reader)


def test_unsupported_zip_versions_and_methods_are_our_errors(tmp_path: Path) -> None:
    """Regression (fuzzing): a flipped 'version needed' byte raised NotImplementedError."""
    archive = write_zip(tmp_path / "v.zip", export_members("cvat"))
    data = bytearray(archive.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 6] = 148  # version needed to extract: 14.8
    archive.write_bytes(bytes(data))
    with pytest.raises(ParseError, match=r"v\.zip: not a readable zip archive \(zip file version 14\.8\)"):
        defectlab.read(archive, format="cvat")
    method = write_zip(tmp_path / "m.zip", export_members("cvat"))
    data = bytearray(method.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99 (AES)
        at = data.find(sig)
        data[at + offset: at + offset + 2] = (99).to_bytes(2, "little")
    method.write_bytes(bytes(data))
    with pytest.raises(ParseError, match=r"m\.zip!annotations\.xml: cannot read the member"):
        defectlab.read(method, format="cvat")


def test_yolo_refuses_zips_with_a_clear_error(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "y.zip", {"data.yaml": b"train: images\nnames: [a]\n"})
    with pytest.raises(ParseError, match=r"y\.zip: a zip archive: extract it, then read its folder"):
        defectlab.read(archive, format="yolo")


@pytest.mark.parametrize("reader", ("cvat", "coco"))
@pytest.mark.parametrize("to", ("unet", "maskrcnn", "instance-tiff", "coco", "yolo"))
def test_image_names_that_climb_out_write_nothing_outside(tmp_path: Path, reader: str, to: str) -> None:
    """Regression: an image *named* ``../../escape.png`` in an export (the zip itself is clean)
    made write_unet / write_maskrcnn / write_instance_tiffs write ``escape.png`` beside the output."""
    work = tmp_path / "work"
    work.mkdir()
    archive = write_zip(work / "export.zip", export_members(reader, image_name="../../escape.png"))
    ds = defectlab.read(archive, format=reader)
    assert ds[0].name == "../../escape.png"
    ds = ds.with_items([ds[0]])
    if ds[0].image is None:  # found by its base name in the archive, or not: give it one
        from defectlab.model import ImageSource, Item

        Image.fromarray(np.zeros((8, 10), np.uint8)).save(work / "a.png")
        it = ds[0]
        ds = ds.with_items([Item(it.name, it.size_hw, it.shapes, ImageSource(work / "a.png"), it.subset, it.id)])
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match=r"'\.\./\.\./escape\.png': an image name that is absolute, climbs out"):
        defectlab.write(ds, work / "deep" / "out", format=to)
    after = snapshot(tmp_path)
    assert {k for k in after.keys() - before.keys() if not k.endswith("deep")} == set()


def test_cli_convert_of_a_hostile_zip_fails_cleanly(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "evil.zip", export_members("cvat"), extra=[("../../pwned.txt", b"x")])
    before = snapshot(tmp_path)
    run = subprocess.run([sys.executable, "-m", "defectlab.cli", "convert", str(archive), "--to", "unet",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "evil.zip!../../pwned.txt: refusing the archive" in " ".join(run.stderr.split())
    assert snapshot(tmp_path) == before
    assert not (tmp_path.parent / "pwned.txt").exists() and not os.path.exists("pwned.txt")


@pytest.mark.parametrize("reader", READERS)
def test_a_member_with_an_empty_name_is_refused(tmp_path: Path, reader: str) -> None:
    """Regression (atheris): an empty member name raised IndexError in SafeZip (``ZipInfo.is_dir``)."""
    archive = write_zip(tmp_path / "e.zip", export_members(reader), extra=[(zipfile.ZipInfo(""), b"x")])
    with pytest.raises(ParseError, match=r"e\.zip!: refusing the archive: the member its name is empty"):
        defectlab.read(archive, format=reader)
    with pytest.raises(ParseError, match=r"its name is empty"):
        defectlab.read(archive)


def _zip64_tail() -> bytes:
    """A zip64 end-of-central-directory locator (disk 1 of 2) and an empty end record: what
    ``zipfile.is_zipfile`` answers with BadZipFile ("zipfiles that span multiple disks")."""
    import struct

    locator = struct.pack("<4sLQL", b"PK\x06\x07", 1, 0, 2)
    return locator + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("reader", ["cvat", "coco", "via", "labelbox", "labelme", "yolo", "masks", None])
def test_a_zip64_record_in_a_files_tail_is_our_error(tmp_path: Path, reader: str | None) -> None:
    """Regression (atheris): any file whose tail held a zip64 end-of-directory record made
    ``is_zip`` raise BadZipFile, in every reader that sniffs for a zip."""
    path = tmp_path / "tail.json"
    path.write_bytes(b'{"images": [], "annotations": [], "categories": []}' + _zip64_tail())
    with pytest.raises(defectlab.DefectlabError):
        defectlab.read(path, format=reader)
    real = write_zip(tmp_path / "multi.zip", export_members("cvat"))  # a zip that claims to span disks
    data = real.read_bytes()
    real.write_bytes(data[:-22] + _zip64_tail())
    with pytest.raises(ParseError, match=r"multi\.zip: not a readable zip archive \(.*multiple disks"):
        defectlab.read(real, format="cvat")

