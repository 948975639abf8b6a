"""find_pairs' merge of the classic and the geometric searches (grouping/candidates.py), with
the second look at pixels answered by a stand-in: which pairs come out, in (a, b) order, each
once, with which verdict. Classic matches whose 256-bit codes disagree are looked at, and kept
apart when the look finds nothing, unless the words themselves found a turned copy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lumina_plugin.config import Config
from lumina_plugin.grouping import geometric
from lumina_plugin.grouping.candidates import find_pairs
from lumina_plugin.hashing import geometry as G
from lumina_plugin.model import CLASSIC_WORDS

LOOKED = 12345 << 16 | 1  # a look's verdict: "a copy" (ok bit), any distance


def _geo_words(rng: np.random.Generator, n: int) -> np.ndarray:
    words = rng.integers(0, 2**63, (n, G.GEO_WORDS), dtype=np.uint64)
    words[:, G.META] = np.uint64(32768) << np.uint64(32) | np.uint64(1) << np.uint64(48)  # no border, 1:1
    return words


def test_merge_of_both_searches_and_the_looks() -> None:
    rng = np.random.default_rng(7)
    n, q = 400, 60
    ids = np.arange(1, n + 1, dtype=np.int64)
    codes = np.concatenate([rng.integers(0, 2**63, (n, CLASSIC_WORDS), dtype=np.uint64), _geo_words(rng, n)], 1)
    q_ids = np.arange(n + 1, n + q + 1, dtype=np.int64)
    q_codes = np.concatenate([rng.integers(0, 2**63, (q, CLASSIC_WORDS), dtype=np.uint64), _geo_words(rng, q)], 1)
    of = rng.choice(n, q, replace=False)             # query j copies index row of[j]
    q_codes[:10] = codes[of[:10]]                    # both searches: classic and words alike
    q_codes[10:20, CLASSIC_WORDS:] = G.rotate_code(codes[of[10:20], CLASSIC_WORDS:], 1)   # turned: words only
    # classic alike (not identical: a burst's identical frames are never looked at), words far apart...
    bits = np.uint64(1) << rng.integers(0, 64, (15, CLASSIC_WORDS, 3)).astype(np.uint64)
    q_codes[20:35, :CLASSIC_WORDS] = codes[of[20:35], :CLASSIC_WORDS] ^ np.bitwise_or.reduce(bits, axis=2)
    q_codes[30:35, CLASSIC_WORDS:] = G.rotate_code(codes[of[30:35], CLASSIC_WORDS:], 2)  # ...or turned
    asked: list[tuple[int, int, int]] = []

    def look(pairs: Sequence[tuple[int, int, int]]) -> list[int]:
        asked.extend(pairs)
        return [0 if a % 2 or b >= n + 31 else LOOKED for a, b, _ in pairs]  # q 30-34: nothing seen

    config = Config()
    found = find_pairs(ids, codes, config.thresholds, config.index.search_options(), q_ids, q_codes, look)
    got = {(a, b): row.tolist() for a, b, row in zip(found.a.tolist(), found.b.tolist(), found.dist)}
    assert list(got) == sorted(set(got))             # sorted by (a, b), each pair once
    want_pairs = {(int(ids[of[j]]), int(q_ids[j])) for j in range(35)}
    assert set(got) == want_pairs
    for j in range(35):
        a, b = int(ids[of[j]]), int(q_ids[j])
        row = got[(a, b)]
        classic = np.bitwise_count(codes[of[j], :CLASSIC_WORDS] ^ q_codes[j, :CLASSIC_WORDS]).tolist()
        assert row[:CLASSIC_WORDS] == classic
        verdict = row[CLASSIC_WORDS]
        if j < 20 or j >= 30:   # the words decide (a turned copy wins over a look that saw nothing)
            assert verdict > 0 and geometric.unpack(verdict) is not None, j
            assert (geometric.unpack(verdict).rotation != 0) == (j >= 10), j  # type: ignore[union-attr]
        else:                   # far classic matches: kept apart when the look saw nothing
            looked = [x for x in asked if (x[0], x[1]) == (a, b)]
            assert len(looked) == 1
            assert verdict == (geometric.APART if a % 2 else 0), j
    assert found.geometric["kept_apart"] == sum(1 for j in range(20, 35) if ids[of[j]] % 2 or j >= 30)


def test_union_of_pair_lists_small_and_large_ids() -> None:
    """_union sorts ids that fit 31 bits as one key and others as two: the same union either way,
    with where the second list's pairs went."""
    from lumina_plugin.grouping.candidates import _union

    rng = np.random.default_rng(3)
    for top in (1000, 2**31 - 1, 2**40):
        a1, b1 = np.sort(rng.integers(0, top, (2, 300)), axis=0)
        a2, b2 = np.sort(rng.integers(0, top, (2, 200)), axis=0)
        a2[:50], b2[:50] = a1[:50], b1[:50]          # pairs both lists hold
        a, b, in_second, at = _union(a1, b1, a2, b2)
        want = sorted(set(zip(a1.tolist(), b1.tolist())) | set(zip(a2.tolist(), b2.tolist())))
        assert list(zip(a.tolist(), b.tolist())) == want
        assert (a[at] == a2).all() and (b[at] == b2).all()
        assert in_second.tolist() == [p in set(zip(a2.tolist(), b2.tolist())) for p in want]


def test_bordered_sides_are_the_trims_over_one_percent() -> None:
    """bordered_sides reads meta's bytes as integers: the same sides as its float trims over 1%,
    for every byte value on every side."""
    rng = np.random.default_rng(4)
    words = _geo_words(rng, 256 * 5)
    words[:256, G.META] |= np.arange(256, dtype=np.uint64) * np.uint64(0x01010101)
    words[256:, G.META] |= rng.integers(0, 2**32, 256 * 4, dtype=np.uint64)
    trims, _ = G.meta_fields(words)
    np.testing.assert_array_equal(geometric.bordered_sides(words), trims > 0.01)


def test_pack_is_the_layout_it_documents() -> None:
    """pack against its layout written out bit by bit: ok, turn, relation, derived side,
    distance clipped to a byte, bordered sides."""
    rng = np.random.default_rng(8)
    n = 5000
    rotation, relation = rng.integers(0, 4, n), rng.integers(0, 64, n)
    derived, distance = rng.integers(-2, 3, n), rng.integers(-20, 400, n)
    sides = rng.random((n, 4)) < 0.4
    side = np.where(derived > 0, 1, np.where(derived < 0, 2, 0))
    border = sides[:, 0] * 8 + sides[:, 1] * 4 + sides[:, 2] * 2 + sides[:, 3]
    want = 1 | rotation << 1 | relation << 3 | side << 11 | np.clip(distance, 0, 255) << 16 | border << 24
    got = geometric.pack(rotation, relation, derived, distance, sides)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(geometric.pack(rotation, relation, derived, distance), want & ~(15 << 24))
    for code, r, rel, d, dist, s in zip(got[:200].tolist(), rotation, relation, derived, distance, sides):
        v = geometric.unpack(code)
        assert v is not None and (v.rotation, v.relation, v.derived) == (r, rel, np.sign(d))
        assert v.distance == min(max(dist, 0), 255) and v.sides == tuple(s.tolist())
