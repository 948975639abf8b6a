"""Files to hash records, in batches: the one place that turns paths into ImageRecords.

Which machinery runs is decided here, per run, from ``config.hashing`` and ``config.gpu``:

- fewer files than ``parallel_min_files``, or less than ``parallel_min_mb`` of them
  while no worker pool is running yet (or one core, or a daemonic process such as a
  Celery prefork worker, which may not start children): this process, one file at a time;
- else a process pool over the cores (ingest/pool.py) and, when the GPU mode
  (:func:`gpu_mode`: ``[gpu] use`` narrowed by ``[hashing] gpu``) is "auto" or "on" and a
  GPU passes its checks (ingest/gpu_processes.py), the GPU's JPEG engines and CuPy kernels
  beside it. "on" without a usable GPU logs one warning line and runs on the CPU; "auto"
  says nothing when there is none to use (:attr:`~lumina_plugin.gpu_status.Why.absent`),
  one line when one is there but fails its checks.

Every way yields the same thing: (records, errors) per ``config.batch_size`` files, in
path order, each batch as soon as it is complete.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING

from ..config import Config
from ..decode.photo import PhotoError
from ..files import FileError, chunked
from ..gpu_status import GpuProblem, Why
from ..model import ImageRecord
from ..settings.hashing import HashingSettings
from . import pool
from .prefetch import Prefetcher
from .prefetch import available as prefetch_available
from .records import record_for

if TYPE_CHECKING:
    from .gpu_processes import GpuProcess

__all__ = ["hash_paths", "record_for", "Progress", "gpu_mode", "gpu_status", "hashing_devices"]

#: progress(phase, done, total)
Progress = Callable[[str, int, int], None]
#: (records, errors) per batch, in path order; a generator, so a caller may close it halfway.
Batches = Generator[tuple[list[ImageRecord], list[FileError]], None, None]

log = logging.getLogger(__name__)

_WARNED: set[str] = set()
#: How the last run in this process was split: {"files", "workers", "gpu", "gpu_hashed"}
#: (for benchmarks and logs; "gpu_hashed" counts the files the GPU decoded and hashed).
LAST_RUN: dict[str, int | float | bool | dict[str, int] | list[float]] = {}


def _default_gpu_batch() -> int:
    from .gpu_processes import DEFAULT_BATCH

    return DEFAULT_BATCH


def _workers_beside_gpu(cores: int) -> int:
    """Pool workers beside the GPU: half the cores less one. The rest go to the GPU process
    (readers, checksums, the engines' feeding) and the main process (facts, records). Measured
    on the H100 machine (16 cores), same call: 13 workers gave 1,586 photos/s at 2 MP and 586 at
    12 MP, 7 workers 2,343 and 636; more CPU decoders starved the GPU of its feeders."""
    return max(1, cores // 2 - 1)


def _cpu_files_beside_gpu(settings: HashingSettings) -> int:
    """Whole files the pool decodes at once beside the GPU, besides those the GPU hands
    back. Automatic: none. At full decode a worker hashes 15-25 photos a second at 2 MP
    and 3 at 12 MP, against the GPU's thousands and hundreds: the pool's whole files were
    1-2.5% of a run, and took three to four more cores from the GPU processes' readers.
    Measured on the H200 machine (16 cores, benchmarks/gpu_split.py, docs/benchmarks.md),
    2 MP end to end: 3,372-3,775 photos/s with five whole files in flight (three hosts),
    3,506-3,899 with none (four hosts); 12 MP the same either way. Meanwhile the workers probe the GPU
    files' facts, which must not queue behind whole-file decodes, and decode whatever the
    GPU hands back."""
    return max(0, settings.cpu_files_beside_gpu)


def gpu_mode(config: Config) -> str:
    """How hashing uses the GPU: "auto", "on" or "off" (``[gpu] use`` narrowed by the older
    ``[hashing] gpu``; settings/gpu.py has the rule)."""
    return config.gpu.hashing_mode(config.hashing.gpu)


def gpu_status(config: Config | None = None) -> tuple[bool, GpuProblem | None]:
    """(usable, why not) for hashing with ``config`` (default settings when None): the GPU
    checks, run once per process (CuPy, device, self-check, nvImageCodec), without hashing
    anything; switched off, (False, :attr:`Why.SWITCHED_OFF`) without looking."""
    config = config or Config()
    if gpu_mode(config) == "off":
        return False, GpuProblem(Why.SWITCHED_OFF)
    from .gpu_processes import load_gpu

    procs, reason = load_gpu(devices=hashing_devices(config))
    return bool(procs), reason


def hashing_devices(config: Config) -> tuple[int, ...]:
    """The CUDA device of each GPU process group (``[gpu] devices``, ``--gpus``; settings/gpu.py):
    "all" asks CuPy how many it sees; a device it does not see is left out with one warning
    (all of them left out: the first, so the GPU checks say why)."""
    from ..gpu_status import device_count

    visible = device_count()
    wanted = config.gpu.hashing_devices(visible)
    if not visible or config.gpu.devices in ("", "all"):
        return wanted
    kept = tuple(d for d in wanted if d < visible)
    if len(kept) < len(wanted):
        missing = ", ".join(str(d) for d in sorted(set(wanted) - set(kept)))
        _warn_once("gpus", f"GPU device {missing} asked for in [gpu] devices / --gpus, "
                           f"{visible} visible (0-{visible - 1}); hashing on the others")
    return kept or wanted[:1]


def hash_paths(paths: Sequence[str], config: Config,
               progress: Progress | None = None) -> Batches:
    """Decode and hash ``paths`` in batches of ``config.batch_size``, in order.

    Yields (records, errors) per batch; a file that fails becomes a FileError and the
    rest go on. Each batch is yielded as soon as it is done so the caller can commit
    it: a run killed halfway keeps every finished batch.
    """
    paths = list(paths)
    settings = config.hashing
    small = len(paths) < max(2, settings.parallel_min_files) or (
        not pool.pool_running() and not _big_enough(paths, settings.parallel_min_mb << 20))
    if small or multiprocessing.current_process().daemon:
        yield from _in_process(paths, config, progress)
        return
    mode = gpu_mode(config)
    procs = _gpu_processes(config, mode) if mode != "off" else []
    # Another run of this process may hold some (a host's import beside a Find Duplicates):
    # this one takes those that are free, or runs on the CPU.
    gpus = [p for p in procs if p.in_use.acquire(blocking=False)]
    try:
        yield from _parallel(paths, config, progress, gpus)
    finally:
        for p in gpus:
            p.in_use.release()


def _parallel(paths: list[str], config: Config, progress: Progress | None,
              gpus: list[GpuProcess]) -> Batches:
    settings = config.hashing
    cores = pool.cpu_count()
    gpu = bool(gpus)
    workers = settings.workers or (_workers_beside_gpu(cores) if gpu else cores)
    if workers <= 1 and not gpu:
        yield from _in_process(paths, config, progress)
        return
    try:
        executor = pool.get_pool(workers)
    except (OSError, RuntimeError, ValueError) as exc:
        _warn_once("pool", f"cannot start hashing worker processes ({exc}); hashing in this process")
        yield from _in_process(paths, config, progress)
        return
    alone = workers + 2  # in-flight CPU files that keep every worker busy
    cpu_limit = _cpu_files_beside_gpu(settings) if gpu else alone
    # Beside the GPU the window must outlast the slowest CPU file: the GPU hashes a few
    # thousand small photos a second, and may claim nothing past the window while one
    # CPU file (slowed by everything else running) holds back the commits.
    lookahead = 4 * workers + (16 * len(gpus) * (settings.gpu_batch_size or _default_gpu_batch()))
    scheduler = pool.Scheduler(paths, config, executor, cpu_limit, lookahead, cpu_limit_alone=alone,
                               chunk_bytes=0 if gpu else pool.CHUNK_BYTES)
    from .gpu_processes import GpuFeeder, auto_batch

    batch = settings.gpu_batch_size or (auto_batch(paths) if gpus else 0)
    LAST_RUN.clear()
    LAST_RUN.update(files=len(paths), workers=workers, gpu=gpu, gpu_processes=len(gpus), gpu_hashed=0,
                    gpu_batch=batch, gpu_groups=len({p.slot for p in gpus}))
    prefetcher = Prefetcher() if gpus and settings.prefetch and prefetch_available() else None
    feeders = [GpuFeeder(scheduler, proc, batch, prefetcher, feeders=len(gpus)) for proc in gpus]
    for feeder in feeders:
        feeder.start()
    try:
        yield from scheduler.batches(progress)
    finally:
        scheduler.close()
        for feeder in feeders:
            feeder.join()
        if prefetcher is not None:
            prefetcher.close()
            LAST_RUN["prefetched"] = prefetcher.advised
        if feeders:
            hashed = sum(f.hashed for f in feeders)
            LAST_RUN["gpu_hashed"] = hashed
            by_slot: dict[str, int] = {}
            for f in feeders:
                key = f"{f.proc.slot[0]}:{f.proc.slot[1]}"  # group:device
                by_slot[key] = by_slot.get(key, 0) + f.hashed
            LAST_RUN["gpu_hashed_by_group"] = by_slot
            LAST_RUN["gpu_window_wait_s"] = round(max(f.window_wait for f in feeders), 3)
            # When each GPU process delivered its last batch: far apart, some of them idled
            # while one finished the run.
            LAST_RUN["gpu_last_answers_s"] = sorted(round(f.last_answer, 3) for f in feeders if f.hashed)
            log.info("hashed %d files, %d of them on the GPU", len(paths), hashed)


def _big_enough(paths: list[str], min_bytes: int) -> bool:
    """Whether the files weigh at least ``min_bytes`` (stats only as many as it takes)."""
    total = 0
    for path in paths:
        if total >= min_bytes:
            break
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    return len(paths) > 1 and total >= min_bytes


def _gpu_processes(config: Config, mode: str) -> list[GpuProcess]:
    from .gpu_processes import DEFAULT_PROCESSES, load_gpu

    procs, reason = load_gpu(config.hashing.gpu_processes or DEFAULT_PROCESSES, devices=hashing_devices(config))
    if not procs:
        # "auto" stays quiet when there is simply no GPU stack; a broken one is worth a line.
        if mode == "on" or reason is None or not reason.why.absent:
            _warn_once("gpu", f"GPU hashing unavailable ({reason}); hashing on the CPU")
    return procs


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


def _in_process(paths: list[str], config: Config,
                progress: Progress | None) -> Batches:
    done = 0
    for batch in chunked(paths, config.batch_size):
        records: list[ImageRecord] = []
        errors: list[FileError] = []
        with _one_blas_thread():
            for path in batch:
                try:
                    records.append(record_for(path, config.max_pixels, config.hashing.draft,
                                              config.hashing.decode))
                except PhotoError as exc:
                    errors.append(FileError(exc.path, exc.reason))
                done += 1
                if progress is not None:
                    progress("hashing", done, len(paths))
        yield records, errors  # outside the limit: the caller's own matrix work keeps its threads


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """The thumbnails' and geometry words' matrix products on one BLAS thread, as in the pool
    workers (pool._one_blas_thread): their matrices are small, and a BLAS thread per core
    only fights the other threads. Measured on the 2-core machine under load, one 320x200
    photo's four hashes took 221 ms with OpenBLAS's default threads and 30 ms with one."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a declared dependency; a bare environment may still lack it
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")
