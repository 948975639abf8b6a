"""A Celery app shaped like Lumina's, for the bridge tests' real worker (no tests here).

Its ``scan_worker`` takes the same kwargs as Lumina's (``catalog_id``, ``batch_id``,
``parent_job_id``), reads its batch's paths from ``job_batches.work_items`` and inserts the
image rows one by one as Lumina's scan does (over time where its job's ``parameters`` say
``test_seconds_per_file``, and held after ``test_hold_at`` rows until the file ``test_gate``
exists); ``scan_finalizer`` is a chord callback that marks
the job SUCCESS with ``result.status = completed``. The worker is started by
``test_lumina_bridge.py`` with ``--include lumina_plugin.lumina.celery``; the database and
broker come from ``LUMINA_TEST_DB`` and ``LUMINA_TEST_BROKER``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from test_lumina_support import _libpq, now, scan_as_lumina

app = Celery("lumina", broker=os.environ.get("LUMINA_TEST_BROKER", "redis://127.0.0.1:6379/15"))
app.conf.update(task_default_queue=os.environ.get("LUMINA_TEST_QUEUE", "celery"), task_ignore_result=True,
                worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)


@app.task(bind=True, name="scan_worker")
def scan_worker(self: Any, catalog_id: str, batch_id: str, parent_job_id: str,
                generate_previews: bool = True) -> dict[str, Any]:
    import psycopg
    url = os.environ["LUMINA_TEST_DB"]
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        row = conn.execute("SELECT work_items FROM job_batches WHERE id = %s", (batch_id,)).fetchone()
        params = conn.execute("SELECT parameters FROM jobs WHERE id = %s", (parent_job_id,)).fetchone()
    assert row is not None, f"no job_batches row {batch_id}"
    items = list(row[0])  # in the batch's order, as Lumina's scan takes them
    test = (params[0] if params else None) or {}
    pace, hold_at, gate = test.get("test_seconds_per_file"), test.get("test_hold_at"), test.get("test_gate")
    if pace is None and hold_at is None:
        added = scan_as_lumina(url, catalog_id, [Path(p) for p in items])
    else:  # row by row over time, as Lumina's scan stores them (its rows appear while it runs)
        added = []
        for n, path in enumerate(items):
            if n == hold_at:  # the test holds the scan here, still running, until it opens the gate
                deadline = time.monotonic() + 120
                while not Path(gate).exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
            added += scan_as_lumina(url, catalog_id, [Path(path)])
            time.sleep(pace or 0)
    return {"batch_id": batch_id, "status": "completed", "processed_count": len(items),
            "success_count": len(items), "error_count": 0, "added": len(added)}


@app.task(bind=True, name="scan_finalizer")
def scan_finalizer(self: Any, worker_results: list[dict[str, Any]], catalog_id: str,
                   parent_job_id: str) -> dict[str, Any]:
    import psycopg
    total = sum(r.get("processed_count", 0) for r in worker_results)
    result = {"status": "completed", "files": {"total": total, "processed": total, "added": total, "errors": 0}}
    with psycopg.connect(_libpq(os.environ["LUMINA_TEST_DB"]), autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'SUCCESS', result = %s::jsonb, updated_at = %s WHERE id = %s",
                     (json.dumps(result), now(), parent_job_id))
    return result
