"""The GPU path's cheap header reading agrees with Pillow (decode/jpeg_header.py,
decode/head.py, and the GPU process's file reader), on real photos, on the CPU."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from PIL import Image

from lumina_plugin.decode.head import HEAD_BYTES, probe_head
from lumina_plugin.decode.jpeg_header import read_jpeg_header
from lumina_plugin.decode.photo import PhotoError, _orientation, probe
from lumina_plugin.ingest.gpu_worker import _read

SAMPLES = sorted(p for p in SAMPLE_DIR.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def pillow_orientation(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as im:
        return _orientation(im)


def test_header_matches_pillow_on_every_sample_jpeg() -> None:
    assert len(SAMPLES) >= 20
    for path in SAMPLES:
        data = path.read_bytes()
        header = read_jpeg_header(data)
        assert header is not None, path
        with Image.open(path) as im:
            assert (header.width, header.height) == im.size, path
            assert header.orientation in (None, _orientation(im)), path
            assert header.sequential == (not im.info.get("progressive")), path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_read_without_pillow(make_photo, orientation: int) -> None:
    data = make_photo(f"o{orientation}.jpg", size=(96, 64), orientation=orientation).read_bytes()
    header = read_jpeg_header(data)
    assert header is not None and header.orientation == orientation == pillow_orientation(data)


def test_xmp_only_orientation_is_left_to_pillow(make_photo, tmp_path: Path) -> None:
    # Pillow takes the orientation from the XMP packet when EXIF has none: the reader must
    # not claim 1 there.
    src = make_photo("x.jpg", size=(96, 64))
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    with Image.open(src) as im:
        im.save(tmp_path / "xmp.jpg", "JPEG", xmp=xmp)
    data = (tmp_path / "xmp.jpg").read_bytes()
    assert pillow_orientation(data) == 6
    header = read_jpeg_header(data)
    assert header is not None and header.orientation is None
    job = _read(0, str(tmp_path / "xmp.jpg"))
    assert job is not None and job.orientation == 6  # the reader asked Pillow


def test_broken_or_other_files_have_no_engine_ready_header(make_photo, tmp_path: Path) -> None:
    base = make_photo("b.jpg", size=(120, 80), orientation=3)
    data = base.read_bytes()
    assert read_jpeg_header(data).engine_ready
    assert not read_jpeg_header(data[: len(data) // 2]).engine_ready  # truncated: no end marker
    assert read_jpeg_header(data[:20]) is None
    assert read_jpeg_header(b"") is None
    assert read_jpeg_header(make_photo("p.png", size=(32, 20)).read_bytes()) is None
    with Image.open(base) as im:
        im.save(tmp_path / "prog.jpg", "JPEG", progressive=True)
    prog = read_jpeg_header((tmp_path / "prog.jpg").read_bytes())
    assert prog is not None and not prog.sequential and not prog.engine_ready
    # A segment whose length runs past the data, and garbage between segments.
    assert read_jpeg_header(data[:2] + b"\xff\xe1\xff\xff" + b"\0" * 10) is None
    assert read_jpeg_header(data[:2] + b"junk" + data[2:]) is None


def test_head_probe_gives_the_full_probe_facts_without_the_checksum() -> None:
    for path in SAMPLES:
        full, head = probe(path), probe_head(path)
        assert dataclasses.replace(head, file=full.file) == full, path
        assert head.file.sha256 == "" and head.file.size_bytes == full.file.size_bytes


def test_head_probe_facts_from_the_header_equal_pillows(make_photo, tmp_path: Path) -> None:
    """Beside the GPU the facts of camera JPEGs come from our header walk and exifread, not
    Pillow's open; everything else still goes through Pillow. Both must give the full
    probe's facts: every orientation, camera tags or none, gray, CMYK, progressive, an
    orientation only in XMP, EXIF that exifread cannot read, a size past the pixel limit."""
    paths = [make_photo(f"o{o}.jpg", size=(300, 200), orientation=o, make="Canon" if o % 2 else None,
                        model="EOS R5" if o % 2 else None, taken_at="2024:05:06 07:08:09" if o > 4 else None)
             for o in range(1, 9)]
    with Image.open(paths[0]) as im:
        im.convert("L").save(tmp_path / "gray.jpg", "JPEG")
        im.convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG")
        im.save(tmp_path / "progressive.jpg", "JPEG", progressive=True, exif=im.getexif())
        xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
               b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
        im.save(tmp_path / "xmp.jpg", "JPEG", xmp=xmp)
        im.save(tmp_path / "badexif.jpg", "JPEG", exif=b"Exif\x00\x00II*\x00" + b"\xff" * 40)
    paths += [tmp_path / n for n in ("gray.jpg", "cmyk.jpg", "progressive.jpg", "xmp.jpg", "badexif.jpg")]
    for path in paths:
        assert probe_head(path) == dataclasses.replace(probe(path), file=probe_head(path).file), path.name
    assert probe_head(tmp_path / "xmp.jpg").orientation == 8
    assert probe_head(paths[4]).exif.taken_at is not None and probe_head(paths[0]).exif.make == "Canon"
    with pytest.raises(PhotoError) as head_error:
        probe_head(paths[0], max_pixels=300 * 200 - 1)
    with pytest.raises(PhotoError) as full_error:
        probe(paths[0], max_pixels=300 * 200 - 1)
    assert str(head_error.value) == str(full_error.value)


def test_head_probe_reads_the_whole_file_when_the_header_is_longer(make_photo, tmp_path: Path) -> None:
    # An ICC profile bigger than the head pushes the scan past it: the full probe answers.
    src = make_photo("icc.jpg", size=(96, 64), make="Canon", model="EOS")
    big = tmp_path / "bigicc.jpg"
    with Image.open(src) as im:
        im.save(big, "JPEG", exif=im.getexif(), icc_profile=os.urandom(HEAD_BYTES + 1000))
    head = probe_head(big)
    assert head.file.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert head == probe(big)
    assert head.exif.make == "Canon"


def test_head_probe_refuses_what_the_full_probe_refuses(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a photo")
    for name in ("empty.jpg", "text.jpg", "missing.jpg"):
        with pytest.raises(PhotoError):
            probe_head(tmp_path / name)


def test_gpu_reader_checksums_the_bytes_it_hands_on(make_photo, tmp_path: Path) -> None:
    path = make_photo("r.jpg", size=(160, 120), orientation=8)
    job = _read(7, str(path))
    data = path.read_bytes()
    assert job is not None and job.index == 7 and job.data == data
    assert job.size == (120, 160) and job.orientation == 8
    assert job.file == (len(data), path.stat().st_mtime_ns, hashlib.sha256(data).hexdigest())
    os.mkfifo(tmp_path / "fifo.jpg")  # would block a plain read forever
    assert _read(0, str(tmp_path / "fifo.jpg")) is None
    assert _read(0, str(tmp_path / "missing.jpg")) is None
    assert _read(0, str(make_photo("p.png", size=(32, 20)))) is None
