"""Copies whose pixels no longer line up with the original: turned, bordered, cropped.

The four classic hashes compare two pictures pixel for pixel, so a copy turned by a quarter
turn, padded with bars, given a caption band or cropped to 16:9 escapes them. Each photo
also carries the geometry words of :mod:`lumina_plugin.hashing.geometry`; here they become
pairs, in two bounded steps:

1. **Candidates**: rotation-free 64-bit search keys (the content's own key and those of its
   centre, 16:9 and square regions) are joined with the index's radius join: a photo's own
   key against every other photo's four keys, within ``KEY_RADIUS`` bits.
2. **Verdicts**: each candidate is decided on the words themselves (256-bit codes over the
   four quarter turns, never a mirror image) by :func:`~lumina_plugin.hashing.geometry.verify_pairs`.
   Pairs that the words leave unsure (mild crops, straightened copies) are given a second
   look at their pixels by the engine.

A verdict is packed into one integer (:func:`pack`) and stored with the pair, so a later
regrouping (an import, a decision, the review) needs neither the search nor the pixels again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ..hashing import geometry

#: Packed verdict layout: bit 0 ok; bits 1-2 rotation (quarter turns); bits 3-10 relation
#: flags (geometry.ROTATED...); bits 11-12 which side is derived (0 none, 1 the pair's b,
#: 2 the pair's a); bits 16-23 the distance that decided; bits 24-27 the derived copy's
#: bordered sides (top, bottom, left, right), to name the border.
_OK: Final[int] = 1
#: The verdict of a pair the classic hashes join but whose 256-bit codes, and a look at the
#: pixels, say are two different pictures (two shots of one scene): never grouped.
APART: Final[int] = -1


@dataclass(frozen=True)
class Verdict:
    """A geometric match between two photos, as the grouping and the reports read it."""

    rotation: int
    relation: int
    #: 1 when the pair's second photo is the derived copy (bordered, cropped), -1 the first, 0 neither.
    derived: int
    distance: int
    #: The derived copy's bordered sides: top, bottom, left, right.
    sides: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def scaled_distance(self) -> int:
        """The distance on the classic hashes' 64-bit scale (a full code has 255 bits; a
        region's and a second look's, 63 or fewer)."""
        full = not self.relation & (geometry.CROPPED_WIDE | geometry.CROPPED_SQUARE | geometry.CROPPED)
        return min(64, self.distance // 4 if full else self.distance)

    @property
    def rotation_only(self) -> bool:
        """Turned and nothing else: the same picture re-encoded (a derivative, not an edit)."""
        return self.relation & ~geometry.ROTATED == 0

    def describe(self, trims: tuple[float, float, float, float] | None = None) -> str:
        """Words for what changed: "rotated 90", "letterboxed", "cropped to 16:9"..."""
        if trims is None and any(self.sides):
            trims = tuple(1.0 if s else 0.0 for s in self.sides)  # type: ignore[assignment]
        return geometry.describe(self.rotation, self.relation, trims)


def pack(rotation: np.ndarray, relation: np.ndarray, derived: np.ndarray, distance: np.ndarray,
         sides: np.ndarray | None = None) -> np.ndarray:
    """Verdicts (arrays) -> int64 codes, 0 meaning "no geometric match". ``sides``: (n, 4) bool,
    the derived copy's bordered sides (top, bottom, left, right)."""
    # (an import batch packs hundreds of verdicts: integer arithmetic, no np.clip, which costs
    # more than the rest of a line)
    derived = np.asarray(derived)
    side = (derived > 0).astype(np.int64) + 2 * (derived < 0)
    border = np.zeros(len(side), np.int64)
    if sides is not None and len(side):
        border = np.asarray(sides, np.int64).reshape(-1, 4) @ _SIDE_BITS
    return (_OK | (np.asarray(rotation, np.int64) & 3) << 1 | (np.asarray(relation, np.int64) & 255) << 3
            | side << 11 | np.minimum(np.maximum(np.asarray(distance, np.int64), 0), 255) << 16
            | border << 24)


#: A derived copy's bordered sides (top, bottom, left, right) as bits 3-0 of a verdict's border.
_SIDE_BITS: Final[np.ndarray] = np.array([8, 4, 2, 1], np.int64)


def unpack(code: int) -> Verdict | None:
    """The verdict of a packed code (None for 0: no geometric match)."""
    code = int(code)
    if code <= 0 or not code & _OK:
        return None
    side = (code >> 11) & 3
    border = (code >> 24) & 15
    return Verdict(rotation=(code >> 1) & 3, relation=(code >> 3) & 255,
                   derived=1 if side == 1 else -1 if side == 2 else 0, distance=(code >> 16) & 255,
                   sides=(bool(border & 8), bool(border & 4), bool(border & 2), bool(border & 1)))


def swap(code: int) -> int:
    """The packed verdict of (b, a) from that of (a, b): the derived side changes places and
    the turn is undone the other way."""
    code = int(code)
    if code <= 0 or not code & _OK:
        return code
    side = (code >> 11) & 3
    side = {1: 2, 2: 1}.get(side, side)
    rotation = (-((code >> 1) & 3)) % 4
    return (code & ~(3 << 1) & ~(3 << 11)) | rotation << 1 | side << 11


def aligned_distance(words_a: np.ndarray, words_b: np.ndarray) -> np.ndarray:
    """Differing bits (of 255) between the unturned ``full`` codes of row pairs: how far two
    photos the classic hashes join really are. Copies stay within ``geometry.T_FULL``; two
    shots of one scene (the camera or the subject moved) differ in about 60."""
    a = np.asarray(words_a, np.uint64).reshape(-1, geometry.GEO_WORDS)[:, geometry.FULL:geometry.CENTRE]
    b = np.asarray(words_b, np.uint64).reshape(-1, geometry.GEO_WORDS)[:, geometry.FULL:geometry.CENTRE]
    return np.bitwise_count((a ^ b) & geometry.NO_DC_FULL).sum(axis=1).astype(np.int32)


def bordered_sides(words: np.ndarray) -> np.ndarray:
    """(n, 4) bool: which sides (top, bottom, left, right) of each photo carry bars, a frame
    or a caption band (over 1% of the side), from its words."""
    return meta_sides(np.asarray(words, np.uint64).reshape(-1, geometry.GEO_WORDS)[:, geometry.META])


def meta_sides(meta: np.ndarray) -> np.ndarray:
    """:func:`bordered_sides` from the words' ``META`` word alone."""
    # a trim is a byte of meta, in 1/256: 3/256 is the first over 1% (no float trims needed)
    return (np.asarray(meta, np.uint64)[:, None] >> _SIDE_SHIFTS) & np.uint64(255) >= _SIDE_OVER


_SIDE_SHIFTS: Final[np.ndarray] = np.array([24, 16, 8, 0], np.uint64)
_SIDE_OVER: Final[int] = 3


def candidates(ids: np.ndarray, words: np.ndarray, search_options: dict[str, Any],
               query_ids: np.ndarray | None = None, query_words: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Index-id pairs (a, b), a != b, whose keys meet: every pair of ``ids`` (all-pairs), or
    each query photo against ``ids`` and the other queries (an import batch).

    One radius join over the stacked key columns, every photo's own key (column 0) joined with
    the other photos' own and region keys; pairs between two region keys are never made (they
    only say that two photos share a crop of something), and a photo's pairs with itself are
    dropped.
    """
    from ..index.search import radius_join

    ids = np.asarray(ids, np.int64)
    if query_ids is not None and query_words is not None and len(query_ids):
        keep = ~np.isin(ids, query_ids)
        all_ids = np.concatenate([ids[keep], np.asarray(query_ids, np.int64)])
        all_words = np.concatenate([np.asarray(words, np.uint64).reshape(-1, geometry.GEO_WORDS)[keep],
                                    np.asarray(query_words, np.uint64).reshape(-1, geometry.GEO_WORDS)])
        first_query = int(keep.sum())
    else:
        all_ids, all_words, first_query = ids, np.asarray(words, np.uint64).reshape(-1, geometry.GEO_WORDS), 0
    n = len(all_ids)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    keys = _keys(all_words, search_options)  # (n, 4): own, centre, wide, square
    # Rows: own keys of the photos [0, n); region keys [n, 4n) of photo row % n. With queries,
    # the query photos' rows go last, so that the join's "queries" are exactly theirs.
    own, regions = keys[:, 0], keys[:, 1:].T.reshape(-1)
    if first_query:
        region_photo = np.tile(np.arange(n), keys.shape[1] - 1)
        # Old photos' rows first (own and regions), then the batch's (own and regions).
        old_regions = region_photo < first_query
        x = np.concatenate([own[:first_query], regions[old_regions], own[first_query:], regions[~old_regions]])
        photo = np.concatenate([np.arange(first_query), region_photo[old_regions],
                                np.arange(first_query, n), region_photo[~old_regions]])
        is_own = np.concatenate([np.ones(first_query, bool), np.zeros(int(old_regions.sum()), bool),
                                 np.ones(n - first_query, bool), np.zeros(int((~old_regions).sum()), bool)])
        start = first_query + int(old_regions.sum())
    elif _on_gpu(search_options, len(own) + len(regions)):
        # The GPU's all-pairs join is fastest over one table: row r < n is photo r's own key,
        # row n + k photo k % n's region key (10M photos: 0.34 s on an H100, against 74 s as
        # a query join).
        x = np.concatenate([own, regions])
        start = 0
    else:
        # On the CPU, region keys first and own keys last as the join's queries: the join then
        # skips the pairs of two region keys (they would only say that two photos share a crop
        # of something): 1M photos in 5.2 s against 8.4 s. Row r < 3n is photo r % n's region
        # key, row 3n + k photo k's own key.
        x = np.concatenate([regions, own])
        start = len(regions)
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    for i, j in radius_join(x, geometry.KEY_RADIUS, first_query=start, **_join_options(search_options)):
        if first_query:
            pi, pj, useful = photo[i], photo[j], is_own[i] | is_own[j]
        elif start:  # no per-row tables: with 10M photos they would be 40M-entry arrays
            pi, pj = np.where(i < start, i % n, i - start), np.where(j < start, j % n, j - start)
            useful = (i >= start) | (j >= start)
        else:
            pi, pj, useful = np.where(i < n, i, (i - n) % n), np.where(j < n, j, (j - n) % n), (i < n) | (j < n)
        useful &= pi != pj
        found_a.append(pi[useful])
        found_b.append(pj[useful])
    if not found_a:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pa, pb = np.concatenate(found_a), np.concatenate(found_b)
    lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
    pairs = np.unique(np.stack([lo, hi], axis=1), axis=0) if len(lo) else np.empty((0, 2), np.int64)
    ia, ib = all_ids[pairs[:, 0]], all_ids[pairs[:, 1]]
    a, b = np.minimum(ia, ib), np.maximum(ia, ib)  # by image id, as every pair list
    order = np.lexsort((b, a))
    return a[order], b[order]


def _keys(words: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    """The search keys, made on the GPU when the search runs there (a few milliseconds for
    millions of photos, against about 0.7 s per million on one core)."""
    if options.get("backend") in ("gpu", "auto") and len(words) >= 100_000:
        from ..gpu_status import cupy_module

        cp = cupy_module()
        if cp is not None:
            with cp.cuda.Device(int(options.get("device", 0))):
                return np.asarray(geometry.search_keys(cp.asarray(words), xp=cp).get())
    return np.asarray(geometry.search_keys(words))


def _on_gpu(options: dict[str, Any], rows: int) -> bool:
    """Whether the radius join over ``rows`` keys will run on the GPU."""
    from ..index.search import pick_backend

    chosen = pick_backend(options.get("backend", "auto"), geometry.KEY_RADIUS, rows, None,
                          device=int(options.get("device", 0)))
    return chosen == "gpu"


def _join_options(options: dict[str, Any]) -> dict[str, Any]:
    """The radius join's keyword arguments among the engine's search options."""
    return {k: options[k] for k in ("backend", "device") if k in options}


def verify_rows(words_a: np.ndarray, words_b: np.ndarray) -> geometry.Verdicts:
    """The verdicts of candidate pairs, row i of ``words_a`` against row i of ``words_b``
    (both (n, GEO_WORDS)): :func:`~lumina_plugin.hashing.geometry.verify_pairs`."""
    return geometry.verify_pairs(np.asarray(words_a, np.uint64), np.asarray(words_b, np.uint64))
