"""Pairs to groups: which pairs count (pairs), who is kept (keeper), groups without chaining (groups)."""

from .groups import Group, Member, build_groups
from .keeper import keeper_reason, rank_key
from .pairs import Link, accept_pairs, exact_links, is_burst, plausible, search_radii
from .relations import ACTIONS, RELATIONS, classify

__all__ = ["ACTIONS", "Group", "RELATIONS", "classify", "Link", "Member", "accept_pairs", "build_groups", "exact_links", "is_burst",
           "keeper_reason", "plausible", "rank_key", "search_radii"]
