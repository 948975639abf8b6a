"""How fast the GPU's JPEG engines decode with nothing else to do, and with our hashing:
one process, two processes, two threads of one process.

The question it answers: is the engines' ceiling the hardware's, or the one thread's that
feeds them? Each contender decodes (and with ``hash``, hashes as the GPU process does:
ingest/gpu_worker.py's _Batch) the same in-memory batches over and over for
``--seconds``, waits for each batch, and counts photos; processes and threads start
together on a barrier. Files are read once before the clock starts.

Usage (on the GPU machine): python benchmarks/jpeg_engines.py [--sizes 2,12] [--distinct 128]
           [--batch 128] [--seconds 6] [--layouts decode,hash,2decode,2hash,2decode-t]
           [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _camera_library import SIZES, _sources, make_library


def _decode_loop(paths: list[str], batch: int, seconds: float, barrier, out: list, hash_too: bool) -> None:
    """Decode ``paths`` in batches until ``seconds`` have passed after the barrier; with
    ``hash_too``, also hash each batch as the GPU process does (ingest/gpu_worker.py's
    _Batch: kernels of one part queued while the next part decodes), from memory."""
    import faulthandler

    import cupy

    from lumina_plugin.decode.nvimgcodec import GpuJpegDecoder
    from lumina_plugin.hashing.cupy_hasher import GpuHasher
    from lumina_plugin.ingest import gpu_worker

    faulthandler.dump_traceback_later(seconds + 90, exit=True)  # a hang says where, then ends
    jobs = [gpu_worker._read(i, p) for i, p in enumerate(paths)]
    assert all(j is not None for j in jobs), "a test photo the engines do not take"
    decoder = GpuJpegDecoder()
    hasher = GpuHasher() if hash_too else None
    streams = (cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True))
    batches = [jobs[i:i + batch] for i in range(0, len(jobs), batch)]

    def one_pass() -> int:
        if hasher is None:
            n = 0
            for b in batches:
                images = decoder.decode([j.data for j in b], streams[0].ptr)
                streams[0].synchronize()
                n += sum(im is not None for im in images)
            return n
        queued: list = []
        n = 0
        for b in batches:
            held = gpu_worker._Batch(0, [(j.index, "") for j in b])
            part = held.decode(hasher, decoder, streams, b)
            if queued:
                prev_batch, prev_part = queued.pop()
                prev_batch.finish(hasher, prev_part)
                n += sum(r[1] is not None for r in prev_batch.rows.values())
            queued.append((held, part))
        prev_batch, prev_part = queued.pop()
        prev_batch.finish(hasher, prev_part)
        return n + sum(r[1] is not None for r in prev_batch.rows.values())

    one_pass()  # first-use costs
    barrier.wait(timeout=120)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += one_pass()
    out.append((done, time.perf_counter() - start))
    faulthandler.cancel_dump_traceback_later()


def _process_main(args: tuple) -> None:
    paths, batch, seconds, barrier, queue, hash_too = args
    out: list = []
    _decode_loop(paths, batch, seconds, barrier, out, hash_too)
    queue.put(out[0])


def run_layout(layout: str, paths: list[str], batch: int, seconds: float) -> float | None:
    """Photos per second summed over the layout's decoders: 'decode' or 'hash' (decode and
    hash) with a count of processes ('2decode': two processes) or threads of one process
    ('2decode-t'); None when a decoder did not finish in time."""
    threads = layout.endswith("-t")
    name = layout[:-2] if threads else layout
    n = int(name[0]) if name[0].isdigit() else 1
    hash_too = name.lstrip("0123456789") == "hash"
    if threads:
        barrier, out = threading.Barrier(n), []
        workers = [threading.Thread(target=_decode_loop, args=(paths, batch, seconds, barrier, out, hash_too))
                   for _ in range(n)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    else:
        ctx = multiprocessing.get_context("spawn")
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_process_main, args=((paths, batch, seconds, barrier, queue, hash_too),))
                 for _ in range(n)]
        for p in procs:
            p.start()
        out = []
        try:
            out = [queue.get(timeout=seconds + 150) for _ in procs]
        except Exception:
            pass
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        if len(out) < n:
            return None
    return sum(d for d, _ in out) / max(s for _, s in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,12")
    parser.add_argument("--distinct", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--layouts", default="decode,hash,2decode,2hash,2decode-t")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict = {"date": time.strftime("%Y-%m-%d"), "batch": args.batch, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor() as makers:
        for key in args.sizes.split(","):
            originals, _, mb = make_library(Path(tmp) / key, _sources([]), SIZES[key], args.distinct,
                                            args.distinct, makers, 10)
            print(f"== {key} MP, {mb:.2f} MB each, {len(originals)} photos, batches of {args.batch}")
            rows = {}
            for layout in args.layouts.split(","):
                rows[layout] = run_layout(layout, originals, args.batch, args.seconds)
                rate = "did not finish" if rows[layout] is None else f"{rows[layout]:8.1f} photos/s"
                print(f"  {layout:>10}: {rate}", flush=True)
            results["sizes"][key] = rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
