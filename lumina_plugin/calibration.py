"""Calibration: how precise is each distance band in *this* library, and where to cut.

A library of scans, one of phone snapshots and one of studio bursts fail differently,
so a threshold tuned on someone else's photos is a guess. ``calibrate`` picks candidate
pairs from each distance band for a person to judge (``decide duplicate`` or
``decide not-duplicate``); from those verdicts it estimates the precision of each band
with a Wilson 95% interval and suggests the widest threshold whose bands all stay
above the target precision with confidence, and says when it cannot tell yet.

The distance of a pair here is the larger of its dHash and pHash distances, the two
structural hashes every accepted pair needs. :func:`calibrate` is the whole step over an
index's codes; the ``calibrate`` command reaches it through ``Engine.calibrate``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .index import all_pairs
from .model import ALGORITHMS, CLASSIC_WORDS

#: Distance bands (inclusive); the last is wider because few true copies live there.
BANDS: tuple[tuple[int, int], ...] = ((0, 2), (3, 5), (6, 8), (9, 11), (12, 14), (15, 20))

_DHASH, _PHASH = ALGORITHMS.index("dhash"), ALGORITHMS.index("phash")


def pair_distance(dist: np.ndarray) -> np.ndarray:
    """The calibration distance of each pair (rows of 4 hash distances)."""
    dist = np.asarray(dist).reshape(-1, 4)
    return np.maximum(dist[:, _DHASH], dist[:, _PHASH]).astype(np.int64)


def band_of(distance: int) -> int | None:
    """The index in :data:`BANDS` of the band holding ``distance``, or None past the last."""
    for k, (lo, hi) in enumerate(BANDS):
        if lo <= distance <= hi:
            return k
    return None


def _order(a: int, b: int) -> bytes:
    # A fixed pseudo-random order, so the same pairs are proposed on every run.
    return hashlib.sha256(f"{a}:{b}".encode()).digest()


def sample_pairs(a: np.ndarray, b: np.ndarray, dist: np.ndarray, judged: set[tuple[int, int]],
                 per_band: int) -> list[tuple[int, int, int, int]]:
    """Up to ``per_band`` unjudged pairs per band: (band, a, b, distance)."""
    d = pair_distance(dist)
    chosen: list[tuple[int, int, int, int]] = []
    for k, (lo, hi) in enumerate(BANDS):
        rows = [i for i in np.flatnonzero((d >= lo) & (d <= hi)).tolist()
                if (int(a[i]), int(b[i])) not in judged]
        rows.sort(key=lambda i: _order(int(a[i]), int(b[i])))
        chosen += [(k, int(a[i]), int(b[i]), int(d[i])) for i in rows[:per_band]]
    return chosen


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sensible for small n, unlike p +- 2se)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class BandEstimate:
    band: tuple[int, int]
    judged: int
    duplicates: int
    low: float
    high: float

    @property
    def precision(self) -> float | None:
        return self.duplicates / self.judged if self.judged else None


@dataclass(frozen=True)
class Calibration:
    bands: tuple[BandEstimate, ...]
    target: float
    #: The suggested threshold (upper edge of the last band kept), or None if unsure.
    suggested: int | None
    verdict: str


def estimate(verdicts: Iterable[tuple[int, bool]], target: float = 0.95, min_judged: int = 5) -> Calibration:
    """Precision per band from (distance, is_duplicate) verdicts, and a suggested threshold.

    A band is trusted when at least ``min_judged`` pairs were judged and the lower end
    of its interval reaches ``target``; the suggestion is the upper edge of the last
    band in an unbroken run of trusted bands from distance 0.
    """
    counts = [[0, 0] for _ in BANDS]
    for distance, same in verdicts:
        k = band_of(distance)
        if k is not None:
            counts[k][0] += 1
            counts[k][1] += int(same)
    bands = tuple(BandEstimate(BANDS[k], n, s, *wilson(s, n)) for k, (n, s) in enumerate(counts))
    suggested: int | None = None
    for est in bands:
        if est.judged >= min_judged and est.low >= target:
            suggested = est.band[1]
        else:
            break
    if suggested is None:
        first = bands[0]
        verdict = (f"not sure yet: judge at least {min_judged} pairs in the band {first.band[0]}-{first.band[1]}"
                   if first.judged < min_judged else
                   f"even the closest band is below {target:.0%} precision: look at the rejected pairs")
    else:
        nxt = next((e for e in bands if e.band[0] > suggested), None)
        more = ("" if nxt is None or nxt.judged >= min_judged else
                f"; judge {min_judged - nxt.judged} more pairs at {nxt.band[0]}-{nxt.band[1]} to see if it can go higher")
        verdict = f"distances up to {suggested} are at least {target:.0%} precise with 95% confidence{more}"
    return Calibration(bands, target, suggested, verdict)


def verdicts_for(decisions: Sequence[Mapping[str, Any]], a: np.ndarray, b: np.ndarray,
                 dist: np.ndarray) -> list[tuple[int, bool]]:
    """(distance, is_duplicate) for every judged pair that is among the candidate pairs."""
    d = pair_distance(dist)
    where = {(int(x), int(y)): int(dd) for x, y, dd in zip(a.tolist(), b.tolist(), d.tolist())}
    out = []
    for dec in decisions:
        if dec["kind"] not in ("duplicate", "not-duplicate"):
            continue
        key = (min(dec["index_1"], dec["index_2"]), max(dec["index_1"], dec["index_2"]))
        if key in where:
            out.append((where[key], dec["kind"] == "duplicate"))
    return out


@dataclass(frozen=True)
class Proposal:
    """A pair for a person to judge: its band, its calibration distance and the two photos."""

    band: tuple[int, int]
    distance: int
    paths: tuple[str, str]


def calibrate(ids: np.ndarray, codes: np.ndarray, decisions: Sequence[Mapping[str, Any]], per_band: int,
              target: float, paths_of: Callable[[set[int]], Mapping[int, str]],
              search_options: Mapping[str, Any] | None = None) -> tuple[list[Proposal], Calibration]:
    """Up to ``per_band`` unjudged pairs per band to judge, and the estimate from those judged.

    ``ids``/``codes``: the index; ``decisions``: the catalog's; ``paths_of``: image paths by
    index id; ``search_options``: the index settings' (the GPU switch among them). The search
    reaches the last band, beyond the grouping thresholds.
    """
    widest = BANDS[-1][1]
    # The bands are the classic hashes' distances: search those words only.
    classic = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64).reshape(len(ids), -1)[:, :CLASSIC_WORDS])
    found = all_pairs(ids, classic, (-1, widest, widest, -1), **(search_options or {}))
    judged = {(min(d["index_1"], d["index_2"]), max(d["index_1"], d["index_2"])) for d in decisions}
    chosen = sample_pairs(found.a, found.b, found.dist, judged, max(0, per_band))
    paths = paths_of({x for _, p, q, _ in chosen for x in (p, q)})
    proposals = [Proposal(BANDS[k], d, (paths[p], paths[q])) for k, p, q, d in chosen]
    return proposals, estimate(verdicts_for(decisions, found.a, found.b, found.dist), target=target)
