"""A mistyped ``--catalog`` creates nothing, and ``--dry-run`` writes nothing anywhere (issue 18, item 6).

A command that only reads it (decide list, calibrate) or that changes what is in it (undo,
decide) refuses a catalog that does not exist: one line naming the path, exit 1, and no
database, lock file, index folder or parent folder appears. Only the commands that import
(import, find-duplicates, watch) create a catalog. (``review`` refused a missing catalog
already: tests/test_review.py.) A dry run where there is no catalog yet shows what a first run
would do, against an empty catalog in memory, and creates nothing either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lumina_plugin.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
PHOTO = SAMPLE / "2015" / "2015-10-29" / "IMG_8812.jpg"


def tree(folder: Path) -> dict[str, tuple[int, str] | None]:
    """Every entry under ``folder``: files as (mtime_ns, SHA-256), folders as None."""
    out: dict[str, tuple[int, str] | None] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        out[key] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()) if path.is_file() else None
    return out


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and the XDG folders inside ``tmp_path``, so that nothing can land outside it unseen."""
    for name, sub in (("HOME", "home"), ("XDG_DATA_HOME", "home/data"), ("XDG_CONFIG_HOME", "home/config"),
                      ("XDG_CACHE_HOME", "home/cache")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.delenv("LUMINA_DEDUP_CATALOG", raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("command", [
    ["decide", "list"], ["calibrate", "--no-gpu"], ["undo"], ["decide", "keeper", "{photo}"],
    ["decide", "not-duplicate", "{photo}", "{photo2}"], ["decide", "forget", "1"],
])
def test_a_catalog_that_does_not_exist_is_refused_and_not_created(
        tmp_path: Path, home: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(PHOTO, lib / "a.jpg")
    shutil.copyfile(PHOTO, lib / "b.jpg")
    typo = tmp_path / "typo" / "catlog.db"
    before = tree(tmp_path)
    args = [a.replace("{photo}", str(lib / "a.jpg")).replace("{photo2}", str(lib / "b.jpg")) for a in command]
    code = main([*args, "--catalog", str(typo)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and str(typo) in err[0], err
    assert tree(tmp_path) == before  # no catalog, lock file, index folder or parent folder


def test_the_default_catalog_is_made_by_importing_only(
        tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    default = home / "data" / "lumina-dedup" / "catalog.db"
    assert main(["decide", "list"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(default) in err[0]
    assert not home.exists()
    assert main(["import", str(PHOTO), "--no-gpu"]) == 0  # a command that imports makes it
    assert default.is_file()
    assert main(["decide", "list"]) == 0


def test_a_first_dry_run_shows_the_groups_and_creates_no_catalog(
        tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(PHOTO, lib / "a.jpg")
    shutil.copyfile(PHOTO, lib / "b.jpg")
    before = tree(tmp_path)
    for catalog in ([], ["--catalog", str(tmp_path / "new" / "c.db")], ["--catalog", str(tmp_path / "c.db")]):
        assert main(["find-duplicates", str(lib), "--dry-run", "--json", "--no-gpu", *catalog]) == 0
        out = json.loads(capsys.readouterr().out)
        assert [len(g["members"]) for g in out["groups"]] == [2] and out["summary"]["dry_run"] is True
    assert tree(tmp_path) == before  # no catalog, lock file, index folder, parent folder or HOME


def test_a_dry_run_writes_nothing_anywhere(tmp_path: Path) -> None:
    """A real process, its HOME, XDG folders and TMPDIR inside ``tmp_path``: a dry run on an
    existing catalog, with a new photo to hash, leaves every file there as it was (the lock
    file's bytes and time included) and adds none."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(PHOTO, lib / "a.jpg")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "home" / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "home" / "config"), "XDG_CACHE_HOME": str(tmp_path / "home" / "cache"),
           "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    catalog = tmp_path / "cat" / "c.db"
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    cli = [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]
    first = subprocess.run([*cli, "find-duplicates", str(lib), "--catalog", str(catalog), "--no-gpu"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr
    shutil.copyfile(PHOTO, lib / "b.jpg")  # new: the dry run hashes it and finds the copy
    before = tree(tmp_path)
    dry = subprocess.run([*cli, "find-duplicates", str(lib), "--dry-run", "--catalog", str(catalog), "--no-gpu",
                          "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert dry.returncode == 0, dry.stderr
    assert '"dry_run": true' in dry.stdout and str(lib / "b.jpg") in dry.stdout
    assert tree(tmp_path) == before
