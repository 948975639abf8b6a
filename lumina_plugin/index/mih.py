"""Multi-index hashing (MIH) radius join on the CPU, in vectorised NumPy.

Why a join of our own: FAISS answers *queries*; Find Duplicates needs the *self-join* (every code
against every other), and for that FAISS only offers brute force (``IndexBinaryFlat``, n²/2
comparisons) or ``IndexBinaryMultiHash`` (probes per query, one Python call per query block). On
the 2-core development machine, for 1M random codes at radius 6, this join takes about 4 s where
``range_search`` takes about 150 s and ``IndexBinaryMultiHash`` about 60 s (benchmarks/search.py).

The rule (generalised pigeonhole): cut the 64-bit code into ``m`` blocks. If two codes differ in at
most ``r`` bits, some block differs in at most ``s = r // m`` bits (else the total would exceed r).
For each block we sort the codes by that block's key, so codes with equal keys form runs; the
candidates of block ``k`` are the pairs whose keys differ by one of the masks of at most ``s``
bits (``s = 0``, the classic MIH with ``r + 1`` blocks: pairs inside one run). Each candidate is
checked on all 64 bits, and kept only in the *first* block where its keys are within ``s`` bits,
so every pair comes out exactly once, with no global de-duplication. Candidates are produced and
checked ``chunk`` at a time: a run of thousands of identical black frames never materialises all
its candidates at once (its genuine pairs are, of course, output).

:func:`choose_plan` picks ``m`` for a radius and size from a cost model whose constants were
measured on the development machine; :func:`estimate_seconds` lets callers compare it with FAISS.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_CHUNK", "MAX_TABLE_BITS", "Plan", "choose_plan", "estimate_seconds", "join", "make_plan"]

#: Candidate pairs checked per NumPy step: bounds the temporary arrays (about 40 bytes each).
DEFAULT_CHUNK = 1 << 18
#: Blocks compared with flips (s > 0) look neighbours up in a dense table of 2**bits entries.
MAX_TABLE_BITS = 22
#: The most blocks a plan may have (4-bit keys: more would only add sorting).
MAX_BLOCKS = 16

# Cost model, nanoseconds, one core of the development machine (AMD EPYC, NumPy 2.4), fitted to
# 1M-code runs at radii 3-10: sorting one row by one block key (keys of <= 16 bits radix-sort);
# one neighbour probe (a left row, one flip mask) in a table of <= 16 bits (fits in L2) or more;
# checking one candidate.
_NS_SORT_SMALL, _NS_SORT_LARGE = 90.0, 350.0
_NS_PROBE_SMALL, _NS_PROBE_LARGE = 12.0, 30.0
_NS_CANDIDATE = 4.5


@dataclass(frozen=True)
class Plan:
    """How a join cuts the codes: ``blocks`` as (shift, bits) from the low bits up; ``flips`` = s."""

    radius: int
    blocks: tuple[tuple[int, int], ...]
    flips: int

    @property
    def masks(self) -> list[np.uint64]:
        """The 64-bit mask of each block."""
        return [np.uint64(((1 << bits) - 1) << shift) for shift, bits in self.blocks]

    def flip_masks(self, bits: int) -> list[int]:
        """Key masks of at most ``flips`` bits over a ``bits``-bit key, 0 first."""
        out = [0]
        for t in range(1, self.flips + 1):
            out += [sum(1 << b for b in c) for c in itertools.combinations(range(bits), t)]
        return out

    def probes(self) -> int:
        """Neighbour keys looked at per row, all blocks together (``m`` when ``flips`` is 0)."""
        return sum(sum(math.comb(bits, t) for t in range(self.flips + 1)) for _, bits in self.blocks)

    def __str__(self) -> str:
        return f"{len(self.blocks)} blocks, {self.flips} flips"


def make_plan(radius: int, blocks: int) -> Plan:
    """The plan with ``blocks`` near-equal blocks for ``radius`` (``s = radius // blocks``)."""
    if radius < 0 or not 1 <= blocks <= min(64, MAX_BLOCKS):
        raise ValueError(f"need radius >= 0 and 1 <= blocks <= {MAX_BLOCKS}, got {radius}, {blocks}")
    base, extra = divmod(64, blocks)
    bits = [base + (1 if k < extra else 0) for k in range(blocks)]
    shifts = [sum(bits[:k]) for k in range(blocks)]
    flips = radius // blocks
    if flips and max(bits) > MAX_TABLE_BITS:
        raise ValueError(f"{blocks} blocks of {max(bits)} bits with {flips} flips need too large a table")
    return Plan(radius, tuple(zip(shifts, bits)), flips)


def _plans(radius: int) -> list[Plan]:
    out = []
    for m in range(1, min(radius + 1, MAX_BLOCKS) + 1):
        try:
            out.append(make_plan(radius, m))
        except ValueError:
            continue
    return out


def estimate_seconds(plan: Plan, n: int, queries: int | None = None) -> float:
    """Predicted time of :func:`join` on ``n`` uniform random codes (``queries`` rows are queries).

    Uniform codes put ``n / 2**bits`` codes under each key; real codes cluster more, which costs
    more candidates (callers add a margin).
    """
    q = n if queries is None else queries
    total = 0.0
    for _, bits in plan.blocks:
        small = bits <= 16
        total += n * (_NS_SORT_SMALL if small else _NS_SORT_LARGE)
        flips = sum(math.comb(bits, t) for t in range(plan.flips + 1))
        total += q * (flips - 1) * (_NS_PROBE_SMALL if small else _NS_PROBE_LARGE)
        # all-pairs: each unordered pair once per (key, flip); queries: each query meets n codes.
        pairs = n * n / 2 if queries is None else q * n
        total += pairs * flips / 2.0**bits * _NS_CANDIDATE
    return total * 1e-9


def choose_plan(radius: int, n: int, queries: int | None = None) -> Plan:
    """The plan :func:`estimate_seconds` finds fastest for this radius and size."""
    if radius < 0:
        raise ValueError("a negative radius has no plan")
    return min(_plans(radius), key=lambda p: estimate_seconds(p, n, queries))


def _keys(x: np.ndarray, shift: int, bits: int) -> np.ndarray:
    key = (x >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
    # Narrow keys sort much faster (NumPy radix-sorts 16-bit integers).
    for dtype, width in ((np.uint16, 16), (np.uint32, 32)):
        if bits <= width:
            return key.astype(dtype)
    return key


@dataclass
class _Block:
    """One block's sorted view: what every candidate check needs."""

    order: np.ndarray  # row of each sorted position
    sk: np.ndarray  # key of each sorted position (int64)
    sx: np.ndarray  # code of each sorted position
    earlier: list[np.uint64]  # masks of the blocks before this one
    flips: int
    radius: int
    isq: np.ndarray | None  # query flag of each sorted position (None: all-pairs)


def join(
    x: np.ndarray,
    radius: int,
    *,
    first_query: int = 0,
    plan: Plan | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield row pairs ``(i, j)``, int64 arrays with ``i < j``, where ``x[i]`` and ``x[j]`` differ
    in at most ``radius`` bits; every such pair exactly once, in no particular order.

    ``x``: uint64 codes (n,). Rows ``first_query:`` are queries: a pair of two rows before
    ``first_query`` is not produced (0: all pairs). ``chunk`` bounds the candidates checked per
    step. A negative radius yields nothing.
    """
    x = np.ascontiguousarray(x, dtype=np.uint64)
    n = len(x)
    if radius < 0 or n < 2 or first_query >= n:
        return
    if plan is None:
        plan = choose_plan(radius, n, None if first_query == 0 else n - first_query)
    if plan.radius != radius:
        raise ValueError(f"plan for radius {plan.radius} used with radius {radius}")
    for k in range(len(plan.blocks)):
        yield from _block_pairs(x, plan, k, int(first_query), max(int(chunk), 1))


def _block_pairs(x: np.ndarray, plan: Plan, k: int, q0: int, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    shift, bits = plan.blocks[k]
    n = len(x)
    key = _keys(x, shift, bits)
    order = np.argsort(key, kind="stable")
    sk = key[order].astype(np.int64)
    del key
    new_run = np.empty(n, bool)
    new_run[0] = True
    np.not_equal(sk[1:], sk[:-1], out=new_run[1:])
    run_starts = np.flatnonzero(new_run)
    run_id = np.cumsum(new_run) - 1  # (~9 arrays of n entries live: 72 bytes a code)
    del new_run
    isq = None if q0 == 0 else order >= q0
    blk = _Block(order, sk, x[order], plan.masks[:k], plan.flips, plan.radius, isq)

    # Flip 0: pairs inside a run. All-pairs: each position with the positions after it.
    # Queries: each query position with its whole run (the filter drops itself and repeats).
    if isq is None:
        left = np.arange(n)
        yield from _emit(blk, left, left + 1, np.append(run_starts[1:], n)[run_id] - left - 1, chunk)
    else:
        left = np.flatnonzero(isq)
        rid = run_id[left]
        start = run_starts[rid]
        yield from _emit(blk, left, start, np.append(run_starts[1:], n)[rid] - start, chunk)
    del run_id, run_starts
    if plan.flips == 0:
        return
    # Flips > 0: the run of key ^ f, through a dense table of run starts and lengths.
    count = np.bincount(sk, minlength=1 << bits)
    table = np.zeros((1 << bits) + 1, np.int64)
    np.cumsum(count, out=table[1:])
    lk = sk[left]
    for f in plan.flip_masks(bits)[1:]:
        partner = lk ^ f
        c = count[partner]
        if isq is None:  # each pair of runs once: from the run with the smaller key
            c = np.where(lk < partner, c, 0)
        yield from _emit(blk, left, table[partner], c, chunk)


def _emit(
    blk: _Block, left: np.ndarray, begin: np.ndarray, count: np.ndarray, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Check the candidates (left[t], begin[t] + u) for u < count[t], ``chunk`` at a time."""
    nz = np.flatnonzero(count > 0)
    if nz.size == 0:
        return
    lp, bg, c = left[nz], begin[nz], count[nz].astype(np.int64)
    ends = np.cumsum(c)
    a = 0
    while a < len(lp):
        base = int(ends[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(ends, base + chunk, "right")))
        cc = c[a:b]
        offsets = ends[a:b] - cc - base  # where each left position's candidates start
        q = np.arange(int(ends[b - 1]) - base) + np.repeat(bg[a:b] - offsets, cc)
        d = np.repeat(blk.sx[lp[a:b]], cc) ^ blk.sx[q]
        hit = np.flatnonzero(np.bitwise_count(d) <= blk.radius)
        if hit.size:
            yield from _keep(blk, lp[a:b][np.searchsorted(offsets, hit, "right") - 1], q[hit], d[hit])
        a = b


def _keep(
    blk: _Block, p: np.ndarray, q: np.ndarray, d: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Of verified candidates (sorted positions p, q; XOR d), yield those this block owns."""
    keep = np.ones(len(p), bool)
    for mask in blk.earlier:  # found already in an earlier block: not again
        keep &= np.bitwise_count(d & mask) > blk.flips
    if blk.isq is not None:
        # Index rows pair only with queries; two queries meet from both sides (and a query meets
        # itself): keep the side with the smaller (key, position).
        sp, sq = blk.sk[p], blk.sk[q]
        keep &= ~blk.isq[q] | (sp < sq) | ((sp == sq) & (p < q))
    if keep.any():
        i, j = blk.order[p[keep]], blk.order[q[keep]]
        yield np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
