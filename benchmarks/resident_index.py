"""An import batch against a large index through the engine's own path, fresh against resident.

What ``Engine.import_paths`` runs once a batch is hashed: ``HashIndex.add`` (the batch written
to the index: a segment, the manifest, their fsyncs) and the search of the batch against
everything (``Engine._find_pairs``): either ``find_pairs`` over the whole index, as a fresh
engine does per event ("fresh"), or ``resident.search_batch``, as an engine with the process's
kept index does ("resident": the copy grows by the batch, is searched, and ``find_pairs`` takes
its hits). A last batch is searched both ways against the same index ("same pairs"). The same config (the engine's default thresholds: dHash and pHash at radius 10, the
geometric keys at 5), the second look at pixels left out (no photos here: ``None``).

Codes: N random index rows (the 4 classic hashes and the 8 geometry words), a batch of Q of
which a share (--near, default half) are near copies of indexed rows (a few bits flipped in every word, so both searches
find them) and half random. Each run's batch gets new ids, as an import does. Printed per run
kind: median, 90th percentile and worst of the "add" and the "search" parts, and their sum;
"load" is what the resident copy costs once (the first search of a process, or after another
process wrote the index).

    python benchmarks/resident_index.py --device gpu --size 10000000 --queries 1000
    python benchmarks/resident_index.py --device cpu --size 1000000 --queries 1000 --fresh-runs 3 --runs 10
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumina_plugin.config import Config  # noqa: E402
from lumina_plugin.grouping.candidates import FoundPairs, find_pairs  # noqa: E402
from lumina_plugin.model import CODE_WORDS  # noqa: E402
from lumina_plugin.resident import Resident, search_batch  # noqa: E402


def batch(rng: np.random.Generator, codes: np.ndarray, q: int, share: float = 0.5) -> np.ndarray:
    """``q`` codes, ``share`` of them near copies of indexed rows."""
    m = int(q * share)
    near = codes[rng.integers(0, len(codes), m)] ^ (np.uint64(1) << rng.integers(0, 64, (m, CODE_WORDS)).astype(np.uint64))
    return np.concatenate([near, rng.integers(0, 2**63, (q - m, CODE_WORDS), dtype=np.uint64)])


def same(a: FoundPairs, b: FoundPairs) -> bool:
    return bool(np.array_equal(a.a, b.a) and np.array_equal(a.b, b.b) and np.array_equal(a.dist, b.dist))


def summary(name: str, add: list[float], search: list[float]) -> str:
    total = [x + y for x, y in zip(add, search, strict=True)]

    def ms(v: list[float]) -> str:
        v = sorted(v)
        return f"{1e3 * statistics.median(v):.2f} / {1e3 * v[int(0.9 * (len(v) - 1))]:.2f} / {1e3 * v[-1]:.2f}"

    return f"| {name} | {len(add)} | {ms(add)} | {ms(search)} | **{ms(total)}** |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--backend", default="", help="[index] backend (default: gpu on the GPU, cpu on the CPU)")
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--near", type=float, default=0.5, help="share of each batch that copies indexed photos")
    ap.add_argument("--fresh-runs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--profile", type=Path, help="after the timed runs, --runs more resident batches under "
                    "cProfile (and, on the GPU, CUDA events around each kernel part): where the time goes, to PATH")
    args = ap.parse_args(argv)
    backend = args.backend or ("gpu" if args.device == "gpu" else "cpu")
    base = Config()
    config = base.replace(index=base.index.__class__(**{**base.index.__dict__, "backend": backend}))
    options = config.index.search_options()
    rng = np.random.default_rng(2026)
    n, q = args.size, args.queries
    lines = []
    gpu = ""
    if args.device == "gpu":
        import cupy

        gpu = ", " + cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    lines.append(f"Machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores{gpu}), Python "
                 f"{platform.python_version()}, NumPy {np.__version__}, {datetime.date.today().isoformat()}, "
                 f"load {os.getloadavg()[0]:.1f}; index backend {backend!r}.")
    lines.append(f"Command: python benchmarks/resident_index.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("RESIDENT_TMP")) as tmp:
        codes = rng.integers(0, 2**63, (n, CODE_WORDS), dtype=np.uint64)
        t0 = time.perf_counter()
        resident = Resident(Path(tmp) / "idx", config.hash_version())
        index = resident.index
        index.add(np.arange(n, dtype=np.int64) + 1, codes)
        lines.append(f"Index of {n:,} rows written in {time.perf_counter() - t0:.1f} s; batches of {q:,}.")
        next_id = n + 1

        parts: list[dict[str, float]] = []

        def run(searcher: str) -> tuple[float, float, FoundPairs, np.ndarray, np.ndarray]:
            nonlocal next_id
            ids = np.arange(next_id, next_id + q, dtype=np.int64)
            next_id += q
            b = batch(rng, codes, q, args.near)
            t0 = time.perf_counter()
            index.add(ids, b)
            t1 = time.perf_counter()
            if searcher == "fresh":
                found = find_pairs(index.ids, index.codes, config.thresholds, options, ids, b, None)
            else:
                parts.append({})
                found = search_batch(resident, index, config, ids, b, None, parts[-1])  # type: ignore[assignment]
            return t1 - t0, time.perf_counter() - t1, found, ids, b

        header = ["", "| path | batches | add ms (median / p90 / max) | search ms | add + search ms |",
                  "|---|---:|---:|---:|---:|"]
        fresh = [run("fresh") for _ in range(args.fresh_runs)]
        t0 = time.perf_counter()
        first = run("resident")
        load = time.perf_counter() - t0
        rows = [run("resident") for _ in range(args.runs)]
        # Exactness: one more batch, searched both ways against the same index.
        ids = np.arange(next_id, next_id + q, dtype=np.int64)
        b = batch(rng, codes, q, args.near)
        index.add(ids, b)
        got = search_batch(resident, index, config, ids, b, None)
        want = find_pairs(index.ids, index.codes, config.thresholds, options, ids, b, None)
        assert got is not None
        lines += header
        lines.append(summary("fresh (find_pairs over the whole index)", [r[0] for r in fresh], [r[1] for r in fresh]))
        lines.append(summary("resident (search_batch)", [r[0] for r in rows], [r[1] for r in rows]))
        for phase in ("resident search", "verify pairs"):
            v = sorted(p[phase] for p in parts[1 : 1 + len(rows)])
            lines.append(f"| (of which {phase}) | {len(v)} | | {1e3 * statistics.median(v):.2f} / "
                         f"{1e3 * v[int(0.9 * (len(v) - 1))]:.2f} / {1e3 * v[-1]:.2f} | |")
        lines.append("")
        rows_kept = resident.copy.n if resident.copy is not None else 0
        lines.append(f"Resident copy: first search {1e3 * load:.0f} ms (loading the copy: {rows_kept:,} rows "
                     f"by then), {len(got)} pairs in the last batch, same pairs as the fresh search: "
                     f"{'yes' if same(got, want) else 'NO'}; pairs found per batch "
                     f"{statistics.median([len(r[2]) for r in rows]):.0f} (median), first batch {len(first[2])}.")
        if args.profile:
            _profile(args.profile, args.runs, run, args.device == "gpu")
    for line in lines:
        print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n\n")


def _profile(path: Path, runs: int, run: Any, gpu: bool) -> None:
    """``runs`` resident batches under cProfile; on the GPU also the device time of the copy's
    growth (``DeviceTable.append``) and of its scans (from before the first launch to the
    counts read back), from CUDA events."""
    import cProfile
    import io
    import pstats

    spans: dict[str, list[float]] = {}
    restore = []
    if gpu:
        import cupy

        from lumina_plugin.index import gpu_resident
        from lumina_plugin.index.resident import ResidentIndex

        def timed(owner: Any, name: str, label: str) -> None:
            original = getattr(owner, name)

            def wrapper(*a: Any, **k: Any) -> Any:
                start, end = cupy.cuda.Event(), cupy.cuda.Event()
                start.record()
                try:
                    return original(*a, **k)
                finally:
                    end.record()
                    end.synchronize()
                    spans.setdefault(label, []).append(cupy.cuda.get_elapsed_time(start, end))

            setattr(owner, name, wrapper)
            restore.append((owner, name, original))

        timed(gpu_resident.DeviceTable, "append", "device ms of DeviceTable.append (to its end, synced)")
        timed(ResidentIndex, "_query_device", "device ms of _query_device (launches to last transfer, synced)")
    prof = cProfile.Profile()
    for _ in range(runs):
        prof.enable()
        run("resident")
        prof.disable()
    for owner, name, original in restore:
        setattr(owner, name, original)
    out = io.StringIO()
    for label, values in spans.items():
        v = sorted(values)
        out.write(f"{label}: median {statistics.median(v):.3f}, p90 {v[int(0.9 * (len(v) - 1))]:.3f} "
                  f"({len(v)} calls)\n")
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(60)
    stats.sort_stats("tottime").print_stats(40)
    path.write_text(out.getvalue())


if __name__ == "__main__":
    main()
