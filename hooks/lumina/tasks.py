"""Our Celery tasks: where the bridge's heavy work runs, on our own queue.

``shared_task`` binds them to whichever Celery app loads this module: Lumina's (its worker
started with ``--include lumina_hooks.lumina.celery -Q celery,lumina-dedup``) or ours
(:mod:`lumina_hooks.lumina.worker`). Each fires the plugin contract through a
:class:`~lumina_hooks.PluginHost`; the plugin does the hashing, searching and tagging. The
functions are also plain callables (the listener runs them in-process).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from . import bridge

log = logging.getLogger(__name__)


def run_batch_imported(catalog_id: str, batch_id: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    """A scan batch was stored: fire images-imported for its images (or, without a batch,
    for every image we have not hashed yet: the catch-up)."""
    config = bridge.load_config()
    with bridge.connect(config.lumina) as conn:
        paths = bridge.batch_paths(conn, catalog_id, batch_id) if batch_id else bridge.pending_paths(conn, catalog_id)
    if not paths:
        return {"images": 0}
    with bridge.make_host(catalog_id, config) as host:
        answers = host.images_imported(paths, source="lumina-scan", job_id=job_id)
    return {"images": len(paths), "answers": len(answers)}


def run_scan_finished(catalog_id: str, job_id: str | None = None) -> dict[str, Any]:
    """A scan finished: hash whatever its batches left (a batch event lost, a restart), then
    fire scan-finished, where the plugin regroups the whole catalog."""
    caught_up = run_batch_imported(catalog_id, None, job_id)
    config = bridge.load_config()
    with bridge.make_host(catalog_id, config) as host:
        host.scan_finished(job_id=job_id)
    return {"caught_up": caught_up["images"]}


def run_find_duplicates(catalog_id: str, job_id: str) -> dict[str, Any]:
    """Find Duplicates as a Lumina job: PROGRESS, progress on Redis, then SUCCESS with a result
    Lumina's job panel reads (``result.status = completed``), or FAILURE with the error."""
    config = bridge.load_config()
    progress = bridge.Progress(bridge.redis_url(config.lumina), job_id)
    with bridge.connect(config.lumina) as conn:
        bridge.update_job(conn, job_id, "PROGRESS")
        progress("starting", 0, 1, "lumina-dedup: Find Duplicates")
        try:
            paths = bridge.pending_paths(conn, catalog_id)
            with bridge.make_host(catalog_id, config, progress) as host:
                report = host.run_action(bridge.FIND_DUPLICATES, paths=paths)
            summary = report.get("summary", {})
            total = conn.execute("SELECT count(*) FROM images WHERE catalog_id = %s", (catalog_id,)).fetchone()[0]
            result = {"status": "completed_with_errors" if summary.get("errors") else "completed",
                      "catalog_id": catalog_id, "total_images": total,
                      "duplicate_groups": summary.get("groups", 0), "total_duplicates": summary.get("duplicates", 0),
                      "engine": "lumina-dedup", "summary": summary}
        except Exception as exc:
            log.exception("Find Duplicates failed for catalog %s", catalog_id)
            bridge.update_job(conn, job_id, "FAILURE", {"status": "failed", "error": str(exc)}, f"{type(exc).__name__}: {exc}")
            progress.finish("FAILURE", error=str(exc))
            raise
        bridge.update_job(conn, job_id, "SUCCESS", result)
    progress.finish("SUCCESS", result)
    return result


@shared_task(name=bridge.TASK_BATCH, ignore_result=True)
def batch_imported(catalog_id: str, batch_id: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    return run_batch_imported(catalog_id, batch_id, job_id)


@shared_task(name=bridge.TASK_SCAN, ignore_result=True)
def scan_finished(catalog_id: str, job_id: str | None = None) -> dict[str, Any]:
    return run_scan_finished(catalog_id, job_id)


@shared_task(name=bridge.TASK_FIND, ignore_result=True)
def find_duplicates(catalog_id: str, job_id: str) -> dict[str, Any]:
    return run_find_duplicates(catalog_id, job_id)
