"""decode(): the facts of one photo file, its upright gray image, and one-line errors.

Every input is a real file on disk: sample photos, photos written by ``make_photo``, or
broken files built from real photo bytes.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from lumina_plugin.config import Config
from lumina_plugin.decode.photo import DecodedPhoto, PhotoError, decode
from lumina_plugin.hashing.codes import hamming
from lumina_plugin.hashing.cpu import hash_gray

MAX_PIXELS = Config().max_pixels
THRESHOLDS = Config().thresholds
TAKEN = datetime(2021, 3, 14, 10, 42, 7)
OLD_MTIME = 1_500_000_000.0  # 2017-07-14: a file that has been lying on a card a while


def assert_one_line_error(exc: PhotoError, path: Path, *words: str) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message
    assert exc.path == str(path)
    assert message.startswith(f"{path}: ")
    for word in words:
        assert word in message.lower(), message


def codes_close(a: np.ndarray, b: np.ndarray) -> list[int]:
    """Per-hash distances, asserted within the configured link radii."""
    dist = [hamming(x, y) for x, y in zip(a, b)]
    assert all(d <= r for d, r in zip(dist, THRESHOLDS.radii())), dist
    return dist


# -- what decode reports ----------------------------------------------------------------

def test_reports_displayed_size_format_checksum_and_exif(make_photo) -> None:
    path = make_photo("card/DCIM/IMG_0001.JPG", size=(600, 400), orientation=6,
                      make="Canon", model="Canon EOS 80D", taken_at=TAKEN)
    with Image.open(path) as raw:
        assert raw.size == (400, 600)  # stored sideways...
    photo = decode(path)
    assert isinstance(photo, DecodedPhoto)
    assert (photo.width, photo.height) == (600, 400)  # ...displayed upright
    assert photo.gray.mode == "L" and photo.gray.size == (600, 400)
    assert photo.orientation == 6
    assert photo.format == "JPEG" and photo.mode == "RGB"
    data = path.read_bytes()
    st = path.stat()
    assert photo.file.path == str(path)
    assert photo.file.sha256 == hashlib.sha256(data).hexdigest()
    assert photo.file.size_bytes == len(data) == st.st_size
    assert photo.file.mtime_ns == st.st_mtime_ns
    assert photo.exif.make == "Canon" and photo.exif.model == "Canon EOS 80D"
    assert photo.exif.taken_at == TAKEN
    assert photo.exif.camera == "Canon EOS 80D"  # the make once (the model repeats it)
    assert photo.exif.tag_count > 0


def test_gray_image_is_what_a_viewer_shows(make_photo) -> None:
    path = make_photo("rot.png", size=(160, 100), orientation=8)
    photo = decode(path)
    with Image.open(path) as im:
        expected = ImageOps.exif_transpose(im).convert("L")
    np.testing.assert_array_equal(np.asarray(photo.gray), np.asarray(expected))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_shows_the_upright_pixels(make_photo, orientation: int) -> None:
    """Lossless copies stored in each EXIF layout decode to exactly the same gray pixels."""
    upright = decode(make_photo("upright.png", size=(80, 50)))
    photo = decode(make_photo(f"o{orientation}.png", size=(80, 50), orientation=orientation))
    assert photo.orientation == orientation
    assert (photo.width, photo.height) == (80, 50)
    np.testing.assert_array_equal(np.asarray(photo.gray), np.asarray(upright.gray))


def test_real_camera_exif_from_the_sample_library(sample_dir: Path) -> None:
    """A 2015 Canon original kept its photographer's EXIF; exifread (ours) and
    Pillow (independent reader) must agree on it."""
    path = sample_dir / "2015/2015-10-29/IMG_8812.jpg"
    photo = decode(path)
    with Image.open(path) as im:
        exif = im.getexif()
        original = exif.get_ifd(0x8769)[0x9003]
        assert photo.exif.make == exif[0x010F].strip()
        assert photo.exif.model == exif[0x0110].strip()
    assert photo.exif.taken_at == datetime.strptime(original, "%Y:%m:%d %H:%M:%S")
    assert (photo.width, photo.height) == (640, 400)


def test_sample_card_copy_reports_displayed_size(sample_dir: Path) -> None:
    photo = decode(sample_dir / "backup/sdcard/DCIM/100CANON/IMG_3307.JPG")
    original = decode(sample_dir / "2021/2021-12-24/IMG_3307.jpg")
    assert photo.orientation == 6
    assert (photo.width, photo.height) == (original.width, original.height) == (427, 640)


def test_photo_without_exif_has_empty_facts(sample_dir: Path) -> None:
    photo = decode(sample_dir / "exports/web/IMG_0412.webp")  # EXIF stripped on export
    assert photo.format == "WEBP"
    assert photo.exif.make is None and photo.exif.taken_at is None and photo.exif.tag_count == 0
    assert photo.exif.camera is None and photo.exif.timestamp() is None


@pytest.mark.parametrize("name, fmt", [
    ("a.jpg", "JPEG"), ("a.png", "PNG"), ("a.webp", "WEBP"), ("a.tif", "TIFF"),
    ("a.bmp", "BMP"), ("a.gif", "GIF"),
])
def test_format_is_pillows_name(make_photo, name: str, fmt: str) -> None:
    photo = decode(make_photo(name, size=(200, 125)))
    assert photo.format == fmt
    assert (photo.width, photo.height) == (200, 125)


def test_format_comes_from_the_content_not_the_name(make_photo) -> None:
    path = make_photo("really_a_png.jpg", format="PNG", size=(80, 50))
    assert decode(path).format == "PNG"


@pytest.mark.parametrize("name", ["e.jpg", "e.png", "e.tif"])
def test_exif_facts_in_jpeg_png_tiff(make_photo, name: str) -> None:
    photo = decode(make_photo(name, size=(120, 75), make="FUJIFILM", model="X-T3", taken_at=TAKEN))
    assert (photo.exif.make, photo.exif.model, photo.exif.taken_at) == ("FUJIFILM", "X-T3", TAKEN)


def test_exif_facts_in_webp(make_photo) -> None:
    path = make_photo("e.webp", size=(120, 75), make="FUJIFILM", model="X-T3", taken_at=TAKEN)
    with Image.open(path) as im:  # the EXIF is there: Pillow reads it
        assert im.getexif()[0x010F] == "FUJIFILM"
    photo = decode(path)
    assert (photo.exif.make, photo.exif.model, photo.exif.taken_at) == ("FUJIFILM", "X-T3", TAKEN)


def test_webp_orientation_is_applied(make_photo) -> None:
    """Orientation comes from Pillow, which does read WebP EXIF."""
    path = make_photo("r.webp", size=(120, 75), orientation=6, quality=100)
    photo = decode(path)
    assert photo.orientation == 6 and (photo.width, photo.height) == (120, 75)


def test_decode_leaves_the_photo_untouched(make_photo) -> None:
    path = make_photo("keep.jpg", orientation=6, make="Canon", mtime=OLD_MTIME)
    before_bytes, before = path.read_bytes(), path.stat()
    decode(path)
    after = path.stat()
    assert path.read_bytes() == before_bytes
    assert after.st_mtime_ns == before.st_mtime_ns == int(OLD_MTIME * 1e9)
    assert after.st_size == before.st_size and after.st_mode == before.st_mode


# -- per-file errors ----------------------------------------------------------------------

def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "empty")


def test_random_bytes_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "not an image")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list\nmilk\neggs\n" * 20, encoding="utf-8")
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "not an image")


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "gone.jpg"
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "not found")


def test_broken_symlink(tmp_path: Path) -> None:
    path = tmp_path / "link.jpg"
    path.symlink_to(tmp_path / "deleted.jpg")
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "not found")


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "album.jpg"
    path.mkdir()
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "not a regular file")


def test_truncated_jpeg_is_an_error(sample_dir: Path, tmp_path: Path) -> None:
    """Real behaviour with Pillow's default (LOAD_TRUNCATED_IMAGES off): the first half of
    a real JPEG is refused, not decoded with a grey bottom half that would hash as a
    different picture."""
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = (sample_dir / "2019/2019-04-27/DSCF0815.jpg").read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "cannot decode", "truncated")


def test_jpeg_missing_only_its_end_marker_is_also_refused(sample_dir: Path, tmp_path: Path) -> None:
    """Documents current behaviour: even a JPEG whose only loss is the 2-byte EOI marker
    (every pixel present) is reported as truncated."""
    data = (sample_dir / "2019/2019-04-27/DSCF0815.jpg").read_bytes()
    assert data.endswith(b"\xff\xd9")
    path = tmp_path / "no_eoi.jpg"
    path.write_bytes(data[:-2])
    with pytest.raises(PhotoError) as err:
        decode(path)
    assert_one_line_error(err.value, path, "truncated")


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A real 16x16 PNG whose IHDR (with a correct CRC) claims width x height."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (40, 90, 160)).save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("width, height", [
    (100_000, 100_000),  # 10 Gpx: Pillow itself errors (over twice the limit)
    (20_000, 15_000),    # 300 Mpx: between the limit and twice it, Pillow only warns
])
def test_decompression_bomb_refused_fast(tmp_path: Path, width: int, height: int) -> None:
    path = png_claiming(tmp_path / "bomb.png", width, height)
    assert path.stat().st_size < 1024
    limit_before = Image.MAX_IMAGE_PIXELS
    start = time.perf_counter()
    with pytest.raises(PhotoError) as err:
        decode(path, max_pixels=MAX_PIXELS)
    assert time.perf_counter() - start < 0.5  # refused from the header, nothing decoded
    assert_one_line_error(err.value, path, "decompression bomb")
    assert Image.MAX_IMAGE_PIXELS == limit_before  # the global limit is restored


def test_max_pixels_is_the_exact_limit(make_photo) -> None:
    path = make_photo("small.jpg", size=(200, 100))
    assert decode(path, max_pixels=200 * 100).width == 200
    with pytest.raises(PhotoError) as err:
        decode(path, max_pixels=200 * 100 - 1)
    assert_one_line_error(err.value, path, "decompression bomb")


def test_a_bad_file_does_not_spoil_the_next(tmp_path: Path, make_photo) -> None:
    bomb = png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(PhotoError):
        decode(bomb, max_pixels=1000)
    assert decode(make_photo("fine.jpg", size=(200, 100)), max_pixels=MAX_PIXELS).width == 200


# -- unusual but valid photos decode and hash like their 8-bit RGB original ----------------

@pytest.fixture
def reference(make_photo):
    """A lossless RGB PNG and its codes: what the variants below are compared with."""
    path = make_photo("reference.png", size=(320, 200))
    return path, hash_gray(decode(path).gray)


def _png16(path: Path, pixels: np.ndarray) -> Path:
    """Write a 16-bit PNG by hand (Pillow cannot write 16-bit RGB): colour type 2 or 0."""
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("name, mode, fmt", [
    ("cmyk.jpg", "CMYK", "JPEG"),
    ("palette.png", "P", "PNG"),
    ("alpha.png", "RGBA", "PNG"),
    ("gray.png", "L", "PNG"),
])
def test_other_modes_decode_and_match(make_photo, reference, name: str, mode: str, fmt: str) -> None:
    _, ref_codes = reference
    path = make_photo(name, size=(320, 200), mode=mode, quality=95)
    photo = decode(path)
    assert (photo.format, photo.mode) == (fmt, mode)
    assert photo.gray.mode == "L" and (photo.width, photo.height) == (320, 200)
    codes_close(hash_gray(photo.gray), ref_codes)


def test_rgba_with_transparency_decodes(make_photo, reference) -> None:
    path, ref_codes = reference
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    photo = decode(make_photo("fade.png", source=rgba))
    assert photo.mode == "RGBA" and photo.gray.mode == "L"
    # alpha is dropped, not composited: the colour pixels are hashed
    np.testing.assert_array_equal(hash_gray(photo.gray), ref_codes)


def test_animated_gif_hashes_its_first_frame(make_photo, reference, tmp_path: Path) -> None:
    path, ref_codes = reference
    with Image.open(path) as im:
        first = im.convert("RGB")
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[first.rotate(180), first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)],
               duration=100, loop=0)
    with Image.open(path) as im:
        assert im.n_frames == 3
    photo = decode(path)
    assert photo.format == "GIF" and (photo.width, photo.height) == (320, 200)
    codes_close(hash_gray(photo.gray), ref_codes)


def test_16_bit_rgb_png(reference, tmp_path: Path) -> None:
    src, ref_codes = reference
    with Image.open(src) as im:
        rgb16 = np.asarray(im.convert("RGB"), dtype=np.uint16) * 257
    photo = decode(_png16(tmp_path / "rgb16.png", rgb16))
    assert photo.format == "PNG" and (photo.width, photo.height) == (320, 200)
    np.testing.assert_array_equal(hash_gray(photo.gray), ref_codes)


def test_16_bit_gray_png_decodes(reference, tmp_path: Path) -> None:
    src, _ = reference
    with Image.open(src) as im:
        gray16 = np.asarray(im.convert("L"), dtype=np.uint16) * 257
    photo = decode(_png16(tmp_path / "gray16.png", gray16))
    assert photo.format == "PNG" and photo.mode.startswith("I")
    assert photo.gray.mode == "L" and (photo.width, photo.height) == (320, 200)


def test_16_bit_gray_png_hashes_like_its_8_bit_original(make_photo, reference, tmp_path: Path) -> None:
    """Two different photos as 16-bit gray PNGs (no pixel at exact 0, as usual for a
    16-bit sensor) must keep their own codes, close to their 8-bit originals'."""
    src, ref_codes = reference
    other = make_photo("other.png", source="2018/2018-10-14/DSC00388.jpg", size=(320, 200))
    sixteen = []
    for name, path in (("a16.png", src), ("b16.png", other)):
        with Image.open(path) as im:
            pixels = np.maximum(np.asarray(im.convert("L"), dtype=np.uint16), 1) * 257
        sixteen.append(hash_gray(decode(_png16(tmp_path / name, pixels)).gray))
    a, b = sixteen
    assert not np.array_equal(a, b), "two different 16-bit photos got identical codes"
    codes_close(a, ref_codes)
