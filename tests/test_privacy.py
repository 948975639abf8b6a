"""Privacy (issue 18, item 9): no camera serial number and no GPS position in anything shared.

Real JPEGs carrying Make, Model, BodySerialNumber and a GPS position (written with Pillow),
through the real command line: the text output, ``--json``, the review report (its HTML and
its embedded thumbnails) and the catalog file name the camera as "Canon EOS 70D" (the make not
doubled) and hold neither the serial nor the position. Burst detection still tells two bodies
of one model apart and recognises one body, through the digest the catalog keeps instead.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from lumina_plugin.decode.exif import display_camera, read_exif
from lumina_plugin.engine import Engine

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
PHOTO = SAMPLE / "2015/2015-10-29/IMG_8812.jpg"
SERIAL = "033021010924"
#: The GPS position written: degrees, minutes, seconds (48°51'29.5" N, 2°17'40.2" E).
LAT, LON = (48.0, 51.0, 29.5), (2.0, 17.0, 40.2)


def camera_jpeg(path: Path, serial: str = SERIAL, when: str = "2021:05:01 10:00:00", size: tuple[int, int] | None = None,
                quality: int = 92) -> Path:
    """A real JPEG with Make "Canon", Model "Canon EOS 70D", a body serial number and GPS."""
    with Image.open(PHOTO) as im:
        img = im.convert("RGB")
    if size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 70D"
    ifd = exif.get_ifd(0x8769)
    ifd[0xA431] = serial          # BodySerialNumber
    ifd[0x9003] = when            # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", LAT, "E", LON
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=quality, exif=exif)
    return path


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc


def leaks(text: str) -> list[str]:
    """What of the private facts ``text`` shows: the serial, the make doubled, the position."""
    found = [s for s in (SERIAL, "Canon Canon") if s in text]
    found += [m.group(0) for m in re.finditer(r"48\D{1,3}51|29\.5|17\D{1,3}40|40\.2|GPS", text)]
    return found


def test_the_photos_really_carry_a_serial_and_a_position(tmp_path: Path) -> None:
    """The fixture is what a camera writes: the test below would prove nothing otherwise."""
    path = camera_jpeg(tmp_path / "a.jpg")
    with Image.open(path) as im:
        exif = im.getexif()
        assert exif.get_ifd(0x8769)[0xA431] == SERIAL
        assert exif.get_ifd(0x8825)[2] == LAT
    facts = read_exif(path.read_bytes())
    assert facts.serial == SERIAL


def test_text_json_review_and_catalog_show_make_and_model_only(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    camera_jpeg(lib / "IMG_0001.jpg")
    camera_jpeg(lib / "small" / "IMG_0001.jpg", size=(320, 200), quality=85)
    db = tmp_path / "c.db"
    text = cli("find-duplicates", str(lib), "--catalog", str(db), "-v")
    assert "IMG_0001.jpg" in text.stdout and leaks(text.stdout + text.stderr) == []
    out = json.loads(cli("find-duplicates", "--catalog", str(db), "--json").stdout)
    (group,) = out["groups"]
    assert {m["camera"] for m in group["members"]} == {"Canon EOS 70D"}
    assert leaks(json.dumps(out)) == []
    review = json.loads(cli("review", "--catalog", str(db), "--json").stdout)
    page = Path(review["report"]).read_text(encoding="utf-8")
    assert "Canon EOS 70D" in page and leaks(page) == []
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(thumbs) == 2
    for data in thumbs:
        with Image.open(io.BytesIO(base64.b64decode(data))) as thumb:
            exif = thumb.getexif()
            assert not exif.get_ifd(0x8825) and not exif.get_ifd(0x8769), "a thumbnail kept EXIF"
    # The catalog itself keeps no serial either (it is a file people copy and back up).
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name.startswith("c.db"))
    assert SERIAL.encode() not in stored


def test_bursts_still_tell_bodies_apart(tmp_path: Path) -> None:
    """Two frames one second apart: from one body they are a burst; from two bodies of the same
    model they are not (here: a copy), as when the serial was stored in clear."""
    same, two = tmp_path / "same", tmp_path / "two"
    camera_jpeg(same / "a.jpg", when="2021:05:01 10:00:00")
    camera_jpeg(same / "b.jpg", when="2021:05:01 10:00:01", quality=90)
    camera_jpeg(two / "a.jpg", when="2021:05:01 10:00:00")
    camera_jpeg(two / "b.jpg", serial="033021010925", when="2021:05:01 10:00:01", quality=90)
    relations = {}
    for lib in (same, two):
        with Engine(tmp_path / f"{lib.name}.db") as engine:
            (group,) = engine.find_duplicates([lib]).as_json()["groups"]
        relations[lib.name] = {m["relation"] for m in group["members"]} - {"keeper"}
    assert relations == {"same": {"burst"}, "two": {"derivative"}}
    a, b = (read_exif((two / n).read_bytes()) for n in ("a.jpg", "b.jpg"))
    assert a.camera != b.camera and display_camera(a.camera) == display_camera(b.camera) == "Canon EOS 70D"


def test_catalogs_written_before_show_no_serial_either() -> None:
    """A catalog from an earlier version stored "make model serial" in clear; shown now, it is
    make and model once."""
    assert display_camera(f"Canon Canon EOS 70D {SERIAL}") == "Canon EOS 70D"
    assert display_camera("NIKON CORPORATION NIKON D7500") == "NIKON D7500"
    assert display_camera("SONY ILCE-7M3") == "SONY ILCE-7M3"
    assert display_camera(None) is None


def test_sample_library_review_shows_no_serial(tmp_path: Path) -> None:
    """The sample library has a Canon EOS 70D frame with its serial (the one in the issue)."""
    lib = tmp_path / "lib"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.py", "*.md", "*.json"))
    db = str(tmp_path / "c.db")
    out = cli("find-duplicates", str(lib), "--catalog", db, "--json").stdout
    assert SERIAL not in out and "Canon Canon" not in out
    page = Path(json.loads(cli("review", "--catalog", db, "--json").stdout)["report"])
    html = "".join(p.read_text(encoding="utf-8") for p in page.parent.glob("*.html"))
    assert SERIAL not in html and "Canon Canon" not in html and "Canon EOS 70D" in html
    assert os.path.getsize(page) > 0
