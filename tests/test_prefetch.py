"""Reading ahead of the GPU processes' readers (ingest/prefetch.py): the kernel is asked
to read a claimed file into the page cache, and a file that is not a readable regular file
is skipped without an error and without blocking."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import threading
import time
from pathlib import Path

import pytest

from lumina_plugin.decode.photo import MAX_FILE_BYTES
from lumina_plugin.ingest.prefetch import Prefetcher, advise, available

pytestmark = pytest.mark.skipif(not available() or not hasattr(os, "mkfifo"),
                                reason="no posix_fadvise on this platform")


def _resident(path: Path) -> float:
    """The share of ``path``'s pages in the page cache (mincore(2) over a read-only map)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            vec = (ctypes.c_ubyte * pages)()
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return sum(v & 1 for v in vec) / pages


def _drop(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture
def cold_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(os.urandom(4 << 20))
    _drop(path)
    if _resident(path) > 0.5:
        pytest.skip("this filesystem keeps the file cached (tmpfs?): nothing to prefetch")
    return path


def test_advise_reads_a_cold_file_into_the_page_cache(cold_file: Path) -> None:
    assert advise(str(cold_file))
    deadline = time.monotonic() + 30
    while _resident(cold_file) < 1.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _resident(cold_file) == 1.0


def test_the_prefetcher_advises_claimed_files_in_its_own_thread(cold_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.jpg"
    other.write_bytes(os.urandom(1 << 20))
    _drop(other)
    prefetcher = Prefetcher()
    try:
        prefetcher.want([str(cold_file), str(tmp_path / "vanished.jpg"), str(other)])
        prefetcher.want([str(other), str(cold_file)])  # read ahead of its claim, then claimed
        deadline = time.monotonic() + 30
        while prefetcher.advised < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        prefetcher.close()
    assert prefetcher.advised == 2  # each file once; the vanished one is skipped, the run goes on
    assert not prefetcher._thread.is_alive()


def test_what_is_not_a_regular_file_is_skipped_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    unreadable = tmp_path / "locked.jpg"
    unreadable.write_bytes(b"\xff\xd8")
    unreadable.chmod(0)
    huge = tmp_path / "huge.jpg"  # sparse: over the readers' size limit without using the disk
    with open(huge, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.extend(
        advise(str(p)) for p in (fifo, tmp_path, tmp_path / "gone.jpg", huge, empty, unreadable)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "advising a FIFO waited for a writer"
    # (root may open a file whose mode forbids it: then it is a regular file and advised)
    assert results[:5] == [False] * 5
    assert results[5] is (os.geteuid() == 0)


def test_a_closed_prefetcher_takes_no_more_work(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 100)
    prefetcher = Prefetcher()
    prefetcher.close()
    prefetcher.want([str(path)])
    time.sleep(0.05)
    assert prefetcher.advised == 0
