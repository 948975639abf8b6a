"""Which candidate pairs are duplicates, and why.

A candidate pair comes from the index with the distances of all four hashes. It is
a duplicate when enough hashes agree (see :class:`~lumina_plugin.config.Thresholds`)
and it is not a burst: two frames from the same camera taken moments apart are
different shots, even when they look alike, unless their pixels are essentially
identical. Byte-identical files are exact duplicates whatever the hashes say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..catalog.base import ImageInfo
from ..config import Thresholds
from ..hashing.codes import ALGORITHMS

#: Hashes that change when a photo is mirrored (gradients and DCT phases flip);
#: aHash and wHash describe brightness layout and often match a mirror image.
STRUCTURAL = ("dhash", "phash")


@dataclass(frozen=True)
class Link:
    """An accepted pair: image index ids (a < b), every hash distance, the ones that agreed."""

    a: int
    b: int
    distances: tuple[int, int, int, int]
    linked_by: tuple[str, ...]
    exact: bool

    @property
    def distance(self) -> int:
        """One number for the pair: the largest distance among the hashes that linked it."""
        if self.exact:
            return 0
        return max(self.distances[ALGORITHMS.index(n)] for n in self.linked_by)

    def as_json(self) -> dict[str, object]:
        return {"distances": dict(zip(ALGORITHMS, self.distances)), "linked_by": list(self.linked_by),
                "exact": self.exact}


def is_burst(x: ImageInfo, y: ImageInfo, window: float) -> bool:
    """Same camera, both times known, taken more than 0 and at most ``window`` seconds apart."""
    if not x.camera or x.camera != y.camera or x.taken_ts is None or y.taken_ts is None:
        return False
    gap = abs(x.taken_ts - y.taken_ts)
    return 0 < gap <= window


def accept_pairs(a: np.ndarray, b: np.ndarray, dist: np.ndarray,
                 images: Mapping[int, ImageInfo], t: Thresholds) -> list[Link]:
    """The candidate pairs that are duplicates, as :class:`Link` records sorted by (a, b)."""
    radii = np.array(t.radii(), dtype=np.int32)
    dist = np.asarray(dist, dtype=np.int32).reshape(-1, 4)
    within = dist <= radii[None, :]
    structural = within[:, [ALGORITHMS.index(n) for n in STRUCTURAL]].any(axis=1)
    consensus = (within.sum(axis=1) >= t.min_agreeing) & structural & (dist.max(axis=1) <= t.veto)
    identical = (dist <= t.burst_identical).all(axis=1)
    links: list[Link] = []
    for k in np.flatnonzero(consensus | identical).tolist():
        x, y = images.get(int(a[k])), images.get(int(b[k]))
        if x is None or y is None:
            continue
        exact = x.checksum == y.checksum
        if not exact and not identical[k] and is_burst(x, y, t.burst_seconds):
            continue
        linked = ALGORITHMS if exact else tuple(n for n, ok in zip(ALGORITHMS, within[k]) if ok)
        links.append(Link(int(min(a[k], b[k])), int(max(a[k], b[k])),
                          tuple(int(v) for v in dist[k]), linked, exact))  # type: ignore[arg-type]
    return sorted(links, key=lambda l: (l.a, l.b))


def exact_links(images: Mapping[int, ImageInfo]) -> list[Link]:
    """Pairs of byte-identical files, found by checksum alone (no index needed)."""
    by_sum: dict[str, list[int]] = {}
    for idx, info in images.items():
        by_sum.setdefault(info.checksum, []).append(idx)
    links = []
    for ids in by_sum.values():
        ids.sort()
        # A star around the first is enough: grouping joins exact copies through checksums.
        links += [Link(ids[0], other, (0, 0, 0, 0), ALGORITHMS, True) for other in ids[1:]]
    return links
