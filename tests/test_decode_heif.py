"""HEIC/HEIF through pillow-heif, AVIF through Pillow, and a clear error when neither can.

Real files on disk: HEICs written here by pillow-heif from sample photos, and one HEIC
committed under tests/data/heif/ (see SOURCES.md) so that the "pillow-heif missing"
test runs where pillow-heif is not installed. "Missing" is a subprocess whose
``sys.modules["pillow_heif"]`` is None: its import fails as it does without the package.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLE_DIR, hash_without_module, write_photo
from PIL import Image, features

from lumina_plugin.config import Config
from lumina_plugin.decode import heif
from lumina_plugin.decode.photo import PhotoError, decode
from lumina_plugin.hashing.codes import hamming
from lumina_plugin.hashing.cpu import hash_gray

HEIC = Path(__file__).resolve().parent / "data" / "heif" / "IMG_0412.heic"
HEIC_SOURCE = SAMPLE_DIR / "2021/2021-03-14/IMG_0412.jpg"

#: A HEIC (or AVIF) re-encoding of a JPEG moves each 64-bit hash by a few bits at most.
FEW_BITS = 4


def distances(a: Path, b: Path) -> list[int]:
    return [hamming(x, y) for x, y in zip(hash_gray(decode(a).gray), hash_gray(decode(b).gray))]


@pytest.mark.parametrize("orientation", [1, 6])
def test_heic_round_trip_hashes_within_a_few_bits_of_the_jpeg(tmp_path: Path, orientation: int) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    jpeg = write_photo(tmp_path / "IMG_1.jpg", size=(640, 400), orientation=orientation,
                       make="Apple", model="iPhone 12", taken_at="2022:06:11 08:15:22")
    pillow_heif.register_heif_opener()
    heic = tmp_path / "IMG_1.heic"
    with Image.open(jpeg) as im:
        im.save(heic, quality=85)  # pillow-heif keeps the EXIF; the orientation becomes HEIF's own
    photo = decode(heic)
    assert photo.format == "HEIF" and (photo.width, photo.height) == (640, 400)
    assert photo.exif.make == "Apple" and photo.exif.taken_at is not None
    dist = distances(heic, jpeg)
    assert max(dist) <= FEW_BITS, dist


def test_committed_heic_decodes_like_its_source_jpeg() -> None:
    pytest.importorskip("pillow_heif")
    photo = decode(HEIC)
    assert (photo.format, photo.width, photo.height) == ("HEIF", 600, 400)
    assert photo.exif.model == "Canon EOS 80D"
    dist = distances(HEIC, HEIC_SOURCE)
    assert max(dist) <= FEW_BITS, dist


def test_missing_pillow_heif_is_a_clear_error_naming_the_file_and_the_extra(tmp_path: Path) -> None:
    jpeg = write_photo(tmp_path / "ok.jpg", size=(300, 200))
    out = hash_without_module("pillow_heif", HEIC, jpeg)
    assert [f["path"] for f in out["files"]] == [str(jpeg)]  # the rest of the run goes on
    [error] = out["errors"]
    assert error["path"] == str(HEIC)
    assert "pillow-heif" in error["error"] and "lumina-plugin[heif]" in error["error"]
    assert "\n" not in error["error"]


def test_avif_is_read_by_pillow_itself(tmp_path: Path) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow is built without AVIF")
    jpeg = write_photo(tmp_path / "a.jpg", size=(640, 400))
    avif = tmp_path / "a.avif"
    with Image.open(jpeg) as im:
        im.save(avif, quality=85)
    assert heif.heif_kind(avif.read_bytes()) == "AVIF"
    photo = decode(avif)
    assert photo.format == "AVIF" and (photo.width, photo.height) == (640, 400)
    dist = distances(avif, jpeg)
    assert max(dist) <= FEW_BITS, dist
    out = hash_without_module("pillow_heif", avif)  # AVIF does not need pillow-heif
    assert out["errors"] == [] and len(out["files"]) == 1


def test_format_is_told_by_the_ftyp_box_not_the_extension(tmp_path: Path) -> None:
    assert heif.heif_kind(HEIC.read_bytes()) == "HEIF"
    assert heif.heif_kind(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif") == "AVIF"
    assert heif.heif_kind(b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isommp41") is None  # a video
    assert heif.heif_kind((SAMPLE_DIR / "2015/2015-10-29/IMG_8812.jpg").read_bytes()) is None
    renamed = tmp_path / "IMG_0412.jpg"  # a HEIC under a JPEG name is still read as HEIC
    renamed.write_bytes(HEIC.read_bytes())
    if _has_pillow_heif():
        assert decode(renamed).format == "HEIF"
    else:
        with pytest.raises(PhotoError, match="pillow-heif"):
            decode(renamed)


def test_hashes_of_heic_link_it_to_its_jpeg(tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    dist = distances(HEIC, HEIC_SOURCE)
    radii = Config().thresholds.radii()
    assert sum(d <= r for d, r in zip(dist, radii)) >= Config().thresholds.min_agreeing


def _has_pillow_heif() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True
