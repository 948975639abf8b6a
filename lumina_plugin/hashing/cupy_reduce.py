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
