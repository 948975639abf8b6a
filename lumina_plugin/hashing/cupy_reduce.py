"""Reduced decoding on the GPU: the decoded RGB turned gray and box-reduced, as the CPU does.

nvImageCodec decodes a JPEG at full size (its Python API offers no scaled decode), so in
"reduced" mode (settings/hashing.py ``decode``) the GPU process reduces right after the
decode: Pillow's gray formula, then the sum of each ``f`` x ``f`` block (partial blocks at
the right and bottom edges kept) rounded as Pillow's ``Image.reduce`` rounds it, ``f`` =
model.reduced_factor of the stored size. That is decode/photo.py's reduced path for every
source that is not a JPEG (``reduce_gray(to_gray(im), f)``), bit for bit; for a JPEG the
CPU takes the luma from libjpeg's DCT-domain scaling instead, which differs from a block
mean by a grey level here and there (docs/gpu.md has the measured code distances).

Written once for NumPy and CuPy (``xp``), so CI proves it equal to Pillow without a GPU.
The result is (h, w, 3) uint8 with the gray in all three channels: the hash kernels
(hashing/cupy_hasher.py) read RGB and Pillow's formula gives the gray back exactly
((g * 19595 + g * 38470 + g * 7471 + 0x8000) >> 16 == g, the weights sum to 65536).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


@functools.lru_cache(maxsize=64)
def reduce_tables(height: int, width: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(amend, multiplier), both (ceil(height/f), ceil(width/f)) uint64: Pillow's rounding of
    each block's sum in ``reduce`` (``n // 2`` and ``division_UINT32(n, 8)``, n = the
    block's pixel count; the same constants as cupy_geometry.reduce_tables)."""
    hr, wr = -(-height // factor), -(-width // factor)
    ny = np.minimum(factor, height - np.arange(hr) * factor)
    nx = np.minimum(factor, width - np.arange(wr) * factor)
    n = (ny[:, None] * nx[None, :]).astype(np.uint64)
    multiplier = (np.float32(4294967296.0) / (n * np.uint64(256)).astype(np.float32)).astype(np.uint64)
    amend = n // np.uint64(2)
    amend.flags.writeable = multiplier.flags.writeable = False
    return amend, multiplier


#: reduce_tables already copied to the device, per (array module, height, width, factor): a
#: camera's photos share a few sizes, and a copy from host memory waits for the stream.
_ON_DEVICE: dict[tuple[str, int, int, int], tuple[Any, Any]] = {}


def _tables_on(xp: Any, height: int, width: int, factor: int) -> tuple[Any, Any]:
    if xp is np:
        return reduce_tables(height, width, factor)
    key = (xp.__name__, height, width, factor)
    tables = _ON_DEVICE.get(key)
    if tables is None:
        if len(_ON_DEVICE) > 64:
            _ON_DEVICE.clear()
        amend, multiplier = reduce_tables(height, width, factor)
        tables = _ON_DEVICE[key] = (xp.asarray(amend), xp.asarray(multiplier))
    return tables


def reduce_rgb(xp: Any, rgb: Any, factor: int) -> Any:
    """(H, W, >=3) uint8 RGB -> (ceil(H/f), ceil(W/f), 3) uint8: Pillow's ``convert("L")``
    then ``reduce(factor)``, the gray repeated in three channels."""
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    pixels = rgb[:, :, :3].astype(xp.uint32)
    gray = (pixels[:, :, 0] * 19595 + pixels[:, :, 1] * 38470 + pixels[:, :, 2] * 7471 + 0x8000) >> 16
    if factor > 1:
        hr, wr = -(-height // factor), -(-width // factor)
        padded = xp.zeros((hr * factor, wr * factor), dtype=xp.uint32)
        padded[:height, :width] = gray
        sums = padded.reshape(hr, factor, wr, factor).sum(axis=(1, 3), dtype=xp.uint64)
        amend, multiplier = _tables_on(xp, height, width, factor)
        v = (sums + amend) * multiplier
        gray = (v & xp.uint64(0xFFFFFFFF)) >> xp.uint64(24)
    gray = gray.astype(xp.uint8)
    return xp.ascontiguousarray(xp.repeat(gray[:, :, None], 3, axis=2))


_REDUCE_SOURCE = r"""
extern "C" __global__ void reduce_gray(const long long* params, int height, int width, int factor,
                                       int hr, int wr, const unsigned long long* multiplier,
                                       unsigned char* out) {
    // params per image: (pointer, row stride, pixel stride) of its (H, W, >=3) uint8 RGB.
    int image = blockIdx.y;
    int at = blockIdx.x * blockDim.x + threadIdx.x;
    if (at >= hr * wr) return;
    int oy = at / wr, ox = at % wr;
    const unsigned char* rgb = (const unsigned char*)params[3 * image];
    long long row_stride = params[3 * image + 1], pixel_stride = params[3 * image + 2];
    int y0 = oy * factor, x0 = ox * factor;
    int y1 = min(y0 + factor, height), x1 = min(x0 + factor, width);
    unsigned long long sum = 0;
    for (int y = y0; y < y1; ++y) {
        const unsigned char* row = rgb + y * row_stride;
        for (int x = x0; x < x1; ++x) {
            const unsigned char* p = row + x * pixel_stride;
            // Pillow's convert("L"): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
            sum += ((unsigned int)p[0] * 19595u + (unsigned int)p[1] * 38470u
                    + (unsigned int)p[2] * 7471u + 0x8000u) >> 16;
        }
    }
    unsigned long long n = (unsigned long long)((y1 - y0) * (x1 - x0));
    // Pillow's reduce rounding (reduce_tables): ((sum + n / 2) * multiplier[n]) & 0xFFFFFFFF >> 24
    unsigned char v = (unsigned char)((((sum + n / 2) * multiplier[n]) & 0xFFFFFFFFull) >> 24);
    unsigned char* dest = out + ((long long)image * hr * wr + at) * 3;
    dest[0] = v; dest[1] = v; dest[2] = v;
}
"""

_THREADS = 256


def multipliers(factor: int) -> np.ndarray:
    """(factor * factor + 1,) uint64: :func:`reduce_tables`' multiplier for a block of n
    pixels at index n (the same float32 arithmetic), for the batch kernel."""
    n = np.arange(factor * factor + 1, dtype=np.uint64)
    n[0] = 1  # (no block is empty; keeps the division defined)
    return (np.float32(4294967296.0) / (n * np.uint64(256)).astype(np.float32)).astype(np.uint64)


class BatchReducer:
    """:func:`reduce_rgb` for a whole batch of device images in one kernel launch per
    (size, factor): the same bits, without a dozen CuPy calls per photo (at 2 MP those
    calls held the GPU process to about 2,400 photos/s, docs/benchmarks.md)."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self._kernel = cp.RawModule(code=_REDUCE_SOURCE).get_function("reduce_gray")
        self._multipliers: dict[int, Any] = {}

    def reduce(self, images: list[tuple[int, tuple[int, ...], tuple[int, ...]]],
               factors: list[int]) -> tuple[list[tuple[int, tuple[int, ...], tuple[int, ...]]], list[Any]]:
        """``images``: (pointer, shape, strides) of (H, W, >=3) uint8 RGB images on the device
        (hashing.cupy_hasher.DeviceImage), ``factors`` their reduction factors. Returns the
        reduced images as (pointer, shape, strides) in the same order, and the device arrays
        that hold them (keep them alive until the kernels that read them are done). Runs on
        the current CuPy stream."""
        cp = self.cp
        groups: dict[tuple[int, int, int], list[int]] = {}
        for n, ((_, shape, _), factor) in enumerate(zip(images, factors)):
            groups.setdefault((int(shape[0]), int(shape[1]), int(factor)), []).append(n)
        out: list[Any] = [None] * len(images)
        held: list[Any] = []
        for (height, width, factor), members in groups.items():
            hr, wr = -(-height // factor), -(-width // factor)
            dest = cp.empty((len(members), hr, wr, 3), dtype=cp.uint8)
            params = cp.asarray(np.array([[images[n][0], images[n][2][0], images[n][2][1]] for n in members],
                                         dtype=np.int64))
            mult = self._multipliers.get(factor)
            if mult is None:
                mult = self._multipliers[factor] = cp.asarray(multipliers(factor))
            i32 = np.int32
            self._kernel(((hr * wr + _THREADS - 1) // _THREADS, len(members)), (_THREADS,),
                         (params, i32(height), i32(width), i32(factor), i32(hr), i32(wr), mult, dest))
            held += [dest, params]
            for k, n in enumerate(members):
                out[n] = (int(dest.data.ptr) + k * hr * wr * 3, (hr, wr, 3), (wr * 3, 3, 1))
        return out, held
