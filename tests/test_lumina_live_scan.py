"""A scan's photos are tagged while Lumina stores them, not after its batch ends (issue 20,
item 7). A real Celery worker runs the Lumina-shaped app (``test_lumina_celery_app``) with our
module included, on the machine's PostgreSQL and Redis; its ``scan_worker`` stores rows one by
one over time, as Lumina's does, in a single batch (Lumina's are up to 5,000 files).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter
from test_lumina_bridge import wait_for, worker_env  # noqa: F401  (the real worker)
from test_lumina_support import (  # noqa: F401
    REDIS_URL,
    create_catalog,
    expected_groups_in_lumina,
    now,
    pg_database,
    query,
    require_bridge_services,
    sample_photos,
)

#: Catches a hang, not a slow machine.
HANG_S = 90


@pytest.fixture(scope="module", autouse=True)
def services() -> None:
    require_bridge_services()


def start_scan(url: str, queue: str, cid: str, paths: list[str], **test: Any) -> str:
    """A scan job of Lumina's shape (PROGRESS), its one batch, and its ``scan_worker`` sent;
    ``test``: the stand-in's pace and hold (see ``test_lumina_celery_app``). Returns the job id."""
    from celery import Celery
    job, bid = str(uuid.uuid4()), str(uuid.uuid4())
    query(url, "INSERT INTO jobs (id, catalog_id, job_type, status, parameters, created_at, updated_at)"
               " VALUES (%s, %s, 'scan', 'PROGRESS', %s::jsonb, %s, %s) RETURNING 1",
          (job, cid, json.dumps(test), now(), now()))
    query(url, "INSERT INTO job_batches (id, parent_job_id, catalog_id, batch_number, total_batches, job_type,"
               " work_items, items_count) VALUES (%s, %s, %s, 0, 1, 'scan', %s::jsonb, %s) RETURNING 1",
          (bid, job, cid, json.dumps(paths), len(paths)))
    client = Celery("client", broker=REDIS_URL)
    client.send_task("scan_worker", kwargs={"catalog_id": cid, "batch_id": bid, "parent_job_id": job}, queue=queue)
    client.close()
    return job


def groups_in(url: str, cid: str) -> set[frozenset[str]]:
    """Our groups in one catalog, as sets of paths (written with their tags, in one transaction)."""
    if query(url, "SELECT to_regclass('lumina_dedup_groups')")[0][0] is None:
        return set()
    rows = query(url, "SELECT g.id, k.source_path FROM lumina_dedup_groups g JOIN images k ON k.id = g.keeper_id"
                      " WHERE g.catalog_id = %s UNION ALL SELECT g.id, i.source_path FROM lumina_dedup_groups g"
                      " JOIN lumina_dedup_members m ON m.group_id = g.id JOIN images i ON i.id = m.image_id"
                      " WHERE g.catalog_id = %s", (cid, cid))
    groups: dict[int, set[str]] = {}
    for gid, path in rows:
        groups.setdefault(gid, set()).add(path)
    return {frozenset(g) for g in groups.values()}


def contents(paths: list[str]) -> int:
    """How many rows Lumina stores for these files: one per distinct content (SHA-256)."""
    return len({hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths})


def stored(url: str, cid: str) -> int:
    return int(query(url, "SELECT count(*) FROM images WHERE catalog_id = %s", (cid,))[0][0])


def finish_scan(url: str, queue: str, cid: str, job: str, paths: list[str]) -> float:
    """Lumina's ``scan_finalizer`` (the chord's callback) once every row is stored; returns the
    monotonic time at which the job was SUCCESS."""
    from celery import Celery
    rows = contents(paths)
    wait_for(lambda: stored(url, cid) == rows, HANG_S)
    client = Celery("client", broker=REDIS_URL)
    client.send_task("scan_finalizer", args=[[{"processed_count": len(paths)}]],
                     kwargs={"catalog_id": cid, "parent_job_id": job}, queue=queue)
    client.close()
    wait_for(lambda: query(url, "SELECT status FROM jobs WHERE id = %s", (job,))[0][0] == "SUCCESS", HANG_S)
    return time.monotonic()


@pytest.mark.slow
def test_rows_are_tagged_while_the_scan_still_runs(worker_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    """The scan is held open after half its rows: their duplicates are tagged meanwhile (before,
    nothing was hashed until the whole batch ended)."""
    url, queue = worker_env["LUMINA_TEST_DB"], worker_env["LUMINA_TEST_QUEUE"]
    cid = create_catalog(url, "Held")
    everything = sorted(str(p) for p in sample_photos())
    # The batch's first half holds three whole groups of sample_catalog/; the scan is held after it.
    first = [p for g in sorted(sorted(g) for g in expected_groups_in_lumina(everything))[:3] for p in g]
    photos = first + [p for p in everything if p not in first]
    half = photos[:len(photos) // 2]
    gate = tmp_path / "gate"
    job = start_scan(url, queue, cid, photos, test_seconds_per_file=0.0, test_hold_at=len(half),
                     test_gate=str(gate))
    wait_for(lambda: stored(url, cid) == contents(half), HANG_S)
    kept_half = [r[0] for r in query(url, "SELECT source_path FROM images WHERE catalog_id = %s", (cid,))]
    early = expected_groups_in_lumina(kept_half)
    assert len(early) >= 3
    wait_for(lambda: groups_in(url, cid) == early, HANG_S)  # tagged while the scan is held
    assert query(url, "SELECT status FROM jobs WHERE id = %s", (job,))[0][0] == "PROGRESS"
    assert stored(url, cid) == len(kept_half)
    gate.touch()
    ended = finish_scan(url, queue, cid, job, photos)
    kept = [r[0] for r in query(url, "SELECT source_path FROM images WHERE catalog_id = %s", (cid,))]
    wait_for(lambda: groups_in(url, cid) == expected_groups_in_lumina(kept), HANG_S)
    print(f"held scan: every group tagged {time.monotonic() - ended:.2f} s after the job's SUCCESS was seen")


def make_photos(folder: Path, originals: int) -> set[frozenset[str]]:
    """``originals`` distinct photos (smoothed noise, 320x240) and one copy of each made smaller
    and recompressed; returns the expected groups (each original with its copy)."""
    rng = random.Random(7)
    folder.mkdir()
    groups = set()
    for i in range(originals):
        noise = Image.frombytes("RGB", (40, 30), bytes(rng.getrandbits(8) for _ in range(40 * 30 * 3)))
        photo = noise.resize((320, 240), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
        a, b = folder / f"photo_{i:04d}.jpg", folder / f"photo_{i:04d}_small.jpg"
        photo.save(a, quality=92)
        photo.resize((240, 180), Image.Resampling.LANCZOS).save(b, quality=75)
        groups.add(frozenset({str(a), str(b)}))
    return groups


@pytest.mark.slow
def test_400_photo_scan_is_tagged_as_it_runs(worker_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    """400 photos (200 and a copy of each) stored over about 20 s: every pair is tagged, most of
    them before the scan ends. Prints how long after the job's end the last tag landed."""
    url, queue = worker_env["LUMINA_TEST_DB"], worker_env["LUMINA_TEST_QUEUE"]
    cid = create_catalog(url, "Four hundred")
    expected = make_photos(tmp_path / "photos", 200)
    paths = sorted(p for g in expected for p in g)
    job = start_scan(url, queue, cid, paths, test_seconds_per_file=0.05)
    ended = finish_scan(url, queue, cid, job, paths)
    at_end = len(groups_in(url, cid))
    wait_for(lambda: groups_in(url, cid) == expected, HANG_S)
    latency = time.monotonic() - ended
    runs = query(url, "SELECT count(*) FROM lumina_dedup_runs WHERE job_id = %s AND kind = 'import'", (job,))[0][0]
    assert runs >= 2  # hashed in passes while the scan ran, not in one batch at its end
    print(f"400-photo scan: {at_end} of {len(expected)} groups tagged when the job's SUCCESS was seen, "
          f"the last {latency:.2f} s after it; {runs} import passes")
