"""An exclusive lock file that names its holder: one process at a time per catalog or queue.

``flock`` is released by the kernel when the holder dies, even by SIGKILL, so a crash
never leaves a stale lock behind; the pid written inside only serves the message.
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
    """Take ``path`` exclusively, waiting up to ``timeout`` seconds; raise LockHeld after that."""

    def __init__(self, path: Path, timeout: float = 0.0) -> None:
        fh: IO[str] = open(path, "a+")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    fh.close()
                    raise LockHeld(holder) from None
                time.sleep(0.1)
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
