"""The four 64-bit hashes of one gray image, with NumPy and PyWavelets.

Each function gives the same bits as ``imagehash`` 4.3 when handed the same image
(imagehash converts to "L" itself; converting first changes nothing):

- aHash: 8x8 LANCZOS; a bit is set where the pixel is above the mean.
- dHash: 9x8 LANCZOS; a bit is set where a pixel is brighter than its left neighbour.
- pHash: 32x32 LANCZOS; 2-D DCT-II; the top-left 8x8 coefficients above their median.
  imagehash uses scipy's FFT-based DCT; we multiply by the cosine matrix (no SciPy
  needed). The two agree to about 1e-12, so a bit could differ only when a
  coefficient equals the median to that precision (flat, synthetic images).
- wHash: resized to a FIXED ``WHASH_IMAGE_SCALE`` = 64 px square (imagehash's default
  scales to the largest power of two below the image size, about 2048 px for a
  camera photo and 0.5 s of work; pass ``image_scale=64`` to imagehash to compare);
  Haar wavelet, the lowest band removed, then 3 levels; the 8x8 LL band above its median.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pywt
from PIL import Image

from . import resize
from .codes import bits_to_code

WHASH_IMAGE_SCALE: Final[int] = 64
_LANCZOS = Image.Resampling.LANCZOS


def _dct_matrix(n: int, keep: int) -> np.ndarray:
    # Unnormalised DCT-II rows, as scipy.fftpack.dct(type=2, norm=None): 2*cos(pi*k*(2i+1)/2n).
    k = np.arange(keep)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT32x8: Final[np.ndarray] = _dct_matrix(32, 8)


def ahash(gray: Image.Image) -> int:
    return ahash_pixels(np.asarray(gray.resize((8, 8), _LANCZOS)))


def dhash(gray: Image.Image) -> int:
    return dhash_pixels(np.asarray(gray.resize((9, 8), _LANCZOS)))


def phash(gray: Image.Image) -> int:
    return phash_pixels(np.asarray(gray.resize((32, 32), _LANCZOS)))


def whash(gray: Image.Image) -> int:
    scale = WHASH_IMAGE_SCALE
    return whash_pixels(np.asarray(gray.resize((scale, scale), _LANCZOS)))


# The same four from their thumbnails (uint8 arrays), as the GPU path hands them back.

def ahash_pixels(thumb: np.ndarray) -> int:
    """aHash of the 8x8 thumbnail."""
    pixels = np.asarray(thumb, dtype=np.int64)
    # p > mean  <=>  64*p > sum, exact in integers.
    return bits_to_code(pixels * pixels.size > pixels.sum())


def dhash_pixels(thumb: np.ndarray) -> int:
    """dHash of the 9x8 (8 rows of 9) thumbnail."""
    pixels = np.asarray(thumb, dtype=np.int16)
    return bits_to_code(pixels[:, 1:] > pixels[:, :-1])


def phash_pixels(thumb: np.ndarray) -> int:
    """pHash of the 32x32 thumbnail."""
    pixels = np.asarray(thumb, dtype=np.float64)
    low = _DCT32x8 @ pixels @ _DCT32x8.T
    return bits_to_code(low > np.median(low))


def whash_pixels(thumb: np.ndarray) -> int:
    """wHash of the WHASH_IMAGE_SCALE-square thumbnail, with PyWavelets as imagehash."""
    pixels = np.asarray(thumb, dtype=np.float64) / 255.0
    max_level = int(np.log2(pixels.shape[0]))
    coeffs = pywt.wavedec2(pixels, "haar", level=max_level)
    coeffs = list(coeffs)
    coeffs[0] = coeffs[0] * 0  # drop the overall brightness, as imagehash's remove_max_haar_ll
    pixels = pywt.waverec2(coeffs, "haar")
    low = pywt.wavedec2(pixels, "haar", level=max_level - 3)[0]
    return bits_to_code(low > np.median(low))


HASHERS: Final = (ahash, dhash, phash, whash)


def hash_gray(gray: Image.Image) -> np.ndarray:
    """All four codes of a mode "L" image, as uint64 in ALGORITHMS order: those of
    :data:`HASHERS`, with the four LANCZOS thumbnails made in one pass over the pixels
    (hashing/resize.py: the same bytes as Pillow's resizes, in about half the time)."""
    if gray.mode != "L":
        gray = gray.convert("L")
    flat = resize.thumbnails(np.asarray(gray))
    a, d, p, w = resize.THUMB_OFFSETS
    scale = WHASH_IMAGE_SCALE
    return np.array([ahash_pixels(flat[a:d].reshape(8, 8)), dhash_pixels(flat[d:p].reshape(8, 9)),
                     phash_pixels(flat[p:w].reshape(32, 32)), whash_pixels(flat[w:].reshape(scale, scale))],
                    dtype=np.uint64)
