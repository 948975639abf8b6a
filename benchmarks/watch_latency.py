"""Watch latency: from a photo's last byte written to its tags committed, and exactly once.

Makes distinct 2 MP JPEGs (1920x1080 q92, about 0.7 MB: collages of crops of the sample
catalog's real photos, with grain, so none is a copy of another), starts the real
``lumina-dedup watch --json`` on an empty folder with a fresh catalog, then copies 100
and then 1,000 photos into it. Each photo is written in chunks at a steady rate, as a
slow copy does (a card reader, a phone sync, a network share), and closed.

For every photo: the time from its close to the commit of the batch that tagged it
(the watcher prints one NDJSON line per batch after the host's images-imported event
returned, that is after the hashes and tags were committed). Reported per round:
p50, p95 and max over the photos, and the time from the last photo closed to its tags
committed. Exactly once: hashed once in all (the batches' ``hashed`` sum), one
catalog row each, with the SHA-256 of the whole file.

Usage: python benchmarks/watch_latency.py [--rounds 100,1000] [--mbps 10] [--chunk-kib 256]
                                          [--warmup N] [--config FILE] [--workdir DIR] [-v]
``--mbps 0`` writes as fast as the disk takes it (a burst).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_catalog"


def make_photos(out: Path, count: int) -> list[Path]:
    from lumina_plugin.watch.testing import distinct_photos, photo_sources

    have = sorted(out.glob("IMG_*.jpg"))
    if len(have) >= count:
        return have[:count]
    sources = [p for p in photo_sources(SAMPLE) if "exports" not in p.parts]
    return distinct_photos(out, count, sources, size=(1920, 1080), tiles=8, quality=92, noise=4.0, seed=2024)


class Watcher:
    """The real ``lumina-dedup watch`` in a subprocess; its NDJSON batches as they come."""

    def __init__(self, folder: Path, catalog: Path, env: dict[str, str], extra: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lumina_plugin.cli", "watch", str(folder), "--catalog", str(catalog), "--json",
             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.committed: dict[str, float] = {}
        self.seen: dict[str, int] = {}
        self.batches: list[dict] = []
        self.err: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._out, daemon=True).start()
        threading.Thread(target=self._errs, daemon=True).start()

    def _out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            batch = json.loads(line)
            self.batches.append(batch)
            for path in batch["paths"]:
                self.committed.setdefault(path, batch["committed_at"])
                self.seen[path] = self.seen.get(path, 0) + 1

    def _errs(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            if "start-up scan" in line:
                self.started.set()

    def wait(self, paths: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(p in self.committed for p in paths):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("watcher did not commit every photo:\n" + "".join(self.err[-20:]))
            time.sleep(0.01)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def copy_slowly(src: Path, dest: Path, rate: float, chunk: int, clock_start: float, sent: list[int]) -> float:
    """Write ``src`` to ``dest`` in chunks, holding the whole copy to ``rate`` bytes/s."""
    data = src.read_bytes()
    with open(dest, "wb") as fh:
        for start in range(0, len(data), chunk):
            fh.write(data[start:start + chunk])
            fh.flush()
            sent[0] += len(data[start:start + chunk])
            if rate > 0:
                ahead = clock_start + sent[0] / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    return time.time()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_round(n: int, photos: list[Path], folder: Path, watcher: Watcher, catalog: Path, rate: float,
              chunk: int) -> dict:
    folder.mkdir(parents=True)
    closed: dict[str, float] = {}
    first_batch = len(watcher.batches)
    sent, t0 = [0], time.monotonic()
    for photo in photos:
        dest = folder / photo.name
        closed[str(dest)] = copy_slowly(photo, dest, rate, chunk, t0, sent)
    copy_seconds = time.monotonic() - t0
    watcher.wait(list(closed), timeout=900)
    batches = watcher.batches[first_batch:]
    latency = [watcher.committed[p] - t for p, t in closed.items()]
    last = max(closed, key=closed.__getitem__)
    with sqlite3.connect(catalog) as conn:
        rows = conn.execute("SELECT source_path, checksum FROM images WHERE source_path LIKE ?",
                            (str(folder) + os.sep + "%",)).fetchall()
    whole = sum(1 for p, c in rows if c == hashlib.sha256(Path(p).read_bytes()).hexdigest())
    return {
        "photos": n, "mb": sent[0] / 1e6, "copy_s": copy_seconds,
        "p50": percentile(latency, 0.50), "p95": percentile(latency, 0.95), "max": max(latency),
        "last": watcher.committed[last] - closed[last],
        "batches": len([b for b in batches if b["paths"]]),
        "hashed": sum(b["hashed"] for b in batches), "rows": len(rows), "distinct_rows": len({p for p, _ in rows}),
        "whole": whole, "max_seen": max(watcher.seen[p] for p in closed), "errors": sum(len(b["errors"]) for b in batches),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", default="100,1000", help="photos per round, comma-separated")
    ap.add_argument("--mbps", type=float, default=10.0, help="copy rate in MB/s (0: as fast as possible)")
    ap.add_argument("--chunk-kib", type=int, default=256, help="bytes per write, KiB")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the photos here for the next run")
    ap.add_argument("--warmup", type=int, default=0,
                    help="photos copied first and not measured (the hashing workers start on first use)")
    ap.add_argument("--config", type=Path, default=None, help="a lumina-dedup TOML file for the watcher")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each batch: photos, seconds, backlog")
    args = ap.parse_args()
    rounds = [int(r) for r in args.rounds.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="watch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    photos = make_photos(work / "photos", sum(rounds) + args.warmup)
    print(f"# {len(photos)} photos of 1920x1080, {sum(p.stat().st_size for p in photos) / len(photos) / 1e6:.2f} MB "
          f"each on average (made in {time.perf_counter() - t:.0f} s)", flush=True)
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    (run / "in").mkdir(parents=True)
    env = {**os.environ, "XDG_CONFIG_HOME": str(run / "xdg")}
    load_before = os.getloadavg()
    watcher = Watcher(run / "in", run / "catalog.db", env,
                      ["--config", str(args.config.resolve())] if args.config else [])
    if not watcher.started.wait(120):
        raise SystemExit("watcher did not start:\n" + "".join(watcher.err))
    results, used = [], 0
    if args.warmup:
        run_round(args.warmup, photos[:args.warmup], run / "in" / "warmup", watcher, run / "catalog.db", 0, 1 << 20)
        used = args.warmup
    for k, n in enumerate(rounds, 1):
        res = run_round(n, photos[used:used + n], run / "in" / f"round-{k}", watcher, run / "catalog.db",
                        args.mbps * 1e6, args.chunk_kib * 1024)
        used += n
        results.append(res)
    code = watcher.stop()
    load_after = os.getloadavg()
    if args.verbose:
        for b in watcher.batches:
            print(f"# batch {b['batch']}: {b['imported']} photos, {b['hashed']} hashed, {b['seconds']:.2f} s, "
                  f"{b['backlog']} waiting")
    rate = f"{args.mbps:g} MB/s" if args.mbps > 0 else "unthrottled"
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; copy {rate} in "
          f"{args.chunk_kib} KiB chunks; {args.warmup} warm-up photos; config {args.config or 'defaults'}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
          f"watcher exit {code}")
    print("| photos | copy rate | copy s | batches | p50 s | p95 s | max s | last photo s | hashed | rows | whole | "
          "imported twice | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        twice = "none" if r["max_seen"] == 1 and r["hashed"] == r["photos"] else f"max {r['max_seen']}x"
        print(f"| {r['photos']} | {rate} | {r['copy_s']:.1f} | {r['batches']} | {r['p50']:.2f} | {r['p95']:.2f} | "
              f"{r['max']:.2f} | {r['last']:.2f} | {r['hashed']} | {r['distinct_rows']} | {r['whole']} | {twice} | "
              f"{r['errors']} |")
    ok = all(r["hashed"] == r["rows"] == r["distinct_rows"] == r["whole"] == r["photos"] and r["max_seen"] == 1
             and not r["errors"] for r in results)
    print("# exactly once:", "yes" if ok else "NO")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
