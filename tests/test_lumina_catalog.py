"""The Catalog contract, run against both implementations: SQLite and Lumina's PostgreSQL.

Every test takes ``cat`` (an open catalog) and ``admit`` (what the host does before the
engine sees a file: nothing for SQLite; for Lumina, its scan inserts the image row). Real
photos from sample_catalog/, a real PostgreSQL database with Lumina's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from test_lumina_support import SAMPLE, lumina, lumina_db, pg_database, query, scan_as_lumina  # noqa: F401  (fixtures)

from lumina_plugin.catalog.interface import CatalogError, CatalogLockedError, info_of, pairs_after_replace
from lumina_plugin.config import TagNames
from lumina_plugin.ingest.pipeline import record_for
from lumina_plugin.model import ALGORITHM_VERSION, GroupRow, ImageRecord, TagDiff
from lumina_plugin.tagging import desired_state, diff_states

PHOTOS = [SAMPLE / p for p in ("2015/2015-10-29/IMG_8812.jpg", "exports/IMG_8812_crop.jpg",
                               "2016/2016-08-19/DSC04512.jpg", "exports/web/DSC04512_small.jpg",
                               "2018/2018-10-13/DSC00211.jpg")]
NAMES = TagNames()


@pytest.fixture(scope="module")
def records() -> list[ImageRecord]:
    return [record_for(str(p), 250_000_000) for p in PHOTOS]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[Callable[[], object], Callable[[list[Path]], None]]]:
    """(open a catalog, admit files) for one implementation."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if request.param == "sqlite":
        from lumina_plugin.catalog.sqlite import SqliteCatalog
        yield (lambda **kw: SqliteCatalog(tmp_path / "cat.db", **kw)), (lambda paths: None)
    else:
        from lumina_plugin.catalog.postgres import PostgresCatalog
        url, cid = request.getfixturevalue("lumina")
        yield (lambda **kw: PostgresCatalog(url, **kw)), (lambda paths: scan_as_lumina(url, cid, paths) and None)


@pytest.fixture
def cat(backend):  # type: ignore[no-untyped-def]
    open_, admit = backend
    admit(PHOTOS)
    catalog = open_()
    yield catalog
    catalog.close()


def test_upsert_then_stored_files_and_codes(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    rows = cat.upsert_images(records)
    assert len({r.index_id for r in rows}) == len(records) and all(r.index_id > 0 for r in rows)
    stored = cat.stored_files([r.path for r in records])
    assert {p: (s.id, s.index_id, s.size_bytes, s.mtime_ns, s.hash_version) for p, s in stored.items()} == {
        r.path: (row.id, row.index_id, r.size_bytes, r.mtime_ns, ALGORITHM_VERSION) for r, row in zip(records, rows)}
    ids, codes = cat.all_codes(ALGORITHM_VERSION)
    by_id = {row.index_id: rec.codes for row, rec in zip(rows, records)}
    assert sorted(ids.tolist()) == sorted(by_id) and codes.dtype == np.uint64
    for i, c in zip(ids.tolist(), codes):
        assert c.tolist() == by_id[i].tolist()  # all 64 bits survive, the top one included
    assert cat.all_codes(ALGORITHM_VERSION + 1)[0].size == 0


def test_reupsert_keeps_ids(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    first = cat.upsert_images(records)
    again = cat.upsert_images(records[:2])
    assert [(r.id, r.index_id) for r in again] == [(r.id, r.index_id) for r in first[:2]]


def test_images_describe_the_photos(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    rows = cat.upsert_images(records)
    infos = cat.images()
    assert set(infos) == {r.index_id for r in rows}
    for rec, row in zip(records, rows):
        info = infos[row.index_id]
        assert (info.id, info.path, info.checksum, info.width, info.height, info.format, info.camera) == \
            (row.id, rec.path, rec.checksum, rec.width, rec.height, rec.format, rec.camera)
    assert set(cat.images([rows[0].index_id])) == {rows[0].index_id}
    assert cat.paths_of([rows[1].id]) == {rows[1].id: records[1].path}


def test_pairs_replace_whole_and_partial(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    ids = np.array([r.index_id for r in cat.upsert_images(records)], dtype=np.int64)
    dist = np.array([[1, 2, 3, 4, 0], [5, 6, 7, 8, 2**24]], dtype=np.int32)  # 4 distances, the geometric verdict
    cat.replace_pairs(None, ids[[1, 2]], ids[[0, 3]], dist, None)  # given b < a: stored a < b
    a, b, d = cat.pairs()
    assert list(zip(a.tolist(), b.tolist())) == sorted([(min(ids[0], ids[1]), max(ids[0], ids[1])),
                                                         (min(ids[2], ids[3]), max(ids[2], ids[3]))])
    assert d.dtype == np.int32 and sorted(map(tuple, d.tolist())) == [(1, 2, 3, 4, 0), (5, 6, 7, 8, 2**24)]
    cat.replace_pairs(ids[[2]], ids[[2]], ids[[4]], np.array([[0, 0, 1, 1]], np.uint8), None)  # no verdicts: 0
    a, b, _ = cat.pairs()
    assert len(a) == 2 and int(ids[3]) not in b.tolist() + a.tolist()
    assert sorted(map(tuple, cat.pairs()[2].tolist())) == [(0, 0, 1, 1, 0), (1, 2, 3, 4, 0)]
    cat.replace_pairs(None, np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 4), np.uint8), None)
    assert len(cat.pairs()[0]) == 0 and cat.pairs()[2].shape == (0, 5)


def test_what_the_engine_keeps_in_hand_is_what_it_would_read(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    """The engine never reads back what it just wrote: ``info_of`` and ``pairs_after_replace``
    must give exactly what ``images()`` and ``pairs()`` give after the write."""
    rows = cat.upsert_images(records)
    infos = cat.images()
    assert all(infos[row.index_id] == info_of(rec, row.index_id, row.id) for rec, row in zip(records, rows))
    ids = np.array([r.index_id for r in rows], dtype=np.int64)
    x, y = ids[[0, 1, 2, 3]], ids[[1, 2, 3, 4]]
    cat.replace_pairs(None, np.minimum(x, y), np.maximum(x, y), np.arange(20, dtype=np.int32).reshape(4, 5) * 9, None)
    before = cat.pairs()
    batch = ids[[2, 4]]  # a batch re-hashed: its old pairs go, its new ones come
    x, y = ids[[0, 2]], ids[[4, 4]]
    a, b, dist = np.minimum(x, y), np.maximum(x, y), np.array([[1, 1, 2, 2, 2**24 - 1], [3, 3, 4, 4, 0]], np.int32)
    order = np.lexsort((b, a))
    cat.replace_pairs(batch, a[order], b[order], dist[order], None)
    got, want = cat.pairs(), pairs_after_replace(before, batch, a[order], b[order], dist[order])
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    assert len(got[0]) == 3  # (0, 1) stays; (1, 2), (2, 3), (3, 4) go; (0, 4) and (2, 4) come


def test_remove_paths_forgets_codes_and_pairs(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    ids = np.array([r.index_id for r in cat.upsert_images(records)], dtype=np.int64)
    cat.replace_pairs(None, ids[[0]], ids[[1]], np.array([[1, 1, 1, 1]], np.uint8), None)
    assert cat.remove_paths([records[0].path]) == [int(ids[0])]
    assert int(ids[0]) not in cat.all_codes(ALGORITHM_VERSION)[0].tolist()
    assert len(cat.pairs()[0]) == 0


def _state(cat, rows, records):  # type: ignore[no-untyped-def]
    group = GroupRow(rows[0].id, "perceptual", 90, "larger", ((rows[1].id, "edit", 5),))
    return desired_state([group], NAMES)


def test_tags_apply_idempotent_and_undo(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    rows = cat.upsert_images(records)
    empty = cat.tag_state()
    want = _state(cat, rows, records)
    run = cat.apply_tag_diff(diff_states(empty, want), "find-duplicates", {"groups": 1})
    assert run > 0 and cat.tag_state() == want
    assert len(diff_states(cat.tag_state(), want)) == 0
    # A second run that drops the group, then undo: back to the first run's state.
    cat.apply_tag_diff(diff_states(cat.tag_state(), desired_state([], NAMES)), "find-duplicates", {})
    assert cat.tag_state() == empty
    undone = cat.undo_last()
    assert undone["changes_reversed"] > 0 and undone["tags_removed"] == []
    assert set(undone["tags_restored"]) == set(want.image_tags)  # what XMP sidecars follow
    assert cat.tag_state() == want
    assert set(cat.undo_last()["tags_removed"]) == set(want.image_tags)
    assert cat.tag_state() == empty
    assert cat.undo_last() is None


def test_empty_diff_records_a_run_that_undo_skips(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    cat.upsert_images(records)
    cat.apply_tag_diff(TagDiff((), (), (), ()), "import", {})
    assert cat.undo_last() is None


def test_decisions(cat, records: list[ImageRecord]) -> None:  # type: ignore[no-untyped-def]
    rows = cat.upsert_images(records)
    did = cat.add_decision("not-duplicate", [records[0].path, records[1].path])
    assert cat.add_decision("not-duplicate", [records[1].path, records[0].path]) == did
    cat.add_decision("keeper", [records[2].path])
    got = cat.decisions()
    assert [(d["kind"], {d["index_1"], d["index_2"]}) for d in got] == [
        ("not-duplicate", {rows[0].index_id, rows[1].index_id}), ("keeper", {rows[2].index_id})]
    with pytest.raises(CatalogError):
        cat.add_decision("keeper", [records[0].path, records[1].path])
    assert cat.forget_decision(did) and not cat.forget_decision(did)
    assert len(cat.decisions()) == 1


def test_second_open_waits_then_reports_the_lock(backend) -> None:  # type: ignore[no-untyped-def]
    open_, _ = backend
    with open_() as first:
        with pytest.raises(CatalogLockedError):
            open_(lock_timeout=0.3)
        assert first.catalog_id
    open_(lock_timeout=0.3).close()


def test_postgres_refuses_files_lumina_never_catalogued(lumina, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        records: list[ImageRecord], monkeypatch) -> None:
    from lumina_plugin.catalog.postgres import PostgresCatalog
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    url, cid = lumina
    scan_as_lumina(url, cid, PHOTOS[:1])
    with PostgresCatalog(url) as cat:
        assert cat.index_dir == tmp_path / "lumina-dedup" / f"lumina-{cid}.index"
        with pytest.raises(CatalogError, match="not in Lumina catalog"):
            cat.upsert_images(records[:2])
        assert cat.all_codes(ALGORITHM_VERSION)[0].size == 0  # the batch is all or nothing
        assert cat.stored_files([records[0].path])[records[0].path].hash_version is None
        assert cat.unhashed_paths(ALGORITHM_VERSION) == [records[0].path]


def test_postgres_names_the_catalog(lumina_db: str) -> None:  # noqa: F811
    from test_lumina_support import create_catalog

    from lumina_plugin.catalog.postgres import PostgresCatalog
    with pytest.raises(CatalogError, match="no catalog"):
        PostgresCatalog(lumina_db)
    first = create_catalog(lumina_db, "Family")
    with PostgresCatalog(lumina_db) as cat:
        assert cat.catalog_id == first
    create_catalog(lumina_db, "Work")
    with pytest.raises(CatalogError, match="several catalogs"):
        PostgresCatalog(lumina_db)
    with PostgresCatalog(lumina_db + "&catalog=Family") as cat:
        assert cat.catalog_id == first
    with PostgresCatalog(lumina_db + f"&catalog={first}") as cat:
        assert cat.catalog_name == "Family"


def test_postgres_url_from_luminas_variables() -> None:
    from lumina_plugin.catalog.postgres import lumina_database_url, split_url
    env = {"POSTGRES_HOST": "db", "POSTGRES_PORT": "6543", "POSTGRES_USER": "pg",
           "POSTGRES_PASSWORD": "p@ss/word", "POSTGRES_DB": "lumina"}
    assert lumina_database_url(env) == "postgresql://pg:p%40ss%2Fword@db:6543/lumina"
    assert lumina_database_url({}) == "postgresql://postgres@localhost:5432/lumina"
    assert split_url("postgresql://h/db?sslmode=disable&catalog=x&show_in_lumina=1") == (
        "postgresql://h/db?sslmode=disable", {"catalog": "x", "show_in_lumina": "1"})


def test_not_a_lumina_database(pg_database: str) -> None:  # noqa: F811
    from lumina_plugin.catalog.postgres import PostgresCatalog
    with pytest.raises(CatalogError, match="not a Lumina database"):
        PostgresCatalog(pg_database)
