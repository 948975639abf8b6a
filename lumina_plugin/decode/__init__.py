"""Files to pixels: Pillow on the CPU (cpu), EXIF facts (exif), camera RAWs through their
embedded JPEG (raw, containers, tiff_ifd) and HEIC/AVIF openers (heif)."""

from .exif import ExifFacts, read_exif
from .photo import DecodedPhoto, FileFacts, PhotoError, decode, read_file
from .raw import MIN_PREVIEW_LONG_SIDE, RawPreview, jpeg_bytes_for, raw_preview

__all__ = ["DecodedPhoto", "ExifFacts", "FileFacts", "MIN_PREVIEW_LONG_SIDE", "PhotoError", "RawPreview",
           "decode", "jpeg_bytes_for", "raw_preview", "read_exif", "read_file"]
