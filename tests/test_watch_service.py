"""The watcher end to end, in process: real watchdog observers (inotify, and polling where
marked) on real folders, a real SQLite catalog, real photos, and a real PluginHost that
loads our plugin. A recording plugin stands in for *another* plugin only, to see which
host events the watcher fired.

Nothing waits by sleeping: each test waits on a condition with a timeout, and where a
test must show that something did *not* happen it drops a sentinel photo after it and
waits for that one (the watcher handles events in order).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from lumina_hooks import HostContext, PluginHost, hookimpl

import lumina_plugin.plugin as dedup_plugin
from lumina_plugin.config import Config
from lumina_plugin.engine import Engine
from lumina_plugin.settings.watch import WatchSettings
from lumina_plugin.watch.batcher import IMPORT, Op
from lumina_plugin.watch.observer import count_folders, inotify_budget
from lumina_plugin.watch.queue import DurableQueue, queue_path
from lumina_plugin.watch.service import WatchService
from lumina_plugin.watch.testing import WatcherThread, slow_write, wait_for

FAST = WatchSettings(max_wait=0.1, max_age=0.5, stable_seconds=0.3, poll_interval=0.1, retry_seconds=0.2,
                     write_timeout=30.0)
MODES = [pytest.param(False, id="inotify"), pytest.param(True, id="polling")]

PHOTOS = ["2015/2015-06-21/P6210097.jpg", "2016/2016-08-19/DSC04512.jpg", "2019/2019-04-27/DSCF0815.jpg",
          "2021/2021-03-14/IMG_0412.jpg", "2022/2022-02-05/IMG_5521.jpg", "2023/2023-05-20"]


class Recorder:
    """Another plugin: records what the host fired."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def lumina_images_imported(self, event: Any) -> None:
        self.events.append(("imported", event))

    @hookimpl
    def lumina_images_removed(self, event: Any) -> None:
        self.events.append(("removed", event))

    @hookimpl
    def lumina_images_moved(self, event: Any) -> None:
        self.events.append(("moved", event))

    @hookimpl
    def lumina_scan_finished(self, event: Any) -> None:
        self.events.append(("scan_finished", event))

    def of(self, kind: str) -> list[Any]:
        return [e for k, e in self.events if k == kind]


class Boom:
    """Another plugin that fails on every import (a host-side error mid-batch)."""

    @hookimpl
    def lumina_images_imported(self) -> None:
        raise RuntimeError("boom")


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    path = tmp_path / "in"
    path.mkdir()
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


def make_host(catalog: Path, *extra: object) -> PluginHost:
    host = PluginHost(HostContext(name="test watch", catalog=str(catalog)), load_entrypoints=False,
                      plugins=[dedup_plugin])
    for n, plugin in enumerate(extra):
        host.register(plugin, name=f"extra{n}")
    return host


def watcher(watched: Path, catalog: Path, polling: bool = False, host: PluginHost | None = None,
            **changes: Any) -> WatcherThread:
    settings = dataclasses.replace(FAST, polling=polling, **changes)
    return WatcherThread(WatchService([watched], catalog, Config(), settings, host=host))


def rows(catalog: Path) -> dict[str, tuple[str, str, int]]:
    """path -> (image id, sha256, size) as the catalog holds them."""
    if not catalog.exists():
        return {}
    with sqlite3.connect(catalog) as conn:
        return {p: (i, c, s) for i, p, c, s in conn.execute("SELECT id, source_path, checksum, size_bytes FROM images")}


def tags_of(catalog: Path, path: Path) -> set[str]:
    with sqlite3.connect(catalog) as conn:
        return {name for (name,) in conn.execute(
            "SELECT t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id JOIN images i ON i.id = it.image_id"
            " WHERE i.source_path = ?", (str(path),))}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def drop(sample_dir: Path, rel: str, dest: Path) -> Path:
    """Copy one sample photo in the ordinary way (one write, one close)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_dir / rel, dest)
    return dest


def sentinel(w: WatcherThread, sample_dir: Path, folder: Path, name: str = "zz_sentinel.jpg") -> None:
    """Drop one more photo and wait until it is committed: everything before it is decided."""
    path = drop(sample_dir, "2015/2015-07-21/" + os.listdir(sample_dir / "2015/2015-07-21")[0], folder / name)
    w.wait_batches(lambda bs: any(str(path) in b.imported for b in bs), what=f"{path.name} imported")


# -- 1. one path for hosts and the CLI: the host's images-imported event ------------------------------
def test_photos_dropped_in_are_imported_in_one_batch_through_the_host(
        watched: Path, catalog: Path, sample_dir: Path) -> None:
    recorder = Recorder()
    with make_host(catalog, recorder) as host, watcher(watched, catalog, host=host) as w:
        assert w.service.mode == "inotify"
        dropped = [drop(sample_dir, rel, watched / Path(rel).name) for rel in PHOTOS[:5]]
        w.wait_hashed(5)
    assert len(w.batches) == 1 and w.errors() == []
    [event] = recorder.of("imported")
    assert event.source == "watch" and sorted(event.paths) == sorted(map(str, dropped))
    assert {p: (c, s) for p, (_, c, s) in rows(catalog).items()} == \
        {str(p): (sha(p), p.stat().st_size) for p in dropped}
    with DurableQueue(queue_path(catalog)) as q:
        assert q.counts()["pending"] == 0


# -- 3. complete files only ---------------------------------------------------------------------------
@pytest.mark.parametrize("polling", MODES)
def test_a_photo_written_slowly_is_hashed_once_and_only_when_complete(
        watched: Path, catalog: Path, big_photo: Path, polling: bool) -> None:
    data = big_photo.read_bytes()
    dest = watched / "card" / "DSC_0001.jpg"
    dest.parent.mkdir()
    # With close events the writer may pause far longer than stable_seconds (here over
    # twice as long); without them (polling) stability is all there is, so the pauses
    # must be shorter than stable_seconds.
    stable, pause = (0.15, 0.5) if not polling else (0.5, 0.05)

    def nothing_yet(_: int) -> None:
        assert w.batches == [] and rows(catalog) == {}, "a half-written file was imported"

    with watcher(watched, catalog, polling=polling, stable_seconds=stable) as w:
        slow_write(dest, data, pieces=6, pause=pause, on_piece=nothing_yet)
        w.wait_hashed(1)
    assert w.errors() == [] and w.hashed() == 1
    [(_, checksum, size)] = rows(catalog).values()
    assert checksum == hashlib.sha256(data).hexdigest() and size == len(data)


def test_temporary_names_wait_for_their_rename(watched: Path, catalog: Path, sample_dir: Path) -> None:
    data = (sample_dir / PHOTOS[1]).read_bytes()
    with watcher(watched, catalog) as w:
        slow_write(watched / "a.jpg.part", data, pieces=3, pause=0.4)   # browser / scp style
        slow_write(watched / ".b.jpg.Xy12ab", data, pieces=3, pause=0.4)  # rsync style
        slow_write(watched / "c.jpg.crdownload", data, pieces=2, pause=0.05)  # never renamed
        slow_write(watched / "d.jpg~", data, pieces=2, pause=0.05)
        os.rename(watched / "a.jpg.part", watched / "a.jpg")
        os.rename(watched / ".b.jpg.Xy12ab", watched / "b.jpg")
        sentinel(w, sample_dir, watched)
    assert sorted(Path(p).name for p in rows(catalog)) == ["a.jpg", "b.jpg", "zz_sentinel.jpg"]
    assert w.hashed() == 3 and w.errors() == []


def test_repeated_events_for_one_file_import_it_once(watched: Path, catalog: Path, sample_dir: Path) -> None:
    with watcher(watched, catalog) as w:
        photo = drop(sample_dir, PHOTOS[0], watched / "a.jpg")
        w.wait_hashed(1)
        st = photo.stat()
        for _ in range(3):  # open/close for writing without writing, chmod, utime to the same time
            open(photo, "ab").close()
            os.chmod(photo, 0o644)
            os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
        sentinel(w, sample_dir, watched)
    assert w.hashed() == 2 and len(rows(catalog)) == 2  # a.jpg once, the sentinel once


def test_a_name_that_is_not_utf8_is_one_warning_and_the_rest_goes_on(
        watched: Path, catalog: Path, sample_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = (sample_dir / PHOTOS[0]).read_bytes()
    with caplog.at_level(logging.WARNING, logger="lumina_plugin.watch"), watcher(watched, catalog) as w:
        with open(os.path.join(os.fsencode(watched), b"bad\xff.jpg"), "wb") as fh:
            fh.write(data)
        sentinel(w, sample_dir, watched)
    warnings = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert warnings == [f"{watched}/bad\ufffd.jpg: file name is not valid UTF-8; not imported"]
    assert [Path(p).name for p in rows(catalog)] == ["zz_sentinel.jpg"]


# -- 3. moves, renames and deletions -----------------------------------------------------------------
@pytest.mark.parametrize("polling", MODES)
def test_renames_and_moves_change_the_path_not_the_photo(
        watched: Path, catalog: Path, sample_dir: Path, polling: bool) -> None:
    recorder = Recorder()
    a = drop(sample_dir, "2015/2015-10-29/IMG_8812.jpg", watched / "a.jpg")
    copy = drop(sample_dir, "backup/2015/IMG_8812.jpg", watched / "trip" / "copy.jpg")  # an exact copy
    with make_host(catalog, recorder) as host, watcher(watched, catalog, polling=polling, host=host) as w:
        w.wait_hashed(2)
        before = rows(catalog)
        tags_before = tags_of(catalog, copy)
        assert "lumina-dedup:duplicate" in tags_before
        os.rename(a, watched / "renamed.jpg")
        os.rename(watched / "trip", watched / "trip-2024")
        w.wait_batches(lambda bs: sum(len(b.moved) for b in bs) >= 2, what="two moves")
    after = rows(catalog)
    moved_copy = watched / "trip-2024" / "copy.jpg"
    assert set(after) == {str(watched / "renamed.jpg"), str(moved_copy)}
    assert after[str(watched / "renamed.jpg")] == before[str(a)]  # same row id, checksum, size
    assert after[str(moved_copy)] == before[str(copy)]
    assert tags_of(catalog, moved_copy) == tags_before
    assert w.hashed() == 2 and w.errors() == []  # nothing hashed twice
    assert sorted(m for e in recorder.of("moved") for m in e.moves) == \
        sorted([(str(a), str(watched / "renamed.jpg")), (str(copy), str(moved_copy))])


def test_renamed_twice_before_its_batch_the_row_moves_twice(
        watched: Path, catalog: Path, sample_dir: Path) -> None:
    a = drop(sample_dir, PHOTOS[0], watched / "a.jpg")
    with watcher(watched, catalog, max_wait=0.5, max_age=1.0) as w:
        w.wait_hashed(1)
        before = rows(catalog)[str(a)]
        os.rename(a, watched / "b.jpg")
        os.rename(watched / "b.jpg", watched / "c.jpg")
        w.wait_batches(lambda bs: str(watched / "c.jpg") in rows(catalog), what="the row at c.jpg")
    assert rows(catalog) == {str(watched / "c.jpg"): before} and w.hashed() == 1


def test_deletions_fire_images_removed(watched: Path, catalog: Path, sample_dir: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    gone = drop(sample_dir, PHOTOS[0], watched / "gone.jpg")
    stays = drop(sample_dir, PHOTOS[1], watched / "stays.jpg")
    inner = drop(sample_dir, PHOTOS[2], watched / "album" / "inner.jpg")
    with make_host(catalog, recorder) as host, watcher(watched, catalog, host=host) as w:
        w.wait_hashed(3)
        gone.unlink()
        shutil.move(str(watched / "album"), str(tmp_path / "album-elsewhere"))  # leaves the watch
        w.wait_batches(lambda bs: sum(len(b.removed) for b in bs) >= 2, what="two removals")
    assert set(rows(catalog)) == {str(stays)}
    assert sorted(p for e in recorder.of("removed") for p in e.paths) == sorted([str(gone), str(inner)])


# -- 5. the start-up scan ---------------------------------------------------------------------------
def test_start_up_scan_catches_up_without_rehashing_unchanged_files(
        watched: Path, catalog: Path, sample_dir: Path, make_photo: Any) -> None:
    keep = drop(sample_dir, PHOTOS[0], watched / "keep.jpg")
    edit = drop(sample_dir, PHOTOS[1], watched / "edit.jpg")
    gone = drop(sample_dir, PHOTOS[2], watched / "gone.jpg")
    old = drop(sample_dir, PHOTOS[3], watched / "old-name.jpg")
    with watcher(watched, catalog) as w:
        w.wait_hashed(4)
    first = rows(catalog)
    # While nobody watches: two new photos, one edited, one deleted, one renamed.
    new1 = drop(sample_dir, PHOTOS[4], watched / "new" / "n1.jpg")
    new2 = make_photo("in/new/n2.png", size=(200, 120))
    make_photo("in/edit.jpg", size=(320, 200), quality=70)
    gone.unlink()
    os.rename(old, watched / "new-name.jpg")
    with watcher(watched, catalog) as w:
        w.wait_batches(lambda bs: sum(b.hashed for b in bs) >= 3 and any(b.moved for b in bs)
                       and any(b.removed for b in bs), what="catch-up batches")
    now = rows(catalog)
    assert set(now) == {str(p) for p in (keep, edit, new1, new2, watched / "new-name.jpg")}
    assert w.hashed() == 3  # n1, n2, edit; keep was not read, the rename kept its row
    assert now[str(keep)] == first[str(keep)] and now[str(watched / "new-name.jpg")] == first[str(old)]
    assert now[str(edit)][1] == sha(edit) != first[str(edit)][1]


def test_a_rescan_finds_what_the_observer_missed(watched: Path, catalog: Path, sample_dir: Path) -> None:
    a = drop(sample_dir, PHOTOS[0], watched / "a.jpg")
    with watcher(watched, catalog) as w:
        w.wait_hashed(1)
        with Engine(catalog) as engine:  # the row vanishes behind the watcher's back
            engine.remove_paths([str(a)])
        assert rows(catalog) == {}
        # watchdog's own warning when the kernel's event queue overflowed
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost")
        w.wait_hashed(2)
    assert set(rows(catalog)) == {str(a)}


# -- 6. the durable queue ------------------------------------------------------------------------------
def test_a_batch_is_acknowledged_only_after_the_host_returned(
        watched: Path, catalog: Path, sample_dir: Path) -> None:
    photo = drop(sample_dir, PHOTOS[0], watched / "a.jpg")
    with make_host(catalog, Boom()) as host:
        w = watcher(watched, catalog, host=host)
        with pytest.raises(RuntimeError, match="boom"):
            with w:
                wait_for(lambda: w.error is not None, what="the failing batch")
    with DurableQueue(queue_path(catalog)) as q:
        assert [op.path for op in q.pending()] == [str(photo)]
    recorder = Recorder()
    with make_host(catalog, recorder) as host, watcher(watched, catalog, host=host) as w:
        w.wait_hashed(1)
        wait_for(lambda: recorder.of("scan_finished"), what="the recovery regroup")
    assert set(rows(catalog)) == {str(photo)}
    with DurableQueue(queue_path(catalog)) as q:
        assert q.counts()["pending"] == 0


def test_replaying_a_committed_batch_hashes_nothing(watched: Path, catalog: Path, sample_dir: Path) -> None:
    photos = [drop(sample_dir, rel, watched / Path(rel).name) for rel in PHOTOS[:4]]
    with Engine(catalog) as engine:  # committed...
        assert engine.import_paths([str(p) for p in photos]).hashed == 4
    with DurableQueue(queue_path(catalog)) as q:  # ...but killed before the acknowledgement
        q.put([Op(IMPORT, str(p)) for p in photos])
    recorder = Recorder()
    with make_host(catalog, recorder) as host, watcher(watched, catalog, host=host) as w:
        w.wait_batches(lambda bs: bs and recorder.of("scan_finished"), what="the replayed batch")
    assert w.hashed() == 0 and sum(b.unchanged for b in w.batches) == 4
    assert len(rows(catalog)) == 4


# -- 2. inotify limits ----------------------------------------------------------------------------------
def test_too_few_inotify_watches_fall_back_to_polling_with_a_clear_message(
        watched: Path, catalog: Path, sample_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    for n in range(5):
        (watched / f"d{n}" / "deeper").mkdir(parents=True)
    assert count_folders([str(watched)]) == 11
    budget = inotify_budget([str(watched)], limit=4)
    assert not budget.fits() and "max_user_watches is 4" in budget.message()
    settings = dataclasses.replace(FAST)
    service = WatchService([watched], catalog, Config(), settings, host=None, watch_limit=4)
    with caplog.at_level(logging.WARNING, logger="lumina_plugin.watch"), WatcherThread(service) as w:
        assert service.mode == "polling"
        drop(sample_dir, PHOTOS[0], watched / "d3" / "deeper" / "a.jpg")
        w.wait_hashed(1)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "11 folders" in message and "sysctl fs.inotify.max_user_watches=" in message


def test_the_watchers_own_host_starts_the_hashing_pool_unless_told_otherwise(watched: Path, catalog: Path) -> None:
    from lumina_plugin.settings.hashing import HashingSettings

    want = {"hashing": {"parallel_min_mb": 0}} if hasattr(HashingSettings(), "parallel_min_mb") else {}
    assert WatchService([watched], catalog, Config())._own_host_config() == want
    given = {"hashing": {"parallel_min_mb": 8}, "batch_size": 64}
    assert WatchService([watched], catalog, Config(), host_config=given)._own_host_config() == given
    if want:
        from_file = Config.from_mapping({"hashing": {"parallel_min_mb": 8}})
        assert WatchService([watched], catalog, from_file)._own_host_config() == {}
    off = dataclasses.replace(FAST, warm_pool=False)
    assert WatchService([watched], catalog, Config(), off)._own_host_config() == {}
