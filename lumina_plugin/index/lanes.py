"""Query mode on the CPU: a batch of codes against an indexed set, through the code's four 16-bit lanes.

Why not :func:`.mih.join` with ``first_query``: it sorts all n codes by every block key on every
call, most of its time for a small batch (0.25-0.3 s a column for 1,000 against 1M). Here the
indexed side is always cut the same way, into the four uint16 lanes of the code, and never
sorted: the batch's probe keys are counted in a 65,536-entry table and every indexed code looks
its lane key up there (two passes over the column per lane, then the candidates in order).
0.05 s a column for 1,000 against 1M at radius 6.

:class:`LaneTables` keep each lane's sorted order of a fixed set of codes instead, so a query is
table lookups plus its candidates (random reads). Measured, they gain little at an import's batch
sizes (1,000 queries: 0.046 against 0.053 s; radius 10: slower) and pay only for small batches
(256: 0.019 against 0.043 s), so the search scans and keeps nothing; the GPU keeps the same
tables resident (:mod:`.gpu_lanes`), and the tests check both ways against brute force.

The rule is the multi-index one with 4 blocks: codes within ``r`` bits agree within
``s = r // 4`` bits on some lane. A query's candidates in a lane are the codes whose lane key is
the query's key XOR a mask of at most ``s`` bits; each is checked on all 64 bits and kept only in
the first lane within ``s`` bits, so every pair comes out exactly once.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["LANES", "MAX_RADIUS", "LaneTables", "estimate_seconds", "flip_masks", "join", "lane_key", "usable"]

LANES = 4
LANE_BITS = 16
KEYS = 1 << LANE_BITS
#: s = radius // 4 <= 3: 697 probes a lane per query. Beyond, the sorted join or FAISS is cheaper.
MAX_RADIUS = 15
#: Candidate pairs checked per NumPy step (bounds the temporary arrays, about 40 bytes each).
DEFAULT_CHUNK = 1 << 18
#: ... and never more than this: steps whose temporaries stay in L2 run twice as fast (measured
#: on the development machine: 1,000 queries against 1M codes at radius 6, 51 ms a column in
#: steps of 16,384 candidates, 97 ms in steps of 262,144).
_MAX_STEP = 1 << 15

# Cost model, nanoseconds per lane, one core of the 2-core development machine (NumPy 2.4),
# fitted to 100 to 4,000 queries against 100k and 1M uniform codes at radii 2-10 (CPU time, best
# of 3): scanning, per indexed code, per probe (sorting and pairing the batch's probe keys) and
# per candidate (read in order); with tables, per probe and per candidate (a random read); and
# building tables, per code (a radix sort and a gather).
_NS_SCAN_ROW, _NS_SCAN_PROBE, _NS_SCAN_CAND = 3.0, 40.0, 20.0
_NS_PROBE, _NS_CAND_TABLES = 10.0, 40.0
_NS_BUILD_ROW = 27.0


def usable(radius: int) -> bool:
    """Whether :func:`join` serves this radius (0 to :data:`MAX_RADIUS`)."""
    return 0 <= radius <= MAX_RADIUS


def lane_key(x: np.ndarray, lane: int) -> np.ndarray:
    """The 16-bit key of ``lane`` (bits 16 * lane to 16 * lane + 15) of each code."""
    return ((x >> np.uint64(LANE_BITS * lane)) & np.uint64(KEYS - 1)).astype(np.uint16)


@functools.cache
def flip_masks(flips: int) -> np.ndarray:
    """Masks of at most ``flips`` bits over a 16-bit key, 0 first (int64, read-only)."""
    out = [0]
    for t in range(1, flips + 1):
        out += [sum(1 << b for b in c) for c in itertools.combinations(range(LANE_BITS), t)]
    masks = np.array(out, np.int64)
    masks.flags.writeable = False
    return masks


@dataclass(frozen=True)
class LaneTables:
    """Each lane's sorted order of a fixed set of codes: the codes with lane key ``k`` are rows
    ``order[lane][starts[lane][k]:starts[lane][k + 1]]``. 16 bytes a code and 2 MiB."""

    order: tuple[np.ndarray, ...]  # per lane: uint32 rows, stably sorted by the lane key
    starts: tuple[np.ndarray, ...]  # per lane: int64 (KEYS + 1,) first position of each key
    n: int

    @classmethod
    def build(cls, x: np.ndarray) -> LaneTables:
        """Tables for ``x`` (uint64 (n,), n < 2**32; any stride)."""
        n = len(x)
        if n >= 2**32:
            raise ValueError(f"lane tables hold fewer than 2**32 codes, got {n}")
        orders, starts = [], []
        for lane in range(LANES):
            key = lane_key(x, lane)
            orders.append(np.argsort(key, kind="stable").astype(np.uint32))  # uint16: a radix sort
            st = np.zeros(KEYS + 1, np.int64)
            np.cumsum(np.bincount(key, minlength=KEYS), out=st[1:])
            starts.append(st)
        shared: list[np.ndarray] = [*orders, *starts]
        for a in shared:
            a.flags.writeable = False  # shared between searches (and threads): never changed
        return cls(tuple(orders), tuple(starts), n)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*self.order, *self.starts))


def estimate_seconds(n: int, queries: int, radius: int, *, tables: bool = False, build: bool = False) -> float:
    """Predicted time of :func:`join` for ``queries`` uniform codes against ``n``: scanning, or
    with tables (``tables``), or building them first (``build``)."""
    probes = queries * sum(math.comb(LANE_BITS, t) for t in range(radius // LANES + 1))  # per lane
    candidates = probes * n / KEYS
    if tables or build:
        ns = probes * _NS_PROBE + candidates * _NS_CAND_TABLES + (n * _NS_BUILD_ROW if build else 0.0)
    else:
        ns = n * _NS_SCAN_ROW + probes * _NS_SCAN_PROBE + candidates * _NS_SCAN_CAND
    return LANES * ns * 1e-9


def join(
    x: np.ndarray, queries: np.ndarray, radius: int, *, tables: LaneTables | None = None, chunk: int = DEFAULT_CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(i, j)`` (int64 arrays): ``x[i]`` and ``queries[j]`` within ``radius`` bits, every
    such pair exactly once, in no particular order. Pairs within ``queries`` are not searched.

    ``x``: uint64 (n,), any stride (a column of an index's codes); ``tables``: :class:`LaneTables`
    built for exactly ``x``, else the lanes are scanned. ``chunk`` bounds the candidates per step.
    """
    if not usable(radius):
        raise ValueError(f"the lane join serves radii 0 to {MAX_RADIUS}, got {radius}")
    queries = np.ascontiguousarray(queries, dtype=np.uint64)
    if len(x) == 0 or len(queries) == 0:
        return
    if tables is not None and tables.n != len(x):
        raise ValueError(f"lane tables of {tables.n} codes used with {len(x)}")
    flips = radius // LANES
    masks = flip_masks(flips)
    chunk = min(max(int(chunk), 1), _MAX_STEP)
    if tables is None:
        # Scanning reads every lane key in order: a contiguous copy (8 bytes a code) is read 4
        # times faster than a column of the (n, 4) codes, whose rows are 32 bytes apart.
        x = np.ascontiguousarray(x, dtype=np.uint64)
    for lane in range(LANES):
        # probe t: query t // len(masks), key (its lane key) ^ masks[t % len(masks)]
        probe_keys = (lane_key(queries, lane).astype(np.int64)[:, None] ^ masks[None, :]).ravel()
        if tables is not None:
            order, st = tables.order[lane], tables.starts[lane]
            begin = st[probe_keys]
            for probe, pos in _ranges(begin, st[probe_keys + 1] - begin, chunk):
                yield from _check(x, queries, order[pos].astype(np.int64), probe // len(masks), lane, radius, flips)
        else:
            yield from _scan_lane(x, queries, probe_keys, len(masks), lane, radius, flips, chunk)


def _lane_view(x: np.ndarray, lane: int) -> np.ndarray:
    """The lane keys of contiguous codes as a view of their uint16 halves (no copy), where the
    machine is little-endian; else computed."""
    if sys.byteorder == "little" and x.flags.c_contiguous:
        return x.view(np.uint16).reshape(-1, LANES)[:, lane]
    return lane_key(x, lane)


def _scan_lane(
    x: np.ndarray, queries: np.ndarray, probe_keys: np.ndarray, per_query: int, lane: int, radius: int, flips: int,
    chunk: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One lane without tables: the probes are sorted by key (a few thousand), and every code
    looks its key up among them. Codes asked for by several probes are paired round by round
    (round u: each code with its u-th probe), so a step handles at most ``chunk`` codes."""
    # The query of each probe, probes sorted by key (16-bit keys: a radix sort). 32-bit tables:
    # the random reads below hit L2 more often (a quarter faster at 1,000 queries).
    small = np.int32 if len(probe_keys) < 2**31 else np.int64
    owner = (np.argsort(probe_keys.astype(np.uint16), kind="stable") // per_query).astype(small)
    count = np.bincount(probe_keys, minlength=KEYS).astype(small)
    st = np.zeros(KEYS + 1, small)
    np.cumsum(count, out=st[1:])
    key = _lane_view(x, lane)
    asked = np.flatnonzero(np.take(np.greater(count, 0), key))  # a quarter of the codes for 1,000 queries, 1 flip
    for a in range(0, len(asked), chunk):
        rows = asked[a : a + chunk]
        kr = key[rows].astype(np.intp)  # (one conversion, not one per gather below)
        first, c = st[kr], count[kr]
        u = 0
        while rows.size:
            yield from _check(x, queries, rows, owner[first + u], lane, radius, flips)
            u += 1
            more = np.flatnonzero(np.greater(c, u))
            rows, first, c = rows[more], first[more], c[more]


def _ranges(begin: np.ndarray, count: np.ndarray, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(t, begin[t] + u)`` for every ``u < count[t]``, about ``chunk`` at a time (a single
    ``t``'s whole range at least)."""
    nz = np.flatnonzero(count > 0)
    if nz.size == 0:
        return
    bg, c = begin[nz], count[nz].astype(np.int64)
    ends = np.cumsum(c)
    a = 0
    while a < len(nz):
        base = int(ends[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(ends, base + chunk, "right")))
        cc = c[a:b]
        # position u of owner t's range lands at ends[t] - cc[t] - base + u in this chunk
        offsets = bg[a:b] - (ends[a:b] - cc - base)
        yield np.repeat(nz[a:b], cc), np.arange(int(ends[b - 1]) - base) + np.repeat(offsets, cc)
        a = b


def _check(
    x: np.ndarray, queries: np.ndarray, rows: np.ndarray, qs: np.ndarray, lane: int, radius: int, flips: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Of candidates (x row, query row) found in ``lane``, yield those within the radius that no
    earlier lane found (an earlier lane within ``flips`` bits did)."""
    d = x[rows] ^ queries[qs]
    hit = np.flatnonzero(np.bitwise_count(d) <= radius)
    if hit.size and lane:
        dh = d[hit]
        keep = np.ones(len(hit), bool)
        for e in range(lane):
            keep &= np.bitwise_count((dh >> np.uint64(LANE_BITS * e)) & np.uint64(KEYS - 1)) > flips
        hit = hit[keep]
    if hit.size:
        yield rows[hit].astype(np.int64, copy=False), qs[hit].astype(np.int64, copy=False)
