"""The SQLite catalog's schema: ``schema.sql`` makes a new catalog; an older one is brought up
to date on open by adding the columns it lacks, so its rows (and tags, groups, runs, undo log
and decisions) are kept. Rows from before a column read as its default (the geometry words:
NULL; they carry an older ``hash_version`` and the engine rehashes them).

Only columns are ever added, so a catalog stays usable by the older versions that made it:
they name the columns they write, and what they do not know keeps its default.
"""

from __future__ import annotations

import sqlite3
from importlib import resources

#: The schema's version, kept in ``dedup_meta`` (``schema_version``); a catalog without one is 1.
#: 1: as first released. 2: ``images.geometry`` (the geometry words), ``duplicate_pairs.geo``.
SCHEMA_VERSION = 2
#: Columns added since version 1, as (table, column, declaration), in ``schema.sql`` too.
ADDED_COLUMNS = (
    ("images", "geometry", "BLOB"),
    ("duplicate_pairs", "geo", "INTEGER NOT NULL DEFAULT 0"),
)


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def stored_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM dedup_meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 1


def is_current(conn: sqlite3.Connection) -> bool:
    """Whether the catalog has this version's schema: a read-only open reads it as it is, without
    :func:`apply_schema` (which writes). Raises sqlite3.DatabaseError for a file that is no catalog."""
    return stored_version(conn) >= SCHEMA_VERSION and all(
        column in columns(conn, table) for table, column, _ in ADDED_COLUMNS)


def apply_schema(conn: sqlite3.Connection) -> None:
    """Create what is missing (a new catalog: everything) and add the columns an older catalog
    lacks, in one transaction. An autocommit connection (``isolation_level=None``)."""
    conn.executescript(resources.files("lumina_plugin.catalog").joinpath("schema.sql").read_text())
    if is_current(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, declaration in ADDED_COLUMNS:
            if column not in columns(conn, table):
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        conn.execute("INSERT INTO dedup_meta (key, value) VALUES ('schema_version', ?)"
                     " ON CONFLICT(key) DO UPDATE SET value=excluded.value"
                     " WHERE CAST(dedup_meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                     (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
