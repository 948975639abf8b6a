"""A GPU process that answers at once: it speaks the GPU process's protocol
(ingest/gpu_worker.py) but decodes nothing. The first time it sees a file's inode it
reads it with the GPU process's own reader and takes the codes from the CPU; after that
(the benchmark's library is hard links of a few distinct photos) it answers from memory.

Fed through the real pipeline, it measures the CPU side's ceiling: how many photos a
second the facts in the pool, the joining in the main process and the scheduler can take,
with a GPU that is never the bottleneck. Not for use outside benchmarks.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Connection

from lumina_plugin.ingest.gpu_worker import _read
from lumina_plugin.ingest.records import record_for


def serve(requests: Connection, results: Connection, share: int = 1) -> None:
    results.send(("ready", f"instant stand-in (share 1/{share})"))
    known: dict[tuple[int, int], tuple | None] = {}
    while True:
        message = requests.recv()
        if message is None:
            return
        _, batch_id, items = message
        rows = []
        for index, path in items:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino)
            if key not in known:
                job = _read(index, path)
                known[key] = None if job is None else (
                    [int(c) for c in record_for(path, 250_000_000).codes], job.size, job.orientation, job.file)
            answer = known[key]
            rows.append((index, None, None, None, None) if answer is None else (index, *answer))
        results.send(("done", batch_id, rows))
