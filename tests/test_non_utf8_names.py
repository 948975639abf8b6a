"""File names that are not valid UTF-8 (issue 18, item 10): old archives from FAT drives and
Windows code pages, such as ``caf\\xe9.jpg`` in Latin-1. They are found, hashed, stored in the
SQLite catalog as their exact bytes, grouped, tagged, decided on and printed escaped."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lumina_plugin.catalog.sqlite import SqliteCatalog
from lumina_plugin.files import NOT_UTF8, discover

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
PHOTO = SAMPLE / "2015" / "2015-10-29" / "IMG_8812.jpg"
OTHER = SAMPLE / "2023" / "2023-05-20" / "DSC_1001.jpg"
LATIN1 = b"caf\xe9.jpg"  # "café.jpg" written by a Latin-1 system
FOLDER = b"\xff\xfeold"  # a folder whose name is not UTF-8 either

if sys.platform == "darwin":  # pragma: no cover - APFS/HFS+ refuse names that are not UTF-8
    pytest.skip("macOS file systems hold UTF-8 names only", allow_module_level=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, errors="surrogateescape", timeout=300)


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """``caf\\xe9.jpg``, its exact copy under a non-UTF-8 folder, a plain-named copy, one other photo."""
    lib = tmp_path / "lib"
    raw = os.fsencode(lib)
    os.makedirs(raw + b"/" + FOLDER)
    shutil.copyfile(PHOTO, raw + b"/" + LATIN1)
    shutil.copyfile(PHOTO, raw + b"/" + FOLDER + b"/" + LATIN1)
    shutil.copyfile(PHOTO, lib / "plain.jpg")
    shutil.copyfile(OTHER, lib / "other.jpg")
    return lib


def names(lib: Path) -> list[str]:
    """The three copies' paths as Python gives them (surrogate-escaped)."""
    raw = os.fsencode(lib)
    return sorted(os.fsdecode(p) for p in (raw + b"/" + LATIN1, raw + b"/" + FOLDER + b"/" + LATIN1,
                                           raw + b"/plain.jpg"))


def test_discovery_finds_them(library: Path) -> None:
    found, errors = discover([library], [".jpg"])
    assert errors == [] and len(found) == 4
    assert set(names(library)) <= set(found)
    # A catalog that keeps text only (Lumina's) gets one error line per such file instead.
    found, errors = discover([library], [".jpg"], utf8_only=True)
    assert len(found) == 2 and [e.error for e in errors] == [NOT_UTF8, NOT_UTF8]


def test_stored_grouped_tagged_and_shown(library: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    proc = cli("find-duplicates", str(library), "--catalog", str(db), "--json", "--no-gpu")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["errors"] == []
    [group] = out["groups"]
    assert sorted(m["path"] for m in group["members"]) == names(library)

    # Stored losslessly: the exact bytes of the name, read back to the same path.
    conn = sqlite3.connect(db)
    stored = {row[0] for row in conn.execute("SELECT source_path FROM images")}
    assert os.fsencode(names(library)[0]) in stored or os.fsencode(names(library)[1]) in stored
    assert {os.fsdecode(p) if isinstance(p, bytes) else p for p in stored} == {*names(library), str(library / "other.jpg")}
    tagged = conn.execute("SELECT COUNT(DISTINCT it.image_id) FROM image_tags it JOIN images i ON i.id=it.image_id"
                          " WHERE typeof(i.source_path)='blob'").fetchone()[0]
    assert tagged == 2
    conn.close()
    with SqliteCatalog(db, mode="read") as cat:
        assert set(names(library)) <= {info.path for info in cat.images().values()}
        assert set(cat.stored_files(names(library))) == set(names(library))

    # Printed escaped: no traceback, the undecodable byte shown as a backslash escape.
    text = cli("find-duplicates", str(library), "--catalog", str(db), "--no-gpu")
    assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
    assert "caf\\" in text.stdout and "\udce9" not in text.stdout


def test_a_decision_on_such_a_file(library: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    assert cli("find-duplicates", str(library), "--catalog", db, "--no-gpu").returncode == 0
    keeper = os.fsdecode(os.fsencode(library) + b"/" + FOLDER + b"/" + LATIN1)
    decided = cli("decide", "keeper", keeper, "--catalog", db, "--json")
    assert decided.returncode == 0, decided.stderr
    listed = json.loads(cli("decide", "list", "--catalog", db, "--json").stdout)["decisions"]
    assert [(d["kind"], d["path_1"]) for d in listed] == [("keeper", keeper)]
    again = json.loads(cli("find-duplicates", "--catalog", db, "--json", "--no-gpu").stdout)
    assert again["groups"][0]["keeper"] == keeper
