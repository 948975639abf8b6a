"""The Find Duplicates action over HTTP, and a wrapper that puts it in front of Lumina's app.

``router`` answers ``POST /api/lumina-dedup/catalogs/{id}/find-duplicates`` (ours) and, in
front of Lumina, Lumina's own ``POST /api/catalogs/{id}/detect-duplicates`` (so its button
runs ours). Either makes a ``jobs`` row of Lumina's shape (``job_type`` detect_duplicates)
and sends our task to our queue with the job id as its task id; the task publishes progress
on ``job:<id>:progress`` and finishes the job, which Lumina's job panel shows. Serve with

    uvicorn lumina_plugin.lumina.router:app     # Lumina's app with our route in front

in place of ``uvicorn lumina.api.app:app``. Everything else goes to Lumina untouched,
lifespan included.

The button never leaves a job that nothing will run: before the job is made, a worker must be
consuming our queue (Celery's remote control, :func:`~.bridge.queue_consumers`), else the answer
is HTTP 503 with ``detail`` saying why and what to start, which Lumina's UI shows ("Failed to
submit duplicate detection job: ..."). After the job is sent, :func:`watch_unclaimed` looks again
while it is still PENDING (a worker that stopped in between): with no worker on the queue the job
ends FAILURE with that message, which Lumina's job panel shows, within about 20 s of the press.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from starlette.types import ASGIApp, Receive, Scope, Send

from ..settings.lumina import LuminaSettings
from . import bridge

log = logging.getLogger(__name__)

router = APIRouter()

#: Lumina's own route that the wrapper takes over.
LUMINA_ROUTE = re.compile(r"^/api/catalogs/[0-9a-fA-F-]{36}/detect-duplicates/?$")

#: The watch of a sent job (:func:`watch_unclaimed`): first look this long after the press, then
#: at this period while a worker is there but busy, for at most WATCH_FOR_S.
WATCH_FIRST_S = 15.0
WATCH_EVERY_S = 30.0
WATCH_FOR_S = 600.0


def send_task(name: str, kwargs: dict[str, Any], task_id: str, queue: str) -> None:
    """Send a task by name through Lumina's broker (no Celery app of Lumina's needed here)."""
    with bridge.celery_client(bridge.load_config().lumina) as app:
        app.send_task(name, kwargs=kwargs, task_id=task_id, queue=queue)


def workers_or_503(app: Any, settings: LuminaSettings) -> list[str]:
    """The workers consuming our queue; HTTP 503 (``detail`` says why, for Lumina's UI) where
    there is none or the broker cannot be reached."""
    try:
        workers = bridge.queue_consumers(app, settings.queue)
    except Exception as exc:
        log.warning("lumina-dedup: Lumina's broker cannot be reached: %s", exc)
        raise HTTPException(status_code=503, detail=f"lumina-dedup: Lumina's Redis broker cannot be reached"
                                                    f" ({type(exc).__name__}: {exc})") from None
    if not workers:
        message = bridge.no_worker_message(settings.queue)
        log.warning("%s", message)
        raise HTTPException(status_code=503, detail=message)
    return workers


def start_find_duplicates(catalog_id: str, parameters: dict[str, Any] | None = None,
                          watch: bool = True) -> dict[str, Any]:
    """Check that a worker consumes our queue, create the job row, enqueue our task and watch the
    job until a worker takes it; returns what Lumina's endpoint returns. HTTP 404 for an unknown
    catalog, 503 where no worker would run the job (nothing is created then)."""
    config = bridge.load_config()
    settings = config.lumina
    with bridge.connect(settings) as conn:
        row = conn.execute("SELECT name FROM catalogs WHERE id = %s", (catalog_id,)).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="Catalog not found")
    with bridge.celery_client(settings) as app:
        workers_or_503(app, settings)
        with bridge.connect(settings) as conn:
            job_id = bridge.create_job(conn, catalog_id, "detect_duplicates", parameters or {})
        app.send_task(bridge.TASK_FIND, kwargs={"catalog_id": catalog_id, "job_id": job_id}, task_id=job_id,
                      queue=settings.queue)
    if watch:
        threading.Thread(target=_watch_quietly, args=(job_id, settings), daemon=True,
                         name=f"lumina-dedup-watch-{job_id[:8]}").start()
    return {"job_id": job_id, "task_id": job_id, "status": "pending",
            "message": f"Duplicate detection (lumina-dedup) started for catalog {row[0]}"}


def watch_unclaimed(job_id: str, settings: LuminaSettings, first_s: float = WATCH_FIRST_S,
                    every_s: float = WATCH_EVERY_S, for_s: float = WATCH_FOR_S) -> str:
    """Watch a sent job until a worker takes it. While it is PENDING, look for a worker on our
    queue (after ``first_s``, then every ``every_s``): none, and the job ends FAILURE with a
    message saying what to start (Lumina's job panel shows it; a FAILURE message goes to
    ``job:<id>:progress``), and a worker that gets the message later does not run it. Returns
    "started" (a worker took it, or the row is gone), "failed" (ended here) or "queued" (still
    waiting for a busy worker after ``for_s``: left as it is)."""
    deadline = time.monotonic() + for_s
    wait = first_s
    while True:
        time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
        with bridge.connect(settings) as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if row is None or row[0] != "PENDING":
            return "started"
        try:
            with bridge.celery_client(settings) as app:
                workers = bridge.queue_consumers(app, settings.queue)
        except Exception as exc:  # the broker is away: no worker gets the message either; look again
            log.warning("lumina-dedup: cannot look for workers for job %s: %s", job_id, exc)
            workers = None
        if workers == []:
            message = bridge.no_worker_message(settings.queue)
            with bridge.connect(settings) as conn:
                ended = bridge.fail_unclaimed_job(conn, job_id, message)
            if not ended:
                return "started"
            log.warning("job %s: %s", job_id, message)
            progress = bridge.Progress(bridge.redis_url(settings), job_id)
            progress.finish("FAILURE", error=message)
            return "failed"
        if time.monotonic() >= deadline:
            return "queued"
        wait = every_s


def _watch_quietly(job_id: str, settings: LuminaSettings) -> None:
    try:
        watch_unclaimed(job_id, settings)
    except Exception:  # a thread of the web process: log, never raise
        log.exception("lumina-dedup: the watch of job %s failed", job_id)


@router.post("/api/lumina-dedup/catalogs/{catalog_id}/find-duplicates")
def find_duplicates(catalog_id: str) -> dict[str, Any]:
    return start_find_duplicates(_uuid(catalog_id))


@router.post("/api/catalogs/{catalog_id}/detect-duplicates")
def detect_duplicates(catalog_id: str, similarity_threshold: int = Query(5, ge=1, le=20),
                      recompute_hashes: bool = Query(False)) -> dict[str, Any]:
    """Lumina's button. Its threshold is recorded but ours apply (see docs/lumina.md)."""
    return start_find_duplicates(_uuid(catalog_id), {"similarity_threshold": similarity_threshold,
                                                     "recompute_hashes": recompute_hashes})


def _uuid(text: str) -> str:
    import uuid
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise HTTPException(status_code=422, detail="catalog_id must be a UUID") from None


def standalone() -> FastAPI:
    """Our routes alone (for a separate service, or tests)."""
    api = FastAPI(title="lumina-dedup")
    api.include_router(router)
    return api


class InFront:
    """An ASGI app that sends our routes to ``ours`` and everything else to ``inner`` (Lumina)."""

    def __init__(self, inner: ASGIApp, ours: ASGIApp | None = None) -> None:
        self.inner: ASGIApp = inner
        self.ours: ASGIApp = ours or standalone()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope.get("method") == "POST" and (
                LUMINA_ROUTE.match(path) or path.startswith("/api/lumina-dedup/")):
            await self.ours(scope, receive, send)
        else:
            await self.inner(scope, receive, send)


def __getattr__(name: str) -> Any:
    """``app``: Lumina's own app with our route in front, built on first use (needs Lumina installed)."""
    if name == "app":
        from lumina.api.app import app as lumina_app
        globals()["app"] = wrapped = InFront(lumina_app)
        return wrapped
    raise AttributeError(name)
