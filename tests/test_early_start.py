"""A command that will hash a library starts the worker processes' fork server at its first
line (ingest/early_start.py), and the pool then forks its workers from that server; a run of a
few small files starts nothing early. Checked in fresh interpreters: the fork server is one
per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_photo

from lumina_plugin.config import DEFAULT_EXTENSIONS
from lumina_plugin.ingest import early_start, pool

PROBE = """
import os, sys, time
from multiprocessing import forkserver
from lumina_plugin.ingest.early_start import start_fork_server
started = start_fork_server(sys.argv[1:], {extensions!r}, 2, {min_bytes})
deadline = time.monotonic() + 60
while started and forkserver._forkserver._forkserver_pid is None and time.monotonic() < deadline:
    time.sleep(0.01)
server = forkserver._forkserver._forkserver_pid
from lumina_plugin.ingest import pool
parent = pool.get_pool(1).submit(os.getppid).result(timeout=60)
pool.shutdown_pool()
print("STARTED", started, server is not None and parent == server)
"""


def _probe(paths: list[Path], min_bytes: int) -> tuple[bool, bool]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(extensions=DEFAULT_EXTENSIONS, min_bytes=min_bytes),
                           *map(str, paths)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    _, started, forked_there = done.stdout.split()[-3:]
    return started == "True", forked_there == "True"


def test_a_library_starts_the_fork_server_and_the_pool_forks_from_it(tmp_path: Path) -> None:
    for n in range(6):
        write_photo(tmp_path / "day" / f"p{n}.jpg", size=(320 + n, 240))
    weight = sum(p.stat().st_size for p in (tmp_path / "day").iterdir())
    assert _probe([tmp_path], min_bytes=weight) == (True, True)


def test_a_few_small_files_start_nothing_early(tmp_path: Path) -> None:
    write_photo(tmp_path / "one.jpg", size=(320, 240))
    write_photo(tmp_path / "two.jpg", size=(321, 240))
    (tmp_path / "notes.txt").write_bytes(b"x" * 100_000)  # not a photo: weighs nothing here
    started, _ = _probe([tmp_path], min_bytes=32 << 20)
    assert not started


@pytest.mark.parametrize("layout", ["files", "folders", "missing"])
def test_enough_counts_photo_files_and_their_bytes(tmp_path: Path, layout: str) -> None:
    paths = [write_photo(tmp_path / "a" / "b" / f"p{n}.jpg", size=(200, 150)) for n in range(3)]
    (tmp_path / "a" / "big.bin").write_bytes(b"\0" * 50_000)
    weight = sum(p.stat().st_size for p in paths)
    given = {"files": [str(p) for p in paths], "folders": [str(tmp_path)],
             "missing": [str(tmp_path / "gone.jpg"), str(paths[0])]}[layout]
    ext = tuple(DEFAULT_EXTENSIONS)
    if layout == "missing":  # a vanished path counts nothing and breaks nothing
        assert not early_start._enough(given, ext, 2, 1)
        assert early_start._enough(given, ext, 1, 1)
        return
    assert early_start._enough(given, ext, 3, weight)
    assert not early_start._enough(given, ext, 4, 1)  # only three photos
    assert not early_start._enough(given, ext, 3, weight + 1)  # big.bin is no photo


def test_hidden_files_count_for_nothing_and_a_huge_folder_is_not_read_to_its_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = tuple(DEFAULT_EXTENSIONS)
    write_photo(tmp_path / "._p0.jpg", size=(200, 150))  # AppleDouble and thumbnail caches,
    write_photo(tmp_path / ".thumbnails" / "p1.jpg", size=(200, 150))  # which discover skips
    assert not early_start._enough([str(tmp_path)], ext, 1, 1)
    # A folder of many entries: the look stops at _LOOK_AT, and says whether photos were found.
    monkeypatch.setattr(early_start, "_LOOK_AT", 50)
    for n in range(200):
        (tmp_path / f"notes{n:03d}.txt").write_bytes(b"x")
    assert not early_start._enough([str(tmp_path)], ext, 1, 1)
    write_photo(tmp_path / "a.jpg", size=(200, 150))
    write_photo(tmp_path / "b.jpg", size=(200, 150))
    # (the paths are walked last first: the two files, then the folder, cut short)
    assert early_start._enough([str(tmp_path), str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")], ext, 2, 1 << 40)


def test_the_server_preloads_the_pools_module() -> None:
    assert early_start.PRELOAD == pool.__name__
