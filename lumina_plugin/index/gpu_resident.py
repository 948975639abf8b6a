"""Lane tables that stay on a CUDA GPU and grow: the device side of :mod:`.resident`.

:class:`DeviceTable` holds ``C`` columns of uint64 values (a classic hash, a geometric search
key) for the same rows, with each column's four 16-bit lanes sorted (the layout of
:class:`.gpu_lanes.DeviceLanes`, so its ``lane_query`` kernel can search them unchanged), and beside
each lane's order the values themselves in that order: the batch search (``lane_scan``, a warp
per probed key) then reads each run of entries side by side instead of gathering every value from
a random row. Measured on the H100, 1,000 queries against 10M rows: the gathers took about 11 ms
of GPU time a batch. The price: 8 more bytes a row and lane (twice, for the merge). Rows are
appended in batches without sorting anything of size n again: a stable order by (key, row)
stays one when rows with larger row numbers are merged in, and each old entry moves by the
number of new keys below its own (a binary search in the batch's sorted keys), which one kernel
pass over the table writes (``lane_merge``: about 24 bytes read and written per row and lane). The buffers have room to
spare, so appending costs the batch plus that pass, and memory is reallocated only as the
table grows by a quarter. Why not rebuild per batch: four ``argsort`` of n per column, 22-24 ms
for one column of 10M on an H100, where the merge pass is a fraction of a millisecond.

:class:`.resident.ResidentIndex` keeps two tables, a large one merged into rarely and a small
recent one merged into every batch, so a batch moves the recent rows only.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from ..gpu_status import require_cupy
from . import gpu_lanes, lanes

__all__ = ["DeviceTable"]

_KEYS = lanes.KEYS
_STARTS = _KEYS + 1
# Compiled after gpu_lanes' source (``_CODE``): u64 and the pair rule, keep_pair, come from there.
_SOURCE = r"""
// Entries of the sorted f[0, q) below `bound`: fresh entries (key << 32 | j) of a lane with a
// key below k are those below k << 32.
__device__ __forceinline__ long long fresh_below(const u64* f, long long q, u64 bound) {
    long long lo = 0, hi = q;
    while (lo < hi) {
        const long long mid = (lo + hi) >> 1;
        if (f[mid] < bound) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// Appends q rows to n: threads [0, lanes * n): entry p of lane l moves past the new entries of
// smaller keys (a binary search in the lane's sorted new entries); threads [lanes * n,
// lanes * (n + q)): the sorted new entries (fresh[l * q + u] = key << 32 | j) go after the old
// entries of their key, in their sorted order, with their value vals[j * columns + l / 4] (and,
// from lane 4c, into x[c][n + j]). Lane l of order, sval and x starts at l * cap; lane l belongs
// to column l / 4 and keys bits 16 * (l % 4) up. starts is read here (the old one) and moved
// afterwards by lane_starts.
extern "C" __global__ void lane_merge(const int* __restrict__ order, const u64* __restrict__ sval,
                                      const int* __restrict__ starts, const u64* __restrict__ fresh,
                                      const u64* __restrict__ vals, int n_lanes, int columns, long long n,
                                      long long q, long long cap, int* out_order, u64* out_sval, u64* x) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n_lanes * n) {
        const long long lane = t / n, p = t % n, src = lane * cap + p;
        const u64 v = sval[src];
        const unsigned int k = (unsigned int)(v >> (16 * (lane % 4))) & 0xFFFFu;
        const long long dst = src + fresh_below(fresh + lane * q, q, (u64)k << 32);
        out_order[dst] = order[src];
        out_sval[dst] = v;
    } else if (t < n_lanes * (n + q)) {
        const long long u = t - n_lanes * n;
        const long long lane = u / q;
        const u64 f = fresh[u];
        const unsigned int k = (unsigned int)(f >> 32) & 0xFFFFu;
        const long long j = (long long)(f & 0xFFFFFFFFULL);
        const long long dst = lane * cap + starts[lane * 65537 + k + 1] + (u - lane * q);
        const u64 v = vals[j * columns + lane / 4];
        out_order[dst] = (int)(n + j);
        out_sval[dst] = v;
        if (lane % 4 == 0) x[(lane / 4) * cap + n + j] = v;
    }
}

// After lane_merge: each lane's key table counts the new entries too (one thread per key and lane).
extern "C" __global__ void lane_starts(int* starts, const u64* __restrict__ fresh, int n_lanes, long long q) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)n_lanes * 65537) return;
    const long long lane = t / 65537, k = t % 65537;
    starts[t] += (int)fresh_below(fresh + lane * q, q, (u64)k << 32);
}

// One warp per probe (query, lane, flip mask): w = (query * 4 + lane) * n_flips + flip; the lanes
// searched are lane0 .. lane0 + 3 of the table (one column's). The warp reads the run of entries
// whose lane key is the query's key XOR the mask side by side, from the values kept in lane order
// (sval), so the reads are coalesced instead of one random gather per entry; the pairs are kept
// by gpu_lanes' keep_pair, lane_query's rule (past capacity they are counted, and the host runs
// the splitting join).
extern "C" __global__ void lane_scan(const u64* __restrict__ sval, const int* __restrict__ order,
                                     const int* __restrict__ starts, long long stride, int lane0,
                                     const u64* __restrict__ queries, const unsigned int* __restrict__ flips,
                                     int n_flips, long long probes, int s, int radius, int* out_i, int* out_j,
                                     u64* counter, u64 capacity) {
    const long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int me = (int)(threadIdx.x % 32);
    if (w >= probes) return;
    const int flip = (int)(w % n_flips);
    const int lane = (int)((w / n_flips) % 4);
    const long long query = w / n_flips / 4;
    const u64 a = queries[query];
    const unsigned int key = ((unsigned int)(a >> (16 * lane)) & 0xFFFFu) ^ flips[flip];
    const long long base = (long long)(lane0 + lane) * stride;
    const int* st = starts + (long long)(lane0 + lane) * 65537;
    const long long end = base + st[key + 1];
    for (long long p = base + st[key] + me; p < end; p += 32) {
        keep_pair(a ^ sval[p], lane, s, radius, order, p, query, out_i, out_j, counter, capacity);
    }
}
"""
_CODE = gpu_lanes._SOURCE + _SOURCE


@functools.cache
def _module(device: int) -> Any:
    cp = require_cupy()
    with cp.cuda.Device(device):
        return cp.RawModule(code=_CODE, options=("-std=c++14",))


def _kernel(device: int, name: str = "lane_merge") -> Any:
    return _module(device).get_function(name)


@functools.cache
def _masks(device: int, flips: int) -> Any:
    """The flip masks of a lane key on the device (uint32), uploaded once."""
    cp = require_cupy()
    with cp.cuda.Device(device):
        return cp.asarray(lanes.flip_masks(flips).astype(np.uint32))


class DeviceTable:
    """``columns`` columns of values for n rows on GPU ``device``, each column's lanes sorted."""

    x: Any  # uint64 (columns, cap)
    order: Any  # int32 (4 * columns, cap): lane 4c + l of column c, rows sorted by (key, row)
    sval: Any  # uint64 (4 * columns, cap): the column's values in that order (what the search reads)
    starts: Any  # int32 (4 * columns, 65537): the first position of each key

    def __init__(self, columns: int, device: int = 0, capacity: int = 1 << 16) -> None:
        self.cp = require_cupy()
        self.columns, self.device, self.n = int(columns), int(device), 0
        self._allocate(max(int(capacity), 1024))

    def _allocate(self, cap: int) -> None:
        """Buffers for ``cap`` rows, keeping the first n rows of the old ones."""
        cp, c, n = self.cp, self.columns, self.n
        with cp.cuda.Device(self.device):
            x = cp.empty((c, cap), cp.uint64)
            order = cp.empty((c * lanes.LANES, cap), cp.int32)
            sval = cp.empty((c * lanes.LANES, cap), cp.uint64)
            if n:
                x[:, :n], order[:, :n], sval[:, :n] = self.x[:, :n], self.order[:, :n], self.sval[:, :n]
            else:
                self.starts = cp.zeros((c * lanes.LANES, _STARTS), cp.int32)
            # The merge writes into a second pair of buffers, then the two pairs swap.
            self._spare = (cp.empty_like(order), cp.empty_like(sval))
        self.x, self.order, self.sval, self.cap = x, order, sval, cap

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + 2 * (self.order.nbytes + self.sval.nbytes) + self.starts.nbytes)

    def append(self, values: Any) -> None:
        """Append rows: ``values`` uint64 (q, columns), NumPy or CuPy (rows n .. n + q - 1).

        A batch from the host (an import's) goes up as one transfer with its lanes' entries
        sorted there; then two kernels: the merge and the key tables' move. Before, its
        keys, sort and key counts (a cumulative sum over 65,536 keys a lane) were two dozen
        CuPy calls: 2.7 ms of GPU time for a batch of 1,000 on the H100."""
        cp = self.cp
        q = len(values)
        if q == 0:
            return
        if q >= 2**31 or self.n + q >= 2**31:
            raise ValueError("a GPU lane table holds fewer than 2**31 rows")
        if self.n + q > self.cap:
            self._allocate((self.n + q) * 5 // 4 + 65536)
        n, lanes_ = self.n, self.columns * lanes.LANES
        with cp.cuda.Device(self.device):
            vals, fresh = self._fresh(values)
            out_order, out_sval = self._spare
            threads = lanes_ * (n + q)
            _kernel(self.device)(((threads + 255) // 256,), (256,),
                                 (self.order, self.sval, self.starts, fresh, vals, np.int32(lanes_),
                                  np.int32(self.columns), np.int64(n), np.int64(q), np.int64(self.cap), out_order,
                                  out_sval, self.x))
            keys = lanes_ * _STARTS
            _kernel(self.device, "lane_starts")(((keys + 255) // 256,), (256,),
                                                (self.starts, fresh, np.int32(lanes_), np.int64(q)))
            self._spare = (self.order, self.sval)
            self.order, self.sval = out_order, out_sval
        self.n = n + q

    #: Rows of a host batch whose lane entries are sorted on the host (more: on the device).
    HOST_SORT = 1 << 15

    def _fresh(self, values: Any) -> tuple[Any, Any]:
        """(the values as a (q, columns) device array, each lane's new entries ``key << 32 | j``
        sorted, lane after lane: uint64 (lanes * q,) on the device)."""
        cp, q, columns = self.cp, len(values), self.columns
        lanes_ = columns * lanes.LANES
        shifts = np.arange(lanes.LANES, dtype=np.uint64) * np.uint64(lanes.LANE_BITS)
        if type(values) is np.ndarray and q <= self.HOST_SORT and sys.byteorder == "little":
            values = np.ascontiguousarray(values, np.uint64).reshape(q, columns)
            key = np.ascontiguousarray(values.view(np.uint16).T)  # row 4c + l: bits 16l.. of column c
            order = np.argsort(key, axis=1, kind="stable")  # (a radix sort for 16-bit keys)
            up = np.empty(q * columns + lanes_ * q, np.uint64)
            up[: q * columns] = values.ravel()
            fresh = up[q * columns :].reshape(lanes_, q)
            fresh[...] = np.take_along_axis(key, order, axis=1)
            fresh <<= np.uint64(32)
            fresh |= order.astype(np.uint64)
            both = cp.asarray(up)
            return both[: q * columns], both[q * columns :]
        v = cp.ascontiguousarray(cp.asarray(values, dtype=cp.uint64).reshape(q, columns))
        key = ((v[:, :, None] >> cp.asarray(shifts)[None, None, :]) & np.uint64(_KEYS - 1)).reshape(q, lanes_).T
        lane = cp.arange(lanes_, dtype=cp.uint64)[:, None]
        rows = cp.arange(q, dtype=cp.uint64)[None, :]
        fresh = cp.sort(((lane << np.uint64(48)) | (key << np.uint64(32)) | rows).ravel())
        return v, fresh & np.uint64((1 << 48) - 1)

    def lanes_of(self, column: int) -> gpu_lanes.DeviceLanes:
        """Column ``column`` as the lane kernel takes it (lane stride: the capacity)."""
        four = slice(column * lanes.LANES, (column + 1) * lanes.LANES)
        return gpu_lanes.DeviceLanes(self.x[column], self.order[four].ravel(), self.starts[four].ravel(),
                                     self.cap, self.device)

    def launch(self, column: int, queries: Any, radius: int, out_i: Any, out_j: Any, counter: Any,
               capacity: int) -> None:
        """Start the lane kernel of ``queries`` (device uint64) against ``column`` into the given
        buffers, without waiting: the caller reads ``counter`` once for many launches, and runs
        :meth:`query` again for any that found more than ``capacity`` pairs."""
        flips = radius // lanes.LANES
        masks = _masks(self.device, flips)
        probes = len(queries) * lanes.LANES * len(masks)
        _kernel(self.device, "lane_scan")(
            ((probes * 32 + 255) // 256,), (256,),
            (self.sval, self.order, self.starts, np.int64(self.cap), np.int32(column * lanes.LANES),
             queries, masks, np.int32(len(masks)), np.int64(probes), np.int32(flips), np.int32(radius),
             out_i, out_j, counter, np.uint64(capacity)))

    def query(self, column: int, queries: Any, radius: int, capacity: int = 1 << 20) -> list[tuple[Any, Any]]:
        """(rows, query rows) within ``radius`` bits in ``column`` (CuPy int64 pairs of arrays)."""
        if self.n == 0 or len(queries) == 0:
            return []
        return list(gpu_lanes.join(self.lanes_of(column), queries, radius, capacity=capacity))

    def check(self) -> bool:
        """Whether every lane is sorted by key and its key table agrees (tests)."""
        cp, n = self.cp, self.n
        for lane in range(self.columns * lanes.LANES):
            col, shift = divmod(lane, lanes.LANES)
            rows = self.order[lane, :n]
            key = ((self.x[col][rows] >> np.uint64(16 * shift)) & np.uint64(_KEYS - 1)).astype(cp.int64)
            if n and not bool(cp.all(key[1:] >= key[:-1])) or not bool(cp.all(self.sval[lane, :n] == self.x[col][rows])):
                return False
            if n and not bool(cp.all((key[1:] > key[:-1]) | (rows[1:] > rows[:-1]))):
                return False
            st = cp.zeros(_STARTS, cp.int64)
            st[1:] = cp.cumsum(cp.bincount(key, minlength=_KEYS))
            if not bool(cp.all(st == self.starts[lane])):
                return False
        return True
