"""Radius joins through FAISS binary flat indexes: ``IndexBinaryFlat`` on the CPU, and
``GpuIndexBinaryFlat`` on a GPU once it has passed a self-check.

Both are brute force (every query against every code): exact, and the reference the faster joins
are measured against. The CPU join is the fallback for every other backend and the choice for
small batches against a large index, where sorting the whole index for a multi-index join costs
more than comparing the batch with everything.

FAISS's ``range_search`` keeps distances strictly below its radius: we pass ``radius + 1``.
``GpuIndexBinaryFlat`` has no ``range_search`` and returns at most 2048 neighbours: the GPU join
asks for ``k`` neighbours and re-searches on the CPU every query whose k-th neighbour is still
within the radius (its list may be cut short), so the result is complete whatever ``k``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..hashing.codes import codes_to_bytes

__all__ = ["DEFAULT_QUERIES", "estimate_seconds", "gpu_flat_problem", "knn_join", "range_join"]

log = logging.getLogger(__name__)

#: Queries per ``range_search`` call: bounds FAISS's per-call result buffers.
DEFAULT_QUERIES = 65_536
#: FAISS range_search, nanoseconds per (query, code) comparison on one core of the development
#: machine: all pairs (1M codes: about 150 s on its 2 cores), and a batch of up to a few thousand
#: queries, 2.5 times dearer (1,000 against 1M: 0.73 s on 2 threads; 100 to 1,000 against 100k
#: to 3M: 1.45 to 1.9 ns per comparison on 2 threads).
_NS_PAIR_ONE_CORE = 0.6
_NS_QUERY_PAIR_ONE_CORE = 1.5
#: The most neighbours GpuIndexBinaryFlat returns per query.
GPU_MAX_K = 2048


def _faiss() -> Any:
    """FAISS, imported at first use: a run that never picks a FAISS backend never loads it."""
    import faiss

    return faiss


def estimate_seconds(n: int, queries: int | None = None, threads: int | None = None) -> float:
    """Predicted time of :func:`range_join` over ``n`` codes (all pairs, or ``queries`` queries)."""
    cores = max(1, threads or _faiss().omp_get_max_threads())
    if queries is None or queries >= DEFAULT_QUERIES:  # blocks of 65,536 queries: the all-pairs rate
        return (n * n / 2 if queries is None else queries * n) * _NS_PAIR_ONE_CORE / cores * 1e-9
    return queries * n * _NS_QUERY_PAIR_ONE_CORE / cores * 1e-9


def _rule(i: np.ndarray, j: np.ndarray, first_query: int) -> tuple[np.ndarray, np.ndarray]:
    """Of hits (query row i, code row j), the pairs to report, as (min, max) row pairs.

    A query pairs with every index row (``j < first_query``) and with the queries after it, so
    a pair of queries, met from both sides, is kept once.
    """
    keep = (j > i) | (j < first_query)
    i, j = i[keep], j[keep]
    return np.minimum(i, j), np.maximum(i, j)


def range_join(
    x: np.ndarray, radius: int, *, first_query: int = 0, chunk: int = DEFAULT_QUERIES
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield row pairs ``(i, j)``, i < j, within ``radius`` bits, each once (see ``mih.join``).

    Query blocks are added to the index last block first, and each block is searched right after
    it is added, so it meets only itself, later blocks and the rows before ``first_query``: each
    pair of queries is compared once, not twice.
    """
    x = np.asarray(x, dtype=np.uint64)
    n = len(x)
    if radius < 0 or n < 2 or first_query >= n:
        return
    chunk = max(int(chunk), 1)
    starts = list(range(first_query, n, chunk))[::-1]
    # FAISS numbers rows in the order they were added: map its labels back to our rows.
    row_of = np.concatenate([np.arange(first_query)] + [np.arange(q0, min(q0 + chunk, n)) for q0 in starts])
    base = codes_to_bytes(x)
    index = _faiss().IndexBinaryFlat(64)
    if first_query:
        index.add(base[:first_query])
    for q0 in starts:
        q1 = min(q0 + chunk, n)
        index.add(base[q0:q1])
        lims, _, labels = index.range_search(base[q0:q1], radius + 1)  # strict: +1 makes it inclusive
        rows = np.repeat(np.arange(q0, q1, dtype=np.int64), np.diff(lims.astype(np.int64)))
        hits = row_of[labels.astype(np.int64)]
        # The block meets itself from both sides: keep one side. Rows before q0 are index rows.
        keep = (hits > rows) | (hits < q0)
        if keep.any():
            yield np.minimum(rows[keep], hits[keep]), np.maximum(rows[keep], hits[keep])


@functools.cache
def _gpu_resources(device: int) -> Any:
    return _faiss().StandardGpuResources()  # one per device and process: it holds scratch memory


def _gpu_index(device: int, base: np.ndarray) -> Any:
    if device == 0 or not hasattr(_faiss(), "GpuIndexBinaryFlatConfig"):
        index = _faiss().GpuIndexBinaryFlat(_gpu_resources(device), 64)
    else:
        cfg = _faiss().GpuIndexBinaryFlatConfig()
        cfg.device = int(device)
        index = _faiss().GpuIndexBinaryFlat(_gpu_resources(device), 64, cfg)
    index.add(base)
    return index


@functools.cache
def gpu_flat_problem(device: int = 0) -> str | None:
    """Why ``GpuIndexBinaryFlat`` must not be used on ``device`` (None: it passed its self-check).

    Some faiss-gpu builds lack kernels for the card and return distance 0 and random ids without
    any error, so the GPU index is compared with ``IndexBinaryFlat`` on a few thousand codes
    (exact distances, and ids that really are at those distances) before it is trusted.
    """
    if not hasattr(_faiss(), "GpuIndexBinaryFlat") or _faiss().get_num_gpus() <= device:
        return "this FAISS has no GPU support or no such GPU"
    rng = np.random.default_rng(20261125)
    x = rng.integers(0, 2**64, 4096, dtype=np.uint64, endpoint=False)
    x[1::2] = x[::2] ^ (np.uint64(1) << rng.integers(0, 64, 2048).astype(np.uint64))  # 1-bit neighbours
    base = codes_to_bytes(x)
    try:
        cpu = _faiss().IndexBinaryFlat(64)
        cpu.add(base)
        want, _ = cpu.search(base[:512], 16)
        got, ids = _gpu_index(device, base).search(base[:512], 16)
    except Exception as err:
        return f"GpuIndexBinaryFlat failed: {err}"
    real = np.bitwise_count(x[:512, None] ^ x[np.clip(ids, 0, len(x) - 1)])
    if not (np.array_equal(got, want) and (ids >= 0).all() and np.array_equal(real, got)):
        return "GpuIndexBinaryFlat disagrees with IndexBinaryFlat (a faiss-gpu build without kernels for this card?)"
    return None


def knn_join(
    x: np.ndarray, radius: int, *, first_query: int = 0, k: int = 256, device: int = 0, batch: int = 1 << 16
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Like :func:`range_join`, with ``GpuIndexBinaryFlat`` k-NN searches (call only after
    :func:`gpu_flat_problem` returned None). Queries whose ``k``-th neighbour is within the
    radius are searched again on the CPU, so the result is complete."""
    x = np.asarray(x, dtype=np.uint64)
    n = len(x)
    if radius < 0 or n < 2 or first_query >= n:
        return
    k = int(min(max(k, 2), GPU_MAX_K, n))
    base = codes_to_bytes(x)
    index = _gpu_index(device, base)
    batch = max(1, min(batch, (1 << 26) // k))
    cut: list[np.ndarray] = []
    for q0 in range(first_query, n, batch):
        q1 = min(q0 + batch, n)
        dist, labels = index.search(base[q0:q1], k)
        full = dist[:, -1] <= radius
        cut.append(np.flatnonzero(full) + q0)
        near = (dist <= radius) & ~full[:, None]
        i = np.nonzero(near)[0].astype(np.int64) + q0
        j = labels[near].astype(np.int64)
        yield _rule(i, j, first_query)
    redo = np.concatenate(cut)
    if redo.size:  # lists that may be cut short: exact search on the CPU
        log.debug("faiss-gpu: %d queries had >= %d neighbours within %d bits; re-searched on the CPU", redo.size, k, radius)
        cpu = _faiss().IndexBinaryFlat(64)
        cpu.add(base)
        for s in range(0, len(redo), DEFAULT_QUERIES):
            rows = redo[s : s + DEFAULT_QUERIES]
            lims, _, labels = cpu.range_search(base[rows], radius + 1)
            i = np.repeat(rows, np.diff(lims.astype(np.int64)))
            yield _rule(i, labels.astype(np.int64), first_query)
