"""The EXIF facts the engine uses: camera, capture time and how rich the metadata is.

Read with exifread, which parses JPEG, TIFF, PNG, WebP and HEIC headers without
decoding pixels. EXIF is optional and often broken: nothing here ever raises; a
photo with unreadable EXIF simply has no camera or time.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime

import exifread

# exifread reports every odd tag through logging at WARNING; those are not our errors.
logging.getLogger("exifread").setLevel(logging.ERROR)


@dataclass(frozen=True)
class ExifFacts:
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    taken_at: datetime | None = None
    #: Fraction of a second of ``taken_at`` when the camera recorded it (bursts share seconds).
    subsec: float | None = None
    #: Number of EXIF tags: the "metadata richness" the keeper choice weighs.
    tag_count: int = 0

    @property
    def camera(self) -> str | None:
        """One string that identifies a camera body as well as the EXIF allows."""
        parts = [p for p in (self.make, self.model, self.serial) if p]
        return " ".join(parts) if parts else None

    def timestamp(self) -> float | None:
        """Capture time in seconds (naive local camera clock), with sub-seconds if known."""
        if self.taken_at is None:
            return None
        return self.taken_at.timestamp() + (self.subsec or 0.0)

    def as_json(self) -> dict[str, object]:
        return {
            "make": self.make, "model": self.model, "serial": self.serial,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "subsec": self.subsec, "tag_count": self.tag_count,
        }


def read_exif(data: bytes) -> ExifFacts:
    """EXIF facts of an image file's bytes; empty facts when there is none or it is broken."""
    try:
        tags = exifread.process_file(io.BytesIO(_webp_exif(data) or data), details=False,
                                     extract_thumbnail=False)
    except Exception:  # exifread raises many kinds on hostile input; EXIF is optional
        return ExifFacts()
    if not tags:
        return ExifFacts()

    def text(*names: str) -> str | None:
        for name in names:
            value = tags.get(name)
            if value is not None:
                s = str(value).strip().strip("\x00").strip()
                if s:
                    return s[:200]
        return None

    taken = _parse_time(text("EXIF DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime"))
    subsec = _parse_subsec(text("EXIF SubSecTimeOriginal", "EXIF SubSecTime"))
    return ExifFacts(
        make=text("Image Make"),
        model=text("Image Model"),
        serial=text("EXIF BodySerialNumber", "MakerNote SerialNumber"),
        taken_at=taken,
        subsec=subsec,
        tag_count=len(tags),
    )


def _webp_exif(data: bytes) -> bytes | None:
    """The TIFF-format EXIF payload of a WebP file, or None.

    exifread 3.5 skips six bytes of a WebP EXIF chunk, expecting an ``Exif\\0\\0``
    prefix that the WebP spec does not have (Pillow, webpmux and exiftool write none;
    ianare/exif-py#252), so we hand it the chunk's payload, which it reads as TIFF.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if kind == b"EXIF":
            payload = data[pos + 8:pos + 8 + size]
            return payload[6:] if payload.startswith(b"Exif\x00\x00") else payload
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            return datetime.strptime(value[:19], fmt)
        except ValueError:
            continue
    return None


def _parse_subsec(value: str | None) -> float | None:
    if not value or not value.isdigit():
        return None
    return int(value) / (10 ** len(value))
