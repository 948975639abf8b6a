"""The watcher on every watchdog it supports (3.0 to the newest): each test states a
guarantee that some release does not give by itself, and holds on all of them.

Run under the newest watchdog (the dev venv) and under an old one (Lumina pins
``watchdog>=3.0.0,<5.0.0``), the same test checks the native behaviour on one and what
the watcher makes up for on the other (see ``lumina_plugin/watch/compat.py``). The
end-to-end tests use real observers, folders, photos and catalogs, as in
``test_watch_service.py``.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import shutil
import time
from pathlib import Path

import pytest
import watchdog.events as wd_events
from test_watch_service import PHOTOS, _no_user_config, catalog, drop, rows, sentinel, watched, watcher  # noqa: F401  (fixtures)
from watchdog.events import (
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)
from watchdog.observers.polling import PollingObserverVFS

import lumina_plugin.watch.observer as observer_module
from lumina_plugin.watch import compat
from lumina_plugin.watch.observer import EventCollector, RawEvent, Watch
from lumina_plugin.watch.readiness import Readiness
from lumina_plugin.watch.testing import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drain(sink: queue.SimpleQueue[RawEvent]) -> list[RawEvent]:
    out = []
    while True:
        try:
            out.append(sink.get_nowait())
        except queue.Empty:
            return out


# -- what the installed watchdog can do, checked against what it does ------------------------------
def test_feature_flags_match_what_a_real_observer_reports(tmp_path: Path) -> None:
    """ATTRIB_EVENTS is what readiness relies on: a chmod must come as "attrib" exactly
    when it says so, and as "modified" otherwise."""
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x" * 100)
    sink: queue.SimpleQueue[RawEvent] = queue.SimpleQueue()
    watch = Watch([str(tmp_path)], sink, polling=False)
    watch.start()
    try:
        if watch.mode != "inotify":
            pytest.skip("no inotify here")
        os.chmod(photo, 0o600)
        events = wait_for(lambda: [e for e in drain(sink) if e.path == str(photo)], 10, what="the chmod event")
    finally:
        watch.stop()
    assert [e.kind for e in events] == (["attrib"] if compat.ATTRIB_EVENTS else ["modified"])
    assert compat.ATTRIB_EVENTS == hasattr(wd_events, "FileAttribEvent")
    assert compat.describe().startswith("watchdog ")


def test_without_event_filter_the_handler_drops_what_watchdog_would_have(tmp_path: Path) -> None:
    sink: queue.SimpleQueue[RawEvent] = queue.SimpleQueue()
    collector = EventCollector(sink, filtered=False)  # as on watchdog 3, whose schedule cannot filter
    a = str(tmp_path / "a.jpg")
    noise = [FileOpenedEvent(a), DirModifiedEvent(str(tmp_path))]
    no_write = getattr(wd_events, "FileClosedNoWriteEvent", None)
    if no_write is not None:
        noise.append(no_write(a))
    for event in [*noise, FileModifiedEvent(a), FileClosedEvent(a)]:
        collector.on_any_event(event)
    assert [(e.kind, e.path, e.dest) for e in drain(sink)] == [("modified", a, None), ("closed", a, None)]


def test_a_moved_folders_content_moves_from_the_right_path() -> None:
    """watchdog < 7.0 makes the source of each file moved with a folder by str.replace(),
    wrong where the folder's path occurs twice in the file's path."""
    sink: queue.SimpleQueue[RawEvent] = queue.SimpleQueue()
    collector = EventCollector(sink)
    src, dest = "/w/in/d", "/w/in/e"
    inner = dest + "/w/in/e/x.jpg"  # what it held: d/w/in/e/x.jpg, now e/w/in/e/x.jpg
    collector.on_any_event(DirMovedEvent(src, dest))
    sub = FileMovedEvent(inner.replace(dest, src), inner)  # watchdog 6's way: /w/in/d/w/in/d/x.jpg
    sub.is_synthetic = True
    collector.on_any_event(sub)
    assert [(e.path, e.dest) for e in drain(sink)] == [(src, dest), (src + "/w/in/e/x.jpg", inner)]


# -- readiness without attrib events ------------------------------------------------------------------
def test_without_attrib_events_a_metadata_change_is_judged_by_stability(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=True, stable_seconds=1.0, write_timeout=60.0, clock=clock, attrib_events=False)
    chmodded, touched = tmp_path / "chmod.jpg", tmp_path / "utime.jpg"
    for photo in (chmodded, touched):
        photo.write_bytes(b"x" * 100)
    os.chmod(chmodded, 0o600)                      # ctime moves, mtime stays
    os.utime(touched, ns=(10**18, 10**18))         # a copy tool restoring the source's mtime
    r.modified(str(chmodded))                      # how watchdog < 7 reports both
    r.modified(str(touched))
    clock.now += 1.0
    assert sorted((Path(x.path).name, x.how) for x in r.due()) == [("chmod.jpg", "stable"), ("utime.jpg", "stable")]


def test_without_attrib_events_a_write_still_waits_for_its_close(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=True, stable_seconds=1.0, write_timeout=60.0, clock=clock, attrib_events=False)
    photo = tmp_path / "a.jpg"
    with open(photo, "wb") as fh:
        fh.write(b"half")
        fh.flush()
        st = os.stat(photo)
        assert st.st_ctime_ns == st.st_mtime_ns  # what the rule relies on: a write sets both
        r.created(str(photo))
        r.modified(str(photo))
        clock.now += 30
        assert r.due() == []                      # a pause far longer than stable_seconds
    assert [x.how for x in [r.closed(str(photo))] if x] == ["closed"]


def test_after_a_restart_files_being_written_are_judged_by_stability(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=True, stable_seconds=1.0, write_timeout=60.0, clock=clock)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"whole")
    r.created(str(photo))
    r.modified(str(photo))
    clock.now += 1.0
    assert r.due() == []                          # waits for a close...
    r.forget_writes()                             # ...that came while no observer listened
    clock.now += 1.0
    assert [x.how for x in r.due()] == ["stable"]


# -- which folders are watched -------------------------------------------------------------------------
def test_unwatched_tells_a_watched_folder_from_one_that_is_not(tmp_path: Path) -> None:
    root, outside = tmp_path / "in", tmp_path / "out"
    subs = [root / f"sub{n}" / "deeper" for n in range(5)]
    for sub in subs:
        sub.mkdir(parents=True)
    outside.mkdir()
    (root / "a.jpg").write_bytes(b"x")
    watch = Watch([str(root)], queue.SimpleQueue(), polling=False)
    watch.start()
    try:
        if not watch.checks_folders:
            pytest.skip("no inotify or no /proc here")
        assert watch.unwatched([str(root), str(subs[0])]) == []
        # not folders: nothing to say about them
        assert watch.unwatched([str(outside), str(root / "a.jpg"), str(root / "gone")]) == [str(outside)]
        assert watch.unwatched([*map(str, subs), str(outside)]) == [str(outside)]  # many: one parse
    finally:
        watch.stop()
    polling = Watch([str(root)], queue.SimpleQueue(), polling=True, poll_interval=0.1)
    polling.start()
    try:
        assert not polling.checks_folders and polling.unwatched([str(outside)]) == []
    finally:
        polling.stop()


# -- end to end: no misses, moves keep rows, nothing removed by mistake ------------------------------
def test_a_folder_moved_in_from_outside_is_watched(
        watched: Path, catalog: Path, sample_dir: Path, tmp_path: Path) -> None:
    """watchdog < 7.1 adds no watch for it: the photo copied into it later would be missed."""
    elsewhere = tmp_path / "card" / "DCIM"
    inside = drop(sample_dir, PHOTOS[0], elsewhere / "inside.jpg")
    with watcher(watched, catalog) as w:
        shutil.move(str(elsewhere), str(watched / "DCIM"))
        w.wait_batches(lambda bs: str(watched / "DCIM" / inside.name) in rows(catalog), what="the moved-in photo")
        wait_for(lambda: w.service.watch.unwatched([str(watched / "DCIM")]) == [], 10,
                 what="the folder to be watched")
        later = drop(sample_dir, PHOTOS[1], watched / "DCIM" / "later.jpg")
        w.wait_batches(lambda bs: str(later) in rows(catalog), what="the photo copied in later")
        os.mkdir(watched / "new")                 # renamed before watchdog may have watched it
        os.rename(watched / "new", watched / "renamed")
        time.sleep(0.3)
        last = drop(sample_dir, PHOTOS[2], watched / "renamed" / "last.jpg")
        w.wait_batches(lambda bs: str(last) in rows(catalog), what="the photo in the renamed folder")
    assert w.errors() == [] and w.hashed() == 3


def test_a_folder_renamed_keeps_its_photos_rows_where_its_path_repeats(
        watched: Path, catalog: Path, sample_dir: Path) -> None:
    """A path in which the folder's own path occurs twice (watchdog < 7.0 got the moved
    files' sources wrong there, and the photos would have been imported anew)."""
    deep = watched / "d" / str(watched / "e").lstrip(os.sep)  # in/d/<...>/in/e: after the rename, in/e/<...>/in/e
    photo = drop(sample_dir, PHOTOS[0], deep / "x.jpg")
    with watcher(watched, catalog) as w:
        w.wait_hashed(1)
        before = rows(catalog)[str(photo)]
        os.rename(watched / "d", watched / "e")
        moved = watched / "e" / deep.relative_to(watched / "d") / "x.jpg"
        w.wait_batches(lambda bs: any(b.moved for b in bs), what="the move")
        sentinel(w, sample_dir, watched)
    assert rows(catalog)[str(moved)] == before and str(photo) not in rows(catalog)
    assert w.hashed() == 2  # the photo once, the sentinel once


def test_a_chmod_or_an_mtime_set_after_the_copy_does_not_wait_for_a_close(
        watched: Path, catalog: Path, sample_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On watchdog < 7 both arrive as modifications, like a write, for which the watcher
    would wait ``write_timeout`` (30 s here) for a close that never comes."""
    with caplog.at_level(logging.WARNING, logger="lumina_plugin.watch"), watcher(watched, catalog) as w:
        photo = drop(sample_dir, PHOTOS[0], watched / "a.jpg")
        w.wait_hashed(1)
        os.chmod(photo, 0o600)
        os.utime(photo, ns=(10**18, 10**18))     # shutil.copy2 does this after its close
        w.wait_batches(lambda bs: sum(str(photo) in b.imported for b in bs) >= 2, timeout=10,
                       what="the changed mtime taken within stable_seconds")
    assert rows(catalog)[str(photo)][2] == photo.stat().st_size
    assert not [r for r in caplog.records if "no close after write" in r.getMessage()]


def test_a_share_that_fails_to_list_once_is_not_a_deleted_folder(
        watched: Path, catalog: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """watchdog < 7.0's polling takes any listing error for the root's deletion and stops."""
    failures = {"left": 0}

    def flaky_scandir(path: str | None = None):  # type: ignore[no-untyped-def]
        if failures["left"] and path == str(watched):
            failures["left"] -= 1
            raise OSError(errno.EIO, "Input/output error", path)
        return os.scandir(path)

    monkeypatch.setattr(observer_module, "PollingObserver",
                        lambda timeout: PollingObserverVFS(os.stat, flaky_scandir, polling_interval=timeout))
    with watcher(watched, catalog, polling=True) as w:
        first = drop(sample_dir, PHOTOS[0], watched / "a.jpg")
        w.wait_hashed(1)
        failures["left"] = 2
        wait_for(lambda: failures["left"] == 0, 10, what="the share to fail")
        second = drop(sample_dir, PHOTOS[1], watched / "b.jpg")
        w.wait_hashed(2, timeout=30)
    assert set(rows(catalog)) == {str(first), str(second)}
    assert not any(b.removed for b in w.batches)
