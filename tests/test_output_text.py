"""The text output a person reads (issue 18, items 5 and 8): real photos, the real command line.

It says where the catalog is; gives each copy's relation and suggested action in words (the
same as ``--json``); ends with what to run next; keeps internal lines (the search backend,
hash distances) for ``-v``; counts in good English ("1 error", "1 group", "1 page"); and
lists per-file errors on stderr under ``--json`` too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lumina_plugin.grouping import ACTIONS

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
PHOTO = SAMPLE / "2016/2016-08-19/DSC04512.jpg"


def cli(*args: str, cwd: Path | None = None, check: int = 0) -> subprocess.CompletedProcess:
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """One photo, a byte-identical backup, a smaller export and one file that is not a photo."""
    lib = tmp_path / "lib"
    (lib / "backup").mkdir(parents=True)
    (lib / "web").mkdir()
    shutil.copy(PHOTO, lib / "DSC04512.jpg")
    shutil.copy(PHOTO, lib / "backup" / "DSC04512.jpg")
    with Image.open(PHOTO) as im:
        im.convert("RGB").resize((320, 200), Image.Resampling.LANCZOS).save(lib / "web" / "small.jpg", quality=85)
    (lib / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return lib


def test_text_says_where_what_and_what_next(tmp_path: Path, library: Path) -> None:
    db = str(tmp_path / "c.db")
    text = cli("find-duplicates", "lib", "--catalog", db, cwd=tmp_path)
    as_json = json.loads(cli("find-duplicates", "--catalog", db, "--json", cwd=tmp_path).stdout)
    out, err = text.stdout, text.stderr
    # Each copy's relation and suggested action, in the words --json gives.
    (group,) = as_json["groups"]
    for m in group["members"]:
        if m["role"] != "keeper":
            assert ACTIONS[m["relation"]] == m["action"] and m["action"] in out
    assert "exact copy (same bytes)" in out and "resized or re-encoded copy" in out
    # Paths as the user typed them (relative to where they ran it), the keeper and why.
    assert "keep  lib/DSC04512.jpg" in out and "copy  lib/backup/DSC04512.jpg" in out
    assert f"why: {group['reason']}" in out
    # Plain words: no internal jargon, no distances, no backend, good English.
    assert "perceptual" not in out and "distance" not in out and "ahash" not in out
    assert "search backend" not in err
    assert "1 group of duplicates" in err and "1 error (listed above)" in err and "1 errors" not in err
    # Where the catalog is, and what to do next, as commands to paste.
    assert f"the catalog {db}" in err
    lines = err.strip().splitlines()
    assert lines[-2].endswith(f"review --catalog {db}") and lines[-1].endswith(f"undo --catalog {db}")
    assert f"error: {library / 'broken.jpg'}: " in err


def test_verbose_adds_the_internal_facts(tmp_path: Path, library: Path) -> None:
    proc = cli("find-duplicates", str(library), "--catalog", str(tmp_path / "c.db"), "-v")
    assert any(line.startswith("search backend: ") for line in proc.stderr.splitlines())
    assert re.search(r"resized or re-encoded copy, distance \d+ by \w+hash", proc.stdout)


def test_json_lists_per_file_errors_on_stderr_too(tmp_path: Path, library: Path) -> None:
    proc = cli("find-duplicates", str(library), "--catalog", str(tmp_path / "c.db"), "--json")
    assert [e["path"] for e in json.loads(proc.stdout)["errors"]] == [str(library / "broken.jpg")]
    assert proc.stderr.splitlines() == [f"error: {library / 'broken.jpg'}: {json.loads(proc.stdout)['errors'][0]['error']}"]


def test_review_counts_in_good_english(tmp_path: Path, library: Path) -> None:
    db = str(tmp_path / "c.db")
    cli("find-duplicates", str(library), "--catalog", db)
    proc = cli("review", "--catalog", db)
    assert proc.stderr.startswith("1 group on 1 page; ")


def test_dry_run_says_nothing_was_written(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "c.db"
    proc = cli("find-duplicates", str(library), "--catalog", str(db), "--dry-run")
    assert "Dry run: nothing written" in proc.stderr
    assert f"would tag   {library / 'web' / 'small.jpg'}: " in proc.stdout


def test_keeper_reason_says_each_criterion_once_and_names_the_copies(tmp_path: Path, library: Path) -> None:
    """Two smaller copies: "higher resolution" once, naming both; the byte-identical backup in
    plain words (not "a byte-identical or equal copy: first by path")."""
    with Image.open(PHOTO) as im:
        im.convert("RGB").resize((480, 300), Image.Resampling.LANCZOS).save(library / "web" / "medium.jpg", quality=90)
    data = json.loads(cli("find-duplicates", str(library), "--catalog", str(tmp_path / "c.db"), "--json").stdout)
    (group,) = data["groups"]
    reason = group["reason"]
    assert reason.count("higher resolution") == 1
    assert "640x400 over " in reason and "480x300 of medium.jpg" in reason and "320x200 of small.jpg" in reason
    assert "identical to backup/DSC04512.jpg (the same bytes)" in reason and "first by path" not in reason
