"""Decode JPEGs on the GPU's hardware JPEG engines with nvImageCodec (an optional dependency).

The engines take baseline and extended sequential Huffman JPEGs with 8-bit samples and
three components (YCbCr): what cameras and phones write. Anything else (progressive,
arithmetic or lossless JPEG, gray or CMYK JPEG, PNG, WebP, HEIC...) is recognised from
its header by :func:`gpu_jpeg_size` before any upload and decoded by Pillow instead, as
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

from typing import Any, Sequence

from .jpeg_header import read_jpeg_header


def gpu_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as stored when ``data`` is a whole JPEG the engines take, else None.

    Baseline or extended sequential Huffman, 8-bit, three components, and an end-of-image
    marker after the scan: a truncated file goes to Pillow, which refuses it, so both
    paths agree on what is an error. Cheap: the header is walked, nothing is decoded
    (decode/jpeg_header.py).
    """
    header = read_jpeg_header(data)
    if header is None or not header.engine_ready:
        return None
    return header.width, header.height


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
