"""The hash index: persistent storage of codes (store) and radius search for pairs (search)."""

from .search import BACKENDS, Pairs, all_pairs, query_pairs, radius_join
from .store import HashIndex, IndexCorruptError

__all__ = ["BACKENDS", "HashIndex", "IndexCorruptError", "Pairs", "all_pairs", "query_pairs", "radius_join"]
