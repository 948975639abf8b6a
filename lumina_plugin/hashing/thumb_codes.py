"""The four codes of a batch of thumbnails, written once for NumPy and CuPy alike.

The GPU path resizes on the device (hashing/cupy_hasher.py) and calls :func:`codes_from_thumbnails`
with ``xp = cupy``; the CPU twin test calls it with ``xp = numpy`` on thumbnails made by
hashing/resize.py and checks it against hashing/cpu.py, which is imagehash bit for bit.
So the math is proved in CI, where no GPU exists.

aHash and dHash are integer comparisons: exact anywhere. pHash and wHash end in
"above the median", exact except where a value sits on the median:

- wHash: with the mean removed (imagehash's remove_max_haar_ll), three Haar levels
  give each 8x8 block's sum / 8 less a constant, so the bits are "block sum above the
  median block sum" in integers. Only when the two middle sums tie does a block sit
  on the median, and then PyWavelets' float rounding decides its bit.
- pHash: a float64 DCT whose rounding depends on the summation order (BLAS on the
  CPU, cuBLAS on the GPU); a bit could differ only if the two middle coefficients are
  within rounding of each other.

Those cases are flagged ``ambiguous`` and :func:`resolve_ambiguous` recomputes them on
the host with hashing/cpu.py, so both paths give the same bits for the same thumbnails.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from .cpu import _DCT32x8, phash_pixels, whash_pixels
from .resize import THUMB_BYTES, THUMB_OFFSETS, thumbnails

#: Two middle pHash coefficients closer than this are re-done on the host. The DCT
#: values reach about 1e6 and float64 sums of 64 terms err by about 1e-9.
PHASH_TIE: Final[float] = 1e-6

_SHIFTS: Final[np.ndarray] = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def _pack(xp: Any, bits: Any) -> Any:
    """(N, 64) bool -> (N,) uint64 codes, first bit = most significant (codes.bits_to_code)."""
    return (bits.astype(xp.uint64) * xp.asarray(_SHIFTS)).sum(axis=1, dtype=xp.uint64)


def codes_from_thumbnails(xp: Any, thumbs: Any) -> tuple[Any, Any]:
    """Codes of N flat thumbnail rows (N, THUMB_BYTES) uint8, on the array module ``xp``.

    Returns (codes (N, 4) uint64 in ALGORITHMS order, ambiguous (N, 2) bool for
    (pHash, wHash)); ambiguous codes still hold a value, to be replaced by
    :func:`resolve_ambiguous`.
    """
    n = thumbs.shape[0]
    a, d, p, w = THUMB_OFFSETS
    t8 = thumbs[:, a:d].reshape(n, 64).astype(xp.int64)
    t9 = thumbs[:, d:p].reshape(n, 8, 9).astype(xp.int16)
    t32 = thumbs[:, p:w].reshape(n, 32, 32).astype(xp.float64)
    t64 = thumbs[:, w:THUMB_BYTES].reshape(n, 8, 8, 8, 8).astype(xp.int64)

    ahash = _pack(xp, t8 * 64 > t8.sum(axis=1, keepdims=True))
    dhash = _pack(xp, (t9[:, :, 1:] > t9[:, :, :-1]).reshape(n, 64))

    dct = xp.asarray(_DCT32x8)
    low = xp.matmul(xp.matmul(dct, t32), dct.T).reshape(n, 64)
    low_sorted = xp.sort(low, axis=1)
    phash = _pack(xp, low > ((low_sorted[:, 31] + low_sorted[:, 32]) / 2)[:, None])
    phash_tie = (low_sorted[:, 32] - low_sorted[:, 31]) <= 2 * PHASH_TIE

    # t64 is (n, block row, row in block, block column, column in block).
    sums = t64.sum(axis=(2, 4)).reshape(n, 64)
    sums_sorted = xp.sort(sums, axis=1)
    whash = _pack(xp, 2 * sums > (sums_sorted[:, 31] + sums_sorted[:, 32])[:, None])
    whash_tie = sums_sorted[:, 31] == sums_sorted[:, 32]

    codes = xp.stack([ahash, dhash, phash, whash], axis=1)
    return codes, xp.stack([phash_tie, whash_tie], axis=1)


def resolve_ambiguous(codes: np.ndarray, ambiguous: np.ndarray, thumbs: np.ndarray) -> np.ndarray:
    """Recompute the flagged pHash/wHash codes on the host with hashing/cpu.py (in place)."""
    if not ambiguous.any():  # almost always: nothing to redo
        return codes
    _, _, p, w = THUMB_OFFSETS
    for i in np.flatnonzero(ambiguous[:, 0]):
        codes[i, 2] = phash_pixels(thumbs[i, p:w].reshape(32, 32))
    for i in np.flatnonzero(ambiguous[:, 1]):
        codes[i, 3] = whash_pixels(thumbs[i, w:THUMB_BYTES].reshape(64, 64))
    return codes


def hash_thumbnails(thumbs: np.ndarray) -> np.ndarray:
    """NumPy: the codes of (N, THUMB_BYTES) thumbnails, ties resolved: (N, 4) uint64."""
    codes, ambiguous = codes_from_thumbnails(np, thumbs)
    return resolve_ambiguous(codes, ambiguous, thumbs)


def hash_pixels(gray: np.ndarray) -> np.ndarray:
    """The four codes of one (H, W) uint8 gray image, (4,) uint64 in ALGORITHMS order: its
    thumbnails (hashing/resize.py) through :func:`codes_of_one`. Bit for bit
    :func:`~.cpu.hash_gray`, the reference, in a fraction of its time: 0.1 ms against 1.3 ms
    for the codes, most of a small photo's hashing."""
    return codes_of_one(thumbnails(np.asarray(gray)))


def codes_of_one(flat: np.ndarray) -> np.ndarray:
    """:func:`hash_thumbnails` of ONE flat (THUMB_BYTES,) uint8 row, ties resolved: (4,) uint64.

    The same arithmetic on the same values (integer comparisons; the pHash DCT as the very
    same products, a stack of one), so the same bits, in a third of the NumPy calls: one
    photo's codes are mostly per-call overhead (about 150 us in :func:`hash_thumbnails`
    against 60 here, measured photo by photo). Tests check it against hashing/cpu.py."""
    a, d, p, w = THUMB_OFFSETS
    t8 = flat[a:d].astype(np.int64)
    t9 = flat[d:p].reshape(8, 9)  # uint8: the comparisons of the int16 copy
    t32 = flat[p:w].reshape(1, 32, 32).astype(np.float64)
    low = np.matmul(np.matmul(_DCT32x8, t32), _DCT32x8.T).reshape(64)
    low_sorted = np.sort(low)
    sums = flat[w:THUMB_BYTES].reshape(8, 8, 8, 8).sum(axis=(1, 3), dtype=np.int64).reshape(64)
    sums_sorted = np.sort(sums)
    bits = np.concatenate([t8 * 64 > t8.sum(), (t9[:, 1:] > t9[:, :-1]).reshape(64),
                           low > (low_sorted[31] + low_sorted[32]) / 2, 2 * sums > sums_sorted[31] + sums_sorted[32]])
    codes = np.packbits(bits).view(">u8").astype(np.uint64)
    if low_sorted[32] - low_sorted[31] <= 2 * PHASH_TIE:
        codes[2] = phash_pixels(flat[p:w].reshape(32, 32))
    if sums_sorted[31] == sums_sorted[32]:
        codes[3] = whash_pixels(flat[w:THUMB_BYTES].reshape(64, 64))
    return codes
