"""Decode a photo once on the CPU with Pillow: the file's bytes, its facts and a gray image.

One read of the file serves the checksum, the EXIF and the decode; one decode serves
all four hashes. The EXIF orientation is applied before anything else (rule: the
pixels are hashed as a viewer that honours the Orientation tag shows them), so a
copy rotated by its tag matches its original. ``imagehash`` does not do this, so our
hashes differ from it on photos whose orientation is not 1 (and only on those).
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .exif import ExifFacts, read_exif

#: Largest file we read into memory; camera RAWs and big TIFFs stay well under it.
MAX_FILE_BYTES = 1 << 30


class PhotoError(Exception):
    """A file that cannot be hashed. ``str()`` is one line that names the file."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class FileFacts:
    path: str
    size_bytes: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class DecodedPhoto:
    """What the hashers and the catalog need from one photo."""

    file: FileFacts
    #: Pillow's format name (JPEG, PNG, WEBP, TIFF...).
    format: str
    #: Size as displayed, after the EXIF orientation.
    width: int
    height: int
    orientation: int
    mode: str
    exif: ExifFacts
    #: Mode "L" image, orientation applied: the input of every hash.
    gray: Image.Image


def read_file(path: Path) -> tuple[FileFacts, bytes]:
    """Read a regular file whole; raise PhotoError for anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PhotoError(path, "file not found (deleted or a broken symlink?)") from None
    except OSError as exc:
        raise PhotoError(path, f"cannot stat: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PhotoError(path, "not a regular file")
    if st.st_size == 0:
        raise PhotoError(path, "empty file")
    if st.st_size > MAX_FILE_BYTES:
        raise PhotoError(path, f"file too large ({st.st_size} bytes)")
    try:
        # O_RDONLY only: photos are never opened for writing.
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise PhotoError(path, f"cannot read: {exc.strerror or exc}") from None
    facts = FileFacts(
        path=str(path), size_bytes=len(data), mtime_ns=st.st_mtime_ns,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return facts, data


def decode(path: Path, max_pixels: int = 250_000_000) -> DecodedPhoto:
    """Read and decode one photo for hashing; raise PhotoError with a one-line reason."""
    import io

    facts, data = read_file(path)
    with warnings.catch_warnings():
        # Pillow only warns between max_pixels and twice that; refuse at the limit instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels or old_limit
        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format or "UNKNOWN"
                mode = im.mode
                orientation = _orientation(im)
                im.load()
                upright = ImageOps.exif_transpose(im) if orientation != 1 else im
                gray = to_gray(upright)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PhotoError(path, f"refused: image too large, possible decompression bomb ({exc})") from None
        except UnidentifiedImageError:
            raise PhotoError(path, "not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise PhotoError(path, f"cannot decode: {exc}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
    return DecodedPhoto(
        file=facts, format=fmt, width=gray.width, height=gray.height,
        orientation=orientation, mode=mode, exif=read_exif(data), gray=gray,
    )


def to_gray(im: Image.Image) -> Image.Image:
    """Mode "L" as imagehash gets it (Pillow's ``convert("L")``), except for 16-bit gray.

    Pillow clips 16-bit gray ("I;16", "I") to 255 instead of scaling it, which turns
    every 16-bit gray photo white and makes unrelated ones hash alike; we scale
    65535 -> 255 (imagehash shares the clipping flaw, so it differs from us there).
    """
    if im.mode.startswith("I;16") or im.mode == "I":
        pixels = (np.asarray(im, dtype=np.uint32) + 128) // 257
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    return im.convert("L")


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # broken EXIF must not cost the photo
        return 1
    return value if 1 <= value <= 8 else 1
