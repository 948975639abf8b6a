"""The geometry words (hashing/geometry.py) of a batch of images on the GPU, the CPU's bits
for the same pixels.

The CPU takes a photo's upright gray image, box-reduces it with Pillow's ``Image.reduce``
(borders.working_image), finds the content box inside bars and bands (borders.content_box),
projects four regions of it on cosines (borders.coefficients) and keeps the signs. Here,
for a batch of images of one upright size (cupy_hasher.GpuHasher runs it beside the four
hashes):

1. the working image. cupy_hasher's row kernel already holds each upright gray row (read
   through the EXIF orientation map, Pillow's integer RGB -> L); it adds up every
   ``factor`` x ``factor`` block into int32 sums (exact in any order). :func:`finish_reduce`
   then rounds them as Pillow's ``Reduce.c`` does in integers: ``((sum + n // 2) * m) >> 24``
   in uint32 arithmetic, ``n`` the pixels of the block (fewer in the last row and column)
   and ``m = (UINT32)((float)2**32 / (float)(256 * n))`` (``division_UINT32``, in float32);
   2. ``n`` and 4 ``n`` (2x2, 4x4) are the shifts ``(sum + n // 2) >> k`` of its special cases;
2. the content box, :func:`content_boxes`: borders.content_box for the whole batch at once
   (both passes, four sides, two tolerances) with masks instead of loops. Every quantity it
   compares is an exact integer or a correctly rounded ratio of integers, so the boxes are
   the CPU's. On the GPU, :class:`BoxKernel` does the same in one kernel a pass (a block
   per side of each image), since the array version costs some 300 launches a batch;
3. the coefficients, :func:`batch_coefficients`: the same bases (cosines at pixel centres,
   overlap weights) for every region of every image, two batched float64 matrix products;
4. the signs (geometry.codes_from_coefficients) and the meta word (geometry's, on the host
   from the box, cached: a library's photos share a few boxes).

Coefficients are sums of about 10**5 float64 terms whose order (cuBLAS, not the CPU's BLAS)
and cosines (CUDA's, not libm's) differ: they agree to about 1e-11. A used coefficient
within ``COEFF_TIE`` of 0 could have the other sign on the CPU: its photo is flagged and
recomputed on the host with the NumPy code from its working image (as thumb_codes does for
pHash ties). ``COEFF_TIE`` is 1e-6 (coefficients are means of pixel values, up to 255), about
10**5 times the disagreement: none of the sample catalog's photos has such a coefficient (1.3e-4
of their used coefficients lie within 1e-4 of 0, so about 1 photo in 2,000 is expected).

Everything here takes the array module ``xp`` (NumPy or CuPy): the CPU twin tests
(tests/test_gpu_geometry.py) run it with NumPy against geometry.geometry_codes, so its
agreement with the CPU is proved where no GPU exists.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import numpy as np

from . import borders
from .borders import CLEAN, LOOSE, MAX_SIDE, MAX_TEXT, MIN_SIDE, STEP, STRICT_TOL, TOL, coefficients, regions
from .geometry import GEO_WORDS, META, _meta, codes_from_coefficients

#: A used coefficient closer than this to 0 is decided on the host (see the module docstring).
COEFF_TIE: Final[float] = 1e-6
#: Images per pass of the batch functions (bounds their temporary arrays, a few MB an image).
CHUNK: Final[int] = 128
_NF: Final[int] = 16
#: The coefficients whose signs are words: all 16x16 of the full region, 8x8 of the others.
_USED: Final[np.ndarray] = np.zeros((4, _NF, _NF), bool)
_USED[0] = True
_USED[1:, :8, :8] = True


def working_factor(height: int, width: int) -> int:
    """The integer factor borders.working_image reduces an upright (height, width) image by."""
    return max(1, max(height, width) // borders.WORK_LONG)


def working_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of the working image (Pillow's ``reduce`` keeps partial blocks)."""
    f = working_factor(height, width)
    return -(-height // f), -(-width // f)


@functools.lru_cache(maxsize=32)
def reduce_tables(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(amend, multiplier), both (working height, working width) uint64: Pillow's rounding
    constants for each block of the reduce (``n // 2`` and ``division_UINT32(n, 8)``)."""
    f = working_factor(height, width)
    hw, ww = working_size(height, width)
    ny = np.minimum(f, height - np.arange(hw) * f)
    nx = np.minimum(f, width - np.arange(ww) * f)
    n = (ny[:, None] * nx[None, :]).astype(np.uint64)
    divisor = (n * np.uint64(256)).astype(np.float32)  # (UINT32)(1 << 8) * n, converted to float
    multiplier = (np.float32(4294967296.0) / divisor).astype(np.uint64)  # float division, truncated
    amend, multiplier = n // np.uint64(2), multiplier
    amend.flags.writeable = multiplier.flags.writeable = False
    return amend, multiplier


def block_sums(gray: np.ndarray) -> np.ndarray:
    """NumPy: what the row kernel adds up for an upright (H, W) uint8 image: the int32 sums
    of its ``working_factor`` blocks, (working height, working width)."""
    h, w = gray.shape
    f = working_factor(h, w)
    hw, ww = working_size(h, w)
    padded = np.zeros((hw * f, ww * f), np.int32)
    padded[:h, :w] = gray
    return padded.reshape(hw, f, ww, f).sum(axis=(1, 3), dtype=np.int32)


def finish_reduce(xp: Any, sums: Any, height: int, width: int, tables: tuple[Any, Any] | None = None) -> Any:
    """(N, hw, ww) int32 block sums of upright (height, width) images -> the (N, hw, ww)
    uint8 working images, rounded as Pillow's ``Image.reduce``. ``tables``: reduce_tables
    already on the device (else they are copied there)."""
    amend, multiplier = tables or tuple(xp.asarray(t) for t in reduce_tables(height, width))
    v = (sums.astype(xp.uint64) + amend) * multiplier
    return ((v & xp.uint64(0xFFFFFFFF)) >> xp.uint64(24)).astype(xp.uint8)


# ---------------------------------------------------------------- content boxes


def _first(xp: Any, mask: Any) -> Any:
    """Index of the first True of each row (0 where none)."""
    return mask.astype(xp.int8).argmax(axis=1)


def _decide(xp: Any, frac: Any, length: Any, limit: Any) -> Any:
    """borders._side_at's decision from its line fractions, for a batch of sides.
    ``frac``: (B, K) float64, line 0 outermost; ``length`` (B,) lines of that side;
    ``limit`` (B,). Lines past ``limit + 2`` are never looked at. Returns (B,) depths."""
    b, k = frac.shape
    idx = xp.arange(k)[None, :]
    clean = frac >= CLEAN
    bad = (frac < LOOSE) & (idx <= limit[:, None])
    run = xp.where(bad.any(axis=1), _first(xp, bad), limit + 1)
    cleans = clean & (idx < run[:, None])
    # The first clean line whose next clean line is more than ``gap`` away ends the band.
    gap = xp.maximum(2, (MAX_TEXT * length).astype(xp.int64))
    counts = xp.cumsum(cleans, axis=1, dtype=xp.int64)
    reach = xp.minimum(idx + gap[:, None], k - 1)
    at_reach = xp.take_along_axis(counts, reach, axis=1)
    ends = cleans & (at_reach == counts) & (counts[:, -1:] > at_reach)
    cut = xp.where(ends.any(axis=1), _first(xp, ends), k)
    keep = cleans & (idx <= cut[:, None])
    inf = xp.full((b, 2), xp.inf)
    after = xp.minimum(xp.concatenate([frac[:, 1:], inf[:, :1]], axis=1), xp.concatenate([frac[:, 2:], inf], axis=1))
    inner = keep & (idx + 1 <= limit[:, None]) & (after <= STEP)
    deepest = k - 1 - _first(xp, inner[:, ::-1])
    return xp.where(clean[:, 0] & inner.any(axis=1), deepest + 1, 0)


def _box_once(xp: Any, img: Any, box: Any) -> Any:
    """borders._box_once of ``img[n, t:b, l:r]`` for each (t, b, l, r) row of ``box``
    ((N, 4) int64, absolute), as an absolute (N, 4) box. ``img``: (N, H, W) float32."""
    n, height, width = img.shape
    t, b, lf, r = (box[:, j] for j in range(4))
    h, w = b - t, r - lf
    k = int(MAX_SIDE * max(height, width)) + 3  # at least any side's limit + 3
    p = max(height, width)
    lines = xp.zeros((4, n, k, p), dtype=xp.float32)
    step = xp.arange(k)[None, :]
    rows = xp.arange(n)[:, None]
    lines[0, :, :, :width] = img[rows, xp.clip(t[:, None] + step, 0, height - 1)]
    lines[1, :, :, :width] = img[rows, xp.clip(b[:, None] - 1 - step, 0, height - 1)]
    turned = img.transpose(0, 2, 1)
    lines[2, :, :, :height] = turned[rows, xp.clip(lf[:, None] + step, 0, width - 1)]
    lines[3, :, :, :height] = turned[rows, xp.clip(r[:, None] - 1 - step, 0, width - 1)]
    col = xp.arange(p)[None, :]
    across = (col >= lf[:, None]) & (col < r[:, None])
    down = (col >= t[:, None]) & (col < b[:, None])
    valid = xp.stack([across, across, down, down]).reshape(4 * n, p)
    m = xp.stack([w, w, h, h]).reshape(-1)
    length = xp.stack([h, h, w, w]).reshape(-1)
    limit = xp.stack([(MAX_SIDE * h).astype(xp.int64)] * 2 + [(MAX_SIDE * w).astype(xp.int64)] * 2).reshape(-1)
    lines = lines.reshape(4 * n, k, p)
    # The margin's colour: the median of the two outermost lines (an even count: the mean
    # of the two middle values, exact for integer pixels).
    first = xp.where(valid[:, None, :], lines[:, :2], xp.float32(1e6)).reshape(4 * n, 2 * p)
    first = xp.sort(first, axis=1)
    middle = xp.maximum(m - 1, 0)[:, None]
    ref = (xp.take_along_axis(first, middle, axis=1) + xp.take_along_axis(first, middle + 1, axis=1)) / 2
    away = xp.abs(lines - ref[:, :, None])
    counts = xp.stack([((away <= tol) & valid[:, None, :]).sum(axis=2) for tol in (TOL, STRICT_TOL)])
    frac = counts / xp.maximum(m, 1)[None, :, None]  # (2, 4n, k) float64, as .mean() gives
    depth = _decide(xp, frac.reshape(2 * 4 * n, k), xp.concatenate([length, length]),
                    xp.concatenate([limit, limit])).reshape(2, 4 * n)
    depth = xp.where(depth[0] != 0, depth[0], depth[1])  # the strict tolerance only where the loose found none
    depth = xp.where(limit < 2, 0, depth).reshape(4, n)
    side = xp.stack([h, h, w, w])
    depth = xp.where(depth >= MIN_SIDE * side, depth, 0)
    return xp.stack([t + depth[0], b - depth[1], lf + depth[2], r - depth[3]], axis=1)


def content_boxes(xp: Any, work: Any) -> Any:
    """borders.content_box of each (H, W) working image of ``work`` (N, H, W): (N, 4) int64
    (top, bottom, left, right) boxes, the second pass and the "mostly margin" rule included."""
    n, height, width = work.shape
    img = work.astype(xp.float32)
    full = xp.zeros((n, 4), dtype=xp.int64)
    full[:, 1], full[:, 3] = height, width
    first = _box_once(xp, img, full)
    again = ((first != full).any(axis=1) & (first[:, 1] - first[:, 0] > 8) & (first[:, 3] - first[:, 2] > 8))
    box = xp.where(again[:, None], _box_once(xp, img, first), first)
    blank = (box[:, 1] - box[:, 0] < height // 3) | (box[:, 3] - box[:, 2] < width // 3)
    return xp.where(blank[:, None], full, box)


# ---------------------------------------------------------------- the same boxes in one kernel a pass

_BOX_SOURCE = r"""
/* borders._side_at's decision from the line counts (frac = count / m, as .mean() gives). */
__device__ int decide(const int* cnt, int m, int limit, int length,
                      double clean_t, double loose, double step, double max_text)
{
#define FRAC(j) ((double)cnt[j] / (double)m)
    if (!(FRAC(0) >= clean_t)) return 0;
    int run = limit + 1;
    for (int j = 0; j <= limit; ++j) if (FRAC(j) < loose) { run = j; break; }
    const int gap = max(2, (int)(max_text * (double)length));
    int cut = run - 1, prev = -1;
    for (int c = 0; c < run; ++c) {
        if (FRAC(c) >= clean_t) {
            if (prev >= 0 && c - prev > gap) { cut = prev; break; }
            prev = c;
        }
    }
    for (int c = cut; c >= 0; --c) {
        if (!(FRAC(c) >= clean_t) || c + 1 > limit) continue;
        const double f1 = FRAC(c + 1), f2 = FRAC(c + 2);
        if ((f1 < f2 ? f1 : f2) <= step) return c + 1;
    }
    return 0;
#undef FRAC
}

/* Block (n, s): side s (top, bottom, left, right) of image n's sub-image boxes[n] (t, b, l, r):
   borders._sides (one side of it), then the MIN_SIDE rule; writes that side of out[n] (the trimmed box). The
   median of the two outermost lines from a histogram (integer pixels), the lines' counts
   within each tolerance by one warp a line. */
extern "C" __global__ void box_sides(const unsigned char* __restrict__ work, int height, int width,
                                     const long long* __restrict__ boxes, long long* __restrict__ out,
                                     double tol, double strict_tol, double clean_t, double loose,
                                     double step, double max_side, double max_text, double min_side)
{
    __shared__ int hist[256];
    __shared__ int cnt[2][512];
    __shared__ int ref2;
    const int n = blockIdx.x, s = blockIdx.y;
    const long long* box = boxes + (long long)n * 4;
    const int t = (int)box[0], b = (int)box[1], l = (int)box[2], r = (int)box[3];
    const int h = b - t, w = r - l;
    const int length = s < 2 ? h : w, m = s < 2 ? w : h;
    const int limit = (int)(max_side * (double)length);
    const long long edge = s == 0 ? t : (s == 1 ? b : (s == 2 ? l : r));
    if (limit < 2 || m < 1) {
        if (threadIdx.x == 0) out[(long long)n * 4 + s] = edge;
        return;
    }
    const int lines = min(limit + 3, 512);
    const unsigned char* img = work + (long long)n * height * width;
#define PIX(j, p) img[s == 0 ? (long long)(t + (j)) * width + l + (p) : \
                      s == 1 ? (long long)(b - 1 - (j)) * width + l + (p) : \
                      s == 2 ? (long long)(t + (p)) * width + l + (j) : \
                               (long long)(t + (p)) * width + r - 1 - (j)]
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * m; i += blockDim.x) atomicAdd(&hist[PIX(i / m, i % m)], 1);
    __syncthreads();
    if (threadIdx.x == 0) {  /* the values at sorted positions m - 1 and m of 2m */
        int seen = 0, lo = -1, hi = -1;
        for (int v = 0; v < 256; ++v) {
            seen += hist[v];
            if (lo < 0 && seen >= m) lo = v;
            if (seen >= m + 1) { hi = v; break; }
        }
        ref2 = lo + hi;
    }
    __syncthreads();
    const double ref = 0.5 * (double)ref2;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int j = warp; j < lines; j += warps) {
        int c0 = 0, c1 = 0;
        for (int p = lane; p < m; p += 32) {
            const double d = fabs((double)PIX(j, p) - ref);
            c0 += d <= tol;
            c1 += d <= strict_tol;
        }
        for (int o = 16; o > 0; o >>= 1) {
            c0 += __shfl_down_sync(0xffffffffu, c0, o);
            c1 += __shfl_down_sync(0xffffffffu, c1, o);
        }
        if (lane == 0) { cnt[0][j] = c0; cnt[1][j] = c1; }
    }
#undef PIX
    __syncthreads();
    if (threadIdx.x == 0) {
        int d = decide(cnt[0], m, limit, length, clean_t, loose, step, max_text);
        if (d == 0) d = decide(cnt[1], m, limit, length, clean_t, loose, step, max_text);
        if (!((double)d >= min_side * (double)length)) d = 0;
        out[(long long)n * 4 + s] = (s == 0 || s == 2) ? edge + d : edge - d;
    }
}
"""


class BoxKernel:
    """:func:`content_boxes` on CuPy in a few launches: one kernel a pass (a block per side
    of each image) instead of about 300 array operations (measured on the H100, a batch of
    128 working images: 11.7 ms of launches for the arrays, 0.6 ms for the kernel). The CPU
    twin tests prove :func:`content_boxes`; the GPU tests prove this kernel equal to it."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self._kernel = cp.RawKernel(_BOX_SOURCE, "box_sides")
        self._constants = tuple(np.float64(c) for c in (TOL, STRICT_TOL, CLEAN, LOOSE, STEP, MAX_SIDE, MAX_TEXT,
                                                        MIN_SIDE))

    def _once(self, work: Any, box: Any) -> Any:
        n, height, width = work.shape
        out = self.cp.empty((n, 4), dtype=self.cp.int64)
        self._kernel((n, 4), (256,), (work, np.int32(height), np.int32(width), box, out, *self._constants))
        return out

    def __call__(self, work: Any) -> Any:
        cp = self.cp
        n, height, width = work.shape
        work = cp.ascontiguousarray(work)
        full = cp.zeros((n, 4), dtype=cp.int64)
        full[:, 1], full[:, 3] = height, width
        first = self._once(work, full)
        again = ((first != full).any(axis=1) & (first[:, 1] - first[:, 0] > 8) & (first[:, 3] - first[:, 2] > 8))
        box = cp.where(again[:, None], self._once(work, first), first)
        blank = (box[:, 1] - box[:, 0] < height // 3) | (box[:, 3] - box[:, 2] < width // 3)
        return cp.where(blank[:, None], full, box)


# ---------------------------------------------------------------- coefficients and words


def batch_basis(xp: Any, n_px: int, a: Any, b: Any, nf: int = _NF) -> Any:
    """borders.basis for K regions at once: ``a``, ``b`` (K,) float64 -> (K, nf, n_px),
    the same operations in the same order."""
    i = xp.arange(n_px, dtype=xp.float64)
    a, b = a[:, None], b[:, None]
    overlap = xp.clip(xp.minimum(i + 1, b) - xp.maximum(i, a), 0.0, 1.0)
    t = xp.clip((i + 0.5 - a) / (b - a), 0.0, 1.0)
    u = xp.arange(nf, dtype=xp.float64)[:, None]
    return xp.cos(np.pi * u * t[:, None, :]) * (overlap / (b - a))[:, None, :]


def batch_coefficients(xp: Any, work: Any, boxes: Any, nf: int = _NF) -> Any:
    """borders.coefficients of N images at once: ``work`` (N, H, W), ``boxes`` (N, R, 4)
    float64 (top, bottom, left, right of each region) -> (N, R, nf, nf) float64."""
    n, height, width = work.shape
    r = boxes.shape[1]
    flat = boxes.reshape(n * r, 4)
    by = batch_basis(xp, height, flat[:, 0], flat[:, 1], nf).reshape(n, r * nf, height)
    bx = batch_basis(xp, width, flat[:, 2], flat[:, 3], nf).reshape(n, r, nf, width)
    rows = xp.matmul(by, work.astype(xp.float64)).reshape(n, r, nf, width)
    return xp.matmul(rows, bx.transpose(0, 1, 3, 2))


@functools.lru_cache(maxsize=4096)
def _regions_and_meta(box: tuple[int, int, int, int], height: int, width: int
                      ) -> tuple[tuple[tuple[float, float, float, float], ...], int]:
    """The four regions of a content box (geometry's, in floats) and the meta word."""
    t, b, lf, r = (float(x) for x in box)
    return tuple(regions((t, b, lf, r))), _meta(box, height, width)


def host_words(work: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The geometry words of one (H, W) uint8 working image with its content box, with
    NumPy: geometry.geometry_codes after its working image and box."""
    img = np.asarray(work).astype(np.float32)
    h, w = img.shape
    t, b, lf, r = (int(x) for x in box)
    found, meta = _regions_and_meta((t, b, lf, r), h, w)
    words = np.empty(GEO_WORDS, np.uint64)
    words[:META] = codes_from_coefficients(np, coefficients(np, img, list(found))[None])[0]
    words[META] = np.uint64(meta)
    return words


class Queued(NamedTuple):
    """One chunk of working images on its way: ``at`` (their positions in the caller's
    batch), ``work`` (n, hw, ww) uint8 and their content ``boxes`` (n, 4), on the device."""

    at: np.ndarray
    work: Any
    boxes: Any


def queue_boxes(xp: Any, index: np.ndarray, work: Any, boxes_of: Callable[[Any], Any] | None = None
                ) -> list[Queued]:
    """Queue the content boxes of working images of one size (nothing waits here), with
    ``boxes_of`` (a :class:`BoxKernel` on the GPU) or :func:`content_boxes`."""
    find = boxes_of or functools.partial(content_boxes, xp)
    return [Queued(index[s:s + CHUNK], work[s:s + CHUNK], find(work[s:s + CHUNK])) for s in range(0, len(index), CHUNK)]


def _host(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def finish_words(xp: Any, queued: list[Queued], out: np.ndarray) -> np.ndarray:
    """Fill ``out[at]`` ((N, GEO_WORDS) uint64, host) with the words of every queued
    chunk: boxes fetched, regions on the host, coefficients and signs on the device, the
    coefficients within ``COEFF_TIE`` of 0 decided on the host. Waits for the device."""
    used = xp.asarray(_USED)
    for chunk in queued:
        boxes = _host(chunk.boxes)
        _, height, width = chunk.work.shape
        found = [_regions_and_meta((int(t), int(b), int(lf), int(r)), height, width) for t, b, lf, r in boxes]
        coeffs = batch_coefficients(xp, chunk.work, xp.asarray(np.array([f[0] for f in found], dtype=np.float64)))
        words = codes_from_coefficients(xp, coeffs)
        ties = ((xp.abs(coeffs) < COEFF_TIE) & used).any(axis=(1, 2, 3))
        words_h, ties_h = _host(words), _host(ties)
        out[chunk.at, :META] = words_h
        out[chunk.at, META] = np.array([f[1] for f in found], dtype=np.uint64)
        for i in np.flatnonzero(ties_h):
            t, b, lf, r = (int(x) for x in boxes[i])
            out[chunk.at[i]] = host_words(_host(chunk.work[i]), (t, b, lf, r))
    return out


def geometry_words(xp: Any, work: Any) -> np.ndarray:
    """(N, GEO_WORDS) uint64 words of (N, H, W) uint8 working images of one size."""
    out = np.zeros((work.shape[0], GEO_WORDS), np.uint64)
    return finish_words(xp, queue_boxes(xp, np.arange(work.shape[0]), work), out)
