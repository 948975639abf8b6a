"""The lumina-dedup command as a user runs it: real process, real files, exit codes, JSON."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import imagehash
import pytest
from PIL import Image

from lumina_plugin.catalog.sqlite import SqliteCatalog

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
EXPECTED = json.loads((SAMPLE / "expected_groups.json").read_text())


def cli(*args: str, env: dict[str, str] | None = None, check: int | None = 0) -> subprocess.CompletedProcess:
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.py", "*.md", "*.json"))
    return lib


def photo_state(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def as_groups(out: dict, root: Path) -> set[frozenset[str]]:
    return {frozenset(str(Path(m["path"]).relative_to(root)) for m in g["members"]) for g in out["groups"]}


def test_find_duplicates_on_the_sample_finds_exactly_the_expected_groups(tmp_path: Path, library: Path) -> None:
    before = photo_state(library)
    out = json.loads(cli("find-duplicates", str(library), "--catalog", str(tmp_path / "c.db"), "--json").stdout)
    assert as_groups(out, library) == {frozenset(g) for g in EXPECTED["groups"]}
    assert out["errors"] == []
    for group in out["groups"]:
        paths = [m["path"] for m in group["members"]]
        assert group["keeper"] in paths and all(os.path.isabs(p) for p in paths)
        for m in group["members"]:
            assert m["kind"] in {"exact", "near"} and isinstance(m["distance"], int)
    # Byte-identical copies are reported as exact.
    exact = {Path(m["path"]).name for g in out["groups"] for m in g["members"]
             if m["kind"] == "exact" and m["path"] != g["keeper"]}
    assert exact == {"IMG_8812.jpg", "IMG_0412.jpg"}
    assert photo_state(library) == before, "photos must never be modified"


@pytest.mark.slow
def test_text_output_and_dry_run(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "c.db"
    proc = cli("find-duplicates", str(library), "--catalog", str(db), "--dry-run", "-v")
    assert proc.stdout.count("Group ") == len(EXPECTED["groups"])
    assert "Dry run: nothing written" in proc.stderr
    assert any(line.startswith("search backend: ") and line.split(": ")[1] in {"faiss", "mih", "gpu", "faiss-gpu"}
               for line in proc.stderr.splitlines())
    if db.exists():  # a dry run writes no tags (and, where it can, no catalog at all)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            assert conn.execute("SELECT COUNT(*) FROM image_tags").fetchone()[0] == 0
    cli("find-duplicates", str(library), "--catalog", str(db))
    again = cli("find-duplicates", "--catalog", str(db), "--dry-run")
    assert "it would add 0 tags and remove 0" in again.stderr


def test_per_file_errors_are_listed_and_the_run_finishes(tmp_path: Path, library: Path) -> None:
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (library / "empty.png").write_bytes(b"")
    proc = cli("find-duplicates", str(library), "--catalog", str(tmp_path / "c.db"), "--json")
    out = json.loads(proc.stdout)
    errors = {Path(e["path"]).name: e["error"] for e in out["errors"]}
    assert set(errors) == {"broken.jpg", "empty.png"}
    assert "empty" in errors["empty.png"]
    assert len(out["groups"]) == len(EXPECTED["groups"])
    text = cli("find-duplicates", str(library / "broken.jpg"), "--catalog", str(tmp_path / "c.db"))
    assert [line for line in text.stderr.splitlines() if line.startswith("error:")] == \
        [f"error: {library / 'broken.jpg'}: {errors['broken.jpg']}"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert cli("import", check=None).returncode == 2
    assert cli("find-duplicates", "--no-such-flag", check=None).returncode == 2
    assert cli("frobnicate", check=None).returncode == 2


def test_locked_catalog_exits_1_with_a_clear_message(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "c.db"
    with SqliteCatalog(db):
        proc = cli("find-duplicates", str(library), "--catalog", str(db), "--wait", "0.5", check=1)
    assert "in use by another process" in proc.stderr and str(db) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_config_exits_1(tmp_path: Path, library: Path) -> None:
    (tmp_path / "lumina-dedup.toml").write_text("[thresholds]\nphahs = 3\n")
    proc = cli("find-duplicates", str(library), "--catalog", str(tmp_path / "c.db"), check=1)
    assert "thresholds.phahs" in proc.stderr


def test_hash_prints_imagehash_strings(library: Path) -> None:
    photo = library / "2016/2016-08-19/DSC04512.jpg"
    out = json.loads(cli("hash", str(photo), "--json", "--decode", "exact").stdout)
    img = Image.open(photo)
    assert out["files"] == [{"path": str(photo), "ahash": str(imagehash.average_hash(img)),
                             "dhash": str(imagehash.dhash(img)), "phash": str(imagehash.phash(img)),
                             "whash": str(imagehash.whash(img, image_scale=64))}]
    text = cli("hash", str(photo), str(library / "missing.jpg"), "--decode", "exact").stdout
    assert str(imagehash.phash(img)) in text
    # The default (reduced) decode is another version's codes: close to imagehash's, not equal.
    reduced = json.loads(cli("hash", str(photo), "--json").stdout)["files"][0]
    assert sum(bin(int(reduced[a], 16) ^ int(out["files"][0][a], 16)).count("1") for a in reduced if a != "path") <= 24


def test_import_then_undo(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "c.db"
    out = json.loads(cli("import", str(library), "--catalog", str(db), "--json").stdout)
    assert as_groups(out, library) == {frozenset(g) for g in EXPECTED["groups"]}
    undo = json.loads(cli("undo", "--catalog", str(db), "--json").stdout)
    assert undo["undone"]["kind"] == "import"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM image_tags").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 40
    assert "nothing to undo" in cli("undo", "--catalog", str(db)).stderr


@pytest.mark.slow
def test_kill_between_index_segment_and_manifest_then_rerun(tmp_path: Path, library: Path) -> None:
    """A crash while the index is written loses nothing: the re-run equals an uninterrupted run."""
    (tmp_path / "crashed").mkdir()
    (tmp_path / "clean").mkdir()
    for d in ("crashed", "clean"):
        (tmp_path / d / "lumina-dedup.toml").write_text("batch_size = 7\n")
    crashed, clean = tmp_path / "crashed" / "c.db", tmp_path / "clean" / "c.db"
    proc = cli("find-duplicates", str(library), "--catalog", str(crashed), "--json",
               env={"LUMINA_DEDUP_TEST_CRASH_AT": "before-manifest"}, check=None)
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(crashed) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    assert 0 < stored < 40, "the kill must land after a committed batch and before the end"
    rerun = json.loads(cli("find-duplicates", str(library), "--catalog", str(crashed), "--json").stdout)
    reference = json.loads(cli("find-duplicates", str(library), "--catalog", str(clean), "--json").stdout)
    assert rerun["groups"] == reference["groups"]
    assert rerun["summary"]["hashed"] == 40 - stored
    from lumina_plugin.config import Config
    from lumina_plugin.index import HashIndex
    index = HashIndex.open(Path(str(crashed) + ".index"), Config().hash_version())
    assert len(index) == 40


def test_progress_bar_on_a_terminal_only(tmp_path: Path, library: Path) -> None:
    import pty
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]
    master, slave = pty.openpty()
    proc = subprocess.Popen([*cmd, "find-duplicates", str(library), "--catalog", str(tmp_path / "c.db")],
                            stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "COLUMNS": "100"})
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=120) == 0
    os.close(master)
    assert b"hashing" in seen and b"/40" in seen
    # Under --json, or with stderr not a terminal, nothing but the summary line.
    quiet = cli("find-duplicates", "--catalog", str(tmp_path / "c.db"), "--json")
    assert quiet.stderr == ""


def test_dry_run_lists_each_tag_change(tmp_path: Path, library: Path) -> None:
    out = json.loads(cli("find-duplicates", str(library), "--catalog", str(tmp_path / "c.db"),
                         "--dry-run", "--json").stdout)
    added = {(Path(c["path"]).name, c["tag"]) for c in out["changes"]["add"]}
    assert ("DSC04512_small.jpg", "lumina-dedup:derivative") in added
    assert len(out["changes"]["add"]) == out["summary"]["tags_added"] and out["changes"]["remove"] == []


def _cupy_tripwire(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose ``import cupy`` leaves a mark (then fails, as without CuPy)."""
    stub = tmp_path / "stub" / "cupy"
    stub.mkdir(parents=True)
    mark = tmp_path / "cupy-was-looked-for"
    stub.joinpath("__init__.py").write_text(
        f"open({str(mark)!r}, 'w').close()\nraise ImportError('a stand-in: no CuPy here')\n")
    path = os.pathsep.join(p for p in (str(stub.parent), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}, mark


@pytest.mark.slow
def test_no_gpu_keeps_hashing_and_the_search_off_the_gpu(tmp_path: Path, library: Path) -> None:
    """One switch: with --no-gpu (or [gpu] use = "off") neither the hashing nor the index
    search looks for a GPU, on every command that hashes or searches; without it they do."""
    env, mark = _cupy_tripwire(tmp_path)
    photos = [str(p) for p in sorted(library.rglob("*.jpg"))[:4]]
    xdg = tmp_path / "xdg"
    (xdg / "lumina-dedup").mkdir(parents=True)
    user_file = xdg / "lumina-dedup" / "config.toml"  # hash reads the user's file: a pool even for 4 photos
    user_file.write_text("[hashing]\nparallel_min_mb = 0\nworkers = 2\n")
    env["XDG_CONFIG_HOME"] = str(xdg)
    catalog = str(tmp_path / "c.db")
    for argv in (("hash", *photos, "--no-gpu"), ("import", *photos, "--catalog", catalog, "--no-gpu"),
                 ("find-duplicates", str(library), "--catalog", catalog, "--no-gpu", "-v")):
        out = cli(*argv, env=env)
        assert not mark.exists(), argv
    assert "search backend: mih" in out.stderr or "search backend: faiss" in out.stderr
    pool = "[hashing]\nparallel_min_mb = 0\nworkers = 2\n"
    user_file.write_text(pool + '[gpu]\nuse = "off"\n[index]\nbackend = "gpu"\n')
    cli("find-duplicates", "--catalog", catalog, env=env)
    cli("hash", *photos, env=env)
    assert not mark.exists()
    user_file.write_text(pool)  # "auto": both look (and find no CuPy: quietly the CPU)
    hashed = cli("hash", *photos, "--json", env=env)
    assert mark.exists() and hashed.stderr == ""
    assert {f["path"] for f in json.loads(hashed.stdout)["files"]} == set(photos)
