"""Radius search over hash codes: candidate pairs of images, whichever backend finds them.

Per algorithm (column of codes) a *join* finds every pair of rows within that algorithm's radius,
streamed in chunks; the pairs of all algorithms are united, then all four distances of each pair
are computed with NumPy, so the grouping step can apply any rule over the four hashes without
searching again. The backends, all exact (tests check each against brute force):

- ``"faiss"``: FAISS ``IndexBinaryFlat.range_search`` on the CPU (brute force);
- ``"mih"``: the multi-index join of :mod:`.mih` in NumPy on the CPU; for a batch against the
  index, the lane join of :mod:`.lanes` (no sort of the index), unless sorting is predicted cheaper;
- ``"gpu"``: the CuPy kernels of :mod:`.cupy_join` (multi-index join, brute force) and, for a
  batch, the lane kernel of :mod:`.gpu_lanes`;
- ``"faiss-gpu"``: FAISS ``GpuIndexBinaryFlat`` k-NN, completed on the CPU where k was too small;
- ``"cpu"``: whichever of ``"mih"`` and ``"faiss"`` the cost models predict faster for that
  column's radius and size;
- ``"auto"`` (default): ``"gpu"`` when CuPy sees a GPU that passes its self-check, else ``"cpu"``.

A GPU backend that is missing or fails its self-check falls back to ``"cpu"`` with a warning. The
``[gpu]`` switch of the configuration reaches here through the backend it asks for
(``IndexSettings.search_options``: switched off, "auto" and "gpu" arrive as "cpu").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import gpu_status
from ..model import ALGORITHMS
from . import cupy_join, flat, gpu_check, gpu_lanes, lanes, mih
from ._arrays import has_duplicates, is_increasing, isin, positions_in, sorted_unique

__all__ = [
    "BACKENDS", "DEFAULT_CHUNK", "Pairs", "all_pairs", "pick_backend", "query_pairs", "query_plan", "radius_join",
]

log = logging.getLogger(__name__)

_NCODES = len(ALGORITHMS)
#: Queries per FAISS ``range_search`` call: bounds FAISS's per-call result buffers.
DEFAULT_CHUNK = flat.DEFAULT_QUERIES
BACKENDS = ("auto", "cpu", "faiss", "mih", "gpu", "faiss-gpu")
#: Multi-index joins are chosen over FAISS when predicted this many times faster. It was 2.0, for
#: fear that clustered libraries slow the joins; measured, skewed codes cost them no more than
#: uniform ones (100k at radius 10: 6.5 s both, FAISS 9.1 s; the 100k Lumina benchmark: MIH
#: 1.2 s a column, FAISS 2.9 s, where the margin of 2 had picked FAISS).
_MIH_MARGIN = 1.0


@dataclass(frozen=True)
class Pairs:
    """Pairs of images with the Hamming distances of their four hashes.

    ``a`` and ``b`` are image ids with ``a < b``; ``dist[i, k]`` is the distance of hash
    ``ALGORITHMS[k]`` between ``a[i]`` and ``b[i]``. Rows are unique and sorted by ``(a, b)``.
    """

    a: np.ndarray
    b: np.ndarray
    dist: np.ndarray

    @classmethod
    def empty(cls) -> Pairs:
        """No pairs."""
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, _NCODES), np.uint8))

    def __len__(self) -> int:
        return len(self.a)


def _check(ids: np.ndarray, codes: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids)
    ids = ids.astype(np.int64, copy=False) if ids.size else np.empty(0, np.int64)
    codes = np.asarray(codes)
    # No copy when the codes are already uint64 (an index's memory-mapped array, say).
    # Rows may carry more words than the classic hashes (an index's rows hold the geometry
    # words too): the searched columns are the first four.
    if codes.size and ids.size and codes.ndim == 2 and codes.shape[1] > _NCODES and len(codes) == len(ids):
        codes = codes[:, :_NCODES]
    codes = codes.astype(np.uint64, copy=False).reshape(-1, _NCODES) if codes.size else np.empty((0, _NCODES), np.uint64)
    if ids.ndim != 1 or len(codes) != len(ids):
        raise ValueError(f"{what}: {ids.shape} ids do not match codes of shape {codes.shape}")
    if has_duplicates(ids):
        raise ValueError(f"{what}: image ids must be unique")
    return ids, codes


def _check_radii(radii: Sequence[int]) -> list[int]:
    radii = [int(r) for r in radii]
    if len(radii) != _NCODES:
        raise ValueError(f"radii needs {_NCODES} entries ({', '.join(ALGORITHMS)}), got {len(radii)}")
    return radii


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with FAISS's OpenMP thread count set to ``n`` (unchanged when None), then restore it."""
    if n is None:
        yield
        return
    import faiss  # loaded only when a FAISS backend runs: it costs a tenth of a second to import

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _usable(backend: str, device: int) -> str:
    """``backend``, or the CPU choice ("cpu") with a warning when a GPU backend cannot be used."""
    problem: gpu_status.GpuProblem | str | None
    if backend == "gpu":
        problem = gpu_check.gpu_problem(device)
    elif backend == "faiss-gpu":
        problem = flat.gpu_flat_problem(device)
    else:
        return backend
    if problem is None:
        return backend
    if (backend, str(problem)) not in _warned:  # once per process, not once per column and call
        _warned.add((backend, str(problem)))
        log.warning("index search: backend %r unusable (%s); using the CPU", backend, problem)
    return "cpu"


_warned: set[tuple[str, str]] = set()


def pick_backend(backend: str, radius: int, n: int, queries: int | None = None, *, device: int = 0) -> str:
    """The concrete backend ("faiss", "mih", "gpu" or "faiss-gpu") for one column's join.

    ``backend`` as asked (``IndexSettings.search_options()["backend"]`` carries the ``[gpu]``
    switch); ``n`` rows of which ``queries`` are queries (None: all pairs). "auto" takes the GPU
    when it passes its self-check (quietly skipped when there is none or it fails), else does what
    "cpu" does: compares the CPU cost models. "cpu" never looks for a GPU.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown index backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if gpu_status.cupy_module() is not None and gpu_check.gpu_problem(device) is None:
            return "gpu"
        backend = "cpu"
    backend = _usable(backend, device)
    if backend != "cpu":
        return backend
    if queries is None:
        fast = mih.estimate_seconds(mih.choose_plan(radius, n, None), n, None)
    elif query_plan(radius, n, queries) == "lanes":  # a batch: the lane join, unless sorting wins
        fast = lanes.estimate_seconds(n - queries, queries, radius)
    else:
        fast = mih.estimate_seconds(mih.choose_plan(radius, n, queries), n, queries)
    return "mih" if fast * _MIH_MARGIN < flat.estimate_seconds(n, queries) else "faiss"


def radius_join(
    x: np.ndarray,
    radius: int,
    *,
    first_query: int = 0,
    backend: str = "auto",
    chunk: int = DEFAULT_CHUNK,
    pair_chunk: int = mih.DEFAULT_CHUNK,
    device: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield row pairs ``(i, j)`` (int64 NumPy arrays, ``i < j``) of one column of codes within
    ``radius`` bits, every pair exactly once, chunk by chunk.

    ``x``: uint64 (n,). Rows ``first_query:`` are queries; pairs of two earlier rows are left out
    (0: all pairs); with queries, the lane join (CPU or GPU) of the queries against the earlier
    rows plus the pairs among the queries, where :func:`query_plan` or the GPU takes it.
    ``chunk``: queries per FAISS call; ``pair_chunk``: candidate pairs per NumPy step (``"mih"``)
    or pairs per kernel launch (``"gpu"``): they bound the working memory.
    """
    n = len(x)
    if radius < 0 or n < 2 or first_query >= n:
        return
    queries = None if first_query == 0 else n - first_query
    chosen = pick_backend(backend, radius, n, queries, device=device)
    log.debug("index search: %s join of %d codes (%s queries) at radius %d", chosen, n, queries or "all", radius)
    if queries is not None and _takes_lanes(chosen, radius, n, queries):
        q0 = first_query
        for i, j in _lane_join(x[:q0], x[q0:], radius, chosen, pair_chunk, device):
            yield i, q0 + j
        for i, j in mih.join(x[q0:], radius, chunk=pair_chunk):  # pairs within the batch
            yield q0 + i, q0 + j
    elif chosen == "faiss":
        yield from flat.range_join(x, radius, first_query=first_query, chunk=chunk)
    elif chosen == "mih":
        yield from mih.join(x, radius, first_query=first_query, chunk=pair_chunk)
    elif chosen == "faiss-gpu":
        yield from flat.knn_join(x, radius, first_query=first_query, device=device)
    else:
        # The GPU multi-index join (all pairs, or a batch beyond the lanes' radii); it runs brute
        # force itself where that is predicted faster (a large radius).
        capacity = max(pair_chunk, 1 << 16)
        for i, j in cupy_join.mih_join(x, radius, first_query=first_query, device=device, capacity=capacity):
            yield i.get(), j.get()


def _takes_lanes(chosen: str, radius: int, n: int, queries: int) -> bool:
    """Whether a batch join on backend ``chosen`` runs as a lane join (CPU or GPU)."""
    if not lanes.usable(radius):
        return False
    return chosen == "gpu" or (chosen == "mih" and query_plan(radius, n, queries) == "lanes")


def _lane_join(
    index_col: np.ndarray, qcol: np.ndarray, radius: int, chosen: str, pair_chunk: int, device: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(index row, query row) pairs within ``radius`` (no pairs within the batch), on the GPU
    for ``chosen == "gpu"``, else on the CPU."""
    if chosen == "gpu":
        yield from gpu_lanes.query_join(index_col, qcol, radius, device=device, capacity=max(pair_chunk, 1 << 16))
    else:
        yield from lanes.join(index_col, qcol, radius, chunk=pair_chunk)


def _search(
    column: Callable[[int], np.ndarray], n: int, first_query: int, radii: list[int], opts: dict[str, Any],
    threads: int | None,
) -> np.ndarray:
    """Unique row-pair keys ``i * n + j`` (i < j) within radius on at least one algorithm.

    ``column(k)`` gives algorithm k's codes of all n rows: one column is in memory at a time.
    """
    keys: list[np.ndarray] = []
    with _threads(threads):
        for k, radius in enumerate(radii):
            if radius < 0:
                continue
            parts = [i * n + j for i, j in radius_join(column(k), radius, first_query=first_query, **opts)]
            if parts:
                keys.append(np.concatenate(parts))  # each pair once per column already
    if not keys:
        return np.empty(0, np.int64)
    return sorted_unique(np.concatenate(keys))


def _pairs_from_keys(
    ids_of: Callable[[np.ndarray], np.ndarray], codes_of: Callable[[np.ndarray], np.ndarray], n: int, keys: np.ndarray
) -> Pairs:
    """Pairs of ids from row-pair keys ``i * n + j``; ``ids_of(rows)`` and ``codes_of(rows)`` give
    the rows' ids and (len(rows), 4) codes."""
    i, j = keys // n, keys % n
    dist = np.bitwise_count(codes_of(i) ^ codes_of(j)).astype(np.uint8, copy=False)
    ids_i, ids_j = ids_of(i), ids_of(j)
    a, b = np.minimum(ids_i, ids_j), np.maximum(ids_i, ids_j)
    order = np.lexsort((b, a))
    return Pairs(a[order], b[order], np.ascontiguousarray(dist[order]))


def all_pairs(
    ids: np.ndarray,
    codes: np.ndarray,
    radii: Sequence[int],
    *,
    chunk: int = DEFAULT_CHUNK,
    faiss_threads: int | None = None,
    backend: str = "auto",
    pair_chunk: int = mih.DEFAULT_CHUNK,
    device: int = 0,
) -> Pairs:
    """Every pair of distinct images within ``radii[k]`` bits on at least one algorithm ``k``.

    ``ids``: unique int64 (n,); ``codes``: uint64 (n, 4) in ``ALGORITHMS`` order; ``radii``: four
    inclusive Hamming radii, a negative one disabling that algorithm. ``faiss_threads`` sets FAISS's
    thread count for this call only (None: leave it as it is). ``backend``, ``pair_chunk`` and
    ``device``: see :func:`radius_join`; every backend gives the same pairs.
    """
    ids, codes = _check(ids, codes, "all_pairs")
    radii = _check_radii(radii)
    if len(ids) < 2:
        return Pairs.empty()
    opts = {"backend": backend, "chunk": chunk, "pair_chunk": pair_chunk, "device": device}
    keys = _search(lambda k: np.ascontiguousarray(codes[:, k]), len(ids), 0, radii, opts, faiss_threads)
    return _pairs_from_keys(lambda rows: ids[rows], lambda rows: codes[rows], len(ids), keys)


def query_pairs(
    index_ids: np.ndarray,
    index_codes: np.ndarray,
    query_ids: np.ndarray,
    query_codes: np.ndarray,
    radii: Sequence[int],
    *,
    chunk: int = DEFAULT_CHUNK,
    faiss_threads: int | None = None,
    backend: str = "auto",
    pair_chunk: int = mih.DEFAULT_CHUNK,
    device: int = 0,
) -> Pairs:
    """Pairs between a new batch and the indexed images, and pairs within the batch.

    Same rule and result as :func:`all_pairs` over the union of both sets, less the pairs with
    both images only in the index. An id in both sets counts as the query's (its indexed codes
    are ignored), so a re-imported image never pairs with its own old entry.
    """
    index_ids, index_codes = _check(index_ids, index_codes, "query_pairs index")
    query_ids, query_codes = _check(query_ids, query_codes, "query_pairs query")
    radii = _check_radii(radii)
    if len(query_ids) == 0:
        return Pairs.empty()
    # Rows: the index's rows as they are, then the queries. The index's (possibly memory-mapped)
    # codes are never copied whole; its rows whose id is queried again are left out of every join.
    n0 = len(index_ids)
    if is_increasing(index_ids):  # a HashIndex's ids: a binary search per query, no pass over the index
        requeried = positions_in(query_ids, index_ids)
    else:
        requeried = np.flatnonzero(isin(index_ids, query_ids))
    opts = {"backend": backend, "chunk": chunk, "pair_chunk": pair_chunk, "device": device}
    n = n0 + len(query_ids)
    keys: list[np.ndarray] = []
    with _threads(faiss_threads):
        for k, radius in enumerate(radii):
            if radius >= 0:
                parts = [i * n + j for i, j in _query_column(index_codes, query_codes, k, radius, requeried, opts)]
                if parts:
                    keys.append(np.concatenate(parts))  # each pair once per column already
    if not keys:
        return Pairs.empty()

    def gather(index_part: np.ndarray, query_part: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        def of(rows: np.ndarray) -> np.ndarray:
            out = np.empty((len(rows), *index_part.shape[1:]), index_part.dtype)
            old = rows < n0
            out[old] = index_part[rows[old]]
            out[~old] = query_part[rows[~old] - n0]
            return out
        return of

    return _pairs_from_keys(gather(index_ids, query_ids), gather(index_codes, query_codes), n,
                            sorted_unique(np.concatenate(keys)))


def query_plan(radius: int, n: int, queries: int) -> str:
    """How the CPU multi-index join runs a query of ``queries`` rows among ``n``: "lanes" (the
    lane join of :mod:`.lanes`: no sort of the index) or "sorted" (:func:`.mih.join`)."""
    if not lanes.usable(radius):
        return "sorted"
    sorted_join = mih.estimate_seconds(mih.choose_plan(radius, n, queries), n, queries)
    return "lanes" if lanes.estimate_seconds(n - queries, queries, radius) <= sorted_join else "sorted"


def _query_column(
    index_codes: np.ndarray, query_codes: np.ndarray, k: int, radius: int, requeried: np.ndarray, opts: dict[str, Any]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Row pairs (i < j, rows as in :func:`query_pairs`) of column ``k`` within ``radius``."""
    n0, q = len(index_codes), len(query_codes)
    n = n0 - len(requeried) + q
    chosen = pick_backend(opts["backend"], radius, n, q, device=opts["device"])
    qcol = np.ascontiguousarray(query_codes[:, k])
    if _takes_lanes(chosen, radius, n, q):
        log.debug("index search: %s lane join of %d queries against %d codes at radius %d", chosen, q, n0, radius)
        for i, j in _lane_join(index_codes[:, k], qcol, radius, chosen, opts["pair_chunk"], opts["device"]):
            if requeried.size:
                keep = ~isin(i, requeried)
                i, j = i[keep], j[keep]
            yield i, n0 + j
        for i, j in mih.join(qcol, radius, chunk=opts["pair_chunk"]):  # pairs within the batch
            yield n0 + i, n0 + j
        return
    # A join over one column holding the kept index rows, then the queries.
    kept = np.delete(np.arange(n0), requeried) if requeried.size else None
    col = np.concatenate([index_codes[:, k] if kept is None else index_codes[kept, k], qcol])
    first = len(col) - q

    def row(r: np.ndarray) -> np.ndarray:  # a row of col -> a row of query_pairs
        out = r - first + n0
        old = r < first
        out[old] = r[old] if kept is None else kept[r[old]]
        return out

    for i, j in radius_join(col, radius, first_query=first, **{**opts, "backend": chosen}):
        yield row(i), row(j)
