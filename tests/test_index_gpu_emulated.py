"""The CUDA kernels of lumina_plugin.index.cupy_join, run on the CPU: their exact source compiled as C++.

Machines without a GPU still check the GPU join end to end: the kernel source is compiled with
g++ behind a small CUDA shim (one OS thread per CUDA thread, a barrier for ``__syncthreads``,
shared memory per block), and a stand-in ``cupy`` module backed by NumPy runs the host code of
``cupy_join.py`` unchanged. The stand-in checks every kernel argument against the kernel's C signature
(scalar widths, array dtypes, contiguity), as a real launch would need. The real GPU is covered by
tests/test_index_gpu.py on the GPU machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lumina_plugin import gpu_status
from lumina_plugin.gpu_status import Why
from lumina_plugin.index import cupy_join, gpu_check, gpu_lanes, lanes, mih
from lumina_plugin.index.search import all_pairs, query_pairs

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the kernels for the CPU")

_SHIM = r"""
#include <atomic>
#include <barrier>
#include <thread>
#include <vector>
typedef unsigned long long u64;
struct dim3 { unsigned x = 0, y = 0, z = 0; };
thread_local dim3 blockIdx, threadIdx;
static dim3 blockDim;
static std::barrier<>* g_barrier = nullptr;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
static inline void __syncthreads() { g_barrier->arrive_and_wait(); }
static inline int __popcll(u64 v) { return __builtin_popcountll(v); }
static inline u64 atomicAdd(u64* p, u64 v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
"""

_WRAPPERS = r"""
// brute_join synchronises its block: one OS thread per CUDA thread. The threads run the blocks one
// after another in lockstep (the kernel's last __syncthreads ends each block's use of the tile).
extern "C" void run_brute_join(unsigned grid, unsigned block, const u64* x, long long n, long long q0,
                               long long ib, long long ie, int radius, int* oi, int* oj, u64* counter,
                               u64 cap) {
    blockDim.x = block;
    std::barrier<> bar(block);
    g_barrier = &bar;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t)
        threads.emplace_back([=] {
            for (unsigned b = 0; b < grid; ++b) {
                blockIdx.x = b; threadIdx.x = t;
                brute_join(x, n, q0, ib, ie, radius, oi, oj, counter, cap);
            }
        });
    for (auto& th : threads) th.join();
}
// mih_join and lane_query have no barrier: their threads run one after another.
extern "C" void run_mih_join(unsigned grid, unsigned block, const u64* sx, const unsigned* sk,
                             const int* order, const unsigned char* isq, const long long* table,
                             long long pb, long long pe, const unsigned* flips, int nf, const u64* earlier,
                             int ne, int s, int radius, int qm, int* oi, int* oj, u64* counter, u64 cap) {
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b; threadIdx.x = t;
            mih_join(sx, sk, order, isq, table, pb, pe, flips, nf, earlier, ne, s, radius, qm, oi, oj, counter, cap);
        }
}
extern "C" void run_lane_query(unsigned grid, unsigned block, const u64* x, const int* order, const int* starts,
                               long long n, const u64* queries, const unsigned* flips, int nf, long long tb,
                               long long te, int s, int radius, int* oi, int* oj, u64* counter, u64 cap) {
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b; threadIdx.x = t;
            lane_query(x, order, starts, n, queries, flips, nf, tb, te, s, radius, oi, oj, counter, cap);
        }
}
"""

# Each kernel parameter: a NumPy scalar type (passed by value) or ("ptr", dtype) for an array.
_P = "ptr"
_SIGNATURES: dict[str, list[object]] = {
    "brute_join": [(_P, np.uint64), np.int64, np.int64, np.int64, np.int64, np.int32,
                   (_P, np.int32), (_P, np.int32), (_P, np.uint64), np.uint64],
    "mih_join": [(_P, np.uint64), (_P, np.uint32), (_P, np.int32), (_P, np.uint8), (_P, np.int64),
                 np.int64, np.int64, (_P, np.uint32), np.int32, (_P, np.uint64), np.int32, np.int32,
                 np.int32, np.int32, (_P, np.int32), (_P, np.int32), (_P, np.uint64), np.uint64],
    "lane_query": [(_P, np.uint64), (_P, np.int32), (_P, np.int32), np.int64, (_P, np.uint64), (_P, np.uint32),
                   np.int32, np.int64, np.int64, np.int32, np.int32, (_P, np.int32), (_P, np.int32),
                   (_P, np.uint64), np.uint64],
}
_CTYPE = {np.int64: ctypes.c_longlong, np.int32: ctypes.c_int, np.uint64: ctypes.c_ulonglong}


class DeviceArray(np.ndarray):
    """A NumPy array that answers ``.get()`` as a CuPy array does."""

    def get(self) -> np.ndarray:
        return np.array(self)


def _dev(a: object) -> object:
    return a.view(DeviceArray) if isinstance(a, np.ndarray) else a


class _Kernel:
    def __init__(self, lib: ctypes.CDLL, name: str) -> None:
        self.name, self.fn, self.sig = name, getattr(lib, f"run_{name}"), _SIGNATURES[name]
        self.fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
            ctypes.c_void_p if isinstance(p, tuple) else _CTYPE[p] for p in self.sig  # type: ignore[index]
        ]
        self.fn.restype = None

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[object, ...]) -> None:
        assert len(args) == len(self.sig), f"{self.name}: {len(args)} arguments for {len(self.sig)} parameters"
        values = []
        for k, (arg, want) in enumerate(zip(args, self.sig)):
            if isinstance(want, tuple):
                assert isinstance(arg, np.ndarray), f"{self.name} arg {k}: an array is needed"
                assert arg.dtype == want[1], f"{self.name} arg {k}: {arg.dtype}, kernel reads {np.dtype(want[1])}"
                assert arg.flags.c_contiguous, f"{self.name} arg {k}: not contiguous"
                values.append(arg.ctypes.data)
            else:
                assert type(arg) is want, f"{self.name} arg {k}: {type(arg).__name__}, kernel takes {want.__name__}"  # type: ignore[union-attr]
                values.append(int(arg))  # type: ignore[call-overload]
        assert len(grid) == 1 and len(block) == 1 and grid[0] >= 1
        self.fn(int(grid[0]), int(block[0]), *values)


def _fake_cupy(lib: ctypes.CDLL) -> types.ModuleType:
    """Just the CuPy that cupy_join.py uses, on NumPy."""
    cp = types.ModuleType("cupy")
    for name in ("uint64", "int64", "int32", "uint32", "uint8"):
        setattr(cp, name, getattr(np, name))

    def wrap(fn):  # type: ignore[no-untyped-def]
        return lambda *a, **k: _dev(fn(*a, **k))

    for name in ("asarray", "ascontiguousarray", "empty", "zeros", "argsort", "bincount", "cumsum"):
        setattr(cp, name, wrap(getattr(np, name)))

    class RawModule:
        def __init__(self, code: str, options: tuple[str, ...] = ()) -> None:
            assert code in (cupy_join._SOURCE, gpu_lanes._SOURCE)

        def get_function(self, name: str) -> _Kernel:
            return _Kernel(lib, name)

    cp.RawModule = RawModule  # type: ignore[attr-defined]
    cp.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        Device=lambda device=0: contextlib.nullcontext(),
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
    )
    return cp


@pytest.fixture(scope="module")
def kernels_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    d = tmp_path_factory.mktemp("kernels")
    src = d / "kernels.cpp"
    src.write_text(_SHIM + cupy_join._SOURCE + gpu_lanes._SOURCE + _WRAPPERS)
    so = d / "kernels.so"
    proc = subprocess.run(["g++", "-std=c++20", "-O2", "-shared", "-fPIC", "-pthread", str(src), "-o", str(so)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(Path(so)))


@pytest.fixture
def fake_gpu(kernels_lib: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    cp = _fake_cupy(kernels_lib)
    monkeypatch.setattr(gpu_status, "cupy_module", lambda: cp)
    small = gpu_check._self_check_codes(840)  # the emulation is slow: a smaller self-check
    monkeypatch.setattr(gpu_check, "_self_check_codes", lambda n=840: small)
    for cached in (cupy_join._kernels, gpu_lanes._kernel, gpu_check.gpu_problem):
        cached.cache_clear()
    yield
    for cached in (cupy_join._kernels, gpu_lanes._kernel, gpu_check.gpu_problem):
        cached.cache_clear()


def brute(x: np.ndarray, radius: int, first_query: int = 0) -> np.ndarray:
    d = np.bitwise_count(x[:, None] ^ x[None, :])
    i, j = np.nonzero(np.triu(d <= radius, 1))
    keep = j >= first_query
    return np.sort(i[keep] * len(x) + j[keep])


def keys(chunks, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    parts = []
    for i, j in chunks:
        assert isinstance(i, DeviceArray) and i.dtype == np.int64 and (i < j).all()
        parts.append(i.get() * n + j.get())
    out = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    assert not (out[1:] == out[:-1]).any(), "a pair came out twice"
    return out


def codes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    for t in range(0, n - 1, 2):
        bits = rng.choice(64, int(rng.integers(0, 11)), replace=False)
        x[t + 1] = x[t] ^ np.uint64(sum(1 << int(b) for b in bits))
    x[: n // 10] = x[0]  # a bucket of identical frames
    return rng.permutation(x)


def test_self_check_passes_on_the_emulated_kernels(fake_gpu: None) -> None:
    assert gpu_check.gpu_problem() is None


@pytest.mark.parametrize("radius", [0, 4, 6, 10])
@pytest.mark.parametrize("first_query", [0, 300])
def test_emulated_kernels_match_brute_force(fake_gpu: None, radius: int, first_query: int) -> None:
    x = codes(700, seed=radius)
    want = brute(x, radius, first_query)
    assert len(want) >= (2415 if first_query == 0 else 1)  # 2415: the bucket of 70 identical codes
    got = keys(cupy_join.brute_join(x, radius, first_query=first_query, capacity=1000), len(x))
    np.testing.assert_array_equal(got, want)  # capacity 1000: the overflow splits are exercised
    for blocks in {3, 4, max(3, min(radius + 1, 16))}:
        plan = mih.make_plan(radius, blocks)
        got = keys(cupy_join.mih_join(x, radius, first_query=first_query, plan=plan, capacity=1000), len(x))
        np.testing.assert_array_equal(got, want, err_msg=str(plan))


def test_a_single_row_over_capacity_grows_the_buffers(fake_gpu: None) -> None:
    x = np.zeros(80, np.uint64)  # each row alone has up to 79 pairs; buffers of 30
    want = brute(x, 0)  # (the buffer logic is shared by both kernels: the faster emulation runs it)
    np.testing.assert_array_equal(keys(cupy_join.mih_join(x, 0, plan=mih.make_plan(0, 3), capacity=30), len(x)), want)


def test_search_through_the_emulated_gpu(fake_gpu: None) -> None:
    rng = np.random.default_rng(9)
    n = 600
    all_codes = np.stack([codes(n, seed=s) for s in range(4)], axis=1)
    ids = rng.choice(10**9, n, replace=False).astype(np.int64)
    radii = (8, 10, -1, 4)
    want = all_pairs(ids, all_codes, radii, backend="faiss")
    got = all_pairs(ids, all_codes, radii, backend="gpu")
    for name in ("a", "b", "dist"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    cpu = query_pairs(ids[100:], all_codes[100:], ids[:100], all_codes[:100], radii, backend="faiss")
    dev = query_pairs(ids[100:], all_codes[100:], ids[:100], all_codes[:100], radii, backend="gpu")
    for name in ("a", "b", "dist"):
        np.testing.assert_array_equal(getattr(dev, name), getattr(cpu, name))


def test_a_wrong_kernel_fails_the_self_check(fake_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU that drops pairs (as faiss-gpu builds without kernels for the card do) is refused."""
    real = cupy_join.mih_join

    def lossy(*args, **kwargs):  # type: ignore[no-untyped-def]
        for i, j in real(*args, **kwargs):
            yield i[1:], j[1:]

    monkeypatch.setattr(cupy_join, "mih_join", lossy)
    problem = gpu_check.gpu_problem()
    assert problem is not None and problem.why is Why.SELF_CHECK
    assert "mih_join" in problem.detail and "disagrees" in problem.detail


def lane_pairs(chunks) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """(index row, query row) pairs of a lane join, NumPy or emulated device; fails on a repeat."""
    out: list[tuple[int, int]] = []
    for i, j in chunks:
        i, j = (np.asarray(a.get() if hasattr(a, "get") else a) for a in (i, j))
        assert i.dtype == np.int64 and j.dtype == np.int64
        out += list(zip(i.tolist(), j.tolist()))
    assert len(out) == len(set(out)), "a pair came out twice"
    return set(out)


def batch(n: int, q: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An index with a bucket of identical codes and codes sharing lane 2 while far apart; queries
    near copies of indexed codes at 0-16 bits, copies of the bucket, repeats and random codes."""
    rng = np.random.default_rng(seed)
    x = codes(n, seed)
    x[n // 3 : n // 2] = (x[n // 3 : n // 2] & ~np.uint64(0xFFFF << 32)) | np.uint64(0x1234 << 32)
    qs = rng.integers(0, 2**64, q, dtype=np.uint64, endpoint=False)
    for t in range(q // 2):
        bits = rng.choice(64, int(rng.integers(0, 17)), replace=False)
        qs[t] = x[rng.integers(0, n)] ^ np.uint64(sum(1 << int(b) for b in bits))
    values, counts = np.unique(x, return_counts=True)
    qs[q // 2 : q // 2 + 4] = values[np.argmax(counts)]  # the bucket's code (n // 10 copies)
    qs[q // 2 + 4 : q // 2 + 8] = qs[0]
    return x, qs


@pytest.mark.parametrize("radius", [0, 3, 6, 10, 15])
def test_emulated_lane_query_matches_brute_force(fake_gpu: None, radius: int) -> None:
    """The lane kernel against brute force and the CPU lane join; buffers of 200 pairs, so the
    thread ranges are split and run again."""
    x, qs = batch(600, 120, seed=radius)
    d = np.bitwise_count(x[:, None] ^ qs[None, :])
    want = set(zip(*(a.tolist() for a in np.nonzero(d <= radius))))
    assert len(want) >= 4 * 40  # 4 copies of the bucket's code x 40-60 identical codes
    tables = gpu_lanes.DeviceLanes.build(x)
    assert lane_pairs(gpu_lanes.join(tables, qs, radius, capacity=200)) == want
    assert lane_pairs(lanes.join(x, qs, radius)) == want
    # the same resident tables serve another batch
    other = qs[::-1].copy()
    assert lane_pairs(gpu_lanes.join(tables, other, radius, capacity=200)) == {(i, len(qs) - 1 - j) for i, j in want}


def test_emulated_lane_query_single_probe_over_capacity(fake_gpu: None) -> None:
    """One thread's run alone holds more pairs than the buffers: they grow."""
    x = np.zeros(90, np.uint64)
    got = lane_pairs(gpu_lanes.join(gpu_lanes.DeviceLanes.build(x), np.zeros(2, np.uint64), 2, capacity=30))
    assert got == {(i, j) for i in range(90) for j in range(2)}


def test_emulated_query_pairs_on_the_gpu_leave_requeried_rows_out(fake_gpu: None) -> None:
    """query_pairs on the GPU as the engine calls it: the batch already added to the index."""
    rng = np.random.default_rng(13)
    n, q = 500, 80
    all_codes = np.stack([codes(n, seed=s) for s in range(4)], axis=1)
    ids = np.arange(n, dtype=np.int64) * 5 + 3
    radii = (6, 10, -1, 3)
    q_rows = np.sort(rng.choice(n, q, replace=False))
    want = query_pairs(ids, all_codes, ids[q_rows], all_codes[q_rows], radii, backend="faiss")
    got = query_pairs(ids, all_codes, ids[q_rows], all_codes[q_rows], radii, backend="gpu")
    assert len(want) > 100
    for name in ("a", "b", "dist"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_a_wrong_lane_kernel_fails_the_self_check(fake_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = gpu_lanes.join

    def lossy(*args, **kwargs):  # type: ignore[no-untyped-def]
        for i, j in real(*args, **kwargs):
            yield i[:-1], j[:-1]

    monkeypatch.setattr(gpu_lanes, "join", lossy)
    problem = gpu_check.gpu_problem()
    assert problem is not None and problem.why is Why.SELF_CHECK and "lane_query" in problem.detail
