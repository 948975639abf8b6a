"""A catalog on a read-only disk, and an unwritable HOME (issue 18, item 2).

Commands that only read (review with ``--out`` elsewhere, decide list, find-duplicates
--dry-run, calibrate, config) work on a catalog they cannot write, and write nothing there;
commands that write say so in one line and exit 1. No traceback anywhere.

"Read-only" is made real, two ways: a read-only bind mount (``mount -o remount,bind,ro``) in a
private mount namespace of the command (``unshare -m``, or ``unshare -rm`` as a user), which
stops root too; and permissions (directories 0555, files 0444), which stop anyone but root. A
way this machine does not allow is skipped with its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
PHOTOS = {  # two copies of one photo (exact and perceptual) and an unrelated photo
    "IMG_8812.jpg": "2015/2015-10-29/IMG_8812.jpg",
    "IMG_8812 copy.jpg": "2015/2015-10-29/IMG_8812.jpg",
    "IMG_8812.webp": "exports/web/IMG_8812.webp",
    "DSC_1001.jpg": "2023/2023-05-20/DSC_1001.jpg",
}
#: Binds each of the first $1 arguments onto itself read-only, then runs the rest.
_MOUNT_RO = ('n=$1; shift; while [ "$n" -gt 0 ]; do mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" '
             '|| exit 97; shift; n=$((n-1)); done; exec "$@"')


def _cli() -> list[str]:
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]


def _unshare() -> list[str]:
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]


@cache
def _mount_unavailable(probe_dir: str) -> str | None:
    """Why a read-only bind mount cannot be made here (None: it can, and it stops writes)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "no unshare/mount command"
    proc = subprocess.run([*_unshare(), "sh", "-c", _MOUNT_RO, "sh", "1", probe_dir,
                           "sh", "-c", 'touch "$0/probe"', probe_dir], capture_output=True, text=True)
    if proc.returncode == 97 or "unshare" in proc.stderr and proc.returncode:
        return f"this process may not make a read-only mount: {proc.stderr.strip()[:200]}"
    if (Path(probe_dir) / "probe").exists():
        return "the read-only mount did not stop a write"
    proc = subprocess.run([*_unshare(), "sh", "-c", _MOUNT_RO, "sh", "1", probe_dir, *_cli(), "--version"],
                          capture_output=True, text=True)
    if proc.returncode:  # e.g. a user namespace that cannot reach the interpreter's folder
        return f"the command cannot run inside the mount namespace: {proc.stderr.strip()[:200]}"
    return None


class ReadOnly:
    """Runs the CLI with some folders read-only: by mount (``how="mount"``) or permissions."""

    def __init__(self, how: str, tmp: Path) -> None:
        self.how, self.tmp = how, tmp
        self.folders: list[Path] = []

    def protect(self, *folders: Path) -> None:
        self.folders += folders
        if self.how == "chmod":
            for folder in folders:
                for root, _dirs, files in os.walk(folder):
                    for name in files:
                        os.chmod(os.path.join(root, name), 0o444)
                    os.chmod(root, 0o555)

    def release(self) -> None:
        if self.how == "chmod":
            for folder in self.folders:
                for root, _, _ in os.walk(folder):
                    os.chmod(root, 0o755)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = [*_cli(), *args]
        if self.how == "mount":
            cmd = [*_unshare(), "sh", "-c", _MOUNT_RO, "sh", str(len(self.folders)),
                   *map(str, self.folders), *cmd]
        full_env = {**os.environ, "XDG_CONFIG_HOME": str(self.tmp / "xdg-config"), **(env or {})}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=full_env)


@pytest.fixture(params=["mount", "chmod"])
def read_only(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadOnly]:
    how = request.param
    if how == "chmod" and os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop root from writing (the mount variant covers it)")
    if how == "mount":
        probe = tmp_path / "probe"
        probe.mkdir()
        reason = _mount_unavailable(str(probe))
        if reason:
            pytest.skip(reason)
    ro = ReadOnly(how, tmp_path)
    yield ro
    ro.release()


@pytest.fixture()
def catalog(tmp_path: Path) -> Path:
    """A real catalog (one group of three, one decision) in ``tmp_path/cat``, written by the CLI."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name, source in PHOTOS.items():
        shutil.copyfile(SAMPLE / source, lib / name)
    db = tmp_path / "cat" / "c.db"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    for args in (["find-duplicates", str(lib), "--no-gpu"], ["decide", "keeper", str(lib / "IMG_8812.webp")]):
        proc = subprocess.run([*_cli(), *args, "--catalog", str(db)], capture_output=True, text=True,
                              timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
    return db


def tree(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: (mtime_ns, SHA-256), by relative path."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_commands_that_only_read_work_on_a_read_only_catalog(
        read_only: ReadOnly, catalog: Path, tmp_path: Path) -> None:
    folder = catalog.parent
    before = tree(folder)
    read_only.protect(folder)
    db = str(catalog)

    listed = read_only.run("decide", "list", "--catalog", db, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [d["kind"] for d in json.loads(listed.stdout)["decisions"]] == ["keeper"]

    dry = read_only.run("find-duplicates", "--dry-run", "--json", "--no-gpu", "--catalog", db)
    assert dry.returncode == 0, dry.stderr
    groups = json.loads(dry.stdout)["groups"]
    assert len(groups) == 1 and groups[0]["keeper"].endswith("IMG_8812.webp") and len(groups[0]["members"]) == 3

    out = tmp_path / "report"
    review = read_only.run("review", "--catalog", db, "--out", str(out), "--json")
    assert review.returncode == 0, review.stderr
    assert json.loads(review.stdout)["groups"] == 1 and (out / "index.html").is_file()

    calibrate = read_only.run("calibrate", "--catalog", db, "--json", "--no-gpu")
    assert calibrate.returncode == 0, calibrate.stderr
    assert "bands" in json.loads(calibrate.stdout)

    config = read_only.run("config", "--catalog", db)
    assert config.returncode == 0, config.stderr

    for proc in (listed, dry, review, calibrate, config):
        assert "Traceback" not in proc.stderr
    read_only.release()
    assert tree(folder) == before  # nothing written, no lock file, no -wal/-shm left there


def test_an_index_that_lags_its_read_only_catalog_is_caught_up_in_memory(
        read_only: ReadOnly, catalog: Path) -> None:
    """A catalog copied without its index folder: read, grouped from the catalog's hashes, and
    no index folder appears."""
    shutil.rmtree(str(catalog) + ".index")
    read_only.protect(catalog.parent)
    dry = read_only.run("find-duplicates", "--dry-run", "--json", "--no-gpu", "--catalog", str(catalog))
    assert dry.returncode == 0, dry.stderr
    assert [len(g["members"]) for g in json.loads(dry.stdout)["groups"]] == [3]
    assert not Path(str(catalog) + ".index").exists()


@pytest.mark.parametrize("command", [
    ["find-duplicates", "{lib}", "--no-gpu"], ["find-duplicates", "--no-gpu"], ["import", "{lib}", "--no-gpu"],
    ["undo"], ["decide", "keeper", "{lib}/IMG_8812.jpg"], ["decide", "not-duplicate", "{lib}/IMG_8812.jpg",
                                                          "{lib}/DSC_1001.jpg"], ["decide", "forget", "1"],
])
def test_commands_that_write_say_the_catalog_is_read_only_in_one_line(
        read_only: ReadOnly, catalog: Path, tmp_path: Path, command: list[str]) -> None:
    before = tree(catalog.parent)
    read_only.protect(catalog.parent)
    args = [a.replace("{lib}", str(tmp_path / "lib")) for a in command]
    line = one_line_error(read_only.run(*args, "--catalog", str(catalog)))
    assert line.startswith(f"lumina-dedup: error: {catalog}: the catalog is read-only (")
    read_only.release()
    assert tree(catalog.parent) == before


def test_an_unwritable_home(read_only: ReadOnly, catalog: Path, tmp_path: Path) -> None:
    """$HOME and $XDG_DATA_HOME unwritable: a catalog named elsewhere works as usual, reading
    or writing; the default catalog there is refused in one line (missing, or not creatable)."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    read_only.protect(home)
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    lib = str(tmp_path / "lib")

    for args in (["decide", "list"], ["review", "--out", str(tmp_path / "report")], ["config"],
                 ["find-duplicates", lib, "--no-gpu"]):
        proc = read_only.run(*args, "--catalog", str(catalog), env=env)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)

    default = home / "data" / "lumina-dedup" / "catalog.db"
    line = one_line_error(read_only.run("find-duplicates", lib, "--no-gpu", env=env))
    assert line.startswith(f"lumina-dedup: error: {default}: cannot create the catalog there (")
    line = one_line_error(read_only.run("decide", "list", env=env))
    assert line.startswith(f"lumina-dedup: error: {default}: no catalog there")
    read_only.release()
    assert not (home / "data" / "lumina-dedup").exists()


def test_an_index_opened_read_only_changes_in_memory_only(tmp_path: Path) -> None:
    """What a catalog opened to read gives its index: the rows it lacks are added for this run,
    and not a byte is written (nor a leftover of another writer deleted)."""
    import numpy as np

    from lumina_plugin.index import HashIndex
    from lumina_plugin.model import CODE_WORDS

    folder = tmp_path / "c.db.index"
    codes = np.arange(3 * CODE_WORDS, dtype=np.uint64).reshape(3, CODE_WORDS)
    with HashIndex.open(folder) as index:
        index.add(np.array([1, 2]), codes[:2])
    (folder / "seg-9999999999-pending.bin").write_bytes(b"another writer's pending segment")
    before = tree(folder)
    with HashIndex.open(folder, read_only=True) as index:
        index.add(np.array([3]), codes[2:])
        index.remove(np.array([1]))
        index.compact()
        assert index.ids.tolist() == [2, 3] and (index.codes == codes[1:]).all()
    assert tree(folder) == before
    with HashIndex.open(folder) as index:
        assert index.ids.tolist() == [1, 2]
    assert not (tmp_path / "none").exists()
    with HashIndex.open(tmp_path / "none", read_only=True) as index:
        assert len(index) == 0
    assert not (tmp_path / "none").exists()
