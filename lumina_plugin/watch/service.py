"""The watcher's loop: events -> complete files -> durable queue -> batches -> host events.

One thread (the caller's) does everything but listening: watchdog's threads only put
events on a queue. The loop drains them, asks :mod:`.readiness` which files are
complete, writes each resulting operation to the :mod:`.queue` file, lets the
:mod:`.batcher` close batches, and applies each batch by firing the host contract's
events (images removed, moved, imported) through a :class:`lumina_hooks.PluginHost`:
the same path a host takes, so the watcher is just one more event source. A batch's
operations are acknowledged only once those events returned, that is once the
catalog committed the batch's hashes and tags.

Start-up: operations a killed run left pending are replayed first; then the folders
are compared with the catalog (:mod:`.scan`), and the same comparison runs again
every ``rescan_seconds``, whenever the kernel reports lost events, and after the
observer was restarted (it does not watch a new folder, or stopped watching a root:
both happen with old watchdog releases, see :mod:`.compat`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lumina_hooks import PluginHost

from ..catalog.interface import CatalogLockedError
from ..catalog.locator import normalized
from ..config import Config
from ..settings.watch import WatchSettings
from . import compat
from .batcher import IMPORT, MOVE, REMOVE, Batcher, Op, OpList, phases
from .host import BatchResult, check_roots, default_host, own_host_config
from .observer import LostEventsAlarm, RawEvent, Watch
from .queue import DurableQueue, queue_path
from .readiness import NameRules, Readiness, Ready
from .scan import catch_up, printable, utf8

log = logging.getLogger(__name__)

_WAKE = RawEvent("wake", "")
_MAX_DRAIN = 20_000  # events handled between two looks at the batches
#: After this many files in a row without a scan, rescan once the folders are quiet.
_SETTLE_RESCAN = 500


class WatchService:
    """Watch ``roots`` and feed complete photos to ``host`` in batches. Call :meth:`run`.

    ``host``: a started :class:`PluginHost` to fire events on; by default one is made
    for ``catalog`` with the plugins of the ``lumina`` entry points (our own included).
    ``catalog`` is a SQLite file or a ``postgresql://`` URL (then ``state_dir`` is the
    folder for the queue file). ``on_batch`` is called after each committed batch.
    ``watch_limit`` overrides ``fs.inotify.max_user_watches`` (tests, hosts that know better).
    ``lock_timeout``: how long the start-up scan waits for a catalog another process uses.
    """

    def __init__(self, roots: Sequence[str | os.PathLike[str]], catalog: str | os.PathLike[str],
                 config: Config | None = None, settings: WatchSettings | None = None,
                 host: PluginHost | None = None, host_config: Mapping[str, Any] | None = None,
                 on_batch: Callable[[BatchResult], None] | None = None,
                 watch_limit: int | None = None, state_dir: str | os.PathLike[str] | None = None,
                 lock_timeout: float = 10.0) -> None:
        self.roots = check_roots(roots)
        self.catalog = normalized(catalog)
        self.queue_file = queue_path(self.catalog, state_dir)
        self.lock_timeout = lock_timeout
        self.config = config or Config()
        self.settings = settings or self.config.watch
        self.host = host
        self.host_config = dict(host_config or {})
        self.on_batch = on_batch
        self.watch_limit = watch_limit
        s = self.settings
        self.rules = NameRules(self.roots, self.config.extensions, s.temp_suffixes, s.hidden_prefixes)
        self.batcher = Batcher(s.batch_size, s.max_wait, s.max_age)
        self.readiness: Readiness | None = None
        self.known: set[str] = set()
        self.mode = ""
        self.batches = 0
        #: Set once the observer runs and the start-up scan is queued (tests wait on it).
        self.started = threading.Event()
        self._events: queue.SimpleQueue[RawEvent] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._queue: DurableQueue | None = None
        self._replaying: set[int] = set()
        self._recovered = False
        self._scan_needed = True
        #: Operations dispatched since the last scan (see _SETTLE_RESCAN).
        self._since_scan = 0
        self._next_rescan = float("inf")
        self._bad_names: set[str] = set()
        self.watch: Watch | None = None

    # -- control ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop after the current batch (safe from signal handlers and other threads)."""
        self._stop.set()
        self._events.put(_WAKE)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Watch until :meth:`stop`. Operations not applied yet stay in the queue file."""
        self._queue = DurableQueue(self.queue_file)  # first: refuses a second watcher
        host, own_host = self.host, self.host is None
        if host is None:
            host = default_host(self.catalog, self._own_host_config())
            host.startup()
        alarm = LostEventsAlarm().install()
        self.watch = watch = Watch(self.roots, self._events, self.settings.polling, self.settings.poll_interval,
                                   self.watch_limit, self.settings.retry_seconds)
        try:
            self._queue.prune()
            watch.start()
            self.mode = watch.mode
            log.info("watching %s (%s, watchdog %s) for %s", ", ".join(self.roots), self.mode, compat.version(),
                     self.catalog)
            log.debug("%s", compat.describe())
            self.readiness = Readiness(watch.close_events, self.settings.stable_seconds, self.settings.write_timeout,
                                       attrib_events=compat.ATTRIB_EVENTS)
            replay = self._queue.pending()
            if replay:
                log.info("resuming %d operations a previous run left unfinished", len(replay))
                self._queue.drop(self.batcher.add_all(replay, at=float("-inf")))
                self._replaying = {op.seq for op in replay}
                self._recovered = True
            while not self._stop.is_set():
                self._pump(self._timeout())
                self._tend_watch()
                if alarm.tripped.is_set():
                    alarm.tripped.clear()
                    log.warning("the kernel dropped file events (inotify queue overflow); rescanning %s",
                                ", ".join(self.roots))
                    self._scan_needed = True
                if (self._scan_needed or time.monotonic() >= self._next_rescan) and not self._replaying:
                    self._rescan()
                while self.batcher.due() and not self._stop.is_set():
                    self._dispatch(host, self.batcher.take())
                    self._pump(0)
                if (self._since_scan >= _SETTLE_RESCAN and not self._replaying
                        and self.batcher.deadline() is None and self.readiness.next_check() is None):
                    # A burst this large can lose an event without any overflow notice
                    # (seen: 1 file of 10,000 from `cp -r`): compare once it has settled.
                    log.info("a burst of %d files settled: rescanning %s", self._since_scan,
                             ", ".join(self.roots))
                    self._since_scan = 0
                    self._scan_needed = True
                if self._recovered and not self._replaying:
                    # Files committed by the killed run but never searched against the
                    # index would stay unflagged: one catalog-wide pass settles them.
                    self._recovered = False
                    log.info("recovered from an interrupted run: regrouping the whole catalog")
                    host.scan_finished(self.roots, job_id="watch-recovery")
        finally:
            watch.stop()
            alarm.remove()
            self._queue.close()
            if own_host:
                host.shutdown()

    def _own_host_config(self) -> dict[str, Any]:
        return own_host_config(self.host_config, self.config, self.settings.warm_pool)

    # -- events -> operations ------------------------------------------------------------
    def _timeout(self) -> float:
        if self._scan_needed and not self._replaying:
            return 0.0
        now = time.monotonic()
        times = [t for t in (self.batcher.deadline(), self.readiness.next_check() if self.readiness else None,
                             self._next_rescan, self.watch.next_action() if self.watch else None) if t is not None]
        wait = min(times, default=now + 0.5) - now
        return min(0.5, max(0.0, wait))

    def _pump(self, timeout: float) -> None:
        """Handle the events that arrive within ``timeout`` seconds, then queue the
        operations they (and the stability checks) produced, in order."""
        assert self.readiness is not None
        local = OpList()
        try:
            event = self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
            for drained in range(1, _MAX_DRAIN + 1):
                if event is not _WAKE:
                    self._on_event(event, local)
                if drained == _MAX_DRAIN:
                    # Stop for the batches; take nothing more off the queue (an event taken
                    # here and not handled was lost: in bursts of 10,000 files, a close,
                    # and that photo waited write_timeout, five minutes, to be imported).
                    break
                event = self._events.get_nowait()
        except queue.Empty:
            pass
        for item in self.readiness.due():
            self._ready(item, local)
        self._enqueue(local.ops())

    def _enqueue(self, ops: list[Op]) -> None:
        if not ops or self._queue is None:
            return
        stored = self._queue.put(ops)
        self._queue.drop(self.batcher.add_all(stored))

    @staticmethod
    def _ready(item: Ready | None, local: OpList) -> None:
        if item is not None:
            log.debug("%s: complete (%s, %d bytes)", item.path, item.how, item.size)
            local.add(Op(IMPORT, item.path))

    def _on_event(self, event: RawEvent, local: OpList) -> None:
        readiness = self.readiness
        assert readiness is not None
        for name in (event.path, event.dest):
            if name is not None and not utf8(name) and name not in self._bad_names:
                self._bad_names.add(name)
                log.warning("%s: file name is not valid UTF-8; not imported", printable(name))
        if event.is_dir:
            if event.kind == "moved" and event.dest:
                readiness.moved_dir(event.path, event.dest)  # the files' own move events follow
                self._folder_appeared(event.dest)
            elif event.kind == "created":
                self._folder_appeared(event.path)
            elif event.kind == "deleted":
                if event.path in self.roots:
                    if self.watch is not None and self.watch.false_root_deletion(event.path):
                        return  # nothing is removed; the observer restarts later
                    log.warning("%s: the watched folder itself was removed", event.path)
                readiness.deleted_dir(event.path)
                prefix = event.path.rstrip(os.sep) + os.sep
                pending = {op.path for op in self.batcher.ops() if op.kind == IMPORT} | set(local.imports)
                for path in sorted(p for p in pending | self.known if p.startswith(prefix)):
                    self._forget(path, local)
            return
        if event.kind == "moved" and event.dest:
            src, dest = event.path, event.dest
            src_ok, dest_ok = self._wanted(src), self._wanted(dest)
            if src_ok and dest_ok:
                still_written = readiness.moved(src, dest)
                had_import = self._cancel_import(src, local)
                if src in self.known:  # the row, hashes and tags follow the file
                    self._move(src, dest, local)
                if not still_written and (had_import or src not in self.known):
                    self._ready(readiness.closed(dest, how="renamed"), local)
            elif dest_ok:  # from a temporary or hidden name: the writer says it is done
                readiness.deleted(src)
                self._ready(readiness.closed(dest, how="renamed"), local)
            elif src_ok:  # renamed to a temporary or hidden name: gone, for us
                readiness.deleted(src)
                self._forget(src, local)
            return
        path = event.path
        if not self._wanted(path):
            return
        if event.kind == "created":
            readiness.created(path)
        elif event.kind == "modified":
            readiness.modified(path)
        elif event.kind == "attrib":
            readiness.attrib(path)
        elif event.kind == "closed":
            self._ready(readiness.closed(path), local)
        elif event.kind == "deleted":
            readiness.deleted(path)
            self._forget(path, local)

    def _folder_appeared(self, path: str) -> None:
        if self.watch is not None and self.rules.wanted_dir(path):
            self.watch.folder_appeared(path)

    def _wanted(self, path: str) -> bool:
        return path not in self._bad_names and self.rules.wanted(path)

    def _forget(self, path: str, local: OpList) -> None:
        """``path`` left: remove its catalog row, or just withdraw its pending import."""
        if path in self.known:
            local.add(Op(REMOVE, path))  # folding drops any pending import of it
            self.known.discard(path)
        else:
            self._cancel_import(path, local)

    def _move(self, src: str, dest: str, local: OpList) -> None:
        """Queue a move of a catalogued photo. ``known`` follows at once, so that a second
        rename before the batch is applied moves the row again instead of importing."""
        local.add(Op(MOVE, src, dest))
        self.known.discard(src)
        self.known.add(dest)

    def _cancel_import(self, path: str, local: OpList) -> bool:
        if local.cancel_import(path):
            return True
        op = self.batcher.cancel(path)
        if op is not None and self._queue is not None:
            self._queue.drop([op])
        return op is not None

    # -- the observer ----------------------------------------------------------------------------
    def _tend_watch(self) -> None:
        """Let the observer check new folders and restart where needed; after a restart,
        close events may have been lost and the rescan finds what happened meanwhile."""
        assert self.watch is not None and self.readiness is not None
        if self.watch.tend():
            self.mode = self.watch.mode
            self.readiness.close_events = self.watch.close_events
            self.readiness.forget_writes()
            self._scan_needed = True

    # -- the scan -----------------------------------------------------------------------------
    def _rescan(self) -> None:
        """Compare the folders with the catalog; queue what the observer did not report."""
        assert self.readiness is not None
        first = not self.started.is_set()
        try:
            result = catch_up(self.catalog, self.roots, self.rules, self.config, self.lock_timeout)
        except CatalogLockedError as exc:
            log.warning("cannot compare the folders with the catalog yet: %s", exc)
            self._next_rescan = time.monotonic() + self.settings.retry_seconds
            self._scan_needed = False
            return
        for line in result.errors:
            log.warning("%s", line)
        if self._queue is not None:
            self._queue.prune()
        self.known = result.known
        local = OpList()
        busy = set(self.readiness.paths())
        for path, (size, mtime_ns) in result.found.items():
            if path not in busy and not self.batcher.pending_import(path):
                self.readiness.found(path, size, mtime_ns)
        for src, dest in result.moved:
            self._move(src, dest, local)
        for path in result.removed:
            self._forget(path, local)
        self._enqueue(local.ops())
        log.info("%s: %d photos to import, %d moved, %d removed, %d unchanged",
                 "start-up scan" if first else "rescan", len(result.found), len(result.moved),
                 len(result.removed), result.unchanged)
        self._scan_needed = False
        period = self.settings.rescan_seconds
        self._next_rescan = time.monotonic() + period if period > 0 else float("inf")
        self.started.set()

    # -- batches ------------------------------------------------------------------------------
    def _dispatch(self, host: PluginHost, batch: list[Op]) -> None:
        """Apply one batch through the host's events; acknowledge it once they returned."""
        if not batch:
            return
        assert self._queue is not None
        self._since_scan += len(batch)
        result = BatchResult(self.batches + 1, started_at=time.time())
        log.debug("batch %d started: %d operations", result.number, len(batch))
        try:
            for kind, ops in phases(batch):
                paths = [op.path for op in ops]
                if kind == REMOVE:
                    host.images_removed(paths)
                    result.removed += paths
                elif kind == MOVE:
                    moves = [(op.path, op.dest or "") for op in ops]
                    host.images_moved(moves)
                    result.moved += moves
                else:
                    answers = host.images_imported(paths, source="watch", job_id=f"watch-{result.number}")
                    result.imported += paths
                    result.count(answers, paths)
        except CatalogLockedError as exc:
            log.warning("batch of %d operations waits: %s; retrying in %.0f s", len(batch), exc,
                        self.settings.retry_seconds)
            self.batcher.put_back(batch, time.monotonic() + self.settings.retry_seconds)
            return
        self.batcher.release_hold()
        self._queue.ack(batch, result.number)
        self.batches = result.number
        self._replaying.difference_update(op.seq for op in batch)
        failed = {e["path"] for e in result.errors}
        self.known.difference_update(result.removed)
        for a, b in result.moved:
            self.known.discard(a)
            self.known.add(b)
        self.known.update(p for p in result.imported if p not in failed)
        result.committed_at = time.time()
        result.backlog = len(self.batcher)
        for err in result.errors:
            log.warning("%s: %s", err["path"], err["error"])
        for row in result.flagged:  # which files, not only how many: the log says what to look at
            log.info("batch %d flagged %s (%s) as a copy of %s", result.number, printable(row["path"]),
                     row["relation"], printable(row["keeper"]))
        log.info("batch %d: %d imported (%d hashed, %d unchanged), %d flagged, %d moved, %d removed, %d errors "
                 "in %.2f s; %d waiting", result.number, len(result.imported), result.hashed, result.unchanged,
                 len(result.flagged), len(result.moved), len(result.removed), len(result.errors),
                 result.committed_at - result.started_at, result.backlog)
        if self.on_batch is not None:
            self.on_batch(result)

