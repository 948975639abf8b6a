"""The geometry words and the geometric verdict in both catalogs (issue 17), and catalogs made
before them: an old SQLite file and an old install in Lumina's PostgreSQL gain the columns on
open and keep their rows.

Real SQLite files, a real PostgreSQL server (``test_lumina_support``: skipped without one,
failed under ``LUMINA_DEDUP_REQUIRE_SERVICES=1``), real photos from sample_catalog/ whose codes
are replaced by chosen words, so these tests do not depend on what the hashing computes.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from test_lumina_support import (  # noqa: F401  (fixtures)
    SAMPLE,
    _libpq,
    lumina,
    lumina_db,
    pg_database,
    query,
    scan_as_lumina,
)

from lumina_plugin.catalog.interface import CatalogError, pair_rows, pairs_after_replace
from lumina_plugin.ingest.pipeline import record_for
from lumina_plugin.model import ALGORITHM_VERSION, CLASSIC_WORDS, CODE_WORDS, GEO_WORDS, PAIR_COLUMNS, ImageRecord

PHOTOS = [SAMPLE / p for p in ("2015/2015-10-29/IMG_8812.jpg", "exports/IMG_8812_crop.jpg",
                               "2016/2016-08-19/DSC04512.jpg")]

#: The tables that changed, as version 1 made them (``git show 7acb91d:lumina_plugin/catalog/schema.sql``);
#: the other tables are the same in both versions, and the catalog makes them if missing.
SQLITE_V1 = """
CREATE TABLE catalogs (id TEXT PRIMARY KEY, name TEXT NOT NULL, schema_name TEXT,
    source_directories TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE images (
    id TEXT PRIMARY KEY, catalog_id TEXT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    index_id INTEGER NOT NULL UNIQUE, source_path TEXT NOT NULL, file_type TEXT NOT NULL DEFAULT 'image',
    checksum TEXT NOT NULL, size_bytes INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    dates TEXT NOT NULL DEFAULT '{}', metadata TEXT NOT NULL DEFAULT '{}',
    ahash TEXT, dhash TEXT, phash TEXT, whash TEXT, hash_version INTEGER, quality_score INTEGER,
    status_id TEXT NOT NULL DEFAULT 'active', burst_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (catalog_id, source_path));
CREATE INDEX idx_images_checksum ON images(catalog_id, checksum);
CREATE TABLE duplicate_pairs (
    catalog_id TEXT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    image_1 TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    image_2 TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    hash_type TEXT NOT NULL, distance INTEGER NOT NULL, compared_at TEXT, job_id TEXT,
    PRIMARY KEY (catalog_id, image_1, image_2, hash_type), CHECK (image_1 < image_2));
CREATE TABLE dedup_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: The same of ``git show 7acb91d:lumina_plugin/catalog/postgres_schema.sql``.
POSTGRES_V1 = """
CREATE TABLE lumina_dedup_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE SEQUENCE lumina_dedup_index_id_seq;
CREATE TABLE lumina_dedup_images (
    image_id VARCHAR PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    index_id BIGINT NOT NULL UNIQUE DEFAULT nextval('lumina_dedup_index_id_seq'),
    hashed_path TEXT NOT NULL, checksum TEXT NOT NULL, size_bytes BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
    ahash BIGINT NOT NULL, dhash BIGINT NOT NULL, phash BIGINT NOT NULL, whash BIGINT NOT NULL,
    hash_version INTEGER NOT NULL, facts JSONB NOT NULL DEFAULT '{}', hashed_at TIMESTAMP NOT NULL);
CREATE INDEX lumina_dedup_images_catalog ON lumina_dedup_images (catalog_id, hash_version);
CREATE TABLE lumina_dedup_pairs (
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    a BIGINT NOT NULL, b BIGINT NOT NULL, ahash SMALLINT NOT NULL, dhash SMALLINT NOT NULL,
    phash SMALLINT NOT NULL, whash SMALLINT NOT NULL, PRIMARY KEY (catalog_id, a, b), CHECK (a < b));
CREATE INDEX lumina_dedup_pairs_b ON lumina_dedup_pairs (catalog_id, b);
INSERT INTO lumina_dedup_meta (key, value) VALUES ('schema_version', '1');
"""
OLD_CODES = [(0x8000000000000001, 2, 3, 0xFFFFFFFFFFFFFFFF), (5, 6, 7, 8)]


def words(seed: int) -> np.ndarray:
    """12 code words with every bit pattern worth storing (the top bit, all ones, zero)."""
    out = np.random.default_rng(seed).integers(0, 2**64, CODE_WORDS, dtype=np.uint64, endpoint=False)
    out[[0, CLASSIC_WORDS]] |= np.uint64(1 << 63)
    out[CLASSIC_WORDS + 1], out[-1] = np.uint64(2**64 - 1), np.uint64(0)
    return out


@pytest.fixture(scope="module")
def records() -> list[ImageRecord]:
    return [dataclasses.replace(record_for(str(p), 250_000_000), codes=words(k), hash_version=ALGORITHM_VERSION)
            for k, p in enumerate(PHOTOS)]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        Callable[[], object]]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if request.param == "sqlite":
        from lumina_plugin.catalog.sqlite import SqliteCatalog
        yield lambda: SqliteCatalog(tmp_path / "cat.db")
    else:
        from lumina_plugin.catalog.postgres import PostgresCatalog
        url, cid = request.getfixturevalue("lumina")
        scan_as_lumina(url, cid, PHOTOS)
        yield lambda: PostgresCatalog(url)


def test_twelve_code_words_round_trip(opener, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    with opener() as cat:
        rows = cat.upsert_images(records)
        ids, codes = cat.all_codes(ALGORITHM_VERSION)
        assert codes.dtype == np.uint64 and codes.shape == (len(records), CODE_WORDS) and ids.dtype == np.int64
        want = {row.index_id: rec.codes.tolist() for row, rec in zip(rows, records)}
        assert ids.tolist() == sorted(want) and {i: c.tolist() for i, c in zip(ids.tolist(), codes)} == want
        # A rehash replaces the geometry words with the classic ones.
        again = dataclasses.replace(records[0], codes=words(99))
        cat.upsert_images([again])
        ids, codes = cat.all_codes(ALGORITHM_VERSION)
        assert codes[ids.tolist().index(rows[0].index_id)].tolist() == again.codes.tolist()
        with pytest.raises(CatalogError, match="12 code words"):  # 4 words would store no geometry
            cat.upsert_images([dataclasses.replace(records[1], codes=records[1].codes[:CLASSIC_WORDS])])
        assert cat.all_codes(ALGORITHM_VERSION)[1][ids.tolist().index(rows[1].index_id)].tolist() == \
            records[1].codes.tolist()


def test_geometry_is_stored_as_64_big_endian_bytes(opener, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    """The stored form (catalog/words.py): the geometry words big-endian, one BLOB or BYTEA."""
    with opener() as cat:
        cat.upsert_images(records[:1])
        if hasattr(cat, "path"):
            stored = cat.conn.execute("SELECT geometry FROM images").fetchone()[0]
        else:
            stored = cat.conn.execute("SELECT geometry FROM lumina_dedup_images").fetchone()[0]
        assert bytes(stored) == records[0].codes[CLASSIC_WORDS:].astype(">u8").tobytes()
        assert len(stored) == 8 * GEO_WORDS


def test_damaged_geometry_is_refused(opener, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    with opener() as cat:
        cat.upsert_images(records[:1])
        if hasattr(cat, "path"):
            cat.conn.execute("UPDATE images SET geometry = ?", (b"\x01" * 7,))
        else:
            cat.conn.execute("UPDATE lumina_dedup_images SET geometry = %s", (b"\x01" * 7,))
        with pytest.raises(CatalogError):
            cat.all_codes(ALGORITHM_VERSION)


def test_five_column_pairs_round_trip(opener, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    with opener() as cat:
        ids = np.array([r.index_id for r in cat.upsert_images(records)], dtype=np.int64)
        a, b = ids[[0, 0, 1]], ids[[1, 2, 2]]
        dist = np.array([[0, 1, 2, 3, 2**24], [64, 64, 64, 64, 2**24 - 1], [9, 8, 7, 6, 0]], dtype=np.int32)
        cat.replace_pairs(None, a, b, dist, None)
        got_a, got_b, got = cat.pairs()
        assert got.dtype == np.int32 and got.shape == (3, PAIR_COLUMNS)
        assert {(x, y): d for x, y, d in zip(got_a.tolist(), got_b.tolist(), map(tuple, got.tolist()))} == \
            {(x, y): d for x, y, d in zip(a.tolist(), b.tolist(), map(tuple, dist.tolist()))}
        # Four columns (no verdicts yet) mix with five; what the engine keeps in hand agrees.
        before = (got_a, got_b, got)
        new_a, new_b, new_dist = ids[[1]], ids[[2]], np.array([[1, 1, 1, 1]], np.uint8)
        cat.replace_pairs(ids[[1]], new_a, new_b, new_dist, None)
        after, kept = cat.pairs(), pairs_after_replace(before, ids[[1]], new_a, new_b, new_dist)
        for g, w in zip(after, kept):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
        assert {(x, y): d for x, y, d in zip(after[0].tolist(), after[1].tolist(), after[2].tolist())} == {
            (int(ids[0]), int(ids[2])): [64, 64, 64, 64, 2**24 - 1], (int(ids[1]), int(ids[2])): [1, 1, 1, 1, 0]}
        with pytest.raises(CatalogError):
            cat.replace_pairs(None, a, b, np.zeros((3, 3), np.int32), None)



def test_storing_pairs_leaves_the_sqlite_catalogs_references_checked(
        tmp_path: Path, records: list[ImageRecord], monkeypatch: pytest.MonkeyPatch) -> None:
    """The pairs are stored with the foreign-key checks off (their ids come from the images
    table), and the checks are back on after, also when the store failed: a forgotten image
    still takes its pairs with it, and a pair naming no image is refused."""
    from lumina_plugin.catalog.sqlite import SqliteCatalog
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with SqliteCatalog(tmp_path / "cat.db") as cat:
        ids = np.array([r.index_id for r in cat.upsert_images(records)], dtype=np.int64)
        with pytest.raises(CatalogError):
            cat.replace_pairs(None, ids[[0]], ids[[1]], np.zeros((1, 3), np.int32), None)
        assert cat.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        cat.replace_pairs(None, ids[[0, 1]], ids[[1, 2]], np.ones((2, PAIR_COLUMNS), np.int32), None)
        assert cat.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert len(cat.pairs()[0]) == 2
        gone = cat.conn.execute("SELECT id FROM images WHERE index_id=?", (int(ids[0]),)).fetchone()[0]
        cat.conn.execute("DELETE FROM images WHERE id=?", (gone,))
        assert cat.pairs()[0].tolist() == [int(ids[1])]
        with pytest.raises(sqlite3.IntegrityError):
            cat.conn.execute("INSERT INTO duplicate_pairs (catalog_id, image_1, image_2, hash_type, distance)"
                             " VALUES (?, 'nobody-a', 'nobody-b', 'ahash', 0)", (cat.catalog_id,))

def test_pair_rows() -> None:
    assert pair_rows(np.array([[1, 2, 3, 4]], np.uint8)).tolist() == [[1, 2, 3, 4, 0]]
    assert pair_rows(np.array([[1, 2, 3, 4, 2**24]])).dtype == np.int32
    assert pair_rows(np.empty((0, 4), np.uint8)).shape == (0, PAIR_COLUMNS)
    with pytest.raises(CatalogError):
        pair_rows(np.zeros(5))


# -- catalogs made before the geometry words -------------------------------------------------
def _old_sqlite(path: Path, photos: list[Path]) -> list[str]:
    """A catalog as version 1 wrote it: two photos hashed with version 1 and their pair (one row
    per hash). Returns the photos' image ids."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SQLITE_V1)
    conn.execute("INSERT INTO catalogs VALUES ('c1', 'old', NULL, '[]', 't', 't')")
    ids = []
    for k, (photo, codes) in enumerate(zip(photos, OLD_CODES)):
        ids.append(f"id{k}")
        conn.execute("INSERT INTO images (id, catalog_id, index_id, source_path, checksum, size_bytes, mtime_ns,"
                     " ahash, dhash, phash, whash, hash_version, created_at, updated_at)"
                     " VALUES (?, 'c1', ?, ?, 'sum', 1, 1, ?, ?, ?, ?, 1, 't', 't')",
                     (ids[-1], k + 1, str(photo), *(format(c, "016x") for c in codes)))
    conn.executemany("INSERT INTO duplicate_pairs VALUES ('c1', 'id0', 'id1', ?, ?, 't', NULL)",
                     [("ahash", 1), ("dhash", 2), ("phash", 3), ("whash", 4)])
    conn.execute("INSERT INTO dedup_meta VALUES ('next_index_id', '3')")
    conn.close()
    return ids


def test_old_sqlite_catalog_gains_the_columns_and_keeps_its_rows(tmp_path: Path,
                                                                  records: list[ImageRecord]) -> None:
    from lumina_plugin.catalog.sqlite import SqliteCatalog
    path = tmp_path / "old.db"
    _old_sqlite(path, PHOTOS[:2])
    with SqliteCatalog(path) as cat:
        assert "geometry" in {r[1] for r in cat.conn.execute("PRAGMA table_info(images)")}
        assert "geo" in {r[1] for r in cat.conn.execute("PRAGMA table_info(duplicate_pairs)")}
        assert cat.conn.execute("SELECT value FROM dedup_meta WHERE key='schema_version'").fetchone() == ("2",)
        assert cat.catalog_id == "c1"
        stored = cat.stored_files([str(p) for p in PHOTOS])
        assert {p: (s.id, s.index_id, s.hash_version) for p, s in stored.items()} == {
            str(PHOTOS[0]): ("id0", 1, 1), str(PHOTOS[1]): ("id1", 2, 1)}
        assert cat.unhashed_paths(ALGORITHM_VERSION) == sorted(str(p) for p in PHOTOS[:2])  # rehashed on first use
        ids, codes = cat.all_codes(1)
        assert ids.tolist() == [1, 2] and codes.shape == (2, CODE_WORDS)
        assert codes[:, :CLASSIC_WORDS].tolist() == [list(c) for c in OLD_CODES] and not codes[:, CLASSIC_WORDS:].any()
        a, b, dist = cat.pairs()
        assert (a.tolist(), b.tolist(), dist.tolist()) == ([1], [2], [[1, 2, 3, 4, 0]])
        assert cat.all_codes(ALGORITHM_VERSION)[0].size == 0  # versions never mix
        # The rehash: same rows, same ids, the geometry words stored.
        rows = cat.upsert_images(records)
        assert [(r.id, r.index_id) for r in rows[:2]] == [("id0", 1), ("id1", 2)] and rows[2].index_id == 3
        ids, codes = cat.all_codes(ALGORITHM_VERSION)
        assert codes.tolist() == [r.codes.tolist() for r in records]
        cat.replace_pairs(None, ids[[0]], ids[[1]], np.array([[0, 0, 0, 0, 77]]), None)
        assert cat.pairs()[2].tolist() == [[0, 0, 0, 0, 77]]
    with SqliteCatalog(path) as cat:  # opening again changes nothing
        assert cat.all_codes(ALGORITHM_VERSION)[1].tolist() == [r.codes.tolist() for r in records]
        assert cat.pairs()[2].tolist() == [[0, 0, 0, 0, 77]]


def test_newer_sqlite_schema_version_is_kept(tmp_path: Path) -> None:
    from lumina_plugin.catalog.sqlite import SqliteCatalog
    with SqliteCatalog(tmp_path / "cat.db") as cat:
        cat.conn.execute("UPDATE dedup_meta SET value='3' WHERE key='schema_version'")
    with SqliteCatalog(tmp_path / "cat.db") as cat:
        assert cat.conn.execute("SELECT value FROM dedup_meta WHERE key='schema_version'").fetchone() == ("3",)


def _columns(url: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in query(url, "SELECT table_name, column_name FROM information_schema.columns"
                                    " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        out.setdefault(table, []).append(column)
    return out


def test_old_postgres_install_gains_the_columns_keeps_its_rows_and_uninstalls(  # noqa: F811
        lumina: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        records: list[ImageRecord]) -> None:
    import psycopg

    from lumina_plugin.catalog.postgres import SCHEMA_VERSION, PostgresCatalog, uninstall
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    url, cid = lumina
    scan_as_lumina(url, cid, PHOTOS)
    luminas = _columns(url)
    image_ids = [r[0] for r in query(url, "SELECT id FROM images ORDER BY source_path")]
    signed = [[c - 2**64 if c >= 2**63 else c for c in codes] for codes in OLD_CODES]
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(POSTGRES_V1)
        for image_id, path, old in zip(image_ids, sorted(str(p) for p in PHOTOS), signed):
            conn.execute("INSERT INTO lumina_dedup_images (image_id, catalog_id, hashed_path, checksum, size_bytes,"
                         " mtime_ns, ahash, dhash, phash, whash, hash_version, hashed_at)"
                         " VALUES (%s, %s, %s, 'sum', 1, 1, %s, %s, %s, %s, 1, now())",
                         (image_id, cid, path, *old))
        conn.execute("INSERT INTO lumina_dedup_pairs VALUES (%s, 1, 2, 1, 2, 3, 4)", (cid,))
    with PostgresCatalog(url) as cat:
        ours = _columns(url)
        assert ours["lumina_dedup_images"][-1] == "geometry" and ours["lumina_dedup_pairs"][-1] == "geo"
        assert query(url, "SELECT value FROM lumina_dedup_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        ids, codes = cat.all_codes(1)
        assert ids.tolist() == [1, 2] and codes.dtype == np.uint64 and codes.shape == (2, CODE_WORDS)
        assert codes[:, :CLASSIC_WORDS].tolist() == [list(c) for c in OLD_CODES] and not codes[:, CLASSIC_WORDS:].any()
        assert [d.tolist() for d in cat.pairs()] == [[1], [2], [[1, 2, 3, 4, 0]]]
        assert set(cat.unhashed_paths(ALGORITHM_VERSION)) == {str(p) for p in PHOTOS}  # rehashed on first use
        rows = cat.upsert_images(records)
        by_path = {r.path: row.index_id for r, row in zip(records, rows)}
        assert sorted(by_path.values())[:2] == [1, 2]  # the old rows keep their index ids
        ids, codes = cat.all_codes(ALGORITHM_VERSION)
        assert {i: c.tolist() for i, c in zip(ids.tolist(), codes)} == \
            {by_path[r.path]: r.codes.tolist() for r in records}
        cat.replace_pairs(None, ids[[0]], ids[[1]], np.array([[0, 0, 0, 0, 2**24]]), None)
        assert cat.pairs()[2].tolist() == [[0, 0, 0, 0, 2**24]]
    with PostgresCatalog(url) as cat:  # opening again changes nothing
        assert cat.pairs()[2].tolist() == [[0, 0, 0, 0, 2**24]]
    assert {t: c for t, c in _columns(url).items() if not t.startswith("lumina_dedup_")} == luminas
    uninstall(url)
    assert _columns(url) == luminas  # ours gone, Lumina's as they were
    assert query(url, "SELECT count(*) FROM pg_class WHERE left(relname, 13) = 'lumina_dedup_'"
                      " AND relnamespace = current_schema()::regnamespace") == [(0,)]  # the sequence too
    assert query(url, "SELECT count(*) FROM images") == [(len(PHOTOS),)]
