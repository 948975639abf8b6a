"""Hashing on every core, and beside the GPU: a process pool fed in file order, results
handed back in batches, in order.

One :class:`Scheduler` per run. Files are *claimed* in path order from one cursor by
whoever is free: the main thread keeps ``cpu_limit`` whole-file tasks (decode + hash,
:func:`full_tasks`: small files a few to a task) in the pool, and the GPU feeder
(ingest/gpu_processes.py), when there is one, claims a batch at a time. So the CPU and the
GPU split the work by their real speeds. Claims never run more than a window ahead of the last batch handed out, which
bounds memory and what a killed run loses. Each file ends as exactly one outcome (an
ImageRecord or a FileError); :meth:`Scheduler.batches` yields them per
``config.batch_size`` in path order, as soon as a batch is complete, so the caller's
batch commits keep their meaning.

The pool is started lazily, once per process, with ``forkserver`` (safe beside threads
and a CUDA context; :func:`process_context`) and reused by later runs; its workers ignore
Ctrl-C so that only the main process decides what an interrupt does. If the pool breaks
(a worker killed), the rest of the run is done in this process, with one warning.
"""

from __future__ import annotations

import atexit
import functools
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext

from ..config import Config
from ..decode.head import probe_head
from ..decode.photo import PhotoError, PhotoFacts
from ..files import FileError
from ..model import ImageRecord
from .early_start import PRELOAD
from .early_start import cpu_count as cpu_count  # (re-exported: the pipeline and engine ask here)
from .records import record_for

Outcome = ImageRecord | FileError
Progress = Callable[[str, int, int], None]

log = logging.getLogger(__name__)


# -- what runs in a worker process -----------------------------------------------------------

def full_task(path: str, max_pixels: int, draft: int, mode: str = "exact") -> Outcome:
    """Read, decode and hash one file on the CPU (``mode``: HashingSettings.decode)."""
    try:
        return record_for(path, max_pixels, draft, mode)
    except PhotoError as exc:
        return FileError(exc.path, exc.reason)


def full_tasks(paths: list[str], max_pixels: int, draft: int, mode: str = "exact") -> list[Outcome]:
    """:func:`full_task` for a few small files in one round trip: a scan of a few kilobytes
    hashes in about 3 ms, and a task's trip through the pool's queues costs the main
    process a good part of that again (measured on 2 cores: 23% of a tile library's import)."""
    return [full_task(path, max_pixels, draft, mode) for path in paths]


def facts_task(paths: list[str], max_pixels: int) -> list[PhotoFacts | FileError]:
    """Everything but the pixels and the checksum of a few files whose pixels the GPU
    decodes (it checksums the bytes it decodes; decode/head.py)."""
    out: list[PhotoFacts | FileError] = []
    for path in paths:
        try:
            out.append(probe_head(path, max_pixels))
        except PhotoError as exc:
            out.append(FileError(exc.path, exc.reason))
    return out


#: A CPU task takes files until they weigh CHUNK_BYTES, at most CHUNK_FILES of them (when the
#: CPU hashes alone): small scans share a round trip, a camera file goes alone.
CHUNK_BYTES = 1 << 20
CHUNK_FILES = 16

#: Workers run at this niceness: beside the GPU, decoding on every core would starve the
#: threads that feed the JPEG engines (measured: the GPU's share fell from about 680 to
#: 510 photos/s at 12 MP), and a host's web server should stay responsive meanwhile.
_NICE = 5


def _worker_init(parent_alive: Connection) -> None:
    """Lower the priority, ignore Ctrl-C (the main process decides), and exit when the
    main process dies.

    Workers would otherwise outlive a main process killed with SIGKILL: each holds the
    write end of its own task queue, so it never sees end-of-file, and keeps the main
    process's stdout and stderr open. ``parent_alive`` is the read end of a pipe whose
    only write end the main process holds: it reads end-of-file when that process dies.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # background work: the host, the main process and the GPU process come first
        os.nice(_NICE)
    except (AttributeError, OSError):
        pass
    threading.Thread(target=_exit_with_parent, args=(parent_alive,), daemon=True,
                     name="lumina-parent-watch").start()
    _one_blas_thread()


def _one_blas_thread() -> None:
    """Run this worker's matrix products (the thumbnails' row pass) on one thread: a pool
    of N workers whose BLAS each started a thread per core would run N x cores threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a declared dependency; a bare environment may still lack it
        return
    threadpool_limits(1, user_api="blas")


def _exit_with_parent(parent_alive: Connection) -> None:
    try:
        parent_alive.recv_bytes()  # nothing is ever sent: this returns only at end-of-file
    except (EOFError, OSError):
        pass
    os._exit(0)


# -- the pool ---------------------------------------------------------------------------------

_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
_POOL_ALIVE: Connection | None = None  # write end of the workers' parent-alive pipe
_POOL_LOCK = threading.Lock()


def process_context() -> ForkServerContext | SpawnContext:
    """How this package starts every process of its own (pool workers, GPU processes):
    ``forkserver``, never a plain fork (a process may hold threads and a CUDA context).
    The server preloads this module, so each new process starts with NumPy, Pillow and
    the decoders already imported instead of importing them itself (about 0.3 s of CPU
    each). The preload takes effect when the server starts, so whichever process starts
    first, pool worker or GPU process, must ask here. ``spawn`` where there is no forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])  # this module
    return ctx


def get_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of ``workers`` processes, started on first use and then kept."""
    global _POOL, _POOL_WORKERS, _POOL_ALIVE
    if _POOL is not None and _POOL_WORKERS != workers:
        shutdown_pool(wait=False)
    with _POOL_LOCK:
        if _POOL is None:
            ctx = process_context()
            reader, _POOL_ALIVE = ctx.Pipe(duplex=False)
            _POOL = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                        initializer=_worker_init, initargs=(reader,))
            _POOL_WORKERS = workers
        return _POOL


def running_workers() -> int:
    """How many processes the running pool has; 0 when none was started."""
    return _POOL_WORKERS if _POOL is not None else 0


def pool_running() -> bool:
    """Whether this process has started its worker pool."""
    return _POOL is not None


def shutdown_pool(wait: bool = True) -> None:
    """Stop the worker processes (a later run starts them again)."""
    global _POOL, _POOL_ALIVE
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
        alive, _POOL_ALIVE = _POOL_ALIVE, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)
    if alive is not None and wait:
        alive.close()  # (without waiting, idle workers still exit through their queue)


atexit.register(shutdown_pool, False)


# -- one run ----------------------------------------------------------------------------------

class Scheduler:
    """Claims, outcomes and ordered batches of one run (see the module docstring)."""

    def __init__(self, paths: Sequence[str], config: Config, pool: ProcessPoolExecutor,
                 cpu_limit: int, lookahead: int, cpu_limit_alone: int | None = None,
                 chunk_bytes: int = 0) -> None:
        self.paths = list(paths)
        # The CPU's tasks take files until they weigh this much (at most CHUNK_FILES): 0, one
        # file a task (beside the GPU, whose claims count files).
        self.chunk_bytes = chunk_bytes
        self.config = config
        self.pool = pool
        self.cpu_limit = cpu_limit
        # What the CPU takes on once the GPU is gone (see gpu_lost).
        self.cpu_limit_alone = max(cpu_limit, cpu_limit_alone or 0)
        self.window = max(1, config.batch_size) + lookahead
        self.cond = threading.Condition()
        self.cursor = 0          # next file nobody has claimed
        self.committed = 0       # files handed to the caller
        self.contiguous = 0      # first file without an outcome
        self.completed = 0
        self.outcomes: dict[int, Outcome] = {}
        self.cpu_inflight = 0
        self.failure: BaseException | None = None
        self.broken = False
        self.retry: list[int] = []
        self.futures: set[Future] = set()
        self.closed = False

    # -- claims and outcomes (any thread) --
    def claim(self, count: int) -> list[int]:
        """Up to ``count`` next unclaimed files within the window (maybe none)."""
        with self.cond:
            end = min(len(self.paths), self.committed + self.window, self.cursor + count)
            claimed = list(range(self.cursor, max(self.cursor, end)))
            self.cursor = max(self.cursor, end)
            return claimed

    def unclaimed(self) -> int:
        """Files nobody has claimed yet."""
        with self.cond:
            return max(0, len(self.paths) - self.cursor)

    def upcoming(self, count: int) -> list[str]:
        """The paths of the next ``count`` unclaimed files, left unclaimed (to read ahead)."""
        with self.cond:
            return self.paths[self.cursor:self.cursor + max(0, count)]

    def all_claimed(self) -> bool:
        with self.cond:
            return self.cursor >= len(self.paths) or self.closed

    def wait(self, timeout: float) -> None:
        """Sleep until something changes (an outcome, a commit) or ``timeout`` passes."""
        with self.cond:
            self.cond.wait(timeout)

    def put(self, index: int, outcome: Outcome) -> None:
        with self.cond:
            if index in self.outcomes or index < self.committed:
                return
            self.outcomes[index] = outcome
            self.completed += 1
            while self.contiguous in self.outcomes:
                self.contiguous += 1
            self.cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """End the run with ``exc`` (raised in the caller's thread)."""
        with self.cond:
            self.failure = self.failure or exc
            self.cond.notify_all()

    def gpu_lost(self) -> None:
        """The GPU stopped mid-run: the CPU claims the rest, at full pool width (beside
        the GPU it may have taken no whole files at all)."""
        with self.cond:
            self.cpu_limit = self.cpu_limit_alone
            self.cond.notify_all()

    def submit_full(self, indices: Sequence[int], counted: bool = False) -> None:
        """Decode and hash these files on the CPU pool, a task each (in this process once it
        broke); ``counted``: each is one of the ``cpu_limit`` in flight."""
        for i in indices:
            self.submit_chunk([i], counted)

    def submit_chunk(self, indices: Sequence[int], counted: bool = True) -> None:
        """Decode and hash these files on the CPU pool as one task."""
        indices = list(indices)
        with self.cond:
            if self.broken or self.closed:
                self.retry.extend(indices)
                self.cond.notify_all()
                return
        try:
            fut = self.pool.submit(full_tasks, [self.paths[i] for i in indices], self.config.max_pixels,
                                   self.config.hashing.draft, self.config.hashing.decode)
        except (BrokenProcessPool, RuntimeError):
            self._pool_broke(indices)
            return
        with self.cond:
            self.futures.add(fut)
            if counted:
                self.cpu_inflight += 1
        fut.add_done_callback(functools.partial(self._done, indices=indices, counted=counted))

    def _claim_chunk(self) -> list[int]:
        """The next files for one CPU task: one, or while small, up to CHUNK_FILES."""
        claimed = self.claim(1)
        if not self.chunk_bytes or not claimed:
            return claimed
        weight = _weight(self.paths[claimed[0]])
        while weight < self.chunk_bytes and len(claimed) < CHUNK_FILES:
            more = self.claim(1)
            if not more:
                break
            claimed += more
            weight += _weight(self.paths[more[0]])
        return claimed

    def submit_facts(self, indices: Sequence[int]) -> Future:
        """Probe these files' heads in the pool; the future gives one PhotoFacts (its
        checksum possibly left empty, see :func:`facts_task`) or FileError each."""
        fut = self.pool.submit(facts_task, [self.paths[i] for i in indices], self.config.max_pixels)
        with self.cond:
            self.futures.add(fut)
        fut.add_done_callback(self._discard)
        return fut

    def _discard(self, fut: Future) -> None:
        with self.cond:
            self.futures.discard(fut)

    def _done(self, fut: Future, indices: list[int], counted: bool) -> None:
        """A CPU task ended: its files' outcomes are put in place."""
        with self.cond:
            self.futures.discard(fut)
            if counted:
                self.cpu_inflight -= 1
            self.cond.notify_all()
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            for index, outcome in zip(indices, fut.result(), strict=True):
                self.put(index, outcome)
        elif isinstance(exc, BrokenProcessPool):
            self._pool_broke(indices)
        else:
            self.fail(exc)

    def _pool_broke(self, indices: list[int]) -> None:
        with self.cond:
            first = not self.broken
            self.broken = True
            self.retry.extend(indices)
            self.cond.notify_all()
        if first:
            log.warning("a hashing worker process died; hashing the rest in this process")

    # -- the caller's thread --
    def _pump(self) -> None:
        """Keep the pool busy; once it broke, hash one file here."""
        with self.cond:
            broken, retry = self.broken, self.retry
            self.retry = []
        if broken:
            shutdown_pool(wait=False)  # the next run starts a fresh pool
            if not retry:
                retry = self.claim(1)
            for i in retry:
                self.put(i, _in_process(self.paths[i], self.config))
            return
        while True:
            with self.cond:
                if self.cpu_inflight >= self.cpu_limit:
                    return
            claimed = self._claim_chunk()
            if not claimed:
                return
            self.submit_chunk(claimed)

    def batches(self, progress: Progress | None = None) -> Iterator[tuple[list[ImageRecord], list[FileError]]]:
        """The run's outcomes, ``config.batch_size`` files at a time, in path order."""
        total, size = len(self.paths), max(1, self.config.batch_size)
        reported = -1
        try:
            for start in range(0, total, size):
                end = min(total, start + size)
                while True:
                    self._pump()
                    with self.cond:
                        if self.failure is not None:
                            raise self.failure
                        done, completed = self.contiguous >= end, self.completed
                        if not done and not self.broken:
                            self.cond.wait(0.1)
                    if progress is not None and completed != reported:
                        reported = completed
                        progress("hashing", min(completed, total), total)
                    if done:
                        break
                with self.cond:
                    batch = [self.outcomes.pop(i) for i in range(start, end)]
                    self.committed = end
                    self.cond.notify_all()
                yield ([o for o in batch if isinstance(o, ImageRecord)],
                       [o for o in batch if isinstance(o, FileError)])
        finally:
            self.close()

    def close(self) -> None:
        """Stop claiming; cancel what has not started (a killed run keeps what it yielded)."""
        with self.cond:
            self.closed = True
            self.cursor = len(self.paths)
            futures = list(self.futures)
            self.cond.notify_all()
        for fut in futures:
            fut.cancel()


def _weight(path: str) -> int:
    """A file's size for chunking (a file that cannot be read weighs a whole chunk: its
    error comes back from the worker, alone)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 1 << 40


def _in_process(path: str, config: Config) -> Outcome:
    return full_task(path, config.max_pixels, config.hashing.draft, config.hashing.decode)
