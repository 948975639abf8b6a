"""The embedded catalog: one SQLite file laid out like Lumina's tables.

WAL mode so readers never block the writer; one transaction per batch; a lock file
held for a whole run so two processes never interleave their runs on one catalog. How the
file is opened (to create, write or only read it; a read-only disk) is ``sqlite_open.py``;
how a path that is not valid UTF-8 is stored, ``sqlite_paths.py``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._faults import crash_point
from .._lockfile import LockFile
from ..config import TagNames
from ..hashing.codes import code_to_hex
from ..model import ALGORITHMS, CLASSIC_WORDS, PAIR_COLUMNS, ImageInfo, ImageRecord, StoredFile, taken_timestamp
from .interface import PAIR_DTYPE, CatalogError, CatalogLockedError, check_decision, image_id_for, pair_rows
from .sqlite_open import READING, connect, foreign_keys_off, prepare, read_only_error, take_lock
from .sqlite_paths import from_db, to_db
from .sqlite_tags import SqliteTags
from .tag_store import stamp
from .words import geometry_words, hex_words, split_codes

_CHUNK = 500  # parameters per IN (...) query, under SQLite's limit


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SqliteCatalog(SqliteTags):
    """A catalog in one SQLite file. Use as a context manager or call :meth:`close`.

    Tags, groups, runs and undo: :class:`~lumina_plugin.catalog.sqlite_tags.SqliteTags`
    (``catalog/sqlite_tags.py``, the SQLite dialect of ``catalog/tag_store.py``).

    ``mode`` (see ``sqlite_open.py``): ``create`` makes the catalog where there is none;
    ``write`` needs it to exist; ``read`` needs it to exist and writes nothing, not even the
    lock file or the index (:attr:`read_only`), so it works on a read-only disk; ``preview``
    reads as ``read`` does, or an empty catalog in memory where there is none.
    """

    #: Paths that are not valid UTF-8 are stored as they are (``sqlite_paths.py``).
    lossless_paths = True

    def __init__(self, path: Path, tags: TagNames | None = None, lock_timeout: float = 10.0,
                 mode: str = "create") -> None:
        self.path = Path(path)
        self.index_dir = Path(str(self.path) + ".index")
        self.names = tags or TagNames()
        #: Opened to read only: every write is refused, and the engine's index writes nothing either.
        self.read_only = mode in READING
        prepare(self.path, mode)
        self._lock_fh: LockFile | None = take_lock(self.path, lock_timeout, mode)
        try:
            self.conn = connect(self.path, lock_timeout, mode)
            self.catalog_id = self._ensure_catalog()
        except sqlite3.DatabaseError as exc:
            self.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise locked_error(self.path) from None
            if "readonly" in str(exc):  # not foreseen by sqlite_open.writable (a file made read-only meanwhile)
                raise read_only_error(self.path, str(exc)) from None
            raise CatalogError(f"{self.path}: not a usable catalog ({exc})") from None
        except BaseException:
            self.close()
            raise

    # -- process lock ---------------------------------------------------------------
    def _release_lock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.release()
            self._lock_fh = None

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None  # type: ignore[assignment]
        self._release_lock()

    def __enter__(self) -> SqliteCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------
    def _transaction(self) -> _Transaction:
        if self.read_only:  # every write goes through a transaction: none on a catalog opened to read
            raise read_only_error(self.path, "opened to read only")
        return _Transaction(self.conn, self.path)

    def _ensure_catalog(self) -> str:
        row = self.conn.execute("SELECT id FROM catalogs ORDER BY created_at LIMIT 1").fetchone()
        if row:
            return row[0]
        if self.read_only:  # a catalog never written to: nothing in it to read
            return ""
        cid = str(uuid.uuid4())
        with self._transaction():
            self.conn.execute(
                "INSERT INTO catalogs (id, name, source_directories, created_at, updated_at)"
                " VALUES (?, ?, '[]', ?, ?)", (cid, self.path.stem, stamp(), stamp()))
        return cid

    def _next_index_ids(self, n: int) -> list[int]:
        # Never reused, even after deletions, so index tombstones can't hit a new photo.
        row = self.conn.execute("SELECT value FROM dedup_meta WHERE key='next_index_id'").fetchone()
        start = int(row[0]) if row else 1
        self.conn.execute("INSERT INTO dedup_meta (key, value) VALUES ('next_index_id', ?)"
                          " ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(start + n),))
        return list(range(start, start + n))

    # -- images ---------------------------------------------------------------------
    def stored_files(self, paths: Sequence[str]) -> dict[str, StoredFile]:
        found: dict[str, StoredFile] = {}
        for chunk in _chunks([to_db(p) for p in paths]):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    f"SELECT source_path, id, index_id, size_bytes, mtime_ns, hash_version FROM images"
                    f" WHERE catalog_id=? AND source_path IN ({marks})", (self.catalog_id, *chunk)):
                found[from_db(row[0])] = StoredFile(row[1], row[2], row[3], row[4], row[5])
        return found

    def new_image_id(self, path: str) -> str:
        """The id a new row at ``path`` gets: per path, see :func:`.interface.image_id_for`."""
        return image_id_for(path)

    def unhashed_paths(self, hash_version: int, limit: int | None = None) -> list[str]:
        """Catalogued files without hashes of this version (none here: rows come with hashes)."""
        return [from_db(r[0]) for r in self.conn.execute(
            "SELECT source_path FROM images WHERE catalog_id=? AND (hash_version IS NULL OR hash_version<>?)"
            " ORDER BY source_path LIMIT ?", (self.catalog_id, hash_version, -1 if limit is None else limit))]

    def upsert_images(self, records: Sequence[ImageRecord]) -> list[StoredFile]:
        """Insert or update one row per path, in one transaction; returns the rows' ids."""
        if not records:
            return []
        now = stamp()
        out: list[StoredFile] = []
        with self._transaction():
            existing = self.stored_files([r.path for r in records])
            new_ids = iter(self._next_index_ids(sum(r.path not in existing for r in records)))
            for rec in records:
                meta = json.dumps({
                    "width": rec.width, "height": rec.height, "format": rec.format,
                    "orientation": rec.orientation, "camera": rec.camera, "exif_tags": rec.exif_tags,
                })
                dates = json.dumps({"taken_at": rec.taken_at, "subsec": rec.subsec})
                classic, geometry = split_codes(rec.codes)
                hexes = [code_to_hex(c) for c in classic]
                prior = existing.get(rec.path)
                if prior is None:
                    image_id, index_id = image_id_for(rec.path), next(new_ids)
                    self.conn.execute(
                        "INSERT INTO images (id, catalog_id, index_id, source_path, checksum, size_bytes,"
                        " mtime_ns, dates, metadata, ahash, dhash, phash, whash, geometry, hash_version,"
                        " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (image_id, self.catalog_id, index_id, to_db(rec.path), rec.checksum, rec.size_bytes,
                         rec.mtime_ns, dates, meta, *hexes, geometry, rec.hash_version, now, now))
                else:
                    image_id, index_id = prior.id, prior.index_id
                    self.conn.execute(
                        "UPDATE images SET checksum=?, size_bytes=?, mtime_ns=?, dates=?, metadata=?,"
                        " ahash=?, dhash=?, phash=?, whash=?, geometry=?, hash_version=?, updated_at=? WHERE id=?",
                        (rec.checksum, rec.size_bytes, rec.mtime_ns, dates, meta, *hexes, geometry,
                         rec.hash_version, now, image_id))
                out.append(StoredFile(image_id, index_id, rec.size_bytes, rec.mtime_ns, rec.hash_version))
                crash_point("inside-images")
        return out

    def remove_paths(self, paths: Sequence[str]) -> list[int]:
        """Forget these files (their tags, pairs and memberships go with them)."""
        removed: list[int] = []
        with self._transaction():
            for stored in self.stored_files(paths).values():
                # Groups whose keeper goes are dropped whole; the next grouping rebuilds them.
                self.conn.execute("DELETE FROM images WHERE id=?", (stored.id,))
                removed.append(stored.index_id)
        return removed

    def move_paths(self, moves: Sequence[tuple[str, str]]) -> int:
        """Give catalogued files their new paths (rename, move); returns how many moved.

        A move onto a path that is already catalogued replaces that row: the file there
        now is the moved one.
        """
        moved = 0
        with self._transaction():
            for old, new in moves:
                if old == new or not self.stored_files([old]):
                    continue
                self.conn.execute("DELETE FROM images WHERE catalog_id=? AND source_path=?",
                                  (self.catalog_id, to_db(new)))
                moved += self.conn.execute(
                    "UPDATE images SET source_path=?, updated_at=? WHERE catalog_id=? AND source_path=?",
                    (to_db(new), stamp(), self.catalog_id, to_db(old))).rowcount
        return moved

    def all_codes(self, hash_version: int) -> tuple[np.ndarray, np.ndarray]:
        """(index ids, codes (n, CODE_WORDS)): the classic hashes, then the geometry words (zeros where NULL)."""
        rows = self.conn.execute(
            "SELECT index_id, ahash, dhash, phash, whash, geometry FROM images WHERE catalog_id=?"
            " AND hash_version=? ORDER BY index_id", (self.catalog_id, hash_version)).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        classic = hex_words([h for r in rows for h in r[1:5]]).reshape(-1, CLASSIC_WORDS)
        return ids, np.hstack([classic, geometry_words([r[5] for r in rows])])

    def images(self, index_ids: Iterable[int] | None = None) -> dict[int, ImageInfo]:
        sql = ("SELECT id, index_id, source_path, checksum, size_bytes, metadata, dates FROM images"
               " WHERE catalog_id=?")
        rows: list[tuple] = []
        if index_ids is None:
            rows = self.conn.execute(sql, (self.catalog_id,)).fetchall()
        else:
            wanted = sorted({int(i) for i in index_ids})
            for chunk in _chunks(wanted):
                rows += self.conn.execute(sql + f" AND index_id IN ({','.join('?' * len(chunk))})",
                                          (self.catalog_id, *chunk)).fetchall()
        return {r[1]: _info(r) for r in rows}

    # -- decisions -------------------------------------------------------------------
    def add_decision(self, kind: str, paths: Sequence[str]) -> int:
        """Remember a person's decision about catalogued photos; returns its id."""
        check_decision(kind, paths)
        with self._transaction():
            stored = self.stored_files(paths)
            missing = [p for p in paths if p not in stored]
            if missing:
                raise CatalogError(f"{missing[0]}: not in the catalog (import it first)")
            ids = sorted(stored[p].id for p in paths)
            if kind == "not-duplicate":
                sums = {r[0] for r in self.conn.execute(
                    f"SELECT checksum FROM images WHERE id IN ({','.join('?' * len(ids))})", ids)}
                if len(sums) == 1:
                    raise CatalogError(f"{paths[0]} and {paths[1]} are byte-identical: "
                                       "they are the same file content, so always duplicates")
            if kind == "keeper":
                ids = [ids[0], ids[0]]
            cur = self.conn.execute(
                "INSERT INTO dedup_decisions (catalog_id, kind, image_1, image_2, created_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING", (self.catalog_id, kind, *ids, stamp()))
            row = self.conn.execute(
                "SELECT id FROM dedup_decisions WHERE catalog_id=? AND kind=? AND image_1=? AND image_2=?",
                (self.catalog_id, kind, *ids)).fetchone()
            del cur
        return int(row[0])

    def decisions(self) -> list[dict[str, Any]]:
        """Every decision with the photos' index ids and paths, oldest first."""
        rows = self.conn.execute(
            "SELECT d.id, d.kind, d.created_at, a.index_id, b.index_id, a.source_path, b.source_path"
            " FROM dedup_decisions d JOIN images a ON a.id=d.image_1 JOIN images b ON b.id=d.image_2"
            " WHERE d.catalog_id=? ORDER BY d.id", (self.catalog_id,)).fetchall()
        keys = ("id", "kind", "created_at", "index_1", "index_2", "path_1", "path_2")
        return [dict(zip(keys, (*r[:5], from_db(r[5]), from_db(r[6])))) for r in rows]

    def forget_decision(self, decision_id: int) -> bool:
        with self._transaction():
            return self.conn.execute("DELETE FROM dedup_decisions WHERE id=? AND catalog_id=?",
                                     (decision_id, self.catalog_id)).rowcount > 0

    def exact_copy_sets(self) -> list[list[int]]:
        """Index ids of byte-identical files, one list per checksum shared by two or more."""
        sets: dict[str, list[int]] = {}
        for checksum, index_id in self.conn.execute(
                "SELECT checksum, index_id FROM images WHERE catalog_id=? AND checksum IN ("
                " SELECT checksum FROM images WHERE catalog_id=? GROUP BY checksum HAVING COUNT(*) > 1)"
                " ORDER BY index_id", (self.catalog_id, self.catalog_id)):
            sets.setdefault(checksum, []).append(index_id)
        return list(sets.values())

    # -- pairs ----------------------------------------------------------------------
    def replace_pairs(self, index_ids: np.ndarray | None, a: np.ndarray, b: np.ndarray,
                      dist: np.ndarray, run_id: int | None) -> None:
        """Replace the stored pairs that involve ``index_ids`` (all pairs if None)."""
        # (every image id comes from the images table in this transaction, and no table
        # refers to the pairs: the foreign-key checks of each row would find nothing)
        with foreign_keys_off(self.conn), self._transaction():
            wanted = [np.asarray(a), np.asarray(b)]
            if index_ids is not None:
                wanted.append(np.asarray(index_ids))
            id_of = self._text_ids(np.concatenate(wanted).astype(np.int64))
            if index_ids is None:
                self.conn.execute("DELETE FROM duplicate_pairs WHERE catalog_id=?", (self.catalog_id,))
            else:
                touched = [id_of[int(i)] for i in index_ids if int(i) in id_of]
                for chunk in _chunks(touched):
                    marks = ",".join("?" * len(chunk))
                    self.conn.execute(
                        f"DELETE FROM duplicate_pairs WHERE catalog_id=? AND (image_1 IN ({marks})"
                        f" OR image_2 IN ({marks}))", (self.catalog_id, *chunk, *chunk))
            now, job = stamp(), (str(run_id) if run_id is not None else None)
            rows = []
            for x, y, d in zip(a.tolist(), b.tolist(), pair_rows(dist).tolist()):
                i1, i2 = sorted((id_of[x], id_of[y]))
                geo = d[CLASSIC_WORDS]  # the pair's verdict, on each of its rows
                rows += [(self.catalog_id, i1, i2, algo, dd, now, job, geo) for algo, dd in zip(ALGORITHMS, d)]
            self.conn.executemany(
                "INSERT OR REPLACE INTO duplicate_pairs (catalog_id, image_1, image_2, hash_type,"
                " distance, compared_at, job_id, geo) VALUES (?,?,?,?,?,?,?,?)", rows)

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored candidate pairs as (a, b, dist) over index ids, a < b: dist as
        :func:`.interface.pair_rows` gives it (a hash without a row: 255)."""
        order = {algo: k for k, algo in enumerate(ALGORITHMS)}
        acc: dict[tuple[int, int], list[int]] = {}
        for i1, i2, algo, d, geo in self.conn.execute(
                "SELECT i1.index_id, i2.index_id, p.hash_type, p.distance, p.geo FROM duplicate_pairs p"
                " JOIN images i1 ON i1.id=p.image_1 JOIN images i2 ON i2.id=p.image_2"
                " WHERE p.catalog_id=?", (self.catalog_id,)):
            if algo in order:
                row = acc.setdefault((min(i1, i2), max(i1, i2)), [255] * CLASSIC_WORDS + [0])
                row[order[algo]] = d
                row[CLASSIC_WORDS] = max(row[CLASSIC_WORDS], geo)
        keys = sorted(acc)
        a = np.array([k[0] for k in keys], dtype=np.int64)
        b = np.array([k[1] for k in keys], dtype=np.int64)
        return a, b, pair_rows(np.array([acc[k] for k in keys], dtype=PAIR_DTYPE).reshape(-1, PAIR_COLUMNS))

    def paths_of(self, image_ids: Iterable[str]) -> dict[str, str]:
        """Image id -> path, for reporting changes."""
        wanted = sorted(set(image_ids))
        out: dict[str, str] = {}
        for chunk in _chunks(wanted):
            out.update((i, from_db(p)) for i, p in self.conn.execute(
                f"SELECT id, source_path FROM images WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk)))
        return out

    def _text_ids(self, index_ids: np.ndarray) -> dict[int, str]:
        wanted = sorted({int(i) for i in index_ids})
        out: dict[int, str] = {}
        for chunk in _chunks(wanted):
            for idx, tid in self.conn.execute(
                    f"SELECT index_id, id FROM images WHERE index_id IN ({','.join('?' * len(chunk))})",
                    tuple(chunk)):
                out[idx] = tid
        return out



def locked_error(path: Path) -> CatalogLockedError:
    return CatalogLockedError(f"{path}: the catalog database is locked by another program; "
                              "try again when it has finished")


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (autocommit connection)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        if self.conn.in_transaction:  # nested: the outer transaction commits
            self.nested = True
            return self.conn
        self.nested = False
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # Our lock file keeps lumina-dedup processes apart; this is someone else
            # (a sqlite3 shell, a backup tool) holding the database after busy_timeout.
            if "locked" in str(exc) or "busy" in str(exc):
                raise locked_error(self.path) from None
            raise
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.nested:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _info(row: tuple) -> ImageInfo:
    meta = json.loads(row[5] or "{}")
    dates = json.loads(row[6] or "{}")
    return ImageInfo(
        id=row[0], index_id=row[1], path=from_db(row[2]), checksum=row[3], size_bytes=row[4],
        width=int(meta.get("width") or 0), height=int(meta.get("height") or 0),
        format=str(meta.get("format") or ""), camera=meta.get("camera"),
        taken_ts=taken_timestamp(dates.get("taken_at"), dates.get("subsec")),
        exif_tags=int(meta.get("exif_tags") or 0),
    )
