"""The hash index: persistent storage of codes (store) and radius search for pairs (search)."""

from .search import Pairs, all_pairs, query_pairs
from .store import HashIndex, IndexCorruptError

__all__ = ["HashIndex", "IndexCorruptError", "Pairs", "all_pairs", "query_pairs"]
