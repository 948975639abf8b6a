"""Files to hash records, in batches: the one place that turns paths into ImageRecords.

Today: one process, Pillow decode, NumPy hashes. The fast CPU path (a process pool,
JPEG draft decoding) and the GPU path plug in here behind the same function, so the
engine does not change when they arrive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..catalog.base import ImageRecord
from ..config import Config
from ..decode.cpu import PhotoError, decode
from ..files import FileError, chunked
from .codes import ALGORITHM_VERSION
from .cpu import hash_gray

#: progress(phase, done, total)
Progress = Callable[[str, int, int], None]


def record_for(path: str, max_pixels: int) -> ImageRecord:
    """Decode and hash one file (raises PhotoError)."""
    photo = decode(Path(path), max_pixels)
    exif = photo.exif
    return ImageRecord(
        path=path, checksum=photo.file.sha256, size_bytes=photo.file.size_bytes,
        mtime_ns=photo.file.mtime_ns, width=photo.width, height=photo.height, format=photo.format,
        orientation=photo.orientation, camera=exif.camera,
        taken_at=exif.taken_at.isoformat() if exif.taken_at else None, subsec=exif.subsec,
        exif_tags=exif.tag_count, codes=hash_gray(photo.gray), hash_version=ALGORITHM_VERSION,
    )


def hash_paths(paths: Sequence[str], config: Config,
               progress: Progress | None = None) -> Iterator[tuple[list[ImageRecord], list[FileError]]]:
    """Decode and hash ``paths`` in batches of ``config.batch_size``, in order.

    Yields (records, errors) per batch; a file that fails becomes a FileError and the
    rest go on. Each batch is yielded as soon as it is done so the caller can commit
    it: a run killed halfway keeps every finished batch.
    """
    done = 0
    for batch in chunked(list(paths), config.batch_size):
        records: list[ImageRecord] = []
        errors: list[FileError] = []
        for path in batch:
            try:
                records.append(record_for(path, config.max_pixels))
            except PhotoError as exc:
                errors.append(FileError(exc.path, exc.reason))
            done += 1
            if progress is not None:
                progress("hashing", done, len(paths))
        yield records, errors
