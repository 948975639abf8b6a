"""Camera RAW files: hash the full-size JPEG the camera embedded, not a demosaiced image.

Every camera stores a JPEG rendering of the shot inside its RAW file, usually at full
size (CR2, CR3, NEF, DNG from most converters) or at least 1,600 px wide (ARW, RAF,
RW2). That JPEG is the camera's own rendering, the same one the camera's JPEG sibling
holds, and decoding it takes milliseconds where demosaicing takes seconds. So:

1. :func:`identify` tells a RAW by its content (DNGVersion tag, CR2/ORF/RW2/RAF/CR3
   signatures) or, for TIFF-based formats without a signature (NEF, ARW, PEF, SRW...),
   by its extension. A ``.dng`` without a DNGVersion tag is a plain TIFF, not a DNG.
2. The embedded JPEGs are located without any dependency (containers.py walks TIFF,
   RAF and CR3) and the largest is taken.
3. **The too-small rule**: a preview is used only when its long side is at least
   :data:`MIN_PREVIEW_LONG_SIDE` (1024 px). Smaller ones are thumbnails (160x120 IFD1
   thumbnails, 570-640 px previews of old bodies), heavily compressed and often
   letterboxed to 4:3 with black bars, which would hash as a different picture. Every
   real preview is well above it (ARW 1616x1080, CR3 PRVW 1620x1080, RAF 1920x1280,
   RW2 1920x1440, full size elsewhere), and the hashes read at most 64x64 pixels, so
   1024 px leaves a wide margin.
4. Otherwise, with the optional ``rawpy`` (LibRaw) installed: LibRaw's own largest
   thumbnail (it also knows makernote previews: ORF, PEF...) when it passes the rule,
   else a half-size demosaic (``postprocess(half_size=True)``: 2x2 binning instead
   of interpolation, about 4x faster, far more detail than a 64 px hash uses).
   Without rawpy: :class:`RawError` naming the extra to install, which the caller
   records as that file's error; nothing crashes.

Orientation: embedded previews are stored as the sensor saw them and their own EXIF
often lacks the Orientation tag, so the RAW's tag (TIFF IFD0, CR3 CMT1) is applied; the
preview's own tag only when the RAW has none (RAF). LibRaw's ``postprocess`` rotates by
itself, so its output is not turned again.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from types import ModuleType

from PIL import Image

from ..extras import needs
from ..files import RAW_EXTENSIONS
from . import containers
from .containers import Container, RawError
from .exif import ExifFacts, read_exif

__all__ = ["MIN_PREVIEW_LONG_SIDE", "RawError", "RawImage", "RawPreview", "identify",
           "jpeg_bytes_for", "open_raw", "raw_preview"]

#: The too-small rule: an embedded JPEG whose long side is below this is not hashed.
MIN_PREVIEW_LONG_SIDE = 1024

#: LibRaw's ``sizes.flip`` (dcraw's encoding) -> EXIF orientation.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}


@dataclass(frozen=True)
class RawPreview:
    """An embedded JPEG good enough to hash in place of the RAW."""

    jpeg: bytes
    #: Size of the JPEG as stored (before the orientation).
    width: int
    height: int
    #: The RAW's EXIF orientation (1-8): how to turn the JPEG's stored pixels for display.
    orientation: int
    #: Where it came from, for messages and tests ("IFD0 JPEG strip", "SubIFD1
    #: JPEGInterchangeFormat", "RAF header", "CR3 track 1", "rawpy thumbnail"...).
    source: str


@dataclass
class RawImage:
    """What :func:`open_raw` gives the decoder: a preview to decode, or decoded pixels."""

    #: "DNG" or "RAW" (the names the keeper's format ranks know).
    format: str
    exif: ExifFacts
    orientation: int
    preview: RawPreview | None = None
    #: Upright RGB pixels from LibRaw when no preview passed the rule (orientation applied).
    image: Image.Image | None = None


def identify(path: str | os.PathLike[str], data: bytes) -> Container | None:
    """The file's RAW container, or None when it is not a RAW (then Pillow reads it)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    return containers.identify(data, ext, ext in RAW_EXTENSIONS)


def raw_preview(path: str | os.PathLike[str], data: bytes) -> RawPreview | None:
    """The embedded JPEG that passes the too-small rule, or None (not a RAW, none found).

    Tries the dependency-free parser, then rawpy's ``extract_thumb`` when installed.
    Never raises for a bad file: None means "decode it another way".
    """
    container = identify(path, data)
    if container is None:
        return None
    try:
        found = _own_preview(container)
        return found if found is not None else _rawpy_preview(data, container.orientation)
    except RawError:
        return None


def jpeg_bytes_for(path: str | os.PathLike[str], data: bytes) -> bytes | None:
    """The embedded JPEG of a RAW file to decode in its place, for the GPU's JPEG engines.

    ``data`` is the whole file. Returns None when the file is not a RAW or has no
    preview that passes the too-small rule (then the CPU decodes it). The JPEG's
    stored pixels must be turned by the RAW's orientation, not by the JPEG's own EXIF
    (often absent): take it from :func:`raw_preview` (``.orientation``), which this
    wraps. Cost: no pixel is decoded; a few directory reads (about 1 ms on a 54 MB
    DNG), plus LibRaw's own parse (a few ms) when those find nothing usable and rawpy
    is installed.
    """
    preview = raw_preview(path, data)
    return preview.jpeg if preview is not None else None


def open_raw(container: Container, data: bytes, max_pixels: int = 0) -> RawImage:
    """The preview to hash, or LibRaw's pixels; raises RawError with a one-line reason."""
    exif = _exif_of(container, data)
    preview = _own_preview(container)
    if preview is None:
        rawpy = _import_rawpy()
        if rawpy is None:
            raise RawError(f"{_no_preview_reason(container)}; decoding the RAW itself (LibRaw) {needs('rawpy')}")
        preview = _rawpy_preview(data, container.orientation)
        if preview is None:
            try:
                image, orientation = _rawpy_decode(rawpy, data, max_pixels)
            except RawError as exc:
                raise RawError(f"{_no_preview_reason(container)}, and {exc}") from None
            return RawImage(container.format, exif, orientation, image=image)
    if exif.tag_count == 0:  # RAF keeps its EXIF in the preview only
        exif = read_exif(preview.jpeg)
    return RawImage(container.format, exif, preview.orientation, preview=preview)


# -- the dependency-free path --

def _own_preview(container: Container) -> RawPreview | None:
    best = container.best_jpeg()
    if best is None or max(best.width, best.height) < MIN_PREVIEW_LONG_SIDE:
        return None
    orientation = container.orientation or _jpeg_orientation(best.data) or 1
    return RawPreview(best.data, best.width, best.height, orientation, best.source)


def _no_preview_reason(container: Container) -> str:
    best = container.best_jpeg()
    if best is not None:
        return (f"its largest embedded preview ({best.width}x{best.height}, {best.source}) is "
                f"smaller than {MIN_PREVIEW_LONG_SIDE} px")
    hint = f" ({container.problem})" if container.problem else ""
    return f"no embedded JPEG preview found{hint}"


def _jpeg_orientation(jpeg: bytes) -> int | None:
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            value = int(im.getexif().get(0x0112, 0))
    except Exception:  # a preview with broken EXIF is still a preview
        return None
    return value if 1 <= value <= 8 else None


def _exif_of(container: Container, data: bytes) -> ExifFacts:
    if container.exif is not None:  # CR3: read from its CMT boxes
        return container.exif
    if container.name == "RAF":  # exifread does not read RAF; its JPEGs carry the EXIF
        best = container.best_jpeg()
        return read_exif(best.data) if best is not None else ExifFacts()
    return read_exif(data)


# -- rawpy (LibRaw), optional --

def _import_rawpy() -> ModuleType | None:
    """rawpy when installed, else None (imported late: it is optional and rarely needed)."""
    try:
        import rawpy
    except ImportError:
        return None
    return rawpy


def _rawpy_preview(data: bytes, orientation: int | None) -> RawPreview | None:
    """LibRaw's largest embedded JPEG when rawpy is installed and it passes the rule."""
    rawpy = _import_rawpy()
    if rawpy is None:
        return None
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            flip = int(raw.sizes.flip)
            thumb = raw.extract_thumb()
    except (rawpy.LibRawError, OSError, ValueError, MemoryError):
        return None  # no thumbnail, or LibRaw cannot read the file: the demosaic will say why
    if thumb.format != rawpy.ThumbFormat.JPEG:
        return None
    size = containers.jpeg_size(thumb.data)
    if size is None or max(size) < MIN_PREVIEW_LONG_SIDE:
        return None
    return RawPreview(bytes(thumb.data), size[0], size[1],
                      orientation or _FLIP_TO_ORIENTATION.get(flip, 1), "rawpy thumbnail")


def _libraw_message(exc: BaseException) -> str:
    """LibRaw's message as text (rawpy passes it as bytes: "b'Input/output error'")."""
    arg = exc.args[0] if exc.args else ""
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _rawpy_decode(rawpy: ModuleType, data: bytes, max_pixels: int) -> tuple[Image.Image, int]:
    """Half-size demosaic with the camera's white balance; the pixels come back upright."""
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            if max_pixels and sizes.raw_width * sizes.raw_height > max_pixels:
                raise RawError(f"refused: RAW of {sizes.raw_width}x{sizes.raw_height} pixels is "
                               f"larger than max_pixels ({max_pixels})")
            orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    except RawError:
        raise
    except (rawpy.LibRawError, OSError, ValueError, MemoryError) as exc:
        raise RawError(f"rawpy (LibRaw) cannot decode it ({_libraw_message(exc)})") from None
    return Image.fromarray(rgb), orientation  # (H, W, 3) uint8: RGB
