"""How the SQLite catalog's file is opened, by what the command will do with it.

- ``create`` (import, find-duplicates, watch): the catalog is made where it does not exist yet;
- ``write`` (undo, decide): it must exist, so that a mistyped ``--catalog`` is refused rather
  than made into a new, empty catalog;
- ``read`` (review, decide list, calibrate): it must exist, and nothing is written anywhere:
  the lock file is taken shared where it exists (never created), the database is opened
  read-only. So a catalog on a read-only disk, a snapshot or a copy on a DVD can be read;
- ``preview`` (find-duplicates --dry-run): as ``read``, and where there is no catalog yet, an
  empty one in memory: a first dry run shows what a first run would do, and creates nothing.

A command that writes, on a catalog it cannot write (a read-only file system, a folder or file
without permission), fails at once with one line, before any work is done.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from .._lockfile import LockFile, LockHeld
from .interface import CatalogError, CatalogLockedError
from .sqlite_schema import apply_schema, is_current

#: What a command does with the catalog (see the module's notes).
MODES = ("create", "write", "read", "preview")
#: Modes that write nothing.
READING = ("read", "preview")
#: What commands that only read it are, for the messages.
READERS = "review, decide list, calibrate, find-duplicates --dry-run"


def missing_error(path: Path) -> CatalogError:
    return CatalogError(f"{path}: no catalog there (check --catalog; import or find-duplicates makes one)")


def read_only_error(path: Path, reason: str) -> CatalogError:
    return CatalogError(f"{path}: the catalog is read-only ({reason}); commands that only read it still work ({READERS})")


def _reason(folder: Path) -> str:
    """Why a place cannot be written, in the words of its errno."""
    try:
        read_only_fs = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_fs = False
    return os.strerror(errno.EROFS if read_only_fs else errno.EACCES)


def writable(path: Path) -> bool:
    """Whether this process may write the catalog file and its folder (where SQLite keeps its
    ``-wal`` and ``-shm`` files, and the lock file and the index live). ``os.access`` says False
    on a read-only file system even to root."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def prepare(path: Path, mode: str) -> None:
    """Before anything is opened: refuse a catalog that does not exist (``write``, ``read``) or
    that cannot be written (``create``, ``write``); make its folder (``create``)."""
    if mode not in MODES:
        raise ValueError(f"catalog mode is one of {MODES}, not {mode!r}")
    if not path.exists():
        if mode == "preview":
            return
        if mode != "create":
            raise missing_error(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"{path}: cannot create the catalog there ({exc.strerror}: {exc.filename}); "
                               "name another place with --catalog or $LUMINA_DEDUP_CATALOG") from None
        if not writable(path):
            raise CatalogError(f"{path}: cannot create the catalog there ({_reason(path.parent)}); "
                               "name another place with --catalog or $LUMINA_DEDUP_CATALOG")
    elif mode not in READING and not writable(path):
        raise read_only_error(path, _reason(path.parent))


def take_lock(path: Path, timeout: float, mode: str) -> LockFile | None:
    """The catalog's lock file: exclusive for a run that writes; shared for one that reads, or
    none where there is no lock file to open (a catalog copied without it: SQLite still gives
    the reader a consistent view, and a reader writes nothing another run could trip on)."""
    lock = path.with_name(path.name + ".lock")
    try:
        if mode in READING:
            try:
                return LockFile(lock, timeout, shared=True)
            except OSError:
                return None
        return LockFile(lock, timeout)
    except LockHeld as held:
        raise CatalogLockedError(f"{path}: catalog is in use by another process (pid {held.holder}); "
                                 "try again when it has finished") from None
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise read_only_error(path, exc.strerror or str(exc)) from None
        raise


def connect(path: Path, timeout: float, mode: str) -> sqlite3.Connection:
    """An autocommit connection: read-write with the schema brought up to date, or (``read``,
    ``preview``) one that cannot write; ``preview`` without a catalog: an empty one in memory."""
    if mode == "preview" and not path.exists():
        conn = sqlite3.connect(":memory:", isolation_level=None)
        apply_schema(conn)
        return conn
    if mode in READING:
        return _connect_read_only(path, timeout)
    conn = sqlite3.connect(path, isolation_level=None, timeout=timeout)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        apply_schema(conn)  # an older catalog gains the columns it lacks
    except BaseException:
        conn.close()
        raise
    return conn


def _uri(path: Path, query: str) -> str:
    return "file:" + quote(os.fsencode(path.absolute())) + "?" + query


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """Where the place can be written, a read-write connection that refuses writes
    (``query_only``): the last one to close removes the ``-wal``/``-shm`` files it opened, so
    nothing is left behind. (A ``mode=ro`` one would leave them.) Elsewhere ``mode=ro``, and
    where SQLite cannot open that (a WAL database whose ``-shm`` cannot be made: a read-only
    disk, a folder without write permission) ``immutable=1``: nothing changes the file there
    (no lumina-dedup run while this one holds the shared lock; no one else on a read-only disk)."""
    if writable(path):
        conn = sqlite3.connect(_uri(path, "mode=rw"), uri=True, isolation_level=None, timeout=timeout)
        try:
            if not is_current(conn):  # an older catalog is brought up to date, as a writer would
                apply_schema(conn)
            conn.execute("PRAGMA query_only=ON")
        except BaseException:
            conn.close()
            raise
        return conn
    for query in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(_uri(path, query), uri=True, isolation_level=None, timeout=timeout)
        try:
            current = is_current(conn)
        except sqlite3.OperationalError:
            conn.close()
            if query == "mode=ro":  # "unable to open", or (no permission) "attempt to write a readonly database"
                continue
            raise
        except BaseException:
            conn.close()
            raise
        if not current:
            conn.close()
            raise CatalogError(f"{path}: the catalog was made by an older version and is read-only; "
                               "run a command that writes on a copy that can be written, to bring it up to date")
        return conn
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def foreign_keys_off(conn: sqlite3.Connection) -> Iterator[None]:
    """Foreign keys unchecked for one bulk write whose references are known to hold (the pairs
    of images read in the same transaction), then checked again, whatever happened. Checking
    two image ids per row was 40% of storing a library's pairs (38,380 rows: 0.65 -> 0.37 s).
    SQLite ignores the pragma inside a transaction: there the checks simply stay on."""
    if conn.in_transaction:
        yield
        return
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
