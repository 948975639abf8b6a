"""The watchdog side: an observer whose handler only enqueues, and that can be restarted.

watchdog calls handlers on its own thread and has no catch-all around them: an
exception there kills the observer (watchdog issues #427, #793). So the handler does
one thing, put a plain :class:`RawEvent` on a thread-safe queue, and the service loop
does the rest on its own thread.

:class:`Watch` owns the observer of all the roots. It falls back to polling when
inotify cannot watch every folder (:mod:`.inotify`), tells whether a new folder is
really watched (watchdog before 7.1 leaves folders moved in from outside unwatched),
and restarts. When the kernel's event queue overflows, watchdog 7.1 and later log a
warning and drop events; :class:`LostEventsAlarm` listens for that warning so the
service can rescan. What differs between watchdog releases is in :mod:`.compat`.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from . import compat
from .inotify import count_folders, inotify_budget, own_inotify_fds, read_fdinfo, unwatched_in

__all__ = ["EventCollector", "LostEventsAlarm", "RawEvent", "Watch", "count_folders", "inotify_budget"]

log = logging.getLogger(__name__)

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

    def __init__(self, sink: queue.SimpleQueue[RawEvent], filtered: bool = compat.SCHEDULE_FILTERS) -> None:
        self.sink = sink
        self.filtered = filtered  # watchdog filtered already (schedule took event_filter)
        self._dir_move: tuple[str, str] | None = None  # the last folder move: (src, dest + sep)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not self.filtered and not compat.wanted_event(event):
            return
        kind = _KINDS.get(event.event_type)
        if kind is None:
            return
        src, dest = os.fsdecode(event.src_path), compat.dest_path(event)
        dest = os.fsdecode(dest) if dest else None
        if kind == "moved" and dest and event.is_directory and not event.is_synthetic:
            self._dir_move = (src, dest.rstrip(os.sep) + os.sep)
        elif kind == "moved" and dest and event.is_synthetic and self._dir_move is not None:
            # What a moved folder held, moved with it. Before watchdog 7.0 the source was
            # made with str.replace(), wrong where the folder's path occurs twice in the
            # file's; the prefix of the folder's own move is always right.
            dir_src, dir_dest = self._dir_move
            if dest.startswith(dir_dest):
                src = os.path.join(dir_src, dest[len(dir_dest):])
        self.sink.put(RawEvent(kind, src, dest, event.is_directory))


class LostEventsAlarm(logging.Handler):
    """Set :attr:`tripped` when watchdog reports that the kernel dropped events (7.1 and
    later; older releases drop them without a word, see :mod:`.compat`)."""

    LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.tripped = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.tripped.set()

    def install(self) -> LostEventsAlarm:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def remove(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


class Watch:
    """A recursive observer of ``roots`` feeding ``sink``: :meth:`start`, :meth:`restart`,
    :meth:`stop`. ``close_events`` tells whether it reports close-after-write (inotify
    does; a polling observer and the other platforms' observers do not)."""

    #: Seconds between two checks that new folders are watched (each reads /proc fdinfo).
    FOLDER_CHECK = 0.25

    def __init__(self, roots: Iterable[str], sink: queue.SimpleQueue[RawEvent], polling: bool,
                 poll_interval: float = 1.0, watch_limit: int | None = None, retry_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.roots = list(roots)
        self.sink = sink
        self.polling = polling
        self.poll_interval = poll_interval
        self.watch_limit = watch_limit
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.observer: BaseObserver | None = None
        self.close_events = False
        self.restarts = 0
        #: The inotify instances the observer opened; empty: it opened none (watchdog 7.0
        #: shares one per process, opened by the first observer), then all the process's count.
        self._fds: set[int] = set()
        self._new_folders: set[str] = set()  # to check that they are watched
        self._next_check = 0.0
        self._restart_at: float | None = None

    @property
    def mode(self) -> str:
        return "inotify" if self.close_events else "polling"

    @property
    def checks_folders(self) -> bool:
        """Whether :meth:`unwatched` can tell anything (an inotify observer, and ``/proc``)."""
        return self.close_events and os.path.isdir("/proc/self/fdinfo")

    def start(self) -> None:
        """Start observing. Falls back to polling, with a warning that says why, when
        inotify cannot watch every folder. OSError when even polling cannot start."""
        handler = EventCollector(self.sink)
        polling = self.polling
        if not polling:
            budget = inotify_budget(self.roots, self.watch_limit)
            if not budget.fits():
                log.warning("%s", budget.message())
                polling = True
        if not polling:
            before = own_inotify_fds()  # watchdog 7.1 opens its instance in Observer()
            observer: BaseObserver = Observer()
            try:
                for root in self.roots:
                    compat.schedule(observer, handler, root)
                observer.start()
            except OSError as exc:
                log.warning("inotify is not usable (%s): the watcher polls instead (slower to notice); to use "
                            "inotify raise fs.inotify.max_user_instances or max_user_watches", exc)
                _stop(observer)
            else:
                self.observer = observer
                self.close_events = type(observer).__name__ == "InotifyObserver"
                self._fds = own_inotify_fds() - before
                return
        observer = PollingObserver(timeout=self.poll_interval)
        for root in self.roots:
            compat.schedule(observer, handler, root)
        try:
            observer.start()
        except BaseException:
            _stop(observer)
            raise
        self.observer, self.close_events, self._fds = observer, False, set()

    def stop(self) -> None:
        """Stop the observer and wait for its threads."""
        if self.observer is not None:
            _stop(self.observer)
            self.observer, self._fds, self.close_events = None, set(), False

    def restart(self) -> None:
        """A fresh observer: it walks the roots and watches every folder there now.
        Events in between are lost; the caller rescans."""
        self.stop()
        self.restarts += 1
        self._new_folders.clear()
        self.start()

    # -- kept watching: driven by the service loop ----------------------------------------
    def folder_appeared(self, path: str) -> None:
        """A folder was created, moved in or renamed: check soon that it is watched."""
        if self.checks_folders:
            self._new_folders.add(path)

    def false_root_deletion(self, root: str) -> bool:
        """Whether ``root``, reported deleted, is in fact still there (or cannot be told gone);
        then the observer restarts in ``retry_seconds``.

        watchdog before 7.0, polling, takes any error while listing (a network share that
        did not answer) for the root's deletion and stops polling it; removing every photo
        under it from the catalog would be wrong."""
        try:
            if not stat.S_ISDIR(os.stat(root).st_mode):
                return False
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            pass  # unreachable, not gone
        log.warning("%s: reported removed but still there (a share that did not answer?); nothing is "
                    "removed; watching it again in %.0f s", root, self.retry_seconds)
        self._restart_at = self.clock() + self.retry_seconds
        return True

    def next_action(self) -> float | None:
        """Our clock time of the next folder check or restart, None when there is none."""
        times = [t for t in (self._next_check if self._new_folders else None, self._restart_at) if t is not None]
        return min(times, default=None)

    def tend(self) -> bool:
        """Check the new folders (at most every ``FOLDER_CHECK`` seconds) and restart when
        one is not watched or a restart is due. Returns whether the observer was restarted."""
        now = self.clock()
        if self._new_folders and now >= self._next_check and self._restart_at is None:
            self._next_check = now + self.FOLDER_CHECK
            lost = self.unwatched(sorted(self._new_folders))
            self._new_folders.clear()
            if lost:
                more = f" and {len(lost) - 1} more folders" if len(lost) > 1 else ""
                log.info("%s%s: not watched by watchdog %s (moved in from outside the watch, or renamed "
                         "before it was watched); restarting the observer", lost[0], more, compat.version())
                self._restart_at = now
        if self._restart_at is None or now < self._restart_at:
            return False
        self._restart_at = None
        try:
            self.restart()
        except OSError as exc:
            log.warning("cannot watch %s yet (%s); trying again in %.0f s", ", ".join(self.roots), exc,
                        self.retry_seconds)
            self._restart_at = now + self.retry_seconds
            return False
        return True

    def unwatched(self, folders: Iterable[str]) -> list[str]:
        """The folders among ``folders`` that exist but have no inotify watch of this
        observer ([] when that cannot be told: polling, or no ``/proc``)."""
        if not self.checks_folders:
            return []
        text = read_fdinfo(self._fds or own_inotify_fds())
        return [] if text is None else unwatched_in(text, folders)


def _stop(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join()
    except RuntimeError:  # never started
        pass
