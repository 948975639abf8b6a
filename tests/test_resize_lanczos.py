"""The CPU twin of the GPU kernels: Pillow's LANCZOS, gray conversion and EXIF orientation
redone in NumPy fixed point, bit for bit, and the batch hash math of hashing/thumb_codes.py
(the very code the GPU runs, here with NumPy) equal to hashing/cpu.py, which is
imagehash's. Real photos only; no GPU needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lumina_plugin.hashing import resize
from lumina_plugin.hashing.cpu import hash_gray
from lumina_plugin.hashing.thumb_codes import codes_from_thumbnails, hash_thumbnails
from lumina_plugin.ingest.gpu_worker import _Job, split_batch
from lumina_plugin.ingest.records import record_for

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
PHOTOS = sorted(p for p in SAMPLE_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
LANCZOS = Image.Resampling.LANCZOS


def rel(p: Path) -> str:
    return p.relative_to(SAMPLE_DIR).as_posix()


def gray_of(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("L")


# -- LANCZOS ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PHOTOS, ids=rel)
def test_thumbnails_equal_pillow_on_every_sample_photo(path: Path) -> None:
    gray = gray_of(path)
    pixels = np.asarray(gray)
    for size in resize.THUMB_SIZES:
        np.testing.assert_array_equal(resize.resize(pixels, size), np.asarray(gray.resize(size, LANCZOS)))


def test_thumbnails_equal_pillow_on_camera_sized_photo(big_photo: Path) -> None:
    gray = gray_of(big_photo)
    want = np.concatenate([np.asarray(gray.resize(s, LANCZOS)).ravel() for s in resize.THUMB_SIZES])
    np.testing.assert_array_equal(resize.thumbnails(np.asarray(gray)), want)


def test_thumbnails_equal_pillow_at_tile_sizes() -> None:
    """The banded row and column products (resize._row_plan, _column_plan) against Pillow's
    own four resizes, on noise and on hard black/white edges, at the sizes of small tiles
    and where a pass is skipped (a side of 8, 9, 32 or 64)."""
    rng = np.random.default_rng(11)
    sides = [1, 2, 5, 8, 9, 17, 32, 33, 63, 64, 65, 100, 160, 177, 211, 242, 300, 441, 512, 700]
    for height in sides:
        for width in sides[::-1][height % 3::3]:
            gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
            if (height + width) % 2:
                gray = np.where(gray > 127, 255, 0).astype(np.uint8)  # clamps at both ends
            image = Image.fromarray(gray)
            want = np.concatenate([np.asarray(image.resize(s, LANCZOS)).ravel() for s in resize.THUMB_SIZES])
            np.testing.assert_array_equal(resize.thumbnails(gray), want, err_msg=f"{width}x{height}")


@pytest.mark.parametrize("size", [(641, 3), (100, 800), (7, 5), (640, 17), (33, 400), (1, 1)])
def test_any_size_equals_pillow_upscaling_and_mixed(size: tuple[int, int]) -> None:
    """Up in one axis and down in the other: the pass order matters there."""
    gray = gray_of(SAMPLE_DIR / "2015/2015-10-29/IMG_8812.jpg")
    np.testing.assert_array_equal(resize.resize(np.asarray(gray), size), np.asarray(gray.resize(size, LANCZOS)))


@pytest.mark.parametrize("stored, size", [((120, 900), (8, 8)), ((120, 900), (64, 64)), ((1080, 2400), (9, 8))])
def test_tall_images_follow_the_installed_pillows_pass_order(stored: tuple[int, int], size: tuple[int, int]) -> None:
    """Pillow 13 runs the column pass first for tall images, older Pillow never does."""
    gray = gray_of(SAMPLE_DIR / "2021/2021-12-24/IMG_3307.jpg").resize(stored, LANCZOS)
    np.testing.assert_array_equal(resize.resize(np.asarray(gray), size), np.asarray(gray.resize(size, LANCZOS)))


def test_every_width_up_to_700_equals_pillow() -> None:
    """The weights for every input width a library of small scans meets, against Pillow
    itself (a 2-row image: the row pass alone), for each thumbnail width."""
    noise = np.random.default_rng(7).integers(0, 256, (2, 700), dtype=np.uint8)
    for width in range(1, 701):
        row = np.ascontiguousarray(noise[:, :width])
        image = Image.fromarray(row)
        for out, _ in resize.THUMB_SIZES:
            np.testing.assert_array_equal(resize.resize_rows(row, out), np.asarray(image.resize((out, 2), LANCZOS)),
                                          err_msg=f"width {width} -> {out}")


def _tables(sizes: range) -> list[tuple[np.ndarray, ...]]:
    # uncached: each call computes its weights with the module's current sine
    return [np.concatenate(resize.coefficients.__wrapped__(n, out)[2]) for n in sizes for out, _ in resize.THUMB_SIZES]


def test_a_fast_sine_off_in_its_last_bits_still_gives_libms_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy's vectorised sine may round differently from libm's; the weights must not."""
    sizes = range(100, 1300, 7)
    libm = _tables(sizes)
    monkeypatch.setattr(resize, "_sin", lambda x: np.sin(x) * (1 + 8e-16 * np.sign(np.cos(7 * x))))
    assert all(np.array_equal(a, b) for a, b in zip(_tables(sizes), libm, strict=True))
    # A sine far off (1e-9) moves weights: the fast sine is really what runs...
    monkeypatch.setattr(resize, "_sin", lambda x: np.sin(x) * (1 + 1e-9 * np.sign(np.cos(7 * x))))
    assert not all(np.array_equal(a, b) for a, b in zip(_tables(sizes), libm, strict=True))
    # ...and a row near a rounding boundary is computed again with libm's sine.
    monkeypatch.setattr(resize, "_NEAR", 1.0)
    assert all(np.array_equal(a, b) for a, b in zip(_tables(sizes), libm, strict=True))


def test_same_size_weights_are_the_identity() -> None:
    starts, counts, weights = resize.coefficients(64, 64)
    for j, (s, k) in enumerate(zip(starts, weights)):
        assert k[j - s] == 1 << resize.PRECISION_BITS and np.count_nonzero(k) == 1


def test_row_and_column_tables_cover_the_four_thumbnails() -> None:
    starts, counts, offsets, weights = resize.row_tables(4000)
    assert len(starts) == resize.COLUMNS == sum(w for w, _ in resize.THUMB_SIZES)
    assert offsets[-1] + counts[-1] == len(weights)
    assert (starts >= 0).all() and (starts + counts <= 4000).all()
    starts, counts, offsets, weights = resize.column_tables(3000)
    assert len(starts) == sum(h for _, h in resize.THUMB_SIZES) == 112
    # every output's weights sum to one in fixed point, give or take the rounding
    sums = np.add.reduceat(weights.astype(np.int64), offsets)
    assert np.abs(sums - (1 << resize.PRECISION_BITS)).max() < 64


# -- gray and orientation ------------------------------------------------------------------

def test_gray_formula_equals_pillows_convert() -> None:
    with Image.open(SAMPLE_DIR / "2019/2019-04-27/DSCF0815.jpg") as im:
        rgb = im.convert("RGB")
    np.testing.assert_array_equal(resize.rgb_to_gray(np.asarray(rgb)), np.asarray(rgb.convert("L")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_map_is_exif_transpose(make_photo, orientation: int) -> None:
    path = make_photo(f"o{orientation}.png", size=(37, 23), orientation=orientation)
    with Image.open(path) as im:
        im.load()
        stored = np.asarray(im.convert("RGB"))
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    uw, uh, _ = resize.orientation_map(orientation, stored.shape[1], stored.shape[0])
    assert (uh, uw) == want.shape[:2] == (23, 37)
    np.testing.assert_array_equal(resize.upright(stored, orientation), want)


# -- the batch hash math (thumbs.py with NumPy) ------------------------------------------------

def test_batch_codes_equal_cpu_codes_on_every_sample_photo() -> None:
    grays = [gray_of(p) for p in PHOTOS]
    thumbs = np.stack([resize.thumbnails(np.asarray(g)) for g in grays])
    want = np.stack([hash_gray(g) for g in grays])
    np.testing.assert_array_equal(hash_thumbnails(thumbs), want)
    codes, ambiguous = codes_from_thumbnails(np, thumbs)
    # real photos have no median ties: the batch math alone gives the codes
    assert not ambiguous.any()
    np.testing.assert_array_equal(codes, want)


@pytest.mark.parametrize("rotated", ["backup/sdcard/DCIM/100CANON/IMG_3307.JPG",
                                     "backup/sdcard/DCIM/100CANON/IMG_5521.JPG"])
def test_stored_pixels_through_the_orientation_map_give_the_records_codes(rotated: str) -> None:
    """What the GPU does (stored RGB -> upright -> gray -> thumbnails -> codes), in NumPy."""
    path = SAMPLE_DIR / rotated
    record = record_for(str(path), 250_000_000)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"))
    gray = resize.rgb_to_gray(resize.upright(stored, record.orientation))
    np.testing.assert_array_equal(hash_thumbnails(resize.thumbnails(gray)[None])[0], record.codes[:4])


@pytest.mark.parametrize("pattern", ["flat", "halves", "checker"])
def test_median_ties_are_resolved_like_the_cpu(pattern: str) -> None:
    """Flat and symmetric pictures put pHash and wHash values exactly on the median:
    those are flagged and recomputed with hashing/cpu.py, so the bits still agree."""
    pixels = np.full((96, 128), 128, np.uint8)
    if pattern == "halves":
        pixels[:, 64:] = 40
    elif pattern == "checker":
        pixels[(np.arange(96)[:, None] // 12 + np.arange(128)[None, :] // 16) % 2 == 1] = 200
    thumbs = resize.thumbnails(pixels)[None]
    _, ambiguous = codes_from_thumbnails(np, thumbs)
    assert ambiguous.any()
    np.testing.assert_array_equal(hash_thumbnails(thumbs)[0], hash_gray(Image.fromarray(pixels)))


def test_gpu_batches_are_cut_to_the_memory_share() -> None:
    jobs = [_Job(i, b"", (4000, 3000), 1, (0, 0, "")) for i in range(10)]
    parts = split_batch(jobs, budget=3 * 4000 * 3000 * 3)
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    assert [j.index for p in parts for j in p] == list(range(10))
    assert [len(p) for p in split_batch(jobs[:2], budget=1)] == [1, 1]  # one photo at least


def _pillow_loop(in_size: int, out_size: int) -> tuple[list[int], list[int], list[list[int]]]:
    """Pillow's precompute_coeffs + normalize_coeffs_8bpc (libImaging/Resample.c), a tap at
    a time, as its C loops run them: the reference for the vectorised tables."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support, ss = 3.0 * filterscale, 1.0 / filterscale
    starts, counts, weights = [], [], []
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [resize._lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:
            ww += w
        k = [w / ww for w in k] if ww != 0.0 else k
        weights.append([int(-0.5 + w * (1 << 22)) if w < 0 else int(0.5 + w * (1 << 22)) for w in k])
        starts.append(xmin)
        counts.append(xmax)
    return starts, counts, weights


SIZES = list(range(1, 130)) + sorted(np.random.default_rng(5).integers(130, 8000, 16).tolist()) + [1080, 1920, 4000]


@pytest.mark.parametrize("out_size", sorted({n for size in resize.THUMB_SIZES for n in size}))
def test_weight_tables_equal_pillows_loop_for_every_size(out_size: int) -> None:
    for in_size in SIZES:
        starts, counts, weights = resize.coefficients(in_size, out_size)
        want = _pillow_loop(in_size, out_size)
        assert (starts.tolist(), counts.tolist(), [w.tolist() for w in weights]) == want, in_size


@pytest.mark.parametrize("size", resize.THUMB_SIZES)
def test_row_and_column_passes_equal_pillow_at_many_sizes(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[0])
    w, h = size
    for n in SIZES[::3]:
        rows = rng.integers(0, 256, (h, n), dtype=np.uint8)  # the column pass is then Pillow's no-op
        np.testing.assert_array_equal(resize.resize(rows, size),
                                      np.asarray(Image.fromarray(rows).resize(size, LANCZOS)), err_msg=f"width {n}")
        cols = rng.integers(0, 256, (n, w), dtype=np.uint8)
        np.testing.assert_array_equal(resize.resize(cols, size),
                                      np.asarray(Image.fromarray(cols).resize(size, LANCZOS)), err_msg=f"height {n}")
