"""One file's ImageRecord, from a CPU decode or from the GPU's codes and the file's facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..decode.photo import DecodedPhoto, PhotoFacts, decode
from ..hashing.cpu import hash_gray
from ..model import ALGORITHM_VERSION, ImageRecord


def record_for(path: str, max_pixels: int, draft: int = 0) -> ImageRecord:
    """Decode and hash one file on the CPU (raises PhotoError). ``draft``: see HashingSettings."""
    photo = decode(Path(path), max_pixels, draft)
    return record_from(path, photo, hash_gray(photo.gray))


def record_from(path: str, facts: DecodedPhoto | PhotoFacts, codes: np.ndarray) -> ImageRecord:
    """The record of ``path`` from its decoded facts and its four codes."""
    exif = facts.exif
    return ImageRecord(
        path=path, checksum=facts.file.sha256, size_bytes=facts.file.size_bytes,
        mtime_ns=facts.file.mtime_ns, width=facts.width, height=facts.height, format=facts.format,
        orientation=facts.orientation, camera=exif.camera,
        taken_at=exif.taken_at.isoformat() if exif.taken_at else None, subsec=exif.subsec,
        exif_tags=exif.tag_count, codes=np.asarray(codes, dtype=np.uint64), hash_version=ALGORITHM_VERSION,
    )
