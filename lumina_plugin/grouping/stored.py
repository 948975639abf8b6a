"""The groups as the catalog holds them now, for the review.

The review shows what the catalog says, not what a new run would write: after ``undo`` the
undone groups are gone from the catalog, so they are gone from the review too (the stored pairs
and decisions, which undo does not touch, would bring them back if the review regrouped from
them alone). Each stored group is shown with the best facts at hand:

- the group a fresh grouping finds with the same keeper and members: its links and what changed
  between the photos come with it;
- otherwise (an undo brought back an older group, or the settings changed since) the stored
  group itself, rebuilt from its rows, without its photos that are not on disk as catalogued;
  if its keeper is one of those, the best photo left is the keeper: the review never advises
  removing the last copy that exists. A group left with one photo is not a group.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from ..config import KeeperWeights
from ..model import GroupRow, ImageInfo
from .groups import Group, Member
from .keeper import keeper_reason, rank_key

#: The facts of these catalogued photos (image ids) that are on disk as catalogued, by index id.
Facts = Callable[[Collection[str]], Mapping[int, ImageInfo]]


def as_stored(rows: Sequence[GroupRow], computed: Sequence[Group], images: Mapping[int, ImageInfo],
              facts: Facts, weights: KeeperWeights) -> tuple[list[Group], dict[int, ImageInfo]]:
    """The stored groups ``rows`` as :class:`Group` (see the module docstring), and the facts of
    their photos. ``computed``/``images``: a fresh grouping of the photos that are on disk."""
    fresh = {g.row(images).key(): g for g in computed}
    known = {info.id: i for i, info in images.items() if i >= 0}  # a dry run's rehashed photos: not as stored
    wanted = {i for row in rows if row.key() not in fresh
              for i in (row.keeper_id, *(m[0] for m in row.members)) if i not in known}
    more = dict(facts(wanted)) if wanted else {}
    by_id = {**{info.id: i for i, info in more.items()}, **known}
    pool = {**images, **more}
    shown = [g for g in (fresh.get(row.key()) or _rebuild(row, by_id, pool, weights) for row in rows) if g is not None]
    out = {i: pool[i] for g in shown for i in (g.keeper, *(m.index_id for m in g.members))}
    return sorted(shown, key=lambda g: out[g.keeper].path), out


def _rebuild(row: GroupRow, by_id: Mapping[str, int], pool: Mapping[int, ImageInfo],
             weights: KeeperWeights) -> Group | None:
    """A stored group from its row, without the photos that are not on disk (not in ``by_id``)."""
    keeper = by_id.get(row.keeper_id)
    members = [(by_id[i], relation, distance) for i, relation, distance in row.members if i in by_id]
    if keeper is None:  # the kept photo is gone: the best of those left is kept
        if len(members) < 2:
            return None
        members.sort(key=lambda m: rank_key(weights)(pool[m[0]]))
        keeper, promoted, _ = members.pop(0)
        reason = keeper_reason(pool[keeper], [pool[m[0]] for m in members], weights)
    else:
        promoted, reason = "derivative", row.keeper_reason
    if not members:
        return None
    same = pool[keeper].checksum

    def member(index_id: int, relation: str, distance: int) -> Member:
        if pool[index_id].checksum == same:
            return Member(index_id, "exact", 0, None, "exact")
        # An exact copy of a keeper that is gone relates to the new keeper as that keeper did.
        return Member(index_id, "near", distance, None, promoted if relation == "exact" else relation)

    return Group(keeper, reason, tuple(sorted((member(*m) for m in members), key=lambda m: pool[m.index_id].path)))
