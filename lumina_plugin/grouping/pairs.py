"""Which candidate pairs are duplicates, and why.

A candidate pair comes from the search (grouping/candidates.py) with the distances of all
four hashes and its geometric verdict. It is a duplicate when enough hashes agree (see
:class:`~lumina_plugin.config.Thresholds`) or the geometry words found it a turned,
bordered or cropped copy (grouping/geometric.py), and it is not a burst: two frames from the
same camera taken moments apart are different shots, even when they look alike, unless their
pixels are essentially identical. Byte-identical files are exact duplicates whatever the
hashes say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..config import Thresholds
from ..model import ALGORITHMS, CLASSIC_WORDS, ImageInfo
from . import geometric

#: Hashes that change when a photo is mirrored (gradients and DCT phases flip);
#: aHash and wHash describe brightness layout and often match a mirror image.
STRUCTURAL = ("dhash", "phash")
#: ``Link.linked_by`` of a pair only the geometry words linked.
GEOMETRY = "geometry"


@dataclass(frozen=True)
class Link:
    """An accepted pair: image index ids (a < b), every hash distance, the ones that agreed."""

    a: int
    b: int
    distances: tuple[int, int, int, int]
    linked_by: tuple[str, ...]
    exact: bool
    #: The packed geometric verdict (grouping/geometric.py) of a pair that only the geometry
    #: words linked (turned, bordered, cropped); 0 when the pixels line up.
    geometry: int = 0

    @property
    def verdict(self) -> geometric.Verdict | None:
        """What the geometry words found, for a pair only they linked."""
        return geometric.unpack(self.geometry)

    @property
    def distance(self) -> int:
        """One number for the pair on the classic hashes' 64-bit scale: the largest distance
        among the hashes that linked it, or the geometric verdict's, scaled to 64 bits."""
        if self.exact:
            return 0
        classic = [self.distances[ALGORITHMS.index(n)] for n in self.linked_by if n in ALGORITHMS]
        if classic:
            return max(classic)
        verdict = self.verdict
        return 0 if verdict is None else verdict.scaled_distance

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"distances": dict(zip(ALGORITHMS, self.distances, strict=True)),
                                  "linked_by": list(self.linked_by), "exact": self.exact}
        verdict = self.verdict
        if verdict is not None:
            out["geometry"] = {"rotation": 90 * verdict.rotation, "change": verdict.describe(),
                               "distance": verdict.distance}
        return out


def search_radii(t: Thresholds) -> tuple[int, int, int, int]:
    """The radii to search candidate pairs with: only the hashes that can link an accepted pair.

    :func:`accept_pairs` keeps a pair only when dHash or pHash is within its threshold
    (consensus needs a structural hash), or when every hash is within ``burst_identical``,
    which also puts dHash or pHash within its threshold as long as ``burst_identical`` is not
    above both of theirs. So searching aHash and wHash (-1 here: not searched) only finds pairs
    that are thrown away, and doubles the search. Otherwise (an unusual configuration) every
    hash is searched, as before. Exact copies come from checksums, not from the search.
    """
    radii = t.radii()
    structural = [ALGORITHMS.index(n) for n in STRUCTURAL]
    if t.burst_identical > max(radii[k] for k in structural):
        return radii
    return tuple(r if k in structural else -1 for k, r in enumerate(radii))  # type: ignore[return-value]


def is_burst(x: ImageInfo, y: ImageInfo, window: float) -> bool:
    """Same camera, both times known, taken more than 0 and at most ``window`` seconds apart."""
    if not x.camera or x.camera != y.camera or x.taken_ts is None or y.taken_ts is None:
        return False
    gap = abs(x.taken_ts - y.taken_ts)
    return 0 < gap <= window


def _rows(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the (n, 4) classic distances, the (n,) packed geometric verdicts) of distance rows
    with 4 columns (no verdicts) or 5."""
    dist = np.asarray(dist, dtype=np.int64)
    dist = dist.reshape(-1, dist.shape[-1] if dist.ndim == 2 else CLASSIC_WORDS)
    geo = dist[:, CLASSIC_WORDS] if dist.shape[1] > CLASSIC_WORDS else np.zeros(len(dist), np.int64)
    return dist[:, :CLASSIC_WORDS].astype(np.int32), geo


def _distance_rule(dist: np.ndarray, t: Thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(within each threshold, passes the classic distance rule, identical) per candidate pair."""
    radii = np.array(t.radii(), dtype=np.int32)
    within = dist <= radii[None, :]
    structural = within[:, [ALGORITHMS.index(n) for n in STRUCTURAL]].any(axis=1)
    consensus = (within.sum(axis=1) >= t.min_agreeing) & structural & (dist.max(axis=1) <= t.veto)
    identical = (dist <= t.burst_identical).all(axis=1)
    return within, np.asarray(consensus | identical), np.asarray(identical)


def plausible(dist: np.ndarray, t: Thresholds) -> np.ndarray:
    """Which candidate pairs pass on their distances alone (the first half of :func:`accept_pairs`).

    The photos' facts (checksum, camera, capture time) only decide among these, so a caller
    can skip reading the facts of photos that appear in no plausible pair: with random
    look-alikes, most candidates from the search.
    """
    classic, geo = _rows(dist)
    return (_distance_rule(classic, t)[1] & (geo != geometric.APART)) | (geo > 0)


def accept_pairs(a: np.ndarray, b: np.ndarray, dist: np.ndarray,
                 images: Mapping[int, ImageInfo], t: Thresholds) -> list[Link]:
    """The candidate pairs that are duplicates, as :class:`Link` records sorted by (a, b)."""
    dist, geo = _rows(dist)
    within, classic, identical = _distance_rule(dist, t)
    classic &= geo != geometric.APART  # two shots of one scene: the 256-bit codes and the pixels said so
    passes = classic | (geo > 0)
    links: list[Link] = []
    for k in np.flatnonzero(passes).tolist():
        x, y = images.get(int(a[k])), images.get(int(b[k]))
        if x is None or y is None:
            continue
        exact = x.checksum == y.checksum
        if not exact and not identical[k] and is_burst(x, y, t.burst_seconds):
            continue
        geometry = 0
        if exact:
            linked = ALGORITHMS
        elif classic[k]:
            linked = tuple(n for n, ok in zip(ALGORITHMS, within[k], strict=True) if ok)
        else:  # only the geometry words link it: a turned, bordered or cropped copy
            linked = (GEOMETRY,)
            geometry = int(geo[k]) if a[k] < b[k] else geometric.swap(int(geo[k]))
        links.append(Link(int(min(a[k], b[k])), int(max(a[k], b[k])),
                          tuple(int(v) for v in dist[k]), linked, exact, geometry))  # type: ignore[arg-type]
    return sorted(links, key=lambda x: (x.a, x.b))


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
