"""Fuzzing the EXIF reader and the decode path: hostile bytes give PhotoError or a photo, nothing else.

Bounded for CI (a few hundred examples); ``python tests/fuzz_long.py --minutes N``
runs the same properties for longer, with atheris when it is installed.
"""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from lumina_plugin.decode.cpu import DecodedPhoto, PhotoError, decode
from lumina_plugin.decode.exif import ExifFacts, read_exif

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"


def _seed(fmt: str) -> bytes:
    # Small real photos (with EXIF where the format keeps it) as the starting points of mutation.
    img = Image.open(SAMPLE / "2015/2015-06-21/P6210097.jpg")
    exif = img.getexif()
    img = img.convert("RGB").resize((48, 32))
    buf = io.BytesIO()
    img.save(buf, fmt, exif=exif) if fmt in ("JPEG", "PNG", "WEBP") else img.save(buf, fmt)
    return buf.getvalue()


SEEDS = [_seed(f) for f in ("JPEG", "PNG", "WEBP", "GIF", "TIFF")]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:  # a big number where a count or offset lives
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x08", b"\x7f\xff\xff\xff"]))
    return bytes(data)


def check_one(data: bytes, path: Path) -> None:
    """The property: read_exif never raises; decode returns a photo or raises PhotoError naming the file."""
    assert isinstance(read_exif(data), ExifFacts)
    path.write_bytes(data)
    try:
        photo = decode(path, max_pixels=50_000_000)
    except PhotoError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
    else:
        assert isinstance(photo, DecodedPhoto) and photo.gray.mode == "L"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_photos(tmp_path: Path, data: bytes) -> None:
    check_one(data, tmp_path / "fuzz.img")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    check_one(data, tmp_path / "random.jpg")
