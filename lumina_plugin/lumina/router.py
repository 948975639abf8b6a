"""The Find Duplicates action over HTTP, and a wrapper that puts it in front of Lumina's app.

``router`` answers ``POST /api/lumina-dedup/catalogs/{id}/find-duplicates`` (ours) and, in
front of Lumina, Lumina's own ``POST /api/catalogs/{id}/detect-duplicates`` (so its button
runs ours). Either makes a ``jobs`` row of Lumina's shape (``job_type`` detect_duplicates)
and sends our task to our queue with the job id as its task id; the task publishes progress
on ``job:<id>:progress`` and finishes the job, which Lumina's job panel shows. Serve with

    uvicorn lumina_plugin.lumina.router:app     # Lumina's app with our route in front

in place of ``uvicorn lumina.api.app:app``. Everything else goes to Lumina untouched,
lifespan included.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from starlette.types import ASGIApp, Receive, Scope, Send

from . import bridge

router = APIRouter()

#: Lumina's own route that the wrapper takes over.
LUMINA_ROUTE = re.compile(r"^/api/catalogs/[0-9a-fA-F-]{36}/detect-duplicates/?$")


def send_task(name: str, kwargs: dict[str, Any], task_id: str, queue: str) -> None:
    """Send a task by name through Lumina's broker (no Celery app of Lumina's needed here)."""
    from celery import Celery
    app = Celery("lumina_dedup_sender", broker=bridge.redis_url(bridge.load_config().lumina))
    try:
        app.send_task(name, kwargs=kwargs, task_id=task_id, queue=queue)
    finally:
        app.close()


def start_find_duplicates(catalog_id: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create the job row and enqueue our task; returns what Lumina's endpoint returns."""
    config = bridge.load_config()
    with bridge.connect(config.lumina) as conn:
        row = conn.execute("SELECT name FROM catalogs WHERE id = %s", (catalog_id,)).fetchone()
        if row is None:
            raise HTTPException(status_code=404, detail="Catalog not found")
        job_id = bridge.create_job(conn, catalog_id, "detect_duplicates", parameters or {})
    send_task(bridge.TASK_FIND, {"catalog_id": catalog_id, "job_id": job_id}, job_id, config.lumina.queue)
    return {"job_id": job_id, "task_id": job_id, "status": "pending",
            "message": f"Duplicate detection (lumina-dedup) started for catalog {row[0]}"}


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
