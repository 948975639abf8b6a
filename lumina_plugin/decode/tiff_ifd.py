"""A small, bounded reader of TIFF image file directories (IFDs), for camera RAW files.

Most RAW formats (DNG, CR2, NEF, NRW, ARW, SRW, PEF, ORF, RW2, 3FR, ERF, IIQ...) are
TIFF inside: a header, then IFDs whose tags say where each image (the sensor data,
full-size JPEG previews, thumbnails) lies in the file. decode/raw.py needs those
offsets, and no dependency we have gives them:

- exifread lists the ``SubIFDs`` tag of IFD0 but does not walk the sub-IFDs, where
  NEF and DNG keep their full-size previews, and parses the makernotes on the way;
- Pillow's TIFF plugin refuses the ORF (``IIRO``) and RW2 (``IIU``) headers and reads
  one directory at a time through its image API;
- tifffile would be a new dependency for about a hundred lines of work.

So this is written by hand, and written defensively: every offset is checked against
the data, directories are visited once each (a loop is not followed twice), and the
number of directories, entries and values read is capped. A damaged file yields the
directories that could be read; only a header that is not TIFF at all raises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

#: Bytes per value of each TIFF field type (1 BYTE ... 13 IFD; 16-18 are BigTIFF's 8-byte types).
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
              16: 8, 17: 8, 18: 8}
#: Unpack codes of the integer types (the only ones read as numbers here).
_INT_CODE = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q"}
#: The second header word: 42 (TIFF), and the magic numbers of Olympus ORF and Panasonic RW2.
_MAGICS = (42, 0x4F52, 0x5352, 0x0055)

#: Caps against hostile files: real RAWs have under 20 directories of under 100 entries.
MAX_IFDS = 64
MAX_ENTRIES = 1000
MAX_VALUES = 4096

TAG_NEW_SUBFILE_TYPE = 0x00FE
TAG_IMAGE_WIDTH = 0x0100
TAG_IMAGE_LENGTH = 0x0101
TAG_COMPRESSION = 0x0103
TAG_PHOTOMETRIC = 0x0106
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_STRIP_OFFSETS = 0x0111
TAG_ORIENTATION = 0x0112
TAG_STRIP_BYTE_COUNTS = 0x0117
TAG_SUB_IFDS = 0x014A
TAG_JPEG_OFFSET = 0x0201  # JPEGInterchangeFormat
TAG_JPEG_LENGTH = 0x0202  # JPEGInterchangeFormatLength
TAG_EXIF_IFD = 0x8769
TAG_DNG_VERSION = 0xC612
TAG_RW2_JPEG = 0x002E  # Panasonic RW2: a whole JPEG stored as the value of this IFD0 tag


class TiffError(ValueError):
    """The data does not start with a TIFF (or ORF/RW2) header."""


@dataclass(frozen=True)
class Entry:
    tag: int
    type: int
    count: int
    #: Absolute offset in the data of the value's first byte (inline values included).
    offset: int


@dataclass
class Ifd:
    #: Absolute offset of the directory; ``kind`` says how it was reached: "ifd0", "next"
    #: (later in IFD0's chain), "sub" (a SubIFDs pointer) or "exif".
    offset: int
    kind: str
    entries: dict[int, Entry] = field(default_factory=dict)


class TiffFile:
    """The directories of a TIFF structure that starts at ``base`` in ``data``.

    Offsets inside a TIFF are relative to its header; ``base`` lets the same code read
    a TIFF embedded in another container (Canon CR3's CMT boxes). Every offset this
    class returns is absolute (an index into ``data``).
    """

    def __init__(self, data: bytes, base: int = 0) -> None:
        self.data, self.base = data, base
        order = data[base:base + 2]
        if order not in (b"II", b"MM") or len(data) < base + 8:
            raise TiffError("not a TIFF header")
        self.endian = "<" if order == b"II" else ">"
        magic, first = struct.unpack_from(self.endian + "HI", data, base + 2)
        if magic not in _MAGICS:
            raise TiffError(f"unknown TIFF magic number {magic:#x}")
        self.magic = magic
        self.ifds: list[Ifd] = []
        self._walk(first)

    # -- reading values --

    def ints(self, ifd: Ifd, tag: int) -> list[int]:
        """The integer values of ``tag`` in ``ifd`` ([] when absent, not integers or out of bounds)."""
        entry = ifd.entries.get(tag)
        if entry is None or entry.type not in _INT_CODE:
            return []
        count = min(entry.count, MAX_VALUES)
        size = _TYPE_SIZE[entry.type] * count
        if entry.offset + size > len(self.data):
            return []
        return list(struct.unpack_from(f"{self.endian}{count}{_INT_CODE[entry.type]}", self.data, entry.offset))

    def first(self, ifd: Ifd, tag: int, default: int | None = None) -> int | None:
        values = self.ints(ifd, tag)
        return values[0] if values else default

    def text(self, ifd: Ifd, tag: int) -> str | None:
        """An ASCII value, stripped; None when absent or empty."""
        raw = self.raw(ifd, tag)
        if raw is None:
            return None
        value = raw.split(b"\x00", 1)[0].decode("latin-1").strip()
        return value or None

    def raw(self, ifd: Ifd, tag: int) -> bytes | None:
        """The bytes of a BYTE, ASCII or UNDEFINED value (None when absent or out of bounds)."""
        entry = ifd.entries.get(tag)
        if entry is None or entry.type not in (1, 2, 7):
            return None
        end = entry.offset + entry.count
        return self.data[entry.offset:end] if end <= len(self.data) else None

    @property
    def ifd0(self) -> Ifd | None:
        return self.ifds[0] if self.ifds and self.ifds[0].kind == "ifd0" else None

    # -- walking --

    def _walk(self, first: int) -> None:
        # Breadth-first over the IFD0 chain and every SubIFDs/Exif pointer; ``seen`` stops loops.
        queue: list[tuple[int, str]] = [(first, "ifd0")]
        seen: set[int] = set()
        while queue and len(self.ifds) < MAX_IFDS:
            rel, kind = queue.pop(0)
            if rel in seen or rel <= 0:
                continue
            seen.add(rel)
            ifd, next_rel = self._read_ifd(rel, kind)
            if ifd is None:
                continue
            self.ifds.append(ifd)
            if next_rel and kind in ("ifd0", "next"):
                queue.append((next_rel, "next"))
            for sub in self.ints(ifd, TAG_SUB_IFDS):
                queue.append((sub, "sub"))
            for exif in self.ints(ifd, TAG_EXIF_IFD)[:1]:
                queue.append((exif, "exif"))

    def _read_ifd(self, rel: int, kind: str) -> tuple[Ifd | None, int]:
        pos, data, e = self.base + rel, self.data, self.endian
        if pos + 2 > len(data):
            return None, 0
        (count,) = struct.unpack_from(e + "H", data, pos)
        if count == 0 or count > MAX_ENTRIES or pos + 2 + 12 * count > len(data):
            return None, 0
        ifd = Ifd(offset=pos, kind=kind)
        for i in range(count):
            at = pos + 2 + 12 * i
            tag, typ, n = struct.unpack_from(e + "HHI", data, at)
            size = _TYPE_SIZE.get(typ)
            if size is None:
                continue  # unknown type: skip the entry, as the TIFF spec asks readers to
            if size * n <= 4:
                offset = at + 8
            else:
                (value_rel,) = struct.unpack_from(e + "I", data, at + 8)
                offset = self.base + value_rel
            ifd.entries[tag] = Entry(tag, typ, n, offset)
        end = pos + 2 + 12 * count
        next_rel = struct.unpack_from(e + "I", data, end)[0] if end + 4 <= len(data) else 0
        return ifd, next_rel
