"""The four hashes on the GPU with CuPy, bit for bit the CPU's for the same pixels.

Two kernels per batch of images of one upright size (a camera's photos share one or
two sizes), on the decoded, stored (un-rotated) RGB pixels:

1. ``rows_pass``: reads the upright picture through the EXIF orientation map
   (resize.orientation_map), converts to gray with Pillow's integer formula, and runs
   Pillow's LANCZOS row pass for all four thumbnail widths at once (8 + 9 + 32 + 64 =
   113 output columns) in int32 fixed point, rounding to uint8 like Pillow;
2. ``columns_pass``: the column pass of each thumbnail from those 113 columns.

Long filter windows are cut into chunks of 32 taps shared out among the threads; the
partial sums are integers, so adding them in any order gives Pillow's sum exactly. The
weights are resize.py's (Pillow's, computed on the host). Then
thumbs.codes_from_thumbnails runs on the device for the whole batch, and the rare
median ties are recomputed on the host (thumbs.resolve_ambiguous). Pillow 13 runs the
column pass first for tall images (resize.vertical_first); :meth:`GpuHasher.supports`
says no to those and they are hashed on the CPU.

Importing this module never needs CuPy; :class:`GpuHasher` and :func:`self_check` do (found
through :func:`lumina_plugin.gpu_status.require_cupy`, the one place that looks for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..gpu_status import require_cupy
from ..model import CLASSIC_WORDS, CODE_WORDS
from . import resize
from .cupy_geometry import (
    BoxKernel,
    Queued,
    finish_reduce,
    finish_words,
    queue_boxes,
    reduce_tables,
    working_factor,
    working_size,
)
from .geometry import geometry_codes
from .resize import COLUMNS, THUMB_BYTES, THUMB_SIZES
from .thumb_codes import codes_from_thumbnails, hash_thumbnails, resolve_ambiguous

_SOURCE = r"""
extern "C" {

__device__ __forceinline__ unsigned char clip8(int v) {
    v >>= 22;  /* arithmetic shift, as Pillow's clip8 lookup */
    return (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

/* Block (i, n): upright rows i*rows .. i*rows + rows - 1 (rows <= 8) of image n, whose
   params[n] are (stored RGB pointer, row pitch, pixel stride, a, b, c, d, e, f). The gray
   pixels of those rows go to shared memory, read from stored RGB at
   (a*x + b*y + c, d*x + e*y + f). Each output column j
   of the 113 has counts[j] taps, cut into chunks of 32 (the chunk table): threads take
   chunks, sum them for every row and add the partial sums into shared accumulators.
   Integer sums are exact in any order, so this is Pillow's sequential int32 sum.
   Output is column-major per image: tmp[n][j * height + y]. */
__global__ void rows_pass(const long long* __restrict__ params,
                          int width, int height, int rows,
                          const int* __restrict__ starts, const int* __restrict__ counts,
                          const int* __restrict__ offsets, const int* __restrict__ weights,
                          const int* __restrict__ chunk_col, const int* __restrict__ chunk_first,
                          int nchunks, unsigned char* __restrict__ tmp,
                          int* __restrict__ sums, int factor, int wwork, int hwork)
{
    const long long* q = params + (long long)blockIdx.y * 9;
    const unsigned char* src = (const unsigned char*)q[0];
    const long long pitch = q[1];
    const int pixel = (int)q[2], a = (int)q[3], b = (int)q[4], c = (int)q[5];
    const int d = (int)q[6], e = (int)q[7], f = (int)q[8];
    unsigned char* out = tmp + (long long)blockIdx.y * 113 * height;
    extern __shared__ int smem[];
    int* acc = smem;                                          /* rows x 113 */
    unsigned char* line = (unsigned char*)(smem + rows * 113);  /* rows x width */
    const int y0 = blockIdx.x * rows;
    const int nrows = min(rows, height - y0);
    for (int i = threadIdx.x; i < nrows * 113; i += blockDim.x) acc[i] = 1 << 21;
    for (int i = threadIdx.x; i < nrows * width; i += blockDim.x) {
        const int r = i / width, x = i - r * width, y = y0 + r;
        const long long sx = (long long)a * x + (long long)b * y + c;
        const long long sy = (long long)d * x + (long long)e * y + f;
        const unsigned char* p = src + sy * pitch + sx * pixel;
        line[i] = (unsigned char)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
    __syncthreads();
    for (int q = threadIdx.x; q < nchunks; q += blockDim.x) {
        const int j = chunk_col[q], t0 = chunk_first[q];
        const int n = min(32, counts[j] - t0);
        const int* k = weights + offsets[j] + t0;
        const unsigned char* px = line + starts[j] + t0;
        int s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int t = 0; t < n; ++t) {
            const int w = k[t];
#pragma unroll
            for (int r = 0; r < 8; ++r) {
                if (r < nrows) s[r] += (int)px[r * width + t] * w;
            }
        }
#pragma unroll
        for (int r = 0; r < 8; ++r) {
            if (r < nrows) atomicAdd(&acc[r * 113 + j], s[r]);
        }
    }
    /* The geometry words' working image (factor > 0): the sum of each factor x factor
       block of gray pixels, added atomically from the rows of every block that holds
       some of them (integers: exact in any order); sums[n] is hwork x wwork. */
    if (factor > 0) {
        const int by0 = y0 / factor, nby = (y0 + nrows - 1) / factor - by0 + 1;
        int* dst = sums + (long long)blockIdx.y * hwork * wwork;
        for (int i = threadIdx.x; i < nby * wwork; i += blockDim.x) {
            const int by = by0 + i / wwork, bx = i - (i / wwork) * wwork;
            const int r0 = max(by * factor - y0, 0), r1 = min((by + 1) * factor - y0, nrows);
            const int x0 = bx * factor, x1 = min(x0 + factor, width);
            int s = 0;
            for (int r = r0; r < r1; ++r) {
                const unsigned char* px = line + r * width;
                for (int x = x0; x < x1; ++x) s += px[x];
            }
            atomicAdd(&dst[by * wwork + bx], s);
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nrows * 113; i += blockDim.x) {
        const int r = i / 113, j = i - r * 113;
        out[(long long)j * height + y0 + r] = clip8(acc[i]);
    }
}

/* Block (g, n): output row g of the four thumbnails stacked (8 + 8 + 32 + 64 = 112 rows)
   of image n, written to row dest[n] of out (5256 bytes a row). Its (column, chunk of
   32 taps) items are shared out among the threads; partial sums go into shared
   accumulators, one per column. tmp[n] is column-major (113 x height). */
__global__ void columns_pass(const unsigned char* __restrict__ tmps, int height,
                             const int* __restrict__ starts, const int* __restrict__ counts,
                             const int* __restrict__ offsets, const int* __restrict__ weights,
                             const int* __restrict__ dest, unsigned char* __restrict__ thumbs)
{
    __shared__ int acc[64];
    const int g = blockIdx.x;
    const unsigned char* tmp = tmps + (long long)blockIdx.y * 113 * height;
    unsigned char* out = thumbs + (long long)dest[blockIdx.y] * 5256;
    const int which = g < 8 ? 0 : (g < 16 ? 1 : (g < 48 ? 2 : 3));
    const int first_row[4] = {0, 8, 16, 48};
    const int widths[4] = {8, 9, 32, 64};
    const int column0[4] = {0, 8, 17, 49};
    const int dest0[4] = {0, 64, 136, 1160};
    const int width = widths[which];
    const int n = counts[g];
    const int nchunks = (n + 31) / 32;
    const int* k = weights + offsets[g];
    for (int x = threadIdx.x; x < width; x += blockDim.x) acc[x] = 1 << 21;
    __syncthreads();
    for (int item = threadIdx.x; item < width * nchunks; item += blockDim.x) {
        const int x = item / nchunks, t0 = (item - x * nchunks) * 32;
        const int m = min(32, n - t0);
        const unsigned char* col = tmp + (long long)(column0[which] + x) * height + starts[g] + t0;
        int s = 0;
        for (int t = 0; t < m; ++t) s += (int)col[t] * k[t0 + t];
        atomicAdd(&acc[x], s);
    }
    __syncthreads();
    for (int x = threadIdx.x; x < width; x += blockDim.x)
        out[dest0[which] + (g - first_row[which]) * width + x] = clip8(acc[x]);
}

}
"""

#: Shared memory a block may use: its accumulators and its rows of gray pixels.
_SHARED_BYTES = 48 * 1024
_ACC_BYTES = 8 * COLUMNS * 4
_THREADS = 256
#: Taps per work item of the row pass.
_CHUNK = 32


def _row_tables(width: int) -> tuple[np.ndarray, ...]:
    """resize.row_tables plus the chunk table of the row pass (column, first tap)."""
    starts, counts, offsets, weights = resize.row_tables(width)
    per_column = (counts + _CHUNK - 1) // _CHUNK
    chunk_col = np.repeat(np.arange(len(counts), dtype=np.int32), per_column)
    first = np.arange(len(chunk_col), dtype=np.int32) - np.repeat(np.cumsum(per_column) - per_column, per_column)
    return starts, counts, offsets, weights, chunk_col, (first * _CHUNK).astype(np.int32)


class DeviceImage(NamedTuple):
    """Where an (H, W, C) uint8 image lies in device memory: all the kernels need.

    Read from the ``__cuda_array_interface__`` that CuPy arrays and nvImageCodec's
    decoded images both offer, without wrapping each image in a CuPy array first
    (``cupy.asarray`` cost about a fifth of the GPU process's busy time at 2 MP).
    """

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @classmethod
    def of(cls, image: Any) -> DeviceImage:
        cai = image.__cuda_array_interface__
        shape = tuple(int(n) for n in cai["shape"])
        if cai["typestr"] not in ("|u1", "<u1", ">u1") or len(shape) != 3 or shape[2] < 3:
            raise ValueError(f"expected (H, W, 3) uint8 interleaved RGB, got {shape} {cai['typestr']}")
        strides = tuple(int(n) for n in cai["strides"]) if cai.get("strides") else \
            (shape[1] * shape[2], shape[2], 1)
        if strides[2] != 1:
            raise ValueError(f"expected interleaved RGB, got strides {strides}")
        return cls(int(cai["data"][0]), shape, strides)


class GpuHasher:
    """Compiled kernels and the device copies of the weight tables (per image size)."""

    def __init__(self) -> None:
        """Compile the kernels on the current CUDA device; raises
        :class:`~lumina_plugin.gpu_status.GpuUnavailable` without CuPy or a device."""
        cupy = require_cupy()
        self.cp = cupy
        module = cupy.RawModule(code=_SOURCE)
        self._rows = module.get_function("rows_pass")
        self._columns = module.get_function("columns_pass")
        self._row_tables: dict[int, tuple[Any, ...]] = {}
        self._column_tables: dict[int, tuple[Any, ...]] = {}
        self._reduce_tables: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._boxes = BoxKernel(cupy)
        self._tmp: Any = None

    @staticmethod
    def supports(width: int, height: int, orientation: int) -> bool:
        """Whether the kernels reproduce Pillow for a stored image of this size."""
        uw, uh, _ = resize.orientation_map(orientation, width, height)
        if uw > _SHARED_BYTES - _ACC_BYTES or uw < 1 or uh < 1:
            return False
        return not any(resize.vertical_first((uw, uh), size) for size in THUMB_SIZES)

    def _tables(self, cache: dict[int, tuple[Any, ...]], size: int, make: Any) -> tuple[Any, ...]:
        tables = cache.get(size)
        if tables is None:
            if len(cache) > 64:  # a library has few sizes; keep the cache small anyway
                cache.clear()
            tables = tuple(self.cp.asarray(t) for t in make(size))
            cache[size] = tables
        return tables

    def thumbnails(self, images: Sequence[tuple[Any, int]]) -> Any:
        """(N, THUMB_BYTES) uint8 device array of the thumbnails of N device images.

        ``images``: (image, EXIF orientation) pairs, each image (H, W, C>=3) uint8 RGB as
        stored: a CuPy array, anything with a CUDA array interface, or a
        :class:`DeviceImage`; keep them alive until the result is used. Two kernel
        launches per distinct upright size (a camera's photos share one or two). Runs on
        the current CuPy stream.
        """
        return self._thumbnails(images, False)[0]

    def _thumbnails(self, images: Sequence[tuple[Any, int]], working: bool) -> tuple[Any, list[Queued]]:
        """The thumbnails and, with ``working``, the geometry words' working images of each
        upright size, their content boxes queued (cupy_geometry.queue_boxes)."""
        cp = self.cp
        out = cp.empty((len(images), THUMB_BYTES), dtype=cp.uint8)
        groups: dict[tuple[int, int], list[tuple[int, list[int]]]] = {}
        for n, (image, orientation) in enumerate(images):
            rgb = image if isinstance(image, DeviceImage) else DeviceImage.of(image)
            height, width = rgb.shape[:2]
            uw, uh, params = resize.orientation_map(orientation, width, height)
            groups.setdefault((uw, uh), []).append(
                (n, [rgb.ptr, rgb.strides[0], rgb.strides[1], *params]))
        queued: list[Queued] = []
        for (uw, uh), members in groups.items():
            sums = self._launch(uw, uh, members, out, working)
            if sums is not None:
                tables = self._reduce_tables.get((uh, uw))
                if tables is None:
                    if len(self._reduce_tables) > 64:
                        self._reduce_tables.clear()
                    amend, multiplier = reduce_tables(uh, uw)
                    tables = self._reduce_tables[(uh, uw)] = (cp.asarray(amend), cp.asarray(multiplier))
                index = np.array([n for n, _ in members], dtype=np.int64)
                queued += queue_boxes(cp, index, finish_reduce(cp, sums, uh, uw, tables), self._boxes)
        return out, queued

    def _launch(self, uw: int, uh: int, members: list[tuple[int, list[int]]], out: Any, working: bool) -> Any:
        """Both passes for the images of one upright size; with ``working``, returns the
        block sums of their working images ((count, hw, ww) int32, cupy_geometry)."""
        cp, i32 = self.cp, np.int32
        count = len(members)
        rows = max(1, min(8, (_SHARED_BYTES - _ACC_BYTES) // uw))
        if self._tmp is None or self._tmp.size < count * uh * COLUMNS:
            self._tmp = cp.empty(count * uh * COLUMNS, dtype=cp.uint8)
        params = cp.asarray(np.array([p for _, p in members], dtype=np.int64))
        dest = cp.asarray(np.array([n for n, _ in members], dtype=np.int32))
        r_start, r_count, r_offset, r_weights, r_col, r_first = self._tables(self._row_tables, uw, _row_tables)
        c_start, c_count, c_offset, c_weights = self._tables(self._column_tables, uh, resize.column_tables)
        hw, ww = working_size(uh, uw)
        sums = cp.zeros((count, hw, ww) if working else (1,), dtype=cp.int32)
        factor = working_factor(uh, uw) if working else 0
        self._rows(((uh + rows - 1) // rows, count), (_THREADS,),
                   (params, i32(uw), i32(uh), i32(rows), r_start, r_count, r_offset, r_weights,
                    r_col, r_first, i32(len(r_col)), self._tmp, sums, i32(factor), i32(ww), i32(hw)),
                   shared_mem=rows * COLUMNS * 4 + rows * uw)
        self._columns((112, count), (_THREADS,),
                      (self._tmp, i32(uh), c_start, c_count, c_offset, c_weights, dest, out))
        return sums if working else None

    def hash_async(self, images: Sequence[tuple[Any, int]]) -> Pending:
        """Queue the thumbnails, the four codes, the working images and their content
        boxes of N device images on the current stream; :meth:`finish` waits for them.
        Lets the caller decode the next batch meanwhile."""
        thumbs, geometry = self._thumbnails(images, True)
        codes, ambiguous = codes_from_thumbnails(self.cp, thumbs)
        return Pending(codes, ambiguous, thumbs, geometry, self.cp.cuda.get_current_stream().record())

    def finish(self, pending: Pending) -> np.ndarray:
        """(N, CODE_WORDS) uint64 codes on the host: the four hashes (the rare median ties
        resolved there), then the geometry words (cupy_geometry.finish_words: their
        coefficients run on the current stream, near-zero ones decided on the host)."""
        # Wait for the stream the work was queued on: the copies below run on whatever
        # stream is current here, and a non-blocking stream's kernels are not ordered
        # before them (without this wait, 12 MP codes were copied half-made).
        pending.queued.synchronize()
        codes_h, ambiguous_h = self.cp.asnumpy(pending.codes), self.cp.asnumpy(pending.ambiguous)
        if ambiguous_h.any():
            resolve_ambiguous(codes_h, ambiguous_h, self.cp.asnumpy(pending.thumbs))
        out = np.empty((len(codes_h), CODE_WORDS), np.uint64)
        out[:, :CLASSIC_WORDS] = codes_h
        finish_words(self.cp, pending.geometry, out[:, CLASSIC_WORDS:])
        return out

    def hash(self, images: Sequence[tuple[Any, int]]) -> np.ndarray:
        """(N, CODE_WORDS) uint64 codes of N device images (see :meth:`thumbnails`), on the host."""
        if not images:
            return np.empty((0, CODE_WORDS), np.uint64)
        return self.finish(self.hash_async(images))


class Pending(NamedTuple):
    """What :meth:`GpuHasher.hash_async` queued: the four codes and their tie flags, the
    thumbnails (for the ties), the geometry chunks, and the event after the last kernel."""

    codes: Any
    ambiguous: Any
    thumbs: Any
    geometry: list[Queued]
    queued: Any


def self_check(hasher: GpuHasher) -> str | None:
    """Hash a synthetic photo on the GPU and in NumPy; None if they agree, else why not.

    Covers the gray formula, both passes, a rotated orientation, the codes and the
    geometry words: the photo (701x523, odd sizes: the reduce's partial blocks) has a dark
    bar on one side, so the content box is not the whole image.
    """
    rng = np.random.default_rng(20260101)
    base = rng.integers(0, 256, (24, 32, 3)).astype(np.float64)
    ys, xs = np.mgrid[0:523, 0:701]
    smooth = base[(ys * 24) // 523, (xs * 32) // 701]
    smooth[:, :48] = 10.0  # a bar, as a letterboxed copy has
    rgb = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    problems = []
    for orientation in (1, 6):
        gray = resize.rgb_to_gray(resize.upright(rgb, orientation))
        want_thumbs = resize.thumbnails(gray)[None]
        got_thumbs = hasher.cp.asnumpy(hasher.thumbnails([(hasher.cp.asarray(rgb), orientation)]))
        if not np.array_equal(got_thumbs, want_thumbs):
            problems.append(f"thumbnails differ (orientation {orientation}, "
                            f"{int((got_thumbs != want_thumbs).sum())} pixels)")
            continue
        got = hasher.hash([(hasher.cp.asarray(rgb), orientation)])[0]
        if not np.array_equal(got[:CLASSIC_WORDS], hash_thumbnails(want_thumbs)[0]):
            problems.append(f"codes differ (orientation {orientation})")
        if not np.array_equal(got[CLASSIC_WORDS:], geometry_codes(gray)):
            problems.append(f"geometry words differ (orientation {orientation})")
    return "; ".join(problems) or None
