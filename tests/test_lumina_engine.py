"""The whole engine on Lumina's PostgreSQL catalog: sample_catalog/ scanned as Lumina would,
then Find Duplicates, re-run, undo, the on-import path, Lumina's duplicates page, uninstall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_lumina_support import (  # noqa: F401
    SAMPLE,
    expected_groups_in_lumina,
    lumina,
    lumina_db,
    now,
    pg_database,
    query,
    sample_photos,
    scan_as_lumina,
)

from lumina_plugin.config import Config
from lumina_plugin.engine import Engine, RunReport
from lumina_plugin.model import ALGORITHM_VERSION

OURS = "SELECT i.source_path, t.name, it.source, it.confidence, t.category, it.created_at IS NOT NULL," \
       " (SELECT p.name FROM tags p WHERE p.id = t.parent_id) FROM image_tags it JOIN tags t ON t.id = it.tag_id" \
       " JOIN images i ON i.id = it.image_id WHERE t.name LIKE 'lumina-dedup:%%' ORDER BY 1, 2"


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def scanned(lumina: tuple[str, str]) -> tuple[str, str, list[str]]:
    """A Lumina catalog of sample_catalog/ (byte copies dropped, as Lumina does), plus one
    result of Lumina's own Find Duplicates: a dup-* tag and a duplicate_groups row."""
    url, cid = lumina
    kept = scan_as_lumina(url, cid, sample_photos())
    a, b = query(url, "SELECT id FROM images ORDER BY source_path LIMIT 2")
    query(url, "INSERT INTO tags (catalog_id, name, category, description, created_at)"
               " VALUES (%s, 'dup-0f0f0f0f', 'duplicate', 'Duplicate group with dhash: 0f0f', %s) RETURNING id",
          (cid, now()))
    query(url, "INSERT INTO image_tags (image_id, tag_id, confidence, source, created_at) SELECT %s, id, 1.0,"
               " 'duplicate_detection', %s FROM tags WHERE name = 'dup-0f0f0f0f' RETURNING 1", (a[0], now()))
    gid = query(url, "INSERT INTO duplicate_groups (catalog_id, primary_image_id, similarity_type, confidence,"
                     " reviewed, created_at) VALUES (%s, %s, 'perceptual', 70, false, %s) RETURNING id",
                (cid, a[0], now()))[0][0]
    query(url, "INSERT INTO duplicate_members (group_id, image_id, similarity_score) VALUES (%s, %s, 100),"
               " (%s, %s, 70) RETURNING 1", (gid, a[0], gid, b[0]))
    return url, cid, kept


def luminas_own(url: str) -> dict[str, Any]:
    """Everything of Lumina's that we must never change (our mirror rows excluded)."""
    ours = "SELECT lumina_group_id FROM lumina_dedup_groups WHERE lumina_group_id IS NOT NULL" \
        if query(url, "SELECT to_regclass('lumina_dedup_groups')")[0][0] else "SELECT -1"
    return {
        "images": query(url, "SELECT * FROM images ORDER BY id"),
        "tags": query(url, "SELECT t.name, it.* FROM image_tags it JOIN tags t ON t.id = it.tag_id"
                           " WHERE t.name NOT LIKE 'lumina-dedup:%%' ORDER BY 1, 2"),
        "groups": query(url, "SELECT g.*, m.* FROM duplicate_groups g JOIN duplicate_members m ON m.group_id = g.id"
                             f" WHERE g.id NOT IN ({ours}) ORDER BY g.id, m.image_id"),
    }


def psycopg_conn(url: str) -> Any:
    import psycopg

    from lumina_plugin.catalog.postgres import split_url
    return psycopg.connect(split_url(url)[0], autocommit=True)


def find(url: str, config: Config | None = None) -> RunReport:
    """Find Duplicates as the bridge runs it: hash what Lumina has that we have not, then group."""
    with Engine(url, config) as engine:
        return engine.find_duplicates(engine.catalog.unhashed_paths(ALGORITHM_VERSION))  # type: ignore[attr-defined]


def groups_of(report: RunReport) -> set[frozenset[str]]:
    return {frozenset([report.images[g.keeper].path, *(report.images[m.index_id].path for m in g.members)])
            for g in report.groups}


def test_find_duplicates_tags_luminas_tables(scanned: tuple[str, str, list[str]]) -> None:
    url, _, kept = scanned
    before = luminas_own(url)
    report = find(url)
    assert len(kept) == 38 and report.hashed == 38 and not report.errors
    assert groups_of(report) == expected_groups_in_lumina(kept)
    rows = query(url, OURS)
    tagged = {r[0] for r in rows}
    assert tagged == {p for g in groups_of(report) for p in g}
    keepers = {report.images[g.keeper].path for g in report.groups}
    for path, name, source, confidence, category, has_created, parent in rows:
        assert (source, confidence, category, has_created) == ("lumina-dedup", 1.0, "duplicate", True)
        assert parent == (None if name == "lumina-dedup:duplicate" else "lumina-dedup:duplicate")
        if name == "lumina-dedup:keeper":
            assert path in keepers
    assert {(p, n) for p, n, *_ in rows if n == "lumina-dedup:duplicate"} == {(p, "lumina-dedup:duplicate") for p in tagged}
    assert luminas_own(url) == before  # images, dup-* tags and Lumina's own group untouched
    # Lumina's own group, and a copy of each of ours for its duplicates page (on by default).
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 1 + len(report.groups)


def test_rerun_changes_nothing_and_undo_restores(scanned: tuple[str, str, list[str]]) -> None:
    url, _, _ = scanned
    before = luminas_own(url)
    find(url)
    tags = query(url, OURS + ", 6")
    again = find(url)
    assert again.hashed == 0 and len(again.diff or ()) == 0
    assert query(url, OURS + ", 6") == tags
    with Engine(url) as engine:
        undone = engine.undo()
        assert undone is not None and undone["kind"] == "find-duplicates"
        assert query(url, OURS) == []
        assert luminas_own(url) == before
        assert engine.undo() is None
    assert find(url).diff.summary()["tags_added"] == len(tags)  # type: ignore[union-attr]


def test_import_path_tags_copies_of_photos_already_there(lumina: tuple[str, str]) -> None:
    url, cid = lumina
    photos = sample_photos()
    originals = [p for p in photos if p.relative_to(SAMPLE).parts[0] not in ("backup", "exports", "downloads", "phone")]
    first = scan_as_lumina(url, cid, originals)
    find(url)
    assert query(url, OURS) == []  # the originals hold no duplicates of one another
    rest = scan_as_lumina(url, cid, [p for p in photos if p not in originals])
    with Engine(url) as engine:
        report = engine.import_paths(rest)
    assert report.hashed == len(rest)
    assert groups_of(report) == expected_groups_in_lumina(first + rest)
    assert len(find(url).diff or ()) == 0  # a whole-catalog pass agrees with the import path


def test_show_in_lumina_survives_luminas_own_run(scanned: tuple[str, str, list[str]]) -> None:
    url, cid, _ = scanned
    shown = url  # on by default
    report = find(shown)
    mirrored = query(url, "SELECT g.id, g.primary_image_id, g.similarity_type, g.confidence, g.reviewed,"
                          " array_agg(m.image_id || ':' || m.similarity_score ORDER BY m.image_id)"
                          " FROM duplicate_groups g JOIN duplicate_members m ON m.group_id = g.id"
                          " WHERE g.id IN (SELECT lumina_group_id FROM lumina_dedup_groups) GROUP BY g.id")
    assert len(mirrored) == len(report.groups)
    by_keeper = {report.images[g.keeper].id: g for g in report.groups}
    for _, keeper, stype, confidence, reviewed, members in mirrored:
        group = by_keeper[keeper]
        assert (stype, confidence, reviewed) == (group.similarity_type, group.confidence, False)
        assert f"{keeper}:100" in members and len(members) == len(group.members) + 1
    our_state = query(url, OURS)
    # Lumina's own Find Duplicates starts by deleting every group of the catalog.
    query(url, "DELETE FROM duplicate_groups WHERE catalog_id = %s RETURNING 1", (cid,))
    assert query(url, OURS) == our_state
    assert query(url, "SELECT count(*) FROM lumina_dedup_groups")[0][0] == len(report.groups)
    again = find(shown)
    assert len(again.diff or ()) == 0
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == len(report.groups)
    find(url + "&show_in_lumina=0")  # the option turned off: our copies leave Lumina's page
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 0
    assert query(url, OURS) == our_state


def test_uninstall_removes_every_row_we_wrote(scanned: tuple[str, str, list[str]]) -> None:
    from lumina_plugin.catalog.postgres import uninstall
    from lumina_plugin.lumina import bridge
    url, cid, _ = scanned
    # A Find Duplicates job our router created, and one of Lumina's own.
    with psycopg_conn(url) as conn:
        bridge.create_job(conn, cid, "detect_duplicates", {"similarity_threshold": 5})
        conn.execute("INSERT INTO jobs (id, catalog_id, job_type, status, parameters, created_at, updated_at)"
                     " VALUES ('lumina-own', %s, 'detect_duplicates', 'SUCCESS', '{}', %s, %s)", (cid, now(), now()))
    before = luminas_own(url)
    find(url + "&show_in_lumina=1")
    removed = uninstall(url)
    assert removed["image_tags"] > 0 and removed["tags"] == 1 + len(Config().tags.roles()) and removed["tables"] == 8
    assert removed["jobs"] == 1 and query(url, "SELECT id FROM jobs") == [("lumina-own",)]
    assert query(url, "SELECT count(*) FROM tags WHERE name LIKE 'lumina-dedup:%%'")[0][0] == 0
    assert query(url, "SELECT count(*) FROM pg_class WHERE relname LIKE 'lumina_dedup%%'")[0][0] == 0
    assert query(url, "SELECT * FROM images ORDER BY id") == before["images"]
    assert query(url, "SELECT t.name, it.* FROM image_tags it JOIN tags t ON t.id = it.tag_id ORDER BY 1, 2") \
        == before["tags"]
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 1  # Lumina's own is still there
    assert len(find(url).groups) == 8  # and it can be turned on again


def test_cli_lumina_find_duplicates_status_uninstall(scanned: tuple[str, str, list[str]],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lumina_plugin.cli import main
    url, cid, kept = scanned
    assert main(["lumina", "find-duplicates", "--url", url, "--catalog", cid, "--show-in-lumina", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {frozenset(m["path"] for m in g["members"]) for g in out["groups"]} == expected_groups_in_lumina(kept)
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 1 + len(out["groups"])
    assert main(["lumina", "status", "--url", url, "--catalog", cid, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["waiting"] == 0 and status["runs"][0]["kind"] == "find-duplicates"
    assert main(["lumina", "undo", "--url", url, "--catalog", cid]) == 0
    assert query(url, OURS) == [] and query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 1
    assert main(["lumina", "find-duplicates", "--url", url, "--catalog", cid, "--no-show-in-lumina", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"]  # tagged...
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 1  # ...but the page is left to Lumina
    assert main(["lumina", "uninstall", "--url", url]) == 2
    assert main(["lumina", "uninstall", "--url", url, "--yes"]) == 0
    assert query(url, "SELECT count(*) FROM duplicate_groups")[0][0] == 1
    assert main(["lumina", "status", "--url", url, "--catalog", "no-such-catalog"]) == 1
