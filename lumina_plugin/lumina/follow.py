"""Tag a scan's photos while Lumina stores them, not after its batch ends (issue 20, item 7).

Lumina's scan hands a folder to its tasks in batches of up to 5,000 files and each
``scan_worker`` inserts image rows one by one, but signals only when the whole batch ends: a
1,905-file scan was tagged 125 s after it ended when we waited for that. So when a
``scan_worker`` starts, the receiver in Lumina's worker (:mod:`.celery`) also sends
:data:`~.bridge.TASK_FOLLOW`, and the follow task (:func:`follow_pass`) hashes and tags the rows
the scan has stored so far, in chunks, then sends itself again a moment later, until the scan's
job has ended: the scan's last rows are hashed within about :data:`POLL_S` of being stored, and
what is left at its end (the scan-finished regroup) is one whole-catalog pass over hashes
already in hand.

A pass that finds at least ``[lumina] fanout_chunk`` rows waiting sends them as chunks to every
free worker (:mod:`.fanout`), and leaves the catalog to that run while it lasts.

Each pass is one short task, so it never holds a worker slot while it waits (a slot that
Lumina's own tasks share); between passes the message waits in the broker (``countdown``).
One follower per scan: the first follow message of a job claims a Redis key, the batches'
others see it taken and end at once; a follower that died (its worker gone) lets the key
expire, and the next batch's message takes over.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from ..catalog.interface import CatalogLockedError
from ..config import Config
from . import bridge, fanout

log = logging.getLogger(__name__)

#: Seconds between passes while the scan runs (the delay between a row stored and its hashing).
POLL_S = 1.0
#: A follower's Redis claim lives this long unless a pass renews it (a dead follower's lapses).
CLAIM_S = 60
#: A scan whose job has not ended after this long is no longer followed (a crashed coordinator
#: leaves its job PROGRESS for ever); the listener's catch-up and scan-finished still run.
FOLLOW_MAX_S = 6 * 3600.0
#: Job states after which no more rows come.
ENDED = ("SUCCESS", "FAILURE", "REVOKED")


def claim(config: Config, job_id: str, token: str | None) -> str | None:
    """The follower's token for this scan: a new claim (``token`` None), or the renewal of its
    own; None where another follower holds the scan."""
    import redis
    client = redis.Redis.from_url(bridge.redis_url(config.lumina), socket_connect_timeout=2, socket_timeout=2)
    key = f"lumina-dedup:follow:{job_id}"
    try:
        if token is None:
            token = uuid.uuid4().hex
            return token if client.set(key, token, nx=True, ex=CLAIM_S) else None
        held: Any = client.get(key)
        if held is not None and held.decode() != token:
            return None
        client.set(key, token, ex=CLAIM_S)
        return token
    finally:
        client.close()


def scan_ended(conn: Any, job_id: str) -> bool:
    """Whether the scan's job is over (or unknown: a job row Lumina never stored)."""
    row = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return row is None or row[0] in ENDED


def follow_pass(catalog_id: str, job_id: str, token: str | None = None,
                started: float | None = None) -> dict[str, Any]:
    """One pass: hash and tag the catalog's rows not hashed yet (chunks of ``batch_size``, again
    while more arrive). Returns ``{"images": n, "again": seconds or None, "token", "started"}``:
    ``again`` is when the caller should run the next pass, with that token and start (None: the
    scan ended, or another follower has it)."""
    config = bridge.load_config()
    started = time.time() if started is None else started
    token = claim(config, job_id, token)
    if token is None:
        return {"images": 0, "again": None, "token": None, "started": started}
    out: dict[str, Any] = {"images": 0, "again": POLL_S, "token": token, "started": started}
    chunk = max(1, config.batch_size)
    try:
        while True:
            with bridge.connect(config.lumina) as conn:
                ended = scan_ended(conn, job_id)  # read first: rows stored before the end are in this pass
                paths = bridge.pending_paths(conn, catalog_id, config.hash_version())
            if paths and fanout.active_run(config, catalog_id):
                paths = []  # a fan-out run hashes them (or, stored since, its grouping step does)
            elif fanout.wanted(config, len(paths)):  # a burst of rows: every free worker takes a share
                fanout.dispatch(catalog_id, paths, config, "import", job_id, exclusive=True)
                out["images"] += len(paths)
                paths = []
            for start in range(0, len(paths), chunk):
                with bridge.make_host(catalog_id, config) as host:
                    host.images_imported(paths[start:start + chunk], source="lumina-scan", job_id=job_id)
                out["images"] += len(paths[start:start + chunk])
                claim(config, job_id, token)  # a long pass keeps its claim
            if ended or time.time() - started > FOLLOW_MAX_S:
                return {**out, "again": None}
            if not paths:
                return out
    except CatalogLockedError:  # another run of ours holds the catalog (a batch task): next pass
        return out
