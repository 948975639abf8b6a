"""The lane join (a batch against an index, on the CPU) against brute force, and the search's use of it.

Both ways of finding candidates (scanning the lanes, or prepared lane tables) must give every
pair within the radius exactly once, at every radius the join serves, whatever the chunk size,
on random codes, near copies, codes sharing lanes while far apart, and huge buckets.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumina_plugin import gpu_status
from lumina_plugin.index import lanes, mih, search
from lumina_plugin.index.search import pick_backend, query_pairs, query_plan, radius_join


def brute(x: np.ndarray, queries: np.ndarray, radius: int) -> set[tuple[int, int]]:
    """Reference: every (index row, query row) within radius."""
    d = np.bitwise_count(x[:, None] ^ queries[None, :])
    i, j = np.nonzero(d <= radius)
    return set(zip(i.tolist(), j.tolist()))


def collect(chunks) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    out: list[tuple[int, int]] = []
    for i, j in chunks:
        assert i.dtype == np.int64 and j.dtype == np.int64
        out += list(zip(i.tolist(), j.tolist()))
    return out


def flip_bits(rng: np.random.Generator, code: np.uint64, bits: int) -> np.uint64:
    return code ^ np.uint64(sum(1 << int(b) for b in rng.choice(64, bits, replace=False)))


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    """2,000 indexed codes (a bucket of 150 identical ones, an eighth sharing lane 1 while far
    apart) and 300 queries: near copies at 0-16 bits, copies of the bucket, repeats, random."""
    rng = np.random.default_rng(8)
    x = rng.integers(0, 2**64, 2000, dtype=np.uint64, endpoint=False)
    x[:150] = x[150]
    x[200:450] = (x[200:450] & ~np.uint64(0xFFFF0000)) | np.uint64(0xBEEF0000)
    q = rng.integers(0, 2**64, 300, dtype=np.uint64, endpoint=False)
    for t in range(200):
        q[t] = flip_bits(rng, x[rng.integers(0, 2000)], int(rng.integers(0, 17)))
    q[200:205] = x[0]
    q[205:210] = q[0]  # the same query five times
    q[210:240] = (q[210:240] & ~np.uint64(0xFFFF0000)) | np.uint64(0xBEEF0000)
    return rng.permutation(x), q


@pytest.mark.parametrize("radius", range(lanes.MAX_RADIUS + 1))
def test_lane_join_matches_brute_force(batch, radius: int) -> None:  # type: ignore[no-untyped-def]
    x, q = batch
    want = brute(x, q, radius)
    assert len(want) >= 750  # the bucket alone: 5 queries x 150 codes
    strided = np.stack([x, ~x], axis=1)[:, 0]  # a column of an (n, 2) array, as the search passes it
    tables = lanes.LaneTables.build(strided)
    for chunk in (1, 37, 1 << 18):
        for how in (None, tables):
            got = collect(lanes.join(strided, q, radius, tables=how, chunk=chunk))
            assert len(got) == len(set(got)), "a pair came out twice"
            assert set(got) == want, (chunk, how is None)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=80),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 63)), min_size=0, max_size=120),
    radius=st.integers(0, lanes.MAX_RADIUS),
    data=st.data(),
)
def test_lane_join_property(values: list[int], flips: list[tuple[int, int]], radius: int, data: st.DataObject) -> None:
    """Codes and bit-flipped copies split anyhow into index and queries, any chunk."""
    x = np.array(values, dtype=np.uint64)
    if len(x):
        picks = np.array([p for p, _ in flips], np.int64) % len(x)
        x = np.concatenate([x, x[picks] ^ (np.uint64(1) << np.array([b for _, b in flips], np.uint64))])
    split = data.draw(st.integers(0, len(x)))
    index, queries = x[:split], x[split:]
    chunk = data.draw(st.integers(1, 40))
    want = brute(index, queries, radius) if len(index) and len(queries) else set()
    for tables in (None, lanes.LaneTables.build(index)):
        got = collect(lanes.join(index, queries, radius, tables=tables, chunk=chunk))
        assert len(got) == len(set(got)) and set(got) == want


def test_huge_bucket_is_checked_in_bounded_steps() -> None:
    """3,000 indexed black frames and 40 black queries: 120,000 pairs, a bounded number a step."""
    rng = np.random.default_rng(12)
    x = rng.permutation(np.concatenate([np.zeros(3000, np.uint64),
                                        rng.integers(0, 2**64, 2000, dtype=np.uint64, endpoint=False)]))
    q = np.zeros(40, np.uint64)
    for tables in (None, lanes.LaneTables.build(x)):
        sizes = [len(i) for i, _ in lanes.join(x, q, 3, tables=tables, chunk=5000)]
        assert sum(sizes) == 3000 * 40 and len(sizes) > 10
        assert max(sizes) <= 5000 + 3000  # a chunk, plus at most one probe's run of codes


def test_degenerate_and_bad_arguments() -> None:
    x = np.arange(10, dtype=np.uint64)
    assert collect(lanes.join(x[:0], x, 3)) == [] and collect(lanes.join(x, x[:0], 3)) == []
    with pytest.raises(ValueError, match="radii"):
        list(lanes.join(x, x, lanes.MAX_RADIUS + 1))
    with pytest.raises(ValueError, match="tables"):
        list(lanes.join(x, x, 2, tables=lanes.LaneTables.build(x[:5])))
    tables = lanes.LaneTables.build(x)
    assert all(not a.flags.writeable for a in (*tables.order, *tables.starts))
    assert tables.nbytes == 4 * (10 * 4 + (lanes.KEYS + 1) * 8)


def test_radius_join_in_query_mode_uses_the_lanes(batch, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """radius_join with queries: the lane join plus the pairs within the batch, as mih.join."""
    monkeypatch.setattr(gpu_status, "cupy_module", lambda: None)
    x, q = batch
    col = np.concatenate([x, q])
    q0 = len(x)
    assert query_plan(6, len(col), len(q)) == "lanes"
    monkeypatch.setattr(search, "query_plan", lambda r, m, b: "lanes")  # (small sizes may sort)
    for radius in (0, 6, 10):
        want = sorted(collect(mih.join(col, radius, first_query=q0)))
        got = collect(radius_join(col, radius, first_query=q0, backend="mih", pair_chunk=333))
        assert all(i < j for i, j in got) and sorted(got) == want


def test_query_pairs_same_through_lanes_and_sorted_join(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane path of query_pairs (re-queried ids left out, pairs within the batch added) gives
    what the sorted join over the kept rows gives, at radii the lanes serve and beyond."""
    monkeypatch.setattr(gpu_status, "cupy_module", lambda: None)
    rng = np.random.default_rng(21)
    n, batch = 3000, 400
    codes = rng.integers(0, 2**64, (n, 4), dtype=np.uint64, endpoint=False)
    for t in range(0, n - 1, 2):
        codes[t + 1] = [flip_bits(rng, c, int(rng.integers(0, 12))) for c in codes[t]]
    ids = rng.choice(10**9, n, replace=False).astype(np.int64)
    order = np.argsort(ids)  # the index's ids ascending, as a HashIndex holds them
    index_ids, index_codes = ids[order][: n - batch + 50], codes[order][: n - batch + 50]
    q_ids, q_codes = ids[order][n - batch :], codes[order][n - batch :].copy()
    q_codes[:50, 1] ^= np.uint64(3)  # 50 query ids are indexed with other codes: those are ignored
    radii = (4, 10, 6, 17)  # 17: beyond the lanes, the sorted join
    want = query_pairs(index_ids, index_codes, q_ids, q_codes, radii, backend="faiss")
    assert len(want) > 100
    for plan in ("lanes", "sorted"):
        monkeypatch.setattr(search, "query_plan", lambda r, m, q, plan=plan: plan if lanes.usable(r) else "sorted")
        got = query_pairs(index_ids, index_codes, q_ids, q_codes, radii, backend="mih", pair_chunk=500)
        for name in ("a", "b", "dist"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=plan)
    # unsorted index ids take the other way of finding the re-queried rows
    shuffle = rng.permutation(len(index_ids))
    got = query_pairs(index_ids[shuffle], index_codes[shuffle], q_ids, q_codes, radii, backend="mih")
    np.testing.assert_array_equal(got.a, want.a)
    np.testing.assert_array_equal(got.dist, want.dist)


def test_auto_picks_the_lanes_for_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Query mode on the CPU: the lane join for a batch at the radii it serves (FAISS compares the
    batch with everything; the sorted join sorts everything), FAISS beyond."""
    monkeypatch.setattr(gpu_status, "cupy_module", lambda: None)
    for n in (10**5, 10**6, 10**7):
        for q in (256, 1000):
            assert query_plan(6, n + q, q) == "lanes"
            assert pick_backend("auto", 6, n + q, q) == "mih"
    assert pick_backend("auto", 24, 10**6, 1000) == "faiss"
    # tables pay for small batches only (256 queries: 11 ms against 28 ms measured at 1M)
    assert lanes.estimate_seconds(10**6, 256, 6, tables=True) < lanes.estimate_seconds(10**6, 256, 6)
