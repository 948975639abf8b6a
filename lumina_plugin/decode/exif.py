"""The EXIF facts the engine uses: camera, capture time and how rich the metadata is.

Privacy: the camera string kept in the catalog names the make and model once ("Canon EOS
70D", not "Canon Canon EOS 70D") and, where the EXIF has the body's serial number, a short
one-way digest of it instead of the number (:func:`camera_of`); everything shown or
shared drops even that digest (:func:`display_camera`). GPS positions are never read.

Read with exifread, which parses JPEG, TIFF, PNG, WebP and HEIC headers without
decoding pixels. EXIF is optional and often broken: nothing here ever raises; a
photo with unreadable EXIF simply has no camera or time.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
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
        """One string that identifies a camera body as well as the EXIF allows, without its
        serial number (see :func:`camera_of`)."""
        return camera_of(self.make, self.model, self.serial)

    def timestamp(self) -> float | None:
        """Capture time in seconds (naive local camera clock), with sub-seconds if known."""
        if self.taken_at is None:
            return None
        return self.taken_at.timestamp() + (self.subsec or 0.0)

    def as_json(self) -> dict[str, object]:
        return {
            "make": self.make, "model": self.model, "body": body_digest(self.make, self.model, self.serial),
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "subsec": self.subsec, "tag_count": self.tag_count,
        }


#: How the body's digest ends the stored camera string: " #" and 16 hex digits.
_BODY = re.compile(r"\s+#[0-9a-f]{16}$")
#: A serial number that catalogs written before the digest stored in clear, at the end of the
#: camera string: a last word of six or more characters holding six or more digits. No make or
#: model name ends like that ("D7500", "ILCE-7M3", "X-T3" do not).
_OLD_SERIAL = re.compile(r"\s+(?=[^\s]*(?:\d[^\s\d]*){6})[^\s]{6,}$")


def make_and_model(make: str | None, model: str | None) -> str | None:
    """The make and model as people write them: the model alone when it already starts with
    the make's first word ("Canon" + "Canon EOS 70D", "NIKON CORPORATION" + "NIKON D7500")."""
    if make and model:
        first = make.split()[0].lower()
        return model if model.lower().split()[0] == first else f"{make} {model}"
    return make or model or None


def body_digest(make: str | None, model: str | None, serial: str | None) -> str | None:
    """16 hex digits of a SHA-256 of make, model and body serial number; None without a serial.

    Why a digest: burst detection (grouping/pairs.py) must tell two bodies of one model apart
    and recognise one body, which needs the serial's identity, not the number. The number is
    private (it ties every photo to its owner's camera, and reports are shared); a one-way
    digest compares the same and shows nothing. 64 bits keep two bodies from ever colliding."""
    if not serial:
        return None
    text = "\0".join((make or "", model or "", serial))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def camera_of(make: str | None, model: str | None, serial: str | None) -> str | None:
    """The stored camera string: make and model (:func:`make_and_model`), then " #" and the
    body's digest (:func:`body_digest`) when the serial is known. Equal strings: one body."""
    name = make_and_model(make, model)
    digest = body_digest(make, model, serial)
    if digest is None:
        return name
    return f"{name or 'camera'} #{digest}"


def display_camera(camera: str | None) -> str | None:
    """A stored camera string as it may be shown or shared: make and model only. Drops the
    body digest, and a serial number in clear left by catalogs written before the digest
    (with the make they doubled: "Canon Canon EOS 70D 0330..." -> "Canon EOS 70D")."""
    if not camera:
        return camera
    if _BODY.search(camera):
        return _BODY.sub("", camera)
    words = _OLD_SERIAL.sub("", camera).split()
    again = [k for k in range(1, len(words)) if words[k].lower() == words[0].lower()]
    return " ".join(words[again[0]:] if again else words)  # the model repeated the make: once


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
