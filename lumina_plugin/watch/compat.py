"""What the installed watchdog can do, found by looking at it rather than at its version.

The watcher runs on watchdog 3.0 up to the newest release, because hosts pin old ones
(Lumina: ``watchdog>=3.0.0,<5.0.0``). From watchdog's changelog and source, what the
older releases lack and what the watcher does instead:

- ``event_filter`` of ``Observer.schedule`` (4.0): without it every event reaches the
  handler, which drops the unwanted ones itself (:func:`wanted_event`).
- ``dest_path`` on every event (4.0, when events became dataclasses): before, only moves
  have one.
- ``FileClosedNoWriteEvent`` (5.0): before it, asking for ``FileClosedEvent`` puts both
  ``IN_CLOSE_WRITE`` and ``IN_CLOSE_NOWRITE`` in the kernel mask; watchdog drops the
  no-write ones itself, so the handler sees the same events (only more wake-ups).
- ``FileAttribEvent`` (7.0): before it, inotify's ``IN_ATTRIB`` (chmod, ``os.utime``, a copy
  tool setting the mtime after its close) arrives as ``FileModifiedEvent``, exactly like a
  write. :class:`.readiness.Readiness` tells the two apart by the inode's times instead.
- polling that survives a failed snapshot (7.0): before, any error while listing a
  network share reports the *root* deleted and stops polling it. The service checks that
  a root reported deleted is really gone and restarts the observer.
- right sources for the files moved with a renamed folder (7.0): before, made by
  ``str.replace()``, wrong where the folder's path occurs twice in a file's;
  :class:`.observer.EventCollector` makes them from the folder's own move.
- watches for folders moved in from outside the watch, or renamed before watchdog
  watched them (7.1): before, such a folder gets no inotify watch and what lands in it
  later is never reported. :class:`.observer.Watch` checks each new folder and restarts.
  (watchdog 7.0 shares one inotify instance among all observers of a process.)
- the warning on an inotify queue overflow (7.1): before, ``IN_Q_OVERFLOW`` is dropped
  without a word; only the burst and periodic rescans catch what was lost.

Closed-after-write itself (``FileClosedEvent`` on inotify) is there since watchdog 2.0.
"""

from __future__ import annotations

import inspect
from typing import Any

import watchdog.events as _events
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.observers.api import BaseObserver

#: ``FileAttribEvent`` where watchdog has it (7.0 and later), else None.
FileAttribEvent: type[FileSystemEvent] | None = getattr(_events, "FileAttribEvent", None)

#: Whether metadata changes come as their own event rather than as a modification.
ATTRIB_EVENTS = FileAttribEvent is not None

#: The events the watcher listens for. Not "opened" or "closed without write": the
#: watcher's own reads of each photo would cause a flood of those. Folders created are
#: wanted so that the observer can check that watchdog watches them.
EVENT_FILTER: tuple[type[FileSystemEvent], ...] = tuple(cls for cls in (
    FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent) if cls is not None)

#: Whether ``Observer.schedule`` takes ``event_filter`` (watchdog 4.0 and later).
SCHEDULE_FILTERS = "event_filter" in inspect.signature(BaseObserver.schedule).parameters


def _reports_overflow() -> bool:
    try:  # inotify exists on Linux only; elsewhere there is nothing to overflow
        from watchdog.observers import inotify
    except (ImportError, OSError):
        return False
    group = getattr(inotify, "InotifyWatchGroup", None)
    return hasattr(group, "on_queue_overflow")


#: Whether watchdog logs a warning when the kernel's inotify queue overflowed (7.1).
REPORTS_OVERFLOW = _reports_overflow()


def version() -> str:
    """The installed watchdog's version, for log lines only (behaviour never depends on it)."""
    try:
        from watchdog.version import VERSION_STRING
    except ImportError:  # pragma: no cover - every release has it
        return "?"
    return str(VERSION_STRING)


def wanted_event(event: FileSystemEvent) -> bool:
    """Whether ``event`` is one of :data:`EVENT_FILTER`: the same test as watchdog's own
    filter, for releases whose ``schedule`` cannot filter."""
    return isinstance(event, EVENT_FILTER)


def dest_path(event: FileSystemEvent) -> Any:
    """The event's destination, or "" (watchdog 3 has ``dest_path`` on moves only)."""
    return getattr(event, "dest_path", "") or ""


def schedule(observer: BaseObserver, handler: Any, path: str) -> None:
    """Watch ``path`` recursively, filtered by watchdog where it can filter."""
    if SCHEDULE_FILTERS:
        observer.schedule(handler, path, recursive=True, event_filter=list(EVENT_FILTER))
    else:
        observer.schedule(handler, path, recursive=True)


def describe() -> str:
    """One line for the log: the watchdog in use and what the watcher makes up for."""
    missing = []
    if not SCHEDULE_FILTERS:
        missing.append("no event_filter (filtered in the handler)")
    if not ATTRIB_EVENTS:
        missing.append("no attrib events (told from writes by ctime)")
    if not REPORTS_OVERFLOW:
        missing.append("inotify overflow not reported (rescans find unseen files; a lost close waits write_timeout)")
    return f"watchdog {version()}" + (": " + "; ".join(missing) if missing else "")
