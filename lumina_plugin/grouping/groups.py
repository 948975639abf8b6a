"""Accepted pairs to groups, without chaining.

Union-find over every accepted pair would chain a~b~c into one group even when a
and c are different photos. Instead each group is a star around its keeper: the
best remaining photo becomes a keeper and takes the photos directly linked to it;
every member is therefore within the thresholds of its keeper. Byte-identical files
travel together: they are collapsed to one node first and expanded as exact copies.
The result depends only on the pairs and the photos, not on their order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from ..config import KeeperWeights, Thresholds
from ..model import GroupRow, ImageInfo
from . import geometric
from .keeper import keeper_reason, rank_key
from .pairs import Link
from .relations import classify


@dataclass(frozen=True)
class Member:
    index_id: int
    kind: str  # "exact" or "near", relative to the keeper
    distance: int
    link: Link | None
    #: One of relations.RELATIONS: how this member came from the keeper.
    relation: str = "exact"
    #: What changed, in words, for a turned, bordered or cropped copy ("rotated 90,
    #: letterboxed"); empty when the pixels line up.
    change: str = ""


@dataclass(frozen=True)
class Group:
    keeper: int
    reason: str
    #: Every member except the keeper, sorted by path.
    members: tuple[Member, ...] = field(default_factory=tuple)

    @property
    def similarity_type(self) -> str:
        return "exact" if all(m.kind == "exact" for m in self.members) else "perceptual"

    @property
    def confidence(self) -> int:
        """100 for exact copies, less the further the furthest member is (Lumina's 0-100 scale)."""
        worst = max((m.distance for m in self.members), default=0)
        return max(0, 100 - worst * 100 // 64)

    def row(self, images: Mapping[int, ImageInfo]) -> GroupRow:
        return GroupRow(
            keeper_id=images[self.keeper].id, similarity_type=self.similarity_type,
            confidence=self.confidence, keeper_reason=self.reason,
            members=tuple(sorted((images[m.index_id].id, m.relation, m.distance) for m in self.members)))


def build_groups(links: Iterable[Link], images: Mapping[int, ImageInfo], weights: KeeperWeights,
                 thresholds: Thresholds | None = None, preferred: Collection[int] = ()) -> list[Group]:
    """Groups from accepted links (exact and near); sorted by the keeper's path.

    ``preferred`` holds photos a person chose as keepers: they rank before all others.
    """
    thresholds = thresholds or Thresholds()
    best = rank_key(weights)

    links = list(links)
    nodes = {n for link in links for n in (link.a, link.b) if n in images}
    # The bordered or cropped side of a geometric pair is never the one to keep over the full
    # picture, whatever its pixel count (bars add pixels).
    derived = derived_photos(links)

    def key(info: ImageInfo) -> tuple:
        return (info.index_id not in preferred, info.index_id in derived, *best(info))

    # Byte-identical files collapse to their best copy (the representative).
    by_sum: dict[str, list[int]] = {}
    for n in nodes:
        by_sum.setdefault(images[n].checksum, []).append(n)
    copies: dict[int, list[int]] = {}
    rep_of: dict[int, int] = {}
    for ids in by_sum.values():
        ids.sort(key=lambda i: key(images[i]))
        copies[ids[0]] = ids[1:]
        rep_of.update({i: ids[0] for i in ids})

    # Near links between representatives; copies of one shot share their hashes.
    adjacent: dict[int, dict[int, Link]] = {r: {} for r in copies}
    for link in sorted(links, key=lambda x: (x.a, x.b)):
        if link.exact or link.a not in rep_of or link.b not in rep_of:
            continue
        ra, rb = rep_of[link.a], rep_of[link.b]
        if ra != rb:
            adjacent[ra].setdefault(rb, link)
            adjacent[rb].setdefault(ra, link)

    groups: list[Group] = []
    assigned: set[int] = set()
    for rep in sorted(copies, key=lambda i: key(images[i])):
        if rep in assigned:
            continue
        near = sorted((n for n in adjacent[rep] if n not in assigned), key=lambda i: key(images[i]))
        assigned.add(rep)
        assigned.update(near)
        members = [Member(c, "exact", 0, None, "exact") for c in copies[rep]]
        for n in near:
            link = adjacent[rep][n]
            change = _change(link, rep, images)
            members += [Member(m, "near", link.distance, link, classify(images[rep], images[m], link, thresholds),
                               change) for m in (n, *copies[n])]
        if not members:
            continue
        members.sort(key=lambda m: images[m.index_id].path)
        reason = ("chosen by a person in the review" if rep in preferred
                  else keeper_reason(images[rep], [images[m.index_id] for m in members], weights,
                                     {m.index_id: m.change for m in members if m.index_id in derived}))
        groups.append(Group(rep, reason, tuple(members)))
    return sorted(groups, key=lambda g: images[g.keeper].path)


def derived_photos(links: Iterable[Link]) -> set[int]:
    """Photos that a geometric link shows to be the bordered or cropped copy of another."""
    out: set[int] = set()
    for link in links:
        verdict = link.verdict
        if verdict is not None and verdict.derived:
            out.add(link.b if verdict.derived > 0 else link.a)
    return out


def _change(link: Link, keeper: int, images: Mapping[int, ImageInfo]) -> str:
    """What changed between the keeper and the member ``link`` joins to it, in words."""
    verdict = link.verdict
    if verdict is None:
        return ""
    if keeper == link.b:  # the verdict reads "b is a turned a": from the keeper's side, turn back
        verdict = geometric.unpack(geometric.swap(link.geometry)) or verdict
    return verdict.describe()
