"""Photos are never touched, and nothing is written outside the catalog's folder.

Every command runs against a copy of the sample library with HOME and the XDG folders
pointing into the test's own tree; afterwards every photo has the same bytes and
mtime, and every file that appeared or changed lies in the catalog's folder.
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

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


@pytest.mark.slow  # every command as a real process: about 13 s
def test_all_commands_leave_photos_alone_and_write_only_beside_the_catalog(tmp_path: Path) -> None:
    lib = tmp_path / "library"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.py", "*.md", "*.json"))
    home = tmp_path / "home"
    home.mkdir()
    catalog_dir = tmp_path / "catalog"
    catalog_dir.mkdir()
    db = str(catalog_dir / "c.db")
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
    before = snapshot(tmp_path)

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", *args], capture_output=True,
                              text=True, env=env, cwd=lib, timeout=300)
        assert proc.returncode == 0, (args, proc.stderr)
        return proc.stdout

    small = str(lib / "exports/web/DSC04512_small.jpg")
    original = str(lib / "2016/2016-08-19/DSC04512.jpg")
    cli("import", str(lib / "2016"), "--catalog", db)
    cli("find-duplicates", str(lib), "--catalog", db, "--dry-run")
    cli("find-duplicates", str(lib), "--catalog", db, "--json")
    cli("hash", small, original)
    cli("decide", "keeper", small, "--catalog", db)
    cli("decide", "not-duplicate", original, small, "--catalog", db)
    cli("decide", "list", "--catalog", db)
    cli("calibrate", "--catalog", db)
    cli("config", "--catalog", db)
    cli("undo", "--catalog", db)
    cli("undo", "--catalog", db)
    cli("plugins")
    after = snapshot(tmp_path)

    photos = {p: v for p, v in before.items() if p.startswith(str(lib))}
    assert {p: after.get(p) for p in photos} == photos, "a photo was changed, moved or deleted"
    touched = {p for p, v in after.items() if before.get(p) != v}
    outside = sorted(p for p in touched if not p.startswith(str(catalog_dir) + os.sep))
    assert outside == [], f"written outside the catalog folder: {outside}"
    assert json.loads(cli("decide", "list", "--catalog", db, "--json"))["decisions"]
