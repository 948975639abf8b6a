"""all_pairs / query_pairs against a brute-force NumPy reference on codes with planted near pairs."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faiss
import numpy as np
import pytest

from lumina_plugin import gpu_status
from lumina_plugin.gpu_status import GpuProblem, Why
from lumina_plugin.index import gpu_check, search
from lumina_plugin.index.search import BACKENDS, Pairs, all_pairs, pick_backend, query_pairs
from lumina_plugin.settings.gpu import GpuSettings
from lumina_plugin.settings.index import BACKENDS as SETTINGS_BACKENDS
from lumina_plugin.settings.index import IndexSettings

N = 5000
PLANTED = 200
MAX_PLANTED = 10  # planted distances are 0..9 bits: both sides of a radius of 8


def flip(rng: np.random.Generator, code: np.uint64, bits: int) -> np.uint64:
    mask = 0
    for b in rng.choice(64, bits, replace=False):
        mask |= 1 << int(b)
    return np.uint64(int(code) ^ mask)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Random codes, ids unrelated to row order, 200 pairs planted at known distances."""
    rng = np.random.default_rng(42)
    ids = rng.choice(10**12, N, replace=False).astype(np.int64)
    codes = rng.integers(0, 2**64, size=(N, 4), dtype=np.uint64)
    rows = rng.choice(N, 2 * PLANTED, replace=False)
    for src, dst in rows.reshape(-1, 2):
        near = rng.random(4) < 0.5
        near[rng.integers(4)] = True  # near on at least one algorithm
        for k in np.flatnonzero(near):
            codes[dst, k] = flip(rng, codes[src, k], int(rng.integers(MAX_PLANTED)))
    # A small cluster: chains and a triangle of near copies across all algorithms.
    cluster = rng.choice(np.setdiff1d(np.arange(N), rows), 5, replace=False)
    for prev, row in zip(cluster[:-1], cluster[1:]):
        for k in range(4):
            codes[row, k] = flip(rng, codes[prev, k], 2)
    return ids, codes


def brute(ids: np.ndarray, codes: np.ndarray, radii: Sequence[int]) -> Pairs:
    """Reference: every pair checked with np.bitwise_count, no index."""
    n, a, b, dist = len(ids), [], [], []
    for s in range(0, n, 256):
        d = np.bitwise_count(codes[s : s + 256, None, :] ^ codes[None, :, :])
        hit = np.zeros(d.shape[:2], bool)
        for k, r in enumerate(radii):
            if r >= 0:
                hit |= d[:, :, k] <= r
        hit &= np.arange(n)[None, :] > np.arange(s, s + len(d))[:, None]
        i, j = np.nonzero(hit)
        a.append(np.minimum(ids[s + i], ids[j]))
        b.append(np.maximum(ids[s + i], ids[j]))
        dist.append(d[i, j])
    if not a:
        return Pairs.empty()
    a_, b_, d_ = np.concatenate(a), np.concatenate(b), np.concatenate(dist).reshape(-1, 4)
    order = np.lexsort((b_, a_))
    return Pairs(a_[order], b_[order], d_[order])


def assert_pairs_equal(got: Pairs, want: Pairs) -> None:
    assert got.a.dtype == np.int64 and got.b.dtype == np.int64 and got.dist.dtype == np.uint8
    assert got.dist.shape == (len(got), 4)
    np.testing.assert_array_equal(got.a, want.a)
    np.testing.assert_array_equal(got.b, want.b)
    np.testing.assert_array_equal(got.dist, want.dist)
    assert (got.a < got.b).all()


WIDEST = 10


@pytest.fixture(scope="module")
def reference(data) -> Pairs:  # type: ignore[no-untyped-def]
    """Brute force once at the widest radius; narrower radii select from it (a superset)."""
    return brute(*data, (WIDEST,) * 4)


def select(ref: Pairs, radii: Sequence[int]) -> Pairs:
    assert max(radii) <= WIDEST
    keep = np.zeros(len(ref), bool)
    for k, r in enumerate(radii):
        if r >= 0:
            keep |= ref.dist[:, k] <= r
    return Pairs(ref.a[keep], ref.b[keep], ref.dist[keep])


CPU_BACKENDS = ["auto", "faiss", "mih"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("radii", [(4, 6, 8, -1), (0, 0, 0, 0), (-1, -1, -1, 8), (8, -1, 3, 5)])
def test_all_pairs_matches_brute_force(data, reference, radii, backend) -> None:  # type: ignore[no-untyped-def]
    ids, codes = data
    want = select(reference, radii)
    for k, r in enumerate(radii):  # the data has pairs on both sides of each active radius
        if r >= 0:
            assert (reference.dist[:, k] == r).any() and (reference.dist[:, k] == r + 1).any()
    got = all_pairs(ids, codes, radii, backend=backend)
    assert len(got) >= 30
    assert_pairs_equal(got, want)


def test_chunking_and_threads_do_not_change_the_result(data) -> None:  # type: ignore[no-untyped-def]
    ids, codes = data
    radii = (4, 6, 8, -1)
    threads = faiss.omp_get_max_threads()
    got = all_pairs(ids, codes, radii, chunk=777, faiss_threads=1, backend="faiss")
    assert faiss.omp_get_max_threads() == threads
    assert_pairs_equal(got, all_pairs(ids, codes, radii))
    assert_pairs_equal(all_pairs(ids, codes, radii, backend="mih", pair_chunk=100), got)


@pytest.mark.parametrize("backend", ["faiss", "mih"])  # ("auto" is one of them)
@pytest.mark.parametrize("radii", [(4, 6, 8, -1), (8, -1, 3, 5)])
def test_query_pairs_matches_brute_force(data, radii, backend) -> None:  # type: ignore[no-untyped-def]
    ids, codes = data
    rng = np.random.default_rng(7)
    order = rng.permutation(N)
    index_rows, query_rows = order[:4000], order[4000:]
    # Some query ids are already indexed: the query's codes count, the old ones are ignored.
    again = index_rows[:50]
    q_ids = np.concatenate([ids[query_rows], ids[again]])
    q_codes = np.concatenate([codes[query_rows], codes[again]])
    q_codes[-50:, 0] ^= np.uint64(1)  # "re-imported" with slightly different codes
    i_codes = codes[index_rows].copy()
    i_codes[:50] = rng.integers(0, 2**64, size=(50, 4), dtype=np.uint64)  # stale entries
    got = query_pairs(ids[index_rows], i_codes, q_ids, q_codes, radii, chunk=300, backend=backend, pair_chunk=999)

    union_ids = np.concatenate([ids[index_rows[50:]], q_ids])
    union_codes = np.concatenate([codes[index_rows[50:]], q_codes])
    ref = brute(union_ids, union_codes, radii)
    touches = np.isin(ref.a, q_ids) | np.isin(ref.b, q_ids)
    want = Pairs(ref.a[touches], ref.b[touches], ref.dist[touches])
    assert len(want) >= 20 and len(want) < len(ref)
    assert_pairs_equal(got, want)


def test_query_pairs_with_empty_index_is_all_pairs(data) -> None:  # type: ignore[no-untyped-def]
    ids, codes = data
    radii = (4, 6, 8, -1)
    empty_ids, empty_codes = np.empty(0, np.int64), np.empty((0, 4), np.uint64)
    assert_pairs_equal(query_pairs(empty_ids, empty_codes, ids, codes, radii), all_pairs(ids, codes, radii))
    assert len(query_pairs(ids, codes, empty_ids, empty_codes, radii)) == 0


def test_identical_images_pair_at_distance_zero() -> None:
    codes = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8]], np.uint64)
    got = all_pairs(np.array([30, 10, 20]), codes, (0, 0, 0, 0))
    assert list(zip(got.a, got.b)) == [(10, 30)]
    np.testing.assert_array_equal(got.dist, [[0, 0, 0, 0]])


def test_degenerate_inputs() -> None:
    empty = all_pairs(np.empty(0, np.int64), np.empty((0, 4), np.uint64), (4, 4, 4, 4))
    assert len(empty) == 0 and empty.dist.shape == (0, 4) and empty.a.dtype == np.int64
    one = all_pairs(np.array([7]), np.zeros((1, 4), np.uint64), (64, 64, 64, 64))
    assert len(one) == 0
    same = np.zeros((10, 4), np.uint64)
    assert len(all_pairs(np.arange(10), same, (-1, -1, -1, -1))) == 0
    assert len(query_pairs(np.arange(5), same[:5], np.arange(5, 10), same[5:], (-1, -1, -1, -1))) == 0
    assert len(all_pairs(np.arange(10), same, (0, -1, -1, -1))) == 45


def test_bad_arguments() -> None:
    codes = np.zeros((3, 4), np.uint64)
    with pytest.raises(ValueError, match="radii"):
        all_pairs(np.arange(3), codes, (1, 2, 3))
    with pytest.raises(ValueError, match="unique"):
        all_pairs(np.array([1, 1, 2]), codes, (1, 1, 1, 1))
    with pytest.raises(ValueError):
        all_pairs(np.arange(2), codes, (1, 1, 1, 1))
    with pytest.raises(ValueError, match="backend"):
        all_pairs(np.arange(3), codes, (1, 1, 1, 1), backend="cuda")


def test_backend_choice_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU rule: the multi-index join at the engine's radii, FAISS where MIH cannot win."""
    monkeypatch.setattr(gpu_status, "cupy_module", lambda: None)
    for radius in (0, 3, 6, 8, 10):
        assert pick_backend("auto", radius, 1_000_000) == "mih"
    assert pick_backend("auto", 24, 1_000_000) == "faiss"  # too many probes for any plan
    # a batch: the lane join (no sort of the index) at radii up to 15, FAISS for a handful of queries
    assert pick_backend("auto", 10, 10_000_000, queries=256) == "mih"
    assert search.query_plan(10, 10_000_000, 256) == "lanes"
    assert pick_backend("auto", 6, 1_000_010, queries=10) == "faiss"
    assert pick_backend("auto", 6, 10_000_000, queries=1_000_000) == "mih"  # the sorted join there
    assert search.query_plan(6, 10_000_000, 1_000_000) == "sorted"
    assert pick_backend("faiss", 6, 10**6) == "faiss" and pick_backend("mih", 30, 10) == "mih"


def test_gpu_backends_fall_back_with_a_warning(data, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """No GPU, or a GPU whose self-check failed: the same pairs from the CPU, and a warning."""
    if gpu_status.cupy_module() is not None:
        pytest.skip("this machine has a CuPy GPU: tests/test_index_gpu.py covers it")
    ids, codes = data
    radii = (4, 6, 8, -1)
    want = all_pairs(ids, codes, radii, backend="faiss")
    search._warned.clear()
    for backend in ("gpu", "faiss-gpu"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lumina_plugin.index.search"):
            assert_pairs_equal(all_pairs(ids, codes, radii, backend=backend), want)
        assert any(backend in r.getMessage() and "CPU" in r.getMessage() for r in caplog.records)


def test_a_gpu_failing_its_self_check_is_not_used(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(gpu_status, "cupy_module", lambda: object())  # "a GPU is present"...
    wrong = GpuProblem(Why.SELF_CHECK, "mih_join disagrees with the CPU join")
    monkeypatch.setattr(gpu_check, "gpu_problem", lambda device=0: wrong)  # ...but wrong
    search._warned.clear()
    assert pick_backend("auto", 6, 10**6) == "mih"  # auto: quietly the CPU
    with caplog.at_level(logging.WARNING):
        assert pick_backend("gpu", 6, 10**6) == "mih"
    assert "disagrees" in caplog.text


def test_the_cpu_backend_never_looks_for_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """"cpu" (what "auto" and "gpu" become when [gpu] use = "off") is the CPU rule alone."""
    def no_looking() -> None:
        raise AssertionError("the GPU must not be looked for")

    monkeypatch.setattr(gpu_status, "cupy_module", no_looking)
    monkeypatch.setattr(gpu_check, "gpu_problem", no_looking)
    assert pick_backend("cpu", 6, 10**6) == "mih" and pick_backend("cpu", 24, 10**6) == "faiss"
    assert pick_backend("cpu", 10, 10_000_000, queries=256) == "mih"
    off = IndexSettings(backend="gpu", gpu=GpuSettings(use="off")).search_options()
    assert off["backend"] == "cpu"
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 2**64, (300, 4), dtype=np.uint64, endpoint=False)
    codes[1::2] = codes[::2] ^ np.uint64(5)
    ids = np.arange(300)
    assert_pairs_equal(all_pairs(ids, codes, (4, 4, 4, 4), **off), all_pairs(ids, codes, (4, 4, 4, 4), backend="faiss"))
    assert_pairs_equal(query_pairs(ids[:200], codes[:200], ids[200:], codes[200:], (4, 4, 4, 4), **off),
                       query_pairs(ids[:200], codes[:200], ids[200:], codes[200:], (4, 4, 4, 4), backend="faiss"))


def test_settings_options_reach_the_search(data) -> None:  # type: ignore[no-untyped-def]
    ids, codes = data
    settings = IndexSettings(backend="mih", threads=1, pair_chunk=500)
    assert settings.search_options()["faiss_threads"] == 1
    assert_pairs_equal(all_pairs(ids, codes, (8, 10, 10, 8), **settings.search_options()),
                       all_pairs(ids, codes, (8, 10, 10, 8), backend="faiss"))
    assert set(BACKENDS) == set(SETTINGS_BACKENDS)
    with pytest.raises(ValueError, match="backend"):
        IndexSettings(backend="cuda")


def test_huge_bucket_of_identical_frames() -> None:
    """1,200 identical black frames among random codes: every pair, with a small pair_chunk."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 2**64, size=(2500, 4), dtype=np.uint64)
    codes[:1200] = 0
    ids = rng.permutation(10**6)[:2500].astype(np.int64)
    for backend in ("faiss", "mih"):
        got = all_pairs(ids, codes, (2, -1, 6, -1), backend=backend, pair_chunk=10_000)
        assert len(got) == 1200 * 1199 // 2 and not got.dist[:, [0, 2]].any()
