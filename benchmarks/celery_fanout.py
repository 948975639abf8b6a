"""One Celery worker against two, hashing the same photos through the fan-out (issue 21, item 1).

Makes ``--photos`` camera-sized JPEGs (default 12 MP, 4000x3000, quality 92, about 3.5 MB, from the
sample catalog's originals as benchmarks/hash_throughput.py makes them): ``--distinct`` different
pictures, each file given its own JPEG comment so that every file has its own SHA-256 (Lumina keeps
one row per content) while decoding costs what any photo costs; all are read once first, so every
trial reads them from memory. Then, per trial, a fresh Lumina (``tests/lumina_schema.sql`` in a
schema of its own, in a database made for the run on ``--url``) with one catalog and an ``images``
row per file as Lumina's scan writes it, and 1 or 2 real ``celery worker`` processes of our app
(``-A lumina_plugin.lumina.worker``, prefork, ``--concurrency 1``), worker i pinned to core i with
``taskset`` (on a 2-core machine each worker gets one core), each with its own data folder. Timed:
from sending Find Duplicates (the button's task, the job id as its task id) to the job's SUCCESS:
the photos cut into chunks of ``--chunk``, hashed by the workers, the grouping step (the time at
which the job's row first shows every chunk done is printed too). Checked: every
photo stored once, hashed by a chunk, each worker took part. The trials alternate (1, 2, 1, 2, ...
for ``--rounds``); the table gives each and the best of each count, and the speed-up of the bests.
Beside it, the CPU time the workers' processes used (from /proc): the share of their cores they got
(on a machine that other work shares, what limits two workers), and photos per CPU-second (what
the fan-out costs in work, apart from that share).

Usage: python benchmarks/celery_fanout.py [--photos 300] [--distinct 24] [--size 4000x3000]
           [--chunk 25] [--rounds 2] [--url postgresql://postgres@127.0.0.1:5432/postgres]
           [--redis redis://127.0.0.1:6379/0] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "lumina_schema.sql"
SOURCES = sorted(p for p in (ROOT / "sample_catalog").rglob("*.jpg") if "exports" not in p.parts)


def _make(job: tuple[str, str, tuple[int, int], int]) -> None:
    """One camera-like JPEG: the source cropped to the aspect, resized, noise where upscaled."""
    source, dest, size, seed = job
    with Image.open(source) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    w, h = rgb.size
    aspect = size[0] / size[1]
    cw, ch = (w, int(w / aspect)) if w / h < aspect else (int(h * aspect), h)
    rgb = rgb.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    arr = np.asarray(rgb, dtype=np.int16) + np.random.default_rng(seed).integers(-10, 11, (size[1], size[0], 3),
                                                                                  dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92)
    Path(dest).write_bytes(buf.getvalue())


def make_photos(out: Path, photos: int, distinct: int, size: tuple[int, int]) -> list[tuple[str, str, int]]:
    """(path, SHA-256, bytes) of each photo: ``distinct`` pictures, a JPEG comment per file."""
    out.mkdir(parents=True, exist_ok=True)
    bases = [str(out / f"base_{n:03d}.bin") for n in range(distinct)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_make, [(str(SOURCES[n % len(SOURCES)]), bases[n], size, n) for n in range(distinct)]))
    made = []
    for n in range(photos):
        data = Path(bases[n % distinct]).read_bytes()
        text = f"lumina-dedup fan-out benchmark photo {n}".encode()
        comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text  # a COM segment after SOI
        body = data[:2] + comment + data[2:]
        path = out / f"IMG_{n:05d}.jpg"
        path.write_bytes(body)
        made.append((str(path), hashlib.sha256(body).hexdigest(), len(body)))
    for base in bases:
        os.unlink(base)
    for path, _, _ in made:  # into the page cache
        Path(path).read_bytes()
    return made


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def fresh_lumina(db_url: str, photos: list[tuple[str, str, int]]) -> tuple[str, str]:
    """A Lumina in a schema of its own with one catalog and the photos' image rows: (URL, catalog id)."""
    schema = f"t_{secrets.token_hex(6)}"
    cid = str(uuid.uuid4())
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(SCHEMA.read_text())
        conn.execute("INSERT INTO catalogs (id, name, schema_name, source_directories, created_at, updated_at)"
                     " VALUES (%s, 'Bench', %s, %s, %s, %s)", (cid, f"catalog_{cid[:8]}", [], now(), now()))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO images (id, catalog_id, source_path, file_type, checksum, size_bytes, dates, metadata,"
                " status_id, processing_flags, created_at, updated_at)"
                " VALUES (%s, %s, %s, 'image', %s, %s, '{}', '{}', 'active', '{}', %s, %s)",
                [(sha, cid, path, sha, size, now(), now()) for path, sha, size in photos])
    return f"{db_url}?options=-csearch_path%3D{schema}", cid


def start_workers(count: int, home: Path, url: str, redis_url: str, chunk: int,
                  pool: str = "prefork") -> tuple[str, list[Any]]:
    """``count`` workers of our app on a queue of their own, worker i on core i: (queue, processes)."""
    queue = f"lumina-dedup-bench-{secrets.token_hex(3)}"
    (home / "config" / "lumina-dedup").mkdir(parents=True, exist_ok=True)
    (home / "config" / "lumina-dedup" / "config.toml").write_text(
        f"[lumina]\nurl = {json.dumps(url)}\nredis_url = {json.dumps(redis_url)}\nqueue = {json.dumps(queue)}\n"
        f"fanout_chunk = {chunk}\n")
    cores = sorted(os.sched_getaffinity(0))
    procs = []
    for i in range(count):
        log = home / f"worker{i}.log"
        env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / f"data{i}"),
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        with open(log, "w") as out:
            proc = subprocess.Popen(
                ["taskset", "-c", str(cores[i % len(cores)]), sys.executable, "-m", "celery", "-A",
                 "lumina_plugin.lumina.worker", "worker", "-n", f"bench{i}@%h", "-Q", queue, "--pool", pool,
                 "--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        procs.append((proc, log))
    deadline = time.monotonic() + 120
    for proc, log in procs:
        while "ready" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
    return queue, procs


def stop_workers(procs: list[Any]) -> None:
    for proc, _ in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc, _ in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cpu_seconds(procs: list[Any]) -> float:
    """CPU time (user + system) used so far by the workers' processes (each worker's session: its
    main process and its pool child), from /proc: how much of its core each worker really got on a
    machine that other work shares."""
    sessions = {proc.pid for proc, _ in procs}
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) in sessions:  # field 6 of stat: the session id
            total += (int(fields[11]) + int(fields[12])) / ticks  # fields 14, 15: utime, stime
    return total


def trial(count: int, db_url: str, redis_url: str, photos: list[tuple[str, str, int]], chunk: int,
          work: Path, pool: str = "prefork") -> dict[str, Any]:
    """One timed Find Duplicates over ``count`` workers on a fresh Lumina."""
    from celery import Celery
    url, cid = fresh_lumina(db_url, photos)
    home = work / f"home-{secrets.token_hex(3)}"
    queue, procs = start_workers(count, home, url, redis_url, chunk, pool)
    try:
        job = str(uuid.uuid4())
        with psycopg.connect(db_url, autocommit=True, options=f"-csearch_path={url.rsplit('%3D', 1)[1]}") as conn:
            conn.execute("INSERT INTO jobs (id, catalog_id, job_type, status, parameters, created_at, updated_at)"
                         " VALUES (%s, %s, 'detect_duplicates', 'PENDING', '{}', %s, %s)", (job, cid, now(), now()))
            client = Celery("bench", broker=redis_url)
            cpu_before = cpu_seconds(procs)
            start = time.perf_counter()
            client.send_task("lumina_dedup.find_duplicates", kwargs={"catalog_id": cid, "job_id": job}, task_id=job,
                             queue=queue)
            hashed_at = None  # when the job's row first showed every chunk done
            while True:
                status, result = conn.execute("SELECT status, result FROM jobs WHERE id = %s", (job,)).fetchone()
                if status in ("SUCCESS", "FAILURE"):
                    break
                step = (result or {}).get("progress") or {}
                if hashed_at is None and step.get("chunks") and step.get("chunks_done") == step["chunks"]:
                    hashed_at = time.perf_counter() - start
                time.sleep(0.2)  # a query 5 times a second: the watcher must not take the workers' cores
            seconds = time.perf_counter() - start
            cpu = cpu_seconds(procs) - cpu_before
            client.close()
            stored = conn.execute("SELECT count(*), count(DISTINCT image_id) FROM lumina_dedup_images").fetchone()
        if status != "SUCCESS":
            raise SystemExit(f"the job failed: {result}")
        fan = result["fanout"]
        checks = {"stored once": stored == (len(photos), len(photos)), "hashed by chunks": fan["hashed"] == len(photos),
                  "every worker took part": len(fan["workers"]) == count}
        if not all(checks.values()):
            raise SystemExit(f"checks failed: {checks} {result}")
        return {"workers": count, "seconds": seconds, "photos_s": len(photos) / seconds, "chunks": fan["chunks"],
                "hashing_s": hashed_at if hashed_at is not None else float("nan"),
                "cpu_s": cpu, "core_share": cpu / (seconds * count)}
    finally:
        stop_workers(procs)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--distinct", type=int, default=24)
    ap.add_argument("--size", default="4000x3000")
    ap.add_argument("--chunk", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pool", default="prefork", choices=("prefork", "solo", "threads"),
                    help="the workers' Celery pool (--concurrency 1 either way)")
    ap.add_argument("--url", default=os.environ.get("LUMINA_DEDUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--redis", default=os.environ.get("LUMINA_DEDUP_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--keep", action="store_true", help="keep the database and the photos")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="celery_fanout_"))
    name = f"lumina_fanout_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(args.url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    db_url = args.url.rsplit("/", 1)[0] + "/" + name
    try:
        t0 = time.perf_counter()
        photos = make_photos(work / "photos", args.photos, args.distinct, (size[0], size[1]))
        mb = sum(s for _, _, s in photos) / len(photos) / 1e6
        print(f"{len(photos)} photos of {size[0]}x{size[1]} ({mb:.1f} MB each) made in {time.perf_counter() - t0:.0f} s")
        print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()};"
              f" load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        rows = []
        for r in range(args.rounds):
            for count in (1, 2):
                row = trial(count, db_url, args.redis, photos, args.chunk, work, args.pool)
                rows.append(row)
                print(f"  round {r + 1}: {count} worker(s): {row['seconds']:.2f} s, {row['photos_s']:.1f} photos/s"
                      f" ({row['chunks']} chunks of {args.chunk}; every chunk done at {row['hashing_s']:.2f} s,"
                      f" the rest dispatch and the grouping step); the workers used {row['cpu_s']:.1f} CPU-s,"
                      f" {row['core_share']:.0%} of their cores", flush=True)
        best = {c: min(r["seconds"] for r in rows if r["workers"] == c) for c in (1, 2)}
        print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        # Photos per CPU-second of the workers: the speed-up the work itself allows, apart from how
        # much of each core the machine's other load left to the workers.
        per_cpu = {c: max(len(photos) / r["cpu_s"] for r in rows if r["workers"] == c) for c in (1, 2)}
        share = {c: max(r["core_share"] for r in rows if r["workers"] == c) for c in (1, 2)}
        print("\n| workers (each --concurrency 1, own core) | seconds (each round) | best | photos/s (best)"
              " | speed-up | share of their cores (best) | photos per worker CPU-s (best) |")
        print("|---|---|---|---|---|---|---|")
        for c in (1, 2):
            each = ", ".join(f"{r['seconds']:.2f}" for r in rows if r["workers"] == c)
            print(f"| {c} | {each} | {best[c]:.2f} | {len(photos) / best[c]:.1f} | {best[1] / best[c]:.2f}x"
                  f" | {share[c]:.0%} | {per_cpu[c]:.2f} |")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)') if not args.keep else None
        admin.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
