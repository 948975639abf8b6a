"""Kill the command at many points; a re-run must end exactly where an uninterrupted run ends.

Named points (``lumina_plugin._faults.crash_point`` and the index's own) kill the child
process deterministically: inside the image transaction, between the catalog commit
and the index segment, between the index segment and its manifest, between pairs and
tags, inside the tag transaction, inside undo. Random-time kills cover the rest
(mostly hashing). Every kill is a real SIGKILL of a real ``lumina-dedup`` process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lumina_plugin.index import HashIndex

#: Each test runs dozens of real processes (about 10 s to a minute each on 2 cores).
pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
CRASH_ENV = "LUMINA_DEDUP_TEST_CRASH_AT"

NAMED_POINTS = [
    *(f"inside-images@{n}" for n in (1, 4, 12, 22)),
    *(f"between-catalog-and-index@{n}" for n in (1, 3, 5)),
    "before-manifest", "after-manifest",
    "between-pairs-and-tags",
    *(f"inside-tags@{n}" for n in (1, 7, 20, 40)),
]
RANDOM_KILLS = 33  # with the named points and the undo kills: more than 50 kills in all


def run(args: list[str], env: dict[str, str] | None = None, kill_after: float | None = None) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "lumina_plugin.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(err.decode())
    return proc.returncode


def state(db: Path) -> dict:
    """Everything a user sees, keyed by path, plus the index checked against the catalog."""
    with sqlite3.connect(db) as conn:
        images = sorted(conn.execute(
            "SELECT source_path, checksum, ahash, dhash, phash, whash FROM images"))
        tags = sorted(conn.execute(
            "SELECT i.source_path, t.name FROM image_tags it JOIN images i ON i.id=it.image_id"
            " JOIN tags t ON t.id=it.tag_id"))
        members = conn.execute(
            "SELECT k.source_path, i.source_path, m.relation FROM duplicate_groups g"
            " JOIN images k ON k.id=g.primary_image_id JOIN duplicate_members m ON m.group_id=g.id"
            " JOIN images i ON i.id=m.image_id").fetchall()
        index_ids = np.array(sorted(r[0] for r in conn.execute("SELECT index_id FROM images")), dtype=np.int64)
    groups: dict[str, set] = {}
    for keeper, member, relation in members:
        groups.setdefault(keeper, set()).add((member, relation))
    from lumina_plugin.config import Config
    index = HashIndex.open(Path(str(db) + ".index"), Config().hash_version())
    assert np.array_equal(index.ids, index_ids), "index and catalog disagree"
    return {"images": images, "tags": tags, "groups": {k: frozenset(v) for k, v in groups.items()}}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The expected groups' photos and one look-alike set: every kind of copy, half the time.
    expected = json.loads((SAMPLE / "expected_groups.json").read_text())
    chosen = [p for g in expected["groups"] for p in g] + expected["not_duplicates"][0]["files"]
    lib = tmp_path_factory.mktemp("crash") / "library"
    for rel in chosen:
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SAMPLE / rel, lib / rel)
    return lib


@pytest.fixture(scope="module")
def reference(library: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, float]:
    work = tmp_path_factory.mktemp("reference")
    (work / "lumina-dedup.toml").write_text("batch_size = 5\n")
    start = time.monotonic()
    assert run(["find-duplicates", str(library), "--catalog", str(work / "c.db")]) == 0
    return state(work / "c.db"), time.monotonic() - start


def _case(tmp_path: Path, name: str) -> Path:
    work = tmp_path / name
    work.mkdir()
    (work / "lumina-dedup.toml").write_text("batch_size = 5\n")
    return work / "c.db"


def test_kill_at_every_named_point_then_rerun(tmp_path: Path, library: Path, reference: tuple[dict, float]) -> None:
    expected, _ = reference
    for n, point in enumerate(NAMED_POINTS):
        db = _case(tmp_path, f"named{n}")
        code = run(["find-duplicates", str(library), "--catalog", str(db)], env={CRASH_ENV: point})
        assert code == -signal.SIGKILL, f"{point}: the process was not killed there"
        assert run(["find-duplicates", str(library), "--catalog", str(db)]) == 0
        assert state(db) == expected, f"after a kill at {point}"


def test_kill_at_random_moments_then_rerun(tmp_path: Path, library: Path, reference: tuple[dict, float]) -> None:
    expected, duration = reference
    rng = random.Random(20261125)
    killed = 0
    for n in range(RANDOM_KILLS):
        db = _case(tmp_path, f"random{n}")
        code = run(["find-duplicates", str(library), "--catalog", str(db)],
                   kill_after=rng.uniform(0.05, duration))
        killed += code == -signal.SIGKILL
        assert run(["find-duplicates", str(library), "--catalog", str(db)]) == 0
        assert state(db) == expected, f"after a kill at random moment #{n}"
    assert killed >= RANDOM_KILLS // 2, "most random kills must land before the run ends"


def test_kill_during_undo_then_rerun(tmp_path: Path, library: Path) -> None:
    strict = "batch_size = 5\n[thresholds]\nahash = 1\ndhash = 1\nphash = 1\nwhash = 1\n"
    for n, point in enumerate(["inside-undo@1", "inside-undo@2", "inside-undo@4"]):
        db = _case(tmp_path, f"undo{n}")
        assert run(["find-duplicates", str(library), "--catalog", str(db)]) == 0
        before = state(db)
        (db.parent / "strict.toml").write_text(strict)
        assert run(["find-duplicates", "--catalog", str(db), "--config", str(db.parent / "strict.toml")]) == 0
        assert state(db) != before
        assert run(["undo", "--catalog", str(db)], env={CRASH_ENV: point}) == -signal.SIGKILL
        assert state(db) != before, "a killed undo must change nothing"
        assert run(["undo", "--catalog", str(db)]) == 0
        assert state(db) == before
