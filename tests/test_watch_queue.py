"""The durable queue file: pending until acknowledged, across process restarts; one owner."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lumina_plugin.watch.batcher import IMPORT, MOVE, REMOVE, Op
from lumina_plugin.watch.errors import WatchError
from lumina_plugin.watch.queue import DurableQueue, queue_path


def test_queue_lives_beside_the_catalog(tmp_path: Path) -> None:
    assert queue_path(tmp_path / "cat.db") == tmp_path / "cat.db.watch-queue.db"
    url = "postgresql://lumina@db/lumina?catalog=1"
    one, two = queue_path(url, tmp_path), queue_path(url.replace("=1", "=2"), tmp_path)
    assert one.parent == tmp_path and one.name.startswith("watch-queue-") and one != two
    with pytest.raises(WatchError, match="postgresql://"):
        queue_path(url)


def test_pending_survives_reopen_until_acked(tmp_path: Path) -> None:
    path = queue_path(tmp_path / "cat.db")
    with DurableQueue(path) as q:
        stored = q.put([Op(IMPORT, "/p/a.jpg"), Op(MOVE, "/p/b.jpg", "/p/c.jpg"), Op(REMOVE, "/p/d.jpg")])
        assert [o.seq for o in stored] == sorted(o.seq for o in stored) and stored[0].seq > 0
        q.ack(stored[:1], batch=1)
        q.drop(stored[2:])
    with DurableQueue(path) as q:
        assert q.pending() == [stored[1]]
        assert q.counts() == {"pending": 1, "acked": 1}
        assert q.prune(older_than=0.0) == 1 and q.counts()["acked"] == 0


def test_put_is_durable_once_it_returns_even_if_the_process_dies(tmp_path: Path) -> None:
    path = queue_path(tmp_path / "cat.db")
    code = ("import os, sys; from lumina_plugin.watch.queue import DurableQueue;"
            "from lumina_plugin.watch.batcher import Op;"
            f"q = DurableQueue({str(path)!r}); q.put([Op('import', '/p/x.jpg')]); os._exit(9)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    with DurableQueue(path) as q:
        assert [o.path for o in q.pending()] == ["/p/x.jpg"]


def test_a_second_watcher_on_the_same_catalog_is_refused(tmp_path: Path) -> None:
    path = queue_path(tmp_path / "cat.db")
    with DurableQueue(path):
        with pytest.raises(WatchError, match="another watcher"):
            DurableQueue(path)
    DurableQueue(path).close()  # free again


def test_a_file_that_is_not_a_queue_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WatchError, match="junk.db: not a watch queue"):
        DurableQueue(path)


def test_rows_are_plain_sqlite(tmp_path: Path) -> None:
    path = queue_path(tmp_path / "cat.db")
    with DurableQueue(path) as q:
        q.put([Op(IMPORT, "/p/a.jpg")])
    rows = sqlite3.connect(path).execute("SELECT kind, path, state FROM ops").fetchall()
    assert rows == [("import", "/p/a.jpg", "pending")]
