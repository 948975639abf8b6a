"""Loaded into Lumina's Celery worker: ``celery -A lumina.celery_app worker --include lumina_plugin.lumina.celery``.

Connects ``task_prerun`` and ``task_success`` receivers. As a ``scan_worker`` starts, we enqueue
:data:`~.bridge.TASK_FOLLOW`, which hashes and tags its rows while it stores them (:mod:`.follow`);
after it succeeds, its batch's images are in ``images``: we enqueue :data:`~.bridge.TASK_BATCH`
(what the follower has not hashed yet); after ``scan_finalizer``, :data:`~.bridge.TASK_SCAN`. Receivers run inside Lumina's task, so they do nothing but send a
message, and never raise (a failure is logged; the listener's catch-up recovers the work).
Importing this module also registers our tasks, so a worker that consumes our queue
(``-Q celery,lumina-dedup``) runs them.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_prerun, task_success

from . import bridge, tasks  # noqa: F401  (importing tasks registers them with the worker's app)

log = logging.getLogger(__name__)

#: Lumina's task names we follow.
SCAN_WORKER = "scan_worker"
SCAN_FINALIZER = "scan_finalizer"


def _queue() -> str:
    return bridge.load_config().lumina.queue


@task_prerun.connect(weak=False)
def on_task_prerun(sender: Any = None, kwargs: Any = None, args: Any = None, **_: Any) -> None:
    """A ``scan_worker`` starts: follow its job (:data:`~.bridge.TASK_FOLLOW`), so its rows are
    hashed and tagged while it stores them (:mod:`.follow`); ignore every other task."""
    try:
        if getattr(sender, "name", "") != SCAN_WORKER:
            return
        kw, positional = dict(kwargs or {}), list(args or [])
        catalog_id = str(kw.get("catalog_id") or (positional[0] if positional else ""))
        job_id = kw.get("parent_job_id") or (positional[2] if len(positional) > 2 else None)
        if catalog_id and job_id:
            sender.app.send_task(bridge.TASK_FOLLOW, kwargs={"catalog_id": catalog_id, "job_id": str(job_id)},
                                 queue=_queue())
    except Exception:  # never into Lumina's task
        log.exception("lumina-dedup: could not follow %s", getattr(sender, "name", "?"))


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
