"""A resident index for long-lived processes: what an import batch searches stays in memory
between batches and grows with each.

A fresh engine opens the index, and the batch search then works on the whole of it: on the GPU
it uploads each searched column and sorts its lanes (22-24 ms a column for 10M codes), and the
geometric search recomputes every photo's search keys (about 3 s a million on one core) and
concatenates the index with the batch. A process that runs for days (the watcher, a Celery
worker, the Lumina listener) keeps a :class:`ResidentIndex` instead: the searched columns (the
classic hashes with a radius, then the four geometric search keys of ``geometry.search_keys``)
of every row, on the GPU as lane tables (:class:`.gpu_resident.DeviceTable`) or in host memory
for the CPU lane join (:class:`HostTable`, its twin), and grows them by the rows each batch
adds, so a batch costs its own search and nothing of the index's size but a scan on the CPU.

Never stale: the resident copy follows its :class:`~.store.HashIndex` through the index's change
log (:meth:`~.store.HashIndex.changes_since`): a batch added, rows replaced or removed are
replayed; when the index reloaded from disk (another process wrote it: its manifest's
generation moved) or the log was cut, the copy is rebuilt whole from the index's rows. A row
replaced or removed stays in the tables but is marked dead, and hits on dead rows are dropped.

:meth:`ResidentIndex.search` gives what ``grouping.candidates.find_pairs`` would search for a
batch already added to the index: the classic pairs (``query_pairs``) and the geometric
candidates (``geometric.candidates``), the same pairs (the tests compare them), and the indexed
photos they name, so the grouping step needs only those rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..hashing import geometry
from ..model import CLASSIC_WORDS
from . import lanes
from ._arrays import isin, sorted_unique
from .search import Pairs
from .store import HashIndex

__all__ = ["BatchHits", "HostTable", "ResidentIndex"]

log = logging.getLogger(__name__)

#: Geometric search keys per photo: own (full), centre, wide, square (``geometry.search_keys``).
KEY_COLUMNS = 4
#: Rows whose search keys are computed at a time when the copy is built (bounds the temporaries).
_KEY_CHUNK = 1 << 20


class HostTable:
    """The CPU twin of :class:`.gpu_resident.DeviceTable`: ``columns`` contiguous uint64 columns
    with room to grow, searched by the lane scan (:func:`.lanes.join`), which keeps no tables
    (on the CPU they gain nothing at an import's batch sizes: docs/index.md)."""

    def __init__(self, columns: int, capacity: int = 1 << 16) -> None:
        self.columns, self.n = int(columns), 0
        self.x = np.empty((self.columns, max(int(capacity), 1024)), np.uint64)

    def append(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.uint64).reshape(-1, self.columns)
        q = len(values)
        if self.n + q > self.x.shape[1]:
            x = np.empty((self.columns, (self.n + q) * 5 // 4 + 65536), np.uint64)
            x[:, : self.n] = self.x[:, : self.n]
            self.x = x
        self.x[:, self.n : self.n + q] = values.T
        self.n += q

    def values(self, column: int, rows: np.ndarray) -> np.ndarray:
        return self.x[column, rows]

    def query(self, column: int, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if self.n == 0 or len(queries) == 0:
            return []
        return list(lanes.join(self.x[column, : self.n], queries, radius))


@dataclass(frozen=True)
class BatchHits:
    """What a batch's search found: the classic pairs, the geometric candidates (a < b, sorted
    by (a, b)), and the indexed photos outside the batch they name (ids sorted, their codes)."""

    classic: Pairs
    geo_a: np.ndarray
    geo_b: np.ndarray
    ids: np.ndarray
    codes: np.ndarray


class ResidentIndex:
    """The searched columns of a :class:`HashIndex`'s rows, kept and grown between batches.

    ``radii``: the classic search radii (``grouping.search_radii``; a negative one: that hash is
    not searched); ``device``: the GPU to keep the tables on, or None for host memory.
    """

    #: The recent GPU table is merged into the large one once it holds this share of it (and
    #: at least ``RECENT_MIN`` rows): a batch moves the recent rows, not all of them.
    RECENT_SHARE = 16
    RECENT_MIN = 1 << 16
    #: Pairs each GPU kernel launch may write before it is run again through the splitting join.
    PAIRS_PER_LAUNCH = 1 << 16

    def __init__(self, radii: Sequence[int], device: int | None = None) -> None:
        self.radii = tuple(int(r) for r in radii)
        if not all(r < 0 or lanes.usable(r) for r in (*self.radii, geometry.KEY_RADIUS)):
            raise ValueError(f"a resident index serves radii up to {lanes.MAX_RADIUS}, got {self.radii}")
        self.device = device
        self.searched = [k for k, r in enumerate(self.radii) if r >= 0]
        self.columns = len(self.searched) + KEY_COLUMNS
        self._index: HashIndex | None = None
        self._epoch = self._position = -1
        #: Full rebuilds so far (the first load counts): tests and benchmarks read it.
        self.rebuilds = 0
        self._reset()

    def _reset(self) -> None:
        self._ids = np.empty(1024, np.int64)  # table row -> image id
        self._fresh: tuple[int, np.ndarray] | None = None  # (first row, values) of the last rows added
        self._dead = np.zeros(1024, bool)
        self.n = 0
        self._sorted = 0  # rows [0, _sorted) have strictly increasing ids: found by binary search
        self._tables: list[Any] = [self._new_table(1 << 16)]
        if self.device is not None:
            self._tables.append(self._new_table(1 << 16))  # [large, recent]

    def _new_table(self, capacity: int) -> Any:
        if self.device is None:
            return HostTable(self.columns, capacity)
        from .gpu_resident import DeviceTable

        return DeviceTable(self.columns, self.device, capacity)

    # -- following the index ----------------------------------------------------------
    def sync(self, index: HashIndex) -> bool:
        """Bring the copy level with ``index``'s live rows; True when it was rebuilt whole."""
        changes = index.changes_since(self._epoch, self._position) if index is self._index else None
        if changes is None:
            self._reset()
            self._grow(np.empty(0, np.int64), index.ids, index.codes)
            self.rebuilds += 1
            log.info("resident index: %d rows loaded (%s)", self.n, "GPU" if self.device is not None else "CPU")
        else:
            for tombs, ids, codes in changes:
                self._grow(tombs, ids, codes)
        self._index, self._epoch, self._position = index, index.epoch, index.log_position
        return changes is None

    def _grow(self, tombs: np.ndarray, ids: np.ndarray, codes: np.ndarray) -> None:
        """Mark the rows of ``tombs`` dead, then append ``ids`` with their ``codes``."""
        self._dead[self._rows_of(tombs)] = True
        order = np.argsort(ids, kind="stable")
        ids, codes = np.asarray(ids, np.int64)[order], np.asarray(codes, np.uint64)[order]
        n, q = self.n, len(ids)
        if q == 0:
            return
        if n + q > len(self._ids):
            size = (n + q) * 5 // 4 + 1024
            self._ids = np.concatenate([self._ids[:n], np.empty(size - n, np.int64)])
            self._dead = np.concatenate([self._dead[:n], np.zeros(size - n, bool)])
        self._ids[n : n + q] = ids
        self._dead[n : n + q] = False
        if self._sorted == n and (n == 0 or ids[0] > self._ids[n - 1]) and not (ids[1:] <= ids[:-1]).any():
            self._sorted = n + q
        for a in range(0, q, _KEY_CHUNK):
            part = codes[a : a + _KEY_CHUNK]
            values = np.empty((len(part), self.columns), np.uint64)
            values[:, : len(self.searched)] = part[:, self.searched]
            values[:, len(self.searched) :] = self._keys(part[:, CLASSIC_WORDS:])
            self._append(values)
        # The rows just added are what the next search asks for: kept on the host, they go to
        # the GPU as one upload instead of a gather per column and table.
        self._fresh = (n, values) if q <= _KEY_CHUNK else None
        self.n = n + q

    def _keys(self, words: np.ndarray) -> np.ndarray:
        """The geometric search keys (n, 4), on the GPU when the copy lives there."""
        if self.device is not None and len(words) >= 4096:
            from ..gpu_status import require_cupy

            cp = require_cupy()
            with cp.cuda.Device(self.device):
                return np.asarray(geometry.search_keys(cp.asarray(words), xp=cp).get())
        return np.asarray(geometry.search_keys(words))

    def _append(self, values: np.ndarray) -> None:
        tables = self._tables
        limit = max(self.RECENT_MIN, tables[0].n // self.RECENT_SHARE)
        if len(tables) == 2 and tables[1].n + len(values) > limit:
            # The recent table is full: merge it into the large one (rows keep their numbers).
            if tables[1].n:
                tables[0].append(tables[1].x[:, : tables[1].n].T)
            tables[1] = self._new_table(max(self.RECENT_MIN, tables[0].n // self.RECENT_SHARE))
            if len(values) > tables[0].n // self.RECENT_SHARE:
                tables[0].append(values)
                return
        tables[-1].append(values)

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The live rows holding ``ids`` (as many as there are)."""
        ids = np.asarray(ids, np.int64)
        if ids.size == 0 or self.n == 0:
            return np.empty(0, np.int64)
        rows = np.empty(0, np.int64)
        if self._sorted:
            head = self._ids[: self._sorted]
            pos = np.minimum(np.searchsorted(head, ids), self._sorted - 1)
            rows = pos[head[pos] == ids]
        tail = self._sorted + np.flatnonzero(isin(self._ids[self._sorted : self.n], ids))
        rows = np.concatenate([rows, tail]).astype(np.int64)
        return rows[~self._dead[rows]]

    def _last_rows(self, ids: np.ndarray) -> np.ndarray | None:
        """The rows of ``ids`` when they are exactly the rows added last, live (an import's batch
        searched after its add: found without a search of every id); else None."""
        fresh = self._fresh
        if fresh is None or len(fresh[1]) != len(ids) or not len(ids):
            return None
        first = fresh[0]
        if not np.array_equal(self._ids[first : first + len(ids)], np.sort(ids)) or self._dead[first : first + len(ids)].any():
            return None
        return np.arange(first, first + len(ids), dtype=np.int64)

    # -- searching ----------------------------------------------------------------------
    def search(self, index: HashIndex, query_ids: np.ndarray) -> BatchHits:
        """The pairs of a batch already added to ``index`` (``query_ids``: its image ids) with
        every other live photo and with each other, as ``find_pairs`` would search them."""
        query_ids = np.asarray(query_ids, np.int64)
        early = self._start_large(index, query_ids) if self.device is not None else None
        self.sync(index)
        qrows = self._last_rows(query_ids)
        if qrows is None:
            qrows = self._rows_of(query_ids)
        if len(qrows) != len(query_ids):
            raise ValueError("resident search: the batch must be added to the index first")
        qrows = qrows[np.argsort(self._ids[qrows], kind="stable")]
        query_ids = self._ids[qrows]
        # (table column, the batch's value columns as queries, radius): a classic hash against
        # itself; every key of the batch against the own keys (one scan of that column); the
        # batch's own key against the others' region keys.
        specs = self._specs()
        own = len(self.searched)
        found = self._query(specs, qrows, early)
        a, b = self._pairs(found[:own], query_ids)
        ga, gb = self._pairs(found[own:], query_ids)
        # Every photo the pairs name, looked up in the index once, in order (a search of its
        # 10M ids for each pair's two photos, in pair order, took about as long as the scans).
        named = sorted_unique(np.concatenate([a, b, ga, gb]))
        rows = np.asarray(index.codes[np.searchsorted(index.ids, named)])
        ca, cb = rows[np.searchsorted(named, a), :CLASSIC_WORDS], rows[np.searchsorted(named, b), :CLASSIC_WORDS]
        dist = np.bitwise_count(ca ^ cb).astype(np.uint8, copy=False)
        others = ~isin(named, query_ids)
        return BatchHits(Pairs(a, b, np.ascontiguousarray(dist)), ga, gb, named[others], rows[others])

    def _specs(self) -> list[tuple[int, tuple[int, ...], int]]:
        """The searches of a batch: (table column, the batch's value columns as queries, radius):
        a classic hash against itself; every key of the batch against the own keys (one scan of
        that column); the batch's own key against the others' region keys."""
        specs: list[tuple[int, tuple[int, ...], int]] = [(c, (c,), self.radii[k]) for c, k in enumerate(self.searched)]
        own = len(self.searched)
        specs.append((own, tuple(range(own, own + KEY_COLUMNS)), geometry.KEY_RADIUS))
        specs += [(own + c, (own,), geometry.KEY_RADIUS) for c in range(1, KEY_COLUMNS)]
        return specs

    def _start_large(self, index: HashIndex, query_ids: np.ndarray) -> tuple[Any, Any, set[int], Any] | None:
        """Start the batch's classic searches of the large GPU table before the copy is grown,
        when the only rows to add are the batch's (an import: the usual case) and they stay in
        the recent table: they need neither the geometric keys (computed on the CPU meanwhile)
        nor the recent table. Their results go to the buffers :meth:`_query_device` then fills
        and reads (given back: buffers, counters, the slots started, the queries kept alive).
        Measured on the H100, 1,000 against 10M: the classic scans are most of the GPU's time."""
        if index is not self._index or not self.searched or len(self._tables) != 2 or self._tables[0].n == 0:
            return None
        changes = index.changes_since(self._epoch, self._position)
        if not changes or len(changes[-1][1]) != len(query_ids) or len(query_ids) > _KEY_CHUNK:
            return None
        large, recent = self._tables
        if recent.n + sum(len(c[1]) for c in changes) > max(self.RECENT_MIN, large.n // self.RECENT_SHARE):
            return None  # (the recent table would move into the large one meanwhile)
        _, ids, codes = changes[-1]
        order = np.argsort(ids, kind="stable")  # the batch's rows, as _grow appends and search orders them
        ids = np.asarray(ids, np.int64)[order]
        if (ids[1:] <= ids[:-1]).any() or not np.array_equal(ids, np.sort(query_ids)):
            return None
        from ..gpu_status import require_cupy

        cp = require_cupy()
        specs = self._specs()
        cap = self.PAIRS_PER_LAUNCH
        with cp.cuda.Device(self.device):
            classic = cp.asarray(np.ascontiguousarray(np.asarray(codes, np.uint64)[order][:, self.searched].T))
            out = cp.empty((len(self._tables) * len(specs), 2, cap), cp.int32)
            counters = cp.zeros(len(self._tables) * len(specs), cp.uint64)
            for s in range(len(self.searched)):
                column, _, radius = specs[s]
                large.launch(column, classic[s], radius, out[s, 0], out[s, 1], counters[s : s + 1], cap)
        return out, counters, set(range(len(self.searched))), classic

    def _query(self, specs: Sequence[tuple[int, tuple[int, ...], int]], qrows: np.ndarray,
               early: tuple[Any, Any, set[int], Any] | None = None) -> list[list[np.ndarray]]:
        """Per spec (table column, column of the batch's values, radius): the hits, as keys
        ``table row * 2**32 + position in the batch``."""
        out: list[list[np.ndarray]] = [[] for _ in specs]
        values = self._values(qrows)
        q = len(qrows)
        if self.device is not None:
            return self._query_device(specs, values, q, early)
        for s, (column, qcols, radius) in enumerate(specs):
            queries = np.concatenate([values[c] for c in qcols])
            for i, j in self._tables[0].query(column, queries, radius):
                out[s].append(i * (1 << 32) + j % q)
        return out

    def _query_device(self, specs: Sequence[tuple[int, tuple[int, ...], int]], values: Any,
                      q: int, early: tuple[Any, Any, set[int], Any] | None = None) -> list[list[np.ndarray]]:
        """:meth:`_query` on the GPU: every (table, spec) kernel started at once (those
        :meth:`_start_large` started already are not started again) into buffers of its own,
        their counts read in one transfer and the used part of the buffers in one more; the
        pairs' keys are made on the host (a launch that overflowed its buffer runs again
        through the splitting join). Why on the host: a few dozen small CuPy calls per batch
        cost more than the kernels (measured on the H100: 16 ms a batch of 1,000 against 10M)."""
        from ..gpu_status import require_cupy

        cp = require_cupy()
        jobs, base = [], 0
        for t, table in enumerate(self._tables):
            # (slot t * len(specs) + s: the buffers' row of table t's search s)
            jobs += [(t * len(specs) + s, table, base, s, spec) for s, spec in enumerate(specs) if table.n]
            base += table.n
        cap = self.PAIRS_PER_LAUNCH
        with cp.cuda.Device(self.device):
            if early is None:
                out = cp.empty((len(self._tables) * len(specs), 2, cap), cp.int32)  # (i, j) of each launch
                counters = cp.zeros(len(self._tables) * len(specs), cp.uint64)
                started: set[int] = set()
            else:
                out, counters, started, _ = early
            # (a spec's value columns are consecutive rows of ``values``: one view, no copy)
            queries = [values[c[0] : c[-1] + 1].reshape(-1) for _, c, _ in specs]
            for k, table, _, s, (column, _, radius) in jobs:
                if k not in started:
                    table.launch(column, queries[s], radius, out[k, 0], out[k, 1], counters[k : k + 1], cap)
            counts = counters.get().astype(np.int64)
            used = int(min(cap, counts.max(initial=0)))
            got = out[:, :, :used].get()  # one transfer for every launch's pairs
            overflow = {k: [(i.get(), j.get()) for i, j in table.query(column, queries[s], radius)]
                        for k, table, _, s, (column, _, radius) in jobs if counts[k] > cap}
        keys, owner = [], []
        for k, _, base, s, _ in jobs:
            found = overflow.get(k) or [(got[k, 0, : counts[k]], got[k, 1, : counts[k]])]
            for i, j in found:
                keys.append((i.astype(np.int64) + base) * (1 << 32) + j % q)
                owner.append(np.full(len(i), s))
        flat = np.concatenate(keys) if keys else np.empty(0, np.int64)
        spec_of = np.concatenate(owner) if owner else np.empty(0, np.int64)
        return [[flat[spec_of == s]] for s in range(len(specs))]

    def _values(self, rows: np.ndarray) -> Any:
        """Each column's values of table ``rows`` (columns, len(rows)), where the tables are
        (host or device)."""
        xp: Any = np
        if self.device is not None:
            from ..gpu_status import require_cupy

            xp = require_cupy()
            fresh = self._fresh
            if fresh is not None and len(rows) and rows.min() >= fresh[0] and rows.max() < fresh[0] + len(fresh[1]):
                with xp.cuda.Device(self.device):
                    return xp.asarray(np.ascontiguousarray(fresh[1][rows - fresh[0]].T))
        out = xp.empty((self.columns, len(rows)), xp.uint64)
        base = 0
        for table in self._tables:
            local = rows - base
            mine = np.flatnonzero((local >= 0) & (local < table.n))
            if mine.size:
                at, local_rows = xp.asarray(mine), xp.asarray(local[mine])
                for c in range(self.columns):
                    out[c][at] = table.x[c][local_rows]
            base += table.n
        return out

    def _pairs(self, found: Iterable[list[np.ndarray]], query_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unique id pairs (a < b, sorted) of the hits: hits on dead rows and a photo's pairs
        with itself dropped."""
        keys = [k for part in found for k in part]
        if not keys:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        key = np.concatenate(keys)
        rows, j = key >> 32, key & 0xFFFFFFFF
        ids, qid = self._ids[rows], query_ids[j]
        keep = ~self._dead[rows] & (ids != qid)
        a, b = np.minimum(ids[keep], qid[keep]), np.maximum(ids[keep], qid[keep])
        order = np.lexsort((b, a))
        a, b = a[order], b[order]
        first = np.ones(len(a), bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        return a[first], b[first]
