"""``decide`` as a person uses it (issue 18, items 7 and 8): real photos, the real command line.

It prints what the decision changed, not every group of the catalog; one photo named twice
is bad usage (exit 2); a keeper chosen for a photo in no group, or a photo the catalog does
not hold, is one line and exit 1, with nothing recorded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
#: Two different photos, each given a smaller copy: two groups. LONER has no copy.
SHOTS = ("2016/2016-08-19/DSC04512.jpg", "2019/2019-04-27/DSCF0815.jpg")
LONER = "2018/2018-10-13/DSC00211.jpg"


def cli(*args: str, check: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture()
def catalog(tmp_path: Path) -> tuple[Path, str]:
    lib = tmp_path / "lib"
    lib.mkdir()
    for rel in (*SHOTS, LONER):
        shutil.copy(SAMPLE / rel, lib / Path(rel).name)
    for rel in SHOTS:
        with Image.open(SAMPLE / rel) as im:
            im.convert("RGB").resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS).save(
                lib / f"small_{Path(rel).name}", quality=85)
    db = str(tmp_path / "c.db")
    groups = json.loads(cli("find-duplicates", str(lib), "--catalog", db, "--json").stdout)["groups"]
    assert len(groups) == 2
    return lib, db


def decisions(db: str) -> list:
    return json.loads(cli("decide", "list", "--catalog", db, "--json").stdout)["decisions"]


def test_decide_prints_only_the_group_it_changed(catalog: tuple[Path, str]) -> None:
    lib, db = catalog
    proc = cli("decide", "keeper", str(lib / "small_DSC04512.jpg"), "--catalog", db)
    assert "DSC04512" in proc.stdout and "DSCF0815" not in proc.stdout  # the other group is not printed
    assert proc.stdout.count("keep  ") == 1 and "chosen by a person" in proc.stdout
    assert "1 group changed" in proc.stderr
    data = json.loads(cli("decide", "not-duplicate", str(lib / "DSCF0815.jpg"), str(lib / "small_DSCF0815.jpg"),
                          "--catalog", db, "--json").stdout)
    assert data["groups"] == [] and [d["keeper"] for d in data["dissolved"]] == [str(lib / "DSCF0815.jpg")]
    assert data["summary"]["groups_removed"] == 1
    again = cli("decide", "duplicate", str(lib / "DSC04512.jpg"), str(lib / "small_DSC04512.jpg"), "--catalog", db)
    assert again.stdout == "" and "No group changed" in again.stderr


def test_one_photo_named_twice_is_bad_usage(catalog: tuple[Path, str]) -> None:
    lib, db = catalog
    photo = str(lib / "DSC04512.jpg")
    proc = cli("decide", "not-duplicate", photo, photo, "--catalog", db, check=2)
    assert "named twice" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert decisions(db) == []


def test_keeper_for_a_photo_in_no_group_records_nothing(catalog: tuple[Path, str]) -> None:
    lib, db = catalog
    proc = cli("decide", "keeper", str(lib / Path(LONER).name), "--catalog", db, check=1)
    assert "in no duplicate group" in proc.stderr and "nothing recorded" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
    assert decisions(db) == []


def test_a_photo_the_catalog_does_not_hold(catalog: tuple[Path, str], tmp_path: Path) -> None:
    lib, db = catalog
    for argv in (("keeper", str(tmp_path / "nowhere.jpg")),
                 ("not-duplicate", str(lib / "DSC04512.jpg"), str(tmp_path / "nowhere.jpg"))):
        proc = cli("decide", *argv, "--catalog", db, check=1)
        assert "nowhere.jpg" in proc.stderr and "not in the catalog" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert decisions(db) == []
