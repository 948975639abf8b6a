"""Pairs within a radius among 64-bit codes: FAISS, brute force and our joins, in one run.

Two modes. ``--mode pairs`` (default): all pairs among N codes (Find Duplicates). ``--mode
query``: a batch of Q new codes against N indexed ones (import), each contender timed on the
query alone after a warm-up run (what it may prepare once per index -- lane tables, codes on
the GPU -- is timed apart, "prepare s"); plus, on the CPU, the whole import-time search over the
four hash columns as the engine runs it (a HashIndex holding the batch, then query_pairs).

Data: N codes, uniform random or skewed like real libraries (a fifth of the codes drawn within
3 bits of 100,000 popular centres: black frames, blank skies, screenshots; some buckets get huge),
with pairs planted at known distances 0..r (must all be found: recall) and at r+1 (must not be).

Contenders, all pairs (each where it fits the size; see LIMITS):
  faiss-flat       FAISS IndexBinaryFlat.range_search (CPU, brute force; radius passed as r+1)
  faiss-multihash  FAISS IndexBinaryMultiHash (CPU; 3 tables of 21 bits, r // 3 flips), range_search
  faiss-gpu-knn    FAISS GpuIndexBinaryFlat k-NN self-join, completed on the CPU where k is short
  cupy-brute       our brute-force CuPy kernel (codes tiled in shared memory, XOR + popcount)
  ours-cpu         lumina_plugin.index.mih.join, plan chosen by the cost model
  ours-cpu-r+1     the same with the classic r+1 exact blocks
  ours-gpu         lumina_plugin.index.cupy_join.mih_join, plan chosen by the GPU cost model
  ours-gpu-r+1     the same with r+1 exact blocks
  ours-gpu-4blocks the same with 4 blocks of 16 bits and r // 4 flips

Contenders, query mode (one column; all include the pairs within the batch):
  faiss-flat       FAISS IndexBinaryFlat.range_search of the batch
  ours-cpu-sorted  lumina_plugin.index.mih.join with first_query (sorts all N per block: the old path)
  ours-cpu         what the search runs for "mih": the lane join, scanning the lanes (nothing prepared)
  ours-cpu-tables  the lane join with lane tables built once (prepare)
  cupy-brute       our brute-force CuPy kernel, queries against everything
  ours-gpu-sorted  lumina_plugin.index.cupy_join.mih_join with first_query (sorts all N per block)
  ours-gpu         lumina_plugin.index.gpu_lanes: codes and lane tables resident on the GPU (prepare)
  import-4col      (CPU) HashIndex + query_pairs over 4 columns, radius r each, backend auto: the
                   engine's import search; import-4col-sorted: the same through the old sorted join

"pairs/s" is the all-pairs throughput, N(N-1)/2 divided by the time (Lumina's own comparison does
about 85,000 a second per core). Peak memory: CPU contenders run in a child process each, and
report that child's peak RSS above its RSS once it holds the codes; GPU contenders report the CuPy memory pool's
peak (FAISS GPU allocates outside it: not measured).

Usage:
  python benchmarks/search.py --device cpu --sizes 100000,1000000 [--out docs/x.md]
  python benchmarks/search.py --device gpu --sizes 1000000,10000000,100000000 --out $OUT/search-cupy_join.md
  python benchmarks/search.py --mode query --device cpu --sizes 1000000 --queries 1000
  python benchmarks/search.py --mode query --device gpu --sizes 1000000,10000000 --queries 1000
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lumina_plugin.hashing.codes import codes_to_bytes
from lumina_plugin.index import cupy_join, flat, gpu_check, gpu_lanes, lanes, mih, search
from lumina_plugin.index.store import HashIndex

CENTRES = 100_000
#: Largest N each contender runs at, per --device (its cost grows as N² or it is too slow beyond).
LIMITS = {
    "cpu": {"faiss-flat": 10**6, "faiss-multihash": 10**6, "ours-cpu": 10**7, "ours-cpu-r+1": 10**5},
    "gpu": {"faiss-flat": 10**6, "faiss-multihash": 10**6, "faiss-gpu-knn": 10**6, "cupy-brute": 10**7,
            "ours-cpu": 10**6, "ours-gpu": 10**9, "ours-gpu-r+1": 10**7, "ours-gpu-4blocks": 10**9},
    "query-cpu": {"faiss-flat": 10**7, "ours-cpu-sorted": 10**7, "ours-cpu": 10**8, "ours-cpu-tables": 10**8,
                  "import-4col": 10**7, "import-4col-sorted": 10**7, "import-4col-faiss": 10**7},
    "query-gpu": {"cupy-brute": 10**8, "ours-gpu-sorted": 10**8, "ours-gpu": 10**9, "ours-cpu": 10**7},
}


@dataclass
class Data:
    kind: str
    x: np.ndarray  # uint64 (n,)
    planted: np.ndarray  # sorted keys i * n + j of pairs planted within the radius
    far: np.ndarray  # keys of pairs planted at radius + 1 (must not be reported)
    q0: int = 0  # query mode: rows q0: are the batch


def _codes(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform codes, or skewed: a fifth of them within 3 bits of popular centres."""
    x = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    if kind == "skewed":
        centres = rng.integers(0, 2**64, CENTRES, dtype=np.uint64, endpoint=False)
        pick = rng.choice(n, n // 5, replace=False)
        near = centres[rng.integers(0, CENTRES, len(pick))]
        for _ in range(3):  # up to 3 random bits flipped
            flip = np.uint64(1) << rng.integers(0, 64, len(pick)).astype(np.uint64)
            near ^= np.where(rng.random(len(pick)) < 0.7, flip, np.uint64(0))
        x[pick] = near
    return x


def _masks(rng: np.random.Generator, bits: np.ndarray) -> np.ndarray:
    """One random uint64 mask of exactly bits[t] set bits per entry."""
    out = np.zeros(len(bits), np.uint64)
    for t, b in enumerate(bits):
        for pos in rng.choice(64, int(b), replace=False):
            out[t] |= np.uint64(1) << np.uint64(pos)
    return out


def make_data(kind: str, n: int, radius: int, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    x = _codes(kind, n, rng)
    planted_n = min(10_000, n // 20)
    rows = rng.choice(n, 2 * (planted_n + planted_n // 10), replace=False).reshape(-1, 2)
    rows.sort(axis=1)
    dist = np.concatenate([np.arange(planted_n) % (radius + 1), np.full(len(rows) - planted_n, radius + 1)])
    x[rows[:, 1]] = x[rows[:, 0]] ^ _masks(rng, dist)
    keys = rows[:, 0].astype(np.int64) * n + rows[:, 1]
    return Data(kind, x, np.sort(keys[:planted_n]), np.sort(keys[planted_n:]))


def make_query_data(kind: str, n: int, q: int, radius: int, seed: int = 0) -> Data:
    """N indexed codes, then Q queries; half the queries planted at 0..r bits from an indexed
    code (they must be found), a tenth at r + 1 bits (they must not)."""
    rng = np.random.default_rng(seed)
    x = _codes(kind, n + q, rng)
    planted_n, far_n = q // 2, q // 10
    rows = rng.choice(n, planted_n + far_n, replace=False)
    dist = np.concatenate([np.arange(planted_n) % (radius + 1), np.full(far_n, radius + 1)])
    x[n : n + len(rows)] = x[rows] ^ _masks(rng, dist)
    keys = rows.astype(np.int64) * (n + q) + n + np.arange(len(rows))
    return Data(kind, x, np.sort(keys[:planted_n]), np.sort(keys[planted_n:]), n)


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
        "cupy-brute": lambda x: cupy_join.brute_join(x, radius),
        "ours-cpu": lambda x: mih.join(x, radius),
        "ours-cpu-r+1": lambda x: mih.join(x, radius, plan=mih.make_plan(radius, min(radius + 1, mih.MAX_BLOCKS))),
        "ours-gpu": lambda x: cupy_join.mih_join(x, radius),
        "ours-gpu-r+1": lambda x: cupy_join.mih_join(x, radius, plan=mih.make_plan(radius, r1)),
        "ours-gpu-4blocks": lambda x: cupy_join.mih_join(x, radius, plan=mih.make_plan(radius, 4)),
    }


def query_contenders(radius: int) -> dict[str, Callable[[np.ndarray, int], Callable[[], Iterator[tuple[Any, Any]]]]]:
    """Query mode: ``prepare(x, q0)`` (untimed: what is built once per index) returns ``run()``,
    the timed query, yielding (i, j) row pairs of x, i < j, rows q0: being the batch."""

    def plain(join: Callable[[np.ndarray, int], Iterator[tuple[Any, Any]]]) -> Any:
        return lambda x, q0: (lambda: join(x, q0))

    def cpu_tables(x: np.ndarray, q0: int) -> Callable[[], Iterator[tuple[Any, Any]]]:
        tables = lanes.LaneTables.build(x[:q0])

        def run() -> Iterator[tuple[Any, Any]]:
            for i, j in lanes.join(x[:q0], x[q0:], radius, tables=tables):
                yield i, q0 + j
            for i, j in mih.join(x[q0:], radius):
                yield q0 + i, q0 + j
        return run

    def gpu_resident(x: np.ndarray, q0: int) -> Callable[[], Iterator[tuple[Any, Any]]]:
        tables = gpu_lanes.DeviceLanes.build(x[:q0])  # the index on the GPU; the batch uploads per query

        def run() -> Iterator[tuple[Any, Any]]:
            for i, j in gpu_lanes.join(tables, x[q0:], radius, capacity=1 << 20):
                yield i, q0 + j
            for i, j in cupy_join.brute_join(x[q0:], radius, capacity=1 << 20):
                yield q0 + i, q0 + j
        return run

    return {
        "faiss-flat": plain(lambda x, q0: flat.range_join(x, radius, first_query=q0)),
        "ours-cpu-sorted": plain(lambda x, q0: mih.join(x, radius, first_query=q0)),
        "ours-cpu": plain(lambda x, q0: search.radius_join(x, radius, first_query=q0, backend="mih")),
        "ours-cpu-tables": cpu_tables,
        "cupy-brute": plain(lambda x, q0: cupy_join.brute_join(x, radius, first_query=q0)),
        "ours-gpu-sorted": plain(lambda x, q0: cupy_join.mih_join(x, radius, first_query=q0)),
        "ours-gpu": gpu_resident,
    }


#: Where each contender's output is checked: "gpu" (CuPy, in this process), "here" (NumPy, in this
#: process: FAISS GPU cannot run in a child forked after CUDA started), else a forked child.
RUN_IN = {"faiss-gpu-knn": "here", "cupy-brute": "gpu", "ours-gpu": "gpu", "ours-gpu-r+1": "gpu",
          "ours-gpu-4blocks": "gpu", "ours-gpu-sorted": "gpu"}


@dataclass
class Outcome:
    seconds: float
    pairs: int
    checksum: int
    recall: float
    far_found: int
    too_far: int
    peak_bytes: int
    first: float = 0.0  # query mode: the warm-up run's seconds
    prepare: float = 0.0  # query mode: seconds to build what the contender keeps per index


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
    sync = _sync(xp)
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


def measure(name: str, data: Data, radius: int, on_gpu: bool, repeat: int) -> Outcome:
    """All pairs: one timed run. Query mode: prepare (timed apart), a warm-up run, then ``repeat``
    runs; the median of those is the query time. Output is checked with CuPy ``on_gpu``."""
    xp = __import__("cupy") if on_gpu else np
    if not data.q0:
        return consume(contenders(radius)[name](data.x), data, radius, xp)
    t0 = time.perf_counter()
    run = query_contenders(radius)[name](data.x, data.q0)
    _sync(xp)()
    prepare = time.perf_counter() - t0
    outs = [consume(run(), data, radius, xp) for _ in range(1 + max(repeat, 1))]
    out = outs[-1]
    out.first, out.prepare = outs[0].seconds, prepare
    out.seconds = statistics.median(o.seconds for o in outs[1:])
    return out


def _sync(xp: Any) -> Callable[[], None]:
    return xp.cuda.Device().synchronize if xp is not np else (lambda: None)


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


def _reset_peak() -> None:
    try:  # reset the peak-RSS mark to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _child(task: Callable[..., Outcome], args: tuple[Any, ...], conn: Any) -> None:
    try:
        _reset_peak()
        base = _rss("VmRSS:")
        out = task(*args)
        out.peak_bytes = out.peak_bytes or max(0, _rss("VmHWM:") - base)  # (a task may measure its own)
        conn.send(out)
    except BaseException as err:
        conn.send(err)


def in_child(task: Callable[..., Outcome], *args: Any) -> Outcome:
    # A fresh interpreter, not a fork: forking after OpenMP (FAISS) or CUDA ran here can hang.
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(task, args, send))
    proc.start()
    result = recv.recv()
    proc.join()
    if isinstance(result, BaseException):
        raise result
    return result


def run_cpu(name: str, data: Data, radius: int, repeat: int) -> Outcome:
    return in_child(measure, name, data, radius, False, repeat)


def run_here(name: str, data: Data, radius: int, repeat: int) -> Outcome:
    return measure(name, data, radius, False, repeat)


def run_gpu(name: str, data: Data, radius: int, repeat: int) -> Outcome:
    import cupy

    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    out = measure(name, data, radius, True, repeat)
    out.peak_bytes = pool.total_bytes()
    pool.free_all_blocks()
    return out


def import_search(kind: str, n: int, q: int, radii: tuple[int, ...], repeat: int, variant: str) -> Outcome:
    """The engine's import search on 4 columns: a HashIndex of N photos (one compacted segment),
    the batch of Q added to it (as the engine does before searching), then query_pairs with
    ``radii``, backend auto; ``variant`` "sorted": backend mih through the old sorted join,
    "faiss": backend faiss. Pairs are planted in every searched column."""
    columns = [make_query_data(kind, n, q, max(r, 0), seed=k) for k, r in enumerate(radii)]
    codes = np.stack([c.x for c in columns], axis=1)
    ids = np.arange(n + q, dtype=np.int64) * 7 + 1
    backend = {"sorted": "mih", "faiss": "faiss"}.get(variant, "auto")
    if variant == "sorted":
        search.query_plan = lambda r, m, b: "sorted"  # (a child process of its own)
    with tempfile.TemporaryDirectory() as tmp, HashIndex.open(Path(tmp)) as index:
        index.add(ids[:n], codes[:n])
        index.compact()
        index.add(ids[n:], codes[n:])
        times = []
        for _ in range(1 + max(repeat, 1)):
            t0 = time.perf_counter()
            pairs = search.query_pairs(index.ids, index.codes, ids[n:], codes[n:], radii, backend=backend)
            times.append(time.perf_counter() - t0)
    keys = (pairs.a - 1) // 7 * (n + q) + (pairs.b - 1) // 7
    searched = [c for c, r in zip(columns, radii) if r >= 0]
    planted = np.unique(np.concatenate([c.planted for c in searched]))
    far = np.unique(np.concatenate([c.far for c in searched]))
    near = np.zeros(len(keys), bool)  # each pair within the radius of some searched column
    for k, r in enumerate(radii):
        near |= pairs.dist[:, k] <= r
    return Outcome(statistics.median(times[1:]), len(keys), int(keys.astype(np.uint64).sum()) % 2**64,
                   float(np.isin(planted, keys).mean()), int(np.isin(far, keys).sum()),
                   int((~near).sum()), -1, first=times[0])  # peak: n/a (building the index reuses the heap)


def _fmt_bytes(b: int) -> str:
    return "n/a" if b <= 0 else f"{b / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("pairs", "query"), default="pairs")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=1000, help="query mode: codes in the batch")
    ap.add_argument("--repeat", type=int, default=5, help="query mode: timed runs after the warm-up")
    ap.add_argument("--radius", type=int, default=6)
    ap.add_argument("--import-radii", default="", help="query mode: the 4 radii of the import-4col rows "
                    "(default: --radius on every column; the engine's default search is -1,10,10,-1)")
    ap.add_argument("--kinds", default="uniform,skewed")
    ap.add_argument("--only", default="", help="comma-separated contenders (default: all that fit)")
    ap.add_argument("--skip", default="", help="comma-separated NAME@N:KIND runs to leave out")
    ap.add_argument("--out", type=Path, help="append the markdown table here, row by row")
    args = ap.parse_args(argv)
    radius, query = args.radius, args.mode == "query"
    limits = LIMITS[f"query-{args.device}" if query else args.device]
    names = [c for c in (query_contenders(radius) if query else contenders(radius)) if c in limits]
    names += [c for c in limits if c.startswith("import-")]
    if args.only:
        names = [c for c in names if c in args.only.split(",")]
    if args.device == "gpu" and gpu_check.gpu_problem() is not None:
        raise SystemExit(f"GPU unusable: {gpu_check.gpu_problem()}")
    if "faiss-gpu-knn" in names and flat.gpu_flat_problem() is not None:
        print(f"faiss-gpu-knn left out: {flat.gpu_flat_problem()}", file=sys.stderr)
        names.remove("faiss-gpu-knn")
    timing = "| N | Q | codes | contender | query s | first run s | prepare s" if query else \
        "| N | codes | contender | seconds | pairs/s"
    columns = timing + " | pairs found | same as first | recall | r+1 found | peak memory |"
    header = [
        f"Machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores{_gpu_name(args.device)}), "
        f"Python {platform.python_version()}, NumPy {np.__version__}, FAISS {faiss.__version__}, "
        f"{datetime.date.today().isoformat()}, load {os.getloadavg()[0]:.1f}.",
        f"Command: python benchmarks/search.py {' '.join(argv if argv is not None else sys.argv[1:])}",
        "",
        columns,
        "|" + "|".join("---" if c.strip() in ("codes", "contender", "same as first") else "---:"
                       for c in columns.strip("|").split("|")) + "|",
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
                todo = [c for c in phase if n <= limits[c] and f"{c}@{n}:{kind}" not in skip]
                if not todo:
                    continue
                data = make_query_data(kind, n, args.queries, radius) if query else make_data(kind, n, radius)
                radii = tuple(int(r) for r in args.import_radii.split(",")) if args.import_radii else (radius,) * 4
                for name in todo:
                    _row(args.out, name, data, radius, references, args.repeat, radii)


def _row(out_path: Path | None, name: str, data: Data, radius: int, references: dict[tuple[int, str], tuple[int, int]],
         repeat: int, radii: tuple[int, ...] = ()) -> None:
    """Run one contender on one data set and print its row (the first run is the reference)."""
    n, kind, q = data.q0 or len(data.x), data.kind, len(data.x) - data.q0
    size = f"{n:,} | {q:,}" if data.q0 else f"{n:,}"
    runner = {"gpu": run_gpu, "here": run_here}.get(RUN_IN.get(name, ""), run_cpu)
    label = name
    try:
        if name.startswith("import-"):
            if name == "import-4col":
                label = f"{name} (auto: {search.pick_backend('auto', max(radii), n + q, q)})"
            if len(set(radii)) > 1:
                label += f", radii {','.join(map(str, radii))}"
            out = in_child(import_search, kind, n, q, radii, repeat, name.removeprefix("import-4col").strip("-"))
        else:
            out = runner(name, data, radius, repeat)
    except Exception as err:
        _emit(out_path, f"| {size} | {kind} | {label} | failed: {type(err).__name__}: {err} |")
        return
    # The 4-column import search has its own pairs: it is compared with the first import row.
    group = (n, kind + ("4col" if name.startswith("import-") else ""))
    reference = references.setdefault(group, (out.pairs, out.checksum))
    exact = "yes" if reference == (out.pairs, out.checksum) else "NO"
    if out.too_far:
        exact = f"NO ({out.too_far} too far)"
    if data.q0:
        prepare = f"{out.prepare:.3f}" if out.prepare >= 0.0005 else "-"
        timing = f"{out.seconds:.4f} | {out.first:.4f} | {prepare}"
    else:
        timing = f"{out.seconds:.3f} | {n * (n - 1) / 2 / out.seconds:.3g}"
    _emit(out_path, f"| {size} | {kind} | {label} | {timing} | {out.pairs:,} | {exact} | {out.recall:.3f} | "
                    f"{out.far_found} | {_fmt_bytes(out.peak_bytes)} |")


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
