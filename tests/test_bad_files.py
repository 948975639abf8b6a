"""A library with every kind of bad file: each gets one line naming it; nothing else is lost.

The corpus is generated here: empty, random, truncated, a decompression bomb, hostile
EXIF, odd pixel formats, wrong extensions, unreadable and vanished paths, broken and
looping symlinks, a name that is not UTF-8, a file deleted between listing and reading.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from lumina_plugin.engine import Engine

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
EXPECTED = json.loads((SAMPLE / "expected_groups.json").read_text())
PHOTO = SAMPLE / "2018/2018-10-13/DSC00211.jpg"  # a singleton: its odd copies group only with it


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png() -> bytes:
    """A few hundred bytes claiming 100,000 x 100,000 pixels."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def hostile_exif_jpeg() -> bytes:
    """A valid JPEG whose EXIF has wrong types, an absurd count and an IFD that points at itself."""
    entries = [(0x010F, 2, 0x7FFFFFFF, 8), (0x0112, 2, 4, 0x45564F4C), (0x8769, 4, 1, 8), (0x9003, 7, 3, 0)]
    tiff = struct.pack("<2sHI", b"II", 42, 8) + struct.pack("<H", len(entries))
    tiff += b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 8)
    app1 = b"Exif\x00\x00" + tiff
    buf = io.BytesIO()
    Image.open(PHOTO).save(buf, "JPEG", quality=85)
    jpeg = buf.getvalue()
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


@pytest.fixture()
def corpus(tmp_path: Path) -> tuple[Path, dict[str, str | None]]:
    """The library: the sample photos plus bad files; maps each added name to the
    expected error keyword (None: the file is odd but a valid photo and must hash)."""
    lib = tmp_path / "library"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.py", "*.md", "*.json"))
    bad = lib / "bad"
    bad.mkdir()
    real = PHOTO.read_bytes()
    img = Image.open(PHOTO).convert("RGB")
    expect: dict[str, str | None] = {}

    def put(name: str, data: bytes, why: str | None) -> None:
        (bad / name).write_bytes(data)
        expect[name] = why

    put("empty.jpg", b"", "empty")
    put("random.jpg", os.urandom(4096), "not an image")
    put("truncated.jpg", real[: len(real) // 2], "truncated")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    put("truncated.png", buf.getvalue()[: len(buf.getvalue()) // 2], "")
    put("bomb.png", bomb_png(), "decompression bomb")
    put("hostile-exif.jpg", hostile_exif_jpeg(), None)
    put("text.jpg", b"these are not the pixels you are looking for\n" * 20, "not an image")
    for name, mode, fmt in (("cmyk.jpg", "CMYK", "JPEG"), ("palette.png", "P", "PNG"), ("alpha.png", "RGBA", "PNG")):
        out = io.BytesIO()
        img.convert(mode).save(out, fmt)
        put(name, out.getvalue(), None)
    out = io.BytesIO()
    Image.fromarray(__import__("numpy").asarray(img.convert("L"), dtype="uint16") * 257).save(out, "PNG")
    put("gray16.png", out.getvalue(), None)
    out = io.BytesIO()
    img.save(out, "GIF", save_all=True, append_images=[img.rotate(90)], duration=100, loop=0)
    put("animated.gif", out.getvalue(), None)
    put("actually-a-jpeg.png", real, None)  # wrong extension: hashed as what it is
    os.symlink(bad / "no-such-target.jpg", bad / "broken-link.jpg")
    expect["broken-link.jpg"] = "not found"
    os.symlink(bad / "loop.jpg", bad / "loop.jpg")
    expect["loop.jpg"] = "cannot stat"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(bad / "socket.jpg"))  # unreadable as a file, even for root
    expect["socket.jpg"] = "not a regular file"
    os.mkdir(bad / "folder.jpg")  # a folder with a photo's name is walked, not read
    name = os.fsencode(bad) + b"/caf\xe9.jpg"  # Latin-1 name: not UTF-8
    with open(name, "wb") as fh:
        fh.write(real)
    expect[os.fsdecode(b"caf\xe9.jpg")] = None  # catalogued like any other name (#18 item 10)
    return lib, expect


def test_every_bad_file_gets_one_line_and_the_rest_is_processed(tmp_path: Path, corpus) -> None:
    lib, expect = corpus
    # The last photo in path order: claimed last, so still unread at the first progress
    # call however many workers are already running.
    vanishing = lib / "phone/PXL_20230102_120311.jpg"
    deleted = []

    def progress(phase: str, done: int, total: int) -> None:
        # A file deleted between listing and reading (a card pulled out, a sync removing it).
        if phase == "hashing" and not deleted:
            vanishing.unlink()
            deleted.append(vanishing)

    with Engine(tmp_path / "c.db", progress=progress) as engine:
        report = engine.find_duplicates([lib])
    out = report.as_json()
    errors = {Path(e["path"]).name: e["error"] for e in out["errors"]}
    wanted = {n: why for n, why in expect.items() if why is not None}
    assert set(errors) == set(wanted) | {vanishing.name}
    for name, why in wanted.items():
        assert why.lower() in errors[name].lower(), (name, errors[name])
    assert "not found" in errors[vanishing.name]
    assert all("\n" not in e["error"] and e["path"] for e in out["errors"])
    # Every other photo was hashed, and the expected groups are all there.
    sample_photos = sum(1 for p in SAMPLE.rglob("*") if p.suffix.lower() in {".jpg", ".png", ".webp"})
    assert report.hashed == sample_photos - 1 + sum(why is None for why in expect.values())
    groups = {frozenset(str(Path(m["path"]).relative_to(lib)) for m in g["members"]) for g in out["groups"]}
    assert {frozenset(g) for g in EXPECTED["groups"]} <= groups
    # The run report in the catalog keeps the errors.
    with sqlite3.connect(tmp_path / "c.db") as conn:
        stored = json.loads(conn.execute("SELECT report FROM dedup_runs ORDER BY id DESC").fetchone()[0])
    assert {Path(e["path"]).name for e in stored["errors"]} == set(errors)


def test_cli_lists_errors_exits_0_and_memory_stays_bounded(tmp_path: Path, corpus) -> None:
    lib, expect = corpus
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", "find-duplicates", str(lib),
                           "--catalog", str(tmp_path / "c.db")], capture_output=True, text=True, timeout=300)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert proc.returncode == 0, proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == sum(why is not None for why in expect.values())
    assert any("bomb.png" in line for line in error_lines)
    # The bomb was refused, not decoded: 100,000 x 100,000 RGB would need 30 GB.
    assert max(peak_kib, before) < 600 * 1024, f"peak RSS {peak_kib} KiB"
