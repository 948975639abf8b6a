"""Camera RAW files: the embedded JPEG preview is hashed, LibRaw is the optional fallback.

Two kinds of real files on disk:

- RAWs written here (``write_raw``) with the TIFF/EP layout cameras use: a DNG with a
  thumbnail in IFD0 and the sensor data (a real Bayer mosaic of a sample photo, 16-bit)
  and a JPEG preview in SubIFDs, or a NEF-like file whose SubIFD points at its JPEG
  through JPEGInterchangeFormat. LibRaw reads them like a camera's.
- ExifTool's RAW test files (tests/data/raw/, see SOURCES.md): the directory layouts
  of real cameras with their image data cut out (placeholder previews), for the
  container parsers and the error paths.

"No rawpy" runs in a subprocess whose ``sys.modules["rawpy"]`` is None, so the import
fails as it does where the package is absent.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_DIR, hash_without_module, upright_source, write_photo
from PIL import Image

from lumina_plugin.config import Config
from lumina_plugin.decode import raw
from lumina_plugin.decode.photo import PhotoError, decode, probe
from lumina_plugin.decode.tiff_ifd import TiffFile
from lumina_plugin.files import PHOTO_EXTENSIONS
from lumina_plugin.hashing.codes import hamming
from lumina_plugin.hashing.cpu import hash_gray

DATA = Path(__file__).resolve().parent / "data" / "raw"
SOURCE = "2015/2015-10-29/IMG_8812.jpg"
_STORE = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
          8: Image.Transpose.ROTATE_270}

# -- writing TIFF-based RAW files ---------------------------------------------------------

SHORT, LONG, ASCII, BYTE, RATIONAL, SRATIONAL = 3, 4, 2, 1, 5, 10


def _ifd_bytes(entries: dict[int, tuple[int, object]], at: int) -> bytes:
    """One little-endian IFD at file offset ``at``, its out-of-line values right after it."""
    body, extras = [struct.pack("<H", len(entries))], b""
    extras_at = at + 2 + 12 * len(entries) + 4
    for tag in sorted(entries):
        typ, values = entries[tag]
        if typ == ASCII:
            payload, count = values.encode() + b"\0", len(values) + 1  # type: ignore[union-attr]
        elif isinstance(values, bytes):
            payload, count = values, len(values)
        else:
            code = {SHORT: "H", LONG: "I", BYTE: "B", RATIONAL: "I", SRATIONAL: "i"}[typ]
            payload = struct.pack(f"<{len(values)}{code}", *values)  # type: ignore[arg-type]
            count = len(values) // (2 if typ in (RATIONAL, SRATIONAL) else 1)  # type: ignore[arg-type]
        if len(payload) <= 4:
            field = payload.ljust(4, b"\0")
        else:
            field = struct.pack("<I", extras_at + len(extras))
            extras += payload + b"\0" * (len(payload) & 1)
        body.append(struct.pack("<HHI", tag, typ, count) + field)
    return b"".join(body) + struct.pack("<I", 0) + extras


def _bayer(im: Image.Image) -> bytes:
    """An RGGB mosaic of ``im`` as a sensor records it: linear light, 16-bit samples."""
    linear = (np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0) ** 2.2 * 65535
    rgb = linear.round().astype(np.uint16)
    mosaic = np.empty(rgb.shape[:2], dtype="<u2")
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return mosaic.tobytes()


#: ColorMatrix1 (XYZ -> camera) of a "camera" whose RGB is linear sRGB, x 10000.
_XYZ_TO_SRGB = [32406, -15372, -4986, -9689, 18758, 415, 557, -2040, 10570]


def write_raw(dest: Path, *, preview: bytes | None, orientation: int = 1, sensor: Image.Image | None = None,
              dng: bool = True, thumb_size: tuple[int, int] = (160, 106), via_interchange: bool = False) -> Path:
    """A TIFF-based RAW: a DNG (``dng``) or a NEF-like file (no DNGVersion).

    Laid out as cameras do: the header, IFD0 (an uncompressed RGB thumbnail's tags,
    the camera's tags, the orientation), the SubIFDs, then the image data. SubIFDs hold
    the sensor data (``sensor``'s Bayer mosaic, stored as the sensor saw it: the
    orientation is in IFD0) and the JPEG ``preview``, as a Compression 7 strip (DNG) or
    through JPEGInterchangeFormat (``via_interchange``, as NEF does). The preview bytes
    are written as given: no EXIF of their own unless they carry one.
    """
    sensor = sensor if sensor is not None else upright_source(SOURCE).resize((256, 160))
    width, height = sensor.size
    thumb = sensor.convert("RGB").resize(thumb_size).tobytes()
    mosaic = _bayer(sensor)
    blobs: list[bytes] = [thumb, mosaic] + ([preview] if preview else [])
    tw, th = thumb_size

    def directories(offsets: list[int], sub_offsets: list[int]) -> list[dict[int, tuple[int, object]]]:
        ifd0 = {
            0x00FE: (LONG, [1]), 0x0100: (LONG, [tw]), 0x0101: (LONG, [th]), 0x0102: (SHORT, [8, 8, 8]),
            0x0103: (SHORT, [1]), 0x0106: (SHORT, [2]), 0x010F: (ASCII, "Lumina"),
            0x0110: (ASCII, "Test Camera"), 0x0111: (LONG, [offsets[0]]), 0x0112: (SHORT, [orientation]),
            0x0115: (SHORT, [3]), 0x0116: (LONG, [th]), 0x0117: (LONG, [len(thumb)]),
            0x0132: (ASCII, "2021:03:14 10:42:07"), 0x014A: (LONG, sub_offsets),
        }
        if dng:
            ifd0 |= {0xC612: (BYTE, [1, 4, 0, 0]), 0xC614: (ASCII, "Lumina Test Camera"),
                     0xC621: (SRATIONAL, [v for m in _XYZ_TO_SRGB for v in (m, 10000)]),
                     0xC628: (RATIONAL, [1, 1, 1, 1, 1, 1]), 0xC65A: (SHORT, [21])}
        raw_ifd = {
            0x00FE: (LONG, [0]), 0x0100: (LONG, [width]), 0x0101: (LONG, [height]),
            0x0102: (SHORT, [16]), 0x0103: (SHORT, [1]), 0x0106: (SHORT, [32803]),
            0x0111: (LONG, [offsets[1]]), 0x0115: (SHORT, [1]), 0x0116: (LONG, [height]),
            0x0117: (LONG, [len(mosaic)]), 0x011C: (SHORT, [1]),
            0x828D: (SHORT, [2, 2]), 0x828E: (BYTE, [0, 1, 1, 2]),
            0xC61A: (LONG, [0]), 0xC61D: (LONG, [65535]),
        }
        out = [ifd0, raw_ifd]
        if preview:
            pw, ph = Image.open(io.BytesIO(preview)).size
            if via_interchange:
                out.append({0x00FE: (LONG, [1]), 0x0103: (SHORT, [6]),
                            0x0201: (LONG, [offsets[2]]), 0x0202: (LONG, [len(preview)])})
            else:
                out.append({
                    0x00FE: (LONG, [1]), 0x0100: (LONG, [pw]), 0x0101: (LONG, [ph]),
                    0x0102: (SHORT, [8, 8, 8]), 0x0103: (SHORT, [7]), 0x0106: (SHORT, [6]),
                    0x0111: (LONG, [offsets[2]]), 0x0115: (SHORT, [3]), 0x0116: (LONG, [ph]),
                    0x0117: (LONG, [len(preview)]), 0x011C: (SHORT, [1]),
                })
        return out

    # Two passes: the directories' sizes do not depend on the offsets they hold.
    zeros = [0] * len(blobs)
    sizes = [len(_ifd_bytes(d, 0)) for d in directories(zeros, [0] * (len(blobs) - 1))]
    ifd_at = [8 + sum(sizes[:i]) for i in range(len(sizes))]
    offsets, pos = [], 8 + sum(sizes)
    for blob in blobs:
        offsets.append(pos)
        pos += len(blob) + (len(blob) & 1)
    head = b"".join(_ifd_bytes(d, at) for d, at in zip(directories(offsets, ifd_at[1:]), ifd_at))
    body = b"".join(blob + b"\0" * (len(blob) & 1) for blob in blobs)
    dest.write_bytes(struct.pack("<2sHI", b"II", 42, 8) + head + body)
    return dest


def jpeg_of(im: Image.Image, quality: int = 90, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def stored(im: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores for an upright ``im`` shot at ``orientation``."""
    step = _STORE[orientation]
    return im.transpose(step) if step is not None else im


def codes(path: Path) -> np.ndarray:
    return hash_gray(decode(path).gray)


# -- the preview is found and hashed like the same JPEG alone ------------------------------

@pytest.mark.parametrize("orientation", [1, 6, 8, 3])
def test_dng_preview_hashes_as_the_same_jpeg_saved_alone(tmp_path: Path, orientation: int) -> None:
    upright = upright_source(SOURCE).resize((1200, 750), Image.Resampling.LANCZOS)
    preview = jpeg_of(stored(upright, orientation))  # no EXIF: the DNG's IFD0 has the orientation
    dng = write_raw(tmp_path / "IMG_0001.dng", preview=preview, orientation=orientation)
    alone = tmp_path / "IMG_0001.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    alone.write_bytes(jpeg_of(stored(upright, orientation), exif=exif) if orientation != 1 else preview)
    photo = decode(dng)
    assert photo.format == "DNG" and photo.orientation == orientation
    assert (photo.width, photo.height) == (1200, 750)  # displayed upright
    assert photo.exif.make == "Lumina" and photo.exif.model == "Test Camera"
    assert list(hash_gray(photo.gray)) == list(codes(alone))
    assert list(hash_gray(photo.gray)) == list(hash_gray(decode(alone).gray))


def test_nef_layout_takes_the_largest_jpeg_through_jpeg_interchange_format(tmp_path: Path) -> None:
    upright = upright_source(SOURCE).resize((1600, 1000), Image.Resampling.LANCZOS)
    preview = jpeg_of(upright, quality=95)
    nef = write_raw(tmp_path / "DSC_0001.NEF", preview=preview, dng=False, via_interchange=True)
    alone = tmp_path / "alone.jpg"
    alone.write_bytes(preview)
    photo = decode(nef)
    assert photo.format == "RAW" and (photo.width, photo.height) == (1600, 1000)
    assert list(hash_gray(photo.gray)) == list(codes(alone))
    data = nef.read_bytes()
    assert raw.jpeg_bytes_for(nef, data) == preview
    found = raw.raw_preview(nef, data)
    assert found is not None and (found.width, found.height, found.orientation) == (1600, 1000, 1)
    assert found.source == "SubIFD1 JPEGInterchangeFormat"


def test_jpeg_bytes_for_gives_the_preview_and_the_raws_orientation(tmp_path: Path) -> None:
    upright = upright_source(SOURCE).resize((1200, 750), Image.Resampling.LANCZOS)
    preview = jpeg_of(stored(upright, 6))
    dng = write_raw(tmp_path / "a.dng", preview=preview, orientation=6)
    data = dng.read_bytes()
    assert raw.jpeg_bytes_for(dng, data) == preview
    found = raw.raw_preview(dng, data)
    assert found is not None and found.orientation == 6 and (found.width, found.height) == (750, 1200)
    facts = probe(dng)  # the facts the GPU path joins to its codes: the preview's, turned by the RAW
    assert (facts.width, facts.height, facts.orientation, facts.format) == (1200, 750, 6, "DNG")
    jpeg = tmp_path / "plain.jpg"
    jpeg.write_bytes(preview)
    assert raw.jpeg_bytes_for(jpeg, jpeg.read_bytes()) is None  # not a RAW
    small = write_raw(tmp_path / "small.dng", preview=jpeg_of(upright.resize((640, 400))))
    assert raw.jpeg_bytes_for(small, small.read_bytes()) is None  # too small, whoever looks


def test_a_tiff_named_dng_without_dng_version_is_read_by_pillow(make_photo) -> None:
    path = make_photo("x.tif", size=(300, 200))
    dng = path.with_suffix(".dng")
    path.rename(dng)
    assert raw.identify(dng, dng.read_bytes()) is None
    assert decode(dng).format == "TIFF"


# -- too small, truncated, corrupt ---------------------------------------------------------

def test_too_small_preview_without_rawpy_is_a_clear_error(tmp_path: Path) -> None:
    upright = upright_source(SOURCE)
    small = write_raw(tmp_path / "small.dng", preview=jpeg_of(upright.resize((640, 400))))
    nef = write_raw(tmp_path / "none.nef", preview=None, dng=False)
    good = write_raw(tmp_path / "good.dng", preview=jpeg_of(upright.resize((1200, 750))))
    out = hash_without_module("rawpy", small, nef, good)
    assert [f["path"] for f in out["files"]] == [str(good)]  # a usable preview needs no rawpy
    errors = {e["path"]: e["error"] for e in out["errors"]}
    assert "640x400" in errors[str(small)] and "smaller than 1024 px" in errors[str(small)]
    assert "no embedded JPEG preview" in errors[str(nef)]
    for message in errors.values():
        assert "rawpy" in message and "lumina-plugin[raw]" in message and "\n" not in message


def test_too_small_preview_is_decoded_by_rawpy_upright(tmp_path: Path) -> None:
    pytest.importorskip("rawpy")
    upright = upright_source(SOURCE).resize((640, 400), Image.Resampling.LANCZOS)
    dng = write_raw(tmp_path / "r.dng", preview=jpeg_of(upright.resize((320, 200))),
                    orientation=6, sensor=stored(upright, 6))
    photo = decode(dng)
    assert photo.format == "DNG" and photo.orientation == 6
    assert (photo.width, photo.height) == (320, 200)  # half size, turned upright by LibRaw
    alone = tmp_path / "alone.jpg"
    alone.write_bytes(jpeg_of(upright.resize((320, 200))))
    dist = [hamming(a, b) for a, b in zip(hash_gray(photo.gray), codes(alone))]
    assert all(d <= r for d, r in zip(dist, Config().thresholds.radii())), dist
    with pytest.raises(PhotoError, match="larger than max_pixels"):  # checked before LibRaw decodes
        decode(dng, max_pixels=10_000)


def test_truncated_and_corrupt_raws_are_error_records_never_crashes(tmp_path: Path) -> None:
    upright = upright_source(SOURCE)
    preview = jpeg_of(upright.resize((1200, 750)))
    whole = write_raw(tmp_path / "whole.dng", preview=preview).read_bytes()
    at = whole.find(preview)  # layout: header, directories, thumbnail, mosaic, preview
    mosaic_at = at - 256 * 160 * 2
    cases = {
        "header.nef": whole[:6],
        "mid_ifd.dng": whole[:60],
        "mid_mosaic.dng": whole[:mosaic_at + 1000],
        "mid_preview.dng": whole[:at + len(preview) // 2],
        "garbage.cr2": bytes(range(256)) * 40,
        "loop.nef": struct.pack("<2sHI", b"II", 42, 8) + struct.pack("<H", 1)
                    + struct.pack("<HHII", 0x014A, LONG, 1, 8) + struct.pack("<I", 8),
        "huge_count.arw": struct.pack("<2sHI", b"II", 42, 8) + struct.pack("<H", 2)
                          + struct.pack("<HHII", 0x0201, LONG, 1, 0x7FFFFFF0)
                          + struct.pack("<HHII", 0x0202, LONG, 0xFFFFFFFF, 26) + b"\0" * 8,
    }
    # LibRaw, when installed, may make something of a file whose sensor data survived.
    may_decode = {"mid_preview.dng", "mid_mosaic.dng"} if raw._import_rawpy() is not None else set()
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        try:
            photo = decode(path)
        except PhotoError as exc:
            assert exc.path == str(path) and "\n" not in str(exc)
        else:
            assert name in may_decode and photo.format == "DNG", name
    out = hash_without_module("rawpy", *(tmp_path / name for name in cases))
    assert out["files"] == [] and len(out["errors"]) == len(cases)  # without rawpy: all errors
    assert all(e["error"] and "\n" not in e["error"] for e in out["errors"])
    errors = {Path(e["path"]).name: e["error"] for e in out["errors"]}
    assert "truncated" in errors["mid_preview.dng"] and "lumina-plugin[raw]" in errors["mid_preview.dng"]


# -- ExifTool's real layouts ---------------------------------------------------------------

def test_real_camera_layouts_are_recognised() -> None:
    def container(name: str):  # type: ignore[no-untyped-def]
        path = DATA / name
        return raw.identify(path, path.read_bytes())

    cr2, nef, dng = container("CanonRaw.cr2"), container("Nikon.nef"), container("DNG.dng")
    assert (cr2.name, nef.name, dng.name, dng.format) == ("CR2", "NEF", "DNG", "DNG")
    assert "IFD0 JPEG strip" in [s for _, _, s in cr2._spans]  # CR2's full-size JPEG
    assert "IFD1 JPEGInterchangeFormat" in [s for _, _, s in cr2._spans]  # its thumbnail
    assert "SubIFD0 JPEGInterchangeFormat" in [s for _, _, s in nef._spans]  # NEF's JpgFromRaw
    raf, rw2 = container("FujiFilm.raf"), container("Panasonic.rw2")
    assert raf.name == "RAF" and (raf.best_jpeg().width, raf.best_jpeg().source) == (8, "RAF header")
    assert rw2.name == "RW2" and rw2.best_jpeg().source == "RW2 JpgFromRaw"
    cr3 = container("CanonRaw.cr3")
    assert cr3.name == "CR3" and [s for _, _, s in cr3._spans] == ["CR3 track 1"]
    assert (cr3.exif.make, cr3.exif.model, cr3.orientation) == ("Canon", "Canon EOS M50", 1)
    assert cr3.exif.taken_at is not None and cr3.exif.taken_at.year == 2018


def test_real_layouts_with_placeholder_previews_without_rawpy() -> None:
    files = sorted(p for p in DATA.iterdir() if p.suffix.lower() != ".md")
    out = hash_without_module("rawpy", *files)
    assert out["files"] == []
    errors = {Path(e["path"]).name: e["error"] for e in out["errors"]}
    assert set(errors) == {p.name for p in files}
    assert "8x8" in errors["FujiFilm.raf"] and "smaller than 1024 px" in errors["FujiFilm.raf"]
    assert errors["CanonRaw.cr3"].startswith("CR3 RAW: no embedded JPEG preview found")
    assert all("lumina-plugin[raw]" in e for e in errors.values())


def test_tiff_walker_survives_a_directory_loop() -> None:
    data = (struct.pack("<2sHI", b"II", 42, 8) + struct.pack("<H", 1)
            + struct.pack("<HHII", 0x014A, LONG, 1, 8) + struct.pack("<I", 8))
    assert len(TiffFile(data).ifds) == 1


# -- RAW+JPEG pairs of any RAW format --------------------------------------------------------

def test_nef_and_its_jpeg_are_a_raw_jpeg_pair(tmp_path: Path) -> None:
    from lumina_plugin.engine import Engine

    lib = tmp_path / "lib"
    lib.mkdir()
    upright = upright_source(SAMPLE_DIR / "2019/2019-04-27/DSCF0815.jpg")
    write_raw(lib / "DSC_0815.NEF", preview=jpeg_of(upright.resize((1200, 800))), dng=False)
    write_photo(lib / "DSC_0815.JPG", source=upright, size=(1200, 800), make="Lumina",
                model="Test Camera", taken_at="2021:03:14 10:42:07")
    config = Config().replace(extensions=PHOTO_EXTENSIONS)
    with Engine(tmp_path / "c.db", config=config) as engine:
        report = engine.find_duplicates([lib]).as_json()
    members = {Path(m["path"]).name: m for g in report["groups"] for m in g["members"]}
    assert report["errors"] == []
    assert members["DSC_0815.JPG"]["relation"] == "raw+jpeg", members
