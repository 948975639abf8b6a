"""One file's ImageRecord, from a CPU decode or from the GPU's codes and the file's facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..decode.photo import DecodedPhoto, PhotoFacts, decode
from ..hashing.geometry import geometry_codes
from ..hashing.thumb_codes import hash_pixels
from ..model import CODE_WORDS, ImageRecord, algorithm_version


def codes_of_gray(gray: Image.Image) -> np.ndarray:
    """All the code words of one upright mode "L" image: the four classic hashes and the
    geometry words, (CODE_WORDS,) uint64 (the classic four bit for bit hashing/cpu.py's)."""
    if gray.mode != "L":
        gray = gray.convert("L")
    pixels = np.asarray(gray)
    return np.concatenate([hash_pixels(pixels), geometry_codes(pixels)])


def record_for(path: str, max_pixels: int, draft: int = 0, mode: str = "exact") -> ImageRecord:
    """Decode and hash one file on the CPU (raises PhotoError). ``draft``, ``mode``: see
    HashingSettings (``draft`` and ``decode``); the record carries ``mode``'s version."""
    photo = decode(Path(path), max_pixels, draft, mode)
    return record_from(path, photo, codes_of_gray(photo.gray), algorithm_version(mode))


def record_from(path: str, facts: DecodedPhoto | PhotoFacts, codes: np.ndarray, version: int) -> ImageRecord:
    """The record of ``path`` from its decoded facts and its code words (CODE_WORDS),
    stamped with ``version``: the algorithm version of the decode mode that made the codes
    (model.algorithm_version), so codes of two modes never meet in a catalog."""
    codes = np.asarray(codes, dtype=np.uint64)
    if codes.shape != (CODE_WORDS,):
        raise ValueError(f"{path}: expected {CODE_WORDS} code words, got shape {codes.shape}")
    exif = facts.exif
    return ImageRecord(
        path=path, checksum=facts.file.sha256, size_bytes=facts.file.size_bytes,
        mtime_ns=facts.file.mtime_ns, width=facts.width, height=facts.height, format=facts.format,
        orientation=facts.orientation, camera=exif.camera,
        taken_at=exif.taken_at.isoformat() if exif.taken_at else None, subsec=exif.subsec,
        exif_tags=exif.tag_count, codes=codes, hash_version=version,
    )
