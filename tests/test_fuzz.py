"""Fuzzing the EXIF reader and the decode path: hostile bytes give PhotoError or a photo, nothing else.

Bounded for CI (a few hundred examples); ``python tests/fuzz_long.py --minutes N``
runs the same properties for longer, with atheris when it is installed.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lumina_plugin.decode.exif import ExifFacts, read_exif
from lumina_plugin.decode.photo import DecodedPhoto, PhotoError, decode

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


def test_tiff_with_a_rational_strip_offset_is_a_clear_error(tmp_path: Path) -> None:
    # Found by test_mutated_photos: Pillow raised TypeError from seek(IFDRational) on load.
    from PIL import Image

    buf = tmp_path / "good.tif"
    Image.new("RGB", (48, 32), (90, 120, 200)).save(buf, "TIFF")
    data = bytearray(buf.read_bytes())
    ifd = int.from_bytes(data[4:8], "little")
    for k in range(int.from_bytes(data[ifd:ifd + 2], "little")):
        entry = ifd + 2 + 12 * k
        if int.from_bytes(data[entry:entry + 2], "little") == 0x0111:  # StripOffsets
            data[entry + 2:entry + 4] = (5).to_bytes(2, "little")      # as a RATIONAL
            data[entry + 4:entry + 8] = (1).to_bytes(4, "little")
            data[entry + 8:entry + 12] = (8).to_bytes(4, "little")     # its value: bytes 8..16
            break
    else:
        raise AssertionError("no StripOffsets tag in the TIFF Pillow wrote")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    with pytest.raises(PhotoError, match="cannot decode"):
        decode(bad, max_pixels=50_000_000)
    check_one(bytes(data), tmp_path / "again.tif")
