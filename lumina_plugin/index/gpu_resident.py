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
number of new keys below its own, which one kernel pass over the table writes
(``lane_merge``: about 24 bytes read and written per row and lane). The buffers have room to
spare, so appending costs the batch plus that pass, and memory is reallocated only as the
table grows by a quarter. Why not rebuild per batch: four ``argsort`` of n per column, 22-24 ms
for one column of 10M on an H100, where the merge pass is a fraction of a millisecond.

:class:`.resident.ResidentIndex` keeps two tables, a large one merged into rarely and a small
recent one merged into every batch, so a batch moves the recent rows only.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..gpu_status import require_cupy
from . import gpu_lanes, lanes

__all__ = ["DeviceTable"]

_KEYS = lanes.KEYS
_STARTS = _KEYS + 1
# Compiled after gpu_lanes' source (``_CODE``): u64 and the pair rule, keep_pair, come from there.
_SOURCE = r"""
// Threads [0, lanes * n): entry p of lane l moves to p + shift[l][its key]; threads
// [lanes * n, lanes * (n + q)): the sorted new entries (lane << 48 | key << 32 | j) go after the
// old entries of their key, in their sorted order, with their value x[column][n + j]. Lane l of
// every array starts at l * cap; lane l belongs to column l / 4 and keys bits 16 * (l % 4) up.
extern "C" __global__ void lane_merge(const int* __restrict__ order, const u64* __restrict__ sval,
                                      const int* __restrict__ shift, const int* __restrict__ starts,
                                      const long long* __restrict__ fresh, const u64* __restrict__ x,
                                      int n_lanes, long long n, long long q, long long cap, int* out_order,
                                      u64* out_sval) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n_lanes * n) {
        const long long lane = t / n, p = t % n, src = lane * cap + p;
        const u64 v = sval[src];
        const unsigned int k = (unsigned int)(v >> (16 * (lane % 4))) & 0xFFFFu;
        const long long dst = src + shift[lane * 65537 + k];
        out_order[dst] = order[src];
        out_sval[dst] = v;
    } else if (t < n_lanes * (n + q)) {
        const long long u = t - n_lanes * n;
        const long long v = fresh[u];
        const long long lane = v >> 48;
        const unsigned int k = (unsigned int)((v >> 32) & 0xFFFF);
        const long long j = v & 0xFFFFFFFFLL;
        const long long dst = lane * cap + starts[lane * 65537 + k + 1] + (u - lane * q);
        out_order[dst] = (int)(n + j);
        out_sval[dst] = x[(lane / 4) * cap + n + j];
    }
}

// One warp per probe (query, lane, flip mask): w = (query * 4 + lane) * n_flips + flip. The warp
// reads the run of entries whose lane key is the query's key XOR the mask side by side, from the
// values kept in lane order (sval), so the reads are coalesced instead of one random gather per
// entry; the pairs are kept by gpu_lanes' keep_pair, lane_query's rule (past capacity they are
// counted, and the host runs the splitting join).
extern "C" __global__ void lane_scan(const u64* __restrict__ sval, const int* __restrict__ order,
                                     const int* __restrict__ starts, long long stride,
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
    const long long base = (long long)lane * stride;
    const int* st = starts + (long long)lane * 65537;
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
        """Append rows: ``values`` uint64 (q, columns), NumPy or CuPy (rows n .. n + q - 1)."""
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
            v = cp.asarray(np.ascontiguousarray(values, np.uint64) if isinstance(values, np.ndarray) else values,
                           dtype=cp.uint64).reshape(q, self.columns).T
            self.x[:, n : n + q] = v
            shifts = cp.arange(lanes.LANES, dtype=cp.uint64) * np.uint64(lanes.LANE_BITS)
            key = ((v[:, None, :] >> shifts[None, :, None]) & np.uint64(_KEYS - 1)).reshape(lanes_, q)
            lane = cp.arange(lanes_, dtype=cp.int64)[:, None]
            fresh = cp.sort(((lane << 48) | (key.astype(cp.int64) << 32) | cp.arange(q, dtype=cp.int64)[None, :]).ravel())
            counts = cp.bincount((lane * _KEYS + key.astype(cp.int64)).ravel(), minlength=lanes_ * _KEYS)
            shift = cp.zeros((lanes_, _STARTS), cp.int32)
            shift[:, 1:] = cp.cumsum(counts.reshape(lanes_, _KEYS), axis=1).astype(cp.int32)
            out_order, out_sval = self._spare
            threads = lanes_ * (n + q)
            _kernel(self.device)(((threads + 255) // 256,), (256,),
                                 (self.order, self.sval, shift, self.starts, fresh, self.x, np.int32(lanes_),
                                  np.int64(n), np.int64(q), np.int64(self.cap), out_order, out_sval))
            self._spare = (self.order, self.sval)
            self.order, self.sval = out_order, out_sval
            self.starts += shift
        self.n = n + q

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
        four = slice(column * lanes.LANES, (column + 1) * lanes.LANES)
        _kernel(self.device, "lane_scan")(
            ((probes * 32 + 255) // 256,), (256,),
            (self.sval[four].ravel(), self.order[four].ravel(), self.starts[four].ravel(), np.int64(self.cap),
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
