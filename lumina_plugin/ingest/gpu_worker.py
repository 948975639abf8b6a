"""The GPU process: reads JPEGs, decodes them on the JPEG engines, hashes them with CuPy.

Why a process of its own: nvImageCodec's ``decode`` gives up and takes back Python's
GIL many times per batch. Beside busy Python threads (the host's, the scheduler's, the
worker pool's result thread) each take-back waits for the running thread's switch
interval: measured on the GPU machine, one spinning thread cut 12 MP decoding from
about 1,000 to 36 photos/s. Here the GIL has no other heavy user: reader threads mostly
wait on the disk, and this process's switch interval is short.

Protocol over two pipes (ingest/gpu_processes.py is the other end):
    -> ("ready", device name) | ("unusable", GpuProblem)   once, at start
    <- ("batch", id, [(index, path), ...], decode mode)      work; None = stop
    -> ("done", id, [(index, codes | None, (w, h), orientation, file | None), ...])   in request order
    -> ("failed", reason)                                    then it exits
``codes`` is the photo's ``CODE_WORDS`` (12) code words as ints, the four hashes and the
geometry words (hashing/cupy_hasher.py, hashing/cupy_geometry.py: the CPU's bits for the
pixels the engines decoded; in "reduced" mode, of those pixels reduced as the CPU reduces
them: hashing/cupy_reduce.py); None for a file the engines did not take (not a whole
baseline colour JPEG, refused, a size the kernels do not reproduce): the CPU decodes it. ``file`` is
(bytes, mtime_ns, SHA-256 hex) of the file (for a JPEG, exactly the bytes that were
decoded; for a camera RAW, the RAW whose embedded JPEG preview was decoded, as the CPU
hashes it: decode/raw.py), so the main process needs only the header facts of those
files (decode/head.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from multiprocessing.connection import Connection
from typing import Any

from PIL import Image

from ..decode.head import open_regular
from ..decode.jpeg_header import read_jpeg_header
from ..decode.nvimgcodec import GpuJpegDecoder
from ..decode.photo import _orientation
from ..decode.raw import raw_preview
from ..gpu_status import GpuProblem, GpuUnavailable, Why, first_line, require_cupy
from ..hashing.cupy_hasher import DeviceImage
from ..model import reduced_factor

#: Set (to anything) to have each GPU process print, for every 10 batches, where their time went:
#: waiting for work, waiting for its readers, in the decoder, queueing kernels, answering.
_PROFILE = bool(os.environ.get("LUMINA_GPU_PROFILE"))

#: Reader threads: they read, checksum (hashlib lets go of the GIL) and parse headers.
#: (12 instead of 6 made no difference to files out of the page cache on the H100:
#: benchmarks/cold_files.py, 305 against 314 photos/s on two hosts.) ``LUMINA_GPU_READERS``
#: overrides it (benchmarks).
_READERS = int(os.environ.get("LUMINA_GPU_READERS") or 6)


class _Clock:
    """Where the loop's time goes (only with ``LUMINA_GPU_PROFILE``): seconds per named part,
    each lap charged to the part that just ended; printed every 10 batches, and at the end of
    each run (a wait for work of over a quarter of a second ends one: that wait is left out)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self.last = time.perf_counter()
        self.batches = self.photos = 0
        self.run_parts: dict[str, float] = {}
        self.run_photos = 0

    def lap(self, part: str) -> None:
        if _PROFILE:
            now = time.perf_counter()
            spent = now - self.last
            self.last = now
            if part == "wait_work" and spent > 0.25:  # idle between runs
                if self.run_photos:
                    self._print(f"run of {self.run_photos} photos", self.run_parts)
                self.run_parts, self.run_photos = {}, 0
                return
            self.parts[part] = self.parts.get(part, 0.0) + spent
            self.run_parts[part] = self.run_parts.get(part, 0.0) + spent

    def batch_done(self, photos: int) -> None:
        if not _PROFILE:
            return
        self.batches += 1
        self.photos += photos
        self.run_photos += photos
        if self.batches % 10 == 0:
            self._print(f"batches {self.batches - 9}-{self.batches}, {self.photos} photos", self.parts)
            self.parts.clear()
            self.photos = 0

    @staticmethod
    def _print(what: str, parts: dict[str, float]) -> None:
        total = sum(parts.values()) or 1.0
        shares = " ".join(f"{k} {v:.2f}s ({100 * v / total:.0f}%)" for k, v in sorted(parts.items()))
        print(f"lumina-gpu {os.getpid()}: {what}, {total:.2f} s: {shares}", file=sys.stderr, flush=True)


_CLOCK = _Clock()


class _Job:
    __slots__ = ("index", "data", "size", "orientation", "file")

    def __init__(self, index: int, data: bytes, size: tuple[int, int], orientation: int,
                 file: tuple[int, int, str]) -> None:
        self.index, self.data, self.size, self.orientation = index, data, size, orientation
        self.file = file  # (bytes, mtime_ns, SHA-256 hex) of the file read (a RAW's, not its preview's)


def _read(index: int, path: str) -> _Job | None:
    """The file's bytes, stored size, EXIF orientation and checksum, if the engines can
    take it. The header is read without Pillow (decode/jpeg_header.py says why); Pillow
    is asked only for an orientation that header reader leaves open."""
    try:
        opened = open_regular(path)
        if opened is None:
            return None
        with opened[0] as fh:
            # Exactly the stated size (and a byte more, to see growth): asking for
            # MAX_FILE_BYTES made every read allocate and map a gigabyte first.
            st = opened[1]
            data = fh.read(st.st_size + 1)
    except OSError:
        return None
    if len(data) != st.st_size:  # changed while being read: the CPU reads it again
        return None
    header = read_jpeg_header(data)
    if header is None:  # a camera RAW: its embedded JPEG preview, as the CPU hashes it
        return _raw_job(index, path, data, st.st_mtime_ns)
    if not header.engine_ready:
        return None
    size, orientation = (header.width, header.height), header.orientation
    if orientation is None:
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.mode != "RGB" or im.size != size:
                    return None
                orientation = _orientation(im)
        except Exception:  # Pillow cannot read it: the CPU will say why
            return None
    return _Job(index, data, size, orientation, _file_facts(data, st.st_mtime_ns))


def _file_facts(data: bytes, mtime_ns: int) -> tuple[int, int, str]:
    """(bytes, mtime_ns, SHA-256 hex) of a file read whole (hashlib lets go of the GIL)."""
    return len(data), mtime_ns, hashlib.sha256(data).hexdigest()


def _raw_job(index: int, path: str, data: bytes, mtime_ns: int) -> _Job | None:
    """A RAW's embedded JPEG preview for the engines (decode/raw.py: the one the CPU decodes
    in its place, turned by the RAW's orientation), with the RAW's own byte count and
    checksum; None when ``data`` is not a RAW, has no preview that passes the too-small
    rule, or the preview is not one the engines take (the CPU decodes it then)."""
    preview = raw_preview(path, data)
    if preview is None:
        return None
    header = read_jpeg_header(preview.jpeg)
    if header is None or not header.engine_ready or (header.width, header.height) != (preview.width, preview.height):
        return None
    return _Job(index, preview.jpeg, (preview.width, preview.height), preview.orientation,
                _file_facts(data, mtime_ns))


def load_engine(share: int = 1, device: int = 0) -> tuple[Any, GpuJpegDecoder, int, str]:
    """(hasher, decoder, bytes of pixels a batch may hold, device name) on CUDA ``device``;
    raises :class:`GpuUnavailable` saying why when CuPy, the device, the kernels' self-check
    or nvImageCodec is missing. ``share``: how many GPU processes share the device's memory."""
    cupy = require_cupy()
    devices = int(cupy.cuda.runtime.getDeviceCount())
    if device >= devices:
        raise GpuUnavailable(GpuProblem(Why.NO_DEVICE, f"device {device} asked for, {devices} visible"))
    cupy.cuda.Device(device).use()
    from ..hashing.cupy_hasher import GpuHasher, self_check

    hasher = GpuHasher()
    problem = self_check(hasher)
    if problem:
        raise GpuUnavailable(GpuProblem(Why.SELF_CHECK, f"the hashing kernels disagree with NumPy: {problem}"))
    try:
        decoder = GpuJpegDecoder(device)
    except ImportError:
        raise GpuUnavailable(GpuProblem(Why.NO_NVIMGCODEC)) from None
    free, _total = cupy.cuda.runtime.memGetInfo()
    name = cupy.cuda.runtime.getDeviceProperties(device)["name"].decode()
    # Three batches of pixels at most are alive (two read ahead, one decoded): a share of
    # the free memory each, so memory stays bounded whatever the library's size.
    return hasher, decoder, int(min(free * 0.5, 24 << 30) // 3 // max(1, share)), name


def serve(requests: Connection, results: Connection, share: int = 1, device: int = 0) -> None:
    """The GPU process's main loop (the target of its multiprocessing.Process), on CUDA ``device``.

    Each batch is cut into parts that fit the memory share; a part is decoded on one
    CUDA stream and its kernels queued on another, so they run while the engines decode
    the next part. At most two parts are on the device at a time; batches are answered
    in request order as soon as all their parts are hashed. ``share``: GPU processes
    sharing the device (each takes that share of the memory for its batches).
    """
    sys.setswitchinterval(0.0005)
    try:
        hasher, decoder, batch_bytes, name = load_engine(share, device)
    except GpuUnavailable as exc:
        results.send(("unusable", exc.problem))
        return
    except Exception as exc:  # (compiling the kernels, creating the decoder...)
        results.send(("unusable", GpuProblem.of(Why.FAILED, exc)))
        return
    results.send(("ready", name))
    readers = ThreadPoolExecutor(_READERS, thread_name_prefix="lumina-gpu-read")
    streams = (hasher.cp.cuda.Stream(non_blocking=True), hasher.cp.cuda.Stream(non_blocking=True))
    pending: deque[tuple[int, list[tuple[int, str]], str, list[Future]]] = deque()
    unanswered: deque[_Batch] = deque()
    queued: deque[tuple[_Batch, tuple]] = deque()  # parts whose codes are not fetched yet

    def settle(keep: int) -> None:
        _CLOCK.lap("other")
        while len(queued) > keep:
            batch, part = queued.popleft()
            batch.finish(hasher, part)
            _CLOCK.lap("kernels")
        while unanswered and unanswered[0].complete and not any(b is unanswered[0] for b, _ in queued):
            answered = unanswered.popleft()
            results.send(answered.message())
            _CLOCK.lap("answer")
            _CLOCK.batch_done(len(answered.order))

    try:
        while True:
            # Take every waiting request, so their files are read while this one decodes.
            while (not pending and not queued and not unanswered) or requests.poll():
                _CLOCK.lap("other")
                message = requests.recv()
                _CLOCK.lap("wait_work")
                if message is None:
                    return
                _, batch_id, items, *rest = message
                mode = rest[0] if rest else "exact"
                pending.append((batch_id, items, mode, [readers.submit(_read, i, p) for i, p in items]))
            if not pending:  # nothing to overlap with: answer what is queued now
                settle(0)
                continue
            batch_id, items, mode, reads = pending.popleft()
            batch = _Batch(batch_id, items, mode == "reduced")
            unanswered.append(batch)
            # (nothing of this process's on the GPU: start with a short run, as soon as it is read)
            for taken in ready_parts(reads, _MIN_PART, _MIN_PART if queued else _FIRST_PART):
                jobs_read = _gpu_jobs(taken, batch.reduced)
                _CLOCK.lap("reads")
                for jobs in split_batch(jobs_read, batch_bytes):
                    part = batch.decode(hasher, decoder, streams, jobs)
                    if part is not None:
                        queued.append((batch, part))
                    settle(1)  # the older part's kernels ran while this one decoded
            batch.complete = True
            settle(1)
    except (EOFError, OSError, KeyboardInterrupt):  # the main process went away
        return
    except Exception as exc:
        try:
            results.send(("failed", first_line(exc, with_type=True)))
        except OSError:
            pass
    finally:
        readers.shutdown(wait=False, cancel_futures=True)


#: The fewest photos of a batch decoded at once while the rest of it is still being read.
_MIN_PART = 64
#: ... and of the first run of a batch when this process has nothing on the GPU: its engines'
#: share waits for that run to be read (the start of a run over files on the disk: four
#: processes, 64 camera files each, about a third of a second on the H100's disk).
_FIRST_PART = 16


def ready_parts(reads: list[Future], least: int, first: int | None = None) -> Iterator[list[Future]]:
    """``reads`` in order, cut into runs that are read: each run waits for its first
    ``least`` files (the first run: ``first``, default ``least``), then takes every file
    after them that is read already; a run that would leave fewer than ``least // 2`` files
    behind waits for them too (a decoder call for a few files costs more than waiting for
    the reads in flight). Files in the page cache come as one run (the whole batch, one
    decoder call); files read from the disk are decoded in runs while the rest are read,
    instead of after the whole batch: measured on the H100 with files out of the page cache,
    a batch read whole and then decoded took the reading time plus the decoding time."""
    i, want = 0, max(1, first or least)
    while i < len(reads):
        j = min(len(reads), i + want)
        if len(reads) - j < least // 2:
            j = len(reads)
        wait(reads[i:j])
        while j < len(reads) and reads[j].done():
            j += 1
        yield reads[i:j]
        i, want = j, max(1, least)


def _gpu_jobs(reads: list[Future], reduced: bool) -> list[_Job]:
    """The jobs the kernels take: the size they hash (the reduced one in reduced mode) must
    be one they reproduce Pillow at."""
    from ..hashing.cupy_hasher import GpuHasher

    return [job for job in (f.result() for f in reads)
            if job is not None and GpuHasher.supports(*_hashed_size(job.size, reduced), job.orientation)]


def _hashed_size(size: tuple[int, int], reduced: bool) -> tuple[int, int]:
    """(width, height) of the stored image the kernels hash: the decoded one, or reduced."""
    f = reduced_factor(*size) if reduced else 1
    return -(-size[0] // f), -(-size[1] // f)


class _Batch:
    """One requested batch: its answer rows, filled part by part."""

    def __init__(self, batch_id: int, items: list[tuple[int, str]], reduced: bool = False) -> None:
        self.batch_id = batch_id
        self.reduced = reduced  # "reduced" decode mode: hash the reduced gray (cupy_reduce)
        self.rows: dict[int, tuple] = {i: (i, None, None, None, None) for i, _ in items}
        self.order = [i for i, _ in items]
        self.complete = False  # all its parts decoded

    def decode(self, hasher: Any, decoder: GpuJpegDecoder, streams: tuple[Any, Any],
               part: list[_Job]) -> tuple | None:
        """Decode ``part`` on the first stream, queue its kernels on the second; the
        handle for :meth:`finish` (None when the engines took none of it)."""
        decode_stream, hash_stream = streams
        _CLOCK.lap("other")
        images = decoder.decode([job.data for job in part], decode_stream.ptr)
        _CLOCK.lap("decode")
        jobs, arrays = [], []
        for job, image in zip(part, images):
            if image is None:
                continue
            try:
                array = DeviceImage.of(image)
            except (AttributeError, KeyError, TypeError, ValueError):  # not 8-bit RGB: the CPU's
                continue
            if array.shape[:2] == (job.size[1], job.size[0]):
                jobs.append(job)
                arrays.append(array)
        decoded = decode_stream.record()
        if not jobs:
            return None
        hash_stream.wait_event(decoded)
        held: list[Any] = []
        with hash_stream:
            if self.reduced:  # one kernel per size for the whole part (cupy_reduce.BatchReducer)
                reduced, held = _reducer(hasher).reduce([(a.ptr, a.shape, a.strides) for a in arrays],
                                                        [reduced_factor(*job.size) for job in jobs])
                arrays = [DeviceImage(*r) for r in reduced]
            queued = hasher.hash_async([(array, job.orientation) for job, array in zip(jobs, arrays)])
        _CLOCK.lap("queue")
        return jobs, images, held, queued  # the images live until their kernels are done

    def finish(self, hasher: Any, part: tuple) -> None:
        """Wait for a part's kernels and record its code words (the geometry words'
        coefficients run here, on the device, from the working images queued with the part)."""
        jobs, _images, _arrays, queued = part
        for job, row in zip(jobs, hasher.finish(queued)):
            self.rows[job.index] = (job.index, [int(c) for c in row], job.size, job.orientation, job.file)

    def message(self) -> tuple:
        return ("done", self.batch_id, [self.rows[i] for i in self.order])


def _reducer(hasher: Any) -> Any:
    """The batch reducer of ``hasher``'s device (compiled on first use, kept beside it)."""
    reducer = getattr(hasher, "batch_reducer", None)
    if reducer is None:
        from ..hashing.cupy_reduce import BatchReducer

        reducer = hasher.batch_reducer = BatchReducer(hasher.cp)
    return reducer


def split_batch(jobs: list[_Job], budget: int) -> list[list[_Job]]:
    """Cut a batch, in order, so that each part's decoded RGB pixels fit ``budget`` bytes
    (a part holds at least one photo, however large)."""
    parts: list[list[_Job]] = [[]]
    used = 0
    for job in jobs:
        need = job.size[0] * job.size[1] * 3
        if parts[-1] and used + need > budget:
            parts.append([])
            used = 0
        parts[-1].append(job)
        used += need
    return [p for p in parts if p]
