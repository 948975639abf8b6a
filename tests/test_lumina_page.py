"""Lumina's own duplicates page lists our groups with no option set, in step with our tags
(issue 20, item 2): a run, a decision and an undo update both; Lumina's own detector, if run
anyway, deletes our copies and our next run writes them back; ``show_in_lumina = false`` and
uninstall take them away. On the machine's PostgreSQL (``test_lumina_support``).

The page is read as Lumina's route reads it (``test_lumina_support.lumina_page``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_lumina_support import (  # noqa: F401
    SAMPLE,
    expected_groups_in_lumina,
    lumina,
    lumina_db,
    lumina_page,
    now,
    pg_database,
    query,
    sample_photos,
    scan_as_lumina,
    write_config,
)

from lumina_plugin.config import Config
from lumina_plugin.engine import Engine, RunReport

OURS = "SELECT it.image_id, t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id" \
       " WHERE t.name LIKE 'lumina-dedup:%%' ORDER BY 1, 2"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user config file: the settings are the defaults."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def ours(url: str) -> set[frozenset[str]]:
    """Our groups as our own tables hold them (the truth the page must follow)."""
    rows = query(url, "SELECT g.id, i.source_path FROM lumina_dedup_groups g JOIN images i ON i.id = g.keeper_id"
                      " UNION ALL SELECT m.group_id, i.source_path FROM lumina_dedup_members m"
                      " JOIN images i ON i.id = m.image_id")
    groups: dict[int, set[str]] = {}
    for gid, path in rows:
        groups.setdefault(gid, set()).add(path)
    return {frozenset(g) for g in groups.values()}


def find(url: str) -> RunReport:
    with Engine(url, Config.load()) as engine:
        return engine.find_duplicates(engine.catalog.unhashed_paths(engine.version))  # type: ignore[attr-defined]


def test_page_lists_our_groups_with_no_option_set(lumina: tuple[str, str]) -> None:
    url, cid = lumina
    kept = scan_as_lumina(url, cid, sample_photos())
    find(url)
    assert lumina_page(url, cid) == expected_groups_in_lumina(kept) == ours(url)
    assert len(lumina_page(url, cid)) == 8


def test_decision_and_undo_keep_the_page_in_step(lumina: tuple[str, str]) -> None:
    url, cid = lumina
    kept = scan_as_lumina(url, cid, sample_photos())
    find(url)
    before = lumina_page(url, cid)
    group = sorted(sorted(g) for g in before)[0]
    with Engine(url, Config.load()) as engine:  # `lumina-dedup decide not-duplicate A B` for each member
        for other in group[1:]:
            engine.decide("not-duplicate", [group[0], other])
    assert frozenset(group) not in lumina_page(url, cid)
    assert lumina_page(url, cid) == ours(url) != before
    with Engine(url, Config.load()) as engine:
        while lumina_page(url, cid) != before:  # undo the decisions' runs, newest first
            assert engine.undo() is not None
    assert lumina_page(url, cid) == ours(url) == expected_groups_in_lumina(kept)


def test_luminas_own_detector_then_our_next_run(lumina: tuple[str, str]) -> None:
    """Lumina's detector (lumina/jobs/parallel_duplicates.py at 14b9ea8) begins with
    ``DELETE FROM duplicate_groups WHERE catalog_id = :catalog_id`` (members go by ON DELETE
    CASCADE), then inserts its own groups. Our tags and tables stay; our next run (a scan's,
    the button's, a re-run) puts our copies back beside Lumina's groups, told apart by
    ``lumina_dedup_groups.lumina_group_id``."""
    url, cid = lumina
    kept = scan_as_lumina(url, cid, sample_photos())
    find(url)
    tags = query(url, OURS)
    query(url, "DELETE FROM duplicate_groups WHERE catalog_id = %s RETURNING 1", (cid,))
    a, b = query(url, "SELECT id FROM images ORDER BY source_path LIMIT 2")
    own = query(url, "INSERT INTO duplicate_groups (catalog_id, primary_image_id, similarity_type, confidence,"
                     " reviewed, created_at) VALUES (%s, %s, 'perceptual', 70, false, %s) RETURNING id",
                (cid, a[0], now()))[0][0]
    query(url, "INSERT INTO duplicate_members (group_id, image_id, similarity_score) VALUES (%s, %s, 100),"
               " (%s, %s, 70) RETURNING 1", (own, a[0], own, b[0]))
    assert query(url, OURS) == tags and ours(url) == expected_groups_in_lumina(kept)
    again = find(url)
    assert len(again.diff or ()) == 0 and query(url, OURS) == tags
    mirrors = {r[0] for r in query(url, "SELECT lumina_group_id FROM lumina_dedup_groups")}
    assert len(mirrors) == 8 and own not in mirrors
    assert lumina_page(url, cid) == expected_groups_in_lumina(kept) | {frozenset(query(
        url, "SELECT source_path FROM images WHERE id = ANY(%s)", ([a[0], b[0]],))[i][0] for i in (0, 1))}


def test_opt_out_and_uninstall_take_our_groups_off_the_page(lumina: tuple[str, str], tmp_path: Path) -> None:
    from lumina_plugin.catalog.postgres import uninstall
    url, cid = lumina
    scan_as_lumina(url, cid, sample_photos())
    find(url)
    assert len(lumina_page(url, cid)) == 8
    write_config(tmp_path / "config", show_in_lumina=False)  # the opt-out, in the user's config file
    find(url)
    assert lumina_page(url, cid) == set() and len(ours(url)) == 8
    (tmp_path / "config" / "lumina-dedup" / "config.toml").unlink()
    find(url)
    assert len(lumina_page(url, cid)) == 8
    uninstall(url)
    assert lumina_page(url, cid) == set()
    assert query(url, "SELECT count(*) FROM duplicate_members")[0][0] == 0
