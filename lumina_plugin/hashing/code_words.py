"""The geometry words' layout and bit tables (hashing/geometry.py describes the codes): the
word positions, the packing of sign bits into words, and the bit permutations and sign flips
of a code's quarter turns. Shared by the codes, their turns, the search keys and the verdicts,
none of which needs the others to read a word.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

__all__ = ["CENTRE", "FLIP8", "FLIP16", "FULL", "GEO_VERSION", "GEO_WORDS", "META", "PERM8", "PERM16", "SQUARE_W",
           "WIDE_W", "mask_word", "pack_bits", "unpack_bits"]

GEO_WORDS: Final[int] = 8
#: Bumped whenever a code could change for the same pixels.
GEO_VERSION: Final[int] = 1
#: Word positions.
FULL, CENTRE, WIDE_W, SQUARE_W, META = 0, 4, 5, 6, 7


_SHIFTS64: Final[np.ndarray] = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def pack_bits(xp: Any, bits: Any) -> Any:
    """(..., 64*m) bool -> (..., m) uint64, first bit most significant."""
    shape = bits.shape[:-1]
    m = bits.shape[-1] // 64
    if xp is np:  # np.packbits: 50x the multiply-and-sum below (verify_pairs packs 8 times a pair)
        # (flat: rows are whole bytes, and packbits along an axis is 3x slower)
        packed = np.packbits(np.ascontiguousarray(bits).reshape(-1))
        return packed.reshape(*shape, m, 8).view(">u8")[..., 0].astype(np.uint64)
    b = bits.reshape(*shape, m, 64).astype(xp.uint64)
    return (b * xp.asarray(_SHIFTS64)).sum(axis=-1, dtype=xp.uint64)


def unpack_bits(xp: Any, words: Any) -> Any:
    """(..., m) uint64 -> (..., 64*m) bool, inverse of :func:`pack_bits`."""
    if xp is np:
        big = np.ascontiguousarray(words, dtype=">u8")
        return np.unpackbits(big.view(np.uint8).reshape(*big.shape[:-1], big.shape[-1] * 8), axis=-1).view(bool)
    w = xp.asarray(words, dtype=xp.uint64)
    bits = (w[..., None] & xp.asarray(_SHIFTS64)) != 0
    return bits.reshape(*w.shape[:-1], w.shape[-1] * 64)


def mask_word(bits: np.ndarray) -> np.uint64:
    """A bool (64,) array, bit 0 most significant, as one uint64."""
    return np.uint64(int("".join("1" if b else "0" for b in np.asarray(bits).tolist()), 2))


def _rotation_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """For k = 0..3 quarter turns counter-clockwise (``np.rot90(img, k)``): (perm (4, n*n),
    flip (4, n*n)) with ``rotated_bits = bits[perm[k]] ^ flip[k]``."""
    u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    perm = [np.arange(n * n)]
    flip = [np.zeros(n * n, bool)]
    for _ in range(3):
        # one more turn: bit (u, v) <- previous bit (v, u), negated on odd u
        p, f = perm[-1], flip[-1]
        src = (v * n + u).ravel()
        perm.append(p[src])
        flip.append(f[src] ^ (u % 2 == 1).ravel())
    return np.stack(perm), np.stack(flip)


#: The 16x16 (full) and 8x8 (region) codes' turns. An odd turn's permutation is the transpose
#: and an even one's the identity: the verdicts rely on it (hashing/bitmatrix.py).
PERM16, FLIP16 = _rotation_tables(16)
PERM8, FLIP8 = _rotation_tables(8)
