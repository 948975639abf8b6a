"""The bridge against real servers: a real Celery worker (Redis broker) running a Lumina-shaped
``scan_worker`` with our module included, the HTTP action through FastAPI's test client,
and the standalone listener. PostgreSQL and Redis are the machine's own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_lumina_support import (  # noqa: F401
    REDIS_URL,
    create_catalog,
    expected_groups_in_lumina,
    lumina,
    lumina_db,
    lumina_stand_in,
    make_lumina,
    now,
    pg_database,
    query,
    require_bridge_services,
    sample_photos,
    scan_as_lumina,
    unavailable,
    write_config,
)

TESTS = Path(__file__).resolve().parent
OURS = "SELECT i.source_path, t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id" \
       " JOIN images i ON i.id = it.image_id WHERE t.name LIKE 'lumina-dedup:%%' ORDER BY 1, 2"


@pytest.fixture(scope="module", autouse=True)
def services() -> None:
    require_bridge_services()


def groups_in(url: str) -> set[frozenset[str]]:
    if query(url, "SELECT to_regclass('lumina_dedup_groups')")[0][0] is None:
        return set()
    rows = query(url, "SELECT k.source_path, i.source_path FROM lumina_dedup_groups g JOIN images k"
                      " ON k.id = g.keeper_id JOIN lumina_dedup_members m ON m.group_id = g.id"
                      " JOIN images i ON i.id = m.image_id")
    groups: dict[str, set[str]] = {}
    for keeper, member in rows:
        groups.setdefault(keeper, {keeper}).add(member)
    return {frozenset(g) for g in groups.values()}


def wait_for(check: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture(scope="module")
def worker_env(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real Celery worker of the Lumina-shaped app, our module included, consuming Lumina's
    queue and ours. Yields its settings (database, broker, queues, config home)."""
    url, drop = make_lumina(pg_database, job_batches=True)  # Lumina's scan_worker needs it
    home = tmp_path_factory.mktemp("worker")
    token = secrets.token_hex(3)
    env = {**os.environ, "LUMINA_TEST_DB": url, "LUMINA_TEST_BROKER": REDIS_URL,
           "LUMINA_TEST_QUEUE": f"lumina-{token}", "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_DATA_HOME": str(home / "data"), "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    queue = f"lumina-dedup-{token}"
    write_config(Path(env["XDG_CONFIG_HOME"]), url=url, redis_url=REDIS_URL, queue=queue)
    log = open(home / "worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "test_lumina_celery_app", "worker", "--include",
         "lumina_plugin.lumina.celery", "-Q", f"{env['LUMINA_TEST_QUEUE']},{queue}", "--pool", "threads",
         "--concurrency", "2", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=TESTS, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "ready" in (home / "worker.log").read_text() or proc.poll() is not None, 60)
        assert proc.poll() is None, (home / "worker.log").read_text()
        yield {**env, "queue": queue, "log": str(home / "worker.log")}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        drop()


#: Catches a hang, not a slow machine (issue 16): latency is the benchmarks' business
#: (benchmarks/watch_latency.py for the import path, benchmarks/lumina_find_duplicates.py on a
#: Lumina catalog); the test prints the scan-to-tag latency it saw (about 3 s on 2 cores).
HANG_S = 30


@pytest.mark.slow
def test_celery_scan_worker_tags_duplicates_without_hanging(worker_env: dict[str, str]) -> None:
    """Lumina's scan_worker batches, in a real worker with our module included, get their
    duplicates tagged; the scan_finalizer's regroup changes nothing; every run names its scan."""
    from celery import Celery
    url = worker_env["LUMINA_TEST_DB"]
    cid = create_catalog(url)
    job = str(uuid.uuid4())
    query(url, "INSERT INTO jobs (id, catalog_id, job_type, status, created_at, updated_at)"
               " VALUES (%s, %s, 'scan', 'PROGRESS', %s, %s) RETURNING 1", (job, cid, now(), now()))
    photos = [str(p) for p in sample_photos()]
    batches = [photos[:20], photos[20:]]
    client = Celery("client", broker=REDIS_URL)
    results = []
    for n, items in enumerate(batches):
        bid = str(uuid.uuid4())
        query(url, "INSERT INTO job_batches (id, parent_job_id, catalog_id, batch_number, total_batches, job_type,"
                   " work_items, items_count) VALUES (%s, %s, %s, %s, 2, 'scan', %s::jsonb, %s) RETURNING 1",
              (bid, job, cid, n, json.dumps(items), len(items)))
        client.send_task("scan_worker", kwargs={"catalog_id": cid, "batch_id": bid, "parent_job_id": job},
                         queue=worker_env["LUMINA_TEST_QUEUE"])
        results.append({"processed_count": len(items)})
    wait_for(lambda: len(query(url, "SELECT 1 FROM images WHERE catalog_id = %s", (cid,))) == 38, 30)
    kept = [r[0] for r in query(url, "SELECT source_path FROM images WHERE catalog_id = %s", (cid,))]
    expected = expected_groups_in_lumina(kept)
    latency = wait_for(lambda: groups_in(url) == expected, HANG_S)
    client.send_task("scan_finalizer", args=[results], kwargs={"catalog_id": cid, "parent_job_id": job},
                     queue=worker_env["LUMINA_TEST_QUEUE"])
    wait_for(lambda: query(url, "SELECT status FROM jobs WHERE id = %s", (job,))[0][0] == "SUCCESS", 30)
    tags = query(url, OURS)
    time.sleep(2)  # the scan-finished regroup has run or is running: it must change nothing
    wait_for(lambda: "lumina_dedup.scan_finished" in Path(worker_env["log"]).read_text()
             and query(url, "SELECT count(*) FROM lumina_dedup_runs WHERE kind = 'find-duplicates'")[0][0] >= 1, 30)
    assert query(url, OURS) == tags and groups_in(url) == expected
    # Every run of ours says which Lumina scan it came from: the imports (the scan's follower and
    # the batch tasks share the photos between them) and the regroup.
    kinds = [k for (k,) in query(url, "SELECT kind FROM lumina_dedup_runs WHERE job_id = %s", (job,))]
    assert kinds.count("import") >= 1 and "find-duplicates" in kinds, kinds
    assert query(url, "SELECT count(*) FROM lumina_dedup_runs WHERE job_id IS DISTINCT FROM %s", (job,)) == [(0,)]
    print(f"scan-to-tag latency: every group tagged {latency:.2f} s after the last scan_worker's rows")
    client.close()


def test_http_action_runs_as_a_lumina_job(lumina: tuple[str, str], worker_env: dict[str, str],  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import redis
    from fastapi.testclient import TestClient

    from lumina_plugin.lumina.router import InFront, standalone
    url, cid = lumina
    kept = scan_as_lumina(url, cid, sample_photos())
    # The worker reads the same config file: point it at this test's Lumina.
    write_config(Path(worker_env["XDG_CONFIG_HOME"]), url=url, redis_url=REDIS_URL, queue=worker_env["queue"])
    monkeypatch.setenv("XDG_CONFIG_HOME", worker_env["XDG_CONFIG_HOME"])
    pubsub = redis.Redis.from_url(REDIS_URL).pubsub()
    pubsub.psubscribe("job:*:progress")

    with TestClient(InFront(lumina_stand_in(), standalone())) as http:
        assert http.get(f"/api/catalogs/{cid}/duplicates").text == "lumina"  # not ours: passed through
        assert http.post(f"/api/catalogs/{uuid.uuid4()}/detect-duplicates").status_code == 404
        answer = http.post(f"/api/catalogs/{cid}/detect-duplicates?similarity_threshold=5").json()
    job = answer["job_id"]
    assert answer["status"] == "pending" and answer["task_id"] == job
    row = query(url, "SELECT catalog_id::text, job_type, parameters FROM jobs WHERE id = %s", (job,))[0]
    assert row[:2] == (cid, "detect_duplicates") and row[2]["engine"] == "lumina-dedup"
    wait_for(lambda: query(url, "SELECT status FROM jobs WHERE id = %s", (job,))[0][0] in ("SUCCESS", "FAILURE"), 45)
    status, result, error = query(url, "SELECT status, result, error FROM jobs WHERE id = %s", (job,))[0]
    assert (status, error) == ("SUCCESS", None), Path(worker_env["log"]).read_text()[-3000:]
    assert result["status"] == "completed" and result["duplicate_groups"] == 8 and result["total_images"] == 38
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + HANG_S  # ends as soon as the SUCCESS message is read
    while time.monotonic() < deadline and not (messages and messages[-1]["status"] == "SUCCESS"):
        m = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if m is not None and m["channel"] == f"job:{job}:progress".encode():
            messages.append(json.loads(m["data"]))
    pubsub.close()
    assert messages[0]["status"] == "PROGRESS" and messages[-1] == {**messages[-1], "status": "SUCCESS", "result": result}
    assert all({"job_id", "status", "timestamp"} <= set(m) for m in messages)
    assert all({"current", "total", "percent", "message", "phase"} <= set(m["progress"])
               for m in messages if m["status"] == "PROGRESS")
    last = redis.Redis.from_url(REDIS_URL).get(f"job:{job}:last_progress")
    assert isinstance(last, bytes) and json.loads(last)["status"] == "SUCCESS"
    assert groups_in(url) == expected_groups_in_lumina(kept)
    assert query(url, OURS)
    # Our run record points at the Lumina job the button press created.
    assert query(url, "SELECT kind FROM lumina_dedup_runs WHERE job_id = %s", (job,)) == [("find-duplicates",)]


def test_listener_catches_up_then_follows_scans(lumina: tuple[str, str], tmp_path: Path,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from lumina_plugin.config import Config
    from lumina_plugin.lumina.listener import Listener
    url, cid = lumina
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    # A poll far beyond HANG_S: finishing within HANG_S proves the message woke the listener.
    write_config(tmp_path / "config", url=url, redis_url=REDIS_URL, poll_seconds=600.0)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    photos = sample_photos()
    first = scan_as_lumina(url, cid, photos[: len(photos) // 2])  # scanned while the listener was down
    listener = Listener(Config.load())
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: groups_in(url) == expected_groups_in_lumina(first), HANG_S)
        rest = scan_as_lumina(url, cid, photos[len(photos) // 2:])
        job = str(uuid.uuid4())
        query(url, "INSERT INTO jobs (id, catalog_id, job_type, status, result, created_at, updated_at)"
                   " VALUES (%s, %s, 'scan', 'SUCCESS', '{\"status\": \"completed\"}', %s, %s) RETURNING 1",
              (job, cid, now(), now()))
        client = redis.Redis.from_url(REDIS_URL)
        sent = [0.0]

        def woken() -> bool:
            # Lumina's message, again each second: one sent while the listener was still in its
            # first pass (not subscribed yet) is lost, as it would be in Lumina.
            if time.monotonic() - sent[0] >= 1.0:
                client.publish(f"job:{job}:progress", json.dumps({"job_id": job, "status": "SUCCESS"}))
                sent[0] = time.monotonic()
            return groups_in(url) == expected_groups_in_lumina(first + rest)
        wait_for(woken, HANG_S)  # long before the next poll: the message woke the listener
        client.close()
    finally:
        stop.set()
        thread.join(40)


def test_batch_task_without_job_batches(lumina: tuple[str, str], tmp_path: Path,  # noqa: F811
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Lumina's init_db() never creates job_batches: a batch event then covers every image not
    hashed yet, instead of failing on the missing table."""
    from lumina_plugin.lumina import tasks
    url, cid = lumina
    assert query(url, "SELECT to_regclass('job_batches')")[0][0] is None
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    write_config(tmp_path / "config", url=url, redis_url=REDIS_URL)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    kept = scan_as_lumina(url, cid, sample_photos())
    assert tasks.run_batch_imported(cid, str(uuid.uuid4()), None)["images"] == len(kept) == 38
    assert groups_in(url) == expected_groups_in_lumina(kept)
    assert tasks.run_batch_imported(cid, str(uuid.uuid4()), None) == {"images": 0}


def test_busy_catalog_sends_scan_tasks_back_to_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch or scan task that finds another run holding the catalog retries later (freeing
    the worker slot it shares with Lumina's own tasks) instead of failing."""
    from lumina_plugin.catalog.interface import CatalogLockedError
    from lumina_plugin.lumina import tasks
    calls: list[tuple[Any, ...]] = []

    def busy(*args: Any) -> dict[str, Any]:
        calls.append(args)
        if len(calls) < 3:
            raise CatalogLockedError("in use by another lumina-dedup run")
        return {"images": 1}
    monkeypatch.setattr(tasks, "run_batch_imported", busy)
    monkeypatch.setattr(tasks, "run_scan_finished", busy)
    assert tasks.batch_imported.apply(kwargs={"catalog_id": "c", "batch_id": "b"}).get() == {"images": 1}
    assert len(calls) == 3
    assert tasks.scan_finished.apply(kwargs={"catalog_id": "c"}).get() == {"images": 1}


@pytest.mark.slow
def test_find_duplicates_waits_for_a_busy_catalog(lumina: tuple[str, str], tmp_path: Path,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Pressed while another run holds the catalog longer than one open waits (10 s): the job
    stays PROGRESS, says it is waiting, and runs once the catalog is free (seen failing on the
    real Lumina before)."""
    import psycopg
    import redis

    from lumina_plugin.catalog.postgres import lock_key, split_url
    from lumina_plugin.lumina import bridge, tasks
    url, cid = lumina
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    write_config(tmp_path / "config", url=url, redis_url=REDIS_URL)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    kept = scan_as_lumina(url, cid, sample_photos())
    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        job = bridge.create_job(conn, cid, "detect_duplicates", {})
    pubsub = redis.Redis.from_url(REDIS_URL).pubsub()
    pubsub.subscribe(f"job:{job}:progress")
    holder = psycopg.connect(split_url(url)[0], autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(cid),))
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(tasks.run_find_duplicates(cid, job)), daemon=True)
    thread.start()
    try:
        time.sleep(11)  # past the first open's 10 s
        assert thread.is_alive()
        assert query(url, "SELECT status FROM jobs WHERE id = %s", (job,))[0][0] == "PROGRESS"
    finally:
        holder.close()  # releases the lock
    thread.join(60)
    assert outcome["status"] == "completed" and outcome["duplicate_groups"] == 8
    assert query(url, "SELECT status FROM jobs WHERE id = %s", (job,))[0][0] == "SUCCESS"
    phases = []
    deadline = time.monotonic() + 10  # what was published meanwhile waits in the subscription
    while time.monotonic() < deadline and "waiting" not in phases:
        if (m := pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
            phases.append(json.loads(m["data"]).get("progress", {}).get("phase"))
    pubsub.close()
    assert "waiting" in phases
    assert groups_in(url) == expected_groups_in_lumina(kept)


def test_uninstall_leaves_luminas_id_sequences_advanced(lumina: tuple[str, str], tmp_path: Path,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What docs/lumina.md says of uninstall: every row we wrote goes, but the ids our tags and our
    copies of groups took from Lumina's sequences (``tags_id_seq``, ``duplicate_groups_id_seq``)
    are not given back: Lumina's next tag or group gets a higher id than it would have."""
    from lumina_plugin.catalog.postgres import uninstall
    from lumina_plugin.lumina import tasks
    url, cid = lumina
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    write_config(tmp_path / "config", url=url, redis_url=REDIS_URL, show_in_lumina=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    seqs = "SELECT (SELECT last_value FROM tags_id_seq), (SELECT last_value FROM duplicate_groups_id_seq)"
    before = query(url, seqs)[0]
    kept = scan_as_lumina(url, cid, sample_photos())
    tasks.run_batch_imported(cid, None, None)
    assert groups_in(url) == expected_groups_in_lumina(kept)
    used = query(url, seqs)[0]
    assert used[0] > before[0] and used[1] > before[1]  # our tags and our 8 groups on Lumina's page
    uninstall(url)
    assert query(url, "SELECT count(*) FROM tags")[0][0] == 0
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 0
    assert query(url, seqs)[0] == used  # not reset
    new_tag = query(url, "INSERT INTO tags (catalog_id, name, category, created_at) VALUES (%s, 'beach', 'scene', %s)"
                         " RETURNING id", (cid, now()))[0][0]
    assert new_tag == used[0] + 1
