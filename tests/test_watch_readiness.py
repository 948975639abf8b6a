"""When a file is complete, and which names are ignored: real files, a test clock.

The clock is a counter the test advances; files are real and really stat'ed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lumina_plugin.config import DEFAULT_EXTENSIONS
from lumina_plugin.settings.watch import WatchSettings
from lumina_plugin.watch.readiness import NameRules, Readiness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rules(root: Path) -> NameRules:
    s = WatchSettings()
    return NameRules([str(root)], DEFAULT_EXTENSIONS, s.temp_suffixes, s.hidden_prefixes)


@pytest.mark.parametrize("name, wanted", [
    ("IMG_1.jpg", True), ("sub/dir/IMG_1.JPG", True), ("IMG_1.heic", True),
    ("IMG_1.jpg.part", False), ("IMG_1.jpg.tmp", False), ("IMG_1.jpg~", False),
    ("IMG_1.jpg.crdownload", False), (".IMG_1.jpg.Xy12ab", False), (".IMG_1.jpg", False),
    (".thumbnails/IMG_1.jpg", False), ("~$IMG_1.jpg", False), ("notes.txt", False),
    ("IMG_1.jpg.download", False), ("IMG_1.JPG.PART", False),
])
def test_temporary_and_hidden_names_are_not_wanted(tmp_path: Path, name: str, wanted: bool) -> None:
    assert rules(tmp_path).wanted(str(tmp_path / name)) is wanted


def test_only_paths_under_a_root_are_wanted(tmp_path: Path) -> None:
    r = rules(tmp_path / "in")
    assert not r.wanted(str(tmp_path / "elsewhere.jpg"))
    assert not r.wanted(str(tmp_path / "in-other" / "a.jpg"))
    assert r.wanted(str(tmp_path / "in" / "a.jpg"))
    assert r.wanted_dir(str(tmp_path / "in" / "x")) and not r.wanted_dir(str(tmp_path / "in" / ".x"))


def test_closed_file_is_ready_at_once_empty_one_is_not(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=True, stable_seconds=1.0, write_timeout=60.0, clock=clock)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x" * 100)
    r.created(str(photo))
    r.modified(str(photo))
    ready = r.closed(str(photo))
    assert ready is not None and ready.size == 100 and ready.how == "closed"
    assert str(photo) not in r
    empty = tmp_path / "empty.jpg"
    empty.touch()
    assert r.closed(str(empty)) is None and str(empty) in r  # waits for content


def test_a_file_being_written_waits_for_its_close_however_long_the_pause(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=True, stable_seconds=1.0, write_timeout=60.0, clock=clock)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"half")
    r.created(str(photo))
    r.modified(str(photo))
    clock.now += 30  # the writer pauses far longer than stable_seconds
    assert r.due() == []
    clock.now += 31  # a writer gone for write_timeout: taken as it is (decoding will judge it)
    assert [x.how for x in r.due()] == ["timeout"]


def test_without_close_events_a_file_is_ready_when_stable(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=False, stable_seconds=1.0, write_timeout=60.0, clock=clock)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"1234")
    r.created(str(photo))
    clock.now += 0.5
    assert r.due() == []
    with open(photo, "ab") as fh:  # grows: the clock starts again
        fh.write(b"5678")
    r.modified(str(photo))
    clock.now += 0.9
    assert r.due() == []
    clock.now += 0.2
    assert r.due() == []  # first look at the new size
    clock.now += 1.0
    ready = r.due()
    assert [(x.size, x.how) for x in ready] == [(8, "stable")]


def test_a_file_moved_in_with_no_close_is_taken_when_stable(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=True, stable_seconds=1.0, write_timeout=60.0, clock=clock)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"abc")
    r.created(str(photo))  # inotify reports a move from outside as "created", nothing else
    clock.now += 1.0
    assert [x.how for x in r.due()] == ["stable"]


def test_found_files_deleted_and_moved_tracks(tmp_path: Path) -> None:
    clock = Clock()
    r = Readiness(close_events=True, stable_seconds=1.0, write_timeout=60.0, clock=clock)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"abc")
    st = a.stat()
    r.found(str(a), st.st_size, st.st_mtime_ns)
    assert r.moved(str(a), str(b)) and str(b) in r and str(a) not in r
    os.rename(a, b)
    clock.now += 1.0
    assert [x.path for x in r.due()] == [str(b)]
    r.created(str(a))
    r.deleted(str(a))
    assert len(r) == 0 and r.next_check() is None
