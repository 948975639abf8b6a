"""Files to pixels: Pillow on the CPU (cpu), EXIF facts (exif)."""

from .cpu import DecodedPhoto, FileFacts, PhotoError, decode, read_file
from .exif import ExifFacts, read_exif

__all__ = ["DecodedPhoto", "ExifFacts", "FileFacts", "PhotoError", "decode", "read_exif", "read_file"]
