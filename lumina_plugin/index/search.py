"""Radius search over hash codes with FAISS binary indexes (CPU): candidate pairs of images.

FAISS finds, per algorithm, every pair within that algorithm's radius (``IndexBinaryFlat`` with
``range_search``, queries in chunks so the result lists stay bounded). The candidates of all
algorithms are united, then all four distances of each candidate are computed with NumPy, so the
grouping step can apply any rule over the four hashes without searching again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np

from ..hashing.codes import ALGORITHMS, codes_to_bytes

__all__ = ["Pairs", "all_pairs", "query_pairs", "DEFAULT_CHUNK"]

_NCODES = len(ALGORITHMS)
#: Queries per ``range_search`` call: bounds FAISS's per-call result buffers.
DEFAULT_CHUNK = 65_536


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
    ids = ids.astype(np.int64) if ids.size else np.empty(0, np.int64)
    codes = np.asarray(codes)
    codes = codes.astype(np.uint64).reshape(-1, _NCODES) if codes.size else np.empty((0, _NCODES), np.uint64)
    if ids.ndim != 1 or len(codes) != len(ids):
        raise ValueError(f"{what}: {ids.shape} ids do not match codes of shape {codes.shape}")
    if len(np.unique(ids)) != len(ids):
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
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _candidates(codes: np.ndarray, first_query: int, radii: list[int], chunk: int) -> np.ndarray:
    """Row pairs (i, j), i < j, as unique keys ``i * n + j``, within radius on some algorithm.

    Rows ``first_query:`` are the queries; pairs of two rows before ``first_query`` are never
    produced. Query blocks are added to the FAISS index last block first, and each block is
    searched right after it is added, so it meets only itself, later blocks and the rows before
    ``first_query``: each pair of queries is compared once, not twice.
    """
    n = len(codes)
    starts = list(range(first_query, n, chunk))[::-1]
    # FAISS numbers rows in the order they were added: map its labels back to our rows.
    row_of = np.concatenate([np.arange(first_query)] + [np.arange(q0, min(q0 + chunk, n)) for q0 in starts])
    keys: list[np.ndarray] = []
    for k, radius in enumerate(radii):
        if radius < 0:
            continue
        base = codes_to_bytes(codes[:, k])
        index = faiss.IndexBinaryFlat(64)
        if first_query:
            index.add(base[:first_query])
        for q0 in starts:
            q1 = min(q0 + chunk, n)
            index.add(base[q0:q1])
            # FAISS keeps hits with distance < radius: the +1 makes our radius inclusive.
            lims, _, labels = index.range_search(base[q0:q1], radius + 1)
            rows = np.repeat(np.arange(q0, q1, dtype=np.int64), np.diff(lims.astype(np.int64)))
            hits = row_of[labels.astype(np.int64)]
            keep = rows != hits
            lo, hi = np.minimum(rows[keep], hits[keep]), np.maximum(rows[keep], hits[keep])
            keys.append(np.unique(lo * n + hi))
    if not keys:
        return np.empty(0, np.int64)
    return np.unique(np.concatenate(keys))


def _pairs_from_keys(ids: np.ndarray, codes: np.ndarray, keys: np.ndarray) -> Pairs:
    n = len(ids)
    i, j = keys // n, keys % n
    dist = np.bitwise_count(codes[i] ^ codes[j]).astype(np.uint8, copy=False)
    a, b = np.minimum(ids[i], ids[j]), np.maximum(ids[i], ids[j])
    order = np.lexsort((b, a))
    return Pairs(a[order], b[order], np.ascontiguousarray(dist[order]))


def all_pairs(
    ids: np.ndarray,
    codes: np.ndarray,
    radii: Sequence[int],
    *,
    chunk: int = DEFAULT_CHUNK,
    faiss_threads: int | None = None,
) -> Pairs:
    """Every pair of distinct images within ``radii[k]`` bits on at least one algorithm ``k``.

    ``ids``: unique int64 (n,); ``codes``: uint64 (n, 4) in ``ALGORITHMS`` order; ``radii``: four
    inclusive Hamming radii, a negative one disabling that algorithm. ``faiss_threads`` sets FAISS's
    thread count for this call only (None: leave it as it is).
    """
    ids, codes = _check(ids, codes, "all_pairs")
    radii = _check_radii(radii)
    if len(ids) < 2:
        return Pairs.empty()
    with _threads(faiss_threads):
        keys = _candidates(codes, 0, radii, chunk)
    return _pairs_from_keys(ids, codes, keys)


def query_pairs(
    index_ids: np.ndarray,
    index_codes: np.ndarray,
    query_ids: np.ndarray,
    query_codes: np.ndarray,
    radii: Sequence[int],
    *,
    chunk: int = DEFAULT_CHUNK,
    faiss_threads: int | None = None,
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
    keep = ~np.isin(index_ids, query_ids)
    ids = np.concatenate([index_ids[keep], query_ids])
    codes = np.concatenate([index_codes[keep], query_codes])
    with _threads(faiss_threads):
        keys = _candidates(codes, int(keep.sum()), radii, chunk)
    return _pairs_from_keys(ids, codes, keys)
