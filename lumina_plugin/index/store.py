"""The persistent hash index: checksummed append-only segments and an atomically swapped manifest.

One directory holds one index of (image id, its 64-bit code words: the classic hashes and the
geometry words)::

    manifest.json            {"format", "version", "generation", "segments": [{name, count, ...}]}
    seg-<gen>-<random>.bin   one file per write; never modified once written

A segment holds tombstones (ids removed) and rows (ids and their codes, sorted by id). The live
set is what applying the listed segments in order gives, each segment's tombstones before its rows.

Memory: segments are memory-mapped, not read. A compacted index (one segment, no tombstones) is
served straight from the map: ``ids`` and ``codes`` are read-only views of the file, so the index
costs its codes' size in page cache and nothing more. Otherwise the live rows are resolved once
into one array (8 bytes per id and per code). Small segments are merged as they accumulate
(size-tiered: ``MERGE_FANOUT`` segments of one size class at the tail become one), so a catalog
built batch by batch keeps a few dozen segments, each row rewritten about once per size class.

Crash safety: a write (1) creates and fsyncs a new segment, then (2) writes the manifest to a
unique temp file, fsyncs it, ``os.replace``-s it over ``manifest.json`` and fsyncs the directory.
Until (2) completes the old manifest is in force and the new segment is an unlisted file, which
``open`` ignores and deletes (as it does temp manifests). The manifest holds each segment's
SHA-256, so a damaged file raises :class:`IndexCorruptError` instead of being read.

Concurrency: no lock. The catalog serialises writers; each write first re-reads the manifest and
reloads if another ``HashIndex`` object changed it, so serialised writers through different objects
keep each other's batches. Unique segment and temp names mean that even unserialised writers never
write into one file (the last manifest wins). Opening an index while another process is between
steps (1) and (2) deletes that process's pending segment, so opens belong under the same
serialisation as writes.

Read-only: an index opened ``read_only`` (a catalog opened only to read, or a folder this process
cannot write, such as a read-only disk) writes nothing and deletes nothing: ``add`` and ``remove``
change the live rows in memory only, so a run can bring the index level with its catalog and read
it, and never creates the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._faults import CRASH_ENV, crash_point
from ..model import ALGORITHM_VERSION, ALGORITHMS
from ._arrays import has_duplicates, sorted_unique
from .segments import (
    FORMAT,
    MANIFEST_NAME,
    NCODES,
    IndexCorruptError,
    Segment,
    empty_state,
    encode_segment,
    fsync_dir,
    read_manifest,
    read_segment,
    resolve,
    write_durable,
)

__all__ = ["CRASH_ENV", "MANIFEST_NAME", "MERGE_FANOUT", "HashIndex", "IndexCorruptError"]

#: This many tail segments of one size class (rows + tombstones, in powers of this number) are
#: merged into one.
MERGE_FANOUT = 10
#: The change log (:meth:`HashIndex.changes_since`) holds at most this many rows; past it, it is
#: dropped and a new epoch begins (a resident copy then reloads instead of replaying it).
LOG_ROWS = 1 << 20

def _as_ids(ids: object) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.empty(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"image ids must be a 1-D integer array, got {arr.dtype} of shape {arr.shape}")
    return arr.astype(np.int64)


def _writable(directory: Path) -> bool:
    """Whether this process could write ``directory`` (or create it, where it does not exist):
    False on a read-only file system even for root, and in a folder it has no permission for."""
    place = directory
    while not place.exists() and place != place.parent:
        place = place.parent
    return os.access(place, os.W_OK)


class HashIndex:
    """A persistent index of image ids and their four hash codes (columns in ``ALGORITHMS`` order).

    Use :meth:`open`. ``ids`` and ``codes`` hold the live rows sorted by id, as read-only arrays.
    Every method leaves the directory in a state that reopens to the same contents; a crash at any
    point reopens to the state before or after the interrupted method.
    """

    def __init__(self, directory: Path, version: int, read_only: bool = False) -> None:
        """Private: use :meth:`HashIndex.open`."""
        self.directory = Path(directory)
        self.version = int(version)
        #: Nothing is written: add and remove change the rows in memory only.
        self.read_only = read_only
        #: True when the stored codes were of another algorithm version and were dropped: the
        #: caller must re-add every image's codes from its catalog.
        self.rebuilt_for_version_change = False
        self._generation = 0
        self._segments: list[Segment] = []  # segments of our version, in manifest order
        self._listed: list[str] = []  # every segment name the manifest on disk lists
        self._ids, self._codes = empty_state()
        self._closed = False
        #: Bumped whenever the live rows are replaced wholesale (a load from disk, the log cut):
        #: a resident copy of an older epoch must reload. Within an epoch, ``_log`` holds every
        #: change to the live rows, in order: (replaced or removed ids, added ids, their codes).
        self.epoch = 0
        self._log: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._log_rows = 0
        # Rows appended in id order go into buffers with room to spare, so a batch costs its own
        # size, not a copy of the whole index (10M rows: 0.96 GB a batch); ``_ids``/``_codes`` are
        # read-only views of their first rows.
        self._room: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def open(cls, directory: Path, version: int = ALGORITHM_VERSION, read_only: bool | None = None) -> HashIndex:
        """Open the index in ``directory`` for codes of ``version``, creating the folder if needed
        (read-only: a folder that does not exist is an empty index).

        ``read_only``: write nothing (see the module's notes); None: read-only where the folder
        cannot be written (the engine passes True for a catalog opened to read). Raises :class:`IndexCorruptError` if the manifest or a listed segment is damaged.
        Files left by an interrupted write (unlisted segments, temp manifests) are deleted, unless
        read-only.
        """
        directory = Path(directory)
        if read_only is None:
            read_only = not _writable(directory)
        index = cls(directory, version, read_only=read_only)
        if not index.read_only:
            index.directory.mkdir(parents=True, exist_ok=True)
        index._load(read_manifest(index.directory))
        index._delete_unlisted()
        return index

    @property
    def ids(self) -> np.ndarray:
        """Live image ids, int64 (n,), ascending."""
        self._check_open()
        return self._ids

    @property
    def codes(self) -> np.ndarray:
        """Live codes, uint64 (n, NCODES), row i belonging to ``ids[i]``: the classic hashes first."""
        self._check_open()
        return self._codes

    @property
    def generation(self) -> int:
        """Number of manifest swaps so far (0: never written)."""
        return self._generation

    def __len__(self) -> int:
        return len(self._ids)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean array, same shape as ``ids``: which of them are live in the index."""
        self._check_open()
        query = np.asarray(ids, dtype=np.int64)
        if len(self._ids) == 0:
            return np.zeros(query.shape, bool)
        pos = np.minimum(np.searchsorted(self._ids, query), len(self._ids) - 1)
        return self._ids[pos] == query

    def changes_since(self, epoch: int, position: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
        """The changes to the live rows since a reader saw ``position`` entries of epoch ``epoch``
        (each: ids replaced or removed, ids added, their codes), or None when that epoch is over
        (the rows were reloaded: read them whole). ``(self.epoch, self.log_position)`` is "now"."""
        if epoch != self.epoch or position > len(self._log):
            return None
        return self._log[position:]

    @property
    def log_position(self) -> int:
        """Entries in this epoch's change log (see :meth:`changes_since`)."""
        return len(self._log)

    def refresh(self) -> None:
        """Reload from disk if another ``HashIndex`` object has written since we last looked."""
        self._check_open()
        doc = read_manifest(self.directory)
        # (the segment names too: an index deleted and made again may reach the same generation)
        listed = [s.name for s in doc["segments"]] if doc else []  # type: ignore[attr-defined]
        if (doc["generation"] if doc else 0) != self._generation or listed != self._listed:
            self._load(doc)

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add images (ids unique within the batch); an id already live gets the new codes."""
        self._check_open()
        ids = _as_ids(ids)
        if ids.size == 0:
            return
        codes = np.asarray(codes)
        if codes.shape != (len(ids), NCODES):
            raise ValueError(f"{len(ids)} ids need codes of shape ({len(ids)}, {NCODES}), got {codes.shape}")
        codes = codes.astype(np.uint64)
        if has_duplicates(ids):
            raise ValueError("duplicate image ids within one batch")
        self.refresh()
        self._commit(ids[self.contains(ids)], ids, codes, keep=len(self._segments))
        self._merge_tail()

    def remove(self, ids: np.ndarray) -> None:
        """Remove images; ids that are not live are ignored (nothing is written if none are)."""
        self._check_open()
        ids = _as_ids(ids)
        if ids.size == 0:
            return
        self.refresh()
        tombs = sorted_unique(ids[self.contains(ids)])
        if tombs.size:
            self._commit(tombs, *empty_state(), keep=len(self._segments))
            self._merge_tail()

    def compact(self) -> None:
        """Rewrite the live rows as one segment and delete every older file."""
        self._check_open()
        self.refresh()
        segs = self._segments
        if self.read_only:
            return
        compact = (not segs and len(self) == 0) or (
            len(segs) == 1 and segs[0].tombstones == 0 and segs[0].count == len(self)
        )
        if compact and self._listed == [s.name for s in segs]:
            return
        self._commit(np.empty(0, np.int64), self._ids, self._codes, keep=0)

    def close(self) -> None:
        """Drop the in-memory arrays; nothing needs flushing (every write is durable on return)."""
        self._closed = True
        self._ids, self._codes = empty_state()

    def __enter__(self) -> HashIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HashIndex({str(self.directory)!r}, version={self.version}, rows={len(self)})"

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self!r} is closed")

    def _load(self, doc: dict[str, object] | None) -> None:
        self._new_epoch()
        if doc is None:
            self._generation, self._segments, self._listed = 0, [], []
            self._set_state(*empty_state())
            return
        segments: list[Segment] = doc["segments"]  # type: ignore[assignment]
        self._generation = doc["generation"]  # type: ignore[assignment]
        self._listed = [s.name for s in segments]
        if doc["version"] != self.version:
            # Codes of another algorithm version are never compared; the old files stay until
            # the next write so that opening with a wrong version by mistake destroys nothing.
            self.rebuilt_for_version_change = True
            self._segments = []
            self._set_state(*empty_state())
            return
        parts = [read_segment(self.directory / s.name, s, self.version) for s in segments]
        self._segments = list(segments)
        self._set_state(*resolve(parts))

    def _new_epoch(self) -> None:
        self.epoch += 1
        self._log, self._log_rows = [], 0

    def _set_state(self, ids: np.ndarray, codes: np.ndarray) -> None:
        if self._room is not None and ids.base is not self._room[0]:
            self._room = None
        ids.flags.writeable = False
        codes.flags.writeable = False
        self._ids, self._codes = ids, codes

    def _apply(self, tombs: np.ndarray, ids: np.ndarray, codes: np.ndarray) -> None:
        """Change the live rows by one batch (its tombstones, then its rows) and log it."""
        self._log.append((tombs, ids, codes))
        self._log_rows += len(ids) + len(tombs)
        if self._log_rows > LOG_ROWS:
            self._new_epoch()
        order = np.argsort(ids, kind="stable")
        ids, codes = ids[order], codes[order]
        n = len(self._ids)
        if tombs.size or not ids.size or (n and ids[0] <= self._ids[-1]) or (ids[1:] <= ids[:-1]).any():
            self._set_state(*resolve([(np.empty(0, np.int64), self._ids, self._codes), (tombs, ids, codes)]))
            return
        room = self._room
        if room is None or len(room[0]) < n + len(ids) or self._ids.base is not room[0]:
            size = (n + len(ids)) * 5 // 4 + 1024
            room = (np.empty(size, np.int64), np.empty((size, NCODES), np.uint64))
            room[0][:n], room[1][:n] = self._ids, self._codes
        room[0][n : n + len(ids)], room[1][n : n + len(ids)] = ids, codes
        self._room = room
        self._set_state(room[0][: n + len(ids)], room[1][: n + len(ids)])

    def _commit(self, tombs: np.ndarray, ids: np.ndarray, codes: np.ndarray, *, keep: int) -> None:
        """Write one segment (if it has content), then swap the manifest to list the first ``keep``
        segments and it: ``keep`` = all (a batch), 0 (compaction) or a tail's start (a merge).
        Read-only: a batch changes the live rows in memory, nothing else happens."""
        if self.read_only:
            if keep == len(self._segments):
                self._apply(tombs, ids, codes)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        generation = self._generation + 1
        new: list[Segment] = []
        if tombs.size or ids.size:
            data = encode_segment(self.version, tombs, ids, codes)
            name = f"seg-{generation:010d}-{secrets.token_hex(6)}.bin"
            write_durable(self.directory / name, data)
            new.append(Segment(name, len(ids), len(tombs), hashlib.sha256(data).hexdigest()))
        crash_point("before-manifest")  # test hook (see lumina_plugin._faults): segment written, manifest not
        appended = keep == len(self._segments)
        segments = self._segments[:keep] + new
        doc = {
            "format": FORMAT,
            "version": self.version,
            "generation": generation,
            "algorithms": list(ALGORITHMS),
            "segments": [asdict(s) for s in segments],
        }
        tmp = self.directory / f"{MANIFEST_NAME}.{secrets.token_hex(6)}.tmp"
        try:
            write_durable(tmp, json.dumps(doc, indent=1).encode())
            os.replace(tmp, self.directory / MANIFEST_NAME)
        except BaseException:
            # The old manifest is still in force: the new files are garbage, not state.
            tmp.unlink(missing_ok=True)
            for s in new:
                (self.directory / s.name).unlink(missing_ok=True)
            raise
        fsync_dir(self.directory)
        crash_point("after-manifest")  # test hook: manifest replaced, old files not yet deleted
        self._generation, self._segments = generation, segments
        self._listed = [s.name for s in segments]
        if appended:
            self._apply(tombs, ids, codes)
        elif keep == 0:  # compacted: serve the live rows from the new file's memory map
            self._set_state(*resolve([read_segment(self.directory / s.name, s, self.version) for s in new]))
        # (a merge of tail segments changes files, not the live rows)
        self._delete_unlisted()

    def _merge_start(self) -> int | None:
        """Where the tail of segments to merge starts, or None: the longest tail whose segments
        are all of the last segment's size class or smaller, once it has ``MERGE_FANOUT`` of them."""

        def size_class(seg: Segment) -> int:
            size, level = seg.count + seg.tombstones, 0
            while size >= MERGE_FANOUT:
                size, level = size // MERGE_FANOUT, level + 1
            return level

        segs = self._segments
        if self.read_only or len(segs) < MERGE_FANOUT:
            return None
        top, start = size_class(segs[-1]), len(segs)
        while start > 0 and size_class(segs[start - 1]) <= top:
            start -= 1
        return start if len(segs) - start >= MERGE_FANOUT else None

    def _merge_tail(self) -> None:
        """Merge tail segments while :meth:`_merge_start` asks for it (each merge one atomic commit).

        The merged segment holds the tail's live rows and all its tombstones, which still apply to
        the segments before it (none are needed when the tail is the whole index).
        """
        while (start := self._merge_start()) is not None:
            parts = [read_segment(self.directory / s.name, s, self.version) for s in self._segments[start:]]
            ids, codes = resolve(parts)
            tombs = sorted_unique(np.concatenate([p[0] for p in parts])) if start else np.empty(0, np.int64)
            self._commit(tombs, ids, codes, keep=start)

    def _delete_unlisted(self) -> None:
        """Delete segments the manifest does not list and temp manifests: leftovers of crashes."""
        if self.read_only or not self.directory.is_dir():
            return
        listed = set(self._listed)
        for path in self.directory.iterdir():
            name = path.name
            stale_segment = name.startswith("seg-") and name.endswith(".bin") and name not in listed
            stale_tmp = name.startswith(MANIFEST_NAME + ".") and name.endswith(".tmp")
            if stale_segment or stale_tmp:
                try:
                    path.unlink(missing_ok=True)
                except OSError:  # still mapped (Windows): the next open deletes it
                    pass
