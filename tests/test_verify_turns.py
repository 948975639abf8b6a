"""The geometric verdicts of all four turns at once (hashing/geometry.py ``verify_pairs``) equal
the per-turn loop they replaced, field for field, on real photos' words (every pair of a set of
originals and their edited copies) and on random near copies turned every way; and a list
longer than a block gives what its blocks give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from lumina_plugin.hashing import geometry as G

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"


def per_turn(words_a: Any, words_b: Any, xp: Any = np) -> G.Verdicts:
    """The per-turn loop the batch version replaced: one turn of B at a time."""
    a = xp.asarray(words_a, dtype=xp.uint64).reshape(-1, G.GEO_WORDS)
    n = a.shape[0]
    _, la = G.meta_fields(a, xp)
    ta = G.border_fraction(a, xp)
    a8 = G._low8(xp, a)
    no_dc = xp.asarray(G.NO_DC_FULL)
    best_key = xp.full(n, 1 << 30, dtype=xp.int64)
    out = {f: xp.zeros(n, dtype=xp.int32) for f in ("rotation", "relation", "distance", "derived")}
    ok = xp.zeros(n, dtype=bool)
    unsure = xp.zeros(n, dtype=bool)
    near = xp.full(n, 1 << 30, dtype=xp.int64)
    for k in range(4):
        b = G.rotate_code(xp.asarray(words_b, dtype=xp.uint64).reshape(-1, G.GEO_WORDS), k, xp)
        _, lb = G.meta_fields(b, xp)
        b8 = G._low8(xp, b)
        d_full = G._pop(xp, (a[:, G.FULL:G.CENTRE] ^ b[:, G.FULL:G.CENTRE]) & no_dc).sum(axis=1)
        full_ok = (d_full <= G.T_FULL) & (xp.abs(la - lb) <= G._L_FULL)
        shape_ok = xp.zeros(n, dtype=bool)
        shape_d = xp.full(n, 99, dtype=xp.int32)
        shape_rel = xp.zeros(n, dtype=xp.int32)
        shape_der = xp.zeros(n, dtype=xp.int32)
        # x: the photo whose region is matched; y: the crop (its whole content is that region)
        for lx, ly, x, y, sign in ((la, lb, a, b8, 1), (lb, la, b, a8, -1)):
            oriented = xp.where(lx >= 0, G._L_WIDE, -G._L_WIDE)
            for col, target, flag in ((G.WIDE_W, oriented, G.CROPPED_WIDE), (G.SQUARE_W, 0 * lx, G.CROPPED_SQUARE)):
                d = G._pop(xp, (x[:, col] ^ y) & G._NO_DC8)
                hit = ((d <= G.T_SHAPE) & (xp.abs(ly - target) <= G._L_SHAPE) & (xp.abs(lx - target) > G._L_DISTINCT)
                       & (d < shape_d))
                shape_d = xp.where(hit, d, shape_d)
                shape_rel = xp.where(hit, flag, shape_rel)
                shape_der = xp.where(hit, sign, shape_der)
                shape_ok |= hit
        low6 = xp.uint64(G._LOW6)
        b_in_a, a_in_b = G._pop(xp, (a[:, G.CENTRE] ^ b8) & low6), G._pop(xp, (a8 ^ b[:, G.CENTRE]) & low6)
        d_near = xp.minimum(xp.minimum(G._pop(xp, (a8 ^ b8) & low6), a_in_b), b_in_a)
        near_ok = (d_near <= G.T_UNSURE) & (xp.abs(la - lb) <= G._L_CROP)
        good = full_ok | shape_ok
        # rank this turn: full matches first (by distance), then shape crops
        key = xp.where(full_ok, d_full, xp.where(shape_ok, 1000 + shape_d, 1 << 30)).astype(xp.int64)
        better = good & (key < best_key)
        tb = G.border_fraction(b, xp)
        bordered = xp.abs(ta - tb) > 0.02
        rel = (xp.where(full_ok, 0, shape_rel) | xp.where(full_ok & bordered, G.BORDERED, 0)
               | (G.ROTATED if k else 0)).astype(xp.int32)
        der = xp.where(full_ok, xp.where(bordered, xp.where(tb > ta, 1, -1), 0), shape_der)
        out["rotation"] = xp.where(better, k, out["rotation"])
        out["relation"] = xp.where(better, rel, out["relation"])
        out["distance"] = xp.where(better, xp.where(full_ok, d_full, shape_d), out["distance"])
        out["derived"] = xp.where(better, der, out["derived"])
        best_key = xp.where(better, key, best_key)
        ok |= good
        # an unsure pair remembers its closest turn for the second look
        closer = near_ok & (d_near < near) & ~ok
        near = xp.where(closer, d_near, near)
        unsure |= near_ok
        out["rotation"] = xp.where(closer, k, out["rotation"])
        out["distance"] = xp.where(closer, d_near, out["distance"])
        # which one looks like the crop (the other's centre): a hint for the second look
        hint = xp.where(b_in_a + 3 <= a_in_b, 1, xp.where(a_in_b + 3 <= b_in_a, -1, 0))
        out["derived"] = xp.where(closer, hint, out["derived"])
    unsure &= ~ok
    out["relation"] = xp.where(unsure, G.CROPPED | xp.where(out["rotation"] != 0, G.ROTATED, 0), out["relation"])
    return G.Verdicts(ok, unsure, out["rotation"], out["relation"], out["distance"], out["derived"])


def real_words() -> np.ndarray:
    """Words of sample_catalog's photos and of copies an editor makes: turned, letterboxed,
    cropped to 16:9 and square, mildly cropped, halved."""
    rows = []
    for path in sorted(SAMPLE.glob("20*/*/*.jpg"))[:8]:
        with Image.open(path) as im:
            img = ImageOps.exif_transpose(im).convert("L")
        img.thumbnail((480, 480))
        w, h = img.size
        boxed = Image.new("L", (w, h + h // 3), 0)
        boxed.paste(img, (0, h // 6))
        wide_h = min(h, round(w * 9 / 16))
        side = min(w, h)
        for copy in (img, img.rotate(90, expand=True), img.rotate(180), boxed,
                     img.crop((0, (h - wide_h) // 2, w, (h - wide_h) // 2 + wide_h)),
                     img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)),
                     img.crop((int(0.04 * w), int(0.02 * h), w - int(0.03 * w), h - int(0.05 * h))),
                     img.crop((0, 0, w // 2, h))):
            rows.append(G.geometry_codes(np.asarray(copy)))
    return np.stack(rows)


def assert_same(got: G.Verdicts, want: G.Verdicts) -> None:
    for field in G.Verdicts._fields:
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
        assert getattr(got, field).dtype == getattr(want, field).dtype, field


def test_every_pair_of_real_photos_and_their_copies() -> None:
    words = real_words()
    a, b = np.meshgrid(np.arange(len(words)), np.arange(len(words)), indexing="ij")
    wa, wb = words[a.ravel()], words[b.ravel()]
    got = G.verify_pairs(wa, wb)
    assert_same(got, per_turn(wa, wb))
    assert got.ok.sum() > len(words) and got.unsure.any() and (got.rotation[got.ok] != 0).any()


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_random_near_copies_turned(k: int) -> None:
    rng = np.random.default_rng(k)
    a = rng.integers(0, 2**63, (3000, G.GEO_WORDS), dtype=np.uint64)
    flips = rng.integers(0, 64, (3000, G.GEO_WORDS, 6)).astype(np.uint64)
    b = a.copy()
    for j in range(flips.shape[2]):  # a few bits a word, more for later rows
        b[j * 500:] ^= np.uint64(1) << flips[j * 500:, :, j]
    b = G.rotate_code(b, k)
    got = G.verify_pairs(a, b)
    assert_same(got, per_turn(a, b))
    assert got.ok.any() and not got.ok.all()


def test_a_long_list_is_its_blocks() -> None:
    words = real_words()
    rng = np.random.default_rng(3)
    pick = rng.integers(0, len(words), (2, G._VERIFY_BLOCK * 2 + 17))
    wa, wb = words[pick[0]], words[pick[1]]
    whole = G.verify_pairs(wa, wb)
    assert_same(whole, per_turn(wa, wb))
    assert len(whole.ok) == wa.shape[0]
