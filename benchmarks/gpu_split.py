"""What the CPU work beside the GPU costs the GPU: end to end against the GPU alone, for
several splits of the pool, measured in one run.

End to end, every GPU photo also needs its facts (EXIF, size, format) from the CPU pool,
and the pool may decode whole files beside the GPU. Both take cores from the GPU
processes' readers and feeding threads. Per size this prints, rounds interleaved so that
a machine's drift hits every contender alike:

- 2 GPU processes alone, fed directly (read, checksum, decode, hash; no facts, no pool);
- ``hash_paths`` with the GPU for each ``--variants`` entry ``WORKERS:CPU_FILES`` (pool
  workers, 0 = the default; whole files the pool decodes at once beside the GPU,
  ``HashingSettings.cpu_files_beside_gpu``, -1 = automatic), with the GPU's share,
  the seconds the GPU waited on the commit window and the machine's busy cores;
- with ``--ceiling``, the same runs with GPU processes that answer at once
  (benchmarks/_instant_gpu.py): the CPU side's own ceiling. Runs without a GPU too.

Usage: python benchmarks/gpu_split.py [--sizes 2,12] [--files 4000] [--distinct 96]
           [--variants 0:-1,0:0,4:0,4:2] [--rounds 2] [--ceiling] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import hash_throughput as ht  # noqa: E402  (also puts the project on the path)

from lumina_plugin.ingest import gpu_processes as gpu_pipeline
from lumina_plugin.ingest import pool as parallel
from lumina_plugin.settings.hashing import HashingSettings


def _busy() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs so far (/proc/stat), or (0, 0)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _threads_per_core() -> int:
    try:
        siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_text().strip()
    except OSError:
        return 1
    count = 0
    for part in siblings.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used, or 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _by_role() -> dict[str, float]:
    """CPU seconds so far of this process, the pool's workers and the GPU processes."""
    pool = parallel._POOL
    workers = list(pool._processes.values()) if pool is not None and pool._processes else []
    return {"main": _cpu_seconds(os.getpid()),
            "pool": sum(_cpu_seconds(w.pid) for w in workers),
            "gpu": sum(_cpu_seconds(p.process.pid) for p in gpu_pipeline._PROCESSES)}


def timed(paths: list[str], settings: HashingSettings) -> dict:
    start: dict = {}

    def mark() -> None:  # after the warm-up, just before the timing
        start.update(busy=_busy(), roles=_by_role())

    seconds, _, stats = ht.run(paths, settings, before_timing=mark)
    busy, roles = _busy(), _by_role()
    ticks = busy[1] - start["busy"][1]
    cores = parallel.cpu_count()
    return {"seconds": seconds, "img_per_s": len(paths) / seconds, "stats": stats,
            "busy_cores": round(cores * (busy[0] - start["busy"][0]) / ticks, 1) if ticks else None,
            "cpu_s": {k: round(roles[k] - start["roles"][k], 2) for k in roles}}


def instant_gpus(count: int, distinct: list[str]) -> list[gpu_pipeline.GpuProcess]:
    """``count`` instant stand-ins, each shown the distinct photos once (outside the timing)."""
    import _instant_gpu

    procs = [gpu_pipeline.GpuProcess(share=count, target=_instant_gpu.serve) for _ in range(count)]
    for proc in procs:
        reason = proc.handshake()
        assert reason is None, reason
        proc.send(("batch", -1, list(enumerate(distinct))))
        proc.results.recv()
    return procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,12")
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--distinct", type=int, default=96)
    parser.add_argument("--variants", default="0:-1,0:0,4:0,4:2",
                        help="WORKERS:CPU_FILES pairs (0 workers = default; -1 files = automatic)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ceiling", action="store_true", help="also with GPU processes that answer at once")
    parser.add_argument("--noise", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    variants = [tuple(int(x) for x in v.split(":")) for v in args.variants.split(",")]
    info = ht.machine()
    info["threads_per_core"] = _threads_per_core()
    print(json.dumps(info))
    results: dict = {"machine": info, "sizes": {}}
    real = gpu_pipeline.load_gpu(2)[0] if info["gpu_usable"] else []
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(parallel.cpu_count()) as makers:
        for key in args.sizes.split(","):
            size = ht.SIZES[key]
            originals, paths, mb = ht.make_library(Path(tmp) / key, ht._sources([]), size, args.distinct,
                                           args.files, makers, args.noise)
            print(f"\n== {key} MP: {size[0]}x{size[1]} q92, {mb:.2f} MB each, {len(paths)} files")
            rows: list[tuple[str, dict]] = []
            kinds = (["GPU"] if real else []) + (["instant"] if args.ceiling else [])
            for kind in kinds:
                standins = instant_gpus(2, originals) if kind == "instant" else []
                gpu_pipeline._PROCESSES[:] = standins or real  # what load_gpu() hands out
                try:
                    if kind == "GPU":
                        alone = ht.time_gpu_process(paths, 0, 2)
                        if alone:
                            rows.append(("2 GPU processes alone", {"seconds": alone[0],
                                                                   "img_per_s": len(paths) / alone[0]}))
                    for r in range(args.rounds):
                        for workers, cpu_files in variants:
                            got = timed(paths, HashingSettings(gpu="on", workers=workers,
                                                               cpu_files_beside_gpu=cpu_files))
                            rows.append((f"{kind}: workers {workers or 'auto'}, whole files "
                                         f"{'auto' if cpu_files < 0 else cpu_files} (round {r + 1})", got))
                            _print(rows[-1])
                finally:
                    for proc in standins:
                        proc.stop()
                    gpu_pipeline._PROCESSES[:] = real
            print(f"\n{'contender':56} {'img/s':>8}  split")
            for row in rows:
                _print(row)
            results["sizes"][key] = {"size": size, "mb": mb, "files": len(paths),
                                     "rows": [{"name": n, **r} for n, r in rows]}
    parallel.shutdown_pool()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _print(row: tuple[str, dict]) -> None:
    name, r = row
    st = r.get("stats") or {}
    cpu = r.get("cpu_s") or {}
    split = (f"GPU {st.get('gpu_hashed')}, {st.get('workers')} workers, window wait "
             f"{st.get('gpu_window_wait_s', 0):.2f} s, {r.get('busy_cores')} cores busy "
             f"(CPU s: main {cpu.get('main')}, pool {cpu.get('pool')}, GPU processes {cpu.get('gpu')})") if st else ""
    print(f"{name:56} {r['img_per_s']:8.1f}  {split}", flush=True)


if __name__ == "__main__":
    main()
