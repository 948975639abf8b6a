"""Sort-based set operations on int64 arrays.

NumPy 2.4's ``np.unique`` (hash-based) takes seconds on a few million int64 values where a sort
takes milliseconds, and ``np.isin`` is slow for a small set against a large array: these are the
plain sort / binary-search versions the index uses instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["has_duplicates", "is_increasing", "isin", "positions_in", "sorted_unique"]


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """The distinct values of ``a``, ascending (as ``np.unique``)."""
    a = np.sort(a)
    if a.size:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def has_duplicates(a: np.ndarray) -> bool:
    """Whether some value occurs twice in ``a``."""
    if is_increasing(a):  # an index's ids: one pass instead of a sort of a million values
        return False
    s = np.sort(a)
    return bool(s.size > 1 and (s[1:] == s[:-1]).any())


def is_increasing(a: np.ndarray) -> bool:
    """Whether ``a`` (1-D) is strictly increasing (so sorted, without repeats)."""
    return bool(a.size < 2 or (a[1:] > a[:-1]).all())


def positions_in(values: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Positions in ``sorted_b`` (strictly increasing) of those ``values`` it holds, ascending."""
    if sorted_b.size == 0 or values.size == 0:
        return np.empty(0, np.int64)
    pos = np.minimum(np.searchsorted(sorted_b, values), sorted_b.size - 1)
    return np.sort(pos[sorted_b[pos] == values]).astype(np.int64)


def isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean mask over ``a``: which values occur in ``b`` (as ``np.isin``)."""
    a = np.asarray(a)
    b = np.sort(np.asarray(b).ravel())
    if b.size == 0:
        return np.zeros(a.shape, bool)
    pos = np.minimum(np.searchsorted(b, a), b.size - 1)
    return b[pos] == a
