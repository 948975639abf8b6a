"""``lumina-dedup forget PATH...`` (issue 18, item 1): files or folders out of the catalog,
what remains regrouped, the photos on disk untouched; ``--dry-run`` writes nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_photo

from lumina_plugin.cli import main

OTHER = "2021/2021-03-14/IMG_0412.jpg"


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """a.jpg and its export b.jpg; a copy of a.jpg in trip/; y.jpg and its export trip/z.jpg."""
    lib = tmp_path / "lib"
    write_photo(lib / "a.jpg", size=(640, 400))
    write_photo(lib / "b.jpg", size=(320, 200))
    (lib / "trip").mkdir()
    shutil.copy2(lib / "a.jpg", lib / "trip" / "a_copy.jpg")
    write_photo(lib / "y.jpg", source=OTHER, size=(640, 400))
    write_photo(lib / "trip" / "z.jpg", source=OTHER, size=(320, 200))
    return lib


def cli(catalog: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "lumina_plugin.cli", *args, "--catalog", str(catalog)],
                          capture_output=True, text=True)


def rows(catalog: Path) -> dict[str, set[str]]:
    """What the SQLite catalog holds, by file name: photos, tagged photos, photos in groups,
    photos in pairs, photos named by decisions."""
    with sqlite3.connect(catalog) as conn:
        def names(sql: str) -> set[str]:
            return {Path(p).name for (p,) in conn.execute(sql)}
        return {
            "images": names("SELECT source_path FROM images"),
            "tagged": names("SELECT i.source_path FROM image_tags t JOIN images i ON i.id=t.image_id"),
            "grouped": names("SELECT i.source_path FROM duplicate_members m JOIN images i ON i.id=m.image_id"),
            "paired": names("SELECT i.source_path FROM duplicate_pairs p JOIN images i"
                            " ON i.id=p.image_1 OR i.id=p.image_2"),
            "decided": names("SELECT i.source_path FROM dedup_decisions d JOIN images i"
                             " ON i.id=d.image_1 OR i.id=d.image_2"),
        }


def fingerprint(lib: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(lib.rglob("*")) if p.is_file()}


def prepare(tmp_path: Path, lib: Path) -> Path:
    catalog = tmp_path / "c.db"
    assert cli(catalog, "find-duplicates", str(lib), "--no-gpu").returncode == 0
    assert cli(catalog, "decide", "keeper", str(lib / "trip" / "a_copy.jpg")).returncode == 0
    assert rows(catalog)["grouped"] == {"a.jpg", "b.jpg", "a_copy.jpg", "y.jpg", "z.jpg"}
    return catalog


def test_forget_a_file(tmp_path: Path, library: Path) -> None:
    catalog = prepare(tmp_path, library)
    on_disk = fingerprint(library)
    done = cli(catalog, "forget", str(library / "trip" / "a_copy.jpg"), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["forgotten"] == [str(library / "trip" / "a_copy.jpg")] and data["not_in_catalog"] == []
    # Its decision went with it: a.jpg, the best copy left, is kept again.
    assert {Path(m["path"]).name: m["relation"] for g in data["groups"] for m in g["members"]
            if g["keeper"].endswith("a.jpg")} == {"a.jpg": "keeper", "b.jpg": "derivative"}
    now = rows(catalog)
    assert "a_copy.jpg" not in set().union(*now.values())
    assert now["decided"] == set() and now["grouped"] == {"a.jpg", "b.jpg", "y.jpg", "z.jpg"}
    assert fingerprint(library) == on_disk  # photos are never touched


def test_forget_a_folder(tmp_path: Path, library: Path) -> None:
    catalog = prepare(tmp_path, library)
    on_disk = fingerprint(library)
    done = cli(catalog, "forget", str(library / "trip"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["forgot", str(library / "trip" / "a_copy.jpg"),
                                   "forgot", str(library / "trip" / "z.jpg")]
    now = rows(catalog)
    assert now["images"] == {"a.jpg", "b.jpg", "y.jpg"}
    assert now["grouped"] == now["tagged"] == {"a.jpg", "b.jpg"}  # y.jpg lost its only copy: no group
    assert fingerprint(library) == on_disk


def test_forget_dry_run_writes_nothing(tmp_path: Path, library: Path) -> None:
    catalog = prepare(tmp_path, library)
    before = catalog.read_bytes(), rows(catalog)
    done = cli(catalog, "forget", str(library / "trip"), "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [Path(p).name for p in data["forgotten"]] == ["a_copy.jpg", "z.jpg"]
    assert [g["keeper"] for g in data["groups"]] == [str(library / "a.jpg")]
    assert {Path(c["path"]).name for c in data["changes"]["remove"]} >= {"a_copy.jpg", "y.jpg", "z.jpg"}
    assert (catalog.read_bytes(), rows(catalog)) == before


def test_a_path_in_no_catalog_row_says_so(tmp_path: Path, library: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    catalog = prepare(tmp_path, library)
    stranger = tmp_path / "elsewhere.jpg"
    code = main(["forget", str(stranger), "--catalog", str(catalog)])
    assert code == 1 and f"{stranger}: no photo in the catalog" in capsys.readouterr().err
    code = main(["forget", str(stranger), str(library / "b.jpg"), "--catalog", str(catalog)])
    err = capsys.readouterr().err
    assert code == 0 and str(stranger) in err  # one matched: done, the other named
    assert "b.jpg" not in rows(catalog)["images"]
    assert main(["forget", str(library), "--catalog", str(tmp_path / "none.db")]) == 1
    assert not (tmp_path / "none.db").exists()
