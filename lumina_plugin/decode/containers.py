"""Where the JPEGs are inside a RAW file: TIFF-based formats, Fujifilm RAF, Canon CR3.

Nothing here decodes pixels or needs a dependency: it reads directories and headers,
checks every offset against the file, and lists the embedded JPEGs with their sizes
(read from each JPEG's frame header). decode/raw.py picks one and applies its rules.

What is found where:

- TIFF-based (DNG, CR2, NEF, NRW, ARW, SRW, PEF, ORF, RW2, 3FR, ERF, IIQ, KDC...): in
  every directory (IFD0's chain, SubIFDs, the Exif IFD), ``JPEGInterchangeFormat`` /
  ``JPEGInterchangeFormatLength``, and a single strip (``StripOffsets`` /
  ``StripByteCounts``) with Compression 6 or 7 (DNG previews, CR2's full-size JPEG in
  IFD0); RW2's ``JpgFromRaw`` tag (0x002E) in IFD0. Lossless JPEGs (the sensor data of
  CR2 and many DNGs, also Compression 6/7) are told apart by their frame header (SOF3)
  and skipped. Previews that only the makernote points to (ORF, most PEF) are not
  read here: rawpy finds them.
- RAF: the header gives the JPEG's offset and length (bytes 84-91, big-endian).
- CR3 (ISO base media): the full-size JPEG is track 1's only sample (``stsz``/``co64``);
  the PRVW box holds a 1620x1080 one and THMB a 160x120 one. Orientation, camera and
  time come from the CMT1/CMT2 boxes, which are TIFF directories.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .exif import ExifFacts, _parse_subsec, _parse_time
from .tiff_ifd import (
    TAG_COMPRESSION,
    TAG_DNG_VERSION,
    TAG_JPEG_LENGTH,
    TAG_JPEG_OFFSET,
    TAG_MAKE,
    TAG_MODEL,
    TAG_ORIENTATION,
    TAG_RW2_JPEG,
    TAG_STRIP_BYTE_COUNTS,
    TAG_STRIP_OFFSETS,
    TiffError,
    TiffFile,
)

#: Frame markers of JPEGs Pillow decodes (baseline, extended, progressive); SOF3 is lossless.
_PICTURE_SOF = (0xC0, 0xC1, 0xC2)
_OTHER_SOF = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
#: Starts of files Pillow reads: such a file under a RAW extension is decoded as what it is.
_PILLOW_MAGICS = (b"\xff\xd8", b"\x89PNG", b"RIFF", b"GIF8", b"BM")
_LABELS = {"ifd0": "IFD", "next": "IFD", "sub": "SubIFD", "exif": "Exif IFD"}
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_PRVW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")


class RawError(ValueError):
    """A RAW file that cannot be hashed; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Jpeg:
    data: bytes
    width: int
    height: int
    source: str


class Container:
    """One RAW file's embedded JPEGs, orientation and (CR3 only) EXIF facts."""

    def __init__(self, data: bytes, format: str, name: str) -> None:
        self.data = data
        #: "DNG" or "RAW": the names the keeper's format ranks use.
        self.format = format
        #: The file format for messages: DNG, CR2, CR3, NEF, RAF, RW2...
        self.name = name
        self.orientation: int | None = None
        self.exif: ExifFacts | None = None
        #: Why a JPEG the file points to was not listed (truncated file...), for messages.
        self.problem: str | None = None
        self._spans: list[tuple[int, int, str]] = []
        self._best: Jpeg | None | bool = False  # False: not computed yet

    def add(self, offset: int, length: int, source: str) -> None:
        if offset <= 0 or length <= 0:
            return
        if offset + length > len(self.data):
            self.problem = f"the JPEG of {source} runs past the end of the file: truncated?"
            return
        if (offset, length) not in [(o, n) for o, n, _ in self._spans]:
            self._spans.append((offset, length, source))

    def best_jpeg(self) -> Jpeg | None:
        """The largest embedded JPEG Pillow can decode (by pixels, then bytes), or None."""
        if self._best is False:
            best: tuple[tuple[int, int], int, int, str, tuple[int, int]] | None = None
            for offset, length, source in self._spans:
                size = jpeg_size(self.data, offset, offset + length)
                if size is None:
                    continue
                rank = (size[0] * size[1], length)
                if best is None or rank > best[0]:
                    best = (rank, offset, length, source, size)
            self._best = None if best is None else Jpeg(
                self.data[best[1]:best[1] + best[2]], best[4][0], best[4][1], best[3])
        return self._best  # type: ignore[return-value]


def jpeg_size(data: bytes, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """(width, height) of a JPEG Pillow decodes (baseline/extended/progressive) at
    ``data[start:end]``, from its frame header; None for anything else (lossless...)."""
    end = len(data) if end is None else min(end, len(data))
    if end - start < 4 or data[start] != 0xFF or data[start + 1] != 0xD8:
        return None
    pos = start + 2
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or a scan before any frame header
            return None
        if marker in _PICTURE_SOF:
            if pos + 9 > end:
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return (width, height) if width and height else None
        if marker in _OTHER_SOF:
            return None
        pos += 2 + ((data[pos + 2] << 8) | data[pos + 3])
    return None


def identify(data: bytes, ext: str, raw_ext: bool) -> Container | None:
    """The RAW container of ``data`` (``ext``: the file's lower-case extension, ``raw_ext``:
    whether it is a RAW one), or None for a file that is not a RAW."""
    if data.startswith(b"FUJIFILMCCD-RAW "):
        return _raf(data)
    if data[4:12] == b"ftypcrx ":
        return _cr3(data)
    if data[:2] in (b"II", b"MM"):
        try:
            tiff = TiffFile(data)
        except TiffError:
            tiff = None
        if tiff is not None:
            ifd0 = tiff.ifd0
            if ifd0 is not None and TAG_DNG_VERSION in ifd0.entries:
                return _tiff(tiff, "DNG", "DNG")
            if tiff.magic in (0x4F52, 0x5352):
                return _tiff(tiff, "RAW", "ORF")
            if tiff.magic == 0x55:
                return _tiff(tiff, "RAW", "RW2")
            if data[8:10] == b"CR":
                return _tiff(tiff, "RAW", "CR2")
            # No signature (NEF, ARW, PEF, SRW...): the extension decides. A ".dng"
            # whose IFD0 reads without DNGVersion is a TIFF by the DNG spec's own
            # definition: Pillow's. One whose IFD0 is unreadable stays a (damaged) RAW.
            if raw_ext and (ext != ".dng" or ifd0 is None):
                return _tiff(tiff, "DNG" if ext == ".dng" else "RAW", ext.lstrip(".").upper())
            return None
    if raw_ext and not data.startswith(_PILLOW_MAGICS):
        # MRW, X3F, CRW, a damaged header...: no preview we can find; rawpy may read it.
        return Container(data, "RAW", ext.lstrip(".").upper())
    return None


def _tiff(tiff: TiffFile, format: str, name: str) -> Container:
    c = Container(tiff.data, format, name)
    ifd0 = tiff.ifd0
    if ifd0 is not None:
        orientation = tiff.first(ifd0, TAG_ORIENTATION)
        c.orientation = orientation if orientation is not None and 1 <= orientation <= 8 else None
        rw2 = ifd0.entries.get(TAG_RW2_JPEG)
        if rw2 is not None:
            c.add(rw2.offset, rw2.count, "RW2 JpgFromRaw")
    counts = {"ifd0": 0, "next": 1, "sub": 0, "exif": 0}  # IFD0, IFD1, IFD2..., SubIFD0...
    for ifd in tiff.ifds:
        label = f"{_LABELS[ifd.kind]}{counts[ifd.kind]}" if ifd.kind != "exif" else "Exif IFD"
        counts[ifd.kind] += 1
        offset, length = tiff.first(ifd, TAG_JPEG_OFFSET), tiff.first(ifd, TAG_JPEG_LENGTH)
        if offset and length:
            c.add(tiff.base + offset, length, f"{label} JPEGInterchangeFormat")
        if tiff.first(ifd, TAG_COMPRESSION) in (6, 7):
            strips, sizes = tiff.ints(ifd, TAG_STRIP_OFFSETS), tiff.ints(ifd, TAG_STRIP_BYTE_COUNTS)
            if len(strips) == 1 and len(sizes) == 1:
                c.add(tiff.base + strips[0], sizes[0], f"{label} JPEG strip")
    if not tiff.ifds:
        c.problem = "its first TIFF directory is unreadable: truncated or damaged?"
    return c


def _raf(data: bytes) -> Container:
    c = Container(data, "RAW", "RAF")
    if len(data) < 92:
        c.problem = "the RAF header is truncated"
        return c
    offset, length = struct.unpack_from(">II", data, 84)
    c.add(offset, length, "RAF header")
    return c


# -- Canon CR3 (ISO base media file format) --

def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in data[start:end]; a uuid box's type
    is its 16-byte UUID. Stops at the first box that does not fit."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        if kind == b"uuid":
            kind, header = data[pos + header:pos + header + 16], header + 16
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, *path: bytes) -> tuple[int, int] | None:
    """(payload start, end) of the first box found along ``path`` under data[start:end]."""
    for kind in path:
        for found, payload, box_end in _boxes(data, start, end):
            if found == kind:
                start, end = payload, box_end
                break
        else:
            return None
    return start, end


def _cr3(data: bytes) -> Container:
    c = Container(data, "RAW", "CR3")
    top = {kind: (start, end) for kind, start, end in _boxes(data, 0, len(data))}
    moov = top.get(b"moov")
    if moov is None:
        c.problem = "its moov box is missing or cut off: truncated?"
        return c
    canon = _child(data, *moov, _CANON_UUID)
    if canon is not None:
        _cr3_metadata(c, data, *canon)
        thumb = _child(data, *canon, b"THMB")
        if thumb is not None:
            _add_first_jpeg(c, thumb, "CR3 THMB")
    table = _child(data, *moov, b"trak", b"mdia", b"minf", b"stbl")
    if table is not None:
        sizes, offsets = _child(data, *table, b"stsz"), _child(data, *table, b"co64")
        if sizes is not None and offsets is not None and offsets[1] - offsets[0] >= 16:
            size, count = struct.unpack_from(">II", data, sizes[0] + 4)
            if size == 0 and count and sizes[1] - sizes[0] >= 16:
                size = struct.unpack_from(">I", data, sizes[0] + 12)[0]
            c.add(struct.unpack_from(">Q", data, offsets[0] + 8)[0], size, "CR3 track 1")
    if _PRVW_UUID in top:
        start, end = top[_PRVW_UUID]
        preview = _child(data, start + 8, end, b"PRVW")  # 8 bytes precede the PRVW box
        if preview is not None:
            _add_first_jpeg(c, preview, "CR3 PRVW")
    return c


def _add_first_jpeg(c: Container, span: tuple[int, int], source: str) -> None:
    start, end = span
    at = c.data.find(b"\xff\xd8\xff", start, min(end, start + 64))  # after a few header fields
    if at >= 0:
        c.add(at, end - at, source)


def _cr3_metadata(c: Container, data: bytes, start: int, end: int) -> None:
    """Orientation, camera and time from CMT1 (IFD0) and CMT2 (the Exif IFD)."""
    ifds = {}
    for kind in (b"CMT1", b"CMT2"):
        span = _child(data, start, end, kind)
        try:
            tiff = TiffFile(data[:span[1]], span[0]) if span is not None else None
        except TiffError:
            tiff = None
        if tiff is not None and tiff.ifd0 is not None:
            ifds[kind] = (tiff, tiff.ifd0)
    make = model = taken = subsec = serial = None
    tags = 0
    if b"CMT1" in ifds:
        tiff, ifd = ifds[b"CMT1"]
        orientation = tiff.first(ifd, TAG_ORIENTATION)
        c.orientation = orientation if orientation is not None and 1 <= orientation <= 8 else None
        make, model, tags = tiff.text(ifd, TAG_MAKE), tiff.text(ifd, TAG_MODEL), len(ifd.entries)
    if b"CMT2" in ifds:
        tiff, ifd = ifds[b"CMT2"]
        taken = _parse_time(tiff.text(ifd, 0x9003) or tiff.text(ifd, 0x9004))  # DateTimeOriginal
        subsec = _parse_subsec(tiff.text(ifd, 0x9291))  # SubSecTimeOriginal
        serial = tiff.text(ifd, 0xA431)  # BodySerialNumber
        tags += len(ifd.entries)
    c.exif = ExifFacts(make=make, model=model, serial=serial, taken_at=taken, subsec=subsec,
                       tag_count=tags)
