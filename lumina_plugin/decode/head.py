"""The facts of a photo whose pixels and checksum the GPU process reads: from its head.

Beside the GPU, the CPU pool still gathers each photo's facts (format, mode, size,
orientation, EXIF). Reading and checksumming the whole file for that repeated what the
GPU process does anyway, so for a JPEG whose header segments all lie within the first
:data:`HEAD_BYTES`, only that head is read and the checksum is left empty, for the GPU
process's own (of the very bytes it decoded) to fill in; a camera RAW with a preview is read
whole (its preview may lie anywhere) but not checksummed either. Anything else is probed whole.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from . import raw
from .exif import read_exif
from .jpeg_header import JpegHeader, read_jpeg_header
from .photo import MAX_FILE_BYTES, FileFacts, PhotoFacts, _displayed_size, _opened, _raw_source, facts_of_opened, probe

#: Header segments of camera JPEGs (EXIF with maker notes, XMP, ICC) fit well within this.
HEAD_BYTES = 256 * 1024


def open_regular(path: Path | str) -> tuple[BinaryIO, os.stat_result] | None:
    """(the open file, its status) when ``path`` is a regular file of a size we read,
    else None. Opened without blocking, so a FIFO or device named like a photo cannot
    hang the reader; raises OSError when it cannot be opened at all."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= MAX_FILE_BYTES:
        return fh, st
    fh.close()
    return None


def probe_head(path: Path | str, max_pixels: int = 250_000_000) -> PhotoFacts:
    """:func:`~.cpu.probe`'s facts with ``file.sha256`` empty, read from the file's head
    when it is a JPEG whose header ends there, or from the whole file, unchecksummed, when it
    is a camera RAW with a JPEG preview (the GPU process reads and checksums it too);
    otherwise :func:`~.cpu.probe` itself. Raises PhotoError like it."""
    head, header, data = b"", None, None
    try:
        opened = open_regular(path)
        if opened is not None:
            with opened[0] as fh:
                head, st = fh.read(HEAD_BYTES), opened[1]
                header = read_jpeg_header(head) if head else None
                if header is None and _looks_raw(path, head):
                    data = head + fh.read(st.st_size + 1 - len(head))
    except OSError:
        data = None
    if data is not None and len(data) == st.st_size:
        facts = _raw_facts(path, data, st, max_pixels)
        if facts is not None:
            return facts
    if header is None:  # the full probe says what is wrong, if anything
        return probe(Path(path), max_pixels)
    file = FileFacts(path=str(path), size_bytes=st.st_size, mtime_ns=st.st_mtime_ns, sha256="")
    facts = _camera_jpeg_facts(header, head, file, max_pixels)
    if facts is not None:
        return facts
    with _opened(path, head, max_pixels) as im:
        return facts_of_opened(im, file, head)


def _looks_raw(path: Path | str, head: bytes) -> bool:
    """Whether the head names a RAW container (a damaged one too: the full probe says why)."""
    try:
        return raw.identify(path, head) is not None
    except Exception:  # (a head cut short inside a structure): the full probe decides
        return False


def _raw_facts(path: Path | str, data: bytes, st: os.stat_result, max_pixels: int) -> PhotoFacts | None:
    """:func:`~.photo.probe`'s facts of a RAW read whole (``data``) with ``file.sha256`` empty,
    when it has a preview (the pool's facts of a RAW beside the GPU checksummed all of it, as
    the GPU process does anyway); None for one without (LibRaw: the full probe then)."""
    source = _raw_source(path, data, max_pixels)
    if source is None or source.preview is None:
        return None
    file = FileFacts(path=str(path), size_bytes=len(data), mtime_ns=st.st_mtime_ns, sha256="")
    with _opened(path, source.preview.jpeg, max_pixels) as im:
        return facts_of_opened(im, file, data, source)


def _camera_jpeg_facts(header: JpegHeader, head: bytes, file: FileFacts, max_pixels: int) -> PhotoFacts | None:
    """The facts Pillow's open would give, from the header walk alone, for the JPEGs the GPU
    takes (8-bit, three components, sequential; Pillow's mode is then always RGB); None
    where only Pillow can tell: an orientation left open, a size at the pixel limit (Pillow
    words that refusal), EXIF that exifread cannot read (Pillow's own EXIF block is the
    fallback). Beside the GPU this runs for every photo; Pillow's open cost as much as
    exifread here."""
    if not header.camera_frame or header.orientation is None or not max_pixels or header.width * header.height > max_pixels:
        return None
    exif = read_exif(head)
    if exif.tag_count == 0 and header.has_exif:
        return None
    width, height = _displayed_size((header.width, header.height), header.orientation)
    return PhotoFacts(file=file, format="JPEG", width=width, height=height, orientation=header.orientation,
                      mode="RGB", exif=exif, progressive=False)
