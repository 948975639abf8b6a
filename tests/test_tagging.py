"""Tags in a real SQLite catalog: idempotent runs, stale tags removed, dry run, undo, import path."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from lumina_plugin.config import Config
from lumina_plugin.engine import Engine

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
EXPECTED = json.loads((SAMPLE / "expected_groups.json").read_text())
RELATION_TAG = {"exact": "exact-copy", "derivative": "derivative", "edit": "edit", "raw+jpeg": "raw-jpeg",
                "burst": "burst-sibling"}


def tag_rows(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute(
            "SELECT i.source_path, t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id"
            " JOIN images i ON i.id = it.image_id"))


def group_rows(db: Path) -> set[tuple[str, frozenset[str]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT g.id, k.source_path, i.source_path FROM duplicate_groups g"
            " JOIN images k ON k.id = g.primary_image_id JOIN duplicate_members m ON m.group_id = g.id"
            " JOIN images i ON i.id = m.image_id").fetchall()
    groups: dict[int, tuple[str, set[str]]] = {}
    for gid, keeper, member in rows:
        groups.setdefault(gid, (keeper, set()))[1].add(member)
    return {(k, frozenset(m)) for k, m in groups.values()}


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.py", "*.md", "*.json"))
    return lib


def test_find_duplicates_tags_each_role(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        report = engine.find_duplicates([library])
    tags = tag_rows(db)
    keepers = {g["keeper"] for g in report.as_json()["groups"]}
    for g in report.as_json()["groups"]:
        for m in g["members"]:
            role = "keeper" if m["path"] in keepers else RELATION_TAG[m["relation"]]
            assert (m["path"], f"lumina-dedup:{role}") in tags
            assert (m["path"], "lumina-dedup:duplicate") in tags
    tagged = {path for path, _ in tags}
    expected = {str(library / p) for g in EXPECTED["groups"] for p in g}
    assert tagged == expected
    assert len(group_rows(db)) == len(EXPECTED["groups"])


def test_rerun_changes_nothing(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        engine.find_duplicates([library])
    before = (tag_rows(db), group_rows(db))
    with Engine(db) as engine:
        report = engine.find_duplicates([library])
    assert report.hashed == 0 and report.unchanged == 40
    assert len(report.diff) == 0
    assert (tag_rows(db), group_rows(db)) == before


def test_stale_tags_are_removed(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        engine.find_duplicates([library])
    copy = library / "downloads" / "astronaut_collins (1).jpg"
    assert (str(copy), "lumina-dedup:derivative") in tag_rows(db)
    # Tighter thresholds no longer accept the cropped copies: their tags must go.
    strict = Config().replace(thresholds=Config().thresholds.__class__(ahash=1, dhash=1, phash=1, whash=1))
    with Engine(db, strict) as engine:
        report = engine.find_duplicates()
    crop = str(library / "exports" / "IMG_8812_crop.jpg")
    assert report.diff is not None and report.diff.summary()["tags_removed"] >= 2
    assert not any(path == crop for path, _ in tag_rows(db))
    assert (str(copy), "lumina-dedup:derivative") in tag_rows(db)


def test_dry_run_writes_nothing_and_shows_the_change(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        report = engine.find_duplicates([library], dry_run=True)
    assert report.diff is not None and report.diff.summary()["tags_added"] > 0
    assert len(report.groups) == len(EXPECTED["groups"])
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    assert tag_rows(db) == set()
    # A dry run on a tagged catalog with a new copy shows only that change.
    with Engine(db) as engine:
        engine.find_duplicates([library])
    before = tag_rows(db)
    shutil.copy(library / "2016/2016-08-19/DSC04512.jpg", library / "DSC04512 copy.jpg")
    with Engine(db) as engine:
        report = engine.find_duplicates([library], dry_run=True)
    assert report.diff is not None
    assert {p for p, _ in report.diff.add_tags} == {_image_id(library / "DSC04512 copy.jpg")}
    assert tag_rows(db) == before


def _image_id(path: Path) -> str:
    from lumina_plugin.catalog.interface import image_id_for
    return image_id_for(str(path))


def test_undo_restores_the_state_before_the_last_run(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        engine.find_duplicates([library])
    first = (tag_rows(db), group_rows(db))
    strict = Config().replace(thresholds=Config().thresholds.__class__(ahash=1, dhash=1, phash=1, whash=1))
    with Engine(db, strict) as engine:
        engine.find_duplicates()
    assert (tag_rows(db), group_rows(db)) != first
    with Engine(db) as engine:
        assert engine.undo() is not None
    assert (tag_rows(db), group_rows(db)) == first
    with Engine(db) as engine:
        assert engine.undo() is not None   # the first run too
        assert engine.undo() is None       # nothing left
    assert tag_rows(db) == set() and group_rows(db) == set()


def test_import_flags_copies_of_photos_already_there(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    originals = [library / "2016", library / "2019"]
    with Engine(db) as engine:
        first = engine.import_paths(originals)
    assert first.groups == [] and tag_rows(db) == set()
    with Engine(db) as engine:
        report = engine.import_paths([library / "exports" / "web" / "DSC04512_small.jpg"])
    assert report.hashed == 1
    assert {(Path(p).name, t) for p, t in tag_rows(db)} == {
        ("DSC04512.jpg", "lumina-dedup:keeper"), ("DSC04512.jpg", "lumina-dedup:duplicate"),
        ("DSC04512_small.jpg", "lumina-dedup:derivative"), ("DSC04512_small.jpg", "lumina-dedup:duplicate")}


def test_removed_photo_loses_its_group(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        engine.find_duplicates([library])
        small = library / "exports" / "web" / "DSC04512_small.jpg"
        engine.remove_paths([str(small)])
    assert not any("DSC04512" in p for p, _ in tag_rows(db))
    assert len(group_rows(db)) == len(EXPECTED["groups"]) - 1


def test_changed_file_is_rehashed(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        engine.find_duplicates([library])
    # Replace a copy's content with an unrelated photo: its old group must dissolve.
    target = library / "exports" / "web" / "DSC04512_small.jpg"
    shutil.copy(library / "2018/2018-10-15/DSC00420.jpg", target)
    with Engine(db) as engine:
        report = engine.find_duplicates([library])
    assert report.hashed == 1
    tags = tag_rows(db)
    assert not any(p.endswith("DSC04512.jpg") for p, _ in tags)
    assert (str(target), "lumina-dedup:exact-copy") in tags


def test_moved_photo_keeps_its_row_tags_and_group(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "cat.db"
    with Engine(db) as engine:
        engine.find_duplicates([library])
    old = library / "exports" / "web" / "DSC04512_small.jpg"
    new = library / "renamed.jpg"
    old.rename(new)
    with Engine(db) as engine:
        assert engine.move_paths([(str(old), str(new))]).files == 1
        report = engine.find_duplicates([library])
    assert report.hashed == 0, "a moved file must not be hashed again"
    tags = tag_rows(db)
    assert (str(new), "lumina-dedup:derivative") in tags
    assert not any(p == str(old) for p, _ in tags)


def test_xmp_sidecars_follow_the_tags_and_undo(tmp_path: Path, library: Path) -> None:
    from lumina_plugin import xmp
    db = tmp_path / "cat.db"
    config = Config().replace(xmp_sidecars=True)
    photos_before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    with Engine(db, config) as engine:
        report = engine.find_duplicates([library])
    assert report.errors == []
    small = library / "exports/web/DSC04512_small.jpg"
    assert {"lumina-dedup|derivative", "lumina-dedup|duplicate"} <= xmp.read_tags(small)
    assert Path(str(small) + ".xmp").is_file()
    untagged = library / "2018/2018-10-14/DSC00388.jpg"
    assert not Path(str(untagged) + ".xmp").exists()
    assert {p: p.read_bytes() for p in photos_before} == photos_before  # photos untouched
    with Engine(db, config) as engine:
        result = engine.undo()
    assert result is not None and result["errors"] == []
    assert xmp.read_tags(small) == set() and not Path(str(small) + ".xmp").exists()
