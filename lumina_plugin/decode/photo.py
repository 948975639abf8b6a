"""Decode a photo once on the CPU with Pillow: the file's bytes, its facts and a gray image.

One read of the file serves the checksum, the EXIF and the decode; one decode serves
all four hashes. The EXIF orientation is applied before anything else (rule: the
pixels are hashed as a viewer that honours the Orientation tag shows them), so a
copy rotated by its tag matches its original. ``imagehash`` does not do this, so our
hashes differ from it on photos whose orientation is not 1 (and only on those).

Decode modes (settings/hashing.py ``decode``): "exact" decodes every pixel (codes
bit-identical with imagehash); "reduced" (the default) makes the gray image at 1/f of
the stored size, f = model.reduced_factor (1, 2, 4 or 8: the largest that still feeds
the 64-pixel thumbnails and the 256-pixel working image of the geometry words). A
JPEG's luma is decoded at that scale in the DCT domain (Pillow's ``draft("L")``: libjpeg
skips the chroma and most of the inverse DCT, and never builds the full image); every
other source (PNG, WebP, TIFF, HEIC, CMYK JPEG, LibRaw pixels) is decoded whole, turned
gray and box-reduced by f (``Image.reduce``), as the GPU path does after its decode.

Two more entry points: ``decode(..., draft=N)`` (an older setting, exact mode only) lets
libjpeg decode only the luma at 1/N size, and :func:`probe` gathers every fact of a
photo but its pixels (the GPU decodes those).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..model import DECODE_VERSIONS, reduced_factor
from . import heif, raw
from .exif import ExifFacts, read_exif
from .raw import RawImage

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


def decode(path: Path, max_pixels: int = 250_000_000, draft: int = 0, mode: str = "exact") -> DecodedPhoto:
    """Read and decode one photo for hashing; raise PhotoError with a one-line reason.

    ``mode``: "exact" or "reduced" (the module's docstring). ``draft`` (exact mode,
    JPEG only, see HashingSettings.draft): 0 decodes fully; N > 0 asks libjpeg for the
    luma only at 1/N size. ``width``/``height`` stay the full size either way.
    A camera RAW is decoded from its embedded JPEG preview (decode/raw.py) and a
    HEIC/HEIF through pillow-heif (decode/heif.py).
    """
    if mode not in DECODE_VERSIONS:
        raise ValueError(f"decode mode must be one of {', '.join(DECODE_VERSIONS)}, got {mode!r}")
    reduced = mode == "reduced"
    facts, data = read_file(path)
    source = _raw_source(path, data, max_pixels)
    if source is None:
        return _decode_pixels(path, facts, data, max_pixels, draft, reduced)
    if source.preview is None:  # LibRaw's pixels, already upright
        assert source.image is not None
        im = source.image
        gray = to_gray(im)
        return DecodedPhoto(file=facts, format=source.format, width=im.width, height=im.height,
                            orientation=source.orientation, mode=im.mode, exif=source.exif,
                            gray=reduce_gray(gray, reduced_factor(*gray.size)) if reduced else gray)
    return _decode_pixels(path, facts, source.preview.jpeg, max_pixels, draft, reduced,
                          fmt=source.format, orientation=source.orientation, exif=source.exif)


def reduce_gray(gray: Image.Image, factor: int) -> Image.Image:
    """``gray`` box-reduced by ``factor`` (partial blocks kept), Pillow's rounding: what the
    GPU path computes from its decoded pixels (hashing/cupy_reduce.py)."""
    return gray.reduce(factor) if factor > 1 else gray


def _decode_pixels(path: Path, facts: FileFacts, data: bytes, max_pixels: int, draft: int, reduced: bool,
                   fmt: str | None = None, orientation: int | None = None,
                   exif: ExifFacts | None = None) -> DecodedPhoto:
    """Decode ``data`` (the file, or a RAW's preview: then ``fmt``, ``orientation`` and
    ``exif`` are the RAW's, not the preview's)."""
    with _opened(path, data, max_pixels) as im:
        fmt = fmt or im.format or "UNKNOWN"
        mode = im.mode
        orientation = _orientation(im) if orientation is None else orientation
        width, height = _displayed_size(im.size, orientation)
        stored = im.size
        factor = reduced_factor(*stored) if reduced else 1
        if im.format == "JPEG" and mode in ("RGB", "L") and (reduced or draft):
            scale = factor if reduced else draft
            # Pillow picks the largest DCT scale whose image is at least this big: the
            # floor makes that scale exactly ``factor`` (ceil(w / f) is the decoded width).
            # "L": libjpeg outputs the luma plane, the chroma is never decoded.
            im.draft("L", (max(1, stored[0] // scale), max(1, stored[1] // scale)))
        im.load()
        if reduced:
            gray = to_gray(im)
            done = max(1, round(stored[0] / gray.width))  # the scale libjpeg decoded at
            gray = reduce_gray(gray, factor // done if done < factor else 1)
            gray = gray.transpose(_TRANSPOSE[orientation]) if orientation != 1 else gray
        else:
            upright = im.transpose(_TRANSPOSE[orientation]) if orientation != 1 else im
            gray = to_gray(upright)
    return DecodedPhoto(
        file=facts, format=fmt, width=width, height=height, orientation=orientation,
        mode=mode, exif=_exif_of(data, im) if exif is None else exif, gray=gray,
    )


#: How a viewer turns stored pixels for each EXIF orientation (as ImageOps.exif_transpose
#: does); applied by value because a RAW's preview takes the RAW's orientation, not its own.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def _exif_of(data: bytes, im: Image.Image) -> ExifFacts:
    """The file's EXIF facts; when exifread finds none, those of the EXIF block the
    decoder found (exifread misses the EXIF of HEICs written by libheif 1.x and of AVIFs)."""
    facts = read_exif(data)
    payload = im.info.get("exif")
    if facts.tag_count == 0 and isinstance(payload, bytes) and len(payload) > 8:
        facts = read_exif(payload[6:] if payload.startswith(b"Exif\x00\x00") else payload)
    return facts


def _raw_source(path: Path | str, data: bytes, max_pixels: int) -> RawImage | None:
    """The RAW's preview or pixels (None: not a RAW); registers the HEIF opener a HEIC
    needs. Either's failure becomes a PhotoError naming the file."""
    container = raw.identify(path, data)
    if container is None:
        try:
            heif.prepare(data)
        except heif.HeifUnavailable as exc:
            raise PhotoError(path, str(exc)) from None
        return None
    try:
        return raw.open_raw(container, data, max_pixels)
    except raw.RawError as exc:
        raise PhotoError(path, f"{container.name} RAW: {exc}") from None


@dataclass(frozen=True)
class PhotoFacts:
    """Everything :class:`DecodedPhoto` holds but the pixels, from the file's header."""

    file: FileFacts
    format: str
    #: Size as displayed, after the EXIF orientation.
    width: int
    height: int
    orientation: int
    mode: str
    exif: ExifFacts
    #: A progressive (or multi-scan) JPEG: the GPU's JPEG engines do not take those.
    progressive: bool


def probe(path: Path, max_pixels: int = 250_000_000) -> PhotoFacts:
    """Read one file and its header (no pixel decoded); raise PhotoError like :func:`decode`.

    The same refusals as :func:`decode` that the header can tell (not a file, not an
    image, too many pixels); a file whose pixels are broken passes here and fails
    where it is decoded. A RAW is described by its preview (size as displayed with the
    RAW's orientation), as the GPU decodes it; one without a usable preview is decoded
    by LibRaw here.
    """
    facts, data = read_file(path)
    source = _raw_source(path, data, max_pixels)
    if source is not None and source.preview is None:  # decoded by LibRaw already
        assert source.image is not None
        return PhotoFacts(file=facts, format=source.format, width=source.image.width,
                          height=source.image.height, orientation=source.orientation,
                          mode=source.image.mode, exif=source.exif, progressive=False)
    pixels = data if source is None or source.preview is None else source.preview.jpeg
    with _opened(path, pixels, max_pixels) as im:
        return facts_of_opened(im, facts, data, source)


def facts_of_opened(im: Image.Image, file: FileFacts, data: bytes,
                    source: RawImage | None = None) -> PhotoFacts:
    """The facts of a photo Pillow has opened (header only) from ``data``: the whole file,
    or a head that holds every header segment (decode/head.py); a RAW's ``source`` gives
    its own format, orientation and EXIF."""
    orientation = _orientation(im) if source is None else source.orientation
    width, height = _displayed_size(im.size, orientation)
    return PhotoFacts(
        file=file, format=source.format if source else (im.format or "UNKNOWN"),
        width=width, height=height, orientation=orientation, mode=im.mode,
        exif=source.exif if source else _exif_of(data, im),
        progressive=bool(im.info.get("progressive") or im.info.get("progression")),
    )


class _opened:
    """``with _opened(path, data, max_pixels) as im``: Pillow's open of ``data``, its
    errors turned into PhotoError, the decompression-bomb limit at ``max_pixels``."""

    def __init__(self, path: Path | str, data: bytes, max_pixels: int) -> None:
        self.path, self.data, self.max_pixels = path, data, max_pixels
        self._im: Image.Image | None = None

    def __enter__(self) -> Image.Image:
        with warnings.catch_warnings():
            # Pillow only warns between max_pixels and twice that; refuse at the limit instead.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = self.max_pixels or old_limit
            try:
                self._im = Image.open(io.BytesIO(self.data))
            except Exception as exc:
                error = _photo_error(self.path, exc)
                if error is None:
                    raise
                raise error from None
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
        return self._im

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._im is not None:
            self._im.close()
        error = _photo_error(self.path, exc) if exc is not None else None
        if error is not None:
            raise error from None


def _photo_error(path: Path | str, exc: BaseException) -> PhotoError | None:
    """The one-line PhotoError for what Pillow raises on a bad file; None for anything else."""
    if isinstance(exc, PhotoError):
        return None
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return PhotoError(path, f"refused: image too large, possible decompression bomb ({exc})")
    if isinstance(exc, UnidentifiedImageError):
        return PhotoError(path, "not an image Pillow can read")
    # TypeError too: a TIFF whose StripOffsets tag is a RATIONAL makes Pillow seek() to a
    # fraction (found by tests/test_fuzz.py); hostile tags reach Pillow's internals typed wrong.
    if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError, MemoryError, TypeError)):
        return PhotoError(path, f"cannot decode: {exc}")
    return None


def _displayed_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(width, height) as a viewer shows the photo: orientations 5-8 swap the sides."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else (size[0], size[1])


def to_gray(im: Image.Image) -> Image.Image:
    """Mode "L" as imagehash gets it (Pillow's ``convert("L")``), except for 16-bit gray.

    Pillow clips 16-bit gray ("I;16", "I") to 255 instead of scaling it, which turns
    every 16-bit gray photo white and makes unrelated ones hash alike; we scale
    65535 -> 255 (imagehash shares the clipping flaw, so it differs from us there).
    """
    if im.mode.startswith("I;16") or im.mode == "I":
        pixels = (np.asarray(im, dtype=np.uint32) + 128) // 257
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))  # 2-D uint8: mode "L"
    return im.convert("L")


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # broken EXIF must not cost the photo
        return 1
    return value if 1 <= value <= 8 else 1
