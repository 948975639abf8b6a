"""What every way into Lumina shares: its settings, the catalog URL, hosts, jobs and progress.

Lumina reads ``POSTGRES_*`` and ``REDIS_*`` (and ``CELERY_BROKER_URL``) from its environment;
so do we, so the bridge works wherever Lumina does. Our own ``[lumina]`` settings
(:class:`~lumina_plugin.settings.lumina.LuminaSettings`, from the user's config file) may
override them.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from lumina_hooks import HookReport
from lumina_hooks.events import HostContext
from lumina_hooks.host import PluginHost

from ..catalog.interface import CatalogLockedError
from ..catalog.postgres import JOB_ENGINE, lumina_database_url, now, split_url, unhashed_paths
from ..config import Config
from ..model import algorithm_version
from ..plugin import FIND_DUPLICATES as FIND_DUPLICATES  # the plugin's menu action that Find Duplicates runs
from ..settings.lumina import LuminaSettings

log = logging.getLogger(__name__)

#: Our task names (stable: Lumina's broker may hold messages across an upgrade).
TASK_BATCH = "lumina_dedup.batch_imported"
TASK_SCAN = "lumina_dedup.scan_finished"
TASK_FIND = "lumina_dedup.find_duplicates"
TASK_FOLLOW = "lumina_dedup.follow_scan"
TASK_CHUNK = "lumina_dedup.hash_chunk"  # one chunk of a fanned-out run (.fanout)
TASK_GROUP = "lumina_dedup.group_chunks"  # the grouping step after a run's last chunk

#: How long Find Duplicates waits for a worker on our queue to answer Celery's remote control
#: (an answer ends the wait at once; the full wait only when none comes).
WORKER_CHECK_S = 2.0
#: ``jobs.result.error_code`` of a Find Duplicates job that no worker took: the job is over
#: (FAILURE), and a worker that gets its message later must not run it.
NO_WORKER = "no_worker"
#: How long Find Duplicates, which a person is watching, waits in place for a catalog another
#: run holds (and says so), where a scan's tasks go back to the queue instead.
FIND_LOCK_WAIT_S = 1800.0

T = TypeVar("T")


def wait_for_catalog(call: Callable[[], T], on_wait: Callable[[str], None], wait_s: float) -> T:
    """``call()``, again and again while another run holds the catalog, for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return call()
        except CatalogLockedError as exc:
            if time.monotonic() >= deadline:
                raise
            on_wait(str(exc))


def job_result(report: HookReport, catalog_id: str, total_images: int) -> dict[str, Any]:
    """The ``jobs.result`` of a Find Duplicates job, as Lumina's job panel reads it: the report's
    counts, and the plugin's summary (``details["summary"]``, passed on as it came) for the UI."""
    return {"status": "completed_with_errors" if report.errors else "completed",
            "catalog_id": catalog_id, "total_images": total_images,
            "duplicate_groups": report.groups, "total_duplicates": report.duplicates,
            "engine": "lumina-dedup", "summary": dict(report.details.get("summary", {}))}


def load_config() -> Config:
    """The user's configuration (``$XDG_CONFIG_HOME/lumina-dedup/config.toml``), else defaults."""
    return Config.load()


def database_url(settings: LuminaSettings) -> str:
    """Lumina's database, as libpq takes it (our own query parameters removed)."""
    return split_url(settings.url or lumina_database_url())[0]


def catalog_url(catalog_id: str, settings: LuminaSettings) -> str:
    """The catalog locator the plugin opens: Lumina's database URL naming one catalog."""
    base = database_url(settings)
    # show_in_lumina always spelled out, so the plugin's catalog follows these settings, not its own default.
    extra = f"catalog={quote(str(catalog_id), safe='')}&show_in_lumina={int(settings.show_in_lumina)}"
    return base + ("&" if "?" in base else "?") + extra


def redis_url(settings: LuminaSettings, environ: dict[str, str] | None = None) -> str:
    """Lumina's Redis: the setting, else ``CELERY_BROKER_URL`` (what Lumina's own progress
    publisher uses first), else built from ``REDIS_HOST/PORT/DB/PASSWORD``."""
    env = os.environ if environ is None else environ
    if settings.redis_url:
        return settings.redis_url
    if env.get("CELERY_BROKER_URL", "").startswith(("redis://", "rediss://")):
        return env["CELERY_BROKER_URL"]
    password = env.get("REDIS_PASSWORD", "")
    auth = f":{quote(password, safe='')}@" if password else ""
    return (f"redis://{auth}{env.get('REDIS_HOST', 'localhost')}:{env.get('REDIS_PORT', '6379')}"
            f"/{env.get('REDIS_DB', '2')}")


def make_host(catalog_id: str, config: Config, progress: Callable[[str, int, int], None] | None = None) -> PluginHost:
    """A plugin host for one event on one Lumina catalog (plugins from the ``lumina`` entry points)."""
    return PluginHost(HostContext(name="lumina", catalog=catalog_url(catalog_id, config.lumina), progress=progress))


def connect(settings: LuminaSettings) -> Any:
    import psycopg
    return psycopg.connect(database_url(settings), autocommit=True, application_name="lumina-dedup-bridge")


def pending_paths(conn: Any, catalog_id: str, version: int | None = None) -> list[str]:
    """Lumina's images in this catalog that we have not hashed yet at ``version``
    (default: the exact decode's; pass ``config.hash_version()``)."""
    return unhashed_paths(conn, catalog_id, algorithm_version() if version is None else version)


def has_table(conn: Any, name: str) -> bool:
    """Whether Lumina's database has this table (on the connection's search path)."""
    return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None


def batch_paths(conn: Any, catalog_id: str, batch_id: str) -> list[str] | None:
    """The paths of a scan batch (``job_batches.work_items``) that Lumina stored image rows for.

    None where the batch cannot be read: Lumina's ``init_db()`` never creates ``job_batches``
    (a deployment adds it by hand), so the caller falls back to every image not hashed yet."""
    if not has_table(conn, "job_batches"):
        return None
    row = conn.execute("SELECT work_items FROM job_batches WHERE id = %s", (batch_id,)).fetchone()
    if row is None:
        return None
    items = row[0] if isinstance(row[0], list) else json.loads(row[0] or "[]")
    paths = [str(p.get("path", p.get("file_path", ""))) if isinstance(p, dict) else str(p) for p in items]
    return [r[0] for r in conn.execute(
        "SELECT source_path FROM images WHERE catalog_id = %s AND file_type = 'image' AND source_path = ANY(%s)"
        " ORDER BY source_path", (catalog_id, paths))]


def create_job(conn: Any, catalog_id: str, job_type: str, parameters: dict[str, Any],
               job_id: str | None = None) -> str:
    """A ``jobs`` row of Lumina's shape (its id is the Celery task id), status PENDING."""
    job_id = job_id or str(uuid.uuid4())
    # engine marks the row as ours, so `lumina-dedup lumina uninstall` can remove it.
    conn.execute("INSERT INTO jobs (id, catalog_id, job_type, status, parameters, created_at, updated_at)"
                 " VALUES (%s, %s, %s, 'PENDING', %s::jsonb, %s, %s)",
                 (job_id, catalog_id, job_type, json.dumps({"engine": JOB_ENGINE, **parameters}), now(), now()))
    return job_id


def update_job(conn: Any, job_id: str, status: str, result: dict[str, Any] | None = None,
               error: str | None = None) -> None:
    conn.execute("UPDATE jobs SET status = %s, result = COALESCE(%s::jsonb, result), error = COALESCE(%s, error),"
                 " updated_at = %s WHERE id = %s",
                 (status, json.dumps(result) if result is not None else None, error, now(), job_id))


def no_worker_message(queue: str) -> str:
    """What Lumina shows when no worker consumes our queue: the cause and the fix."""
    return (f"lumina-dedup: no Celery worker consumes the queue '{queue}', so Find Duplicates cannot run."
            f" Start Lumina's worker with --include lumina_plugin.lumina.celery and '{queue}' in its --queues,"
            f" or a worker of our own: celery -A lumina_plugin.lumina.worker worker -Q {queue} (docs/lumina.md)")


def fail_unclaimed_job(conn: Any, job_id: str, message: str) -> bool:
    """End a job that no worker has started (still PENDING) as FAILURE, with the message where
    Lumina's job API reads it (``error``; ``result.error``, ``error_code``, ``failed_phase``).
    False where a worker started it meanwhile (the row is no longer PENDING)."""
    result = {"status": "failed", "error": message, "error_code": NO_WORKER, "failed_phase": "queued",
              "failed_at": now().isoformat()}
    row = conn.execute("UPDATE jobs SET status = 'FAILURE', result = %s::jsonb, error = %s, updated_at = %s"
                       " WHERE id = %s AND status = 'PENDING' RETURNING id",
                       (json.dumps(result), message, now(), job_id)).fetchone()
    return row is not None


def claim_job(conn: Any, job_id: str) -> str | None:
    """Mark the job PROGRESS as its run starts; returns None, or the error of a job that was given up
    (:func:`fail_unclaimed_job`) before this worker got its message, which is then left FAILURE.
    One statement, so a give-up and a start never both win."""
    row = conn.execute("UPDATE jobs SET status = 'PROGRESS', updated_at = %s WHERE id = %s"
                       " AND result->>'error_code' IS DISTINCT FROM %s RETURNING id", (now(), job_id, NO_WORKER)).fetchone()
    if row is not None:
        return None
    given_up = conn.execute("SELECT error FROM jobs WHERE id = %s AND result->>'error_code' = %s",
                            (job_id, NO_WORKER)).fetchone()
    if given_up is None:
        return None  # no row at all (a job id Lumina never stored): run, as before
    update_job(conn, job_id, "FAILURE")  # Lumina's own task_prerun receiver set it STARTED
    return str(given_up[0])


@contextmanager
def celery_client(settings: LuminaSettings) -> Iterator[Any]:
    """A Celery app on Lumina's broker for sending tasks and control commands (no Celery app of
    Lumina's needed here); closed on exit."""
    from celery import Celery
    app = Celery("lumina_dedup_sender", broker=redis_url(settings))
    # A broker that is down fails the call within seconds instead of retrying for minutes.
    app.conf.update(broker_connection_timeout=3.0, broker_connection_max_retries=2,
                    broker_transport_options={"max_retries": 2, "interval_start": 0, "interval_step": 0.5})
    try:
        yield app
    finally:
        app.close()


class _Answered(Exception):
    """Ends the wait for replies once a worker on the queue has answered."""


def queue_consumers(app: Any, queue: str, timeout: float = WORKER_CHECK_S) -> list[str]:
    """The workers that consume ``queue`` now, by Celery's remote control (``active_queues``, the
    command behind ``celery inspect active_queues``). Returns as soon as one of them answers, else
    after ``timeout`` seconds with []. Raises what the broker raises when it cannot be reached."""
    found: list[str] = []

    def on_reply(reply: dict[str, Any]) -> None:
        for worker, queues in reply.items():
            if any(isinstance(q, dict) and q.get("name") == queue for q in queues or ()):
                found.append(worker)
        if found:
            raise _Answered

    try:
        app.control.broadcast("active_queues", reply=True, timeout=timeout, callback=on_reply)
    except _Answered:
        pass
    return found


class Progress:
    """Publishes progress as Lumina's job panel reads it: JSON on ``job:<id>:progress`` and
    the same in ``job:<id>:last_progress`` (an hour). Never raises: progress is best effort."""

    def __init__(self, redis_url: str, job_id: str, min_interval: float = 0.5) -> None:
        import redis
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self.job_id, self.min_interval = job_id, min_interval
        self._last = (0.0, "")

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            text = json.dumps(payload)
            pipe = self.client.pipeline(transaction=False)
            pipe.publish(f"job:{self.job_id}:progress", text)
            pipe.setex(f"job:{self.job_id}:last_progress", 3600, text)
            pipe.execute()
        except Exception as exc:  # Redis down must not fail the run
            log.warning("progress for job %s not published: %s", self.job_id, exc)

    def __call__(self, phase: str, done: int, total: int, message: str = "") -> None:
        at = time.monotonic()
        if phase == self._last[1] and at - self._last[0] < self.min_interval and done < total:
            return
        self._last = (at, phase)
        self._send(self.payload(self.job_id, phase, done, total, message))

    @staticmethod
    def payload(job_id: str, phase: str, done: int, total: int, message: str = "") -> dict[str, Any]:
        """A PROGRESS message as Lumina's job panel reads it."""
        return {"job_id": job_id, "status": "PROGRESS",
                "progress": {"current": done, "total": total,
                             "percent": int(done * 100 / total) if total > 0 else 0,
                             "message": message or f"{phase} {done}/{total}", "phase": phase},
                "timestamp": now().isoformat()}

    def finish(self, status: str, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        payload: dict[str, Any] = {"job_id": self.job_id, "status": status, "timestamp": now().isoformat()}
        if status == "SUCCESS" and result is not None:
            payload["result"] = result
        elif error is not None:
            payload["result"] = {"error": error}
        self._send(payload)
        self.client.close()
