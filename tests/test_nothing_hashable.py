"""A first run where no file can be hashed (a broken JPEG only): the file is an error line and
the run ends normally, with an empty catalog, instead of a traceback from the empty search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_folder_of_one_broken_photo_is_an_error_line_not_a_crash(tmp_path: Path, dry_run: bool) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    catalog = tmp_path / "catalog.db"
    argv = [sys.executable, "-m", "lumina_plugin.cli", "find-duplicates", str(photos), "--catalog", str(catalog),
            "--json", *(["--dry-run"] if dry_run else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["groups"] == []
    assert [e["path"] for e in out["errors"]] == [str(photos / "broken.jpg")]
    assert "Traceback" not in done.stderr
