"""One-column radius joins (multi-index NumPy join, FAISS range search) against brute force.

Each join must give every pair within the radius exactly once, for all pairs and for a batch of
queries, whatever the plan and chunk size, on random codes, near copies and huge buckets.
"""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumina_plugin.index import flat, mih


def brute(x: np.ndarray, radius: int, first_query: int = 0) -> set[tuple[int, int]]:
    """Reference: all (i, j), i < j, within radius, j a query row; np.bitwise_count on every pair."""
    d = np.bitwise_count(x[:, None] ^ x[None, :])
    i, j = np.nonzero(np.triu(d <= radius, 1))
    keep = j >= first_query
    return set(zip(i[keep].tolist(), j[keep].tolist()))


def collect(chunks) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    out: list[tuple[int, int]] = []
    for i, j in chunks:
        assert i.dtype == np.int64 and j.dtype == np.int64 and (i < j).all()
        out += list(zip(i.tolist(), j.tolist()))
    return out


def codes_with_neighbours(rng: np.random.Generator, n: int, same: int = 0) -> np.ndarray:
    """Random codes; half of them near copies (0-12 bits) of another; ``same`` identical codes;
    and some codes sharing a 16-bit block while far apart (candidates that must be rejected)."""
    x = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    for t in range(0, n - 1, 2):
        bits = rng.choice(64, int(rng.integers(0, 13)), replace=False)
        x[t + 1] = x[t] ^ np.uint64(sum(1 << int(b) for b in bits))
    if same:
        x[-same:] = x[0]
    x[: n // 8] = (x[: n // 8] & ~np.uint64(0xFFFF)) | np.uint64(0xBEEF)
    return rng.permutation(x)


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    return codes_with_neighbours(np.random.default_rng(3), 1500, same=60)


ALL_PLANS = [(r, m) for r in (0, 1, 2, 3, 4, 6, 8, 10) for m in range(1, min(r + 1, mih.MAX_BLOCKS) + 1)
             if not (r // m and -(-64 // m) > mih.MAX_TABLE_BITS)]


@pytest.mark.parametrize("radius,blocks", ALL_PLANS)
def test_mih_every_plan_matches_brute_force(codes: np.ndarray, radius: int, blocks: int) -> None:
    plan = mih.make_plan(radius, blocks)
    want = brute(codes, radius)
    got = collect(mih.join(codes, radius, plan=plan, chunk=5000))
    assert len(got) == len(set(got)), "a pair came out twice"
    assert set(got) == want
    assert len(want) > 1770  # the 60 identical codes alone give 1770 pairs


@pytest.mark.parametrize("radius", [0, 3, 6, 10])
@pytest.mark.parametrize("first_query", [1, 900, 1499])
def test_mih_queries_match_brute_force(codes: np.ndarray, radius: int, first_query: int) -> None:
    want = brute(codes, radius, first_query)
    for blocks in sorted({max(1, radius // 2), min(radius + 1, mih.MAX_BLOCKS), 4}):
        try:
            plan = mih.make_plan(radius, blocks)
        except ValueError:
            continue
        got = collect(mih.join(codes, radius, first_query=first_query, plan=plan, chunk=333))
        assert len(got) == len(set(got)) and set(got) == want, (blocks, len(got), len(want))


@pytest.mark.parametrize("first_query,chunk", [(0, 97), (0, 65_536), (700, 1), (700, 65_536)])
def test_faiss_range_join_matches_brute_force(codes: np.ndarray, first_query: int, chunk: int) -> None:
    for radius in (0, 6):
        got = collect(flat.range_join(codes, radius, first_query=first_query, chunk=chunk))
        assert len(got) == len(set(got)) and set(got) == brute(codes, radius, first_query)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=120),
    noise=st.lists(st.integers(0, 63), min_size=0, max_size=240),
    radius=st.integers(-1, 12),
    data=st.data(),
)
def test_mih_property(values: list[int], noise: list[int], radius: int, data: st.DataObject) -> None:
    """Random codes with bit-flipped copies: any radius, plan, query split and chunk."""
    x = np.array(values, dtype=np.uint64)
    if len(x):  # near copies: repeat codes with a few bits flipped
        picks = np.array(noise[: len(noise) // 2] or [0]) % len(x)
        flips = np.uint64(1) << (np.array(noise[len(noise) // 2 :] or [0])[: len(picks)] % 64).astype(np.uint64)
        x = np.concatenate([x, x[picks[: len(flips)]] ^ flips[: len(picks)]])
    first_query = data.draw(st.integers(0, max(len(x), 0)))
    chunk = data.draw(st.integers(1, 50))
    plan = None
    if radius >= 0:
        options = [m for m in range(1, min(radius + 1, mih.MAX_BLOCKS) + 1)
                   if not (radius // m and -(-64 // m) > mih.MAX_TABLE_BITS)]
        plan = mih.make_plan(radius, data.draw(st.sampled_from(options)))
    got = collect(mih.join(x, radius, first_query=first_query, plan=plan, chunk=chunk))
    want = brute(x, radius, first_query) if radius >= 0 and len(x) else set()
    assert len(got) == len(set(got)) and set(got) == want


def test_huge_bucket_streams_in_bounded_chunks() -> None:
    """3,000 identical black frames: 4.5M pairs, produced a bounded number at a time."""
    rng = np.random.default_rng(11)
    x = np.concatenate([np.zeros(3000, np.uint64), rng.integers(0, 2**64, 2000, dtype=np.uint64, endpoint=False)])
    x = rng.permutation(x)
    chunk = 50_000
    sizes, total = [], 0
    seen = np.zeros(len(x), np.int64)
    for i, j in mih.join(x, 4, chunk=chunk):
        sizes.append(len(i))
        total += len(i)
        np.add.at(seen, i, 1)
        np.add.at(seen, j, 1)
    assert total == 3000 * 2999 // 2
    # a chunk holds at most `chunk` candidates, plus one row's (at most n) when a row alone is more
    assert max(sizes) <= chunk + len(x) and len(sizes) > 50
    assert (seen[x == 0] == 2999).all()


def test_plans() -> None:
    with pytest.raises(ValueError):
        mih.make_plan(6, 2)  # 2 blocks of 32 bits with 3 flips: no 2**32 table
    with pytest.raises(ValueError):
        mih.make_plan(-1, 1)
    plan = mih.make_plan(6, 4)
    assert plan.flips == 1 and [b for _, b in plan.blocks] == [16] * 4 and plan.probes() == 4 * 17
    assert sum(plan.masks) == np.uint64(2**64 - 1)  # blocks tile the code
    assert mih.make_plan(6, 7).flips == 0 and sum(b for _, b in mih.make_plan(6, 7).blocks) == 64
    for radius in range(16):  # chosen plans are valid for any size
        for n in (10, 10**5, 10**7):
            assert mih.choose_plan(radius, n).radius == radius
    # the measured rule: at radius 6, 4 blocks with 1 flip beat 7 exact blocks on 1M codes
    assert mih.estimate_seconds(mih.make_plan(6, 4), 10**6) < mih.estimate_seconds(mih.make_plan(6, 7), 10**6) / 4


class _GarbageIndex:
    """What a faiss-gpu build without kernels for the card returns: distance 0, random ids."""

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        return np.zeros((len(q), k), np.int32), rng.integers(0, 4096, (len(q), k))


def _cpu_flat(device: int, base: np.ndarray) -> object:
    index = faiss.IndexBinaryFlat(64)
    index.add(base)
    return index


@pytest.fixture
def fake_faiss_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pretend this FAISS has a GPU (tests on the GPU machine use the real one)."""
    monkeypatch.setattr(faiss, "GpuIndexBinaryFlat", object, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    flat.gpu_flat_problem.cache_clear()
    yield
    flat.gpu_flat_problem.cache_clear()


def test_faiss_gpu_self_check(fake_faiss_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flat, "_gpu_index", _cpu_flat)  # a GPU index that answers right
    assert flat.gpu_flat_problem() is None
    flat.gpu_flat_problem.cache_clear()
    monkeypatch.setattr(flat, "_gpu_index", lambda device, base: _GarbageIndex())
    assert "disagrees" in (flat.gpu_flat_problem() or "")


@pytest.mark.parametrize("first_query", [0, 1000])
def test_knn_join_completes_short_neighbour_lists(codes: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                                                  first_query: int) -> None:
    """k = 8 is far fewer than the 60 identical codes: those queries are redone by range search."""
    monkeypatch.setattr(flat, "_gpu_index", _cpu_flat)  # the k-NN logic, on FAISS's CPU index
    for radius in (0, 6):
        got = collect(flat.knn_join(codes, radius, first_query=first_query, k=8, batch=256))
        assert len(got) == len(set(got)) and set(got) == brute(codes, radius, first_query)
