"""Geometry codes (lumina_plugin/hashing/geometry.py, borders.py) on real photos of sample_catalog/:
turned, bordered, captioned and aspect-cropped copies verify against their originals; mirror
images, flips, halves, heavy crops and different photos with the same border do not.

Every copy here is made with Pillow from a real photo and, where it says so, re-encoded as
JPEG, the way an editor or a phone app would; nothing is mocked.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from lumina_plugin.hashing import geometry as G
from lumina_plugin.hashing.borders import content_box

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
sys.path.insert(0, str(SAMPLE.parent / "benchmarks"))

from _corpus_edits import straighten  # noqa: E402  (turned about the centre, cropped to no blank corner)

LANDSCAPE = "2015/2015-10-29/IMG_8812.jpg"      # 640x400
PORTRAIT = "2021/2021-12-24/IMG_3307.jpg"       # 427x640
SQUARE = "2019/2019-09-08/DSCF2231.jpg"         # 512x512
THREE_TWO = "2018/2018-10-14/DSC00401.jpg"      # 640x427
PHOTOS = [LANDSCAPE, PORTRAIT, SQUARE, THREE_TWO, "2019/2019-04-27/DSCF0815.jpg", "phone/PXL_20220724_152210.jpg"]


def photo(rel: str) -> Image.Image:
    with Image.open(SAMPLE / rel) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def gray(img: Image.Image, quality: int | None = None) -> np.ndarray:
    """The decoded gray pixels, after a JPEG round trip when ``quality`` is given."""
    if quality is not None:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=quality)
        img = Image.open(io.BytesIO(buf.getvalue()))
    return np.asarray(img.convert("L"))


def words(img: Image.Image, quality: int | None = 90) -> np.ndarray:
    return G.geometry_codes(gray(img, quality))


@pytest.mark.parametrize("rel", PHOTOS)
def test_geometry_codes_pack_the_bits_of_codes_from_coefficients(rel: str) -> None:
    """geometry_codes packs its words itself (one call); they are those of the batch packer
    the GPU path runs, codes_from_coefficients, for the same coefficients: on a photo, a
    letterboxed copy (a content box inside the canvas) and a flat image (zero coefficients)."""
    from lumina_plugin.hashing.borders import coefficients, regions, working_image
    img = photo(rel)
    for pixels in (gray(img), gray(pad(img, 0, 60, 0, 60, (0, 0, 0))), np.full((300, 200), 77, np.uint8)):
        work = working_image(pixels)
        box = content_box(np, work)
        coeffs = coefficients(np, work, regions(tuple(float(x) for x in box)))
        want = G.codes_from_coefficients(np, coeffs[None])[0]
        np.testing.assert_array_equal(G.geometry_codes(pixels)[:G.GEO_WORDS - 1], want)


def verdict(a: Image.Image, b: Image.Image) -> G.Verdicts:
    return G.verify_pairs(words(a)[None], words(b)[None])


def pad(img: Image.Image, left: int, top: int, right: int, bottom: int, colour: tuple[int, int, int]) -> Image.Image:
    canvas = Image.new("RGB", (img.width + left + right, img.height + top + bottom), colour)
    canvas.paste(img, (left, top))
    return canvas


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def caption(img: Image.Image, text: str, fraction: float, top: bool, band=(255, 255, 255), ink=(0, 0, 0)) -> Image.Image:
    """A meme-style band with text added above or below the photo (the canvas grows)."""
    bh = round(img.height * fraction)
    canvas = pad(img, 0, bh if top else 0, 0, 0 if top else bh, band)
    y = bh / 2 if top else img.height + bh / 2
    ImageDraw.Draw(canvas).text((img.width / 2, y), text, fill=ink, font=font(round(bh * 0.6)), anchor="mm")
    return canvas


def centre_crop(img: Image.Image, aspect: float) -> Image.Image:
    w, h = img.size
    if w / h > aspect:
        nw = round(h * aspect)
        return img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    nh = round(w / aspect)
    return img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))


def crop(img: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.bitwise_count(np.asarray(a, np.uint64) ^ np.asarray(b, np.uint64)).sum())


# ---------------------------------------------------------------- rotations


@pytest.mark.parametrize("rel", [LANDSCAPE, PORTRAIT, SQUARE])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate_code_predicts_the_turned_pixels(rel: str, k: int) -> None:
    g = gray(photo(rel))
    upright, turned = G.geometry_codes(g), G.geometry_codes(np.ascontiguousarray(np.rot90(g, k)))
    predicted = G.rotate_code(upright, k)
    assert hamming(predicted[G.FULL:G.CENTRE], turned[G.FULL:G.CENTRE]) <= 6
    for j in (G.CENTRE, G.WIDE_W, G.SQUARE_W):
        assert hamming(predicted[j], turned[j]) <= 3
    (pt, pa), (tt, ta) = G.meta_fields(predicted), G.meta_fields(turned)
    assert np.abs(pt - tt).max() <= 2 / 256 and abs(int(pa[0]) - int(ta[0])) <= 2
    # the search keys do not change under a turn
    assert all(hamming(x, y) <= 2 for x, y in zip(G.search_keys(upright)[0], G.search_keys(turned)[0]))


def test_rotate_code_four_turns_is_identity_and_never_a_mirror() -> None:
    w = words(photo(LANDSCAPE))
    assert np.array_equal(G.rotate_code(G.rotate_code(w, 3), 1), w)
    mirrored = words(ImageOps.mirror(photo(LANDSCAPE)))
    assert min(hamming(G.rotate_code(w, k)[:4], mirrored[:4]) for k in range(4)) > 90


@pytest.mark.parametrize("rel", PHOTOS)
def test_rotated_resized_and_recoded_copies_verify(rel: str) -> None:
    img = photo(rel)
    for k, copy in ((1, img.transpose(Image.Transpose.ROTATE_90)),
                    (2, img.transpose(Image.Transpose.ROTATE_180).resize((img.width // 2, img.height // 2))),
                    (3, ImageOps.grayscale(img.transpose(Image.Transpose.ROTATE_270)))):
        v = G.verify_pairs(words(img)[None], words(copy, quality=25)[None])
        assert v.ok[0], (rel, k, v)
        # B = A turned (4 - k) quarter turns counter-clockwise, i.e. k*90 clockwise... as np.rot90 sees it
        assert int(v.rotation[0]) == (4 - k) % 4 or k == 2 and int(v.rotation[0]) == 2
        assert v.relation[0] & G.ROTATED


# ---------------------------------------------------------------- borders


def _box_fractions(img: Image.Image) -> tuple[float, float, float, float]:
    work = G.working_image(gray(img))
    t, b, left, r = content_box(np, work)
    h, w = work.shape
    return t / h, b / h, left / w, r / w


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (40, 90, 160)])
def test_content_box_finds_bars_and_frames(colour: tuple[int, int, int]) -> None:
    img = photo(THREE_TWO)
    w, h = img.size
    cases = {
        "letterbox": ((0, 110, 0, 110), (110 / (h + 220), (h + 110) / (h + 220), 0, 1)),
        "pillarbox": ((90, 0, 90, 0), (0, 1, 90 / (w + 180), (w + 90) / (w + 180))),
        "frame": ((30, 30, 30, 30), (30 / (h + 60), (h + 30) / (h + 60), 30 / (w + 60), (w + 30) / (w + 60))),
    }
    for name, (margins, expected) in cases.items():
        found = _box_fractions(Image.open(io.BytesIO(_jpeg(pad(img, *margins, colour), 75))))
        assert np.allclose(found, expected, atol=0.012), (name, colour, found, expected)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("top", [False, True])
@pytest.mark.parametrize("band, ink", [((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255))])
def test_content_box_removes_caption_bands_with_their_text(top: bool, band, ink) -> None:
    img = photo(LANDSCAPE)
    captioned = caption(img, "When the coffee kicks in on a Monday", 0.10, top, band, ink)
    t, b, left, r = _box_fractions(captioned)
    edge = 1 - img.height / captioned.height
    assert (left, r) == (0.0, 1.0)
    assert abs((t if top else 1 - b) - edge) <= 0.012
    assert (b if top else t) in (1.0, 0.0)


def test_plain_photos_keep_their_edges() -> None:
    """A photo without a border is hashed whole (its own sky or shadow is not a band)."""
    for rel in (LANDSCAPE, PORTRAIT, THREE_TWO, "2019/2019-04-27/DSCF0815.jpg"):
        assert _box_fractions(photo(rel)) == (0.0, 1.0, 0.0, 1.0), rel


@pytest.mark.parametrize("rel", PHOTOS)
def test_bordered_copies_verify_and_say_so(rel: str) -> None:
    img = photo(rel)
    m = max(img.size) // 8
    copies = [pad(img, 0, m, 0, m, (0, 0, 0)), pad(img, m, 0, m, 0, (255, 255, 255)),
              pad(img, m // 3, m // 3, m // 3, m // 3, (240, 234, 220)),
              caption(img, "Summer holidays 2023", 0.09, False),
              caption(img, "Best day ever", 0.08, True, (0, 0, 0), (255, 255, 255)).transpose(Image.Transpose.ROTATE_90)]
    for copy in copies:
        v = verdict(img, copy)
        assert v.ok[0] and v.relation[0] & G.BORDERED and v.derived[0] == 1, (rel, copy.size, v)
    assert G.border_fraction(words(copies[0]))[0] > 0.15 and G.border_fraction(words(img))[0] < 0.05


def test_different_photos_with_the_same_border_stay_apart() -> None:
    a, b = photo(LANDSCAPE).resize((600, 400)), photo(THREE_TWO).resize((600, 400))
    for edit in (lambda im: caption(im, "Happy birthday Grandma!", 0.10, False),
                 lambda im: pad(im, 0, 140, 0, 140, (0, 0, 0)),
                 lambda im: pad(im, 36, 36, 36, 36, (255, 255, 255))):
        v = verdict(edit(a), edit(b))
        assert not v.ok[0] and not v.unsure[0]


# ---------------------------------------------------------------- crops


@pytest.mark.parametrize("rel", [LANDSCAPE, THREE_TWO, "2019/2019-04-27/DSCF0815.jpg", "phone/PXL_20220724_152210.jpg"])
def test_aspect_crops_verify(rel: str) -> None:
    img = photo(rel)
    wide, square = centre_crop(img, 16 / 9), centre_crop(img, 1.0)
    for copy, flag in ((wide, G.CROPPED_WIDE), (square, G.CROPPED_SQUARE),
                       (square.transpose(Image.Transpose.ROTATE_270), G.CROPPED_SQUARE)):
        if abs(copy.width / copy.height - img.width / img.height) < 0.05:
            continue  # the photo already has that shape
        v = verdict(img, copy)
        assert v.ok[0] and v.relation[0] & flag and v.derived[0] == 1, (rel, copy.size, v)
        assert G.describe(int(v.rotation[0]), int(v.relation[0])).startswith(("cropped", "rotated"))


@pytest.mark.parametrize("rel", PHOTOS)
def test_mirror_flip_and_transpose_never_verify(rel: str) -> None:
    img = photo(rel)
    for copy in (ImageOps.mirror(img), ImageOps.flip(img), img.transpose(Image.Transpose.TRANSPOSE)):
        v = verdict(img, copy)
        assert not v.ok[0], (rel, v)


@pytest.mark.parametrize("rel", PHOTOS)
def test_halves_and_heavy_crops_never_verify(rel: str) -> None:
    img = photo(rel)
    for copy in (crop(img, 0, 0, 0.5, 0), crop(img, 0, 0, 0, 0.5), crop(img, 0, 0, 0.27, 0.27),
                 crop(img, 0.2, 0.2, 0.2, 0.2)):
        v = verdict(img, copy)
        assert not v.ok[0], (rel, copy.size, v)
        if v.unsure[0]:
            assert not G.second_look(gray(img), gray(copy, 90), int(v.rotation[0])).ok


def test_second_look_confirms_mild_crops_and_straightened_copies() -> None:
    for rel in (LANDSCAPE, THREE_TWO, PORTRAIT):
        img = photo(rel)
        for copy in (crop(img, 0.07, 0.02, 0.03, 0.06), crop(img, 0.05, 0.05, 0.05, 0.05), straighten(img, 3.0),
                     straighten(img, -1.5)):
            v = verdict(img, copy)
            assert v.ok[0] or v.unsure[0], (rel, copy.size, v)
            look = G.second_look(gray(img), gray(copy, 90), int(v.rotation[0]))
            assert look.ok and look.b_inside_a, (rel, copy.size, look)


def test_second_look_keeps_two_shots_of_one_scene_apart() -> None:
    """The Middlebury stereo pair: the same scene from two viewpoints, not a crop."""
    left, right = photo("2023/2023-05-20/DSC_1001.jpg"), photo("2023/2023-05-20/DSC_1002.jpg")
    assert not verdict(left, right).ok[0]
    assert not G.second_look(gray(left), gray(right), 0).ok
    window_a, window_b = crop(left, 0.0, 0.03, 0.25, 0.03), crop(left, 0.22, 0.03, 0.03, 0.03)
    assert not verdict(window_a, window_b).ok[0]
    assert not G.second_look(gray(window_a), gray(window_b), 0).ok


def test_describe_names_the_edit() -> None:
    assert G.describe(1, G.ROTATED) == "rotated 90"
    assert G.describe(0, G.BORDERED, (0.1, 0.1, 0.0, 0.0)) == "letterboxed"
    assert G.describe(2, G.ROTATED | G.BORDERED, (0.0, 0.09, 0.0, 0.0)) == "rotated 180, caption band"
    assert G.describe(0, G.CROPPED_WIDE) == "cropped to 16:9"
    assert G.describe(0, 0) == "edited"


def test_batch_matches_single_and_rejects_colour_arrays() -> None:
    grays = [gray(photo(r)) for r in PHOTOS[:3]]
    batch = G.geometry_codes_batch(grays)
    assert batch.shape == (3, G.GEO_WORDS) and batch.dtype == np.uint64
    assert all(np.array_equal(batch[i], G.geometry_codes(g)) for i, g in enumerate(grays))
    with pytest.raises(ValueError):
        G.geometry_codes(np.zeros((10, 10, 3), np.uint8))
