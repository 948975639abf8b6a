"""Lumina's own PostgreSQL database as a :class:`~lumina_plugin.catalog.interface.Catalog`.

Lumina owns ``catalogs`` and ``images`` (one row per distinct file content: ``images.id``
is the SHA-256); we only read them. Our tags go into Lumina's ``tags``/``image_tags`` under
namespaced names and our own ``source``; everything else we keep (hashes, pairs, groups,
runs, undo log, decisions) lives in ``lumina_dedup_*`` tables that we create
(``postgres_schema.sql``), never in Lumina's migrations.

Driver: psycopg 3 (binary COPY, server-side arrays, pipelined batches). A session-level
PostgreSQL advisory lock, keyed by the catalog, is held from open to close, so two runs on
one catalog never interleave, whichever host they run on; it dies with the connection,
so a crashed run never leaves it behind.

Here: photos, hashes and pairs. Tags, groups, runs, undo and decisions:
:mod:`~lumina_plugin.catalog.postgres_tags` (the PostgreSQL dialect of
:mod:`~lumina_plugin.catalog.tag_store`). The database as a whole (its URL, our schema,
uninstall, the catch-up list): :mod:`~lumina_plugin.catalog.postgres_db`, whose public
names are importable from here too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg

from ..config import TagNames
from ..model import CLASSIC_WORDS, PAIR_COLUMNS, ImageInfo, ImageRecord, StoredFile, taken_timestamp
from ..settings.lumina import LuminaSettings
from .interface import PAIR_DTYPE, CatalogError, CatalogLockedError, image_id_for, pair_rows
from .pg_copy import fields_from_copy
from .postgres_db import (  # noqa: F401  (public here too)
    JOB_ENGINE,
    OUR_TABLES,
    SCHEMA_VERSION,
    data_home,
    ensure_schema,
    lock_key,
    lumina_database_url,
    split_url,
    truthy,
    unhashed_paths,
    uninstall,
)
from .postgres_tags import PostgresTags
from .tag_store import now
from .words import GEOMETRY_BYTES, split_codes


class PostgresCatalog(PostgresTags):
    """One Lumina catalog in its PostgreSQL database. Use as a context manager or call :meth:`close`.

    ``url`` is a ``postgresql://`` URL (default: built from Lumina's ``POSTGRES_*`` variables);
    its query may name the catalog (``?catalog=<uuid or name>``, else the only one) and turn
    ``show_in_lumina`` on or off (``=1``/``=0``; on by default). Those override ``settings``.

    ``lock=False`` opens it without the catalog's advisory lock, for one thing only: a fan-out
    chunk (``lumina/fanout.py``) storing codes with :meth:`upsert_images` while other chunks
    do the same. That write is safe beside others and repeatable (one statement per batch,
    ``ON CONFLICT (image_id) DO UPDATE`` keeps a row's index id, rows are taken in path
    order so two chunks never wait on each other in a cycle); pairs, groups and tags are
    written only under the lock.
    """

    def __init__(self, url: str | None = None, tags: TagNames | None = None, lock_timeout: float = 10.0,
                 settings: LuminaSettings | None = None, lock: bool = True) -> None:
        self.settings = settings or LuminaSettings()
        conninfo, ours = split_url(url or self.settings.url or lumina_database_url())
        self.names = tags or TagNames()
        self.show_in_lumina = truthy(ours["show_in_lumina"]) if "show_in_lumina" in ours \
            else self.settings.show_in_lumina
        self._locked = False
        try:
            self.conn = psycopg.connect(conninfo, autocommit=True, application_name="lumina-dedup",
                                        connect_timeout=max(1, int(lock_timeout) or 1))
        except psycopg.Error as exc:
            raise CatalogError(f"cannot connect to Lumina's database: {exc}".strip()) from None
        try:
            ensure_schema(self.conn)
            self.catalog_id, self.catalog_name = self._resolve_catalog(ours.get("catalog") or self.settings.catalog)
            if lock:
                self._acquire_lock(lock_timeout)
        except BaseException:
            self.conn.close()
            raise
        self.index_dir = data_home(self.settings) / f"lumina-{self.catalog_id}.index"

    # -- connection, schema and lock ----------------------------------------------------
    def _resolve_catalog(self, wanted: str) -> tuple[str, str]:
        rows = [(str(i), n) for i, n in self.conn.execute("SELECT id, name FROM catalogs ORDER BY created_at")]
        if wanted:
            hits = [r for r in rows if wanted in r]
            if len(hits) == 1:
                return hits[0]
            raise CatalogError(f"Lumina has no single catalog named {wanted!r}; it has: "
                               + (", ".join(f"{n} ({i})" for i, n in rows) or "none"))
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise CatalogError("Lumina's database has no catalog yet: create one in Lumina first")
        raise CatalogError("Lumina has several catalogs; name one with ?catalog=<id or name> or "
                           "[lumina] catalog: " + ", ".join(f"{n} ({i})" for i, n in rows))

    def _acquire_lock(self, timeout: float) -> None:
        key = lock_key(self.catalog_id)
        deadline = time.monotonic() + timeout
        while not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() >= deadline:
                raise CatalogLockedError(
                    f"Lumina catalog {self.catalog_name} is in use by another lumina-dedup run "
                    f"({self._lock_holder(key)}); try again when it has finished") from None
            time.sleep(0.1)
        self._locked = True

    def _lock_holder(self, key: int) -> str:
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        row = self.conn.execute(
            "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1 LIMIT 1",
            (unsigned >> 32, unsigned & 0xFFFFFFFF)).fetchone()
        return f"server pid {row[0]}, {row[2] or 'client'} at {row[1] or 'local'}" if row else "holder unknown"

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None and not conn.closed:
            conn.close()  # also releases the advisory lock
        self.conn = None  # type: ignore[assignment]

    def __enter__(self) -> PostgresCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> Any:
        return self.conn.transaction()

    # -- images -----------------------------------------------------------------------
    def stored_files(self, paths: Sequence[str]) -> dict[str, StoredFile]:
        """Lumina's rows at these paths; index_id 0 and no hash_version where we never hashed one."""
        found: dict[str, StoredFile] = {}
        for path, image_id, index_id, size, mtime, version in self.conn.execute(
                "SELECT DISTINCT ON (i.source_path) i.source_path, i.id, d.index_id, d.size_bytes, d.mtime_ns,"
                " d.hash_version FROM images i LEFT JOIN lumina_dedup_images d ON d.image_id = i.id"
                " WHERE i.catalog_id = %s AND i.source_path = ANY(%s)"
                " ORDER BY i.source_path, i.created_at DESC", (self.catalog_id, list(paths))):
            found[path] = StoredFile(image_id, index_id or 0, -1 if size is None else size,
                                     -1 if mtime is None else mtime, version)
        return found

    def upsert_images(self, records: Sequence[ImageRecord]) -> list[StoredFile]:
        """Store the hashes of files Lumina has catalogued, in one statement and one transaction.

        Lumina owns image rows: a file it has no row for (never scanned, or a byte copy it
        dropped) is refused with :class:`CatalogError` rather than inserted behind its back.
        """
        if not records:
            return []
        with self._transaction():
            stored = self.stored_files([r.path for r in records])
            missing = [r.path for r in records if r.path not in stored]
            if missing:
                raise CatalogError(f"{len(missing)} file(s) are not in Lumina catalog {self.catalog_name} "
                                   f"(scan them with Lumina first), e.g. {missing[0]}")
            split = [split_codes(r.codes) for r in records]
            codes = np.array([c for c, _ in split], dtype=np.uint64).reshape(-1, CLASSIC_WORDS).view(np.int64)
            facts = [json.dumps({"width": r.width, "height": r.height, "format": r.format,
                                 "orientation": r.orientation, "camera": r.camera, "taken_at": r.taken_at,
                                 "subsec": r.subsec, "exif_tags": r.exif_tags}) for r in records]
            rows = self.conn.execute(
                "INSERT INTO lumina_dedup_images (image_id, catalog_id, hashed_path, checksum, size_bytes,"
                " mtime_ns, ahash, dhash, phash, whash, geometry, hash_version, facts, hashed_at)"
                " SELECT x.id, %s, x.path, x.checksum, x.size, x.mtime, x.a, x.d, x.p, x.w, x.g, x.v, x.facts::jsonb, %s"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[],"
                " %s::bigint[], %s::bigint[], %s::bigint[], %s::bytea[], %s::int[], %s::text[])"
                " AS x(id, path, checksum, size, mtime, a, d, p, w, g, v, facts)"
                " ON CONFLICT (image_id) DO UPDATE SET hashed_path = excluded.hashed_path,"
                " checksum = excluded.checksum, size_bytes = excluded.size_bytes, mtime_ns = excluded.mtime_ns,"
                " ahash = excluded.ahash, dhash = excluded.dhash, phash = excluded.phash, whash = excluded.whash,"
                " geometry = excluded.geometry, hash_version = excluded.hash_version, facts = excluded.facts,"
                " hashed_at = excluded.hashed_at RETURNING image_id, index_id",
                (self.catalog_id, now(), [stored[r.path].id for r in records], [r.path for r in records],
                 [r.checksum for r in records], [r.size_bytes for r in records], [r.mtime_ns for r in records],
                 *(codes[:, k].tolist() for k in range(CLASSIC_WORDS)), [g for _, g in split],
                 [r.hash_version for r in records], facts)).fetchall()
        index_of: dict[str, int] = dict(rows)
        return [StoredFile(stored[r.path].id, index_of[stored[r.path].id], r.size_bytes, r.mtime_ns, r.hash_version)
                for r in records]

    def remove_paths(self, paths: Sequence[str]) -> list[int]:
        """Forget our hashes and pairs of these files. Lumina's own rows are Lumina's to delete."""
        with self._transaction():
            removed = [r[0] for r in self.conn.execute(
                "DELETE FROM lumina_dedup_images d USING images i WHERE d.image_id = i.id AND i.catalog_id = %s"
                " AND i.source_path = ANY(%s) RETURNING d.index_id", (self.catalog_id, list(paths)))]
            if removed:
                self.conn.execute("DELETE FROM lumina_dedup_pairs WHERE catalog_id = %s AND (a = ANY(%s) OR b = ANY(%s))",
                                  (self.catalog_id, removed, removed))
        return removed

    def move_paths(self, moves: Sequence[tuple[str, str]]) -> int:
        """Nothing to do: Lumina owns paths, and our rows follow its image ids, not paths."""
        return 0

    def all_codes(self, hash_version: int) -> tuple[np.ndarray, np.ndarray]:
        """(index ids, codes (n, CODE_WORDS)): the classic hashes, then the geometry words (zeros where NULL)."""
        # Binary COPY straight into NumPy: no Python object per value (fetchall of 100,000 rows of
        # five ints and np.array over them: 0.30 s, this 0.18 s, measured on 2 loaded cores). The
        # sort by index id is NumPy's, so the server scans the table instead of walking an index.
        # A row without geometry words (NULL) is sent as zeros, so every field has its fixed size.
        data = bytearray()
        with self.conn.cursor().copy(
                "COPY (SELECT index_id, ahash, dhash, phash, whash,"
                f" COALESCE(geometry, decode(repeat('00', {GEOMETRY_BYTES}), 'hex')) FROM lumina_dedup_images"
                " WHERE catalog_id = %s AND hash_version = %s) TO STDOUT (FORMAT BINARY)",
                (self.catalog_id, hash_version)) as copy:
            for chunk in copy:
                data += chunk
        *ints, geometry = fields_from_copy(bytes(data), [8] * (1 + CLASSIC_WORDS) + [GEOMETRY_BYTES])
        order = np.argsort(ints[0], kind="stable")
        classic = np.stack(ints[1:], axis=1).reshape(-1, CLASSIC_WORDS).view(np.uint64)
        codes = np.hstack([classic, np.ascontiguousarray(geometry).view(">u8").astype(np.uint64)])
        return np.ascontiguousarray(ints[0][order]), np.ascontiguousarray(codes[order])

    def exact_copy_sets(self) -> list[list[int]]:
        """Byte-identical files: only if files changed after Lumina's scan (its ids are checksums)."""
        sets: dict[str, list[int]] = {}
        # A hash semi-join: GROUP BY checksum sorted all 100,000 64-character checksums (spilling
        # to disk past work_mem) to find the few that repeat: 0.30 s against 0.14 s for 100,000.
        for checksum, index_id in self.conn.execute(
                "SELECT d.checksum, d.index_id FROM lumina_dedup_images d WHERE d.catalog_id = %s AND EXISTS ("
                " SELECT 1 FROM lumina_dedup_images e WHERE e.catalog_id = d.catalog_id AND e.checksum = d.checksum"
                " AND e.index_id <> d.index_id) ORDER BY d.index_id", (self.catalog_id,)):
            sets.setdefault(checksum, []).append(index_id)
        return list(sets.values())

    def images(self, index_ids: Iterable[int] | None = None) -> dict[int, ImageInfo]:
        query = ("SELECT d.image_id, d.index_id, i.source_path, d.checksum, d.size_bytes, d.facts"
                 " FROM lumina_dedup_images d JOIN images i ON i.id = d.image_id WHERE d.catalog_id = %s")
        if index_ids is None:
            cur = self.conn.execute(query, (self.catalog_id,))
        else:
            cur = self.conn.execute(query + " AND d.index_id = ANY(%s)",
                                    (self.catalog_id, sorted({int(i) for i in index_ids})))
        return {r[1]: _info(r) for r in cur}

    # -- pairs ------------------------------------------------------------------------
    def replace_pairs(self, index_ids: np.ndarray | None, a: np.ndarray, b: np.ndarray,
                      dist: np.ndarray, run_id: int | None) -> None:
        """Replace the stored pairs that involve ``index_ids`` (all pairs if None); COPY in bulk."""
        lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
        table = np.unique(np.column_stack([lo, hi, pair_rows(dist).astype(np.int64)]), axis=0)
        with self._transaction():
            if index_ids is None:
                self.conn.execute("DELETE FROM lumina_dedup_pairs WHERE catalog_id = %s", (self.catalog_id,))
            else:
                ids = np.asarray(index_ids, dtype=np.int64).tolist()
                self.conn.execute("DELETE FROM lumina_dedup_pairs WHERE catalog_id = %s AND (a = ANY(%s) OR b = ANY(%s))",
                                  (self.catalog_id, ids, ids))
                # A pair seen from both of its photos in one batch is stored once.
                self.conn.execute("DELETE FROM lumina_dedup_pairs WHERE catalog_id = %s AND (a, b) IN"
                                  " (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))",
                                  (self.catalog_id, table[:, 0].tolist(), table[:, 1].tolist()))
            with self.conn.cursor().copy("COPY lumina_dedup_pairs (catalog_id, a, b, ahash, dhash, phash, whash,"
                                         " geo) FROM STDIN") as copy:
                prefix = self.catalog_id + "\t"
                copy.write("".join(prefix + "\t".join(map(str, row)) + "\n" for row in table.tolist()))

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored candidate pairs between photos still hashed, as (a, b, dist), a < b: dist as
        :func:`.interface.pair_rows` gives it."""
        rows = self.conn.execute(
            "SELECT p.a, p.b, p.ahash, p.dhash, p.phash, p.whash, p.geo FROM lumina_dedup_pairs p"
            " JOIN lumina_dedup_images x ON x.index_id = p.a JOIN lumina_dedup_images y ON y.index_id = p.b"
            " WHERE p.catalog_id = %s ORDER BY p.a, p.b", (self.catalog_id,)).fetchall()
        table = np.array(rows, dtype=np.int64).reshape(-1, 2 + PAIR_COLUMNS)
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2:].astype(PAIR_DTYPE)

    def paths_of(self, image_ids: Iterable[str]) -> dict[str, str]:
        return dict(self.conn.execute("SELECT id, source_path FROM images WHERE id = ANY(%s)",
                                      (sorted(set(image_ids)),)).fetchall())

    def unhashed_paths(self, hash_version: int, limit: int | None = None) -> list[str]:
        """Lumina's photos not hashed with ``hash_version`` yet: see :func:`.postgres_db.unhashed_paths`."""
        return unhashed_paths(self.conn, self.catalog_id, hash_version, limit)

    def new_image_id(self, path: str) -> str:
        """A stand-in id for a file Lumina has no row for (a dry run shows it; storing the
        file is refused: Lumina owns image rows)."""
        return image_id_for(path)


def _info(row: tuple) -> ImageInfo:
    facts = row[5] or {}
    return ImageInfo(
        id=row[0], index_id=row[1], path=row[2], checksum=row[3], size_bytes=row[4],
        width=int(facts.get("width") or 0), height=int(facts.get("height") or 0),
        format=str(facts.get("format") or ""), camera=facts.get("camera"),
        taken_ts=taken_timestamp(facts.get("taken_at"), facts.get("subsec")),
        exif_tags=int(facts.get("exif_tags") or 0),
    )

