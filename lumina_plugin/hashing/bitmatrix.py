"""Square bit matrices held in uint64 words, bit 0 most significant, row-major: the geometry
codes' 8x8 and 16x16 sign codes (hashing/geometry.py).

Why: a quarter turn of a sign code is a transpose (or nothing) and an XOR (geometry.py's
``_rotation_tables``), and an 8x8 transpose of a whole array of words is three delta swaps,
18 array operations whatever the number of codes. Unpacking the bits to bytes, permuting and
packing them back (``turns``) costs 50 times more for the few hundred pairs an import batch
verifies. A 16x16 code becomes four 8x8 blocks by moving whole bytes, one gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

__all__ = ["BLOCKS16", "gather_bytes", "memory_order", "transpose8"]

#: The MSB-first byte numbers (of 32) that make the 8x8 blocks (0, 0), (0, 1), (1, 0), (1, 1)
#: of a row-major 16x16 code (two bytes a row, the left byte first): block (i, j) row r is
#: byte 2 * (8 * i + r) + j. Block (0, 0) is then the code's low 8x8 corner as one word.
BLOCKS16: Final[tuple[int, ...]] = tuple(2 * (8 * i + r) + j for i in (0, 1) for j in (0, 1) for r in range(8))

#: Delta swaps of an 8x8 transpose: (shift, mask).
_SWAPS: Final = tuple((np.uint64(s), np.uint64(m)) for s, m in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC),
                                                                  (28, 0x00000000F0F0F0F0)))


def transpose8(xp: Any, x: Any) -> Any:
    """Each uint64 of ``x`` as an 8x8 bit matrix (byte r is row r), transposed."""
    x = xp.array(x, dtype=xp.uint64, copy=True)
    for shift, mask in _SWAPS:
        t = x >> shift
        t ^= x
        t &= mask
        x ^= t
        t <<= shift
        x ^= t
    return x


def memory_order(msb_bytes: Sequence[int], words: int) -> np.ndarray:
    """For a gather whose output's MSB-first byte j is the input's MSB-first byte
    ``msb_bytes[j]`` (inputs of ``words`` uint64 a row), the same gather as indexes into the
    rows' bytes in memory, on this machine's byte order (found by probing, not assumed)."""
    if len(msb_bytes) % 8:
        raise ValueError("a gather makes whole words")
    probe = np.arange(8 * words, dtype=np.uint8).view(np.uint64)  # each byte holds its memory offset
    value = 0
    for w in probe.tolist():
        value = value << 64 | w
    out = 0
    for j in msb_bytes:
        out = out << 8 | (value >> (8 * (8 * words - 1 - j))) & 255
    n_out = len(msb_bytes) // 8
    packed = np.array([(out >> (64 * (n_out - 1 - k))) & (2**64 - 1) for k in range(n_out)], dtype=np.uint64)
    return packed.view(np.uint8).astype(np.intp)


def gather_bytes(xp: Any, words: Any, order: Any) -> Any:
    """(N, m) uint64 -> (N, len(order) // 8) uint64: each row's bytes picked by ``order`` (from
    :func:`memory_order`), one gather for any mix of moved, kept and repeated bytes."""
    rows = xp.ascontiguousarray(words, dtype=xp.uint64)
    picked = xp.take(rows.view(xp.uint8).reshape(rows.shape[0], -1), order, axis=1)
    return picked.view(xp.uint64)
