"""The GPU's share of a run, seen from the main process.

The decoding and hashing happen in the GPU process (ingest/gpu_worker.py, which says
why it is a process). Here :class:`GpuFeeder` claims batches of files from the run's
:class:`~.parallel.Scheduler`, sends them to that process, and meanwhile has the CPU pool
probe their facts (EXIF, size, format: everything but the pixels and the checksum, which
the GPU process computes from the bytes it decodes). When the code words come back (all
``CODE_WORDS`` of them: the four hashes and the geometry words) it joins them to the facts
in ImageRecords. Everything the GPU did not take, or
that the facts contradict, goes to the CPU pool whole:

    claim a batch --> GPU process: read (threads), decode (engines), hash (kernels) --> codes --\\
                 \\--> CPU pool: facts ----------------------------------------------------------+--> records

At most ``_IN_FLIGHT`` batches are out at a time, so the GPU process reads the next
batches while it decodes one, and memory stays bounded. If the GPU process fails or
dies, one warning is logged and every file it held goes to the CPU: the run finishes.

:func:`load_gpu` starts the GPU processes once per main process (lazily) and keeps them; when
none can be used it says why with a :class:`~lumina_plugin.gpu_status.GpuProblem`.
There are four by default (``HashingSettings.gpu_processes``), each fed by a
:class:`GpuFeeder` of its own: nvImageCodec's ``decode`` call blocks until its batch is
decoded, and around it the process spends a fifth of its time in Python (wrapping the
images, queueing the kernels, answering), during which its engines would wait. Measured
on the H100 (docs/benchmarks.md), 2 MP photos end to end: one GPU process 2,024 a second,
two 3,348, later four 5,280 against two's 4,796 (a second thread in one process would fight
the decode call for the GIL).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import replace
from typing import Any

from ..decode.photo import FileFacts, PhotoFacts
from ..files import HEIF_EXTENSIONS, FileError
from ..gpu_status import GpuProblem, Why, cupy_problem, first_line
from ..model import algorithm_version
from .pool import Scheduler, process_context
from .prefetch import Prefetcher
from .records import record_from

log = logging.getLogger(__name__)

#: Most photos per batch when HashingSettings.gpu_batch_size is 0. Measured on the H100, 2 MP,
#: reduced, same run: 4,206 photos/s at 128 and 4,435 at 256 with 2 processes, 4,517 and
#: 4,802 with 4 (docs/benchmarks.md): fewer calls per photo into the decoder and kernels.
DEFAULT_BATCH = 256
#: ... and at most about this many bytes of files a batch (:func:`auto_batch`). Files out of
#: the page cache are read before they are decoded, and the processes share the disk: on the
#: H100 with 12 MP camera files read cold, batches of 64 gave 85% of the cached run's photos/s,
#: 128 and 256 gave 73-76%; cached, 64 and 128 decoded alike (docs/benchmarks.md).
BATCH_BYTES = 224 << 20
#: The fewest photos a batch of :func:`auto_batch` holds.
MIN_BATCH = 32
#: Batches sent to the GPU process and not yet answered.
_IN_FLIGHT = 3
#: The fewest photos a batch claimed near a run's end holds (:func:`tail_batch`).
TAIL_BATCH = 8
#: Files per facts task sent to the pool.
_FACTS_CHUNK = 8
#: Seconds the GPU process may take to start (CuPy import, kernel compile, self-check).
_START_TIMEOUT = 120.0


class GpuProcess:
    """The GPU process and its two pipes; one run at a time may use it."""

    def __init__(self, share: int = 1, target: Callable[..., None] | None = None, device: int = 0,
                 group: int = 0) -> None:
        """Start ``target`` (the GPU process's main loop, gpu_worker.serve; tests pass a
        stand-in that speaks the same protocol) in a new process, on CUDA ``device``; it may
        use 1/``share`` of the GPU memory that batches may take. ``group``: which entry of
        ``[gpu] devices`` it serves (two entries may name one device)."""
        from . import gpu_worker

        self.slot = (group, device)

        ctx = process_context()  # never a fork of a process that may hold a CUDA context
        req_r, self.requests = ctx.Pipe(duplex=False)
        self.results, res_w = ctx.Pipe(duplex=False)
        # (device only when not the default: the stand-ins of tests and benchmarks take three arguments)
        self.process = ctx.Process(target=target or gpu_worker.serve, args=(req_r, res_w, share),
                                   kwargs={"device": device} if device else {}, daemon=True, name="lumina-gpu")
        self.process.start()
        req_r.close()
        res_w.close()
        self.device = ""
        self.in_use = threading.Lock()
        self.send_lock = threading.Lock()
        self.batch_ids = itertools.count()

    def handshake(self) -> GpuProblem | None:
        """Wait for the process's self-report: None when ready, else why it is unusable."""
        if not self.results.poll(_START_TIMEOUT):
            self.stop()
            return GpuProblem(Why.FAILED, "the GPU process did not start in time")
        try:
            kind, detail = self.results.recv()
        except (EOFError, OSError):
            return GpuProblem(Why.FAILED, "the GPU process died while starting")
        if kind != "ready":
            self.process.join(5)
            return detail if isinstance(detail, GpuProblem) else GpuProblem(Why.FAILED, str(detail))
        self.device = str(detail)
        return None

    def send(self, message: Any) -> None:
        """Send one request (a batch, or None to stop) to the GPU process."""
        with self.send_lock:
            self.requests.send(message)

    def stop(self) -> None:
        """Ask the GPU process to stop; kill it when it has not within 5 seconds."""
        try:
            self.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


def auto_batch(paths: Sequence[str], most: int = DEFAULT_BATCH, sample: int = 32) -> int:
    """Photos per GPU batch for a run over ``paths``: ``most``, or fewer when the files are
    large, so that a batch holds about ``BATCH_BYTES`` (the median size of up to ``sample``
    files spread over the run; unreadable ones are skipped), never fewer than ``MIN_BATCH``."""
    step = max(1, len(paths) // max(1, sample))
    sizes = []
    for path in paths[::step][:sample]:
        try:
            sizes.append(os.stat(path).st_size)
        except OSError:
            pass
    if not sizes:
        return most
    median = sorted(sizes)[len(sizes) // 2]
    return max(min(most, MIN_BATCH), min(most, BATCH_BYTES // max(1, median)))


#: Processes started when HashingSettings.gpu_processes is 0 (per group, ``[gpu] devices``).
#: Each runs Python between its decode calls (wrapping, queueing kernels, answering) and
#: waits for its reader threads, while its engines wait for another process to feed them.
#: Measured on the H100, runs long enough to leave the start behind (8,000 photos at 12 MP,
#: 30,000 at 2 MP), against two decode-only feeders from memory: at 2 MP (ceiling 5,372/s)
#: 2 processes 4,796/s (89%), 4 5,280/s (98%); at 12 MP (933/s) 990 and 976 (both above
#: it: the CPU pool decodes beside them). Shorter runs of 2,000-6,000 photos had suggested
#: two (docs/benchmarks.md): the first batches of four processes were most of such a run.
DEFAULT_PROCESSES = 4
_PROCESSES: list[GpuProcess] = []
_REASON: GpuProblem | None = None
_LOADED = False
_LOAD_LOCK = threading.Lock()


def load_gpu(processes: int = 1, device: int = 0,
             devices: Sequence[int] | None = None) -> tuple[list[GpuProcess], GpuProblem | None]:
    """(the GPU processes, None) when CuPy, a device, nvImageCodec and the kernels'
    self-check are all good; else ([], why not). ``processes`` per group, one group per entry
    of ``devices`` (default: ``device`` alone), in that order: with ``[gpu] devices = "0,1"``
    two groups, one on each device; with "0,0" two groups on device 0 (the several-GPU path
    on a one-GPU machine). Usability is decided once per process, by the first call's
    processes; later calls start the processes they lack (one that fails to start is left
    out: the run uses those that did), and none once the GPU failed."""
    global _REASON, _LOADED
    groups = list(devices) if devices else [device]
    with _LOAD_LOCK:
        if not _LOADED:
            _LOADED = True
            # No CuPy or no device: no need to start a process to know.
            _REASON = cupy_problem() or _start(groups, max(1, processes))
        elif _PROCESSES:
            _start(groups, max(1, processes))
        picked = [p for g, d in enumerate(groups)
                  for p in [q for q in _PROCESSES if q.slot == (g, d)][:max(1, processes)]]
        return picked, _REASON


def _start(groups: list[int], processes: int) -> GpuProblem | None:
    """Start what ``groups`` (a device per group) lack of ``processes`` GPU processes each,
    all at once (each takes a second or two to load); keep those that report ready. None
    when any runs, or why the first one could not be used."""
    wanted = [(g, d) for g, d in enumerate(groups)
              for _ in range(processes - sum(p.slot == (g, d) for p in _PROCESSES))]
    started: list[GpuProcess] = []
    reasons: list[GpuProblem] = []
    for group, device in wanted:
        # A device's memory is shared out among every process on it, whichever group they
        # serve (one started later sees less free memory when it sizes its own share).
        share = sum(p.slot[1] == device for p in _PROCESSES) + sum(d == device for _, d in wanted)
        try:
            started.append(GpuProcess(share=share, device=device, group=group))
        except Exception as exc:  # cannot even start one: the CPU does the work
            reasons.append(GpuProblem.of(Why.FAILED, exc))
    for proc in started:
        reason = proc.handshake()
        if reason is None:
            _PROCESSES.append(proc)
        else:
            log.debug("GPU process on device %d not used: %s", proc.slot[1], reason)
            reasons.append(reason)
    if _PROCESSES:
        return None
    return reasons[0] if reasons else GpuProblem(Why.FAILED, "no GPU process started")


def _unload(reason: str, proc: GpuProcess) -> bool:
    """Forget every GPU process after one failed (a failing device fails them all): later
    runs use the CPU and say why. True for the first caller, who should say it once."""
    global _REASON
    with _LOAD_LOCK:
        first = proc in _PROCESSES
        procs = list(_PROCESSES) if first else [proc]
        if first:
            _PROCESSES.clear()
            _REASON = GpuProblem(Why.FAILED, reason)
    for p in procs:
        p.stop()
    return first


class GpuFeeder:
    """The GPU's share of one :class:`Scheduler` run, on two threads of its own."""

    def __init__(self, scheduler: Scheduler, proc: GpuProcess, batch_size: int,
                 prefetcher: Prefetcher | None = None, feeders: int = 1) -> None:
        self.sched = scheduler
        self.prefetcher = prefetcher  # told of each claimed batch, so the disk reads it ahead
        self.proc = proc
        self.batch = max(1, batch_size or DEFAULT_BATCH)
        self.feeders = max(1, feeders)  # of this run, which share its files
        self.slots = threading.Semaphore(_IN_FLIGHT)
        self.lock = threading.Lock()
        self.out: dict[int, dict[int, tuple[Future, int]]] = {}  # batch id -> index -> facts
        self.sent_all = threading.Event()
        self.failed = threading.Event()
        self.hashed = 0  # files decoded and hashed on the GPU
        self.version = algorithm_version(scheduler.config.hashing.decode)  # stamped on its records
        self.window_wait = 0.0  # seconds the GPU had a free slot but no file it could claim
        self.facts_wait = 0.0  # seconds the GPU's codes waited for the CPU pool's facts
        self.started = time.perf_counter()
        self.last_answer = 0.0  # seconds from the start to its last batch's delivery
        self.threads = [threading.Thread(target=self._feed, name="lumina-gpu-feed", daemon=True),
                        threading.Thread(target=self._collect, name="lumina-gpu-collect", daemon=True)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float = 60.0) -> None:
        for t in self.threads:
            t.join(timeout)
        if os.environ.get("LUMINA_GPU_PROFILE"):
            log.warning("GPU feeder: %d photos hashed; waited %.2f s for the window, %.2f s for facts",
                        self.hashed, self.window_wait, self.facts_wait)

    def _fail(self, reason: str) -> None:
        with self.lock:
            if self.failed.is_set():
                return
            self.failed.set()
            orphans = sorted(i for batch in self.out.values() for i in batch)
            self.out.clear()
        if _unload(reason, self.proc):
            log.warning("GPU hashing stopped (%s); the CPU takes the rest", reason)
        self.sched.gpu_lost()
        self.sched.submit_full(orphans)

    # -- claim and send --
    def _feed(self) -> None:
        claimed: list[int] = []  # claimed, and not yet registered in self.out
        try:
            while not self.failed.is_set():
                if not self.slots.acquire(timeout=0.1):
                    continue
                claimed = self.sched.claim(tail_batch(self.batch, self.sched.unclaimed(), self.feeders))
                if not claimed:
                    self.slots.release()
                    if self.sched.all_claimed():
                        return
                    # The window is full: files before it (the CPU's, or a batch not
                    # yet committed) hold the GPU back. Counted, so a run can tell.
                    began = time.perf_counter()
                    self.sched.wait(0.05)
                    self.window_wait += time.perf_counter() - began
                    continue
                # Files the engines never decode (PNG, TIFF, HEIC...) go to the CPU now, not
                # after the GPU process has read them for nothing and handed them back.
                # (``claimed`` keeps them until they are submitted: a failure before then hands
                # every claimed file to the CPU.)
                gpu: list[int] = []
                cpu: list[int] = []
                for i in claimed:
                    (gpu if engine_may_decode(self.sched.paths[i]) else cpu).append(i)
                if self.prefetcher is not None and gpu:
                    # Only a batch that holds a GPU slot: those are at most _IN_FLIGHT per
                    # feeder. A batch of CPU files alone frees its slot at once, so a library
                    # of PNGs would be claimed (and read ahead) up to the whole window.
                    # The batches after it too: the disk reads them while the engines
                    # decode this one (the prefetcher advises each file once).
                    ahead = self.sched.upcoming(self.batch * self.sched.config.hashing.prefetch_ahead)
                    self.prefetcher.want([self.sched.paths[i] for i in claimed] + ahead)
                facts = self._facts_for(gpu)
                self.sched.submit_full(cpu)  # (after the facts, which the GPU's answers wait for)
                claimed = gpu
                if not claimed:
                    self.slots.release()
                    continue
                batch_id = next(self.proc.batch_ids)
                with self.lock:  # registered before sending: a failure from here on finds it
                    failed = self.failed.is_set()
                    if not failed:
                        self.out[batch_id] = facts
                if failed:
                    self.sched.submit_full(claimed)
                    return
                sending, claimed = claimed, []
                try:
                    self.proc.send(("batch", batch_id, [(i, self.sched.paths[i]) for i in sending],
                                    self.sched.config.hashing.decode))
                except (OSError, ValueError) as exc:
                    self._fail(f"cannot send work to the GPU process: {exc}")
        except Exception as exc:  # (the pool broke under the facts, or a bug): the CPU takes them
            log.debug("the GPU feeder failed", exc_info=True)
            self._fail(f"the GPU feeder failed: {first_line(exc)}")
            self.sched.submit_full(claimed)
        finally:
            self.sent_all.set()

    # -- receive and join to the facts --
    def _collect(self) -> None:
        facts: dict[int, tuple[Future, int]] = {}  # the batch being delivered
        try:
            while True:
                with self.lock:
                    idle = not self.out
                if self.failed.is_set() or (idle and self.sent_all.is_set()):
                    return
                if not self.proc.results.poll(0.1):
                    if not self.proc.process.is_alive():
                        raise EOFError
                    continue
                message = self.proc.results.recv()
                if message[0] == "failed":
                    self._fail(str(message[1]))
                    return
                _, batch_id, rows = message
                with self.lock:
                    waiting = self.out.pop(batch_id, None)
                if waiting is None:  # an answer for a run that was closed: nobody waits for it
                    continue
                facts = waiting
                # The GPU is free for the next batch now; this one still waits for its facts
                # (the CPU pool may lag behind the GPU at a few thousand photos a second).
                self.slots.release()
                self._deliver(rows, facts)
                self.last_answer = time.perf_counter() - self.started
        except (EOFError, OSError):
            self._fail("the GPU process died")
        except CancelledError:  # the run was closed: the facts it waited for were cancelled
            pass
        except Exception as exc:  # a bug here must not lose files: the CPU takes them
            log.debug("the GPU collector failed", exc_info=True)
            self._fail(f"the GPU collector failed: {first_line(exc)}")
            self.sched.submit_full(sorted(facts))  # those already delivered are kept

    def _facts_for(self, indices: list[int]) -> dict[int, tuple[Future, int]]:
        """The pool's facts of ``indices``, asked for in chunks: index -> (future, position)."""
        facts: dict[int, tuple[Future, int]] = {}
        for start in range(0, len(indices), _FACTS_CHUNK):
            chunk = indices[start:start + _FACTS_CHUNK]
            fut = self.sched.submit_facts(chunk)
            facts.update((i, (fut, pos)) for pos, i in enumerate(chunk))
        return facts

    def _deliver(self, rows: list[tuple], facts: dict[int, tuple[Future, int]]) -> None:
        cpu: list[int] = []
        for index, codes, size, orientation, file in rows:
            fut, pos = facts[index]
            if not fut.done():
                began = time.perf_counter()
                fut.result()
                self.facts_wait += time.perf_counter() - began
            info = fut.result()[pos]
            if isinstance(info, FileError):
                self.sched.put(index, info)
            elif codes is None or file is None or not _agrees(info, size, orientation, file[0]):
                cpu.append(index)
            else:
                path = self.sched.paths[index]
                info = replace(info, file=FileFacts(path=path, size_bytes=file[0], mtime_ns=file[1],
                                                    sha256=file[2]))
                self.sched.put(index, record_from(path, info, codes, self.version))
                self.hashed += 1
        self.sched.submit_full(cpu)


def tail_batch(batch: int, unclaimed: int, feeders: int) -> int:
    """Photos a feeder claims next: ``batch``, and less as the run's unclaimed files run out.

    The run ends when the last GPU process answers. Each process works through its own queue
    of claimed batches, so with full batches to the end one process may still hold a batch
    or two while the others have nothing left. Claiming a share of what is left instead
    (once fewer than two batches a feeder remain: half of what is left per feeder, down to a
    quarter batch or ``TAIL_BATCH``) makes the last batches small, and the processes run out
    together (guided self-scheduling, as OpenMP's ``schedule(guided)``). Measured on the H100
    (docs/benchmarks.md): files in the page cache, the four processes' last answers 0.29-0.35 s
    apart before and 0.03-0.09 s after. The floor is a quarter batch because a floor of 8
    photos sent 2 MP runs' last 2,048 files in some thirty small batches, and lost to full
    batches in each of four pairs (about 2%); the quarter batch did not lose in three.
    """
    share = -(-unclaimed // (2 * max(1, feeders)))  # rounded up: the last files are claimed
    return max(1, min(batch, max(TAIL_BATCH, batch // 4, share)))


#: Extensions of formats the engines never decode: such files go straight to the CPU pool.
#: Anything else is tried on the GPU (a JPEG or RAW under another name is still found by its
#: bytes there, and whatever it cannot take comes back to the CPU).
_CPU_EXTENSIONS = frozenset({".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", *HEIF_EXTENSIONS})


def engine_may_decode(path: str) -> bool:
    """Whether the GPU process should try ``path`` (False: a format only the CPU decodes)."""
    return os.path.splitext(path)[1].lower() not in _CPU_EXTENSIONS


#: Formats whose pixels the engines decode: JPEGs, and camera RAWs through their embedded JPEG
#: preview (decode/raw.py's RawImage.format names: "DNG", "RAW"), which the facts describe.
_GPU_FORMATS = frozenset({"JPEG", "DNG", "RAW"})


def _agrees(info: PhotoFacts, size: tuple[int, int], orientation: int, size_bytes: int) -> bool:
    """Whether the GPU process saw the file as the facts describe it (it may have changed)."""
    stored = (info.height, info.width) if info.orientation in (5, 6, 7, 8) else (info.width, info.height)
    return (info.format in _GPU_FORMATS and info.mode == "RGB" and not info.progressive
            and stored == tuple(size) and info.orientation == orientation
            and info.file.size_bytes == size_bytes)
