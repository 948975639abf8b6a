"""All pairs within a radius among N 64-bit codes: FAISS, brute force and our joins, in one run.

Data: N codes, uniform random or skewed like real libraries (a fifth of the codes drawn within
3 bits of 100,000 popular centres: black frames, blank skies, screenshots; some buckets get huge),
with pairs planted at known distances 0..r (must all be found: recall) and at r+1 (must not be).

Contenders (each where it fits the size; see LIMITS):
  faiss-flat       FAISS IndexBinaryFlat.range_search (CPU, brute force; radius passed as r+1)
  faiss-multihash  FAISS IndexBinaryMultiHash (CPU; 3 tables of 21 bits, r // 3 flips), range_search
  faiss-gpu-knn    FAISS GpuIndexBinaryFlat k-NN self-join, completed on the CPU where k is short
  cupy-brute       our brute-force CuPy kernel (codes tiled in shared memory, XOR + popcount)
  ours-cpu         lumina_plugin.index.mih.join, plan chosen by the cost model
  ours-cpu-r+1     the same with the classic r+1 exact blocks
  ours-gpu         lumina_plugin.index.gpu.mih_join, plan chosen by the GPU cost model
  ours-gpu-r+1     the same with r+1 exact blocks
  ours-gpu-4blocks the same with 4 blocks of 16 bits and r // 4 flips

"pairs/s" is the all-pairs throughput, N(N-1)/2 divided by the time (Lumina's own comparison does
about 85,000 a second per core). Peak memory: CPU contenders run in a child process each, and
report that child's peak RSS above its RSS once it holds the codes; GPU contenders report the CuPy memory pool's
peak (FAISS GPU allocates outside it: not measured).

Usage:
  python benchmarks/search.py --device cpu --sizes 100000,1000000 [--out docs/x.md]
  python benchmarks/search.py --device gpu --sizes 1000000,10000000,100000000 --out $OUT/search-gpu.md
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lumina_plugin.hashing.codes import codes_to_bytes
from lumina_plugin.index import flat, gpu, mih

CENTRES = 100_000
#: Largest N each contender runs at, per --device (its cost grows as N² or it is too slow beyond).
LIMITS = {
    "cpu": {"faiss-flat": 10**6, "faiss-multihash": 10**6, "ours-cpu": 10**7, "ours-cpu-r+1": 10**5},
    "gpu": {"faiss-flat": 10**6, "faiss-multihash": 10**6, "faiss-gpu-knn": 10**6, "cupy-brute": 10**7,
            "ours-cpu": 10**6, "ours-gpu": 10**9, "ours-gpu-r+1": 10**7, "ours-gpu-4blocks": 10**9},
}


@dataclass
class Data:
    kind: str
    x: np.ndarray  # uint64 (n,)
    planted: np.ndarray  # sorted keys i * n + j of pairs planted within the radius
    far: np.ndarray  # keys of pairs planted at radius + 1 (must not be reported)


def _masks(rng: np.random.Generator, bits: np.ndarray) -> np.ndarray:
    """One random uint64 mask of exactly bits[t] set bits per entry."""
    out = np.zeros(len(bits), np.uint64)
    for t, b in enumerate(bits):
        for pos in rng.choice(64, int(b), replace=False):
            out[t] |= np.uint64(1) << np.uint64(pos)
    return out


def make_data(kind: str, n: int, radius: int, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    if kind == "skewed":
        centres = rng.integers(0, 2**64, CENTRES, dtype=np.uint64, endpoint=False)
        pick = rng.choice(n, n // 5, replace=False)
        near = centres[rng.integers(0, CENTRES, len(pick))]
        for _ in range(3):  # up to 3 random bits flipped
            flip = np.uint64(1) << rng.integers(0, 64, len(pick)).astype(np.uint64)
            near ^= np.where(rng.random(len(pick)) < 0.7, flip, np.uint64(0))
        x[pick] = near
    planted_n = min(10_000, n // 20)
    rows = rng.choice(n, 2 * (planted_n + planted_n // 10), replace=False).reshape(-1, 2)
    rows.sort(axis=1)
    dist = np.concatenate([np.arange(planted_n) % (radius + 1), np.full(len(rows) - planted_n, radius + 1)])
    x[rows[:, 1]] = x[rows[:, 0]] ^ _masks(rng, dist)
    keys = rows[:, 0].astype(np.int64) * n + rows[:, 1]
    return Data(kind, x, np.sort(keys[:planted_n]), np.sort(keys[planted_n:]))


# -- contenders: each yields (i, j) row pairs, i < j, as NumPy or CuPy arrays -------------------


def faiss_multihash(x: np.ndarray, radius: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    nhash = 3
    index = faiss.IndexBinaryMultiHash(64, nhash, 64 // nhash)
    index.nflip = radius // nhash
    base = codes_to_bytes(x)
    index.add(base)
    for q0 in range(0, len(x), 65_536):
        q1 = min(q0 + 65_536, len(x))
        lims, _, labels = index.range_search(base[q0:q1], radius + 1)
        i = np.repeat(np.arange(q0, q1, dtype=np.int64), np.diff(lims.astype(np.int64)))
        j = labels.astype(np.int64)
        keep = i < j
        yield i[keep], j[keep]


def contenders(radius: int) -> dict[str, Callable[[Any], Iterator[tuple[Any, Any]]]]:
    r1 = max(3, min(radius + 1, mih.MAX_BLOCKS))
    return {
        "faiss-flat": lambda x: flat.range_join(x, radius),
        "faiss-multihash": lambda x: faiss_multihash(x, radius),
        "faiss-gpu-knn": lambda x: flat.knn_join(x, radius, k=32),
        "cupy-brute": lambda x: gpu.brute_join(x, radius),
        "ours-cpu": lambda x: mih.join(x, radius),
        "ours-cpu-r+1": lambda x: mih.join(x, radius, plan=mih.make_plan(radius, min(radius + 1, mih.MAX_BLOCKS))),
        "ours-gpu": lambda x: gpu.mih_join(x, radius),
        "ours-gpu-r+1": lambda x: gpu.mih_join(x, radius, plan=mih.make_plan(radius, r1)),
        "ours-gpu-4blocks": lambda x: gpu.mih_join(x, radius, plan=mih.make_plan(radius, 4)),
    }


#: Where each contender's output is checked: "gpu" (CuPy, in this process), "here" (NumPy, in this
#: process: FAISS GPU cannot run in a child forked after CUDA started), else a forked child.
RUN_IN = {"faiss-gpu-knn": "here", "cupy-brute": "gpu", "ours-gpu": "gpu", "ours-gpu-r+1": "gpu", "ours-gpu-4blocks": "gpu"}


@dataclass
class Outcome:
    seconds: float
    pairs: int
    checksum: int
    recall: float
    far_found: int
    too_far: int
    peak_bytes: int


def consume(chunks: Iterator[tuple[Any, Any]], data: Data, radius: int, xp: Any) -> Outcome:
    """Count the pairs, their key checksum, which planted pairs came out, and any pair too far.

    The time reported is the join's alone: the time spent checking its output is subtracted.
    """
    x = xp.asarray(data.x)
    n = len(data.x)
    planted, far = xp.asarray(data.planted), xp.asarray(data.far)
    found = xp.zeros(len(planted), bool)
    pairs = checksum = far_found = too_far = 0
    popc = _popcount(xp)
    sync = xp.cuda.Device().synchronize if xp is not np else (lambda: None)
    checking = 0.0
    start = time.perf_counter()
    for i, j in chunks:
        sync()
        t0 = time.perf_counter()
        keys = i.astype(xp.int64) * n + j
        pairs += len(keys)
        checksum = (checksum + int(keys.astype(xp.uint64).sum())) % 2**64
        pos = xp.minimum(xp.searchsorted(planted, keys), len(planted) - 1)
        found[pos[planted[pos] == keys]] = True
        pos = xp.minimum(xp.searchsorted(far, keys), max(len(far) - 1, 0))
        far_found += int((far[pos] == keys).sum()) if len(far) else 0
        too_far += int((popc(x[i] ^ x[j]) > radius).sum())
        sync()
        checking += time.perf_counter() - t0
    sync()
    seconds = time.perf_counter() - start - checking
    recall = float(found.mean()) if len(planted) else 1.0
    return Outcome(seconds, pairs, checksum, recall, far_found, too_far, 0)


def _popcount(xp: Any) -> Callable[[Any], Any]:
    if xp is np:
        return np.bitwise_count
    kernel = xp.ElementwiseKernel("uint64 v", "int32 c", "c = __popcll(v)", "lumina_popc64")
    return lambda v: kernel(v)


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _child(name: str, data: Data, radius: int, conn: Any) -> None:
    try:
        try:  # reset the peak-RSS mark to the current RSS (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        base = _rss("VmRSS:")
        out = consume(contenders(radius)[name](data.x), data, radius, np)
        out.peak_bytes = max(0, _rss("VmHWM:") - base)
        conn.send(out)
    except BaseException as err:
        conn.send(err)


def run_cpu(name: str, data: Data, radius: int) -> Outcome:
    # A fresh interpreter, not a fork: forking after OpenMP (FAISS) or CUDA ran here can hang.
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(name, data, radius, send))
    proc.start()
    result = recv.recv()
    proc.join()
    if isinstance(result, BaseException):
        raise result
    return result


def run_here(name: str, data: Data, radius: int) -> Outcome:
    return consume(contenders(radius)[name](data.x), data, radius, np)


def run_gpu(name: str, data: Data, radius: int) -> Outcome:
    import cupy

    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    out = consume(contenders(radius)[name](data.x), data, radius, cupy)
    out.peak_bytes = pool.total_bytes()
    pool.free_all_blocks()
    return out


def _fmt_bytes(b: int) -> str:
    return "n/a" if b <= 0 else f"{b / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--radius", type=int, default=6)
    ap.add_argument("--kinds", default="uniform,skewed")
    ap.add_argument("--only", default="", help="comma-separated contenders (default: all that fit)")
    ap.add_argument("--skip", default="", help="comma-separated NAME@N:KIND runs to leave out")
    ap.add_argument("--out", type=Path, help="append the markdown table here, row by row")
    args = ap.parse_args(argv)
    radius = args.radius
    names = [c for c in contenders(radius) if c in LIMITS[args.device]]
    if args.only:
        names = [c for c in names if c in args.only.split(",")]
    if args.device == "gpu" and gpu.gpu_problem() is not None:
        raise SystemExit(f"GPU unusable: {gpu.gpu_problem()}")
    if "faiss-gpu-knn" in names and flat.gpu_flat_problem() is not None:
        print(f"faiss-gpu-knn left out: {flat.gpu_flat_problem()}", file=sys.stderr)
        names.remove("faiss-gpu-knn")
    header = [
        f"Machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores{_gpu_name(args.device)}), "
        f"Python {platform.python_version()}, NumPy {np.__version__}, FAISS {faiss.__version__}, "
        f"{datetime.date.today().isoformat()}, load {os.getloadavg()[0]:.1f}.",
        f"Command: python benchmarks/search.py {' '.join(argv if argv is not None else sys.argv[1:])}",
        "",
        "| N | codes | contender | seconds | pairs/s | pairs found | same as first | recall | r+1 found | peak memory |",
        "|---:|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    _emit(args.out, "\n".join(header))
    # GPU runs first do the GPU contenders at every size, then the slow CPU ones: a run cut short
    # by a time limit still has the large sizes.
    phases = [[c for c in names if RUN_IN.get(c) == "gpu"], [c for c in names if RUN_IN.get(c) != "gpu"]]
    references: dict[tuple[int, str], tuple[int, int]] = {}
    skip = set(args.skip.split(","))
    for phase in phases if args.device == "gpu" else [names]:
        for n in [int(s) for s in args.sizes.split(",")]:
            for kind in args.kinds.split(","):
                todo = [c for c in phase if n <= LIMITS[args.device][c] and f"{c}@{n}:{kind}" not in skip]
                if todo:
                    data = make_data(kind, n, radius)
                    for name in todo:
                        _row(args.out, name, data, radius, references)


def _row(out_path: Path | None, name: str, data: Data, radius: int, references: dict[tuple[int, str], tuple[int, int]]) -> None:
    """Run one contender on one data set and print its row (the first run is the reference)."""
    n, kind = len(data.x), data.kind
    runner = {"gpu": run_gpu, "here": run_here}.get(RUN_IN.get(name, ""), run_cpu)
    try:
        out = runner(name, data, radius)
    except Exception as err:
        _emit(out_path, f"| {n:,} | {kind} | {name} | failed: {type(err).__name__}: {err} |")
        return
    reference = references.setdefault((n, kind), (out.pairs, out.checksum))
    exact = "yes" if reference == (out.pairs, out.checksum) else "NO"
    if out.too_far:
        exact = f"NO ({out.too_far} too far)"
    rate = n * (n - 1) / 2 / out.seconds
    _emit(out_path, f"| {n:,} | {kind} | {name} | {out.seconds:.3f} | {rate:.3g} | {out.pairs:,} | "
                    f"{exact} | {out.recall:.3f} | {out.far_found} | {_fmt_bytes(out.peak_bytes)} |")


def _gpu_name(device: str) -> str:
    if device != "gpu":
        return ""
    import cupy

    return ", " + cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def _emit(out: Path | None, text: str) -> None:
    print(text, flush=True)
    if out is not None:
        with open(out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
