"""Decode JPEGs on the GPU's hardware JPEG engines with nvImageCodec (an optional dependency).

The engines take baseline and extended sequential Huffman JPEGs with 8-bit samples and
three components (YCbCr): what cameras and phones write. Anything else (progressive,
arithmetic or lossless JPEG, gray or CMYK JPEG, PNG, WebP, HEIC...) is recognised from
its header (:func:`~lumina_plugin.decode.jpeg_header.read_jpeg_header`, ``engine_ready``;
the GPU process's reader asks it) before any upload and decoded by Pillow instead, as
is any file the engines reject.

Pixels are decoded as stored (``apply_exif_orientation=False``): the hash kernels apply
our own orientation rule (decode/photo.py) so both paths turn a photo the same way.
The engines' output can differ from libjpeg's by a level here and there (measured on
the H100: at most 1 level, on a few pixels), so a code could in principle differ from
the CPU's in a bit; on 256 photos (128 at 12 MP, 128 at 2 MP) none did
(docs/benchmarks.md).

Importing this module never needs a GPU; :class:`GpuJpegDecoder` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class GpuJpegDecoder:
    """One nvImageCodec decoder on the hardware engines, decoding batches to device RGB.

    Creating it takes about a second; keep one per process.
    """

    def __init__(self, device_id: int = 0) -> None:
        from nvidia import nvimgcodec  # optional dependency: ImportError when absent

        self._nv = nvimgcodec
        self._decoder = nvimgcodec.Decoder(
            device_id=device_id,
            backends=[nvimgcodec.Backend(nvimgcodec.BackendKind.HW_GPU_ONLY)],
        )
        self._params = nvimgcodec.DecodeParams(
            apply_exif_orientation=False, color_spec=nvimgcodec.ColorSpec.SRGB,
            allow_any_depth=False,
        )

    def decode(self, files: Sequence[bytes], cuda_stream: int = 0) -> list[Any | None]:
        """Decode a batch of JPEG files; each result is an nvImageCodec Image holding
        (height, width, 3) uint8 RGB on the device (CuPy reads it through
        ``__cuda_array_interface__``) or None where the engines refused the file.
        Keep ``files`` alive until the images are used."""
        if not files:
            return []
        streams = [self._nv.CodeStream(data) for data in files]
        images = list(self._decoder.decode(streams, params=self._params, cuda_stream=cuda_stream))
        if len(images) == len(files):
            return images
        # nvImageCodec leaves the files it could not decode out of the list, so the rest
        # no longer line up with their files: decode them one by one to know which failed.
        return [self._decoder.decode(stream, params=self._params, cuda_stream=cuda_stream)
                for stream in streams]
