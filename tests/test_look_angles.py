"""The second look's angle search (lumina_plugin/hashing/look.py): every angle's coarse stage on
the photo at half the look's scale, then the whole registration only at the closest angles.
A copy straightened by any angle the look covers, whole or half degrees, either way round,
must still be found and turned back by about its own angle; two different pictures must not
be matched at any angle; and the half-scale image the angles are ranked on is the block mean
of the look's content. Real photos of sample_catalog/, straightened as the accuracy corpus
straightens them, each re-encoded as JPEG; nothing is mocked."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_gray, upright_source
from PIL import Image

from lumina_plugin.hashing import look

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
sys.path.insert(0, str(SAMPLE.parent / "benchmarks"))

from _corpus_edits import straighten  # noqa: E402  (turned about the centre, cropped to no blank corner)

ORIGINALS = ["2015/2015-10-29/IMG_8812.jpg", "2018/2018-10-14/DSC00401.jpg", "2021/2021-12-24/IMG_3307.jpg"]
ANGLES = (-4.0, -3.5, -2.5, -1.0, 1.5, 2.0, 3.0, 4.0)


@pytest.fixture(scope="module")
def originals() -> list[Image.Image]:
    out = []
    for rel in ORIGINALS:
        img = upright_source(rel).convert("RGB")
        img.thumbnail((900, 900))
        out.append(img)
    return out


@pytest.mark.parametrize("degrees", ANGLES)
def test_a_straightened_copy_is_found_at_about_its_angle(originals: list[Image.Image], degrees: float) -> None:
    for img in originals:
        original, copy = look.LookPhoto(jpeg_gray(img)), look.LookPhoto(jpeg_gray(straighten(img, degrees)))
        for seen, inside in ((look.look_at(original, copy), True), (look.look_at(copy, original), False)):
            assert seen.ok, (degrees, seen)
            assert seen.b_inside_a is inside, (degrees, seen)
            # Turned back by about its angle, the same way (a look may stop at a nearby
            # angle once the window agrees within T_LOOK // 2 bits).
            assert abs(seen.angle - degrees) <= 1.0 or (seen.angle == 0.0 and abs(degrees) <= 1.0), (degrees, seen)


def test_different_pictures_are_no_match_at_any_angle(originals: list[Image.Image]) -> None:
    for i, img in enumerate(originals):
        other = originals[(i + 1) % len(originals)]
        for degrees in (0.0, 2.0, -3.0):
            twisted = straighten(other, degrees) if degrees else other
            assert not look.second_look(jpeg_gray(img), jpeg_gray(twisted)).ok, (i, degrees)


def test_the_angles_are_ranked_on_the_block_means_of_the_content(originals: list[Image.Image]) -> None:
    photo = look.LookPhoto(jpeg_gray(originals[0]))
    content = photo.content
    half = look._block_means(content, 2)
    h, w = content.shape[0] // 2, content.shape[1] // 2
    assert half.shape == (h, w)
    assert np.allclose(half, content[:2 * h, :2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3)))
    turned = photo.rotated(0, 2.0, half=True)
    assert turned.shape == half.shape
    # the half-scale and the look-scale rotations are kept apart
    assert photo.rotated(0, 2.0).shape == content.shape


def test_a_sliver_of_a_photo_is_ranked_at_its_own_scale(originals: list[Image.Image]) -> None:
    """A strip a few pixels high at the look's scale (a panorama's band, say) has no half-scale
    image worth ranking angles on (fewer pixels a side than the code has coefficients): its
    angles are ranked and registered on the strip itself. A photo of ordinary shape is
    ranked at half scale."""
    strip = originals[0].convert("L").crop((0, 150, 640, 180)).resize((1280, 60))
    copy = strip.crop((20, 2, 1250, 58))
    buf = io.BytesIO()
    copy.save(buf, "JPEG", quality=60)
    a, b = look.LookPhoto(np.asarray(strip)), look.LookPhoto(np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
    assert min(a.content.shape) < 32 and min(b.content.shape) < 32
    look.look_at(a, b)
    turned = [key for photo in (a, b) for key in photo._rotated]
    assert turned and not any(half for _, _, half in turned), turned  # the angles were searched, at full scale

    original = look.LookPhoto(jpeg_gray(originals[1]))
    look.look_at(original, look.LookPhoto(jpeg_gray(straighten(originals[1], 3.0))))
    assert any(half for _, _, half in original._rotated)
