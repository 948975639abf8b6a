"""Our four hashes are imagehash's, bit for bit; only the EXIF orientation rule differs.

Reference: imagehash 4.3 (``average_hash``, ``dhash``, ``phash``, ``whash(image_scale=64)``)
run on the same real photos at test time; nothing is typed in by hand.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps

from lumina_plugin.config import Config
from lumina_plugin.engine import record_for
from lumina_plugin.hashing.codes import bits_to_code, code_to_hex, codes_to_bytes, hamming, hex_to_code
from lumina_plugin.hashing.cpu import HASHERS, WHASH_IMAGE_SCALE, hash_gray
from lumina_plugin.hashing.resize import thumbnails
from lumina_plugin.hashing.thumb_codes import codes_from_thumbnails, codes_of_one, hash_pixels, hash_thumbnails
from lumina_plugin.model import ALGORITHMS, CODE_WORDS

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_PIXELS = Config().max_pixels


def _orientation(path: Path) -> int:
    with Image.open(path) as im:
        return int(im.getexif().get(0x0112, 1))


ALL_SAMPLES = sorted(p for p in SAMPLE_DIR.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
UPRIGHT = [p for p in ALL_SAMPLES if _orientation(p) == 1]
ROTATED = [p for p in ALL_SAMPLES if _orientation(p) != 1]
#: The EXIF-rotated copies in the sample library and the upright photo each was made from.
ROTATED_ORIGINALS = {
    "backup/sdcard/DCIM/100CANON/IMG_3307.JPG": "2021/2021-12-24/IMG_3307.jpg",
    "backup/sdcard/DCIM/100CANON/IMG_5521.JPG": "2022/2022-02-05/IMG_5521.jpg",
}
GOLDEN = "2015/2015-10-29/IMG_8812.jpg"


def rel(p: Path) -> str:
    return p.relative_to(SAMPLE_DIR).as_posix()


def imagehash_hex(image: Image.Image) -> list[str]:
    """imagehash's four hex strings, in ALGORITHMS order (wHash at our fixed 64 px scale)."""
    return [
        str(imagehash.average_hash(image)),
        str(imagehash.dhash(image)),
        str(imagehash.phash(image)),
        str(imagehash.whash(image, image_scale=WHASH_IMAGE_SCALE)),
    ]


def ours_hex(codes: np.ndarray) -> list[str]:
    return [code_to_hex(c) for c in codes]


def test_sample_library_has_what_these_tests_need() -> None:
    assert ALGORITHMS == ("ahash", "dhash", "phash", "whash")
    formats = set()
    for p in UPRIGHT:
        with Image.open(p) as im:
            formats.add(im.format)
    assert {"JPEG", "PNG", "WEBP"} <= formats
    assert len(UPRIGHT) >= 30
    assert sorted(rel(p) for p in ROTATED) == sorted(ROTATED_ORIGINALS)


# -- hash_gray == imagehash ---------------------------------------------------------------

@pytest.mark.parametrize("path", UPRIGHT, ids=rel)
def test_hash_gray_equals_imagehash(path: Path) -> None:
    with Image.open(path) as im:
        im.load()
        expected = imagehash_hex(im)  # imagehash converts to "L" itself
        assert ours_hex(hash_gray(im.convert("L"))) == expected
        # hash_gray converts a colour image itself, the same way
        assert ours_hex(hash_gray(im)) == expected


def test_hash_gray_equals_imagehash_on_camera_sized_photo(big_photo: Path) -> None:
    with Image.open(big_photo) as im:
        im.load()
        assert im.size == (3000, 2000)
        assert ours_hex(hash_gray(im.convert("L"))) == imagehash_hex(im)


@pytest.mark.parametrize("size", [(64, 64), (9, 8), (8, 8), (32, 32), (64, 300), (300, 64), (1, 1), (5, 700),
                                  (120, 900), (900, 120), (257, 513), (1920, 1080), (1080, 1920)])
def test_hash_gray_equals_imagehash_at_every_awkward_size(size: tuple[int, int]) -> None:
    """hash_gray makes the four thumbnails in one pass (hashing/resize.py), not with
    Pillow: sizes equal to a thumbnail's (Pillow skips that pass), tiny ones (upscaled),
    tall ones (Pillow 13 runs the columns first) and row blocks cut mid-image."""
    with Image.open(UPRIGHT[0]) as im:
        photo = im.convert("L").resize(size, Image.Resampling.BICUBIC)
    noise = np.random.default_rng(sum(size)).integers(-6, 7, (size[1], size[0]))
    gray = Image.fromarray(np.clip(np.asarray(photo, dtype=np.int16) + noise, 0, 255).astype(np.uint8))
    # Exactly the codes of Pillow's four resizes...
    assert list(hash_gray(gray)) == [h(gray) for h in HASHERS]
    if size != (1, 1):  # ...and imagehash's (a flat image's pHash rests on rounding noise)
        assert ours_hex(hash_gray(gray)) == imagehash_hex(gray)


def _tie_prone(kind: str) -> np.ndarray:
    """Images whose pHash or wHash values sit on their median: flat, two-tone, blocky."""
    if kind == "flat":
        return np.full((200, 300), 128, np.uint8)
    if kind == "halves":
        return np.repeat(np.array([[40] * 150 + [220] * 150], np.uint8), 200, axis=0)
    if kind == "blocks":  # two grey levels in n x n blocks: many block sums equal
        rng = np.random.default_rng(3)
        n, levels = int(rng.integers(2, 9)), rng.integers(0, 256, size=2)
        cells = rng.integers(0, 2, (n, n)) * (int(levels[0]) - int(levels[1])) + int(levels[1])
        return np.kron(cells, np.ones((64 // n * 3, 64 // n * 3))).clip(0, 255).astype(np.uint8)
    return np.tile(np.arange(256, dtype=np.uint8), (64, 2))  # a ramp


@pytest.mark.parametrize("kind", ["flat", "halves", "blocks", "ramp"])
def test_the_fast_codes_are_the_reference_codes_even_on_ties(kind: str) -> None:
    """Records get their classic codes from thumb_codes.hash_pixels (vectorised, 0.1 ms), not
    from hash_gray's four functions (1.3 ms); where a value sits on the median the fast path
    must hand the decision to the reference, so the two agree on these images too."""
    pixels = _tie_prone(kind)
    _, ambiguous = codes_from_thumbnails(np, thumbnails(pixels)[None])
    assert ambiguous.any()  # the case this is about: a tie the reference must settle
    assert list(hash_pixels(pixels)) == list(hash_gray(Image.fromarray(pixels)))
    for path in UPRIGHT[:4]:
        with Image.open(path) as im:
            gray = im.convert("L")
        assert list(hash_pixels(np.asarray(gray))) == list(hash_gray(gray))


@pytest.mark.parametrize("kind", ["flat", "halves", "blocks", "ramp", "noise"])
def test_one_photos_codes_equal_the_batch_codes(kind: str) -> None:
    """codes_of_one, the single-photo path records take, gives the bits of hash_thumbnails
    (the batch math the GPU runs, itself checked against hashing/cpu.py), ties included."""
    rng = np.random.default_rng(8)
    pixels = rng.integers(0, 256, (177, 243), dtype=np.uint8) if kind == "noise" else _tie_prone(kind)
    grays = [pixels, pixels[:9, :40], pixels[:, :8].copy()]
    for path in UPRIGHT[:6]:
        with Image.open(path) as im:
            grays.append(np.asarray(im.convert("L")))
    for g in grays:
        thumbs = thumbnails(g)
        got = codes_of_one(thumbs)
        assert got.dtype == np.uint64 and list(got) == list(hash_thumbnails(thumbs[None])[0])


# -- record_for (decode + orientation + hashes) -------------------------------------------

@pytest.mark.parametrize("path", UPRIGHT, ids=rel)
def test_record_codes_equal_imagehash_on_upright_photos(path: Path) -> None:
    rec = record_for(str(path), MAX_PIXELS)
    assert rec.orientation == 1
    with Image.open(path) as im:
        assert ours_hex(rec.codes[:4]) == imagehash_hex(im)


@pytest.mark.parametrize("rotated", sorted(ROTATED_ORIGINALS))
def test_exif_rotated_sample_copy_matches_its_original(rotated: str) -> None:
    path = SAMPLE_DIR / rotated
    rec = record_for(str(path), MAX_PIXELS)
    original = record_for(str(SAMPLE_DIR / ROTATED_ORIGINALS[rotated]), MAX_PIXELS)
    with Image.open(path) as im:
        im.load()
        assert rec.orientation in (6, 8)
        # our codes are imagehash's codes of the picture as a viewer shows it...
        assert ours_hex(rec.codes[:4]) == imagehash_hex(ImageOps.exif_transpose(im))
        # ...so the copy rotated by its tag has exactly the original's codes,
        np.testing.assert_array_equal(rec.codes, original.codes)
        assert (rec.width, rec.height) == (original.width, original.height)
        # while plain imagehash, which ignores the tag, sees a different picture.
        plain = imagehash_hex(im)
        assert all(
            hamming(hex_to_code(p), c) > Config().thresholds.veto // 2
            for p, c in zip(plain, rec.codes[:4])
        ), "imagehash on the stored (sideways) pixels should be far from the upright codes"


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_orientation_tag_gives_the_upright_codes(make_photo, orientation: int) -> None:
    """Lossless (PNG) copies stored in each of the 7 transposed layouts, tagged so that a
    viewer shows the original: identical codes to the untagged original."""
    original = make_photo("upright.png", size=(320, 200))
    tagged = make_photo(f"tagged_{orientation}.png", size=(320, 200), orientation=orientation)
    rec, ref = record_for(str(tagged), MAX_PIXELS), record_for(str(original), MAX_PIXELS)
    assert rec.orientation == orientation
    np.testing.assert_array_equal(rec.codes, ref.codes)
    with Image.open(tagged) as im:
        im.load()
        assert ours_hex(rec.codes[:4]) == imagehash_hex(ImageOps.exif_transpose(im))
        assert imagehash_hex(im) != ours_hex(rec.codes[:4])  # the deliberate difference


def test_record_codes_equal_imagehash_on_camera_sized_photo(big_photo: Path) -> None:
    rec = record_for(str(big_photo), MAX_PIXELS)
    assert (rec.width, rec.height) == (3000, 2000)
    with Image.open(big_photo) as im:
        assert ours_hex(rec.codes[:4]) == imagehash_hex(im)


# -- golden values and the storage format -------------------------------------------------

def test_golden_photo_codes_in_every_representation(tmp_path: Path) -> None:
    """As imagehash's test_hash_is_constant, with imagehash itself as the source of the
    known values: hex string, bytes and bit array of one sample photo, read through a
    copy at another path (codes depend on the pixels only)."""
    src = SAMPLE_DIR / GOLDEN
    with Image.open(src) as im:
        im.load()
        known = [
            imagehash.average_hash(im), imagehash.dhash(im), imagehash.phash(im),
            imagehash.whash(im, image_scale=64),
        ]
    known_hex = [str(h) for h in known]
    assert all(len(h) == 16 for h in known_hex) and len(set(known_hex)) == 4

    copy = tmp_path / "renamed copy.JPG"
    shutil.copyfile(src, copy)
    words = record_for(str(copy), MAX_PIXELS).codes
    assert words.dtype == np.uint64 and words.shape == (CODE_WORDS,)  # the classic four, then the geometry
    codes = words[:4]
    assert ours_hex(codes) == known_hex
    assert [hex_to_code(h) for h in known_hex] == [int(c) for c in codes]
    rows = codes_to_bytes(codes)
    assert [row.tobytes() for row in rows] == [bytes.fromhex(h) for h in known_hex]
    for row, h in zip(rows, known):
        np.testing.assert_array_equal(np.unpackbits(row).astype(bool), h.hash.flatten())
    # and nothing about the file but its pixels matters
    np.testing.assert_array_equal(words, record_for(str(src), MAX_PIXELS).codes)


def test_hamming_equals_imagehash_distance_on_sample_pairs() -> None:
    """The distances grouping thresholds are applied to are imagehash's ``h1 - h2``."""
    picks = [SAMPLE_DIR / p for p in (
        "2019/2019-04-27/DSCF0815.jpg", "exports/web/DSCF0815_q60.jpg", "exports/DSCF0815_crop.jpg",
        "2019/2019-04-28/DSCF0902.jpg", "exports/DSCF0902_flipped.jpg", "exports/web/IMG_0412.webp",
    )]
    theirs, ours = {}, {}
    for p in picks:
        with Image.open(p) as im:
            im.load()
            theirs[p] = [imagehash.average_hash(im), imagehash.dhash(im), imagehash.phash(im),
                         imagehash.whash(im, image_scale=64)]
        ours[p] = hash_gray(im.convert("L"))
    for a, b in itertools.combinations(picks, 2):
        assert [hamming(x, y) for x, y in zip(ours[a], ours[b])] == \
            [int(x - y) for x, y in zip(theirs[a], theirs[b])]


# -- codes.py round trips (property based) -------------------------------------------------

codes64 = st.integers(min_value=0, max_value=2**64 - 1)


@given(st.lists(st.booleans(), min_size=64, max_size=64))
def test_bits_to_code_first_bit_is_msb(bits: list[bool]) -> None:
    code = bits_to_code(np.array(bits).reshape(8, 8))
    assert code == int("".join("1" if b else "0" for b in bits), 2)
    # imagehash's hex of the same bit array
    assert code_to_hex(code) == str(imagehash.ImageHash(np.array(bits).reshape(8, 8)))


@given(codes64)
def test_hex_round_trip(code: int) -> None:
    text = code_to_hex(code)
    assert len(text) == 16 and text == text.lower()
    assert hex_to_code(text) == code
    assert hex_to_code(text.upper()) == code


@given(st.lists(codes64, min_size=0, max_size=20))
def test_codes_to_bytes_is_big_endian_imagehash_bytes(codes: list[int]) -> None:
    arr = np.array(codes, dtype=np.uint64)
    out = codes_to_bytes(arr)
    assert out.dtype == np.uint8 and out.shape == (len(codes), 8) and out.flags.c_contiguous
    assert [row.tobytes() for row in out] == [bytes.fromhex(code_to_hex(c)) for c in codes]
    assert [row.tobytes() for row in out] == [c.to_bytes(8, "big") for c in codes]


@given(codes64, codes64)
def test_hamming_counts_differing_bits(a: int, b: int) -> None:
    assert hamming(a, b) == bin(a ^ b).count("1") == hamming(np.uint64(b), np.uint64(a))


@pytest.mark.parametrize("bad", ["", "abc", "0" * 15, "0" * 17, "zzzzzzzzzzzzzzzz"])
def test_hex_to_code_rejects_wrong_length_or_non_hex(bad: str) -> None:
    with pytest.raises(ValueError):
        hex_to_code(bad)


@pytest.mark.parametrize("bad", ["-00000000000000f", "0x0000000000000f", "0000_0000_0000_f", " 00000000000000f"])
def test_hex_to_code_rejects_what_int_parsing_tolerates(bad: str) -> None:
    """int(text, 16) accepts these 16-character strings (sign, 0x, underscores, spaces);
    a hash read back from the catalog must be exactly 16 hex digits."""
    with pytest.raises(ValueError):
        hex_to_code(bad)


def test_bits_to_code_rejects_wrong_bit_count() -> None:
    with pytest.raises(ValueError):
        bits_to_code(np.zeros(63, dtype=bool))
