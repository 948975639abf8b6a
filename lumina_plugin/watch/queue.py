"""The durable queue: operations the watcher decided on, kept until their batch is committed.

One SQLite file beside the catalog, ``<catalog>.watch-queue.db``. Every operation is
written here (``pending``) before it joins a batch, and marked ``acked`` only after the
host event that applies it has returned, that is after the catalog committed its
hashes and tags. A watcher killed at any instant therefore finds on restart every
operation it had not finished, in order, and replays them. Replaying is safe because
the engine skips a file whose size and mtime match its catalog row (no re-hash), a
remove of a forgotten path does nothing, and a move of a path no longer catalogued
does nothing: delivery is at least once, the effect exactly once.

WAL with ``synchronous=NORMAL``: a committed row survives the process being killed
(it is in the OS's page cache); after a power cut the last rows may be lost, and the
start-up scan finds those files again. A lock file beside the queue keeps a second
watcher off the same catalog.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .._lockfile import LockFile, LockHeld
from ..catalog.locator import is_database_url
from .batcher import Op
from .errors import WatchError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('import', 'remove', 'move')),
    path TEXT NOT NULL,
    dest TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'acked')),
    enqueued_at REAL NOT NULL,
    acked_at REAL,
    batch INTEGER
);
CREATE INDEX IF NOT EXISTS ops_state ON ops (state, seq);
"""

_CHUNK = 500


def queue_path(catalog: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the queue of the watcher of ``catalog`` lives: ``<catalog>.watch-queue.db``
    beside a SQLite catalog; for a database (``postgresql://...``) a file named after
    the URL in ``state_dir``."""
    text = os.fspath(catalog)
    if is_database_url(text):
        if state_dir is None:
            raise WatchError(f"a watcher of {text.split('://')[0]}:// catalogs needs a folder for its queue file")
        return Path(state_dir) / f"watch-queue-{hashlib.sha256(text.encode()).hexdigest()[:16]}.db"
    path = Path(text)
    return path.with_name(path.name + ".watch-queue.db")


class DurableQueue:
    """Pending operations in a SQLite file. One owner at a time; not thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise WatchError(f"{self.path}: not a watch queue ({exc})") from None

    def _take_lock(self) -> LockFile:
        try:
            return LockFile(self.path.with_name(self.path.name + ".lock"))
        except LockHeld as held:
            raise WatchError(f"{self.path}: another watcher (pid {held.holder}) is already watching "
                             "for this catalog") from None

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None  # type: ignore[assignment]

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None  # type: ignore[assignment]
        self._release_lock()

    def __enter__(self) -> DurableQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations -----------------------------------------------------------------------
    def put(self, ops: Sequence[Op]) -> list[Op]:
        """Write ``ops`` as pending, in one transaction; returns them with their ``seq``."""
        if not ops:
            return []
        now = time.time()
        out: list[Op] = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                cur = self.conn.execute("INSERT INTO ops (kind, path, dest, enqueued_at) VALUES (?,?,?,?)",
                                        (op.kind, op.path, op.dest, now))
                out.append(Op(op.kind, op.path, op.dest, int(cur.lastrowid or 0)))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return out

    def drop(self, ops: Iterable[Op]) -> None:
        """Forget pending operations that later ones made pointless."""
        self._update("DELETE FROM ops WHERE state='pending' AND seq IN ({})", (), ops)

    def ack(self, ops: Iterable[Op], batch: int) -> None:
        """Mark operations done: their batch's changes are committed in the catalog."""
        self._update("UPDATE ops SET state='acked', acked_at=?, batch=? WHERE seq IN ({})",
                     (time.time(), batch), ops)

    def _update(self, sql: str, params: tuple, ops: Iterable[Op]) -> None:
        seqs = [op.seq for op in ops]
        if not seqs:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(seqs), _CHUNK):
                chunk = seqs[start:start + _CHUNK]
                self.conn.execute(sql.format(",".join("?" * len(chunk))), (*params, *chunk))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def pending(self) -> list[Op]:
        """Every operation not acknowledged yet, oldest first."""
        return [Op(kind, path, dest, seq) for seq, kind, path, dest in self.conn.execute(
            "SELECT seq, kind, path, dest FROM ops WHERE state='pending' ORDER BY seq")]

    def counts(self) -> dict[str, int]:
        """How many operations are pending and acknowledged."""
        out = {"pending": 0, "acked": 0}
        out.update(dict(self.conn.execute("SELECT state, COUNT(*) FROM ops GROUP BY state").fetchall()))
        return out

    def prune(self, older_than: float = 86400.0) -> int:
        """Delete acknowledged rows older than ``older_than`` seconds (kept for diagnosis)."""
        cur = self.conn.execute("DELETE FROM ops WHERE state='acked' AND acked_at < ?",
                                (time.time() - older_than,))
        return cur.rowcount
