"""The main process's side of GPU hashing, on any machine: GPU processes (here stand-ins
that speak the real protocol and read files with the real reader, tests/_gpu_standin.py)
share a run with the CPU pool, their codes are joined to the pool's facts, and when one
dies mid-run no photo is lost: every file it held is hashed on the CPU, with one warning.
On the GPU machine, tests/test_gpu_hashing.py does the same with the real GPU process."""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from pathlib import Path

import _gpu_standin
import pytest
from conftest import write_photo

from lumina_plugin.config import Config
from lumina_plugin.ingest import gpu_processes, pool
from lumina_plugin.ingest.gpu_processes import GpuProcess
from lumina_plugin.ingest.pipeline import LAST_RUN, hash_paths
from lumina_plugin.settings.gpu import GpuSettings
from lumina_plugin.settings.hashing import HashingSettings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
FACTS = ("path", "checksum", "size_bytes", "mtime_ns", "width", "height", "orientation", "format",
         "camera", "taken_at", "subsec", "exif_tags", "hash_version", "codes")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Baseline colour JPEGs (some turned by EXIF, some with camera tags) and files the
    GPU must hand back: progressive, gray, PNG, truncated, empty."""
    root = tmp_path_factory.mktemp("feeding")
    sources = sorted(p for p in SAMPLE_DIR.rglob("*.jpg") if "exports" not in p.parts)[:8]
    paths = []
    for n in range(36):
        src = sources[n % len(sources)]
        paths.append(write_photo(root / f"p{n:02d}.jpg", source=src, size=(480 - n, 320),
                                 orientation=(1, 6, 3, 8)[n % 4], make="Canon" if n % 3 else None,
                                 taken_at="2024:05:06 07:08:09" if n % 2 else None))
    write_photo(root / "q_prog.jpg", source=sources[0], size=(400, 300))
    from PIL import Image
    with Image.open(root / "q_prog.jpg") as im:
        im.save(root / "q_prog.jpg", "JPEG", progressive=True)
        im.convert("L").save(root / "q_gray.jpg", "JPEG")
        im.save(root / "q_lossless.png")
    (root / "q_truncated.jpg").write_bytes(paths[3].read_bytes()[:4000])
    (root / "q_empty.jpg").write_bytes(b"")
    return sorted(str(p) for p in root.iterdir())


def _standins(monkeypatch: pytest.MonkeyPatch, *die_after: int | None, garble_after: int | None = None,
              delay: float = 0.0) -> list[GpuProcess]:
    procs = [GpuProcess(share=len(die_after), target=functools.partial(
        _gpu_standin.serve, die_after=d, garble_after=garble_after, delay=delay)) for d in die_after]
    for proc in procs:
        assert proc.handshake() is None
    # What load_gpu() keeps after starting GPU processes that passed their checks.
    monkeypatch.setattr(gpu_processes, "_PROCESSES", list(procs))
    monkeypatch.setattr(gpu_processes, "_LOADED", True)
    monkeypatch.setattr(gpu_processes, "_REASON", None)
    return procs


def _records(batches: list) -> dict[str, tuple]:
    return {r.path: tuple(tuple(int(c) for c in r.codes) if f == "codes" else getattr(r, f) for f in FACTS)
            for records, _ in batches for r in records}


def _run(paths: list[str], processes: int, deadline: float = 120.0, cpu_files: int = -1) -> list:
    """The run's batches; fails, instead of hanging, when files are never handed back."""
    cfg = Config(batch_size=8, hashing=HashingSettings(gpu="on", gpu_batch_size=4, gpu_processes=processes,
                                                       workers=2, parallel_min_mb=0,
                                                       cpu_files_beside_gpu=cpu_files))
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(hash_paths(paths, cfg)), daemon=True)
    worker.start()
    worker.join(deadline)
    assert not worker.is_alive(), f"the run did not finish in {deadline:.0f} s: files were lost"
    return out


@pytest.fixture(scope="module")
def cpu_only(library: list[str]) -> list:
    return list(hash_paths(library, Config(batch_size=8, hashing=HashingSettings(gpu="off", workers=2,
                                                                                 parallel_min_mb=0))))


def test_two_gpu_processes_share_a_run_and_give_the_cpus_records(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    procs = _standins(monkeypatch, None, None)
    try:
        got = _run(library, processes=2)
    finally:
        for proc in procs:
            proc.stop()
    assert LAST_RUN["gpu_processes"] == 2
    assert 1 <= LAST_RUN["gpu_hashed"] <= 36  # the 36 baseline colour JPEGs, shared with the pool
    assert _records(got) == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in cpu_only]  # same errors, same batches
    assert [len(r) + len(e) for r, e in got] == [len(r) + len(e) for r, e in cpu_only]


def test_a_gpu_process_dying_mid_run_loses_no_photo(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    procs = _standins(monkeypatch, 1, None)  # the first dies holding its second batch
    with caplog.at_level(logging.WARNING):
        got = _run(library, processes=2)
    warnings = [r.getMessage() for r in caplog.records if "GPU hashing stopped" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert _records(got) == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in cpu_only]
    assert not procs[0].process.is_alive() and not procs[1].process.is_alive()  # both let go
    # Later runs in this process use the CPU and say why.
    assert gpu_processes.load_gpu(2) == ([], gpu_processes._REASON)
    again = _run(library[:12], processes=2)
    assert LAST_RUN["gpu"] is False
    want = _records(cpu_only)
    assert _records(again) == {p: want[p] for p in library[:12] if p in want}


def test_a_pool_that_takes_no_whole_files_leaves_every_baseline_jpeg_to_the_gpu(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    procs = _standins(monkeypatch, None, None)
    try:
        got = _run(library, processes=2, cpu_files=0)
    finally:
        for proc in procs:
            proc.stop()
    assert LAST_RUN["gpu_hashed"] == 36  # the pool decoded only what the GPU handed back
    assert _records(got) == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in cpu_only]


def test_formats_the_engines_never_decode_go_straight_to_the_cpu(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A PNG (or TIFF, HEIC...) sent to the GPU process is read there for nothing and comes
    # back a batch later; it goes to the pool when claimed. A JPEG saved under a PNG's name
    # is still hashed right (the pool reads its bytes), and a PNG under a JPEG's name is
    # still handed back by the GPU process.
    from PIL import Image

    extra = tmp_path / "extra"
    extra.mkdir()
    with Image.open(library[0]) as im:
        im.save(extra / "r_photo.tif")
        im.save(extra / "s_jpeg_named.png", "JPEG")
        im.save(extra / "t_png_named.jpg", "PNG")
    paths = sorted([*library, *(str(p) for p in extra.iterdir())])
    sent = tmp_path / "sent.txt"
    procs = [GpuProcess(share=2, target=functools.partial(_gpu_standin.serve, log_to=str(sent)))
             for _ in range(2)]
    for proc in procs:
        assert proc.handshake() is None
    monkeypatch.setattr(gpu_processes, "_PROCESSES", list(procs))
    monkeypatch.setattr(gpu_processes, "_LOADED", True)
    monkeypatch.setattr(gpu_processes, "_REASON", None)
    try:
        got = _run(paths, processes=2, cpu_files=0)
    finally:
        for proc in procs:
            proc.stop()
    to_gpu = sent.read_text().splitlines()
    assert sorted(to_gpu) == sorted(p for p in paths if not p.endswith((".png", ".tif")))
    assert LAST_RUN["gpu_hashed"] == 36
    assert LAST_RUN["prefetched"] > 0  # the claimed files were read ahead (ingest/prefetch.py)
    alone = list(hash_paths(paths, Config(batch_size=8, hashing=HashingSettings(gpu="off", workers=2,
                                                                                 parallel_min_mb=0))))
    assert _records(got) == _records(alone)
    assert {p: w for p, w in _records(alone).items() if p in library} == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in alone]


def test_batches_of_cpu_formats_alone_are_not_read_ahead(
        library: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A batch with nothing for the GPU frees its slot at once, so such batches are claimed
    # as fast as the window allows: reading them ahead would pull a library of PNGs into the
    # page cache long before the pool gets to them.
    from PIL import Image

    pngs = []
    with Image.open(library[0]) as im:
        for n in range(12):
            pngs.append(str(tmp_path / f"scan{n:02d}.png"))
            im.resize((200 + n, 150)).save(pngs[-1])
    procs = _standins(monkeypatch, None)
    try:
        got = _run(pngs, processes=1, cpu_files=0)
    finally:
        for proc in procs:
            proc.stop()
    assert sum(len(r) for r, _ in got) == len(pngs)
    assert LAST_RUN["gpu_hashed"] == 0
    assert LAST_RUN["prefetched"] == 0


def test_prefetch_false_reads_nothing_ahead(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    # [hashing] prefetch = false: no read-ahead thread, the same records.
    procs = _standins(monkeypatch, None)
    cfg = Config(batch_size=8, hashing=HashingSettings(gpu="on", gpu_batch_size=4, gpu_processes=1, workers=2,
                                                       parallel_min_mb=0, cpu_files_beside_gpu=0, prefetch=False))
    try:
        got = list(hash_paths(library, cfg))
    finally:
        for proc in procs:
            proc.stop()
    assert LAST_RUN["gpu_hashed"] > 0
    assert "prefetched" not in LAST_RUN
    assert _records(got) == _records(cpu_only)


def test_when_the_gpu_dies_a_pool_that_took_no_whole_files_takes_the_rest(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    procs = _standins(monkeypatch, 0, 0)  # both die holding their first batch
    got = _run(library, processes=2, cpu_files=0)
    assert _records(got) == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in cpu_only]
    assert LAST_RUN["gpu_hashed"] == 0
    assert not any(p.process.is_alive() for p in procs)


def test_a_garbled_answer_from_the_gpu_loses_no_photo(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A bug on either side of the pipe must cost speed, not photos, and never hang the run.
    procs = _standins(monkeypatch, None, garble_after=1)
    with caplog.at_level(logging.WARNING):
        got = _run(library, processes=1, cpu_files=0)
    warnings = [r.getMessage() for r in caplog.records if "GPU hashing stopped" in r.getMessage()]
    assert len(warnings) == 1 and "collector failed" in warnings[0], warnings
    assert _records(got) == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in cpu_only]
    assert not procs[0].process.is_alive()


def test_pool_workers_killed_beside_the_gpu_lose_no_photo(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The pool probes the facts of the GPU's files: when it breaks, those files (claimed,
    # sent, or waiting for their facts) are hashed in this process instead.
    procs = _standins(monkeypatch, None, None, delay=0.1)
    cfg = Config(batch_size=8, hashing=HashingSettings(gpu="on", gpu_batch_size=4, gpu_processes=2, workers=2,
                                                       parallel_min_mb=0, cpu_files_beside_gpu=0))
    got: list = []

    def consume() -> None:
        for batch in hash_paths(library, cfg):
            got.append(batch)
            if len(got) == 1:
                assert pool._POOL is not None
                for worker in list(pool._POOL._processes.values()):
                    os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]

    try:
        with caplog.at_level(logging.WARNING):
            worker = threading.Thread(target=consume, daemon=True)
            worker.start()
            worker.join(120)
        assert not worker.is_alive(), "the run did not finish in 120 s: files were lost"
    finally:
        for proc in procs:
            proc.stop()
    assert _records(got) == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in cpu_only]
    assert any("worker process died" in r.getMessage() for r in caplog.records)


def test_the_configured_device_reaches_the_gpu_processes(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """[gpu] device: load_gpu starts the GPU processes on it (here stand-ins, which say so)."""
    _gpu_standin.install(monkeypatch)
    cfg = Config(batch_size=8, gpu=GpuSettings(device=1),
                 hashing=HashingSettings(gpu_batch_size=4, gpu_processes=2, workers=2, parallel_min_mb=0))
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(hash_paths(library, cfg)), daemon=True)
    try:
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), "the run did not finish in 120 s: files were lost"
        devices = [p.device for p in gpu_processes._PROCESSES]
    finally:
        for proc in gpu_processes._PROCESSES:
            proc.stop()
    assert devices == ["stand-in (share 1/2, device 1)"] * 2
    assert LAST_RUN["gpu_processes"] == 2 and LAST_RUN["gpu_hashed"] >= 1
    assert _records(out) == _records(cpu_only)


@pytest.mark.parametrize("ahead, advised", [(0, 8), (1, 12)])
def test_the_batches_after_a_claimed_one_are_read_ahead(
        library: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ahead: int, advised: int) -> None:
    # Eight JPEGs, then four PNGs: claimed four at a time, the PNGs' batch holds nothing for
    # the GPU and is never advised as a claim; [hashing] prefetch_ahead = 1 advises it while
    # the second JPEG batch is claimed, and each file once.
    from PIL import Image

    paths = library[:8]
    with Image.open(library[0]) as im:
        for n in range(4):
            paths.append(str(tmp_path / f"z_scan{n}.png"))
            im.resize((200 + n, 150)).save(paths[-1])
    procs = _standins(monkeypatch, None)
    cfg = Config(batch_size=8, hashing=HashingSettings(gpu="on", gpu_batch_size=4, gpu_processes=1, workers=2,
                                                       parallel_min_mb=0, cpu_files_beside_gpu=0,
                                                       prefetch_ahead=ahead))
    try:
        got = list(hash_paths(paths, cfg))
    finally:
        for proc in procs:
            proc.stop()
    assert sum(len(r) for r, _ in got) == len(paths)
    assert LAST_RUN["gpu_hashed"] == 8
    assert LAST_RUN["prefetched"] == advised


def test_batches_shrink_as_the_run_runs_out_so_the_processes_end_together(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    # With full batches to the end, one GPU process may still hold a batch or two while the
    # other has nothing left; claimed as a share of what is left, the last batches are small.
    procs = _standins(monkeypatch, None)
    sent: list[int] = []
    send = procs[0].send

    def counting(message: tuple | None) -> None:
        if message is not None and message[0] == "batch":
            sent.append(len(message[2]))
        send(message)

    monkeypatch.setattr(procs[0], "send", counting)
    cfg = Config(batch_size=8, hashing=HashingSettings(gpu="on", gpu_batch_size=16, gpu_processes=1, workers=2,
                                                       parallel_min_mb=0, cpu_files_beside_gpu=0))
    try:
        got = list(hash_paths(library, cfg))
    finally:
        for proc in procs:
            proc.stop()
    assert _records(got) == _records(cpu_only)
    assert len(LAST_RUN["gpu_last_answers_s"]) == 1
    assert sent[0] == 16 and max(sent) == 16
    assert sent == sorted(sent, reverse=True), sent  # smaller toward the end,
    assert sum(size < 16 for size in sent) >= 2 and sent[-1] <= gpu_processes.TAIL_BATCH, sent  # not one remainder


@pytest.mark.parametrize("feeders", [1, 2, 4, 7])
@pytest.mark.parametrize("batch", [3, 8, 75, 256])
def test_tail_batches_claim_every_file_and_shrink_only_near_the_end(feeders: int, batch: int) -> None:
    left, sizes = 5000, []
    while left:
        size = gpu_processes.tail_batch(batch, left, feeders)
        assert 1 <= size <= batch
        taken = min(size, left)
        sizes.append(taken)
        left -= taken
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == batch  # plenty left: full batches
    assert len(sizes) < 5000 // batch + 4 * feeders + 40  # the tail adds a few small claims, not a file each
    floor = min(batch, max(gpu_processes.TAIL_BATCH, batch // 4))
    assert all(s >= floor for s in sizes[:-1])
    if batch >= 2 * floor:  # more than one remainder: the last claims shrink to the floor
        assert sum(s < batch for s in sizes) >= 2 and max(sizes[-2:]) <= floor, sizes
