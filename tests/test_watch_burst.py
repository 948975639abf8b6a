"""10,000 photos dropped at once: every one imported exactly once, in full batches.

A separate ``cp -r`` process copies a folder of 10,000 real, distinct JPEGs into the
watched folder while the watcher (real inotify observer, real catalog, our plugin
through a PluginHost) runs. If the kernel's event queue overflows on the way, the
watcher must notice and rescan; either way the end state is checked, not the path.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
from pathlib import Path

import pytest

from lumina_plugin.config import Config
from lumina_plugin.settings.watch import WatchSettings
from lumina_plugin.watch import compat
from lumina_plugin.watch import service as service_module
from lumina_plugin.watch.service import WatchService
from lumina_plugin.watch.testing import WatcherThread, distinct_photos, photo_sources

COUNT = 10_000
BATCH = 256


@pytest.mark.slow
def test_ten_thousand_files_dropped_at_once_are_imported_exactly_once_in_full_batches(
        tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    # The service stops draining events every so many to look at its batches; a small
    # limit makes that happen hundreds of times here (no event may be lost across it).
    monkeypatch.setattr(service_module, "_MAX_DRAIN", 97)
    staging = tmp_path / "staging"
    distinct_photos(staging, COUNT, photo_sources(sample_dir), size=(48, 36), tiles=3)
    watched, catalog = tmp_path / "in", tmp_path / "catalog.db"
    watched.mkdir()
    # A lost close event would leave its photo waiting write_timeout: longer than this test waits,
    # where watchdog reports a queue overflow (7.1 and later: the watcher rescans). Older ones
    # (Lumina's pins: 4.0.2) drop the overflow silently, so a close lost in it holds its photo
    # for write_timeout by design (docs/watch.md); there the test allows a short one. Seen under
    # those pins after the Lumina tests in the same process: 29 to about 950 of 10,000 waiting.
    # Batches close on size here, not on time: on a loaded 2-core machine the copy once
    # stalled past the default max_wait (0.25 s) three times and cut three batches short.
    write_timeout = 3600 if compat.REPORTS_OVERFLOW else 20
    settings = dataclasses.replace(WatchSettings(), batch_size=BATCH, stable_seconds=0.3,
                                   write_timeout=write_timeout, max_wait=2.0, max_age=5.0)
    service = WatchService([watched], catalog, Config(), settings)
    with WatcherThread(service) as w:
        subprocess.run(["cp", "-r", str(staging), str(watched / "card")], check=True)
        w.wait_hashed(COUNT, timeout=300)
    assert w.errors() == []
    assert w.hashed() == COUNT  # nothing hashed twice
    with sqlite3.connect(catalog) as conn:
        paths = [p for (p,) in conn.execute("SELECT source_path FROM images")]
    assert len(paths) == len(set(paths)) == COUNT
    assert set(paths) == {str(watched / "card" / p.name) for p in staging.iterdir()}
    sizes = [len(b.imported) for b in w.batches if b.imported]
    full = sum(size == BATCH for size in sizes)
    assert full >= COUNT // BATCH - 2, [s for s in sizes if s != BATCH]  # a stream of full batches...
    assert len(sizes) <= COUNT // BATCH + 6, sizes  # ...not thousands of small imports
