"""A stand-in for the GPU process, for the machines without a GPU (CI): it speaks the GPU
process's protocol (ingest/gpu_worker.py's docstring) over the same pipes, reads files
with the GPU process's own reader (gpu_worker._read: header, orientation, checksum), and
takes the codes from the CPU's decode where the engines and kernels would run.

What it lets a test check without a GPU is the main process's side: several GPU
processes sharing one run, the joining of their codes to the pool's facts, and what
happens to the files a GPU process holds when it dies (``die_after`` batches answered,
then it exits without answering the next one, as a crashed driver would; ``garble_after``
batches answered, then an answer names a file it was not asked for, as a bug would;
``delay`` seconds before each answer; ``log_to``, a file each path sent is appended to).
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import Any

from lumina_plugin.ingest.gpu_worker import _read
from lumina_plugin.ingest.records import record_for


def serve(requests: Connection, results: Connection, share: int = 1, die_after: int | None = None,
          garble_after: int | None = None, delay: float = 0.0, device: int = 0,
          log_to: str | None = None) -> None:
    results.send(("ready", f"stand-in (share 1/{share}, device {device})"))
    answered = 0
    while True:
        message = requests.recv()
        if message is None:
            return
        _, batch_id, items, *rest = message
        mode = rest[0] if rest else "exact"  # the batch's decode mode (settings/hashing.py)
        if die_after is not None and answered >= die_after:
            os._exit(3)  # holding a batch, unanswered
        rows: list[tuple[Any, ...]] = []
        if log_to is not None:  # what the main process sent to the GPU, for the test to see
            with open(log_to, "a") as log:
                log.writelines(f"{path}\n" for _, path in items)
        for index, path in items:
            job = _read(index, path)
            if job is None:  # not a whole baseline colour JPEG: the CPU's
                rows.append((index, None, None, None, None))
                continue
            codes = [int(c) for c in record_for(path, 250_000_000, mode=mode).codes]
            rows.append((index, codes, job.size, job.orientation, job.file))
        time.sleep(delay)  # a slower GPU: the run lasts long enough to be interrupted
        if garble_after is not None and answered >= garble_after:
            rows[len(rows) // 2] = (-1, *rows[len(rows) // 2][1:])  # an answer for no file asked
        results.send(("done", batch_id, rows))
        answered += 1


def install(monkeypatch: Any, delay: float = 0.0) -> None:
    """An empty GPU process registry whose processes ``load_gpu`` starts are stand-ins
    (:func:`serve`, each answer ``delay`` s late), on a machine where CuPy sees a device."""
    import functools

    from lumina_plugin.ingest import gpu_processes

    monkeypatch.setattr(gpu_processes, "_PROCESSES", [])
    monkeypatch.setattr(gpu_processes, "_LOADED", False)
    monkeypatch.setattr(gpu_processes, "_REASON", None)
    monkeypatch.setattr(gpu_processes, "cupy_problem", lambda: None)
    monkeypatch.setattr(gpu_processes, "GpuProcess", functools.partial(
        gpu_processes.GpuProcess, target=functools.partial(serve, delay=delay)))
