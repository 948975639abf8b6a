"""From groups to tags: the desired state, its difference from the catalog's, and a summary.

Pure functions on plain data. The catalog applies a :class:`TagDiff` in one
transaction and logs it for undo; a dry run only prints it. Because the desired
state is computed whole and compared, re-running changes nothing and tags that no
longer hold are removed.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import TagNames
from .model import GroupRow, TagDiff, TagState


def desired_state(groups: Iterable[GroupRow], names: TagNames) -> TagState:
    """The tags every image should carry given these groups: the parent tag plus its role."""
    roles = names.roles()
    tags: set[tuple[str, str]] = set()
    rows = tuple(sorted(groups, key=lambda g: g.key()))
    for group in rows:
        tags.add((group.keeper_id, names.parent))
        tags.add((group.keeper_id, roles["keeper"]))
        for image_id, relation, _distance in group.members:
            tags.add((image_id, names.parent))
            tags.add((image_id, roles[relation]))
    return TagState(image_tags=frozenset(tags), groups=rows)


def diff_states(old: TagState, new: TagState) -> TagDiff:
    """What must change to go from ``old`` to ``new`` (deterministic order)."""
    old_groups = {g.key(): g for g in old.groups}
    new_groups = {g.key(): g for g in new.groups}
    return TagDiff(
        add_tags=tuple(sorted(new.image_tags - old.image_tags)),
        remove_tags=tuple(sorted(old.image_tags - new.image_tags)),
        add_groups=tuple(new_groups[k] for k in sorted(new_groups.keys() - old_groups.keys())),
        remove_groups=tuple(old_groups[k] for k in sorted(old_groups.keys() - new_groups.keys())),
    )
