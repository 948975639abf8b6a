"""The review report of a library holding names that are not valid UTF-8 (issue 18, item 10):
the thumbnails are cached and the pages written, the names shown escaped, as on the terminal."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from test_non_utf8_names import LATIN1, OTHER, PHOTO, cli

if sys.platform == "darwin":  # pragma: no cover - APFS/HFS+ refuse names that are not UTF-8
    pytest.skip("macOS file systems hold UTF-8 names only", allow_module_level=True)


def test_review_of_a_group_with_a_latin1_name(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(PHOTO, os.fsencode(lib) + b"/" + LATIN1)
    shutil.copyfile(PHOTO, lib / "plain.jpg")
    shutil.copyfile(OTHER, lib / "other.jpg")
    db = tmp_path / "c.db"
    assert cli("find-duplicates", str(lib), "--catalog", str(db), "--json").returncode == 0
    out = tmp_path / "report"
    done = cli("review", "--catalog", str(db), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["groups"] == 1
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "caf\\udce9.jpg" in page  # escaped, not dropped and not a crash
    assert "plain.jpg" in page
    assert "Traceback" not in done.stderr
