"""Lumina's PostgreSQL database as a whole, apart from one open catalog session.

Where the database is (:func:`lumina_database_url`, :func:`split_url`, :func:`data_home`),
our schema in it (:func:`ensure_schema`, :func:`uninstall`), the advisory-lock key of a
catalog (:func:`lock_key`), and the catch-up list (:func:`unhashed_paths`): functions of a URL
or a connection, so the Lumina bridge (:mod:`lumina_plugin.lumina`) can use them without
taking a catalog's lock. The catalog itself is :mod:`lumina_plugin.catalog.postgres`.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ..config import TagNames
from ..settings.lumina import LuminaSettings
from .interface import CatalogError
from .tag_store import TAG_DESCRIPTION

#: Bumped with every change to postgres_schema.sql (which only ever adds, IF NOT EXISTS), so an
#: install of an older version runs it again. 1: as first released. 2: lumina_dedup_images.geometry
#: (the geometry words), lumina_dedup_pairs.geo (the geometric verdict).
SCHEMA_VERSION = 2
#: Our tables, in an order that DROP can follow (children first).
OUR_TABLES = ("lumina_dedup_undo", "lumina_dedup_runs", "lumina_dedup_members", "lumina_dedup_groups",
              "lumina_dedup_pairs", "lumina_dedup_decisions", "lumina_dedup_images", "lumina_dedup_meta")
#: ``jobs.parameters->>'engine'`` of the Lumina job rows the bridge creates (Find Duplicates).
JOB_ENGINE = "lumina-dedup"
#: Query parameters of a catalog URL that are ours, not libpq's.
OUR_PARAMS = ("catalog", "show_in_lumina")
#: Serialises schema creation between processes (any constant unlikely to clash).
SCHEMA_LOCK = 0x6C756D696E61


def lumina_database_url(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The URL Lumina itself connects to, from its ``POSTGRES_*`` variables and defaults."""
    env = os.environ if environ is None else environ
    user = quote(env.get("POSTGRES_USER", "postgres"), safe="")
    password = env.get("POSTGRES_PASSWORD", "")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host, port = env.get("POSTGRES_HOST", "localhost"), env.get("POSTGRES_PORT", "5432")
    return f"postgresql://{auth}@{host}:{port}/{quote(env.get('POSTGRES_DB', 'lumina'), safe='')}"


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """(URL for libpq, our own query parameters such as ``catalog``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in OUR_PARAMS}
    rest = urlencode([(k, v) for k, v in query if k not in OUR_PARAMS])
    return urlunsplit(parts._replace(query=rest)), ours


def data_home(settings: LuminaSettings) -> Path:
    """Where per-catalog index folders live: the setting, else ``$XDG_DATA_HOME/lumina-dedup``."""
    if settings.data_dir:
        return Path(settings.data_dir).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lumina-dedup"


def truthy(text: str) -> bool:
    """A URL parameter's yes (``1``, ``true``, ``yes``, ``on``)."""
    return text.strip().lower() in ("1", "true", "yes", "on")


def lock_key(catalog_id: str) -> int:
    """The advisory-lock key of a catalog: 64 bits of a hash, so no registry of keys is needed."""
    return int.from_bytes(hashlib.sha256(f"lumina-dedup:{catalog_id}".encode()).digest()[:8], "big", signed=True)


def _exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
    return row is not None and row[0] is not None


def ensure_schema(conn: psycopg.Connection) -> None:
    """Check that this is Lumina's database and create or upgrade our tables in it."""
    row = conn.execute("SELECT to_regclass('images'), to_regclass('tags'), to_regclass('lumina_dedup_meta')").fetchone()
    if row is None or row[0] is None or row[1] is None:
        raise CatalogError("not a Lumina database: it has no images or tags table")
    if row[2] is not None:
        got = conn.execute("SELECT value FROM lumina_dedup_meta WHERE key='schema_version'").fetchone()
        if got is not None and int(got[0]) >= SCHEMA_VERSION:  # newer: a superset of ours
            return
    ddl = resources.files("lumina_plugin.catalog").joinpath("postgres_schema.sql").read_text()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(ddl)  # several statements, so no parameters
        conn.execute("INSERT INTO lumina_dedup_meta (key, value) VALUES ('schema_version', %s)"
                     " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                     " WHERE lumina_dedup_meta.value::int < excluded.value::int", (str(SCHEMA_VERSION),))


def unhashed_paths(conn: psycopg.Connection, catalog_id: str, hash_version: int,
                   limit: int | None = None) -> list[str]:
    """Paths of Lumina's still-image rows we have not hashed with ``hash_version`` yet (new
    since we last looked, or hashed by an older algorithm), oldest first: the catch-up list.
    A function of a connection, so a bridge can ask without taking the catalog's lock."""
    if not _exists(conn, "lumina_dedup_images"):
        return [r[0] for r in conn.execute(
            "SELECT source_path FROM images WHERE catalog_id = %s AND file_type = 'image'"
            " ORDER BY created_at, id LIMIT %s", (catalog_id, limit))]
    rows = conn.execute(
        "SELECT i.source_path FROM images i LEFT JOIN lumina_dedup_images d ON d.image_id = i.id"
        " WHERE i.catalog_id = %s AND i.file_type = 'image' AND (d.image_id IS NULL OR d.hash_version <> %s)"
        " ORDER BY i.created_at, i.id LIMIT %s", (catalog_id, hash_version, limit)).fetchall()
    return [r[0] for r in rows]


def uninstall(url: str | None = None, settings: LuminaSettings | None = None,
              tags: TagNames | None = None) -> dict[str, int]:
    """Remove every row and tag the plugin wrote and drop its tables, in one transaction.

    Lumina's own rows (images, its tags, its duplicate groups, its jobs) are left as they are.
    Only tables that Lumina's ``init_db()`` creates are touched (no ``job_batches`` or
    ``duplicate_pairs``: a deployment may lack them).
    """
    settings = settings or LuminaSettings()
    names = tags or TagNames()
    conninfo, _ = split_url(url or settings.url or lumina_database_url())
    ours = [names.parent, *names.roles().values()]
    out = {"image_tags": 0, "tags": 0, "lumina_groups": 0, "jobs": 0, "tables": 0}
    with psycopg.connect(conninfo, autocommit=True, application_name="lumina-dedup") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        if _exists(conn, "lumina_dedup_groups"):
            out["lumina_groups"] = conn.execute(
                "DELETE FROM duplicate_groups WHERE id IN (SELECT lumina_group_id FROM lumina_dedup_groups"
                " WHERE lumina_group_id IS NOT NULL)").rowcount
        out["image_tags"] = conn.execute(
            "DELETE FROM image_tags it USING tags t WHERE t.id = it.tag_id AND it.source = %s AND t.name = ANY(%s)",
            (names.source, ours)).rowcount
        out["tags"] = conn.execute(
            "DELETE FROM tags t WHERE t.name = ANY(%s) AND t.description = %s"
            " AND NOT EXISTS (SELECT 1 FROM image_tags it WHERE it.tag_id = t.id)",
            (ours, TAG_DESCRIPTION)).rowcount
        # The Find Duplicates jobs our router created (Lumina's job panel history).
        out["jobs"] = conn.execute("DELETE FROM jobs WHERE parameters->>'engine' = %s", (JOB_ENGINE,)).rowcount
        for table in OUR_TABLES:
            if _exists(conn, table):
                conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(table)))
                out["tables"] += 1
        conn.execute("DROP SEQUENCE IF EXISTS lumina_dedup_index_id_seq")
    return out
