"""Candidate pairs for grouping: the classic hashes' search and the geometric one, merged.

The classic search (the index's radius joins over the four hashes) finds copies whose pixels
line up; the geometric search (:mod:`.geometric`) finds turned, bordered and cropped ones. Both
end here as one list of pairs with one row of distances each: the four classic Hamming
distances (computed for every pair, whichever search found it) and the packed geometric
verdict (0: none). That row is what the catalog stores, so regrouping later needs neither
search again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Thresholds
from ..hashing import geometry
from ..index import Pairs, all_pairs, query_pairs
from ..model import CLASSIC_WORDS, CODE_WORDS, PAIR_COLUMNS
from . import geometric
from .pairs import plausible, search_radii

#: second_look([(index id a, index id b, rotation), ...]) -> a packed verdict or 0 for each:
#: a look at the two photos' pixels for the pairs whose words leave them unsure (the engine
#: decodes the files; grouping/second_look.py shares the looks out over the worker pool).
SecondLook = Callable[[Sequence[tuple[int, int, int]]], list[int]]


@dataclass(frozen=True)
class FoundPairs:
    """Pairs (a < b, unique, sorted) with their (n, PAIR_COLUMNS) distance rows."""

    a: np.ndarray
    b: np.ndarray
    dist: np.ndarray
    #: How many pairs the geometric search proposed, accepted on the words, and looked at.
    geometric: Mapping[str, int]

    def __len__(self) -> int:
        return len(self.a)


def _classic_distances(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    x = np.bitwise_xor(codes_a[:, :CLASSIC_WORDS], codes_b[:, :CLASSIC_WORDS])
    return np.bitwise_count(x).astype(np.int32)


def find_pairs(ids: np.ndarray, codes: np.ndarray, thresholds: Thresholds, options: dict[str, Any],
               query_ids: np.ndarray | None = None, query_codes: np.ndarray | None = None,
               second_look: SecondLook | None = None, searched: tuple[Pairs, np.ndarray, np.ndarray] | None = None
               ) -> FoundPairs:
    """Every candidate pair among ``ids`` (all pairs), or of each query photo against ``ids``
    and the other queries (an import batch). ``codes``: (n, CODE_WORDS) uint64 rows of ``ids``;
    ``options``: the index's search options (backend, device...). ``searched``: a batch's search
    already done by a resident index (``index/resident.py``): its classic pairs and geometric
    candidates (a, b); ``ids`` then need hold only the indexed photos those pairs name."""
    ids = np.asarray(ids, np.int64)
    # (a catalog where nothing could be hashed yet has no rows: reshape(0, -1) is ambiguous)
    codes = np.asarray(codes, np.uint64).reshape(len(ids), CODE_WORDS)
    radii = search_radii(thresholds)
    batch = query_ids is not None and query_codes is not None
    if batch:
        q_ids = np.asarray(query_ids, np.int64)
        q_codes = np.asarray(query_codes, np.uint64).reshape(len(q_ids), CODE_WORDS)
        if searched is not None:
            classic, geo_a, geo_b = searched
        else:
            classic = query_pairs(ids, codes[:, :CLASSIC_WORDS], q_ids, q_codes[:, :CLASSIC_WORDS], radii, **options)
            geo_a, geo_b = geometric.candidates(ids, codes[:, CLASSIC_WORDS:], options,
                                                q_ids, q_codes[:, CLASSIC_WORDS:])
    else:
        classic = all_pairs(ids, codes[:, :CLASSIC_WORDS], radii, **options)
        geo_a, geo_b = geometric.candidates(ids, codes[:, CLASSIC_WORDS:], options)
    # One table of every photo's words, sorted by id, queries shadowing stored rows of the same
    # id (the last occurrence wins): rows of a pair list are then one binary search away.
    all_ids = np.concatenate([ids, q_ids]) if batch else ids
    all_codes = np.concatenate([codes, q_codes]) if batch else codes
    table_ids, last_reversed = np.unique(all_ids[::-1], return_index=True)
    table_codes = all_codes[len(all_ids) - 1 - last_reversed]

    def rows(x: np.ndarray) -> np.ndarray:
        return table_codes[np.searchsorted(table_ids, np.asarray(x, np.int64))]

    # The classic search's candidates are verified too: a mild crop or a straightened copy is
    # often close on dHash or pHash without passing their rule, and its words say "unsure".
    geo_a, geo_b, in_classic, classic_at = _union(geo_a, geo_b, classic.a, classic.b)
    stats = {"candidates": len(geo_a), "accepted": 0, "looked": 0, "looked_accepted": 0, "kept_apart": 0}
    packed = np.zeros(len(geo_a), np.int64)
    unsure = np.empty(0, np.int64)
    ra = rb = np.empty((0, CODE_WORDS), np.uint64)
    if len(geo_a):
        ra, rb = rows(geo_a), rows(geo_b)
        wa, wb = ra[:, CLASSIC_WORDS:], rb[:, CLASSIC_WORDS:]
        verdict = geometric.verify_rows(wa, wb)
        ok = np.flatnonzero(verdict.ok)
        # (the sides of the accepted pairs' derived copies only: most candidates of a batch are not)
        derived = verdict.derived[ok]
        sides = geometric.meta_sides(np.where(derived > 0, wb[ok, geometry.META], wa[ok, geometry.META]))
        packed[ok] = geometric.pack(verdict.rotation[ok], verdict.relation[ok], derived, verdict.distance[ok], sides)
        stats["accepted"] = len(ok)
        # Pairs the classic rule accepts need no look: their pixels line up.
        unsure = np.flatnonzero(np.asarray(verdict.unsure, bool) & ~np.asarray(verdict.ok, bool))
        if len(unsure):
            unsure = unsure[~plausible(_classic_distances(ra[unsure], rb[unsure]), thresholds)]
    # The pixel looks of both kinds in one call: the unsure pairs, then the classic matches
    # whose 256-bit codes disagree (_far_classic): the pool shares them out together.
    far = _far_classic(classic.a, classic.b, rows, thresholds) if second_look is not None else []
    if second_look is not None and (len(unsure) or far):
        seen = np.asarray(second_look(
            [(int(geo_a[k]), int(geo_b[k]), int(verdict.rotation[k])) for k in unsure.tolist()]
            + [(int(classic.a[k]), int(classic.b[k]), 0) for k in far]), np.int64).reshape(len(unsure) + len(far))
        packed[unsure] = seen[:len(unsure)]
        stats["looked"] = len(unsure) + len(far)
        stats["looked_accepted"] = int((packed[unsure] != 0).sum())
        apart = [k for k, verdict_k in zip(far, seen[len(unsure):].tolist(), strict=True) if not verdict_k]
    else:
        apart = []
    stats["kept_apart"] = len(apart)
    # The pairs: the union's rows that either search keeps (every classic pair, the geometric
    # ones with a verdict), already sorted and unique; a verdict wins over "kept apart".
    kept_apart = np.zeros(len(geo_a), bool)
    kept_apart[classic_at[apart]] = True
    geo_col = np.where(packed != 0, packed, np.where(kept_apart, geometric.APART, 0))
    keep = np.flatnonzero(in_classic | (packed != 0))
    dist = np.zeros((len(keep), PAIR_COLUMNS), np.int32)
    if len(keep):
        dist[:, :CLASSIC_WORDS] = _classic_distances(ra[keep], rb[keep])
        dist[:, CLASSIC_WORDS] = geo_col[keep]
    return FoundPairs(geo_a[keep], geo_b[keep], dist, stats)


def _union(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The unique pairs of two pair lists (each a < b), sorted by (a, b); which of them the
    second list holds, and where each of its pairs went. A sort and one comparison, not
    ``np.unique(axis=0)`` (a sort of structured rows: 0.31 ms for 1,000 pairs against 0.03,
    in a batch search of a few milliseconds); ids that fit 31 bits sort as one int64 key."""
    a = np.concatenate([a1, a2]).astype(np.int64)
    b = np.concatenate([b1, b2]).astype(np.int64)
    if len(a) and min(a.min(), b.min()) >= 0 and max(a.max(), b.max()) < 1 << 31:
        order = np.argsort(a << 32 | b, kind="stable")
    else:
        order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    slot = np.empty(len(a), np.int64)
    slot[order] = np.cumsum(first) - 1
    in_second = np.zeros(int(first.sum()), bool)
    in_second[slot[len(a1):]] = True
    return a[first], b[first], in_second, slot[len(a1):]


def _far_classic(a: np.ndarray, b: np.ndarray, rows: Callable[[np.ndarray], np.ndarray],
                 thresholds: Thresholds) -> list[int]:
    """Which classic matches may be two different pictures (their pixels decide): their 64-bit
    hashes agree, their 256-bit codes do not (beyond ``T_FULL``). A look that finds no crop
    keeps such a pair apart.

    Two shots of one scene (a stereo pair, a burst without capture times, a product shot
    taken twice) are the classic hashes' only false matches; a crop or a straightened copy
    also sits beyond ``T_FULL``, which is why the pixels decide."""
    if not len(a):
        return []
    ra, rb = rows(a), rows(b)
    classic = _classic_distances(ra, rb)
    passes = plausible(classic, thresholds) & ~(classic <= thresholds.burst_identical).all(axis=1)
    far = passes & (geometric.aligned_distance(ra[:, CLASSIC_WORDS:], rb[:, CLASSIC_WORDS:]) > geometry.T_FULL)
    return [int(k) for k in np.flatnonzero(far)]
