"""``lumina-dedup watch`` as a real process: kill -9 mid-batch and restart, SIGINT/SIGTERM
stop after the batch in progress, NDJSON output; and its errors for bad input.

The signal tests run the command in a subprocess on real folders; the catalog and the
queue file are read back with plain ``sqlite3``. Bad input is checked through the same
``main()`` in process (it never gets as far as watching).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from lumina_plugin.cli import main
from lumina_plugin.watch.queue import DurableQueue, queue_path
from lumina_plugin.watch.testing import distinct_photos, photo_sources, wait_for

CMD = [sys.executable, "-m", "lumina_plugin.cli", "watch"]


class Watcher:
    """A running ``lumina-dedup watch``; its stderr lines are collected as they come."""

    def __init__(self, folder: Path, catalog: Path, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen([*CMD, str(folder), "--catalog", str(catalog), "--json", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.err: list[str] = []
        self.out: list[str] = []
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._readers = [threading.Thread(target=self._read_err, args=(self.proc.stderr,), daemon=True),
                         threading.Thread(target=self.out.extend, args=(self.proc.stdout,), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_err(self, stream: IO[str]) -> None:
        for line in stream:
            self.err.append(line)
            self.lines.put(line)

    def wait_line(self, text: str, timeout: float = 60.0) -> str:
        """Block until a stderr line containing ``text`` arrives (or the process ends)."""
        for line in list(self.err):
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"no line with {text!r}; stderr:\n{''.join(self.err)[-3000:]}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if text in line:
                return line

    def finish(self, timeout: float = 60.0) -> tuple[int, list[dict]]:
        """Wait for the exit; the exit code and the NDJSON batches printed."""
        self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return self.proc.returncode, [json.loads(line) for line in self.out if line.strip()]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> list[Path]:
    """60 distinct real photos, 320x240, outside any watched folder."""
    return distinct_photos(tmp_path_factory.mktemp("staging"), 60, photo_sources(sample_dir), size=(320, 240))


def catalog_rows(catalog: Path) -> list[tuple[str, str]]:
    if not catalog.exists():
        return []
    with sqlite3.connect(catalog, timeout=10) as conn:
        return conn.execute("SELECT source_path, checksum FROM images ORDER BY source_path").fetchall()


def pending(catalog: Path) -> int:
    with sqlite3.connect(str(catalog) + ".watch-queue.db") as conn:
        return conn.execute("SELECT COUNT(*) FROM ops WHERE state='pending'").fetchone()[0]


def test_kill_9_during_a_batch_then_restart_gives_every_photo_exactly_once(
        tmp_path: Path, env: dict[str, str], staging: list[Path]) -> None:
    folder, catalog = tmp_path / "in", tmp_path / "catalog.db"
    folder.mkdir()
    first = Watcher(folder, catalog, env, "--batch-size", "8", "--max-wait", "0.2", "-vv")
    first.wait_line("start-up scan")
    for photo in staging:
        shutil.copyfile(photo, folder / photo.name)
    first.wait_line("batch 3 started")
    first.proc.kill()  # SIGKILL, in the middle of batch 3
    assert first.proc.wait(30) == -signal.SIGKILL
    committed = len(catalog_rows(catalog))
    assert 16 <= committed < len(staging)

    second = Watcher(folder, catalog, env, "--batch-size", "8", "--max-wait", "0.2")
    second.wait_line("resuming")  # the killed batch was still pending
    wait_for(lambda: len(catalog_rows(catalog)) == len(staging), timeout=90, what="every photo in the catalog")
    second.wait_line("regrouping the whole catalog")
    second.proc.send_signal(signal.SIGTERM)
    code, batches = second.finish()
    assert code == 0, "".join(second.err)
    want = sorted((str(folder / p.name), hashlib.sha256(p.read_bytes()).hexdigest()) for p in staging)
    assert catalog_rows(catalog) == want  # each photo once, whole
    assert sum(b["hashed"] for b in batches) == len(staging) - committed  # nothing hashed twice
    assert pending(catalog) == 0


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_batch_in_progress(
        tmp_path: Path, env: dict[str, str], staging: list[Path], sig: int, code: int) -> None:
    folder, catalog = tmp_path / "in", tmp_path / "catalog.db"
    folder.mkdir()
    w = Watcher(folder, catalog, env, "--batch-size", "10", "--max-wait", "0.2", "-vv")
    w.wait_line("start-up scan")
    for photo in staging[:30]:
        shutil.copyfile(photo, folder / photo.name)
    w.wait_line("batch 1 started")
    w.proc.send_signal(sig)
    rc, batches = w.finish()
    assert rc == code, "".join(w.err)
    assert "stopping after the current batch" in "".join(w.err)
    assert [b["batch"] for b in batches][:1] == [1] and batches[0]["hashed"] == batches[0]["imported"] > 0
    assert set(batches[0]) >= {"batch", "committed_at", "seconds", "imported", "hashed", "unchanged",
                               "removed", "moved", "errors", "backlog", "paths"}  # one NDJSON line per batch
    done = {p for b in batches for p in b["paths"]}
    assert {p for p, _ in catalog_rows(catalog)} == done  # finished batches in, nothing half-done
    with sqlite3.connect(str(catalog) + ".watch-queue.db") as conn:
        acked = {p for (p,) in conn.execute("SELECT path FROM ops WHERE state='acked'")}
    assert acked == done


@pytest.mark.parametrize("args, message, exit_code", [
    (["{tmp}/missing"], "{tmp}/missing: no such folder", 1),  # as find-duplicates, import and hash
    (["{tmp}/file.jpg"], "{tmp}/file.jpg: not a folder", 1),
    (["{tmp}", "--batch-size", "0"], "--batch-size must be at least 1", 2),
    (["{tmp}", "--max-wait", "-1"], "--max-wait must not be negative", 2),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, env: dict[str, str], args: list[str], message: str,
                                     exit_code: int, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    (tmp_path / "file.jpg").write_bytes(b"x")
    code = main(["watch", *[a.format(tmp=tmp_path) for a in args], "--catalog", str(tmp_path / "c.db")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == exit_code and len(lines) == 1 and message.format(tmp=tmp_path) in lines[0]


def test_a_second_watcher_on_one_catalog_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    catalog = tmp_path / "catalog.db"
    with DurableQueue(queue_path(catalog)):  # what a running watcher holds
        code = main(["watch", str(tmp_path), "--catalog", str(catalog)])
    err = capsys.readouterr().err
    assert code == 1 and "another watcher" in err and f"pid {os.getpid()}" in err


def test_watch_settings_come_from_the_config_file_and_flags_override_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lumina_plugin.cli import build_parser
    from lumina_plugin.commands._shared import load_config
    from lumina_plugin.commands.watch import settings_from
    from lumina_plugin.config import Config, ConfigError

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "lumina-dedup.toml").write_text(
        '[watch]\nfolders = ["/media/card"]\nbatch_size = 32\nmax_wait = 2.0\nmax_age = 4.0\n'
        'temp_suffixes = [".part", ".inprogress"]\npolling = false\n')
    args = build_parser().parse_args(["watch", "--catalog", str(tmp_path / "c.db"), "--batch-size", "8",
                                      "--polling"])
    settings = settings_from(args, load_config(args))
    assert settings.folders == ("/media/card",) and settings.temp_suffixes == (".part", ".inprogress")
    assert (settings.batch_size, settings.polling, settings.max_wait, settings.max_age) == (8, True, 2.0, 4.0)
    with pytest.raises(ConfigError, match="watch.batch_sise"):
        Config.from_mapping({"watch": {"batch_sise": 3}})
