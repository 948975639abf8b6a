"""Photos per second: imagehash, our CPU path on all cores, our GPU path; and how often
their codes agree, in one run.

Makes camera-like JPEGs from real photos (the sample catalog's originals, or --sources):
12 MP (4000x3000, quality 92, about 3.5 MB like a camera's) and 2 MP (1920x1080), each
cropped to the aspect, resized, and given a little noise when upscaled so it compresses
like a photo. ``--distinct`` different photos are made per size and
hard-linked up to ``--files`` (decoding a copy costs what decoding any photo costs);
all are read once first so every contender reads from memory. Then, per size:

- imagehash 4.3, all four hashes (wHash at image_scale=64, as ours), one process;
- ``hash_paths`` on the CPU: a process pool over all cores, in each decode mode
  (``--modes``: "exact", every pixel, imagehash's codes; "reduced", the default, JPEGs at
  1/2-1/8 in the DCT domain), and with the older JPEG draft setting (``--drafts``);
- ``hash_paths`` with the GPU: nvImageCodec on the JPEG engines + CuPy kernels in the
  GPU processes, the process pool beside it, in each mode (skipped when no GPU is usable);
  and one and two GPU processes alone, fed directly (what the engines and kernels do
  without the facts);
- end to end (``--end-to-end``, on by default): the figure a user meets, a fresh Python
  process that imports the package, starts its pool (and GPU processes) and hashes the
  same files once, start-up and warm-up included, beside the warm figures above;
- agreement with the exact CPU decode (whose codes are imagehash's on the same pixels,
  checked here too) and of the GPU with the CPU in the same mode: share of photos whose
  four codes are identical, per-word shares, and the largest difference in bits.

Usage: python benchmarks/hash_throughput.py [--files 1200] [--cpu-files 320]
           [--distinct 96] [--imagehash-files 16] [--sizes 12,2] [--drafts 1,2,4,8]
           [--modes exact,reduced] [--no-end-to-end]
           [--noise 10] [--sources DIR ...] [--json OUT] [--gpu-batch-size N] [--gpu-only]
           [--gpu-processes 0,1,2] [--scaling] [--gpus 0,0] [--ceiling]

``--gpu-batch-size`` takes a list (128,256: GPU rows for each); ``--gpus`` runs the GPU rows
on those devices' process groups ([gpu] devices: "0,0" is two groups on one GPU);
``--ceiling`` first times two decode-only feeder processes with their own decoders on the
distinct photos from memory (benchmarks/jpeg_engines.py's "2decode", batches of 128 and 256):
the engines' ceiling, which each GPU row is then printed against.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _camera_library import SIZES, _make, _sources, make_library  # noqa: E402,F401  (others take them from here too)

from lumina_plugin.config import Config
from lumina_plugin.ingest import pipeline
from lumina_plugin.ingest import pool as parallel
from lumina_plugin.ingest.pipeline import hash_paths
from lumina_plugin.settings.gpu import GpuSettings
from lumina_plugin.settings.hashing import HashingSettings

#: [gpu] settings of every run (``--gpus`` sets its devices).
GPU = GpuSettings()


def time_imagehash(paths: list[str]) -> tuple[float, np.ndarray]:
    import imagehash

    codes = []
    with Image.open(paths[0]) as img:  # imports and first-call costs out of the timing
        imagehash.phash(img), imagehash.whash(img, image_scale=64)
    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            img.load()
            hs = [imagehash.average_hash(img), imagehash.dhash(img), imagehash.phash(img),
                  imagehash.whash(img, image_scale=64)]
        codes.append([int(str(h), 16) for h in hs])
    return time.perf_counter() - start, np.array(codes, dtype=np.uint64)


def run(paths: list[str], settings: HashingSettings, before_timing: Callable[[], None] | None = None
        ) -> tuple[float, dict[str, np.ndarray], dict]:
    """Warm up on the first files, then time the whole run.

    The warm-up takes the same way as the run (the pool, and the GPU when it is on, even
    for a few megabytes) and gives every GPU process two full batches: a GPU process's
    first batches of a new photo size cost it about a third of a second once (tables,
    buffers), and a 48-file warm-up at 2 MP had been hashed in this process, leaving the
    pool's start to the timed run (docs/benchmarks.md, 2026-12-03)."""
    config = Config(batch_size=256, hashing=settings, gpu=GPU)
    warm = 48
    if settings.gpu != "off":
        from lumina_plugin.ingest.gpu_processes import DEFAULT_BATCH, DEFAULT_PROCESSES
        groups = len(GPU.hashing_devices(1))
        warm = 2 * groups * (settings.gpu_processes or DEFAULT_PROCESSES) * (settings.gpu_batch_size or DEFAULT_BATCH)
    list(hash_paths(paths[:warm], replace(config, hashing=replace(settings, parallel_min_mb=0))))
    _start_every_worker()
    if before_timing is not None:
        before_timing()
    start = time.perf_counter()
    out: dict[str, np.ndarray] = {}
    errors = 0
    for records, errs in hash_paths(paths, config):
        errors += len(errs)
        out.update((r.path, r.codes) for r in records)
    elapsed = time.perf_counter() - start
    assert not errors and len(out) == len(paths), f"{errors} errors"
    return elapsed, out, dict(pipeline.LAST_RUN)


def _pid_after_nap(_: int) -> int:
    time.sleep(0.05)
    return os.getpid()


def _start_every_worker() -> None:
    """Have every pool worker started and ready before the timing: the pool starts them
    only as work arrives, and beside the GPU a short warm-up may have needed only one or
    two. A worker answers only once it is up, so wait until each one has answered."""
    pool, seen = parallel._POOL, set()
    while pool is not None and len(seen) < parallel._POOL_WORKERS:
        seen.update(pool.map(_pid_after_nap, range(2 * parallel._POOL_WORKERS)))


def time_gpu_process(paths: list[str], batch: int = 0, processes: int = 1) -> tuple[float, int] | None:
    """The GPU processes alone (read, checksum, decode, hash; no EXIF, no CPU share), fed
    batches directly, three in flight each: (seconds, files they hashed), or None without
    a usable GPU."""
    from multiprocessing.connection import wait

    from lumina_plugin.ingest.gpu_processes import DEFAULT_BATCH, load_gpu

    batch = batch or DEFAULT_BATCH
    procs, _ = load_gpu(processes)
    if not procs:
        return None
    for proc in procs:  # first-use costs
        proc.send(("batch", 999_999, [(i, p) for i, p in enumerate(paths[:batch])], HashingSettings().decode))
        proc.results.recv()
    inflight = {proc.results: 0 for proc in procs}
    by_conn = {proc.results: proc for proc in procs}
    hashed, sent, start = 0, 0, time.perf_counter()
    while sent < len(paths) or any(inflight.values()):
        for conn, proc in by_conn.items():
            while inflight[conn] < 3 and sent < len(paths):
                proc.send(("batch", 1_000_000 + sent,
                           [(i, p) for i, p in enumerate(paths[sent:sent + batch], sent)], HashingSettings().decode))
                sent, inflight[conn] = sent + batch, inflight[conn] + 1
        for conn in wait([c for c, n in inflight.items() if n]):
            _, _, rows = conn.recv()
            inflight[conn] -= 1
            hashed += sum(row[1] is not None for row in rows)
    return time.perf_counter() - start, hashed


def end_to_end(paths: list[str], settings: HashingSettings) -> float:
    """Wall seconds of a fresh Python process that hashes ``paths`` with ``settings``:
    interpreter start, imports, the pool's (and GPU processes') start and first batches
    included, as a user's first command meets them."""
    from dataclasses import asdict

    code = ("import json, sys\nfrom lumina_plugin.config import Config\n"
            "from lumina_plugin.ingest.pipeline import hash_paths\n"
            "from lumina_plugin.settings.hashing import HashingSettings\n"
            "paths = json.load(open(sys.argv[1]))\n"
            "from lumina_plugin.settings.gpu import GpuSettings\n"
            "config = Config(batch_size=256, hashing=HashingSettings(**json.loads(sys.argv[2])),\n"
            "                gpu=GpuSettings(devices=sys.argv[3]))\n"
            "assert sum(len(r) for r, _ in hash_paths(paths, config)) == len(paths)\n")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as listing:
        json.dump(paths, listing)
        listing.flush()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, listing.name, json.dumps(asdict(settings)), GPU.devices],
                       check=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
        return time.perf_counter() - start


def agreement(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], keys: list[str]) -> dict:
    ref = np.stack([reference[k] for k in keys])
    got = np.stack([other[k] for k in keys])
    bits = np.vectorize(lambda a, b: bin(int(a) ^ int(b)).count("1"), otypes=[int])(ref, got)
    return {"photos": len(keys), "all_four_equal": float((bits.sum(axis=1) == 0).mean()),
            "per_hash_equal": [float(x) for x in (bits == 0).mean(axis=0)],
            "max_bits": [int(x) for x in bits.max(axis=0)]}


def _draft_codes(job: tuple[str, int]) -> list[int]:
    from lumina_plugin.ingest.records import record_for
    return [int(c) for c in record_for(job[0], 250_000_000, job[1]).codes]


def machine() -> dict:
    info = {"python": platform.python_version(), "pillow": Image.__version__, "numpy": np.__version__,
            "cores": parallel.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    try:
        model = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        info["cpu"] = model[0].split(":", 1)[1].strip() if model else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    usable, reason = pipeline.gpu_status()
    info["gpu_usable"], info["gpu_reason"] = usable, None if reason is None else str(reason)
    if usable:
        import cupy
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1200, help="photos per size for the GPU run")
    parser.add_argument("--cpu-files", type=int, default=320, help="photos per size for the CPU runs")
    parser.add_argument("--distinct", type=int, default=96)
    parser.add_argument("--imagehash-files", type=int, default=16)
    parser.add_argument("--sizes", default="12,2")
    parser.add_argument("--drafts", default="", help="older draft settings to time and compare, e.g. 1,2,4,8")
    parser.add_argument("--modes", default="exact,reduced", help="decode modes to time (exact: the reference)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the fresh-process runs")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--gpu-batch-size", type=lambda t: [int(x) for x in t.split(",")], default=[0],
                        help="photos per GPU batch, a row each, e.g. 128,256 (0: the default)")
    parser.add_argument("--prefetch", type=lambda t: [x == "on" for x in t.split(",")], default=[True],
                        help="[hashing] prefetch of the GPU rows, a row each: on, off or on,off")
    parser.add_argument("--gpus", default="", help='[gpu] devices of the GPU rows: "all", "0,1", "0,0"')
    parser.add_argument("--ceiling", action="store_true",
                        help="time two decode-only feeders (the engines' ceiling) and print each GPU row against it")
    parser.add_argument("--gpu-processes", type=lambda t: [int(x) for x in t.split(",")], default=[0],
                        help="GPU process counts to time end to end, e.g. 1,2 (0: the default)")
    parser.add_argument("--scaling", action="store_true",
                        help="also time one process per CPU setting: the pool's share of cores x one core")
    parser.add_argument("--gpu-only", action="store_true",
                        help="time only the default GPU path on --files (plus the CPU reference for agreement)")
    parser.add_argument("--noise", type=int, default=10, help="+- levels added when upscaling a source")
    parser.add_argument("--sources", nargs="*", default=[])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    global GPU
    GPU = GpuSettings(devices=args.gpus)
    drafts = [int(d) for d in args.drafts.split(",") if d]
    info = machine()
    print(json.dumps(info))
    results: dict = {"machine": info, "sizes": {}}
    sources = _sources(args.sources)
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(parallel.cpu_count()) as makers:
        for key in args.sizes.split(","):
            size = SIZES[key]
            t0 = time.perf_counter()
            originals, paths, mb = make_library(Path(tmp) / key, sources, size, args.distinct,
                                                max(args.files, args.cpu_files), makers, args.noise)
            print(f"\n== {key} MP: {size[0]}x{size[1]} q92, {mb:.2f} MB each, {args.distinct} distinct, "
                  f"{len(paths)} files (made in {time.perf_counter() - t0:.1f} s)")
            rows, agree = [], {}
            base = dict(workers=args.workers, gpu_batch_size=args.gpu_batch_size[0])
            cpu_paths = originals if args.gpu_only else paths[: args.cpu_files]

            if not args.gpu_only:
                seconds, ih = time_imagehash(originals[: args.imagehash_files])
                rows.append(("imagehash 4.3, 4 hashes, 1 process", args.imagehash_files, seconds, {}))

            modes = args.modes.split(",")
            by_mode = {}
            for mode in modes:
                seconds, by_mode[mode], stats = run(cpu_paths, HashingSettings(gpu="off", decode=mode, **base))
                default = " (default)" if mode == HashingSettings().decode else ""
                rows.append((f"ours, CPU pool, {mode} decode{default}", len(cpu_paths), seconds, stats))
            full = by_mode[modes[0]]
            reference = {p: full[p] for p in originals if p in full}
            keys = sorted(reference)
            for mode in modes[1:]:
                agree[f"CPU {mode} vs {modes[0]}"] = agreement(reference, by_mode[mode], keys)
            if not args.no_end_to_end:
                for mode in modes:
                    seconds = end_to_end(cpu_paths, HashingSettings(gpu="off", decode=mode, **base))
                    rows.append((f"end to end, fresh process, CPU, {mode}", len(cpu_paths), seconds, {}))
            if not args.gpu_only:
                ih_keys = originals[: args.imagehash_files]
                agree["imagehash vs ours (CPU full)"] = agreement(  # imagehash has the four classic hashes only
                    dict(zip(ih_keys, ih)), {k: v[:ih.shape[1]] for k, v in reference.items()},
                    [k for k in ih_keys if k in reference])

            for d in ([] if args.gpu_only else drafts):
                seconds, got, stats = run(cpu_paths, HashingSettings(gpu="off", decode="exact", draft=d, **base))
                rows.append((f"ours, CPU pool, draft={d}", len(cpu_paths), seconds, stats))
                agree[f"CPU draft={d} vs full"] = agreement(reference, got, keys)

            if args.scaling and not args.gpu_only:
                # The pool against one process with the same settings: the share of
                # (cores x one core's speed) that the pool reaches.
                one = originals[: max(4, min(len(originals), args.cpu_files // info["cores"]))]
                for d in [0] + drafts:
                    seconds, _, _ = run(one, HashingSettings(gpu="off", workers=1, decode=modes[0], draft=d))
                    pool = next(r for r in rows if r[0].startswith("ours, CPU pool") and
                                (f"draft={d}" in r[0] if d else f"{modes[0]} decode" in r[0]))
                    efficiency = (pool[1] / pool[2]) / (info["cores"] * len(one) / seconds)
                    rows.append((f"ours, 1 process, {'draft=' + str(d) if d else 'full decode'}", len(one),
                                 seconds, {"pool_vs_cores_x_one": round(efficiency, 3)}))

            ceiling = 0.0
            if info["gpu_usable"] and args.ceiling:
                from jpeg_engines import run_layout
                for batch in (128, 256):
                    rate = run_layout("2decode", originals, batch, 6.0)
                    ceiling = max(ceiling, rate or 0.0)
                    rows.append((f"ceiling: 2 decode-only feeders, batches of {batch}", len(originals),
                                 len(originals) / rate if rate else float("inf"), {}))
            if info["gpu_usable"]:
                for n in ([] if args.gpu_only else [1, 2]):
                    alone = time_gpu_process(paths, args.gpu_batch_size[0], n)
                    if alone is not None:
                        rows.append((f"GPU process{'es' if n > 1 else ''} alone ({n}; no EXIF, no CPU)",
                                     len(paths), alone[0], {"gpu": True, "gpu_hashed": alone[1], "workers": 0}))
                for n, batch, ahead in [(n, b, a) for n in args.gpu_processes for b in args.gpu_batch_size
                                        for a in args.prefetch]:
                    for mode in modes[::-1]:
                        seconds, got, stats = run(paths, HashingSettings(gpu="on", gpu_processes=n, decode=mode,
                                                                         prefetch=ahead,
                                                                         **{**base, "gpu_batch_size": batch}))
                        label = "default" if n == 0 else f"{n} GPU process{'es' if n > 1 else ''}"
                        label += f", batch {batch}" if batch else ""
                        label += "" if ahead else ", no prefetch"
                        label += f", gpus {GPU.devices}" if GPU.devices else ""
                        if ceiling:
                            stats = {**stats, "of_ceiling": round(len(paths) / seconds / ceiling, 3)}
                        rows.append((f"ours, GPU engines + CPU pool ({label}), {mode}", len(paths), seconds, stats))
                        agree[f"GPU ({label}) {mode} vs CPU {mode}"] = agreement(
                            {p: by_mode[mode][p] for p in keys}, got, keys)
                if not args.no_end_to_end:
                    seconds = end_to_end(paths, HashingSettings(gpu="on", **base))
                    rows.append(("end to end, fresh process, GPU, default", len(paths), seconds, {}))
                if drafts and not args.gpu_only:
                    d = min(drafts, key=lambda d: abs(d - 2))
                    seconds, got, stats = run(paths, HashingSettings(gpu="on", decode="exact", draft=d, **base))
                    rows.append((f"ours, GPU engines + CPU pool, draft={d}", len(paths), seconds, stats))

            ref_rate = rows[0][1] / rows[0][2]  # imagehash's (the CPU pool's with --gpu-only)
            print(f"{'contender':46} {'files':>6} {'seconds':>8} {'img/s':>8} {'vs imagehash':>13}  split")
            for name, n, seconds, stats in rows:
                split = f"pool = {stats['pool_vs_cores_x_one']:.0%} of cores x this" \
                    if "pool_vs_cores_x_one" in stats else f"GPU {stats['gpu_hashed']}/{n}" + (
                    f" in {stats['gpu_processes']} processes" if "gpu_processes" in stats else "") + (
                    f", batches of {stats['gpu_batch']}" if stats.get("gpu_batch") else "") + \
                    f", {stats['workers']} workers" + (
                    f", GPU waited {stats['gpu_window_wait_s']:.2f} s on the window"
                    if "gpu_window_wait_s" in stats else "") + (
                    f", {stats['of_ceiling']:.1%} of the ceiling" if "of_ceiling" in stats else "") if stats.get("gpu") else \
                    (f"{stats['workers']} workers" if stats else "")
                print(f"{name:46} {n:6d} {seconds:8.2f} {n / seconds:8.1f} {n / seconds / ref_rate:12.1f}x  {split}")
            for name, a in agree.items():
                print(f"agreement {name:32} all four equal {a['all_four_equal']:6.1%}  per hash "
                      f"{' '.join(f'{x:.1%}' for x in a['per_hash_equal'])}  max bits {a['max_bits']}"
                      f"  ({a['photos']} photos)")
            gpu_rows = [r for r in rows if "GPU engines" in r[0]]
            if gpu_rows:
                rate = gpu_rows[0][1] / gpu_rows[0][2]
                print(f"100,000 photos of this size at {rate:.0f} img/s: {100_000 / rate / 60:.1f} minutes")
            results["sizes"][key] = {
                "size": size, "mb": mb, "files": len(paths),
                "rows": [{"name": n_, "files": f, "seconds": s, "img_per_s": f / s, "stats": st}
                         for n_, f, s, st in rows],
                "agreement": agree}
    parallel.shutdown_pool()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
