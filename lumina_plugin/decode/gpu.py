"""Decode JPEGs on the GPU's hardware JPEG engines with nvImageCodec (an optional dependency).

The engines take baseline and extended sequential Huffman JPEGs with 8-bit samples and
three components (YCbCr): what cameras and phones write. Anything else (progressive,
arithmetic or lossless JPEG, gray or CMYK JPEG, PNG, WebP, HEIC...) is recognised from
its header by :func:`gpu_jpeg_size` before any upload and decoded by Pillow instead, as
is any file the engines reject.

Pixels are decoded as stored (``apply_exif_orientation=False``): the hash kernels apply
our own orientation rule (decode/cpu.py) so both paths turn a photo the same way.
The engines' output can differ from libjpeg's by a level here and there (measured on
the H100: at most 1 level, on a few pixels), so a code could in principle differ from
the CPU's in a bit; on 256 photos (128 at 12 MP, 128 at 2 MP) none did
(docs/benchmarks-hashing.md).

Importing this module never needs a GPU; :class:`GpuJpegDecoder` does.
"""

from __future__ import annotations

from typing import Any, Sequence

#: SOF markers of the JPEGs the hardware engines decode: baseline and extended sequential.
_GPU_SOF = (0xC0, 0xC1)
#: Markers that start a frame of any other kind (progressive, lossless, arithmetic...).
_OTHER_SOF = (0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def gpu_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as stored when ``data`` is a whole JPEG the engines take, else None.

    Walks the marker segments to the frame header (SOF) and the first scan (SOS), then
    checks that an end-of-image marker follows the scan: a truncated file goes to Pillow,
    which refuses it, so both paths agree on what is an error. (Inside entropy-coded
    data 0xFF is always stuffed, so the first FFD9 after the scan is the image's end;
    searching from the file's end finds it at once, or within any trailer a phone
    appends, such as a motion photo's video.) Cheap: no decode.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos, end = 2, len(data)
    size: tuple[int, int] | None = None
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        if marker == 0xD9:  # end of image before any scan
            return None
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker == 0xDA:  # start of scan: the frame must be known and the image complete
            return size if size is not None and data.rfind(b"\xff\xd9") > pos else None
        if marker in _GPU_SOF:
            if pos + 10 > end:
                return None
            precision = data[pos + 4]
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            components = data[pos + 9]
            if precision != 8 or components != 3 or width == 0 or height == 0:
                return None
            size = (width, height)
        elif marker in _OTHER_SOF:
            return None
        pos += 2 + length
    return None


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
        return list(self._decoder.decode(streams, params=self._params, cuda_stream=cuda_stream))
