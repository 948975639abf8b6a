"""Lane tables that stay on a CUDA GPU and grow: the device side of :mod:`.resident`.

:class:`DeviceTable` holds ``C`` columns of uint64 values (a classic hash, a geometric search
key) for the same rows, with each column's four 16-bit lanes sorted (the layout of
:class:`.gpu_lanes.DeviceLanes`, so its ``lane_query`` kernel searches them unchanged). Rows are
appended in batches without sorting anything of size n again: a stable order by (key, row)
stays one when rows with larger row numbers are merged in, and each old entry moves by the
number of new keys below its own, which one kernel pass over the table writes
(``lane_merge``: about 12 bytes read and written per row and lane). The buffers have room to
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
_SOURCE = r"""
// Threads [0, lanes * n): entry p of lane l moves to p + shift[l][its key]; threads
// [lanes * n, lanes * (n + q)): the sorted new entries (lane << 48 | key << 32 | j) go after the
// old entries of their key, in their sorted order. Lane l of every array starts at l * cap.
extern "C" __global__ void lane_merge(const int* __restrict__ order, const unsigned short* __restrict__ skey,
                                      const int* __restrict__ shift, const int* __restrict__ starts,
                                      const long long* __restrict__ fresh, int n_lanes, long long n,
                                      long long q, long long cap, int* out_order, unsigned short* out_skey) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n_lanes * n) {
        const long long lane = t / n, p = t % n, src = lane * cap + p;
        const unsigned int k = skey[src];
        const long long dst = src + shift[lane * 65537 + k];
        out_order[dst] = order[src];
        out_skey[dst] = (unsigned short)k;
    } else if (t < n_lanes * (n + q)) {
        const long long u = t - n_lanes * n;
        const long long v = fresh[u];
        const long long lane = v >> 48;
        const unsigned int k = (unsigned int)((v >> 32) & 0xFFFF);
        const long long j = v & 0xFFFFFFFFLL;
        const long long dst = lane * cap + starts[lane * 65537 + k + 1] + (u - lane * q);
        out_order[dst] = (int)(n + j);
        out_skey[dst] = (unsigned short)k;
    }
}
"""


@functools.cache
def _kernel(device: int) -> Any:
    cp = require_cupy()
    with cp.cuda.Device(device):
        return cp.RawModule(code=_SOURCE, options=("-std=c++14",)).get_function("lane_merge")


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
    skey: Any  # uint16 (4 * columns, cap): the keys in that order (what the merge shifts by)
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
            skey = cp.empty((c * lanes.LANES, cap), cp.uint16)
            if n:
                x[:, :n], order[:, :n], skey[:, :n] = self.x[:, :n], self.order[:, :n], self.skey[:, :n]
            else:
                self.starts = cp.zeros((c * lanes.LANES, _STARTS), cp.int32)
            # The merge writes into a second pair of buffers, then the two pairs swap.
            self._spare = (cp.empty_like(order), cp.empty_like(skey))
        self.x, self.order, self.skey, self.cap = x, order, skey, cap

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + 2 * (self.order.nbytes + self.skey.nbytes) + self.starts.nbytes)

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
            out_order, out_skey = self._spare
            threads = lanes_ * (n + q)
            _kernel(self.device)(((threads + 255) // 256,), (256,),
                                 (self.order, self.skey, shift, self.starts, fresh, np.int32(lanes_), np.int64(n),
                                  np.int64(q), np.int64(self.cap), out_order, out_skey))
            self._spare = (self.order, self.skey)
            self.order, self.skey = out_order, out_skey
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
        threads = len(queries) * lanes.LANES * len(masks)
        tables = self.lanes_of(column)
        gpu_lanes._kernel(self.device)(
            ((threads + 255) // 256,), (256,),
            (tables.x, tables.order, tables.starts, np.int64(self.cap), queries, masks, np.int32(len(masks)),
             np.int64(0), np.int64(threads), np.int32(flips), np.int32(radius), out_i, out_j, counter,
             np.uint64(capacity)))

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
            if n and not bool(cp.all(key[1:] >= key[:-1])) or not bool(cp.all(self.skey[lane, :n] == key)):
                return False
            if n and not bool(cp.all((key[1:] > key[:-1]) | (rows[1:] > rows[:-1]))):
                return False
            st = cp.zeros(_STARTS, cp.int64)
            st[1:] = cp.cumsum(cp.bincount(key, minlength=_KEYS))
            if not bool(cp.all(st == self.starts[lane])):
                return False
        return True
