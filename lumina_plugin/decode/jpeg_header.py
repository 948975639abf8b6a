"""A JPEG's header read without Pillow: frame size, kind, where the scan starts, orientation.

The GPU path reads thousands of JPEGs a second in one process, and Pillow's ``open`` plus
``getexif`` costs a few hundred microseconds of Python (holding the GIL) per file: at 2 MP
that alone capped the GPU process near half of what the JPEG engines decode. Walking the
marker segments in plain Python costs about ten microseconds, so the GPU path reads the
header here and leaves Pillow for the rare file this module cannot vouch for.

The orientation follows Pillow's rule (``Image.getexif()``, which decode/photo.py uses):
the Orientation tag of IFD0 in the first ``Exif\\0\\0`` APP1 segment; a value outside
1..8 counts as 1; without that tag Pillow looks into the XMP packet, so when an XMP
segment is present :attr:`JpegHeader.orientation` is None ("ask Pillow"), as it is for
any EXIF this reader does not fully understand. Whatever this says is checked again
against the CPU's facts before a GPU code is used (ingest/gpu_processes.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: SOF markers of baseline and extended sequential Huffman JPEGs (what the engines take).
SEQUENTIAL_SOF = (0xC0, 0xC1)
#: Markers that start a frame of any other kind (progressive, lossless, arithmetic...).
OTHER_SOF = (0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)

_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    components: int
    precision: int
    #: Baseline or extended sequential Huffman (SOF0/SOF1), not progressive or lossless.
    sequential: bool
    #: Offset of the first start-of-scan marker: every header segment lies before it.
    scan_offset: int
    #: EXIF orientation as Pillow reads it, or None when only Pillow can tell (see above).
    orientation: int | None
    #: An end-of-image marker follows the first scan (the file is not cut short).
    complete: bool
    #: The header holds an ``Exif\0\0`` APP1 segment.
    has_exif: bool = False

    @property
    def camera_frame(self) -> bool:
        """An 8-bit, three-component sequential frame: what cameras write (Pillow's mode RGB)."""
        return self.sequential and self.precision == 8 and self.components == 3

    @property
    def engine_ready(self) -> bool:
        """A whole camera frame (see :attr:`camera_frame`): what the GPU's engines decode."""
        return self.camera_frame and self.complete


def read_jpeg_header(data: bytes) -> JpegHeader | None:
    """The header of a JPEG's bytes (the whole file, or its head up to the first scan),
    or None when ``data`` does not start like a JPEG or its segments are broken.

    (Inside entropy-coded data 0xFF is always stuffed, so the first FFD9 after the scan
    is the image's end; searching from the file's end finds it at once, or within any
    trailer a phone appends, such as a motion photo's video.)
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos, end = 2, len(data)
    frame: tuple[int, int, int, int, bool] | None = None
    exif: bytes | None = None
    xmp = False
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
        if length < 2:
            return None
        if marker == 0xDA:
            if frame is None:
                return None
            width, height, components, precision, sequential = frame
            orientation = _orientation(exif, xmp)
            return JpegHeader(width, height, components, precision, sequential, pos, orientation,
                              complete=data.rfind(b"\xff\xd9") > pos, has_exif=exif is not None)
        body = data[pos + 4:pos + 2 + length]
        if marker in SEQUENTIAL_SOF or marker in OTHER_SOF:
            if len(body) < 6:
                return None
            height, width = (body[1] << 8) | body[2], (body[3] << 8) | body[4]
            if width == 0 or height == 0:
                return None
            frame = (width, height, body[5], body[0], marker in SEQUENTIAL_SOF)
        elif marker == 0xE1:
            if body.startswith(_EXIF):
                if exif is None:  # Pillow keeps the first one
                    exif = body[len(_EXIF):]
            elif body.startswith(_XMP):
                xmp = True
        pos += 2 + length
    return None


def _orientation(exif: bytes | None, xmp: bool) -> int | None:
    if exif is None:
        return None if xmp else 1
    value = _ifd0_orientation(exif)
    if value == 0:  # no Orientation tag in IFD0: Pillow would look into the XMP
        return None if xmp else 1
    if value is None:
        return None
    return value if 1 <= value <= 8 else 1


def _ifd0_orientation(tiff: bytes) -> int | None:
    """Orientation (tag 0x0112) of IFD0 in a TIFF structure; 0 when absent, None when the
    structure or the tag's type is anything but plain (Pillow then decides)."""
    if len(tiff) < 8:
        return None
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None:
        return None
    magic, offset = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or offset < 8 or offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    if offset + 2 + 12 * count > len(tiff):
        return None
    found = 0
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
        if tag != 0x0112:
            continue
        if found or n != 1 or kind not in (3, 4):  # repeated, a list, or an odd type
            return None
        found = struct.unpack_from(order + ("H" if kind == 3 else "I"), tiff, entry + 8)[0]
        if found == 0:
            return None
    return found
