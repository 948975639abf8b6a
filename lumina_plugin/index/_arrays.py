"""Sort-based set operations on int64 arrays.

NumPy 2.4's ``np.unique`` (hash-based) takes seconds on a few million int64 values where a sort
takes milliseconds, and ``np.isin`` is slow for a small set against a large array: these are the
plain sort / binary-search versions the index uses instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["has_duplicates", "isin", "sorted_unique"]


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """The distinct values of ``a``, ascending (as ``np.unique``)."""
    a = np.sort(a)
    if a.size:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def has_duplicates(a: np.ndarray) -> bool:
    """Whether some value occurs twice in ``a``."""
    s = np.sort(a)
    return bool(s.size > 1 and (s[1:] == s[:-1]).any())


def isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean mask over ``a``: which values occur in ``b`` (as ``np.isin``)."""
    a = np.asarray(a)
    b = np.sort(np.asarray(b).ravel())
    if b.size == 0:
        return np.zeros(a.shape, bool)
    pos = np.minimum(np.searchsorted(b, a), b.size - 1)
    return b[pos] == a
