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
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from lumina_hooks.events import HostContext
from lumina_hooks.host import PluginHost

from ..catalog.postgres import JOB_ENGINE, lumina_database_url, now, split_url, unhashed_paths
from ..config import Config
from ..model import ALGORITHM_VERSION
from ..plugin import FIND_DUPLICATES as FIND_DUPLICATES  # the plugin's menu action that Find Duplicates runs
from ..settings.lumina import LuminaSettings

log = logging.getLogger(__name__)

#: Our task names (stable: Lumina's broker may hold messages across an upgrade).
TASK_BATCH = "lumina_dedup.batch_imported"
TASK_SCAN = "lumina_dedup.scan_finished"
TASK_FIND = "lumina_dedup.find_duplicates"


def load_config() -> Config:
    """The user's configuration (``$XDG_CONFIG_HOME/lumina-dedup/config.toml``), else defaults."""
    return Config.load()


def database_url(settings: LuminaSettings) -> str:
    """Lumina's database, as libpq takes it (our own query parameters removed)."""
    return split_url(settings.url or lumina_database_url())[0]


def catalog_url(catalog_id: str, settings: LuminaSettings) -> str:
    """The catalog locator the plugin opens: Lumina's database URL naming one catalog."""
    base = database_url(settings)
    extra = f"catalog={quote(str(catalog_id), safe='')}" + ("&show_in_lumina=1" if settings.show_in_lumina else "")
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


def pending_paths(conn: Any, catalog_id: str) -> list[str]:
    """Lumina's images in this catalog that we have not hashed yet."""
    return unhashed_paths(conn, catalog_id, ALGORITHM_VERSION)


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
        self._send({"job_id": self.job_id, "status": "PROGRESS",
                    "progress": {"current": done, "total": total,
                                 "percent": int(done * 100 / total) if total > 0 else 0,
                                 "message": message or f"{phase} {done}/{total}", "phase": phase},
                    "timestamp": now().isoformat()})

    def finish(self, status: str, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        payload: dict[str, Any] = {"job_id": self.job_id, "status": status, "timestamp": now().isoformat()}
        if status == "SUCCESS" and result is not None:
            payload["result"] = result
        elif error is not None:
            payload["result"] = {"error": error}
        self._send(payload)
        self.client.close()
