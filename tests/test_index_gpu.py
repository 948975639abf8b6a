"""GPU joins (CuPy kernels, FAISS GpuIndexBinaryFlat) == CPU joins == brute force.

Marked ``gpu``: skipped where CuPy sees no GPU. Run on the GPU machine (see docs/index.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from lumina_plugin import gpu_status
from lumina_plugin.config import Config
from lumina_plugin.index import cupy_join, flat, gpu_check, gpu_lanes, lanes, mih
from lumina_plugin.index.search import all_pairs, pick_backend, query_pairs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(gpu_status.cupy_module() is None, reason="needs CuPy and a CUDA GPU"),
]


def keys(chunks, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Sorted pair keys i * n + j of a join's chunks (CuPy or NumPy); fails on a repeated pair."""
    parts = []
    for i, j in chunks:
        i = i.get() if hasattr(i, "get") else i
        j = j.get() if hasattr(j, "get") else j
        assert (i < j).all()
        parts.append(i.astype(np.int64) * n + j)
    out = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    assert not (out[1:] == out[:-1]).any(), "a pair came out twice"
    return out


def numpy_brute(x: np.ndarray, radius: int, first_query: int = 0) -> np.ndarray:
    n, out = len(x), []
    for s in range(0, n, 512):
        d = np.bitwise_count(x[s : s + 512, None] ^ x[None, :])
        i, j = np.nonzero(d <= radius)
        i += s
        keep = (j > i) & (j >= first_query)
        out.append(i[keep] * n + j[keep])
    return np.sort(np.concatenate(out))


def make_codes(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """uniform; near (half near copies at 0-10 bits); skewed (a fifth within 3 bits of n/100
    centres, plus a bucket of 1% identical frames)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    if kind == "near":
        for t in range(0, n - 1, 2):
            bits = rng.choice(64, int(rng.integers(0, 11)), replace=False)
            x[t + 1] = x[t] ^ np.uint64(sum(1 << int(b) for b in bits))
    elif kind == "skewed":
        centres = rng.integers(0, 2**64, max(1, n // 100), dtype=np.uint64, endpoint=False)
        pick = rng.choice(n, n // 5, replace=False)
        x[pick] = centres[rng.integers(0, len(centres), len(pick))]
        for _ in range(3):
            on = rng.random(len(pick)) < 0.5
            x[pick] ^= np.where(on, np.uint64(1) << rng.integers(0, 64, len(pick)).astype(np.uint64), np.uint64(0))
        x[rng.choice(n, n // 100, replace=False)] = 0
    return x


def test_self_check_passes() -> None:
    assert gpu_check.gpu_problem() is None
    assert pick_backend("auto", 6, 10**6) == "gpu"
    assert pick_backend("auto", 6, 10**7 + 1000, 1000) == "gpu"
    # the one switch: "off" keeps the index off this usable GPU, whatever [index] backend says
    for backend in ("auto", "gpu", "faiss-gpu"):
        options = Config.from_mapping({"gpu": {"use": "off"}, "index": {"backend": backend}}).index.search_options()
        assert pick_backend(options["backend"], 6, 10**6, device=options["device"]) in ("mih", "faiss")


def lane_keys(chunks, q: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Sorted keys i * q + j of a lane join's (index row, query row) pairs; fails on a repeat."""
    parts = []
    for i, j in chunks:
        i = i.get() if hasattr(i, "get") else i
        j = j.get() if hasattr(j, "get") else j
        assert i.dtype == np.int64 and j.dtype == np.int64
        parts.append(i * q + j)
    out = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    assert not (out[1:] == out[:-1]).any(), "a pair came out twice"
    return out


def numpy_brute_queries(x: np.ndarray, queries: np.ndarray, radius: int) -> np.ndarray:
    q, out = len(queries), []
    for s in range(0, len(x), 4096):
        i, j = np.nonzero(np.bitwise_count(x[s : s + 4096, None] ^ queries[None, :]) <= radius)
        out.append((i + s) * q + j)
    return np.sort(np.concatenate(out))


@pytest.mark.parametrize("kind", ["uniform", "near", "skewed"])
@pytest.mark.parametrize("radius", [0, 3, 6, 8, 10, 15])
def test_lane_query_equals_brute_force(kind: str, radius: int) -> None:
    """Query mode on the GPU (resident lane tables) == brute force == the CPU lane join."""
    x = make_codes(kind, 40_000, seed=radius)
    rng = np.random.default_rng(radius)
    queries = make_codes(kind, 3000, seed=100 + radius)
    queries[:1500] = x[rng.integers(0, len(x), 1500)] ^ (queries[:1500] & np.uint64(0x0101010101010101))
    queries[1500:1510] = 0  # the skewed set's bucket of black frames
    want = numpy_brute_queries(x, queries, radius)
    tables = gpu_lanes.DeviceLanes.build(x)
    np.testing.assert_array_equal(lane_keys(gpu_lanes.join(tables, queries, radius), len(queries)), want)
    np.testing.assert_array_equal(lane_keys(lanes.join(x, queries, radius), len(queries)), want)
    # the same tables, another batch, buffers of 100 pairs: ranges split (and grow) on overflow
    np.testing.assert_array_equal(lane_keys(gpu_lanes.join(tables, queries[:700], radius, capacity=100), 700),
                                  numpy_brute_queries(x, queries[:700], radius))


def test_lane_query_at_scale() -> None:
    """2M indexed codes (skewed, 1% black frames) and 1,000 near queries at radius 6: GPU == CPU."""
    x = make_codes("skewed", 2_000_000, seed=7)
    rng = np.random.default_rng(7)
    queries = x[rng.integers(0, len(x), 1000)] ^ (np.uint64(1) << rng.integers(0, 64, 1000).astype(np.uint64))
    want = lane_keys(lanes.join(x, queries, 6), 1000)
    assert len(want) > 1000
    got = lane_keys(gpu_lanes.join(gpu_lanes.DeviceLanes.build(x), queries, 6, capacity=1 << 16), 1000)
    np.testing.assert_array_equal(got, want)


def test_query_pairs_on_the_gpu_as_the_engine_calls_it() -> None:
    """The batch already added to the index (its ids queried again): GPU == CPU."""
    rng = np.random.default_rng(8)
    n, batch = 50_000, 1000
    codes = np.stack([make_codes("near", n, seed=s) for s in range(4)], axis=1)
    ids = np.arange(n, dtype=np.int64) * 3 + 1
    rows = np.sort(rng.choice(n, batch, replace=False))
    for radii in ((6, 6, 6, 6), (8, 10, 10, 8)):
        cpu = query_pairs(ids, codes, ids[rows], codes[rows], radii, backend="mih")
        dev = query_pairs(ids, codes, ids[rows], codes[rows], radii, backend="gpu")
        assert len(cpu) > batch // 2
        for name in ("a", "b", "dist"):
            np.testing.assert_array_equal(getattr(dev, name), getattr(cpu, name))


@pytest.mark.parametrize("kind", ["uniform", "near", "skewed"])
@pytest.mark.parametrize("radius", [0, 3, 6, 8, 10])
@pytest.mark.parametrize("first_query", [0, 2500])
def test_small_joins_equal_brute_force(kind: str, radius: int, first_query: int) -> None:
    x = make_codes(kind, 4000, seed=radius)
    n = len(x)
    want = numpy_brute(x, radius, first_query)
    plans = {mih.make_plan(radius, max(3, min(radius + 1, 16))), mih.make_plan(radius, 4)}
    np.testing.assert_array_equal(keys(cupy_join.brute_join(x, radius, first_query=first_query), n), want)
    np.testing.assert_array_equal(keys(mih.join(x, radius, first_query=first_query), n), want)
    np.testing.assert_array_equal(keys(cupy_join.mih_join(x, radius, first_query=first_query), n), want)
    for plan in plans:
        got = keys(cupy_join.mih_join(x, radius, first_query=first_query, plan=plan), n)
        np.testing.assert_array_equal(got, want, err_msg=str(plan))


@pytest.mark.parametrize("kind", ["near", "skewed"])
def test_large_joins_agree(kind: str) -> None:
    """300k codes at radius 6: GPU multi-index == GPU brute force == CPU multi-index.

    (Uniform random codes have almost no pairs within 6 bits at this size: about 0.2
    expected among 4.5e10 pairs, so the planted "near" set is what exercises the joins.)
    """
    x = make_codes(kind, 300_000, seed=1)
    n = len(x)
    brute = keys(cupy_join.brute_join(x, 6), n)
    assert len(brute) > 50_000
    np.testing.assert_array_equal(keys(cupy_join.mih_join(x, 6), n), brute)
    np.testing.assert_array_equal(keys(cupy_join.mih_join(x, 6, plan=mih.make_plan(6, 7)), n), brute)
    np.testing.assert_array_equal(keys(mih.join(x, 6), n), brute)
    q0 = n - 5000
    np.testing.assert_array_equal(keys(cupy_join.mih_join(x, 6, first_query=q0), n),
                                  keys(cupy_join.brute_join(x, 6, first_query=q0), n))


def test_output_overflow_is_split_not_lost() -> None:
    """5,000 identical frames (12.5M pairs) through buffers of 100,000 pairs."""
    x = make_codes("uniform", 20_000, seed=2)
    x[:5000] = 0
    n = len(x)
    want = numpy_brute(x, 2)
    np.testing.assert_array_equal(keys(cupy_join.mih_join(x, 2, capacity=100_000), n), want)
    np.testing.assert_array_equal(keys(cupy_join.brute_join(x, 2, capacity=100_000), n), want)


def test_all_pairs_and_query_pairs_on_the_gpu() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    codes = np.stack([make_codes("near", n, seed=s) for s in range(4)], axis=1)
    ids = rng.choice(10**12, n, replace=False).astype(np.int64)
    radii = (8, 10, 10, 8)
    want = all_pairs(ids, codes, radii, backend="mih")
    got = all_pairs(ids, codes, radii, backend="gpu")
    for name in ("a", "b", "dist"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    for batch in (300, 12_000):  # brute force for a small batch, the multi-index join for a big one
        cpu = query_pairs(ids[batch:], codes[batch:], ids[:batch], codes[:batch], radii, backend="faiss")
        dev = query_pairs(ids[batch:], codes[batch:], ids[:batch], codes[:batch], radii, backend="gpu")
        for name in ("a", "b", "dist"):
            np.testing.assert_array_equal(getattr(dev, name), getattr(cpu, name))


def test_faiss_gpu_knn_join() -> None:
    problem = flat.gpu_flat_problem()
    if problem is not None and "no GPU support" in problem:
        pytest.skip(problem)
    assert problem is None  # a faiss-gpu build that works on this card (1.15.1 does on the H100)
    x = make_codes("skewed", 30_000, seed=3)
    x[:300] = 7  # more identical codes than k: those queries are completed on the CPU
    n = len(x)
    for first_query in (0, 20_000):
        want = keys(flat.range_join(x, 6, first_query=first_query), n)
        np.testing.assert_array_equal(keys(flat.knn_join(x, 6, first_query=first_query, k=64), n), want)
