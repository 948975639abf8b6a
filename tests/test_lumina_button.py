"""Lumina's Find Duplicates button, through our ASGI wrapper, never hangs (issue 20, item 3).

Against the machine's PostgreSQL and Redis (``test_lumina_support``: skipped without them, failed
under ``LUMINA_DEDUP_REQUIRE_SERVICES=1``) and a real Celery worker of our own
(``celery -A lumina_plugin.lumina.worker``). Without a worker on our queue the press is answered
HTTP 503 with a message Lumina's UI shows (``error.response.data.detail``), and a job whose worker
went away after the press ends FAILURE with that message; with a worker, SUCCESS. Each test has
a queue of its own, so workers of other test sessions on the same Redis never answer for it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
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
    lumina_page,
    lumina_stand_in,
    make_lumina,
    pg_database,
    query,
    require_bridge_services,
    sample_photos,
    scan_as_lumina,
    unavailable,
    write_config,
)

#: A generous bound that catches a hang, not a slow machine (the issue's target: 60 s).
HANG_S = 60


@pytest.fixture(scope="module", autouse=True)
def services() -> None:
    require_bridge_services()


def use_config(monkeypatch: pytest.MonkeyPatch, home: Path, url: str, queue: str) -> None:
    """This test's Lumina and queue, for the router here (and for a worker reading ``home``)."""
    write_config(home, url=url, redis_url=REDIS_URL, queue=queue)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))


def press(cid: str) -> tuple[int, dict[str, Any], float]:
    """Lumina's button, as its UI sends it, through the wrapper: (status, JSON, seconds)."""
    from fastapi.testclient import TestClient

    from lumina_plugin.lumina.router import InFront, standalone
    with TestClient(InFront(lumina_stand_in(), standalone())) as http:
        start = time.monotonic()
        answer = http.post(f"/api/catalogs/{cid}/detect-duplicates",
                           params={"similarity_threshold": 5, "recompute_hashes": "false"})
        return answer.status_code, answer.json(), time.monotonic() - start


def job_row(url: str, job: str) -> tuple[Any, ...]:
    return query(url, "SELECT status, error, result FROM jobs WHERE id = %s", (job,))[0]


def lumina_view(status: str, result: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    """What Lumina's ``GET /api/jobs/{id}`` answers for a row (``get_effective_status`` and
    ``get_failure_info`` in lumina/api/routers/jobs.py, reduced to the cases of our jobs)."""
    result = result or {}
    effective = {"PENDING": "queued", "STARTED": "running", "PROGRESS": "running", "FAILURE": "failed"}.get(status)
    if status == "SUCCESS":
        effective = "completed" if result.get("status") in ("completed", "completed_with_errors") else "running"
    view: dict[str, Any] = {"status": effective}
    if effective == "failed" and (error or result.get("error")):
        view.update(error=error or result.get("error"), error_code=result.get("error_code"),
                    failed_phase=result.get("failed_phase"))
    return view


@pytest.mark.slow
def test_button_without_a_worker_is_refused_with_a_message(lumina: tuple[str, str], tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No worker consumes our queue: the press is answered 503 with a message naming the queue and
    what to start (Lumina's UI shows ``detail``), and no job is left PENDING."""
    url, cid = lumina
    queue = f"lumina-dedup-nobody-{secrets.token_hex(3)}"
    use_config(monkeypatch, tmp_path / "config", url, queue)
    status, answer, took = press(cid)
    assert status == 503, answer
    assert queue in answer["detail"] and "no Celery worker" in answer["detail"]
    assert "--include lumina_plugin.lumina.celery" in answer["detail"]
    assert took < HANG_S
    assert query(url, "SELECT count(*) FROM jobs")[0][0] == 0
    print(f"refused after {took:.2f} s")


@pytest.mark.slow
def test_job_whose_worker_went_away_ends_failure(lumina: tuple[str, str], tmp_path: Path,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A job sent while a worker was there, which then stopped: the watch finds the job still
    PENDING and no worker, and ends it FAILURE with the message, in the row (what Lumina's job API
    reads) and on ``job:<id>:progress``; a worker that gets the message later does not run it."""
    import psycopg
    import redis

    from lumina_plugin.catalog.postgres import split_url
    from lumina_plugin.config import Config
    from lumina_plugin.lumina import bridge, router, tasks
    url, cid = lumina
    queue = f"lumina-dedup-gone-{secrets.token_hex(3)}"
    use_config(monkeypatch, tmp_path / "config", url, queue)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    scan_as_lumina(url, cid, sample_photos())
    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        job = bridge.create_job(conn, cid, "detect_duplicates", {"similarity_threshold": 5})
    router.send_task(bridge.TASK_FIND, {"catalog_id": cid, "job_id": job}, job, queue)  # nobody takes it
    pubsub = redis.Redis.from_url(REDIS_URL).pubsub()
    pubsub.subscribe(f"job:{job}:progress")
    start = time.monotonic()
    assert router.watch_unclaimed(job, Config.load().lumina, first_s=0.5) == "failed"
    took = time.monotonic() - start
    assert took < HANG_S
    status, error, result = job_row(url, job)
    message = bridge.no_worker_message(queue)
    assert (status, error) == ("FAILURE", message)
    assert lumina_view(status, result, error) == {"status": "failed", "error": message, "error_code": bridge.NO_WORKER,
                                                  "failed_phase": "queued"}
    published = None
    deadline = time.monotonic() + 10
    while published is None and time.monotonic() < deadline:
        if (m := pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
            published = json.loads(m["data"])
    pubsub.close()
    assert published is not None and published["status"] == "FAILURE" and published["result"]["error"] == message
    last = redis.Redis.from_url(REDIS_URL).get(f"job:{job}:last_progress")
    assert isinstance(last, bytes) and json.loads(last)["status"] == "FAILURE"
    # The message is still in the broker: a worker that starts now must not run the job.
    with pytest.raises(tasks.JobGivenUp, match="given up"):
        tasks.run_find_duplicates(cid, job)
    assert job_row(url, job)[:2] == ("FAILURE", message)
    assert query(url, "SELECT to_regclass('lumina_dedup_runs')")[0][0] is None  # nothing ran
    redis.Redis.from_url(REDIS_URL).delete(queue)  # the message nobody will take
    print(f"FAILURE {took:.2f} s after the watch began")


def test_a_job_lumina_marked_started_is_claimed_once(lumina_db: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Lumina's own task_prerun receiver (in Lumina's worker) marks our job STARTED before our task
    runs: the task still claims it (PROGRESS), and the watch never ends a claimed job; a job given
    up first is refused, and left FAILURE, even after Lumina marked it STARTED."""
    import psycopg

    from lumina_plugin.catalog.postgres import split_url
    from lumina_plugin.lumina import bridge
    cid = create_catalog(lumina_db)
    with psycopg.connect(split_url(lumina_db)[0], autocommit=True) as conn:
        started = bridge.create_job(conn, cid, "detect_duplicates", {})
        bridge.update_job(conn, started, "STARTED")
        assert bridge.fail_unclaimed_job(conn, started, "no worker") is False
        assert bridge.claim_job(conn, started) is None
        assert conn.execute("SELECT status, error FROM jobs WHERE id = %s", (started,)).fetchone() == ("PROGRESS", None)
        gone = bridge.create_job(conn, cid, "detect_duplicates", {})
        assert bridge.fail_unclaimed_job(conn, gone, "no worker") is True
        bridge.update_job(conn, gone, "STARTED")
        assert bridge.claim_job(conn, gone) == "no worker"
        assert conn.execute("SELECT status, error FROM jobs WHERE id = %s", (gone,)).fetchone() == ("FAILURE", "no worker")


@pytest.fixture(scope="module")
def our_worker(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:  # noqa: F811
    """A real Celery worker of our own (``celery -A lumina_plugin.lumina.worker worker -Q <queue>``,
    the command docs/lumina.md gives), on a queue of this module's own. Yields its queue, config
    home and log; each test points the config at its own Lumina (tasks read it per run)."""
    url, drop = make_lumina(pg_database)
    home = tmp_path_factory.mktemp("button-worker")
    queue = f"lumina-dedup-button-{secrets.token_hex(3)}"
    config = home / "config"
    write_config(config, url=url, redis_url=REDIS_URL, queue=queue)
    env = {**os.environ, "XDG_CONFIG_HOME": str(config), "XDG_DATA_HOME": str(home / "data")}
    log_path = home / "worker.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "lumina_plugin.lumina.worker", "worker", "-Q", queue,
         "--pool", "threads", "--concurrency", "1", "--loglevel", "INFO", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "--hostname", f"button-{queue}@%h"],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + HANG_S
        while time.monotonic() < deadline and "ready" not in log_path.read_text() and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None and "ready" in log_path.read_text(), log_path.read_text()
        yield {"queue": queue, "config": str(config), "log": str(log_path)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        drop()


@pytest.mark.slow
def test_button_with_our_worker_succeeds(lumina: tuple[str, str], our_worker: dict[str, str],  # noqa: F811
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from lumina_plugin.config import Config
    from lumina_plugin.lumina import bridge, router
    url, cid = lumina
    use_config(monkeypatch, Path(our_worker["config"]), url, our_worker["queue"])
    kept = scan_as_lumina(url, cid, sample_photos())
    with bridge.celery_client(Config.load().lumina) as app:  # the worker answers Celery's remote control
        assert bridge.queue_consumers(app, our_worker["queue"], timeout=10.0)
    status, answer, took = press(cid)
    assert status == 200, answer
    job = answer["job_id"]
    assert answer["status"] == "pending" and answer["task_id"] == job
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline and job_row(url, job)[0] not in ("SUCCESS", "FAILURE"):
        time.sleep(0.2)
    status_, error, result = job_row(url, job)
    assert (status_, error) == ("SUCCESS", None), Path(our_worker["log"]).read_text()[-3000:]
    assert lumina_view(status_, result, error) == {"status": "completed"}
    assert result["duplicate_groups"] == len(expected_groups_in_lumina(kept)) == 8
    # Lumina's own duplicates page lists them, with no option set (issue 20, item 2).
    assert lumina_page(url, cid) == expected_groups_in_lumina(kept)
    # The watch leaves a job a worker took alone.
    assert router.watch_unclaimed(job, Config.load().lumina, first_s=0) == "started"
    print(f"press answered in {took:.2f} s; job SUCCESS")


@pytest.mark.slow
def test_job_waiting_for_a_busy_worker_is_left_queued(lumina: tuple[str, str], our_worker: dict[str, str],  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker consumes our queue but has not taken the job yet (busy with a long task): the
    watch leaves the job PENDING ("queued" in Lumina) and stops watching after its bound."""
    import psycopg

    from lumina_plugin.catalog.postgres import split_url
    from lumina_plugin.config import Config
    from lumina_plugin.lumina import bridge, router
    url, cid = lumina
    use_config(monkeypatch, Path(our_worker["config"]), url, our_worker["queue"])
    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        job = bridge.create_job(conn, cid, "detect_duplicates", {})  # never sent: stays PENDING
    assert router.watch_unclaimed(job, Config.load().lumina, first_s=0, every_s=0.5, for_s=1.0) == "queued"
    assert job_row(url, job)[:2] == ("PENDING", None)
