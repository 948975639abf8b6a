"""When a file in a watched folder is complete, and which names to leave alone.

A photo must never be read while it is still being written: a half-written JPEG
hashes to garbage or fails to decode. The rules, strongest signal first:

1. **closed after write** (inotify ``IN_CLOSE_WRITE``, watchdog's FileClosedEvent):
   the writer is done; take the file now.
2. **renamed from a temporary name** (``IMG_1.jpg.part`` -> ``IMG_1.jpg``, rsync's
   ``.IMG_1.jpg.Xy12`` -> ``IMG_1.jpg``): the writer's own way of saying it is done.
3. **stable**: where no close event can come (polling, network shares, a file moved in
   from another folder, the start-up scan), size and modification time unchanged for
   ``stable_seconds`` and no event for it in that time, as measured by our own clock
   (never by comparing the file's mtime with ours: network clocks drift).

A file seen being *written* (a modify event) where close events exist waits for its
close, however long the writer pauses; only after ``write_timeout`` quiet seconds is
it taken anyway (a stalled copy), and decoding then tells whether it is whole.
Empty files are never taken.

A metadata change (chmod, ``os.utime``, a copy tool setting the mtime after its close)
is no write: no close follows it, so it is judged by stability. watchdog before 7.0
reports it as a modification, like a write; there a modification is taken as a
metadata change when the inode's ctime differs from its mtime. A write sets both to the
same instant; chmod sets only the ctime and utime sets the mtime to another time. The
mistakes this can make are both safe: a write read as a metadata change still needs
``stable_seconds`` of quiet with an unchanged size and mtime (the polling rule), and an
``os.utime()`` to the current time (``Path.touch()``) read as a write waits for
``write_timeout`` before it is taken.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ready:
    """A complete file: its path, the size and mtime seen when it was judged complete,
    and which rule said so ("closed", "renamed", "stable", "timeout")."""

    path: str
    size: int
    mtime_ns: int
    how: str


class NameRules:
    """Which paths under the watched roots are photos to import.

    A path is wanted when its extension is a photo format and no part of it below its
    root is a temporary or hidden name. Temporary names are what copy tools write
    before renaming to the final name, so they are ignored until that rename.
    """

    def __init__(self, roots: Iterable[str], extensions: Iterable[str],
                 temp_suffixes: Iterable[str], hidden_prefixes: Iterable[str]) -> None:
        self.roots = tuple(sorted({os.path.abspath(r).rstrip(os.sep) or os.sep for r in roots},
                                  key=len, reverse=True))
        self.extensions = frozenset(e.lower() for e in extensions)
        self.temp_suffixes = tuple(s.lower() for s in temp_suffixes if s)
        self.hidden_prefixes = tuple(p for p in hidden_prefixes if p)

    def root_of(self, path: str) -> str | None:
        """The watched root holding ``path`` (the deepest one), or None."""
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return root
        return None

    def ignored_part(self, name: str) -> bool:
        """Whether one path component is a temporary or hidden name."""
        return name.startswith(self.hidden_prefixes) or name.lower().endswith(self.temp_suffixes)

    def wanted(self, path: str) -> bool:
        """Whether ``path`` is a photo to import (the right extension, no ignored part)."""
        if os.path.splitext(path)[1].lower() not in self.extensions:
            return False
        root = self.root_of(path)
        if root is None:
            return False
        rel = os.path.relpath(path, root)
        return not any(self.ignored_part(part) for part in rel.split(os.sep))

    def wanted_dir(self, path: str) -> bool:
        """Whether files under folder ``path`` can be wanted (no ignored part below its root)."""
        root = self.root_of(path)
        if root is None:
            return False
        if path == root:
            return True
        return not any(self.ignored_part(part) for part in os.path.relpath(path, root).split(os.sep))


@dataclass
class _Track:
    writing: bool          # a write was seen: wait for the close (if close events exist)
    last_event: float      # our clock, last event for this path
    seen: tuple[int, int] | None  # (size, mtime_ns) last observed
    seen_since: float      # our clock, when ``seen`` was first observed
    next_check: float      # our clock, when to look at it again


Stat = Callable[[str], os.stat_result]


class Readiness:
    """Tracks files that are not complete yet and says when each one is.

    Fed with observer events (``created``, ``modified``, ``closed``, ``moved``,
    ``deleted``) and start-up scan results (``found``); :meth:`due` returns the files
    that became complete by the stability rules. ``close_events`` is False when the
    observer cannot report close-after-write (polling): then every file is judged by
    stability alone. ``attrib_events`` is False when metadata changes arrive as
    modifications (watchdog before 7.0). Not thread-safe: one thread (the service
    loop) drives it.
    """

    def __init__(self, close_events: bool, stable_seconds: float, write_timeout: float,
                 clock: Callable[[], float] = time.monotonic, stat: Stat = os.stat,
                 attrib_events: bool = True) -> None:
        self.close_events = close_events
        self.attrib_events = attrib_events
        self.stable = max(0.0, stable_seconds)
        self.write_timeout = max(self.stable, write_timeout)
        self.clock = clock
        self.stat = stat
        self._tracks: dict[str, _Track] = {}

    def __contains__(self, path: object) -> bool:
        return path in self._tracks

    def __len__(self) -> int:
        return len(self._tracks)

    def paths(self) -> list[str]:
        return list(self._tracks)

    def _look(self, path: str) -> tuple[int, int] | None:
        try:
            st = self.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _track(self, path: str, now: float) -> _Track:
        track = self._tracks.get(path)
        if track is None:
            track = _Track(writing=False, last_event=now, seen=self._look(path), seen_since=now,
                           next_check=now + self.stable)
            self._tracks[path] = track
        return track

    # -- events ---------------------------------------------------------------------
    def created(self, path: str) -> None:
        """A file appeared: written here, or moved in from outside (then no close follows)."""
        now = self.clock()
        track = self._track(path, now)
        track.last_event = now

    def modified(self, path: str) -> None:
        """Bytes were written (or, when polling, size or mtime changed; or, without
        attrib events, perhaps only metadata)."""
        if self.close_events and not self.attrib_events and self._metadata_only(path):
            self.attrib(path)
            return
        now = self.clock()
        track = self._track(path, now)
        track.last_event = now
        if self.close_events:
            track.writing = True
            track.next_check = now + self.write_timeout
        else:
            track.next_check = now + self.stable

    def attrib(self, path: str) -> None:
        """Metadata changed (``touch``, ``chmod``, a copy tool setting the mtime after close)."""
        now = self.clock()
        track = self._track(path, now)
        track.last_event = now
        if not track.writing:
            track.next_check = now + self.stable

    def _metadata_only(self, path: str) -> bool:
        """Whether the last change of ``path`` looks like metadata, not a write (see above)."""
        try:
            st = self.stat(path)
        except OSError:
            return False
        return st.st_ctime_ns != st.st_mtime_ns

    def forget_writes(self) -> None:
        """Close events may have been lost (the observer was restarted): judge every
        tracked file by stability from now on, until a new write is seen."""
        now = self.clock()
        for track in self._tracks.values():
            if track.writing:
                track.writing, track.next_check = False, now + self.stable

    def found(self, path: str, size: int, mtime_ns: int) -> None:
        """The start-up (or periodic) scan found a file to import; judged by stability."""
        if path in self._tracks:
            return
        now = self.clock()
        self._tracks[path] = _Track(writing=False, last_event=now, seen=(size, mtime_ns), seen_since=now,
                                    next_check=now + self.stable)

    def closed(self, path: str, how: str = "closed") -> Ready | None:
        """The writer closed the file (or renamed it from a temporary name): complete now."""
        seen = self._look(path)
        if seen is None:  # gone again
            self._tracks.pop(path, None)
            return None
        if seen[0] == 0:  # created empty; the real content may follow
            now = self.clock()
            track = self._track(path, now)
            track.writing, track.last_event, track.next_check = False, now, now + self.stable
            return None
        self._tracks.pop(path, None)
        return Ready(path, seen[0], seen[1], how)

    def moved(self, src: str, dest: str) -> bool:
        """A tracked file was renamed: keep waiting for it under its new name.

        Returns whether ``src`` was tracked (an incomplete file)."""
        track = self._tracks.pop(src, None)
        if track is None:
            return False
        self._tracks[dest] = track
        return True

    def moved_dir(self, src: str, dest: str) -> None:
        """A folder was renamed: its tracked files follow it."""
        prefix = src.rstrip(os.sep) + os.sep
        for path in [p for p in self._tracks if p.startswith(prefix)]:
            self._tracks[dest.rstrip(os.sep) + os.sep + path[len(prefix):]] = self._tracks.pop(path)

    def deleted(self, path: str) -> None:
        self._tracks.pop(path, None)

    def deleted_dir(self, path: str) -> None:
        prefix = path.rstrip(os.sep) + os.sep
        for p in [p for p in self._tracks if p.startswith(prefix)]:
            del self._tracks[p]

    # -- time -------------------------------------------------------------------------
    def next_check(self) -> float | None:
        """Our clock time of the earliest pending check, or None when nothing is tracked."""
        return min((t.next_check for t in self._tracks.values()), default=None)

    def due(self) -> list[Ready]:
        """Files that became complete by the stability rules since the last call."""
        now = self.clock()
        out: list[Ready] = []
        for path, track in list(self._tracks.items()):
            if track.next_check > now:
                continue
            if track.writing and now - track.last_event < self.write_timeout:
                track.next_check = track.last_event + self.write_timeout
                continue
            seen = self._look(path)
            if seen is None:  # vanished: its delete event will follow
                del self._tracks[path]
                continue
            if seen != track.seen:
                track.seen, track.seen_since = seen, now
                track.next_check = now + self.stable
                continue
            quiet_since = max(track.seen_since, track.last_event)
            if seen[0] > 0 and now - quiet_since >= self.stable:
                del self._tracks[path]
                how = "timeout" if track.writing else "stable"
                if track.writing:
                    log.warning("%s: no close after write for %.0f s; taking it as it is", path,
                                now - track.last_event)
                out.append(Ready(path, seen[0], seen[1], how))
            else:
                track.next_check = max(now, quiet_since) + self.stable
        return out
