"""Our Celery tasks: where the bridge's heavy work runs, on our own queue.

``shared_task`` binds them to whichever Celery app loads this module: Lumina's (its worker
started with ``--include lumina_plugin.lumina.celery -Q celery,lumina-dedup``) or ours
(:mod:`lumina_plugin.lumina.worker`). Each fires the plugin contract through a
:class:`~lumina_hooks.PluginHost`; the plugin does the hashing, searching and tagging. The
functions are also plain callables (the listener runs them in-process).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from lumina_hooks import HookReport

from ..catalog.interface import CatalogLockedError
from . import bridge, fanout

log = logging.getLogger(__name__)

#: Runs on one catalog never interleave (a PostgreSQL advisory lock); each open waits 10 s.
#: A scan's batch and finish tasks that find the catalog busy (a long batch import) go back
#: to our queue and try again, freeing the worker slot (Lumina's own tasks share it) ...
LOCK_RETRY_S = 10
LOCK_RETRIES = 180  # 30 minutes
#: ... while Find Duplicates, which a person is watching, waits in place and says so
#: (bridge.FIND_LOCK_WAIT_S).


class JobGivenUp(RuntimeError):
    """A Find Duplicates message reached a worker after the job was ended for want of one
    (:func:`~.bridge.fail_unclaimed_job`): the job stays FAILURE and nothing runs."""


def run_batch_imported(catalog_id: str, batch_id: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    """A scan batch was stored: fire images-imported for its images not hashed yet (or, without
    a batch, for every image we have not hashed yet: the catch-up)."""
    config = bridge.load_config()
    with bridge.connect(config.lumina) as conn:
        paths = bridge.batch_paths(conn, catalog_id, batch_id) if batch_id else None
        pending = bridge.pending_paths(conn, catalog_id, config.hash_version())
        # Only what is not hashed yet: the scan's follower (.follow) has usually done the rest.
        paths = pending if paths is None else sorted(set(paths) & set(pending))
    if not paths:
        return {"images": 0}
    if fanout.wanted(config, len(paths)):  # chunks over every free worker; their grouping step regroups
        run = fanout.dispatch(catalog_id, paths, config, "import", job_id, exclusive=True)
        # None: a fan-out run is hashing this catalog; its grouping step hashes what it left.
        return {"images": len(paths), "fanned_out": run["run"] if run else fanout.active_run(config, catalog_id)}
    with bridge.make_host(catalog_id, config) as host:
        answers = host.images_imported(paths, source="lumina-scan", job_id=job_id)
    return {"images": len(paths), "answers": len(answers)}


def run_scan_finished(catalog_id: str, job_id: str | None = None) -> dict[str, Any]:
    """A scan finished: hash whatever its batches left (a batch event lost, a restart), then
    fire scan-finished, where the plugin regroups the whole catalog. Where the scan's job counted
    more files added than the catalog gained rows, say (in the log, and as ``elsewhere``) which
    photos Lumina stored under another catalog (:mod:`.elsewhere`)."""
    caught_up = run_batch_imported(catalog_id, None, job_id)
    config = bridge.load_config()
    found = check_scan(catalog_id, job_id, config)  # first: said even if the regroup fails
    if not caught_up.get("fanned_out"):  # else the fan-out's grouping step is the regroup
        with bridge.make_host(catalog_id, config) as host:
            host.scan_finished(job_id=job_id)
    return {"caught_up": caught_up["images"], "elsewhere": found, "fanned_out": caught_up.get("fanned_out")}


def check_scan(catalog_id: str, job_id: str | None, config: Any) -> dict[str, Any] | None:
    """:func:`.elsewhere.check_after_scan`, its findings logged as warnings; never raises (a
    check that fails must not fail the scan's tagging)."""
    from . import elsewhere
    try:
        with bridge.connect(config.lumina) as conn:
            check = elsewhere.check_after_scan(conn, catalog_id, job_id, config.extensions)
    except Exception:
        log.exception("lumina-dedup: could not check scan %s of catalog %s for photos stored elsewhere",
                      job_id, catalog_id)
        return None
    if check is not None:  # a warning where photos are stored elsewhere; byte copies alone are news only
        level = logging.WARNING if check["elsewhere"]["count"] else logging.INFO
        for line in elsewhere.describe(check):
            log.log(level, "%s (scan %s: %d added, %d stored)", line, job_id, check["scan"]["added"],
                    check["scan"]["stored"])
    return check


def run_find_duplicates(catalog_id: str, job_id: str) -> dict[str, Any]:
    """Find Duplicates as a Lumina job: PROGRESS, progress on Redis, then SUCCESS with a result
    Lumina's job panel reads (``result.status = completed``), or FAILURE with the error. A job
    already given up for want of a worker (the button's watch, :mod:`.router`) raises
    :class:`JobGivenUp` and stays FAILURE."""
    config = bridge.load_config()
    with bridge.connect(config.lumina) as conn:
        given_up = bridge.claim_job(conn, job_id)  # PROGRESS
        if given_up is not None:
            raise JobGivenUp(f"job {job_id} was given up before a worker took it: {given_up}")
        progress = bridge.Progress(bridge.redis_url(config.lumina), job_id)
        progress("starting", 0, 1, "lumina-dedup: Find Duplicates")
        try:
            pending = bridge.pending_paths(conn, catalog_id, config.hash_version())
            if fanout.wanted(config, len(pending)):  # chunks; the last one's grouping step ends the job
                # Said first: the workers' own progress follows from their first chunk on.
                progress("hashing", 0, len(pending), f"lumina-dedup: {len(pending)} photos go to the workers in chunks")
                progress.client.close()
                return {"status": "running", "fanned_out": fanout.dispatch(catalog_id, pending, config, "find", job_id)}

            def run() -> HookReport:
                paths = bridge.pending_paths(conn, catalog_id, config.hash_version())  # again after a wait: a scan may have added some
                with bridge.make_host(catalog_id, config, progress) as host:
                    return host.run_action(bridge.FIND_DUPLICATES, paths=paths, job_id=job_id)

            def waiting(why: str) -> None:
                bridge.update_job(conn, job_id, "PROGRESS")  # still running, not failed
                progress("waiting", 0, 1, f"lumina-dedup: waiting for the catalog: {why}")
            report = bridge.wait_for_catalog(run, waiting, bridge.FIND_LOCK_WAIT_S)
            total = conn.execute("SELECT count(*) FROM images WHERE catalog_id = %s", (catalog_id,)).fetchone()[0]
            result = bridge.job_result(report, catalog_id, total)
        except Exception as exc:
            log.exception("Find Duplicates failed for catalog %s", catalog_id)
            bridge.update_job(conn, job_id, "FAILURE", {"status": "failed", "error": str(exc)}, f"{type(exc).__name__}: {exc}")
            progress.finish("FAILURE", error=str(exc))
            raise
        bridge.update_job(conn, job_id, "SUCCESS", result)
    progress.finish("SUCCESS", result)
    return result


@shared_task(name=bridge.TASK_BATCH, bind=True, ignore_result=True, max_retries=LOCK_RETRIES)
def batch_imported(self: Any, catalog_id: str, batch_id: str | None = None,
                   job_id: str | None = None) -> dict[str, Any]:
    try:
        return run_batch_imported(catalog_id, batch_id, job_id)
    except CatalogLockedError as exc:
        raise self.retry(exc=exc, countdown=LOCK_RETRY_S) from exc


@shared_task(name=bridge.TASK_FOLLOW, bind=True, ignore_result=True)
def follow_scan(self: Any, catalog_id: str, job_id: str, token: str | None = None,
                started: float | None = None) -> dict[str, Any]:
    """One pass of following a running scan (:mod:`.follow`); sends the next pass to our queue
    after ``again`` seconds, so no worker slot is held while the scan stores more rows."""
    from . import follow
    out = follow.follow_pass(catalog_id, job_id, token, started)
    if out["again"] is not None:
        self.apply_async(kwargs={"catalog_id": catalog_id, "job_id": job_id, "token": out["token"],
                                 "started": out["started"]}, countdown=out["again"],
                         queue=bridge.load_config().lumina.queue)
    return out


@shared_task(name=bridge.TASK_SCAN, bind=True, ignore_result=True, max_retries=LOCK_RETRIES)
def scan_finished(self: Any, catalog_id: str, job_id: str | None = None) -> dict[str, Any]:
    try:
        return run_scan_finished(catalog_id, job_id)
    except CatalogLockedError as exc:
        raise self.retry(exc=exc, countdown=LOCK_RETRY_S) from exc


# JobGivenUp is expected (logged without a traceback); raised, so that Lumina's own task_failure
# receiver, in Lumina's worker, leaves the job FAILURE with its message. is_coordinator: Lumina's
# task_postrun and task_success receivers (lumina/celery_app.py) then leave the job's row to us, as
# they do for its own coordinators; else a run handed to the fan-out would be marked SUCCESS, with
# our return value as its result, while its chunks still hash (the run itself writes SUCCESS).
@shared_task(name=bridge.TASK_FIND, ignore_result=True, throws=(JobGivenUp,), is_coordinator=True)
def find_duplicates(catalog_id: str, job_id: str) -> dict[str, Any]:
    return run_find_duplicates(catalog_id, job_id)


# Late acknowledgement: a worker lost mid-chunk leaves the message to another (.fanout explains);
# both tasks may run twice and do no harm (idempotent writes; the grouping step ends at once).
@shared_task(name=bridge.TASK_CHUNK, bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def hash_chunk(self: Any, run: str, catalog_id: str, chunk: int, paths: list[str]) -> dict[str, Any]:
    return fanout.run_chunk(run, catalog_id, chunk, paths, worker=str(self.request.hostname or ""))


@shared_task(name=bridge.TASK_GROUP, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def group_chunks(run: str) -> dict[str, Any]:
    return fanout.run_group(run)
