"""Radius joins on a CUDA GPU with CuPy: a brute-force reference and a multi-index join.

CuPy is imported lazily (:func:`lumina_plugin.gpu_status.cupy_module`, the one place that looks
for it), so this module imports (and everything else runs) without it. Nothing
here is used before :func:`.gpu_check.gpu_problem` has compared both kernels with the CPU join on a few
thousand codes: a GPU that gives a different answer is reported and left alone.

Two kernels, each as plain CUDA C (``cupy.RawKernel``), one thread per row:

- ``brute_join``: rows are tiled 256 at a time into shared memory; each thread XORs its code with
  the tile and keeps ``popcount <= radius``. n²/2 comparisons: the reference.
- ``mih_join``: the multi-index join of :mod:`.mih` (same plans, same first-block rule): per block
  the codes are sorted by the block key (``cupy.argsort``), a dense table gives each key's run,
  and each thread scans the runs of its key and of its key's flips.

Query mode (a batch against codes kept on the device) has its own kernel in :mod:`.gpu_lanes`,
checked by :func:`.gpu_check.gpu_problem` with these.

Output is chunked: a kernel writes pairs through an atomic counter into fixed buffers for one
range of rows; when a range produces more pairs than fit, it is split and run again (its extra
pairs were counted, not written), so huge buckets of near-identical frames never need more than
the buffers. Rows are int32 on the device (n < 2**31).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..gpu_status import require_cupy
from . import mih

__all__ = [
    "DEFAULT_CAPACITY", "brute_join", "choose_plan", "estimate_seconds", "mih_join",
]

#: Pairs one kernel launch may write (two int32 arrays: 8 bytes a pair).
DEFAULT_CAPACITY = 1 << 25
#: Dense key tables on the GPU: up to 2**24 entries.
MAX_GPU_TABLE_BITS = 24
# Cost model for choosing a plan on the GPU, nanoseconds (H100 class, estimates to refit from
# benchmarks/search.py; see docs/index.md): sorting one row by one block, one neighbour probe,
# one candidate check; one brute-force comparison (1M codes, all pairs: 0.26 s).
_NS_SORT, _NS_PROBE, _NS_CANDIDATE, _NS_BRUTE = 1.0, 0.05, 0.001, 0.0005

_SOURCE = r"""
typedef unsigned long long u64;
#define TILE 256

__device__ __forceinline__ void emit(long long a, long long b, int* out_i, int* out_j,
                                     u64* counter, u64 capacity) {
    u64 slot = atomicAdd(counter, 1ULL);      // counted even when full: the host sees overflow
    if (slot < capacity) {
        out_i[slot] = (int)(a < b ? a : b);
        out_j[slot] = (int)(a < b ? b : a);
    }
}

// Rows i in [i_begin, i_end) against rows j in [0, n): keep j > i, or j < q0 (an index row
// against a query). All pairs: q0 = 0. blockDim.x must be TILE.
extern "C" __global__ void brute_join(const u64* __restrict__ x, long long n, long long q0,
                                      long long i_begin, long long i_end, int radius,
                                      int* out_i, int* out_j, u64* counter, u64 capacity) {
    __shared__ u64 tile[TILE];
    const long long first = i_begin + (long long)blockIdx.x * TILE;
    const long long i = first + threadIdx.x;
    const bool active = i < i_end;
    const u64 a = active ? x[i] : 0ULL;
    for (long long j0 = (q0 == 0 ? first : 0); j0 < n; j0 += TILE) {
        const long long jt = j0 + threadIdx.x;
        tile[threadIdx.x] = jt < n ? x[jt] : 0ULL;
        __syncthreads();
        if (active) {
            const long long m = n - j0 < TILE ? n - j0 : TILE;
            for (int t = 0; t < m; ++t) {
                const long long j = j0 + t;
                if (!(j > i || j < q0)) continue;
                if (__popcll(a ^ tile[t]) <= radius) emit(i, j, out_i, out_j, counter, capacity);
            }
        }
        __syncthreads();
    }
}

// One block of a multi-index join. Sorted positions p in [p_begin, p_end); sx, sk, order: code,
// key and row of each sorted position; table[key] .. table[key + 1]: the positions of a key.
// is_query[p] (query_mode only): which positions are queries.
extern "C" __global__ void mih_join(const u64* __restrict__ sx, const unsigned int* __restrict__ sk,
                                    const int* __restrict__ order, const unsigned char* __restrict__ is_query,
                                    const long long* __restrict__ table, long long p_begin, long long p_end,
                                    const unsigned int* __restrict__ flips, int n_flips,
                                    const u64* __restrict__ earlier, int n_earlier, int s, int radius,
                                    int query_mode, int* out_i, int* out_j, u64* counter, u64 capacity) {
    const long long p = p_begin + (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= p_end) return;
    if (query_mode && !is_query[p]) return;
    const unsigned int kp = sk[p];
    const u64 a = sx[p];
    for (int f = 0; f < n_flips; ++f) {
        const unsigned int kq = kp ^ flips[f];
        long long q = table[kq];
        const long long q_end = table[kq + 1];
        if (!query_mode) {
            if (kq == kp) q = p + 1;          // inside the run: only the positions after p
            else if (kq < kp) continue;       // two runs meet once, from the smaller key
        }
        for (; q < q_end; ++q) {
            // Queries: index positions once; two queries (or p itself) from the smaller side only.
            if (query_mode && is_query[q] && !(kp < kq || (kp == kq && p < q))) continue;
            const u64 d = a ^ sx[q];
            if (__popcll(d) > radius) continue;
            bool first = true;                // kept only in the first block within s bits
            for (int e = 0; e < n_earlier; ++e) {
                if (__popcll(d & earlier[e]) <= s) { first = false; break; }
            }
            if (first) emit(order[p], order[q], out_i, out_j, counter, capacity);
        }
    }
}
"""


@functools.cache
@functools.cache
def _kernels(device: int) -> tuple[Any, Any]:
    cp = require_cupy()
    with cp.cuda.Device(device):
        module = cp.RawModule(code=_SOURCE, options=("-std=c++14",))
        return module.get_function("brute_join"), module.get_function("mih_join")


def _split(a: int, b: int, parts: int) -> list[tuple[int, int]]:
    """[a, b) cut into ``parts`` near-equal non-empty ranges, last first (a stack pops the first)."""
    cuts = np.linspace(a, b, min(b - a, max(parts, 1)) + 1).astype(np.int64).tolist()
    return list(zip(cuts[-2::-1], cuts[:0:-1]))


def _chunks(
    cp: Any, n_rows: int, begin: int, end: int, capacity: int, launch: Callable[..., None], expect: list[int]
) -> Iterator[tuple[Any, Any]]:
    """Run ``launch(a, b, out_i, out_j, counter, capacity)`` over [begin, end), splitting any range
    whose pairs overflow the buffers; yield each range's pairs as int64 device arrays.

    ``expect[0]``: pairs expected (the previous block's count, say), to split up front rather
    than after a wasted overflowing launch; set to the pairs found here on return.
    """
    if n_rows >= 2**31:
        raise ValueError(f"the GPU joins handle fewer than 2**31 rows, got {n_rows}")
    out_i = cp.empty(capacity, cp.int32)
    out_j = cp.empty(capacity, cp.int32)
    counter = cp.zeros(1, cp.uint64)
    todo = _split(begin, end, math.ceil(expect[0] * 1.25 / capacity))
    total = 0
    while todo:
        a, b = todo.pop()
        counter.fill(0)
        launch(a, b, out_i, out_j, counter, capacity)
        found = int(counter.get()[0])
        if found <= capacity:
            total += found
            if found:
                yield out_i[:found].astype(cp.int64), out_j[:found].astype(cp.int64)
        elif b - a == 1:  # one row alone overflows: grow the buffers to what it needs
            capacity = found
            out_i, out_j = cp.empty(capacity, cp.int32), cp.empty(capacity, cp.int32)
            todo.append((a, b))
        else:  # split into pieces expected to fit (its pairs were counted, not all written)
            todo.extend(_split(a, b, math.ceil(found * 1.25 / capacity)))
    expect[0] = total


def brute_join(
    x: Any, radius: int, *, first_query: int = 0, device: int = 0, capacity: int = DEFAULT_CAPACITY
) -> Iterator[tuple[Any, Any]]:
    """Yield row pairs ``(i, j)`` (CuPy int64, i < j) within ``radius`` bits, each once, by brute
    force. ``x``: uint64 codes (NumPy or CuPy); ``first_query`` as in :func:`.mih.join`."""
    cp = require_cupy()
    n = len(x)
    if radius < 0 or n < 2 or first_query >= n:
        return
    brute, _ = _kernels(device)
    with cp.cuda.Device(device):
        xd = cp.ascontiguousarray(cp.asarray(x, dtype=cp.uint64))

        def launch(a: int, b: int, oi: Any, oj: Any, counter: Any, cap: int) -> None:
            grid = (b - a + 255) // 256
            brute((grid,), (256,), (xd, np.int64(n), np.int64(first_query), np.int64(a), np.int64(b),
                                    np.int32(radius), oi, oj, counter, np.uint64(cap)))

        yield from _chunks(cp, n, first_query, n, capacity, launch, [0])


def estimate_seconds(plan: mih.Plan | None, n: int, queries: int | None = None) -> float:
    """GPU cost model: the multi-index join with ``plan``, or brute force when ``plan`` is None."""
    q = n if queries is None else queries
    pairs = n * n / 2 if queries is None else q * n
    if plan is None:
        return pairs * _NS_BRUTE * 1e-9
    cost = 0.0
    for _, bits in plan.blocks:
        flips = sum(math.comb(bits, t) for t in range(plan.flips + 1))
        cost += n * _NS_SORT + q * flips * _NS_PROBE + pairs * flips / 2.0**bits * _NS_CANDIDATE
    return cost * 1e-9


def choose_plan(radius: int, n: int, queries: int | None = None) -> mih.Plan | None:
    """The multi-index plan the GPU cost model finds fastest (blocks of at most 24 bits), or None
    when brute force is predicted faster (a small batch, a large radius)."""
    plans = []
    for m in range(3, max(3, min(radius + 1, mih.MAX_BLOCKS)) + 1):
        try:
            plans.append(mih.make_plan(radius, m))
        except ValueError:
            continue
    best = min(plans, key=lambda p: estimate_seconds(p, n, queries), default=None)
    if best is None or estimate_seconds(best, n, queries) > estimate_seconds(None, n, queries):
        return None
    return best


def mih_join(
    x: Any,
    radius: int,
    *,
    first_query: int = 0,
    plan: mih.Plan | None = None,
    device: int = 0,
    capacity: int = DEFAULT_CAPACITY,
) -> Iterator[tuple[Any, Any]]:
    """The multi-index join of :func:`.mih.join` on the GPU: same arguments and pairs, as CuPy
    int64 arrays. Plans need blocks of at most 24 bits (at least 3 blocks); without a plan the
    cost model picks one, or brute force where that is predicted faster."""
    cp = require_cupy()
    n = len(x)
    if radius < 0 or n < 2 or first_query >= n:
        return
    plan = plan or choose_plan(radius, n, None if first_query == 0 else n - first_query)
    if plan is None:  # brute force is predicted faster
        yield from brute_join(x, radius, first_query=first_query, device=device, capacity=capacity)
        return
    if plan.radius != radius or max(bits for _, bits in plan.blocks) > MAX_GPU_TABLE_BITS:
        raise ValueError(f"plan {plan} does not fit radius {radius} on the GPU")
    _, kernel = _kernels(device)
    with cp.cuda.Device(device):
        xd = cp.ascontiguousarray(cp.asarray(x, dtype=cp.uint64))
        masks = cp.asarray(np.array(plan.masks, dtype=np.uint64))
        expect = [0]  # pairs of the previous block: how finely to cut the next one up front
        for k, (shift, bits) in enumerate(plan.blocks):
            key = ((xd >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(cp.uint32)
            order = cp.argsort(key)
            sk, sx = key[order], xd[order]
            table = cp.zeros((1 << bits) + 1, cp.int64)
            table[1:] = cp.cumsum(cp.bincount(sk, minlength=1 << bits))
            query_mode = int(first_query > 0)
            is_query = (order >= first_query).astype(cp.uint8) if query_mode else cp.zeros(1, cp.uint8)
            order32 = order.astype(cp.int32)
            del key, order
            flips = cp.asarray(np.array(plan.flip_masks(bits), dtype=np.uint32))
            earlier = masks[:k] if k else cp.zeros(1, cp.uint64)
            # The kernel's arguments before and after the range of positions and the buffers.
            head = (sx, sk, order32, is_query, table)
            tail = (flips, np.int32(len(flips)), earlier, np.int32(k), np.int32(plan.flips), np.int32(radius),
                    np.int32(query_mode))
            launch = functools.partial(_launch_mih, kernel, head, tail)
            yield from _chunks(cp, n, 0, n, capacity, launch, expect)


def _launch_mih(kernel: Any, head: tuple[Any, ...], tail: tuple[Any, ...], a: int, b: int, oi: Any, oj: Any,
                counter: Any, cap: int) -> None:
    """One ``mih_join`` launch over sorted positions [a, b), 256 threads a block."""
    grid = (b - a + 255) // 256
    kernel((grid,), (256,), (*head, np.int64(a), np.int64(b), *tail, oi, oj, counter, np.uint64(cap)))
