"""Start the worker processes' fork server while the command is still importing.

Every process of this package (pool workers, GPU processes) is forked from one fork server,
which imports NumPy, Pillow and the decoders first (``PRELOAD``, :func:`.pool.process_context`):
about 0.3 s of one core. Started when the pool is first asked for, that import runs after the
main process's own imports, while the other core waits. A command that will hash a whole
library starts the server from a thread at its first line instead, so the two imports run on
two cores at once. Measured on the 2-core development machine (docs/benchmarks.md), the first
0.8 s of find-duplicates on the 1,931-file peer library kept the two cores 0.15-0.2 core-seconds
busier; whole runs differ by less than that machine's noise.

This module imports nothing heavy: it runs before the engine is imported.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)

#: The module the fork server imports before it forks anything: the pool's own
#: (:func:`.pool.process_context` sets it too: whichever starts the server first).
PRELOAD = "lumina_plugin.ingest.pool"
#: Most directory entries looked at to tell whether a run is worth the server (a folder of
#: that many entries holding a few photos is a library too).
_LOOK_AT = 5000


def start_fork_server(paths: Sequence[str], extensions: Sequence[str], min_files: int, min_bytes: int) -> bool:
    """Start the fork server in a background thread when ``paths`` hold enough photo files to
    start the worker pool (at least ``min_files`` weighing ``min_bytes``: HashingSettings'
    parallel_min_files and parallel_min_mb), and return whether it was started.

    Only an early start: a run whose files turn out to be catalogued already forks nothing
    from it, and the server exits with this process. Nothing here can fail a run: the pool
    starts the server itself if this did not. On one core there is no other core to import
    on, and nothing is started.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods() or cpu_count() < 2:
        return False
    if not _enough(paths, tuple(e.lower() for e in extensions), max(2, min_files), min_bytes):
        return False
    multiprocessing.get_context("forkserver").set_forkserver_preload([PRELOAD])
    threading.Thread(target=_ensure_running, name="lumina-fork-server", daemon=True).start()
    return True


def _ensure_running() -> None:
    try:
        multiprocessing.forkserver.ensure_running()
    except Exception as exc:  # an early start only: the pool tries again, and says why
        log.debug("early start of the fork server failed: %s", exc)


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _enough(paths: Sequence[str], extensions: tuple[str, ...], min_files: int, min_bytes: int) -> bool:
    """Whether ``paths`` (files or folders, walked as files.discover walks them: no hidden
    names, no symlinked folders) hold ``min_files`` photo files of ``min_bytes`` in all,
    looking at no more than ``_LOOK_AT`` entries: past that, whether ``min_files`` were found."""
    files = weight = looked = 0
    stack = list(paths)
    while stack and looked < _LOOK_AT:
        path = stack.pop()
        looked += 1
        try:
            if os.path.isdir(path):
                with os.scandir(path) as entries:
                    for entry in entries:
                        looked += 1
                        if looked >= _LOOK_AT:
                            break
                        if entry.name.startswith("."):
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.name.lower().endswith(extensions) and entry.is_file():
                            files += 1
                            weight += entry.stat().st_size
                        if files >= min_files and weight >= min_bytes:
                            return True
            elif str(path).lower().endswith(extensions):
                files += 1
                weight += os.stat(path).st_size
        except OSError:  # unreadable or vanished: the run says so, per file
            continue
        if files >= min_files and weight >= min_bytes:
            return True
    return looked >= _LOOK_AT and files >= min_files
