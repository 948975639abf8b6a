"""Hashing fanned out over Lumina's Celery workers (issue 21, item 1).

A run with at least ``[lumina] fanout_chunk`` unhashed photos (Find Duplicates, a scan batch, a
catch-up) is cut into chunks, each a message on our queue (:data:`~.bridge.TASK_CHUNK`); every
free worker takes one, hashes it (on its GPU where it has one and runs a pool that may start
processes: :func:`~lumina_plugin.ingest.pipeline.hash_paths` chooses, as for any run) and stores
the codes. When the last chunk is marked done it sends one grouping step
(:data:`~.bridge.TASK_GROUP`): the engine's Find Duplicates under the catalog's advisory lock,
which compares every photo with every other and tags. Smaller runs stay in the task's process.

Why a last-chunk trigger and not a Celery chord: a chord needs a result backend (our worker app
keeps no results; Lumina's job row and Redis are where results go), and its counter counts
*completions*: a chunk redelivered after its worker died past the point of finishing would be
counted twice and start the grouping while another chunk is still hashing. Here each chunk's
mark is a field of one Redis hash (``HSET`` of the chunk's number), so a chunk done twice is
counted once; the chunk whose mark makes the count whole sends the grouping step. A finisher
task that waited for the chunks would hold a worker slot that a chunk needs (two workers with one
slot each: one waits, one hashes).

Failures. Chunk and grouping tasks are ``acks_late`` with ``reject_on_worker_lost``: a pool child
killed mid-chunk puts the message back at once; a whole worker (or its machine) killed leaves it
unacknowledged in Redis, which hands it to another worker after the broker's
``visibility_timeout`` (``[lumina] fanout_visibility_s`` in our worker app). Our app takes one
message per slot (``worker_prefetch_multiplier=1``: with late acknowledgement the message in hand
is the only one reserved, so a busy worker holds no chunk that an idle one could take). A chunk
run again writes the same rows (``upsert_images``: ``ON CONFLICT (image_id) DO UPDATE``, which
keeps a row's index id; already hashed photos are skipped) and no tags (only the grouping step
tags), so no photo is lost or tagged twice. A chunk that fails (a file vanished from Lumina, a
database error) is still marked done with its error: its photos stay unhashed, and the grouping
step's Find Duplicates hashes what is left in its own process and reports their errors.

Progress: as each chunk is marked, a Find Duplicates job's row gets ``status`` PROGRESS and
``result.progress`` (photos and chunks done), and ``job:<id>:progress`` the same message Lumina's
panel reads; the grouping step ends the job SUCCESS (or FAILURE).

State lives in Redis under ``lumina-dedup:fanout:<run>:*`` (kept :data:`KEEP_S`).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

from .._faults import crash_point
from ..catalog.postgres import PostgresCatalog, now
from ..config import Config
from ..files import FileError, discover
from ..ingest.pipeline import hash_paths
from . import bridge

log = logging.getLogger(__name__)

#: How long a run's marks are kept in Redis (a week: a stopped deployment resumes within it).
KEEP_S = 7 * 24 * 3600
#: A catalog's "a fan-out run is hashing it" mark lives this long unless a chunk renews it.
ACTIVE_S = 6 * 3600
#: Kinds of run: "find" ends a Find Duplicates job of ours; "import" records Lumina's scan job.
KINDS = ("find", "import")


def wanted(config: Config, count: int) -> bool:
    """Whether ``count`` unhashed photos are worth fanning out (at least one chunk's worth)."""
    chunk = config.lumina.fanout_chunk
    return chunk > 0 and count >= chunk


def _key(run: str, part: str) -> str:
    return f"lumina-dedup:fanout:{run}:{part}"


def _active_key(catalog_id: str) -> str:
    return f"lumina-dedup:fanout:active:{catalog_id}"


def _redis(config: Config) -> Any:
    import redis
    return redis.Redis.from_url(bridge.redis_url(config.lumina), socket_connect_timeout=3, socket_timeout=10)


def active_run(config: Config, catalog_id: str) -> str | None:
    """The fan-out run hashing this catalog now, if any."""
    client = _redis(config)
    try:
        held = client.get(_active_key(catalog_id))
        return None if held is None else held.decode()
    finally:
        client.close()


def dispatch(catalog_id: str, paths: list[str], config: Config, kind: str,
             job_id: str | None = None, exclusive: bool = False) -> dict[str, Any] | None:
    """Cut ``paths`` into chunks and send them to our queue; returns the run's description
    (``run``, ``chunks``, ``images``, ...), or None where ``exclusive`` and another fan-out run is
    hashing this catalog (the scan-side callers leave its photos to that run and its grouping)."""
    if kind not in KINDS:
        raise ValueError(f"fan-out kind must be one of {KINDS}, not {kind!r}")
    size = max(1, config.lumina.fanout_chunk)
    # Each chunk in path order: two runs of one chunk then take its rows' locks in one order.
    parts = [sorted(paths[i:i + size]) for i in range(0, len(paths), size)]
    run = uuid.uuid4().hex
    meta = {"run": run, "catalog_id": catalog_id, "kind": kind, "job_id": job_id, "chunks": len(parts),
            "images": len(paths)}
    client = _redis(config)
    try:
        claimed = client.set(_active_key(catalog_id), run, nx=True, ex=ACTIVE_S)
        if not claimed and exclusive:
            return None
        client.set(_key(run, "meta"), json.dumps(meta), ex=KEEP_S)
    finally:
        client.close()
    with bridge.celery_client(config.lumina) as app:
        for number, part in enumerate(parts):
            app.send_task(bridge.TASK_CHUNK, kwargs={"run": run, "catalog_id": catalog_id, "chunk": number,
                                                     "paths": part}, queue=config.lumina.queue)
    log.info("lumina-dedup: %d photos of catalog %s sent as %d chunks (run %s)", len(paths), catalog_id,
             len(parts), run)
    return meta


def _meta(client: Any, run: str) -> dict[str, Any] | None:
    raw = client.get(_key(run, "meta"))
    return None if raw is None else dict(json.loads(raw))


def still_to_hash(catalog: PostgresCatalog, paths: list[str], version: int) -> list[str]:
    """The paths whose stored codes are missing, of another version, or of an older file (size
    or modification time differ): the engine's rule, so a chunk run again skips what it stored."""
    stored = catalog.stored_files(paths)
    return [p for p in paths if (prior := stored.get(p)) is None or not prior.still_current(p, version)]


def hash_into_catalog(catalog_id: str, paths: list[str], config: Config) -> tuple[int, list[FileError]]:
    """Hash ``paths`` and store their codes without the catalog's lock (other chunks write
    beside us); returns (photos hashed and stored, files that failed)."""
    url = bridge.catalog_url(catalog_id, config.lumina)
    with PostgresCatalog(url, config.tags, settings=config.lumina, lock=False) as catalog:
        todo = still_to_hash(catalog, paths, config.hash_version())
        files, errors = discover(todo, config.extensions, config.follow_symlinks, utf8_only=True)
        hashed = 0
        for records, failed in hash_paths(files, config):
            errors += failed
            if records:
                catalog.upsert_images(records)  # one statement, one transaction per batch
                hashed += len(records)
                crash_point("inside-chunk")  # test hook (lumina_plugin._faults): a batch stored, more to come
    return hashed, errors


def run_chunk(run: str, catalog_id: str, chunk: int, paths: list[str], worker: str = "") -> dict[str, Any]:
    """One chunk: hash and store, mark it done, publish progress, and send the grouping step if
    it was the last. A chunk already marked (a redelivery) only re-checks the last step."""
    config = bridge.load_config()
    client = _redis(config)
    try:
        meta = _meta(client, run)
        if meta is None:
            log.warning("lumina-dedup: chunk %d of an unknown or expired run %s ignored", chunk, run)
            return {"run": run, "chunk": chunk, "skipped": "unknown run"}
        done_key = _key(run, "done")
        if not client.hexists(done_key, str(chunk)):
            client.rpush(_key(run, "attempts"), json.dumps({"chunk": chunk, "worker": worker, "pid": os.getpid()}))
            client.expire(_key(run, "attempts"), KEEP_S)
            mark: dict[str, Any] = {"worker": worker, "images": len(paths)}
            try:
                hashed, errors = hash_into_catalog(catalog_id, paths, config)
                mark.update(hashed=hashed, errors=len(errors))
            except Exception as exc:  # counted done: the grouping step hashes what is left
                log.exception("lumina-dedup: chunk %d of run %s failed; the grouping step hashes its photos", chunk, run)
                mark.update(hashed=0, failed=f"{type(exc).__name__}: {exc}")
            pipe = client.pipeline(transaction=True)
            pipe.hset(done_key, str(chunk), json.dumps(mark))
            pipe.expire(done_key, KEEP_S)
            pipe.expire(_active_key(catalog_id), ACTIVE_S)
            pipe.execute()
        marks = [json.loads(v) for v in client.hvals(done_key)]
    finally:
        client.close()
    done = sum(int(m.get("images", 0)) for m in marks)
    if meta["kind"] == "find" and meta["job_id"]:
        report_progress(config, meta, len(marks), done)
    if len(marks) >= meta["chunks"]:
        with bridge.celery_client(config.lumina) as app:
            app.send_task(bridge.TASK_GROUP, kwargs={"run": run}, queue=config.lumina.queue)
    return {"run": run, "chunk": chunk, "chunks_done": len(marks), "images_done": done}


#: Publish a chunk's progress only if it is ahead of what was published: two workers finish
#: chunks at once, and their messages (counted, then sent) could otherwise arrive out of order
#: and move Lumina's bar backwards. Compare, remember and publish in one step, in Redis.
_PUBLISH_IF_AHEAD = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= seen then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[2])
redis.call('SETEX', KEYS[3], 3600, ARGV[2])
return 1
"""


def report_progress(config: Config, meta: dict[str, Any], chunks_done: int, images_done: int) -> None:
    """A Find Duplicates job's progress as chunks finish: its row (``result.progress``; only
    while it runs, so a late chunk never reopens an ended job, and only forward) and its Redis
    channel (only forward too: :data:`_PUBLISH_IF_AHEAD`)."""
    total, job_id = int(meta["images"]), str(meta["job_id"])
    message = f"lumina-dedup: hashed {images_done}/{total} photos ({chunks_done}/{meta['chunks']} chunks)"
    progress = {"current": images_done, "total": total, "percent": int(images_done * 100 / max(1, total)),
                "phase": "hashing", "message": message, "chunks_done": chunks_done, "chunks": meta["chunks"]}
    with bridge.connect(config.lumina) as conn:
        conn.execute("UPDATE jobs SET status = 'PROGRESS', result = %s::jsonb, updated_at = %s WHERE id = %s"
                     " AND status IN ('PENDING', 'STARTED', 'PROGRESS')"
                     " AND COALESCE((result->'progress'->>'chunks_done')::int, -1) < %s",
                     (json.dumps({"status": "running", "progress": progress, "fanout_run": meta["run"]}),
                      now(), job_id, chunks_done))
    text = json.dumps(bridge.Progress.payload(job_id, "hashing", images_done, total, message))
    client = _redis(config)
    try:
        client.eval(_PUBLISH_IF_AHEAD, 3, _key(meta["run"], "published"), f"job:{job_id}:progress",
                    f"job:{job_id}:last_progress", images_done, text, KEEP_S)
    except Exception as exc:  # progress is best effort: Redis down must not fail the chunk
        log.warning("progress for job %s not published: %s", job_id, exc)
    finally:
        client.close()


def run_group(run: str) -> dict[str, Any]:
    """The grouping step after the last chunk: Find Duplicates over the whole catalog under its
    lock (photos the chunks left unhashed are hashed here), then a Find Duplicates job ends
    SUCCESS with the result Lumina's panel reads. Run twice (a redelivery), it ends at once."""
    config = bridge.load_config()
    client = _redis(config)
    try:
        meta = _meta(client, run)
        marks = [json.loads(v) for v in client.hvals(_key(run, "done"))]
    finally:
        client.close()
    if meta is None or meta.get("finished"):
        return {"run": run, "skipped": "finished" if meta else "unknown run"}
    catalog_id, job_id = str(meta["catalog_id"]), meta["job_id"]
    find = meta["kind"] == "find" and bool(job_id)
    with bridge.connect(config.lumina) as conn:
        progress = bridge.Progress(bridge.redis_url(config.lumina), job_id) if find else None

        def group() -> Any:
            with bridge.make_host(catalog_id, config, progress) as host:
                return host.run_action(bridge.FIND_DUPLICATES, paths=[], job_id=job_id)

        def waiting(why: str) -> None:
            if progress is not None:
                progress("waiting", 0, 1, f"lumina-dedup: waiting for the catalog: {why}")
        try:
            report = bridge.wait_for_catalog(group, waiting, bridge.FIND_LOCK_WAIT_S)
            total = conn.execute("SELECT count(*) FROM images WHERE catalog_id = %s", (catalog_id,)).fetchone()[0]
            result = {**bridge.job_result(report, catalog_id, total), "fanout": fanout_summary(meta, marks)}
        except Exception as exc:
            log.exception("lumina-dedup: the grouping step of run %s failed", run)
            if find and progress is not None:
                bridge.update_job(conn, job_id, "FAILURE", {"status": "failed", "error": str(exc)},
                                  f"{type(exc).__name__}: {exc}")
                progress.finish("FAILURE", error=str(exc))
            raise
        if find and progress is not None:
            bridge.update_job(conn, job_id, "SUCCESS", result)
            progress.finish("SUCCESS", result)
    _finished(config, meta)
    return result


def fanout_summary(meta: dict[str, Any], marks: list[dict[str, Any]]) -> dict[str, Any]:
    """What the fan-out did, for the job's result: chunks, photos hashed, workers that took part."""
    return {"run": meta["run"], "chunks": meta["chunks"], "images": meta["images"],
            "hashed": sum(int(m.get("hashed", 0)) for m in marks),
            "failed_chunks": sum(1 for m in marks if "failed" in m),
            "workers": sorted({str(m.get("worker", "")) for m in marks})}


def _finished(config: Config, meta: dict[str, Any]) -> None:
    client = _redis(config)
    try:
        client.set(_key(meta["run"], "meta"), json.dumps({**meta, "finished": True}), ex=KEEP_S)
        key = _active_key(meta["catalog_id"])
        if (client.get(key) or b"").decode() == meta["run"]:
            client.delete(key)
    finally:
        client.close()


def attempts(config: Config, run: str) -> list[dict[str, Any]]:
    """Every start of a chunk of the run, in order: which worker took which chunk (a redelivered
    chunk appears twice). For tests and ``-v`` logs."""
    client = _redis(config)
    try:
        return [json.loads(v) for v in client.lrange(_key(run, "attempts"), 0, -1)]
    finally:
        client.close()


def marks(config: Config, run: str) -> dict[int, dict[str, Any]]:
    """Each done chunk's mark: the worker that finished it, photos hashed, errors."""
    client = _redis(config)
    try:
        return {int(k): json.loads(v) for k, v in client.hgetall(_key(run, "done")).items()}
    finally:
        client.close()
