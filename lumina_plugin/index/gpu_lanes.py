"""Query mode on a CUDA GPU: a batch of codes against codes kept on the device, through lane tables.

The GPU form of :mod:`.lanes` (same lanes, same rule, same pairs). :class:`DeviceLanes` holds one
column of indexed codes on the device with each lane's sorted order and key table, built once
(24 bytes a code and 1 MiB); a query uploads the batch and runs one kernel in which each thread
takes one (query, lane, flip mask): it scans the codes whose lane key is the query's key XOR the
mask, checks all 64 bits, and keeps a pair only in the first lane within ``s = r // 4`` bits.

Output goes through :func:`.cupy_join._chunks` (fixed buffers, an atomic counter, ranges split and run
again on overflow), so a batch of black frames against thousands of indexed ones is never lost.
:func:`self_check` compares the kernel with the CPU lane join; :func:`.gpu_check.gpu_problem` runs it
before any GPU join is trusted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..gpu_status import require_cupy
from . import cupy_join, lanes

__all__ = ["DeviceLanes", "join", "query_join", "self_check"]

_STARTS = lanes.KEYS + 1  # entries of one lane's key table

_SOURCE = r"""
typedef unsigned long long u64;

// The pair rule of a code found in lane `lane` at distance bits d = a ^ b: all 64 bits within
// radius, and kept only in the first lane within s bits (so a pair found in several lanes is
// written once). A kept pair (rows[p], query) goes out through an atomic counter, counted even past
// capacity (the host then splits the range); rows[p] is read only then. gpu_resident.lane_scan
// keeps pairs by it too.
__device__ __forceinline__ void keep_pair(u64 d, int lane, int s, int radius, const int* rows, long long p,
                                          long long query, int* out_i, int* out_j, u64* counter, u64 capacity) {
    if (__popcll(d) > radius) return;
    for (int e = 0; e < lane; ++e) {
        if (__popcll((d >> (16 * e)) & 0xFFFFULL) <= s) return;
    }
    const u64 slot = atomicAdd(counter, 1ULL);
    if (slot < capacity) {
        out_i[slot] = rows[p];
        out_j[slot] = (int)query;
    }
}

// One thread per (query, lane, flip mask): t = (query * 4 + lane) * n_flips + flip, for t in
// [t_begin, t_end). order[lane * n + p]: rows sorted by the lane's key; the rows with key k are at
// positions starts[lane * 65537 + k] .. starts[lane * 65537 + k + 1]; keep_pair keeps the pairs.
extern "C" __global__ void lane_query(const u64* __restrict__ x, const int* __restrict__ order,
                                      const int* __restrict__ starts, long long n,
                                      const u64* __restrict__ queries, const unsigned int* __restrict__ flips,
                                      int n_flips, long long t_begin, long long t_end, int s, int radius,
                                      int* out_i, int* out_j, u64* counter, u64 capacity) {
    const long long t = t_begin + (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= t_end) return;
    const int flip = (int)(t % n_flips);
    const int lane = (int)((t / n_flips) % 4);
    const long long query = t / n_flips / 4;
    const u64 a = queries[query];
    const unsigned int key = ((unsigned int)(a >> (16 * lane)) & 0xFFFFu) ^ flips[flip];
    const int* rows = order + (long long)lane * n;
    const int* st = starts + (long long)lane * 65537;
    const long long end = st[key + 1];
    for (long long p = st[key]; p < end; ++p) {
        keep_pair(a ^ x[rows[p]], lane, s, radius, rows, p, query, out_i, out_j, counter, capacity);
    }
}
"""


@functools.cache
def _kernel(device: int) -> Any:
    cp = require_cupy()
    with cp.cuda.Device(device):
        return cp.RawModule(code=_SOURCE, options=("-std=c++14",)).get_function("lane_query")


@dataclass(frozen=True)
class DeviceLanes:
    """One column of codes on a GPU with its lane tables (the layout of :class:`.lanes.LaneTables`,
    lanes one after another): build once, query many times."""

    x: Any  # uint64 (n,)
    order: Any  # int32 (4 * n,): lane l's sorted rows at [l * n, (l + 1) * n)
    starts: Any  # int32 (4 * 65537,): lane l's key table at [l * 65537, (l + 1) * 65537)
    n: int
    device: int

    @classmethod
    def build(cls, x: Any, device: int = 0) -> DeviceLanes:
        """Upload ``x`` (uint64 (n,), NumPy or CuPy, n < 2**31) and sort each lane on the device."""
        cp = require_cupy()
        n = len(x)
        if n >= 2**31:
            raise ValueError(f"the GPU lane tables hold fewer than 2**31 codes, got {n}")
        if isinstance(x, np.ndarray):  # (a column of the index's codes is strided: upload it packed)
            x = np.ascontiguousarray(x, dtype=np.uint64)
        with cp.cuda.Device(device):
            xd = cp.ascontiguousarray(cp.asarray(x, dtype=cp.uint64))
            order = cp.empty(lanes.LANES * n, cp.int32)
            starts = cp.zeros(lanes.LANES * _STARTS, cp.int32)
            for lane in range(lanes.LANES if n else 0):
                key = ((xd >> np.uint64(lanes.LANE_BITS * lane)) & np.uint64(lanes.KEYS - 1)).astype(cp.int32)
                order[lane * n : (lane + 1) * n] = cp.argsort(key).astype(cp.int32)
                counts = cp.bincount(key, minlength=lanes.KEYS)
                starts[lane * _STARTS + 1 : (lane + 1) * _STARTS] = cp.cumsum(counts).astype(cp.int32)
        return cls(xd, order, starts, n, device)


def join(
    tables: DeviceLanes, queries: Any, radius: int, *, capacity: int = cupy_join.DEFAULT_CAPACITY
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(i, j)`` (CuPy int64): code ``i`` of ``tables`` and ``queries[j]`` within
    ``radius`` bits, every such pair once (as :func:`.lanes.join`). ``queries``: uint64, NumPy or
    CuPy. ``capacity``: pairs one launch may write (8 bytes each)."""
    if not lanes.usable(radius):
        raise ValueError(f"the lane join serves radii 0 to {lanes.MAX_RADIUS}, got {radius}")
    cp = require_cupy()
    q = len(queries)
    if tables.n == 0 or q == 0:
        return
    flips = radius // lanes.LANES
    masks = lanes.flip_masks(flips)
    kernel = _kernel(tables.device)
    if isinstance(queries, np.ndarray):
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
    with cp.cuda.Device(tables.device):
        qd = cp.ascontiguousarray(cp.asarray(queries, dtype=cp.uint64))
        fd = cp.asarray(masks.astype(np.uint32))
        head = (tables.x, tables.order, tables.starts, np.int64(tables.n), qd, fd, np.int32(len(masks)))
        tail = (np.int32(flips), np.int32(radius))

        def launch(a: int, b: int, oi: Any, oj: Any, counter: Any, cap: int) -> None:
            grid = (b - a + 255) // 256
            kernel((grid,), (256,), (*head, np.int64(a), np.int64(b), *tail, oi, oj, counter, np.uint64(cap)))

        yield from cupy_join._chunks(cp, max(tables.n, q), 0, q * lanes.LANES * len(masks), capacity, launch, [0])


def query_join(
    x: np.ndarray, queries: np.ndarray, radius: int, *, device: int = 0, capacity: int = cupy_join.DEFAULT_CAPACITY
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`.lanes.join` on the GPU for codes that are not kept there: upload, build, query,
    and yield NumPy int64 pairs (what the search does for an index held in host memory)."""
    if len(x) == 0 or len(queries) == 0:
        return
    tables = DeviceLanes.build(x, device)
    for i, j in join(tables, queries, radius, capacity=capacity):
        yield i.get(), j.get()


def _pair_keys(chunks: Iterator[tuple[Any, Any]], q: int) -> np.ndarray:
    keys = [np.asarray(i.get() if hasattr(i, "get") else i) * q + np.asarray(j.get() if hasattr(j, "get") else j)
            for i, j in chunks]
    return np.sort(np.concatenate(keys)) if keys else np.empty(0, np.int64)


def self_check(x: np.ndarray, device: int = 0) -> str | None:
    """Why the lane kernel must not be used (None: it agrees with the CPU lane join on ``x``).

    Queries: near copies of indexed codes at 0 to 11 bits, copies of the most repeated code (a
    bucket that overflows the small buffers used here) and random codes; radii 0, 3, 6 and 10.
    """
    rng = np.random.default_rng(20261126)
    base = x[: len(x) - len(x) // 6]
    near = base[rng.integers(0, len(base), len(x) // 6)].copy()
    for t in range(len(near)):
        near[t] ^= np.uint64(sum(1 << int(b) for b in rng.choice(64, int(rng.integers(0, 12)), replace=False)))
    values, counts = np.unique(base, return_counts=True)
    queries = np.concatenate([near, np.full(8, values[np.argmax(counts)], np.uint64),
                              rng.integers(0, 2**64, 64, dtype=np.uint64, endpoint=False)])
    tables = DeviceLanes.build(base, device)
    for radius in (0, 3, 6, 10):
        want = _pair_keys(lanes.join(base, queries, radius), len(queries))
        got = _pair_keys(join(tables, queries, radius, capacity=1024), len(queries))
        if not np.array_equal(got, want):
            return f"lane_query disagrees with the CPU lane join (radius {radius}: {len(got)} vs {len(want)} pairs)"
    return None
