"""Photos deleted, moved or rewritten on disk after they were catalogued (issue 18, item 1), and
the review after an undo (item 7): every run that shows or writes groups checks the groups'
photos on disk, so its advice never names a file that is gone, and never advises removing the
last copy that exists. Real photos in temporary folders, the real command line."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_photo
from test_lumina_support import lumina, lumina_db, pg_database  # noqa: F401  (the PostgreSQL fixtures)

from lumina_plugin.cli import main

OTHER = "2021/2021-03-14/IMG_0412.jpg"  # a second, unrelated sample photo


def run(capsys: pytest.CaptureFixture[str], catalog: Path, *args: str) -> tuple[int, dict]:
    """``lumina-dedup ARGS --catalog CATALOG --json`` in this process: (exit code, its JSON)."""
    code = main([*args, "--catalog", str(catalog), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def groups(data: dict) -> list[dict[str, str]]:
    """Each group as file name -> relation ("keeper" for the keeper), by the keeper's name."""
    shown = [{Path(m["path"]).name: m["relation"] for m in g["members"]} for g in data["groups"]]
    return sorted(shown, key=lambda g: next(name for name, rel in g.items() if rel == "keeper"))


def tagged(catalog: Path) -> set[str]:
    """File names that carry any of our tags in the SQLite catalog."""
    with sqlite3.connect(catalog) as conn:
        return {Path(p).name for (p,) in conn.execute(
            "SELECT DISTINCT i.source_path FROM image_tags t JOIN images i ON i.id=t.image_id")}


def catalogued(catalog: Path) -> set[str]:
    with sqlite3.connect(catalog) as conn:
        return {Path(p).name for (p,) in conn.execute("SELECT source_path FROM images")}


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """a.jpg (640x400, the keeper), its byte-identical copies c.jpg and d.jpg, its 320x200
    export b.jpg; y.jpg and its export z.jpg, another photo."""
    lib = tmp_path / "lib"
    write_photo(lib / "a.jpg", size=(640, 400))
    write_photo(lib / "b.jpg", size=(320, 200))
    shutil.copy2(lib / "a.jpg", lib / "c.jpg")
    shutil.copy2(lib / "a.jpg", lib / "d.jpg")
    write_photo(lib / "y.jpg", source=OTHER, size=(640, 400))
    write_photo(lib / "z.jpg", source=OTHER, size=(320, 200))
    return lib


def first_run(capsys: pytest.CaptureFixture[str], catalog: Path, lib: Path) -> None:
    code, data = run(capsys, catalog, "find-duplicates", str(lib), "--no-gpu")
    assert code == 0
    assert groups(data) == [
        {"a.jpg": "keeper", "b.jpg": "derivative", "c.jpg": "exact", "d.jpg": "exact"},
        {"y.jpg": "keeper", "z.jpg": "derivative"}]


@pytest.mark.parametrize("with_folder", [False, True])
def test_deleted_keeper_and_copy_leave_the_groups_and_the_catalog(
        tmp_path: Path, library: Path, capsys: pytest.CaptureFixture[str], with_folder: bool) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    (library / "a.jpg").unlink()
    (library / "c.jpg").unlink()
    code, data = run(capsys, catalog, "find-duplicates", *([str(library)] if with_folder else []), "--no-gpu")
    assert code == 0
    # The copy left is kept: the advice never names a file that is gone.
    assert groups(data) == [{"d.jpg": "keeper", "b.jpg": "derivative"},
                            {"y.jpg": "keeper", "z.jpg": "derivative"}]
    assert sorted(Path(p).name for p in data["vanished"]) == ["a.jpg", "c.jpg"]
    assert data["summary"]["vanished"] == 2
    for group in data["groups"]:
        assert all(Path(m["path"]).exists() for m in group["members"])
    # Taken out of the catalog: rows and their tags.
    assert catalogued(catalog) == {"b.jpg", "d.jpg", "y.jpg", "z.jpg"}
    assert tagged(catalog) == {"b.jpg", "d.jpg", "y.jpg", "z.jpg"}
    code, again = run(capsys, catalog, "find-duplicates", "--no-gpu")
    assert again["vanished"] == [] and again["summary"]["tags_added"] == again["summary"]["tags_removed"] == 0


def test_a_group_whose_copies_are_gone_dissolves(tmp_path: Path, library: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    (library / "z.jpg").unlink()
    code, data = run(capsys, catalog, "find-duplicates", "--no-gpu")
    assert groups(data) == [{"a.jpg": "keeper", "b.jpg": "derivative", "c.jpg": "exact", "d.jpg": "exact"}]
    assert "y.jpg" not in tagged(catalog) and "y.jpg" in catalogued(catalog)  # still a photo, in no group
    assert data["summary"]["groups_removed"] == 1


def test_dry_run_and_review_show_the_truth_and_write_nothing(tmp_path: Path, library: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    for name in ("a.jpg", "c.jpg", "d.jpg"):  # every exact copy: the export b.jpg is what is left
        (library / name).unlink()
    before = catalog.read_bytes(), tagged(catalog)
    code, data = run(capsys, catalog, "find-duplicates", "--dry-run", "--no-gpu")
    assert groups(data) == [{"y.jpg": "keeper", "z.jpg": "derivative"}]  # b.jpg alone is no group
    assert sorted(Path(p).name for p in data["vanished"]) == ["a.jpg", "c.jpg", "d.jpg"]
    assert {Path(r["path"]).name for r in data["changes"]["remove"]} == {"a.jpg", "b.jpg", "c.jpg", "d.jpg"}
    code, review = run(capsys, catalog, "review", "--out", str(tmp_path / "review"))
    assert code == 0 and review["groups"] == 1
    page = (tmp_path / "review" / "index.html").read_text() + "".join(
        p.read_text() for p in (tmp_path / "review").glob("*.html"))
    assert "y.jpg" in page and "a.jpg" not in page and "b.jpg" not in page
    assert (catalog.read_bytes(), tagged(catalog)) == before
    assert catalogued(catalog) == {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "y.jpg", "z.jpg"}


def test_review_elects_an_existing_keeper(tmp_path: Path, library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    (library / "a.jpg").unlink()
    from lumina_plugin.engine import Engine
    with Engine(catalog) as engine:
        report = engine.review()
    shown = groups(report.as_json())
    assert shown == [{"c.jpg": "keeper", "b.jpg": "derivative", "d.jpg": "exact"},
                     {"y.jpg": "keeper", "z.jpg": "derivative"}]
    assert [Path(p).name for p in report.vanished] == ["a.jpg"]
    assert "a.jpg" in catalogued(catalog)  # the review writes nothing


def test_decide_after_a_delete_keeps_an_existing_file(tmp_path: Path, library: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    (library / "a.jpg").unlink()
    (library / "c.jpg").unlink()
    code, data = run(capsys, catalog, "decide", "keeper", str(library / "b.jpg"))
    assert code == 0
    group = next(g for g in groups(data) if "b.jpg" in g)
    assert group == {"b.jpg": "keeper", "d.jpg": "derivative"}
    assert catalogued(catalog) == {"b.jpg", "d.jpg", "y.jpg", "z.jpg"}


def test_a_file_rewritten_in_place_is_rehashed_and_regrouped(tmp_path: Path, library: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    write_photo(library / "b.jpg", source=OTHER, size=(320, 200))  # now a copy of y.jpg, not of a.jpg
    from lumina_plugin.engine import Engine
    with Engine(catalog) as engine:  # the stored groups, without the photo that is not what was grouped
        assert groups(engine.review().as_json()) == [{"a.jpg": "keeper", "c.jpg": "exact", "d.jpg": "exact"},
                                                     {"y.jpg": "keeper", "z.jpg": "derivative"}]
    code, dry = run(capsys, catalog, "find-duplicates", "--dry-run", "--no-gpu")
    code, data = run(capsys, catalog, "find-duplicates", "--no-gpu")
    expected = [{"a.jpg": "keeper", "c.jpg": "exact", "d.jpg": "exact"},
                {"y.jpg": "keeper", "b.jpg": "derivative", "z.jpg": "derivative"}]
    assert groups(dry) == groups(data) == expected
    assert data["summary"]["hashed"] == 1 and data["vanished"] == []
    code, again = run(capsys, catalog, "find-duplicates", "--no-gpu")
    assert groups(again) == expected and again["summary"]["hashed"] == 0


def test_a_moved_file_keeps_its_row_and_decisions(tmp_path: Path, library: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    code, _ = run(capsys, catalog, "decide", "keeper", str(library / "b.jpg"))
    (library / "moved").mkdir()
    os.rename(library / "b.jpg", library / "moved" / "b2.jpg")
    code, dry = run(capsys, catalog, "find-duplicates", str(library / "moved"), "--dry-run", "--no-gpu")
    code, data = run(capsys, catalog, "find-duplicates", str(library / "moved"), "--no-gpu")
    for report in (dry, data):
        group = next(g for g in groups(report) if "a.jpg" in g)
        assert group["b2.jpg"] == "keeper"  # the decision made before the move still holds
        assert report["moved"] == [{"from": str(library / "b.jpg"), "to": str(library / "moved" / "b2.jpg")}]
        assert report["vanished"] == []
    code, decisions = run(capsys, catalog, "decide", "list")
    assert [(d["kind"], d["path_1"]) for d in decisions["decisions"]] == [("keeper", str(library / "moved" / "b2.jpg"))]
    assert "b.jpg" not in catalogued(catalog) and "b2.jpg" in tagged(catalog)


def test_undo_then_review_shows_the_catalog_as_it_is_now(tmp_path: Path, library: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.db"
    first_run(capsys, catalog, library)
    code, review = run(capsys, catalog, "review", "--out", str(tmp_path / "r1"))
    assert review["groups"] == 2
    code, undone = run(capsys, catalog, "undo")
    assert undone["undone"]["kind"] == "find-duplicates"
    code, review = run(capsys, catalog, "review", "--out", str(tmp_path / "r2"))
    assert code == 0 and review["groups"] == 0  # the undone groups are not in the catalog any more
    assert tagged(catalog) == set()


def test_the_command_line_in_a_subprocess(tmp_path: Path, library: Path) -> None:
    """As a user runs it: a deleted keeper is reported on stderr's summary and gone from --json."""
    catalog = tmp_path / "c.db"
    cmd = [sys.executable, "-m", "lumina_plugin.cli", "find-duplicates", "--catalog", str(catalog), "--no-gpu"]
    subprocess.run([*cmd, str(library)], check=True, capture_output=True)
    (library / "a.jpg").unlink()
    out = subprocess.run([*cmd, "--json"], check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    assert data["vanished"] == [str(library / "a.jpg")]
    assert all(Path(m["path"]).exists() for g in data["groups"] for m in g["members"])


def test_lumina_catalog_drops_a_deleted_keeper(tmp_path: Path, library: Path, lumina: tuple[str, str]) -> None:
    """The Lumina path (Engine.find_duplicates on Lumina's PostgreSQL catalog): a deleted keeper
    leaves the groups and our tags; Lumina's own image row is Lumina's to delete."""
    from test_lumina_support import query, scan_as_lumina

    from lumina_plugin.engine import Engine
    url, cid = lumina
    scan_as_lumina(url, cid, [library / n for n in ("a.jpg", "b.jpg", "y.jpg", "z.jpg")])
    with Engine(url) as engine:
        first = engine.find_duplicates()
    assert groups(first.as_json()) == [{"a.jpg": "keeper", "b.jpg": "derivative"},
                                       {"y.jpg": "keeper", "z.jpg": "derivative"}]
    (library / "a.jpg").unlink()
    with Engine(url) as engine:
        report = engine.find_duplicates()
    assert groups(report.as_json()) == [{"y.jpg": "keeper", "z.jpg": "derivative"}]
    assert report.vanished == [str(library / "a.jpg")]
    tagged_now = {Path(p).name for (p,) in query(
        url, "SELECT DISTINCT i.source_path FROM image_tags it JOIN tags t ON t.id = it.tag_id"
             " JOIN images i ON i.id = it.image_id WHERE t.name LIKE 'lumina-dedup:%%'")}
    assert tagged_now == {"y.jpg", "z.jpg"}
    assert query(url, "SELECT count(*) FROM images WHERE source_path = %s", (str(library / "a.jpg"),))[0][0] == 1
