"""Hashing fanned out over Celery workers (``lumina/fanout.py``), against the live Redis and
PostgreSQL with two real ``celery worker`` processes of our own app, each with its own data folder
(as two hosts would have): Find Duplicates cut into chunks groups as the in-process run does, a
worker SIGKILLed in the middle of a chunk gets that chunk redelivered to the other and every photo
is hashed and tagged once, and the job's row shows progress as chunks finish, then SUCCESS."""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_lumina_bridge import OURS, groups_in, wait_for
from test_lumina_support import (  # noqa: F401
    REDIS_URL,
    create_catalog,
    expected_groups_in_lumina,
    make_lumina,
    now,
    pg_database,
    query,
    require_bridge_services,
    sample_photos,
    scan_as_lumina,
)

ROOT = Path(__file__).resolve().parents[1]
#: Photos per chunk: the 38 sample photos Lumina keeps make 7 chunks.
CHUNK = 6
#: Files per stored batch inside a chunk: a chunk writes three batches, so a crash after the
#: first leaves it half stored.
BATCH = 2
#: Redis hands an unacknowledged chunk to another worker after this (test scale; the default is
#: half an hour), within the restore pass that follows (every 10 s).
VISIBILITY_S = 10


@pytest.fixture(scope="module", autouse=True)
def services() -> None:
    require_bridge_services()


def write_config(home: Path, url: str, queue: str, chunk: int) -> None:
    (home / "lumina-dedup").mkdir(parents=True, exist_ok=True)
    (home / "lumina-dedup" / "config.toml").write_text(
        f"batch_size = {BATCH}\n[hashing]\nworkers = 1\n"
        f"[lumina]\nurl = {json.dumps(url)}\nredis_url = {json.dumps(REDIS_URL)}\nqueue = {json.dumps(queue)}\n"
        f"fanout_chunk = {chunk}\nfanout_visibility_s = {VISIBILITY_S}\n")


class Workers:
    """Real ``celery worker`` processes of our app (``lumina_plugin.lumina.worker``) on one queue,
    each one slot (``--concurrency 1``) and its own data folder, sharing the config file."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.queue = f"lumina-dedup-fanout-{secrets.token_hex(3)}"
        self.config_home = root / "config"
        write_config(self.config_home, url, self.queue, CHUNK)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, **env: str) -> str:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        environ = {**os.environ, "XDG_CONFIG_HOME": str(self.config_home),
                   "XDG_DATA_HOME": str(self.root / f"data-{name}"), **env}
        with open(log, "w") as out:
            # Its own session: a worker is killed as a whole (process group), nothing else.
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "lumina_plugin.lumina.worker", "worker", "-n", f"{name}@%h",
                 "-Q", self.queue, "--pool", "threads", "--concurrency", "1", "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return name

    def wait_ready(self) -> None:
        for name, proc in self.procs.items():
            wait_for(lambda log=self.logs[name], p=proc: "ready" in log.read_text() or p.poll() is not None, 90)
            assert proc.poll() is None, self.logs[name].read_text()

    def hostname(self, name: str) -> str:
        """The worker's name as Celery gives it (``-n name@%h``)."""
        return f"{name}@{os.uname().nodename}"

    def tail(self) -> str:
        return "\n".join(f"--- {n}\n{log.read_text()[-3000:]}" for n, log in self.logs.items())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
def workers(pg_database: str, tmp_path: Path) -> Iterator[Workers]:  # noqa: F811
    url, drop = make_lumina(pg_database)
    crew = Workers(tmp_path, url)
    try:
        yield crew
    finally:
        crew.stop()
        drop()


def history_of_jobs(url: str) -> None:
    """Record every state a ``jobs`` row goes through (a trigger in this test's Lumina), so the
    test sees each progress write however fast the chunks finish."""
    import psycopg

    from lumina_plugin.catalog.postgres import split_url
    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        conn.execute("CREATE TABLE job_history (n SERIAL, id TEXT, status TEXT, result JSONB)")
        conn.execute("CREATE FUNCTION keep_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                     " INSERT INTO job_history (id, status, result) VALUES (NEW.id, NEW.status, NEW.result);"
                     " RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER keep_job AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION keep_job()")


def press_find_duplicates(url: str, cid: str, queue: str) -> str:
    """What the button does (``router.start_find_duplicates``): a PENDING job row, our task sent
    with the job id as its task id."""
    from celery import Celery
    job = str(uuid.uuid4())
    query(url, "INSERT INTO jobs (id, catalog_id, job_type, status, parameters, created_at, updated_at)"
               " VALUES (%s, %s, 'detect_duplicates', 'PENDING', '{\"engine\": \"lumina-dedup\"}', %s, %s) RETURNING 1",
          (job, cid, now(), now()))
    client = Celery("client", broker=REDIS_URL)
    client.send_task("lumina_dedup.find_duplicates", kwargs={"catalog_id": cid, "job_id": job}, task_id=job,
                     queue=queue)
    client.close()
    return job


def running_scan_job(url: str, cid: str) -> str:
    """A scan job of Lumina's, still running (PROGRESS), on catalog ``cid``: its id."""
    scan = str(uuid.uuid4())
    query(url, "INSERT INTO jobs (id, catalog_id, job_type, status, created_at, updated_at)"
               " VALUES (%s, %s, 'scan', 'PROGRESS', %s, %s) RETURNING 1", (scan, cid, now(), now()))
    return scan


def ended(url: str, job: str) -> Callable[[], bool]:
    return lambda: query(url, "SELECT status FROM jobs WHERE id = %s", (job,))[0][0] in ("SUCCESS", "FAILURE")


def in_process_groups(pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                      ) -> tuple[set[frozenset[str]], list[tuple[Any, ...]]]:
    """Find Duplicates in this process (fan-out off) on a Lumina of its own with the same photos:
    its groups and our tags, as paths."""
    from lumina_plugin.lumina import tasks
    url, drop = make_lumina(pg_database)
    try:
        cid = create_catalog(url)
        scan_as_lumina(url, cid, sample_photos())
        write_config(tmp_path / "alone", url, "unused", 0)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "alone"))
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "alone-data"))
        job = str(uuid.uuid4())
        query(url, "INSERT INTO jobs (id, catalog_id, job_type, status, created_at, updated_at)"
                   " VALUES (%s, %s, 'detect_duplicates', 'PENDING', %s, %s) RETURNING 1", (job, cid, now(), now()))
        assert "fanned_out" not in tasks.run_find_duplicates(cid, job)
        return groups_in(url), query(url, OURS)
    finally:
        drop()


def test_chunks_over_two_workers_group_as_in_process(workers: Workers, pg_database: str,  # noqa: F811
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alone_groups, alone_tags = in_process_groups(pg_database, tmp_path, monkeypatch)
    url = workers.url
    history_of_jobs(url)
    cid = create_catalog(url)
    kept = scan_as_lumina(url, cid, sample_photos())
    chunks = math.ceil(len(kept) / CHUNK)
    assert chunks >= 5
    workers.start("one")
    workers.start("two")
    workers.wait_ready()
    import redis
    pubsub = redis.Redis.from_url(REDIS_URL).pubsub()
    pubsub.psubscribe("job:*:progress")
    job = press_find_duplicates(url, cid, workers.queue)
    wait_for(ended(url, job), 180)
    status, result = query(url, "SELECT status, result FROM jobs WHERE id = %s", (job,))[0]
    assert status == "SUCCESS", workers.tail()
    messages: list[dict[str, Any]] = []  # the job's Redis progress channel, as Lumina's panel reads it
    deadline = time.monotonic() + 30  # all delivered already: ends at the SUCCESS message; catches its absence
    while not (messages and messages[-1]["status"] == "SUCCESS"):
        assert time.monotonic() < deadline, messages
        m = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if m is not None and m["channel"] == f"job:{job}:progress".encode():
            messages.append(json.loads(m["data"]))
    pubsub.close()
    hashing = [m["progress"]["current"] for m in messages if m["status"] == "PROGRESS"
               and m["progress"]["phase"] == "hashing"]
    # From 0 to every photo, never backwards (two workers finish chunks at once: a count that
    # arrives behind a larger one is not sent), at most one message per chunk.
    assert hashing[0] == 0 and hashing[-1] == len(kept), hashing
    assert all(a < b for a, b in zip(hashing, hashing[1:])) and len(hashing) <= chunks + 1, hashing
    assert messages[-1]["result"] == result
    # The same groups and tags as the in-process run, on the same photos.
    assert groups_in(url) == alone_groups == expected_groups_in_lumina(kept)
    assert query(url, OURS) == alone_tags
    assert result["status"] == "completed" and result["total_images"] == len(kept)
    fanout = result["fanout"]
    assert (fanout["chunks"], fanout["images"], fanout["hashed"]) == (chunks, len(kept), len(kept))
    assert fanout["workers"] == sorted([workers.hostname("one"), workers.hostname("two")]), workers.tail()
    # Each photo hashed once, by a chunk (the grouping step found nothing left to hash).
    assert query(url, "SELECT count(*), count(DISTINCT image_id) FROM lumina_dedup_images") == [(len(kept), len(kept))]
    assert result["summary"]["hashed"] == 0, result["summary"]
    # Progress in the job's row as the chunks finished: photos done, chunk by chunk, then SUCCESS.
    states = query(url, "SELECT status, result FROM job_history WHERE id = %s ORDER BY n", (job,))
    steps = [(r["progress"]["chunks_done"], r["progress"]["current"], r["progress"]["total"])
             for s, r in states if s == "PROGRESS" and r and "progress" in r]
    # Chunk by chunk and only forward (a late, smaller count never overwrites a larger one).
    assert steps[-1][0] == chunks and all(t == len(kept) for _, _, t in steps) and steps[-1][1] == len(kept)
    assert len(steps) >= 2 and all(0 < cb - ca and 0 < b - a <= CHUNK * (cb - ca)
                                   for (ca, a, _), (cb, b, _) in zip(steps, steps[1:])), steps
    assert states[-1][0] == "SUCCESS"


def test_a_worker_killed_mid_chunk_loses_nothing(workers: Workers) -> None:
    from lumina_plugin.config import Config
    from lumina_plugin.lumina import fanout
    url = workers.url
    cid = create_catalog(url)
    kept = scan_as_lumina(url, cid, sample_photos())
    # "doomed" SIGKILLs itself (its whole process: a threads pool) once the first batch of its
    # first chunk is stored, as a lost machine would: the chunk is half written, never acknowledged.
    workers.start("doomed", LUMINA_DEDUP_TEST_CRASH_AT="inside-chunk")
    workers.start("survivor")
    workers.wait_ready()
    job = press_find_duplicates(url, cid, workers.queue)
    doomed = workers.procs["doomed"]
    wait_for(lambda: doomed.poll() is not None, 120)
    assert doomed.returncode == -signal.SIGKILL, workers.tail()
    wait_for(ended(url, job), 240)
    status, result = query(url, "SELECT status, result FROM jobs WHERE id = %s", (job,))[0]
    assert status == "SUCCESS", workers.tail()
    config = Config.from_mapping({"lumina": {"redis_url": REDIS_URL}})
    run = result["fanout"]["run"]
    starts = fanout.attempts(config, run)
    killed = [a["chunk"] for a in starts if a["worker"] == workers.hostname("doomed")]
    assert len(killed) == 1, starts
    # The killed chunk went to the survivor, which stored what the first try had not.
    marks = fanout.marks(config, run)
    assert marks[killed[0]]["worker"] == workers.hostname("survivor")
    assert marks[killed[0]]["hashed"] == marks[killed[0]]["images"] - BATCH
    assert sorted(marks) == list(range(result["fanout"]["chunks"]))
    # Every photo hashed and stored once, grouped and tagged as without the crash.
    assert query(url, "SELECT count(*), count(DISTINCT image_id) FROM lumina_dedup_images") == [(len(kept), len(kept))]
    assert result["summary"]["hashed"] == 0
    assert groups_in(url) == expected_groups_in_lumina(kept)
    tags = query(url, OURS)
    assert len(tags) == len(set(tags)) and tags
    assert query(url, "SELECT count(*) FROM lumina_dedup_runs WHERE kind = 'find-duplicates' AND job_id = %s",
                 (job,)) == [(1,)]


def test_chunk_writes_take_no_lock_and_repeat_the_same_rows(workers: Workers) -> None:
    """Two chunks of overlapping photos store at once while another run holds the catalog's lock;
    run again, a chunk skips what is stored, and a repeated write keeps each photo's row and index id."""
    import threading

    from lumina_plugin.catalog.postgres import PostgresCatalog
    from lumina_plugin.config import Config
    from lumina_plugin.ingest.pipeline import hash_paths
    from lumina_plugin.lumina import fanout
    url = workers.url
    cid = create_catalog(url)
    kept = sorted(scan_as_lumina(url, cid, sample_photos()[:12]))
    config = Config.from_mapping({"lumina": {"url": url, "redis_url": REDIS_URL}, "hashing": {"workers": 1}})
    results: list[tuple[int, list[Any]]] = []
    with PostgresCatalog(f"{url}&catalog={cid}", lock_timeout=1) as holder:  # another run's lock, held throughout
        assert holder.catalog_id == cid
        chunks = [kept[:8], kept[4:]]
        threads = [threading.Thread(target=lambda c=c: results.append(fanout.hash_into_catalog(cid, c, config)))
                   for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(len(errors) for _, errors in results) == [0, 0]
        assert sum(n for n, _ in results) >= len(kept)  # the overlap may be hashed by both
        rows = query(url, "SELECT image_id, index_id FROM lumina_dedup_images ORDER BY 1")
        assert len(rows) == len(kept)
        assert fanout.hash_into_catalog(cid, kept, config) == (0, [])  # all stored: skipped
        records = [r for batch, _ in hash_paths(kept, config) for r in batch]
        with PostgresCatalog(f"{url}&catalog={cid}", settings=config.lumina, lock=False) as chunk:
            chunk.upsert_images(records)
            chunk.upsert_images(records)
        assert query(url, "SELECT image_id, index_id FROM lumina_dedup_images ORDER BY 1") == rows
    assert query(url, OURS) == []  # chunks tag nothing


def test_progress_only_moves_forward(workers: Workers) -> None:
    """Two workers finish chunks at once and report in either order, a redelivered chunk
    reports again: the job's row and its Redis channel only ever move forward (Lumina's bar
    never goes back), and the last chunk's count always arrives."""
    import redis

    from lumina_plugin.config import Config
    from lumina_plugin.lumina import fanout
    url = workers.url
    history_of_jobs(url)
    cid = create_catalog(url)
    job = str(uuid.uuid4())
    query(url, "INSERT INTO jobs (id, catalog_id, job_type, status, parameters, created_at, updated_at)"
               " VALUES (%s, %s, 'detect_duplicates', 'PROGRESS', '{}', %s, %s) RETURNING 1", (job, cid, now(), now()))
    config = Config.from_mapping({"lumina": {"url": url, "redis_url": REDIS_URL}})
    meta = {"run": secrets.token_hex(6), "images": 30, "chunks": 5, "job_id": job}
    pubsub = redis.Redis.from_url(REDIS_URL).pubsub()
    pubsub.subscribe(f"job:{job}:progress")
    pubsub.get_message(timeout=1.0)  # the subscription's confirmation
    for chunks_done, images_done in ((1, 6), (3, 18), (2, 12), (3, 18), (5, 30)):
        fanout.report_progress(config, meta, chunks_done, images_done)
    sent = []
    while (m := pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)) is not None:
        sent.append(json.loads(m["data"])["progress"]["current"])
    pubsub.close()
    assert sent == [6, 18, 30]
    rows = query(url, "SELECT result FROM job_history WHERE id = %s AND status = 'PROGRESS' ORDER BY n", (job,))
    assert [r["progress"]["chunks_done"] for (r,) in rows if r] == [1, 3, 5]


def test_a_large_scan_batch_is_fanned_out_and_regrouped_once(workers: Workers) -> None:
    """A scan's catch-up of more than a chunk goes to the workers; the grouping step regroups once
    and records Lumina's scan job, whose row it leaves alone."""
    from celery import Celery

    from lumina_plugin.config import Config
    from lumina_plugin.lumina import fanout
    url = workers.url
    cid = create_catalog(url)
    kept = scan_as_lumina(url, cid, sample_photos())
    scan = running_scan_job(url, cid)
    workers.start("one")
    workers.start("two")
    workers.wait_ready()
    client = Celery("client", broker=REDIS_URL)
    client.send_task("lumina_dedup.batch_imported", kwargs={"catalog_id": cid, "batch_id": None, "job_id": scan},
                     queue=workers.queue)
    client.close()
    runs = "SELECT kind FROM lumina_dedup_runs WHERE job_id = %s"
    wait_for(lambda: query(url, "SELECT to_regclass('lumina_dedup_runs')")[0][0] is not None
             and query(url, runs, (scan,)) != [], 180)
    assert query(url, runs, (scan,)) == [("find-duplicates",)], workers.tail()
    assert groups_in(url) == expected_groups_in_lumina(kept)
    assert query(url, "SELECT count(*) FROM lumina_dedup_images") == [(len(kept),)]
    assert query(url, "SELECT status, result FROM jobs WHERE id = %s", (scan,)) == [("PROGRESS", None)]
    config = Config.from_mapping({"lumina": {"redis_url": REDIS_URL}})
    wait_for(lambda: fanout.active_run(config, cid) is None, 30)  # the catalog is free for the next run


def test_the_listeners_catch_up_goes_to_the_workers(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    """The standalone listener, with workers on our queue, sends a large catch-up as chunks rather
    than hashing it itself; the grouping step regroups."""
    from lumina_plugin.config import Config
    from lumina_plugin.lumina.listener import Listener
    url = workers.url
    cid = create_catalog(url)
    kept = scan_as_lumina(url, cid, sample_photos())
    workers.start("one")
    workers.wait_ready()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workers.config_home))
    report = Listener(Config.load()).tick(first=True)
    assert report == {"imported": {cid: len(kept)}, "scans": []}  # sent, not hashed here: no regroup here
    wait_for(lambda: groups_in(url) == expected_groups_in_lumina(kept), 180)
    assert query(url, "SELECT kind, job_id FROM lumina_dedup_runs") == [("find-duplicates", None)]


def test_the_scan_follower_sends_a_burst_to_the_workers(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    """A follow pass that finds more than a chunk of a running scan's rows sends them to the workers
    and leaves the catalog to that run while it lasts."""
    from lumina_plugin.config import Config
    from lumina_plugin.lumina import fanout, follow
    url = workers.url
    cid = create_catalog(url)
    kept = scan_as_lumina(url, cid, sample_photos())
    scan = running_scan_job(url, cid)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workers.config_home))
    first = follow.follow_pass(cid, scan)  # no worker yet: the chunks wait on the queue
    assert first["images"] == len(kept) and first["again"] is not None
    run = fanout.active_run(Config.load(), cid)
    assert run is not None
    second = follow.follow_pass(cid, scan, first["token"], first["started"])
    assert second["images"] == 0 and second["again"] is not None  # left to the run
    workers.start("one")
    workers.wait_ready()
    wait_for(lambda: fanout.active_run(Config.load(), cid) is None, 180)
    assert groups_in(url) == expected_groups_in_lumina(kept)
    assert query(url, "SELECT kind, job_id FROM lumina_dedup_runs") == [("find-duplicates", scan)]
