"""Fixtures of the Lumina bridge tests: a real PostgreSQL database with Lumina's tables.

Imported by the ``test_lumina_*`` modules (this module has no tests of its own). Every test
gets a fresh Lumina (``tests/lumina_schema.sql``) in a schema of its own, so Lumina's
global ``images.id`` (the SHA-256) never collides between tests. The server is ``$LUMINA_DEDUP_TEST_PG`` (default: the machine's own,
``postgresql://postgres@127.0.0.1:5432/postgres``). Without one the tests skip, unless
``LUMINA_DEDUP_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

SCHEMA = Path(__file__).with_name("lumina_schema.sql")
SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
EXPECTED = json.loads((SAMPLE / "expected_groups.json").read_text())
REQUIRED = os.environ.get("LUMINA_DEDUP_REQUIRE_SERVICES") == "1"
ADMIN_URL = os.environ.get("LUMINA_DEDUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LUMINA_DEDUP_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(what: str) -> None:
    """Skip, or fail where CI requires the servers."""
    if REQUIRED:
        pytest.fail(f"{what} (LUMINA_DEDUP_REQUIRE_SERVICES=1: the servers must be there)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database made for this test session and dropped at its end."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[lumina]')")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        unavailable(f"no PostgreSQL server at {ADMIN_URL}: {exc}")
    name = f"lumina_dedup_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


#: job_batches as Lumina's scan uses it (no DDL exists in its repository; columns from the
#: statements its coordinator runs, as ../shared/lumina-sandbox/fixups.sql has them). Only the
#: Lumina-shaped scan_worker of the Celery test needs it; init_db() never makes it, so the
#: bridge must work without it (test_batch_task_without_job_batches).
JOB_BATCHES = """CREATE TABLE job_batches (
    id TEXT PRIMARY KEY, parent_job_id TEXT NOT NULL, catalog_id UUID, batch_number INTEGER NOT NULL,
    total_batches INTEGER NOT NULL, job_type TEXT NOT NULL, work_items JSONB NOT NULL,
    items_count INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'PENDING', worker_id TEXT,
    started_at TIMESTAMP, completed_at TIMESTAMP, processed_count INTEGER DEFAULT 0,
    success_count INTEGER DEFAULT 0, error_count INTEGER DEFAULT 0, results JSONB, error_message TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(), updated_at TIMESTAMP NOT NULL DEFAULT NOW())"""


def make_lumina(pg_database: str, job_batches: bool = False) -> tuple[str, Callable[[], None]]:
    """A fresh, empty Lumina: the tables of its init_db() (``lumina_schema.sql``) in a schema of
    their own, which the returned URL puts first on the search path (a schema per test: isolated
    like a database, but much cheaper, since each DROP DATABASE costs a checkpoint), plus
    ``job_batches`` if asked. Returns (URL, drop)."""
    import psycopg
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(SCHEMA.read_text())
        if job_batches:
            conn.execute(JOB_BATCHES)

    def drop() -> None:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return f"{pg_database}?options=-csearch_path%3D{schema}", drop


@pytest.fixture
def lumina_db(pg_database: str) -> Iterator[str]:
    """URL of a fresh, empty Lumina (see :func:`make_lumina`)."""
    url, drop = make_lumina(pg_database)
    try:
        yield url
    finally:
        drop()


def _libpq(url: str) -> str:
    """The URL without our own query parameters (libpq refuses them)."""
    from lumina_plugin.catalog.postgres import split_url
    return split_url(url)[0]


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create_catalog(url: str, name: str = "Photos", roots: tuple[str, ...] = ()) -> str:
    """A catalogs row as Lumina's POST /api/catalogs/ makes it; returns its id."""
    import psycopg
    cid = str(uuid.uuid4())
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("INSERT INTO catalogs (id, name, schema_name, source_directories, created_at, updated_at)"
                     " VALUES (%s, %s, %s, %s, %s, %s)",
                     (cid, name, f"catalog_{cid.replace('-', '_')}", list(roots), now(), now()))
    return cid


@pytest.fixture
def lumina(lumina_db: str) -> tuple[str, str]:
    """(catalog URL naming the catalog, catalog id) for one fresh Lumina catalog."""
    cid = create_catalog(lumina_db)
    return f"{lumina_db}&catalog={cid}", cid


def image_row(path: Path) -> dict[str, Any]:
    """What Lumina's scan_worker stores for a file: id = checksum = SHA-256, metadata from Pillow."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with Image.open(path) as im:
        meta: dict[str, Any] = {"format": im.format, "width": im.width, "height": im.height, "resolution": [im.width, im.height],
                "size_bytes": len(data), "exif": {}, "camera_make": None, "camera_model": None}
    return {"id": digest, "source_path": str(path), "checksum": digest, "size_bytes": len(data), "metadata": meta}


def scan_as_lumina(url: str, catalog_id: str, paths: list[Path]) -> list[str]:
    """Insert image rows one by one as Lumina's scan does (``ON CONFLICT (id) DO NOTHING``, so
    byte-identical copies are dropped). Returns the paths that got a row."""
    import psycopg
    from psycopg.types.json import Jsonb
    added = []
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        for path in sorted(paths):
            row = image_row(path)
            cur = conn.execute(
                "INSERT INTO images (id, catalog_id, source_path, file_type, checksum, size_bytes, dates, metadata,"
                " status_id, processing_flags, created_at, updated_at)"
                " VALUES (%s, %s, %s, 'image', %s, %s, %s, %s, 'active', '{}', %s, %s) ON CONFLICT (id) DO NOTHING",
                (row["id"], catalog_id, row["source_path"], row["checksum"], row["size_bytes"], Jsonb({}),
                 Jsonb(row["metadata"]), now(), now()))
            if cur.rowcount:
                added.append(str(path))
    return added


def sample_photos() -> list[Path]:
    return sorted(p for p in SAMPLE.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


def expected_groups_in_lumina(kept: list[str]) -> set[frozenset[str]]:
    """expected_groups.json as Lumina can hold it: byte copies it dropped are gone."""
    have = set(kept)
    groups = ({str(SAMPLE / p) for p in g} & have for g in EXPECTED["groups"])
    return {frozenset(g) for g in groups if len(g) > 1}


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def lumina_page(url: str, cid: str) -> set[frozenset[str]]:
    """The groups Lumina's duplicates page lists for the catalog, as sets of paths: what its route
    (``list_duplicate_groups`` in lumina/api/routers/catalogs.py) reads, the catalog's
    ``duplicate_groups`` with their ``duplicate_members``; each primary is one of its members."""
    rows = query(url, "SELECT g.id, g.primary_image_id, m.image_id, i.source_path FROM duplicate_groups g"
                      " JOIN duplicate_members m ON m.group_id = g.id JOIN images i ON i.id = m.image_id"
                      " WHERE g.catalog_id = %s", (cid,))
    groups: dict[int, set[str]] = {}
    for gid, primary, _member, path in rows:
        groups.setdefault(gid, set()).add(path)
        assert any(r[0] == gid and r[2] == primary for r in rows)
    return {frozenset(g) for g in groups.values()}


def require_bridge_services() -> None:
    """The bridge's tests need the [lumina] extra and a Redis: skip (or, in CI, fail) without them."""
    for module in ("celery", "redis", "fastapi", "httpx"):
        try:
            __import__(module)
        except ImportError:
            unavailable(f"{module} is not installed (pip install -e '.[lumina]')")
    import redis
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"no Redis at {REDIS_URL}: {exc}")


def write_config(home: Path, **lumina: Any) -> None:
    """The user's config file, where the bridge (and the worker) read our [lumina] settings."""
    (home / "lumina-dedup").mkdir(parents=True, exist_ok=True)
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in lumina.items())
    (home / "lumina-dedup" / "config.toml").write_text("[lumina]\n" + body)


def lumina_stand_in() -> Any:
    """Stands for Lumina's own app behind our ASGI wrapper (every request it gets answers "lumina")."""
    from starlette.types import Receive, Scope, Send

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"lumina"})
    return app
