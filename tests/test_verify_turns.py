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


def _pop(xp: Any, x: Any) -> Any:
    return xp.bitwise_count(x).astype(xp.int32)


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
        d_full = _pop(xp, (a[:, G.FULL:G.CENTRE] ^ b[:, G.FULL:G.CENTRE]) & no_dc).sum(axis=1)
        full_ok = (d_full <= G.T_FULL) & (xp.abs(la - lb) <= G._L_FULL)
        shape_ok = xp.zeros(n, dtype=bool)
        shape_d = xp.full(n, 99, dtype=xp.int32)
        shape_rel = xp.zeros(n, dtype=xp.int32)
        shape_der = xp.zeros(n, dtype=xp.int32)
        # x: the photo whose region is matched; y: the crop (its whole content is that region)
        for lx, ly, x, y, sign in ((la, lb, a, b8, 1), (lb, la, b, a8, -1)):
            oriented = xp.where(lx >= 0, G._L_WIDE, -G._L_WIDE)
            for col, target, flag in ((G.WIDE_W, oriented, G.CROPPED_WIDE), (G.SQUARE_W, 0 * lx, G.CROPPED_SQUARE)):
                d = _pop(xp, (x[:, col] ^ y) & G._NO_DC8)
                hit = ((d <= G.T_SHAPE) & (xp.abs(ly - target) <= G._L_SHAPE) & (xp.abs(lx - target) > G._L_DISTINCT)
                       & (d < shape_d))
                shape_d = xp.where(hit, d, shape_d)
                shape_rel = xp.where(hit, flag, shape_rel)
                shape_der = xp.where(hit, sign, shape_der)
                shape_ok |= hit
        low6 = xp.uint64(G._LOW6)
        b_in_a, a_in_b = _pop(xp, (a[:, G.CENTRE] ^ b8) & low6), _pop(xp, (a8 ^ b[:, G.CENTRE]) & low6)
        d_near = xp.minimum(xp.minimum(_pop(xp, (a8 ^ b8) & low6), a_in_b), b_in_a)
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


def _with_low8(words: np.ndarray, low: np.ndarray) -> np.ndarray:
    """``words`` with the low 8x8 corner of their full code replaced by ``low`` (inverse of _low8)."""
    out = words.copy()
    for u in range(8):
        shift = np.uint64(56 - (u % 4) * 16)
        row = (low >> np.uint64(56 - 8 * u)) & np.uint64(255)
        out[:, G.FULL + u // 4] = (out[:, G.FULL + u // 4] & ~(np.uint64(255) << shift)) | row << shift
    return out


def crafted_pairs(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Pairs that reach every branch of a verdict: B's low corner taken from A's wide, square or
    centre region (and A's from B's), aspects at and near 16:9, square and the code's extremes
    (an aspect field of 0 turns into 65536, which its 16 bits cannot hold), trims from none to
    the whole side, and a few bits flipped everywhere."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**63, (n, G.GEO_WORDS), dtype=np.uint64) | rng.integers(0, 2, (n, G.GEO_WORDS),
                                                                                  dtype=np.uint64) << np.uint64(63)
    b = a.copy()
    source = rng.integers(0, 5, n)   # B's low corner from A's: 0 own, 1 wide, 2 square, 3 centre, 4 random
    low = np.choose(source, [G._low8(np, a), a[:, G.WIDE_W], a[:, G.SQUARE_W], a[:, G.CENTRE],
                             rng.integers(0, 2**63, n, dtype=np.uint64)])
    b = _with_low8(b, low)
    back = rng.integers(0, 4, n)     # and A's low corner into B's region (a crop the other way)
    for col, pick in ((G.WIDE_W, 1), (G.SQUARE_W, 2), (G.CENTRE, 3)):
        b[back == pick, col] = G._low8(np, a)[back == pick]
    wide = G._L_WIDE
    aspects = np.array([0, 5, -5, 300, wide, -wide, wide + 90, wide - 150, -wide + 120, 800, -830, 3000,
                        32767, -32768], dtype=np.int64)
    trims = np.array([0, 1, 2, 3, 4, 10, 40, 128, 255], dtype=np.uint64)
    for words in (a, b):
        asp = (rng.choice(aspects, n) + 32768).astype(np.uint64)
        sides = rng.choice(trims, (n, 4))
        meta = asp << np.uint64(32) | np.uint64(1) << np.uint64(48)
        for j, s in enumerate((24, 16, 8, 0)):
            meta |= sides[:, j] << np.uint64(s)
        words[:, G.META] = meta
    flips = rng.integers(0, 64, (n, G.META, 3)).astype(np.uint64)
    noisy = rng.random((n, G.META, 3)) < 0.3
    b[:, :G.META] ^= ((np.uint64(1) << flips) * noisy).sum(axis=2, dtype=np.uint64)
    return a, b


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_crafted_pairs_every_branch(k: int) -> None:
    a, b = crafted_pairs(10 + k)
    b = G.rotate_code(b, k)
    for x, y in ((a, b), (b, a)):
        got = G.verify_pairs(x, y)
        assert_same(got, per_turn(x, y))
        rel = got.relation[got.ok]
        assert (rel & G.CROPPED_WIDE).any() and (rel & G.CROPPED_SQUARE).any() and (rel & G.BORDERED).any()
        assert got.unsure.any() and set(np.unique(got.derived[got.ok]).tolist()) == {-1, 0, 1}
        assert (got.rotation[got.ok] != 0).any() == (k != 0) and (got.rotation[got.unsure] != 0).any() == (k != 0)


def test_quarter_turns_are_transposes() -> None:
    """The verdicts turn a code by an 8x8 transpose (odd turns) or by sign flips alone (even ones)."""
    from lumina_plugin.hashing import bitmatrix, code_words

    for n, perm in ((16, code_words.PERM16), (8, code_words.PERM8)):
        u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        transpose = (v * n + u).ravel()
        for k in range(4):
            np.testing.assert_array_equal(perm[k], transpose if k % 2 else np.arange(n * n))
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2**63, 500, dtype=np.uint64)
    bits = G.unpack_bits(np, x[:, None]).reshape(-1, 8, 8)
    want = G.pack_bits(np, bits.transpose(0, 2, 1).reshape(-1, 64))[:, 0]
    np.testing.assert_array_equal(bitmatrix.transpose8(np, x), want)


def test_border_changes_at_the_two_percent_edge() -> None:
    """Pairs whose content shares differ by 1310 and 1311 (of 65536), either side of the 2% that
    makes a copy "bordered", and by a few more: the same border verdicts as the per-turn loop."""
    rng = np.random.default_rng(21)
    trims = rng.integers(0, 256, (200_000, 4))
    inside = (256 - trims[:, 0] - trims[:, 1]) * (256 - trims[:, 2] - trims[:, 3])
    order = np.argsort(inside)
    pairs = []
    for gap in (1309, 1310, 1311, 1312):
        j = np.searchsorted(inside[order], inside[order] + gap)
        hit = (j < len(order)) & (inside[order][np.minimum(j, len(order) - 1)] == inside[order] + gap)
        pairs += [(order[i], order[j[i]]) for i in np.flatnonzero(hit)[:200]]
    assert len(pairs) > 400
    pick = np.array(pairs)
    a = rng.integers(0, 2**63, (len(pick), G.GEO_WORDS), dtype=np.uint64)
    b = a.copy()
    for words, rows in ((a, pick[:, 0]), (b, pick[:, 1])):
        meta = np.uint64(32768) << np.uint64(32)
        for j, s in enumerate((24, 16, 8, 0)):
            meta = meta | trims[rows, j].astype(np.uint64) << np.uint64(s)
        words[:, G.META] = meta
    for x, y in ((a, b), (b, a)):
        got = G.verify_pairs(x, y)
        assert_same(got, per_turn(x, y))
        assert got.ok.all() and 0 < (got.relation & G.BORDERED != 0).sum() < len(x)
