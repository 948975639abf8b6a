"""Loaded into Lumina's Celery worker: ``celery -A lumina.celery_app worker --include lumina_plugin.lumina.celery``.

Connects ``task_success`` receivers. After a ``scan_worker`` succeeds, its batch's images are
in ``images``: we enqueue :data:`~.bridge.TASK_BATCH` on our queue; after ``scan_finalizer``,
:data:`~.bridge.TASK_SCAN`. Receivers run inside Lumina's task, so they do nothing but send a
message, and never raise (a failure is logged; the listener's catch-up recovers the work).
Importing this module also registers our tasks, so a worker that consumes our queue
(``-Q celery,lumina-dedup``) runs them.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_success

from . import bridge, tasks  # noqa: F401  (importing tasks registers them with the worker's app)

log = logging.getLogger(__name__)

#: Lumina's task names we follow.
SCAN_WORKER = "scan_worker"
SCAN_FINALIZER = "scan_finalizer"


def _queue() -> str:
    return bridge.load_config().lumina.queue


@task_success.connect(weak=False)
def on_task_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    """Enqueue our work for Lumina's scan tasks; ignore every other task."""
    try:
        name = getattr(sender, "name", "")
        if name not in (SCAN_WORKER, SCAN_FINALIZER):
            return
        request = sender.request
        kwargs = dict(request.kwargs or {})
        args = list(request.args or [])
        if name == SCAN_FINALIZER:  # a chord callback: the workers' results come first
            args = args[1:]
        catalog_id = str(kwargs.get("catalog_id") or (args[0] if args else ""))
        if not catalog_id:
            return
        if name == SCAN_WORKER:
            if isinstance(result, dict) and result.get("status") == "skipped":
                return
            batch_id = kwargs.get("batch_id") or (args[1] if len(args) > 1 else None)
            job_id = kwargs.get("parent_job_id") or (args[2] if len(args) > 2 else None)
            sender.app.send_task(bridge.TASK_BATCH, kwargs={"catalog_id": catalog_id, "batch_id": str(batch_id),
                                                            "job_id": job_id}, queue=_queue())
        else:
            job_id = kwargs.get("parent_job_id") or (args[1] if len(args) > 1 else None)
            sender.app.send_task(bridge.TASK_SCAN, kwargs={"catalog_id": catalog_id, "job_id": job_id},
                                 queue=_queue())
    except Exception:  # never into Lumina's task
        log.exception("lumina-dedup: could not enqueue work after %s", getattr(sender, "name", "?"))
