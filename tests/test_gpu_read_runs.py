"""How files reach the GPU engines: a batch sized by its files (ingest/gpu_processes.auto_batch),
decoded in runs as its files are read (ingest/gpu_worker.ready_parts): files in the page cache
still go to the decoder as one call, files read from the disk in runs that start before the
whole batch is read (the first one shorter when asked) and leave no few files for a call of
their own, and every file comes out once, in order."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

from lumina_plugin.ingest.gpu_processes import BATCH_BYTES, DEFAULT_BATCH, MIN_BATCH, auto_batch
from lumina_plugin.ingest.gpu_worker import ready_parts


def _done(value: int) -> Future:
    fut: Future = Future()
    fut.set_result(value)
    return fut


def test_a_batch_already_read_is_one_run() -> None:
    reads = [_done(i) for i in range(256)]
    runs = list(ready_parts(reads, 64))
    assert [len(r) for r in runs] == [256]


def test_a_batch_being_read_starts_decoding_after_its_first_files() -> None:
    reads: list[Future] = [Future() for _ in range(200)]
    for fut in reads[:70]:
        fut.set_result(1)
    runs = ready_parts(reads, 64)
    first = next(runs)  # the first 64 are read (and 6 more): no need to wait for the rest
    assert len(first) == 70 and first == reads[:70]
    # the rest arrive while the first run decodes; the next run waits for 64 of them
    timer = threading.Timer(0.05, lambda: [f.set_result(1) for f in reads[70:]])
    timer.start()
    rest = list(runs)
    timer.join()
    assert [f for run in [first, *rest] for f in run] == reads
    assert all(len(run) >= 64 or run[-1] is reads[-1] for run in rest)


def test_a_first_run_can_be_shorter_and_no_run_leaves_a_few_files_behind() -> None:
    reads: list[Future] = [Future() for _ in range(75)]
    for fut in reads[:20]:
        fut.set_result(1)
    runs = ready_parts(reads, 64, first=16)
    assert next(runs) == reads[:20]  # a process with nothing on the GPU starts after 16 files
    timer = threading.Timer(0.05, lambda: [f.set_result(1) for f in reads[20:]])
    timer.start()
    assert list(runs) == [reads[20:]]
    timer.join()
    # 64 of 75 read: the last 11 are waited for, not decoded in a call of their own
    reads = [_done(i) for i in range(64)] + [Future() for _ in range(11)]
    timer = threading.Timer(0.05, lambda: [f.set_result(1) for f in reads[64:]])
    timer.start()
    assert [len(r) for r in ready_parts(reads, 64)] == [75]
    timer.join()


def test_a_short_batch_and_a_run_of_one() -> None:
    assert [len(r) for r in ready_parts([_done(0), _done(1)], 64)] == [2]
    assert list(ready_parts([], 64)) == []
    assert [len(r) for r in ready_parts([_done(i) for i in range(3)], 0)] == [3]


def _files(tmp_path: Path, sizes: list[int]) -> list[str]:
    paths = []
    for n, size in enumerate(sizes):
        path = tmp_path / f"{n:03d}.jpg"
        with open(path, "wb") as fh:
            fh.truncate(size)
        paths.append(str(path))
    return paths


def test_a_batch_of_large_files_holds_fewer_photos(tmp_path: Path) -> None:
    """Camera-sized files make smaller GPU batches (they are read before they are decoded),
    small ones the largest, and the median decides for a mixed run."""
    assert auto_batch(_files(tmp_path, [600_000] * 40)) == DEFAULT_BATCH
    camera = auto_batch(_files(tmp_path, [3_600_000] * 40))
    assert MIN_BATCH < camera < DEFAULT_BATCH and camera * 3_600_000 <= BATCH_BYTES
    assert auto_batch(_files(tmp_path, [80_000_000] * 40)) == MIN_BATCH
    mixed = _files(tmp_path, [600_000] * 30 + [3_600_000] * 10)
    assert auto_batch(mixed) == DEFAULT_BATCH
    assert auto_batch([str(tmp_path / "gone.jpg")]) == DEFAULT_BATCH  # nothing to measure
    assert auto_batch(_files(tmp_path, [3_600_000] * 4), most=16) == 16  # a set batch size is the most
