"""``lumina-dedup lumina listen``: follow Lumina's scans with no change to Lumina at all.

A separate process. It subscribes to Lumina's Redis progress channels (``job:*:progress``) so
it wakes as soon as a scan reports, and also polls on a timer, so a lost message or a Redis
outage only delays it. Each pass (:meth:`Listener.tick`):

1. catch-up: for every catalog, the images Lumina stored that we have not hashed yet (an
   anti-join of ``images`` against our ``lumina_dedup_images``) fire images-imported, in
   batches: so after a restart, whatever was scanned meanwhile is picked up (a catch-up of at
   least ``[lumina] fanout_chunk`` photos goes to the workers on our queue as chunks, where there
   are any: :mod:`.fanout`);
2. for every scan job that reached SUCCESS (``result.status`` completed or
   completed_with_errors) since the last pass, or a catalog caught up at start, scan-finished;
   a scan that counted more files added than its catalog gained rows is checked for photos
   Lumina stored under another catalog, and the finding logged (:mod:`.elsewhere`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..config import Config
from . import bridge

log = logging.getLogger(__name__)

FINISHED = ("completed", "completed_with_errors")


class Listener:
    """Follows Lumina's scans; ``tick`` is one pass, ``run`` loops until ``stop`` is set."""

    def __init__(self, config: Config | None = None, catalogs: Sequence[str] = (),
                 on_report: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config or bridge.load_config()
        self.catalogs = tuple(catalogs)
        self.on_report = on_report or (lambda report: None)
        self.since: datetime | None = None  # updated_at of the newest finished scan job seen

    def _catalog_ids(self, conn: Any) -> list[str]:
        rows = conn.execute("SELECT id::text, name FROM catalogs ORDER BY created_at").fetchall()
        return [cid for cid, name in rows if not self.catalogs or cid in self.catalogs or name in self.catalogs]

    def _finished_scans(self, conn: Any) -> list[tuple[str, str]]:
        """(job id, catalog id) of scan jobs finished since the last pass, oldest first."""
        rows = conn.execute(
            "SELECT id, catalog_id::text, updated_at, result FROM jobs WHERE job_type = 'scan' AND status = 'SUCCESS'"
            " AND catalog_id IS NOT NULL AND (%s::timestamp IS NULL OR updated_at > %s) ORDER BY updated_at",
            (self.since, self.since)).fetchall()
        out = []
        for job_id, catalog_id, updated, result in rows:
            self.since = max(self.since or updated, updated)
            status = (result if isinstance(result, dict) else json.loads(result or "{}")).get("status")
            if status in FINISHED:
                out.append((job_id, catalog_id))
        return out

    def tick(self, first: bool = False) -> dict[str, Any]:
        """One pass: catch up on unhashed images, then regroup catalogs whose scans finished."""
        from . import tasks
        report: dict[str, Any] = {"imported": {}, "scans": []}
        with bridge.connect(self.config.lumina) as conn:
            catalogs = self._catalog_ids(conn)
            scans = self._finished_scans(conn)
            if first:  # a restart: what finished before we started is history, not news
                scans = []
            pending = {cid: bridge.pending_paths(conn, cid, self.config.hash_version()) for cid in catalogs}
        batch = max(1, self.config.batch_size)
        fanned = {cid for cid, paths in pending.items() if self._fan_out(cid, paths)}
        for cid, paths in pending.items():
            if cid in fanned:  # the workers hash it in chunks; their grouping step regroups
                report["imported"][cid] = len(paths)
                continue
            for start in range(0, len(paths), batch):
                with bridge.make_host(cid, self.config) as host:
                    host.images_imported(paths[start:start + batch], source="lumina-listener")
            if paths:
                report["imported"][cid] = len(paths)
        regroup: dict[str, str | None] = {cid: job for job, cid in scans if cid in catalogs}
        if first:
            regroup.update({cid: None for cid, paths in pending.items() if paths})
        for cid in fanned:
            regroup.pop(cid, None)
        for cid, job in regroup.items():
            outcome = tasks.run_scan_finished(cid, job)  # logs photos stored under another catalog
            report["scans"].append({"catalog_id": cid, "job_id": job, "elsewhere": outcome.get("elsewhere")})
        if report["imported"] or report["scans"]:
            self.on_report(report)
        return report

    def _fan_out(self, catalog_id: str, paths: list[str]) -> bool:
        """Send a large catch-up to the workers on our queue as chunks (:mod:`.fanout`); False
        where it is small, no worker consumes our queue (the listener then hashes it itself, as
        it does without Celery), or a fan-out run already hashes this catalog (left to it)."""
        from . import fanout
        if not paths or not fanout.wanted(self.config, len(paths)):
            return False
        if fanout.active_run(self.config, catalog_id):
            return True
        with bridge.celery_client(self.config.lumina) as app:
            if not bridge.queue_consumers(app, self.config.lumina.queue):
                return False
        fanout.dispatch(catalog_id, paths, self.config, "import", exclusive=True)
        return True

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop``: wake on Lumina's progress messages, or every ``poll_seconds``."""
        import redis
        settings = self.config.lumina
        pubsub = None
        self._tick_safely(first=True)
        last = time.monotonic()
        while not stop.is_set():
            if pubsub is None:
                try:
                    pubsub = redis.Redis.from_url(bridge.redis_url(settings), socket_connect_timeout=2).pubsub()
                    pubsub.psubscribe("job:*:progress")
                except redis.RedisError as exc:
                    log.warning("Redis unavailable (%s); polling only", exc)
                    pubsub = None
            woke = False
            try:
                if pubsub is not None:
                    # Short waits, so that ``stop`` is seen within a second.
                    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=min(1.0, settings.poll_seconds))
                    woke = bool(message and _is_done(message.get("data")))
                else:
                    stop.wait(min(1.0, settings.poll_seconds))
            except redis.RedisError as exc:
                log.warning("Redis connection lost (%s); reconnecting", exc)
                pubsub = None
            if not stop.is_set() and (woke or time.monotonic() - last >= settings.poll_seconds):
                self._tick_safely()
                last = time.monotonic()
        if pubsub is not None:
            pubsub.close()

    def _tick_safely(self, first: bool = False) -> None:
        try:
            self.tick(first=first)
        except Exception:  # one bad pass must not end the service; the next one retries
            log.exception("lumina-dedup listener pass failed")


def _is_done(data: Any) -> bool:
    """Whether a progress message says a job ended (then we look at ``jobs`` at once)."""
    try:
        return json.loads(data).get("status") in ("SUCCESS", "FAILURE")
    except (TypeError, ValueError, AttributeError):
        return False
