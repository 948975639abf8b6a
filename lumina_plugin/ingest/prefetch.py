"""Ask the kernel to read files before the GPU processes' readers get to them.

A GPU process reads its batch's files with a few reader threads, one whole file each
(ingest/gpu_worker.py). From the page cache that keeps up with the JPEG engines; from
disk, each thread waits on one file at a time, and the disk sees a handful of requests
where it could serve dozens. ``posix_fadvise(POSIX_FADV_WILLNEED)`` on a file the
moment its batch is claimed hands the kernel the whole read at once: it queues the
file's pages for reading and returns, so the disk works on every claimed file in
parallel while the readers and the decoders work on the earlier ones. A file is only
advised, never read here, so a photo that vanished or cannot be opened is simply
skipped (its reader reports it). Where the call does not exist (not Linux or BSD)
nothing happens.

One :class:`Prefetcher` per run, on one daemon thread, so that a claim never waits
for the kernel: advising a file whose pages are not cached can block while the disk's
request queue is full.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterable

from ..decode.head import open_regular

__all__ = ["Prefetcher", "advise", "available"]

#: Files a Prefetcher remembers having advised (far more than a few batches of any size).
_SEEN = 8192


def available() -> bool:
    """Whether this platform can advise the kernel to read ahead."""
    return hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_WILLNEED")


def advise(path: str) -> bool:
    """Ask the kernel to start reading the whole of ``path`` into the page cache; False
    when it is not a regular file of a size the readers take (decode/head.py's
    ``open_regular``: a FIFO is opened without blocking, a file over ``MAX_FILE_BYTES`` is
    left alone) or cannot be opened. Nothing is raised: the reader that comes next says
    what is wrong with the file."""
    if not available():
        return False
    try:
        opened = open_regular(path)
    except OSError:
        return False
    if opened is None:
        return False
    with opened[0] as fh:
        try:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            return False
    return True


class Prefetcher:
    """Advises files in the order they are handed over, each once, on a thread of its own."""

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        # A file read ahead of its claim is handed over again at its claim, a batch or two
        # later: the last _SEEN files advised are remembered (not all: a run may hold millions).
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.advised = 0  # files the kernel was asked to read (for tests and profiles)
        self._thread = threading.Thread(target=self._run, name="lumina-prefetch", daemon=True)
        self._thread.start()

    def want(self, paths: Iterable[str]) -> None:
        """Queue ``paths`` (files just claimed for reading soon) to be advised, in order."""
        if not self._stop.is_set():
            self._todo.put(list(paths))

    def close(self, timeout: float = 5.0) -> None:
        """Drop what is still queued and end the thread (the run is over)."""
        self._stop.set()
        self._todo.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            paths = self._todo.get()
            if paths is None:
                return
            for path in paths:
                if self._stop.is_set():
                    return
                if path not in self._seen:
                    self._seen[path] = None
                    if len(self._seen) > _SEEN:
                        self._seen.popitem(last=False)
                    self.advised += advise(path)
