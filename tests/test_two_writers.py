"""Two processes, one catalog: the second waits or leaves with one clear line; nothing corrupts."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: Each test runs two or three real processes over the sample library (about 4 s each on 2 cores).
pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
EXPECTED = json.loads((SAMPLE / "expected_groups.json").read_text())


def cli(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lumina_plugin.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture()
def halves(tmp_path: Path) -> tuple[Path, Path]:
    """The sample library split in two folders, so two runs have different work to do."""
    a, b = tmp_path / "a", tmp_path / "b"
    for n, photo in enumerate(sorted(p for p in SAMPLE.rglob("*") if p.suffix.lower() in {".jpg", ".png", ".webp"})):
        dest = (a if n % 2 else b) / photo.relative_to(SAMPLE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(photo, dest)
    return a, b


def test_second_run_waits_for_the_first_and_both_land(tmp_path: Path, halves: tuple[Path, Path]) -> None:
    db = str(tmp_path / "c.db")
    first = cli("find-duplicates", str(halves[0]), "--catalog", db, "--json")
    time.sleep(0.3)
    second = cli("find-duplicates", str(halves[1]), "--catalog", db, "--json", "--wait", "120")
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 40
        assert conn.execute("SELECT COUNT(*) FROM dedup_runs WHERE status='done'").fetchone()[0] == 2
    # Whichever ran second saw the whole catalog: every expected group, across both halves.
    later = max((out1, out2), key=lambda out: len(json.loads(out)["groups"]))
    groups = json.loads(later)["groups"]
    names = {frozenset(Path(m["path"]).name for m in g["members"]) for g in groups}
    assert {frozenset(Path(p).name for p in g) for g in EXPECTED["groups"]} == names


def test_held_catalog_refuses_impatient_runs_and_serves_patient_ones(tmp_path: Path,
                                                                     halves: tuple[Path, Path]) -> None:
    db = str(tmp_path / "c.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path;"
         "from lumina_plugin.catalog.sqlite import SqliteCatalog;"
         "c = SqliteCatalog(Path(sys.argv[1])); print('held', flush=True); time.sleep(3)", db],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    impatient = cli("import", str(halves[1]), "--catalog", db, "--wait", "0")
    _, err = impatient.communicate(timeout=120)
    assert impatient.returncode == 1
    assert err.count("\n") == 1 and "in use by another process" in err
    started = time.monotonic()
    patient = cli("import", str(halves[1]), "--catalog", db, "--wait", "60")
    _, err = patient.communicate(timeout=120)
    assert patient.returncode == 0, err
    assert holder.wait(timeout=30) == 0
    assert time.monotonic() - started > 1.0, "the patient run must have waited for the holder"


def test_another_program_holding_the_database_is_a_clear_error(tmp_path: Path, halves: tuple[Path, Path]) -> None:
    db = tmp_path / "c.db"
    assert cli("import", str(halves[0]), "--catalog", str(db)).wait(timeout=300) == 0
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a sqlite3 shell or a backup tool
    try:
        proc = cli("import", str(halves[1]), "--catalog", str(db), "--wait", "0.5")
        _, err = proc.communicate(timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 1 and err.count("\n") == 1
    assert "locked by another program" in err and str(db) in err
    # Nothing was lost: the next run imports the second half.
    assert cli("import", str(halves[1]), "--catalog", str(db)).wait(timeout=300) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 40
