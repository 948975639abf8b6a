"""The watchdog side: an observer whose handler only enqueues, and the inotify limits.

watchdog calls handlers on its own thread and has no catch-all around them: an
exception there kills the observer (watchdog issues #427, #793). So the handler does
one thing, put a plain :class:`RawEvent` on a thread-safe queue, and the service loop
does the rest on its own thread.

inotify needs one watch per *folder*. When ``fs.inotify.max_user_watches`` runs out,
watchdog 6 and later silently skip the folders it could not watch (commit ad0d055):
photos landing there would never be seen. :func:`inotify_budget` counts the folders
first and compares with the limit (minus the watches this user already holds), so
the watcher can say so and poll instead. When the kernel's event queue overflows,
watchdog logs a warning and drops events; :class:`LostEventsAlarm` listens for that
warning so the service can rescan.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from watchdog.events import (DirDeletedEvent, DirMovedEvent, FileAttribEvent, FileClosedEvent, FileCreatedEvent,
                             FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileSystemEvent,
                             FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

#: The events the watcher listens for. Not "opened" or "closed without write": the
#: watcher's own reads of each photo would cause a flood of those.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    DirMovedEvent, DirDeletedEvent,
]

_KINDS = {"created": "created", "modified": "modified", "attrib": "attrib", "closed": "closed",
          "moved": "moved", "deleted": "deleted"}


@dataclass(frozen=True)
class RawEvent:
    """One filesystem event as the service sees it: plain strings, no watchdog types."""

    kind: str  # created, modified, attrib, closed, moved, deleted
    path: str
    dest: str | None = None
    is_dir: bool = False


class EventCollector(FileSystemEventHandler):
    """A watchdog handler that only puts events on ``sink`` (never raises)."""

    def __init__(self, sink: "queue.SimpleQueue[RawEvent]") -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = _KINDS.get(event.event_type)
        if kind is None:
            return
        dest = os.fsdecode(event.dest_path) if event.dest_path else None
        self.sink.put(RawEvent(kind, os.fsdecode(event.src_path), dest, event.is_directory))


class LostEventsAlarm(logging.Handler):
    """Set :attr:`tripped` when watchdog reports that the kernel dropped events."""

    LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.tripped = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.tripped.set()

    def install(self) -> "LostEventsAlarm":
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def remove(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


# -- inotify limits -------------------------------------------------------------------------
@dataclass(frozen=True)
class InotifyBudget:
    """Folders to watch against the user's inotify watch limit."""

    folders: int
    limit: int | None  # None: not Linux, or unreadable
    in_use: int

    @property
    def free(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.in_use)

    def fits(self) -> bool:
        return self.free is None or self.folders <= self.free

    def message(self) -> str:
        need = self.folders + self.in_use
        return (f"inotify cannot watch all {self.folders} folders: fs.inotify.max_user_watches is {self.limit} "
                f"and {self.in_use} watches are already in use by this user; watchdog would miss photos in "
                f"the folders left over, so the watcher polls instead (slower to notice). To use inotify, "
                f"raise the limit: sudo sysctl fs.inotify.max_user_watches={max(need * 2, 524288)}")


def count_folders(roots: Iterable[str], follow_symlinks: bool = False) -> int:
    """Folders under ``roots``, the roots included: the inotify watches a recursive watch needs."""
    total = 0
    for root in roots:
        for _, dirs, _ in os.walk(root, followlinks=follow_symlinks):
            total += 1
    return total


def max_user_watches() -> int | None:
    """``/proc/sys/fs/inotify/max_user_watches``, or None where there is no such file."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None


def watches_in_use() -> int:
    """inotify watches held by this user's processes (best effort, from ``/proc/*/fdinfo``)."""
    uid, total = os.getuid(), 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    total += sum(1 for line in fh if line.startswith("inotify wd:"))
            except OSError:
                continue
    return total


def inotify_budget(roots: Iterable[str], limit: int | None = None) -> InotifyBudget:
    """Whether inotify can watch every folder under ``roots``; ``limit`` overrides the
    system's value (tests, or a host that knows better)."""
    limit = max_user_watches() if limit is None else limit
    in_use = watches_in_use() if limit is not None else 0
    return InotifyBudget(count_folders(roots), limit, in_use)


# -- the observer ---------------------------------------------------------------------------
def start_observer(roots: Iterable[str], sink: "queue.SimpleQueue[RawEvent]", polling: bool,
                   poll_interval: float = 1.0, watch_limit: int | None = None) -> tuple[BaseObserver, bool]:
    """Start a recursive observer of ``roots`` feeding ``sink``.

    Returns the observer and whether it reports close-after-write (inotify does; a
    polling observer and the other platforms' observers do not). Falls back to
    polling, with a warning that says why, when inotify cannot watch every folder.
    """
    roots = list(roots)
    handler = EventCollector(sink)
    if not polling:
        budget = inotify_budget(roots, watch_limit)
        if not budget.fits():
            log.warning("%s", budget.message())
            polling = True
    if not polling:
        observer: BaseObserver = Observer()
        try:
            for root in roots:
                observer.schedule(handler, root, recursive=True, event_filter=EVENT_FILTER)
            observer.start()
        except OSError as exc:
            log.warning("inotify is not usable (%s): the watcher polls instead (slower to notice); to use "
                        "inotify raise fs.inotify.max_user_instances or max_user_watches", exc)
            _stop(observer)
            polling = True
        else:
            return observer, type(observer).__name__ == "InotifyObserver"
    observer = PollingObserver(timeout=poll_interval)
    for root in roots:
        observer.schedule(handler, root, recursive=True, event_filter=EVENT_FILTER)
    observer.start()
    return observer, False


def _stop(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join()
    except RuntimeError:  # never started
        pass


def stop_observer(observer: BaseObserver) -> None:
    """Stop ``observer`` and wait for its threads."""
    _stop(observer)
