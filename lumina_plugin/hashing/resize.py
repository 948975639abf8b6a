"""Pillow's LANCZOS resize of 8-bit gray images, bit for bit, in NumPy: the reference the
CuPy kernels (hashing/cupy_hasher.py) are checked against, and the tables they run on.

Why this is exact. Pillow (``libImaging/Resample.c``) resizes in two passes, rows first,
rounding to uint8 in between. Each output pixel is ``clip8((1 << 21) + sum(p[i] * k[i]))``
in int32 where the ``k`` are the filter weights in fixed point with 22 fraction bits
(``PRECISION_BITS``) and ``clip8(v) = clamp(v >> 22, 0, 255)``. The weights are computed
once per (input size, output size) in float64 with libm's ``sin``; we compute them with
the same operations in the same order (Python floats are IEEE doubles and ``math.sin``
is the same libm), so they are the same integers. The sums are integers below 2**31,
so float64 matrix products (or int32 loops on a GPU) give them exactly, in any order.

Also here: Pillow's RGB -> L conversion and the EXIF orientation as an index map, so
a kernel can read the upright picture straight from the stored pixels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Final

import numpy as np

PRECISION_BITS: Final[int] = 22
_HALF: Final[int] = 1 << (PRECISION_BITS - 1)
_ONE: Final[int] = 1 << PRECISION_BITS
#: LANCZOS support (Pillow's ``struct filter LANCZOS = {lanczos_filter, 3.0}``).
_SUPPORT: Final[float] = 3.0

#: The thumbnails the four hashes are computed from, (width, height), in ALGORITHMS order.
THUMB_SIZES: Final[tuple[tuple[int, int], ...]] = ((8, 8), (9, 8), (32, 32), (64, 64))
#: Where each thumbnail starts in the flat row of all four (row-major each).
THUMB_OFFSETS: Final[tuple[int, ...]] = (0, 64, 136, 1160)
THUMB_BYTES: Final[int] = 5256
#: Each thumbnail's first column in the concatenation of the four row passes.
COLUMN_OFFSETS: Final[tuple[int, ...]] = (0, 8, 17, 49)
COLUMNS: Final[int] = 113


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@functools.lru_cache(maxsize=8192)  # about 10 KB an entry: a library of small scans has thousands of sizes
def coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for a whole-image box.

    Returns (first input index per output (int32), number of taps per output (int32),
    the int32 weights of each output). Cached: a camera library has few distinct sizes; one
    of small scans or crops has a few thousand (measured: 456 tiles of random sizes made
    1,027 (size, thumbnail size) pairs, and a cache of 256 recomputed almost every one).

    All taps at once, with the same float64 operations in the same order as Pillow's loops:
    each tap's argument ``(x + xmin - center + 0.5) * ss``, libm's ``sin`` (``math.sin``
    mapped over the taps, not ``np.sin``, whose SIMD versions may differ in the last bit),
    the weights summed left to right (a cumulative sum, not NumPy's pairwise ``sum``; the
    zero padding of shorter rows adds nothing), then divided and rounded. A tap at a time
    in Python cost 35-65 ms per new image dimension, paid by every pool worker and GPU
    process for every width and height a library holds.

    The sines come from NumPy's vectorised ``np.sin`` (:data:`_sin`), which is not promised to
    round as libm does: it may differ in the last bit or so. That moves a fixed-point weight
    only where ``k * 2**22`` lies within about 1e-8 of a rounding boundary (the weights are
    below 2**22, the relative error a few 1e-16), so each output row with a tap within
    ``_NEAR`` of a boundary is computed again with libm's ``math.sin``: the integers are
    libm's, whatever ``np.sin`` does, at about half the cost (a library of small scans meets
    a new width or height at almost every photo).
    """
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORT * filterscale
    ss = 1.0 / filterscale
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale  # (Pillow's in0 + is 0.0 + : exact)
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = int(xmax.max()) if out_size else 0
    x = np.arange(taps, dtype=np.int64)
    valid = x[None, :] < xmax[:, None]
    arg = ((x[None, :] + xmin[:, None]).astype(np.float64) - center[:, None] + 0.5) * ss
    scaled = _scaled_weights(arg, valid, _sin)
    # |scaled| % 1.0 as |scaled| - floor(|scaled|): the same exact fraction, at a third of
    # np.remainder's cost (a new image side computes these four times)
    mag = np.abs(scaled)
    near = np.abs(mag - np.floor(mag) - 0.5) < _NEAR
    if near.any():
        rows = near.any(axis=1)
        scaled[rows] = _scaled_weights(arg[rows], valid[rows], _libm_sin)
    fixed = np.trunc(np.where(scaled < 0, -0.5 + scaled, 0.5 + scaled)).astype(np.int32)
    weights = tuple(fixed[j, :xmax[j]] for j in range(out_size))
    return xmin.astype(np.int32), xmax.astype(np.int32), weights


#: A weight times 2**22 this close to a rounding boundary (x.5) is recomputed with libm's sine.
_NEAR: Final[float] = 1e-6


def _libm_sin(x: np.ndarray) -> np.ndarray:
    """libm's ``sin`` of every element, as Pillow's C calls it (``math.sin`` is that libm)."""
    return np.fromiter(map(math.sin, x.ravel().tolist()), np.float64, x.size).reshape(x.shape)


#: The sine of the fast path (a module attribute so a test can stand in a sine that is off in
#: the last bits and show that the weights stay libm's).
_sin = np.sin


def _scaled_weights(arg: np.ndarray, valid: np.ndarray, sin: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Each row's LANCZOS weights at ``arg`` (taps outside ``valid`` are 0), normalised to sum
    to 1 as Pillow sums them (left to right), times 2**22: before Pillow's rounding."""
    k = np.where(valid, _lanczos_taps(arg, sin), 0.0)
    ww = np.cumsum(k, axis=1)[:, -1] if k.shape[1] else np.zeros(k.shape[0])
    np.divide(k, ww[:, None], out=k, where=(ww != 0.0)[:, None])  # k is our own array
    return k * _ONE


def _lanczos_taps(arg: np.ndarray, sin: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """:func:`_lanczos` of every element (0 outside [-3, 3)), with ``sin`` as the sine."""
    inside = (arg >= -3.0) & (arg < 3.0)
    return np.where(inside, _sinc_taps(arg, sin) * _sinc_taps(arg / 3, sin), 0.0)


def _sinc_taps(x: np.ndarray, sin: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    px = x * math.pi
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0.0, 1.0, sin(px) / px)


@functools.lru_cache(maxsize=64)
def dense_weights(in_size: int, out_size: int) -> np.ndarray:
    """The weights as an (in_size, out_size) float64 matrix (zero outside each window)."""
    starts, counts, weights = coefficients(in_size, out_size)
    dense = np.zeros((in_size, out_size), np.float64)
    if counts.sum():
        # One scatter of every tap: row = its input index, column = its output.
        ends = np.cumsum(counts)
        tap = np.arange(ends[-1]) - np.repeat(ends - counts, counts)
        dense[np.repeat(starts, counts) + tap, np.repeat(np.arange(out_size), counts)] = np.concatenate(weights)
    dense.flags.writeable = False
    return dense


def _clip8(acc: np.ndarray) -> np.ndarray:
    # acc holds exact integers (< 2**31 in magnitude); >> floors, as C's on int32.
    return np.clip(acc.astype(np.int64) >> PRECISION_BITS, 0, 255).astype(np.uint8)


def resize_rows(gray: np.ndarray, width: int) -> np.ndarray:
    """Pillow's horizontal pass: (H, W) uint8 -> (H, width) uint8."""
    return _clip8(gray.astype(np.float64) @ dense_weights(gray.shape[1], width) + _HALF)


def resize_columns(gray: np.ndarray, height: int) -> np.ndarray:
    """Pillow's vertical pass: (H, W) uint8 -> (height, W) uint8."""
    return _clip8(dense_weights(gray.shape[0], height).T @ gray.astype(np.float64) + _HALF)


def vertical_first(in_size: tuple[int, int], out_size: tuple[int, int]) -> bool:
    """Whether the installed Pillow runs the column pass first for this resize.

    Pillow 13 does when the height shrinks by more than twice as many pixels as the
    width (tall images: phone screenshots, vertical panoramas); Pillow 12 and older
    always run the rows first. The two orders round differently, so we follow the
    Pillow that is installed (found once by a probe, not by its version number).
    """
    (width, height), (w, h) = in_size, out_size
    return _pillow_has_vertical_first() and height - h > 0 and height - h > (width - w) * 2


@functools.lru_cache(maxsize=1)
def _pillow_has_vertical_first() -> bool:
    from PIL import Image

    probe = np.random.default_rng(5).integers(0, 256, (200, 16), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(probe).resize((8, 8), Image.Resampling.LANCZOS))
    return bool(np.array_equal(pillow, resize_rows(resize_columns(probe, 8), 8)))


def resize(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``Image.fromarray(gray).resize(size, LANCZOS)``, as an array, bit for bit."""
    width, height = size
    need_rows, need_columns = width != gray.shape[1], height != gray.shape[0]
    out = gray
    if need_columns and vertical_first((gray.shape[1], gray.shape[0]), size):
        out = resize_columns(out, height)
        return resize_rows(out, width) if need_rows else out
    if need_rows:  # Pillow skips a pass whose size does not change
        out = resize_rows(out, width)
    if need_columns:
        out = resize_columns(out, height)
    return out if out is not gray else gray.copy()


#: Image rows per matrix product of the row pass: keeps the float64 copy of the pixels
#: small (256 rows of a 12 MP photo: 8 MB) and in cache, whatever the photo's size.
_ROW_BLOCK: Final[int] = 256
#: 2**-22: the weights scaled by it are still exact (a power of two), and so is every sum of
#: products (integers times 2**-22, below 2**10 in magnitude: 32 significant bits of 53).
_UNIT: Final[float] = 1.0 / _ONE


#: The row passes' outputs (of the COLUMNS) in groups of adjacent outputs [c0, c1): each group
#: reads only the input columns its windows cover, so the 32 and 64 wide passes (in 4 and 8
#: groups), whose windows are narrow, cost a third of the dense product (measured on one
#: core: 221 -> 96 us for a 244 px wide tile, 3.0 -> 2.8 ms for 1000 px); the 8 and 9 wide
#: ones, whose windows span three quarters of the row, in two halves each (a fifth fewer
#: products: 415 -> 362 us for all four thumbnails of a 416x400 tile, 170 at 244 px either way).
_ROW_SPLITS: Final[tuple[tuple[int, int], ...]] = (
    ((COLUMN_OFFSETS[0], 4), (4, COLUMN_OFFSETS[1]), (COLUMN_OFFSETS[1], 12), (12, COLUMN_OFFSETS[2]))
    + tuple((c, c + 8) for c in range(COLUMN_OFFSETS[2], COLUMN_OFFSETS[3], 8))
    + tuple((c, c + 8) for c in range(COLUMN_OFFSETS[3], COLUMNS, 8)))


def _windows(in_size: int, outs: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """First input index and end (exclusive) of each output's window, for the output sizes
    ``outs`` one after another: the inputs a group of outputs reads (zero-weight taps at a
    window's ends included: they add exact zeros). Read from the cached coefficients, where
    testing the dense weights for nonzero rows cost 10 us a group."""
    starts, ends = [], []
    for out in outs:
        first, taps, _ = coefficients(in_size, out)
        starts += first.tolist()
        ends += (first + taps).tolist()
    return starts, ends


@functools.lru_cache(maxsize=64)
def _row_plan(width: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The row passes of an image ``width`` wide as products of input columns [lo, hi) by
    their weights (times 2**-22) into output columns [c0, c1) of the COLUMNS."""
    weights = np.concatenate([dense_weights(width, w) for w, _ in THUMB_SIZES], axis=1) * _UNIT
    starts, ends = _windows(width, tuple(w for w, _ in THUMB_SIZES))
    plan = []
    for c0, c1 in _ROW_SPLITS:
        lo, hi = min(starts[c0:c1]), max(ends[c0:c1])
        part = np.ascontiguousarray(weights[lo:hi, c0:c1])
        part.flags.writeable = False
        plan.append((lo, hi, c0, c1, part))
    return tuple(plan)


#: Groups of adjacent output rows of the column passes of heights 8, 32 and 64, as
#: :data:`_ROW_SPLITS` for the rows (the 64-row pass: 30 -> 15 us for a 242 px tall tile).
_COLUMN_GROUPS: Final[tuple[int, ...]] = (1, 2, 4)


@functools.lru_cache(maxsize=64)
def _column_plan(height: int) -> tuple[tuple[tuple[int, int, int, int, np.ndarray], ...], ...]:
    """For the thumbnail heights 8 (8x8 and 9x8 share it), 32 and 64: the column pass as
    products of weights (h rows [r0, r1) of the output, times 2**-22) by rows [lo, hi) of
    the row pass's output."""
    plans = []
    for h, groups in zip((8, 32, 64), _COLUMN_GROUPS):
        weights = dense_weights(height, h).T * _UNIT
        starts, ends = _windows(height, (h,))
        step = -(-h // groups)
        plan = []
        for r0 in range(0, h, step):
            r1 = min(r0 + step, h)
            lo, hi = min(starts[r0:r1]), max(ends[r0:r1])
            part = np.ascontiguousarray(weights[r0:r1, lo:hi])
            part.flags.writeable = False
            plan.append((lo, hi, r0, r1, part))
        plans.append(tuple(plan))
    return tuple(plans)


def _columns(plan: tuple[tuple[int, int, int, int, np.ndarray], ...], rows: np.ndarray, out: np.ndarray) -> None:
    """One thumbnail's column pass (:func:`_column_plan`) of ``rows`` into ``out``."""
    for lo, hi, r0, r1, weights in plan:
        np.matmul(weights, rows[lo:hi], out=out[r0:r1])


def _round_clip(acc: np.ndarray) -> np.ndarray:
    """Pillow's ``clip8`` in place on sums of products scaled by 2**-22 (exact, see _UNIT):
    floor(S * 2**-22 + 0.5) is ``(S + (1 << 21)) >> 22``, then clamped to [0, 255]. Three
    passes in place, where _clip8 makes four arrays (np.clip in one pass: 22 -> 15 us for
    a 242-row tile's row pass, against np.maximum then np.minimum; no NaN, no -0.0 here)."""
    acc += 0.5
    np.floor(acc, out=acc)
    return np.clip(acc, 0.0, 255.0, out=acc)


def thumbnails(gray: np.ndarray) -> np.ndarray:
    """The four hash thumbnails of an (H, W) uint8 image, flat: shape (THUMB_BYTES,) uint8;
    each equal to ``Image.fromarray(gray).resize(size, LANCZOS)``.

    The four row passes run as a few matrix products over all COLUMNS outputs
    (:data:`_ROW_SPLITS`), a block of rows at a time, as the GPU's row kernel does: on one
    core about twice as fast as Pillow's four resizes at 2 MP (the pixels are read once,
    not four times). A pass
    whose size does not change is the identity here (Pillow skips it: same bytes).

    Every value stays in float64 (exact integers times 2**-22, see _UNIT) from the row
    pass to the last rounding, which is done once over all four thumbnails; the 8x8 and
    9x8 column passes, of one height, are one product. A small tile's hashing is mostly
    per-call overhead, so fewer and smaller steps are most of its time.
    """
    height, width = gray.shape
    if any(vertical_first((width, height), size) for size in THUMB_SIZES):
        return np.concatenate([resize(gray, size).ravel() for size in THUMB_SIZES])
    plan = _row_plan(width)
    rows = np.empty((height, COLUMNS), np.float64)
    for y in range(0, height, _ROW_BLOCK):
        block, out = gray[y:y + _ROW_BLOCK].astype(np.float64), rows[y:y + _ROW_BLOCK]
        for lo, hi, c0, c1, weights in plan:
            np.matmul(block[:, lo:hi], weights, out=out[:, c0:c1])
    _round_clip(rows)
    flat = np.empty(THUMB_BYTES, np.float64)
    a, d, p, w = THUMB_OFFSETS
    _, nine, first32, first64 = COLUMN_OFFSETS  # the 8x8 and 9x8 passes' columns end at first32
    if height == 8:  # the column passes of 8 rows, skipped by Pillow
        low = rows[:, :first32]
    else:
        low = np.empty((8, first32), np.float64)
        _columns(_column_plan(height)[0], rows[:, :first32], low)
    flat[a:d].reshape(8, 8)[...] = low[:, :nine]
    flat[d:p].reshape(8, 9)[...] = low[:, nine:]
    for (size, first), out, h in zip(((32, first32), (64, first64)), (flat[p:w], flat[w:]), (1, 2)):
        part, out = rows[:, first:first + size], out.reshape(size, size)
        if height == size:
            out[...] = part
        else:
            _columns(_column_plan(height)[h], part, out)
    return _round_clip(flat).astype(np.uint8)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("L")`` of (H, W, 3) uint8 RGB: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16."""
    p = rgb.astype(np.uint32)
    return ((p[..., 0] * 19595 + p[..., 1] * 38470 + p[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def orientation_map(orientation: int, width: int, height: int) -> tuple[int, int, tuple[int, ...]]:
    """How to read the upright picture from stored pixels of size (width, height).

    Returns (upright width, upright height, (a, b, c, d, e, f)) such that the upright
    pixel (x, y) is the stored pixel (x' = a*x + b*y + c, y' = d*x + e*y + f): the
    transposes of ``ImageOps.exif_transpose`` for EXIF orientations 1-8.
    """
    w1, h1 = width - 1, height - 1
    maps = {
        1: (1, 0, 0, 0, 1, 0),        # as stored
        2: (-1, 0, w1, 0, 1, 0),      # FLIP_LEFT_RIGHT
        3: (-1, 0, w1, 0, -1, h1),    # ROTATE_180
        4: (1, 0, 0, 0, -1, h1),      # FLIP_TOP_BOTTOM
        5: (0, 1, 0, 1, 0, 0),        # TRANSPOSE
        6: (0, 1, 0, -1, 0, h1),      # ROTATE_270
        7: (0, -1, w1, -1, 0, h1),    # TRANSVERSE
        8: (0, -1, w1, 1, 0, 0),      # ROTATE_90
    }
    params = maps.get(orientation, maps[1])
    if orientation in (5, 6, 7, 8):
        return height, width, params
    return width, height, params


def upright(stored: np.ndarray, orientation: int) -> np.ndarray:
    """The upright picture of stored (H, W[, C]) pixels, through :func:`orientation_map`."""
    height, width = stored.shape[:2]
    uw, uh, (a, b, c, d, e, f) = orientation_map(orientation, width, height)
    ys, xs = np.mgrid[0:uh, 0:uw]
    return stored[d * xs + e * ys + f, a * xs + b * ys + c]


def row_tables(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four row passes of an image ``width`` wide as one table of COLUMNS outputs:
    (first input column, taps, offset into the weights, weights), all int32."""
    return _tables([coefficients(width, w) for w, _ in THUMB_SIZES])


def column_tables(height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four column passes of an image ``height`` high as one table of 112 output rows."""
    return _tables([coefficients(height, h) for _, h in THUMB_SIZES])


def _tables(parts: list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    starts = np.concatenate([p[0] for p in parts]).astype(np.int32)
    counts = np.concatenate([p[1] for p in parts]).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    weights = np.concatenate([w for p in parts for w in p[2]]).astype(np.int32)
    return starts, counts, offsets, weights
