"""A second Lumina catalog of photos another catalog already holds stores nothing; we say so
(issue 20, item 5). On the machine's PostgreSQL (``test_lumina_support``), with two catalogs
over the same files: Lumina's image id is the SHA-256 across all catalogs, so its scan of the
second one inserts no row (``ON CONFLICT (id) DO NOTHING``, as ``scan_as_lumina`` does) while
its job counts every file as added. The check, the listener's log and our scan-finished task
in a real Celery worker must each name the catalog that holds them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_lumina_button import our_worker, use_config  # noqa: F401  (a real Celery worker of ours)
from test_lumina_support import (  # noqa: F401
    REDIS_URL,
    SAMPLE,
    create_catalog,
    lumina_db,
    now,
    pg_database,
    query,
    require_bridge_services,
    scan_as_lumina,
    write_config,
)

from lumina_plugin.config import Config
from lumina_plugin.files import PHOTO_EXTENSIONS

STORED_ELSEWHERE = "stored only in another Lumina catalog"


@pytest.fixture
def two_catalogs(lumina_db: str, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    """Catalog "Family" over photos/ (scanned: its rows stored), then catalog "Family again" over
    the same folder and "Backup" over byte copies of it elsewhere, both scanned after it: Lumina
    stored none of theirs. Each scan has its SUCCESS job with Lumina's ``result.files.added``."""
    photos, backup = tmp_path / "photos", tmp_path / "backup"
    shutil.copytree(SAMPLE, photos, ignore=shutil.ignore_patterns("*.json", "*.md"))
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS)
    backup.mkdir()
    for i, p in enumerate(files):  # flat, renamed: only the bytes are the same
        shutil.copyfile(p, backup / f"copy_{i:03d}{p.suffix}")
    out: dict[str, Any] = {"url": lumina_db, "files": files, "jobs": {}}
    for name, root in (("Family", photos), ("Family again", photos), ("Backup", backup)):
        cid = create_catalog(lumina_db, name, (str(root),))
        job = str(uuid.uuid4())
        started = now()
        added = scan_as_lumina(lumina_db, cid, sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS))
        result = {"status": "completed", "files": {"total": len(files), "processed": len(files),
                                                   "added": len(files), "errors": 0}}
        query(lumina_db, "INSERT INTO jobs (id, catalog_id, job_type, status, result, created_at, updated_at)"
                         " VALUES (%s, %s, 'scan', 'SUCCESS', %s::jsonb, %s, %s) RETURNING 1",
              (job, cid, json.dumps(result), started, now()))
        out[name], out["jobs"][name], out[f"{name} stored"] = cid, job, len(added)
    return out


def check(url: str, cid: str) -> dict[str, Any]:
    import psycopg

    from lumina_plugin.catalog.postgres import split_url
    from lumina_plugin.lumina import elsewhere
    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        return elsewhere.check_catalog(conn, cid, PHOTO_EXTENSIONS)


def test_check_names_the_catalog_that_holds_the_photos(two_catalogs: dict[str, Any]) -> None:
    from lumina_plugin.lumina.elsewhere import describe
    url, files = two_catalogs["url"], two_catalogs["files"]
    first = two_catalogs["Family stored"]
    assert first == 38 < len(files) and two_catalogs["Family again stored"] == two_catalogs["Backup stored"] == 0
    # The first catalog: every photo stored, bar the byte copies Lumina keeps one row of.
    family = check(url, two_catalogs["Family"])
    assert family["stored_here"] == first and family["elsewhere"]["count"] == 0
    assert family["copies_here"] == len(files) - first and family["not_stored"] == 0
    # The same folder again, and byte copies under other names: all held by "Family".
    for name in ("Family again", "Backup"):
        found = check(url, two_catalogs[name])
        assert found["files"] == len(files) and found["stored_here"] == 0, found
        assert found["elsewhere"]["count"] == len(files) and found["copies_here"] == 0, found
        assert found["elsewhere"]["catalogs"] == [{"id": two_catalogs["Family"], "name": "Family", "count": len(files)}]
        words = describe(found)
        assert STORED_ELSEWHERE in words[0] and "Family (" in words[0] and f"{len(files)} of the {len(files)}" in words[0]
    assert not any(STORED_ELSEWHERE in line for line in describe(family))


def test_listener_logs_a_scan_that_stored_nothing(two_catalogs: dict[str, Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from lumina_plugin.lumina.listener import Listener
    url = two_catalogs["url"]
    write_config(tmp_path / "config", url=url, redis_url=REDIS_URL, catalog="Family again")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with caplog.at_level(logging.WARNING, logger="lumina_plugin.lumina"):
        Listener(Config.load(), ["Family", "Family again"])._tick_safely()  # one pass, as run() makes it
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # One warning, for the catalog that stored nothing; "Family" stored all but its byte copies.
    assert [w for w in warned if "catalog Family:" in w] == []
    assert len([w for w in warned if STORED_ELSEWHERE in w]) == 1
    line = next(w for w in warned if STORED_ELSEWHERE in w)
    assert line.startswith("catalog Family again:") and "Family (" in line
    assert f"{len(two_catalogs['files'])} added, 0 stored" in line


@pytest.mark.slow
def test_scan_finished_task_in_a_worker_logs_it(two_catalogs: dict[str, Any], our_worker: dict[str, str],  # noqa: F811
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Lumina's worker with our module sends our scan-finished task after ``scan_finalizer``; a
    real worker of ours runs it and its log says where the photos are."""
    require_bridge_services()
    from lumina_plugin.lumina import bridge
    url = two_catalogs["url"]
    use_config(monkeypatch, Path(our_worker["config"]), url, our_worker["queue"])
    with bridge.celery_client(Config.load().lumina) as app:
        app.send_task(bridge.TASK_SCAN, kwargs={"catalog_id": two_catalogs["Backup"],
                                                "job_id": two_catalogs["jobs"]["Backup"]}, queue=our_worker["queue"])
    log = Path(our_worker["log"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and STORED_ELSEWHERE not in log.read_text():
        time.sleep(0.2)
    line = next(x for x in log.read_text().splitlines() if STORED_ELSEWHERE in x)
    assert "catalog Backup:" in line and "Family (" in line and "added, 0 stored" in line


def test_status_says_where_the_photos_are(two_catalogs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`lumina-dedup lumina status` (text and --json) on the catalog that stored nothing."""
    from lumina_plugin.cli import main
    url, files = two_catalogs["url"], two_catalogs["files"]
    assert main(["lumina", "status", "--url", url, "--catalog", "Family again", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["elsewhere"]["elsewhere"]["count"] == len(files) and status["elsewhere"]["stored_here"] == 0
    assert status["elsewhere"]["elsewhere"]["catalogs"][0]["name"] == "Family"
    assert main(["lumina", "status", "--url", url, "--catalog", "Family again"]) == 0
    text = capsys.readouterr().out
    assert STORED_ELSEWHERE in text and "Family (" in text
    assert main(["lumina", "status", "--url", url, "--catalog", "Family"]) == 0
    assert STORED_ELSEWHERE not in capsys.readouterr().out
