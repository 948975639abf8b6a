"""A lock file that names its holder: one writer at a time per catalog or queue, readers beside each other.

``flock`` is released by the kernel when the holder dies, even by SIGKILL, so a crash
never leaves a stale lock behind; the pid written inside only serves the message.

A writer takes the lock exclusively (creating the file, writing its pid). A reader takes it
shared, on the file opened read-only and without writing to it: readers run side by side, a
writer waits for them and they for it, and a reader works on a read-only disk too.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO


class LockHeld(Exception):
    """The lock is held by another process; ``holder`` is its pid as written, or "unknown"."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(holder)


class LockFile:
    """Take ``path`` exclusively (``shared``: shared), waiting up to ``timeout`` seconds; raise
    LockHeld after that. A shared lock opens the file read-only and never creates it: OSError
    (FileNotFoundError, PermissionError) when it cannot be opened, for the caller to judge."""

    def __init__(self, path: Path, timeout: float = 0.0, shared: bool = False) -> None:
        fh: IO[str] = open(path, "r" if shared else "a+")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    fh.close()
                    raise LockHeld(holder) from None
                time.sleep(0.1)
        if not shared:  # a reader leaves the file as it is (it may be on a read-only disk)
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        self._fh: IO[str] | None = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
