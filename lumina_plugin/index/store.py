"""The persistent hash index: checksummed append-only segments and an atomically swapped manifest.

One directory holds one index of (image id, four 64-bit codes)::

    manifest.json            {"format", "version", "generation", "segments": [{name, count, ...}]}
    seg-<gen>-<random>.bin   one file per write; never modified once written

A segment holds tombstones (ids removed) and rows (ids and their codes). The live set is what
applying the listed segments in order gives, each segment's tombstones before its rows.

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
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..hashing.codes import ALGORITHM_VERSION, ALGORITHMS

__all__ = ["HashIndex", "IndexCorruptError", "CRASH_ENV"]

MANIFEST_NAME = "manifest.json"
_FORMAT = 1
_MAGIC = b"LUMIDXS1"
# magic, algorithm version, number of tombstones, number of rows; then the payload:
# tombstone ids <i8, row ids <i8, row codes <u8 (rows, 4). 32 bytes keeps the payload 8-aligned.
_HEADER = struct.Struct("<8sQQQ")
_NCODES = len(ALGORITHMS)

#: Test hook: set to "before-manifest" (segment written, manifest not replaced) or
#: "after-manifest" (manifest replaced, old files not yet deleted) to SIGKILL the process there.
CRASH_ENV = "LUMINA_DEDUP_TEST_CRASH_AT"


class IndexCorruptError(Exception):
    """A file the manifest relies on is unreadable, missing, truncated or fails its checksum."""


def _crash_point(name: str) -> None:
    """Die abruptly at a named point of the write path when :data:`CRASH_ENV` asks (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


@dataclass(frozen=True)
class _Segment:
    name: str
    count: int
    tombstones: int
    sha256: str


_Part = tuple[np.ndarray, np.ndarray, np.ndarray]  # (tombstone ids, row ids, row codes)


def _empty_state() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty((0, _NCODES), np.uint64)


def _latest(ids: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Positions of each id's last occurrence (by segment, then position), ordered by id."""
    order = np.lexsort((np.arange(len(ids)), seg, ids))
    ordered = ids[order]
    return order[np.append(ordered[1:] != ordered[:-1], True)]


def _resolve(parts: list[_Part]) -> tuple[np.ndarray, np.ndarray]:
    """Live (ids, codes), sorted by id, of segments applied in order (tombstones before rows).

    Done in one vectorised pass rather than segment by segment, so opening an index of many small
    segments costs O(N log N), not O(segments * N).
    """
    if not parts:
        return _empty_state()
    row_ids = np.concatenate([p[1] for p in parts])
    row_codes = np.concatenate([p[2] for p in parts]).reshape(-1, _NCODES)
    row_seg = np.concatenate([np.full(len(p[1]), s, np.int64) for s, p in enumerate(parts)])
    pick = _latest(row_ids, row_seg)
    ids, codes, seg = row_ids[pick], row_codes[pick], row_seg[pick]

    tomb_ids = np.concatenate([p[0] for p in parts])
    if tomb_ids.size and ids.size:
        tomb_seg = np.concatenate([np.full(len(p[0]), s, np.int64) for s, p in enumerate(parts)])
        t_pick = _latest(tomb_ids, tomb_seg)
        t_ids, t_seg = tomb_ids[t_pick], tomb_seg[t_pick]
        pos = np.minimum(np.searchsorted(t_ids, ids), len(t_ids) - 1)
        # A tombstone kills rows of earlier segments only: its own segment's rows come after it.
        dead = (t_ids[pos] == ids) & (t_seg[pos] > seg)
        ids, codes = ids[~dead], codes[~dead]
    return np.ascontiguousarray(ids, np.int64), np.ascontiguousarray(codes, np.uint64)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:  # "x": never overwrite another writer's file
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _encode_segment(version: int, tombs: np.ndarray, ids: np.ndarray, codes: np.ndarray) -> bytes:
    header = _HEADER.pack(_MAGIC, version, len(tombs), len(ids))
    return b"".join(
        (header, tombs.astype("<i8").tobytes(), ids.astype("<i8").tobytes(), codes.astype("<u8").tobytes())
    )


def _read_segment(path: Path, seg: _Segment) -> _Part:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"index segment {path} is listed in the manifest but missing") from None
    if hashlib.sha256(data).hexdigest() != seg.sha256:
        raise IndexCorruptError(f"index segment {path} fails its SHA-256 checksum (damaged or truncated)")
    magic, _version, n_tomb, n_rows = _HEADER.unpack_from(data) if len(data) >= _HEADER.size else (b"", 0, 0, 0)
    size = _HEADER.size + 8 * (n_tomb + n_rows + _NCODES * n_rows)
    if magic != _MAGIC or len(data) != size or (n_rows, n_tomb) != (seg.count, seg.tombstones):
        raise IndexCorruptError(f"index segment {path} has a bad header for its manifest entry")
    off = _HEADER.size
    tombs = np.frombuffer(data, "<i8", n_tomb, off).astype(np.int64)
    ids = np.frombuffer(data, "<i8", n_rows, off + 8 * n_tomb).astype(np.int64)
    codes = np.frombuffer(data, "<u8", _NCODES * n_rows, off + 8 * (n_tomb + n_rows)).astype(np.uint64)
    return tombs, ids, codes.reshape(n_rows, _NCODES)


def _read_manifest(directory: Path) -> dict[str, object] | None:
    """The parsed manifest, or None when the index has never been written."""
    path = directory / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        if doc["format"] != _FORMAT:
            raise ValueError(f"unknown format {doc['format']!r}")
        doc["segments"] = [
            _Segment(str(s["name"]), int(s["count"]), int(s["tombstones"]), str(s["sha256"])) for s in doc["segments"]
        ]
        doc["version"], doc["generation"] = int(doc["version"]), int(doc["generation"])
    except (ValueError, KeyError, TypeError) as err:
        raise IndexCorruptError(f"index manifest {path} is unreadable: {err}") from None
    return doc


def _as_ids(ids: object) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.empty(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"image ids must be a 1-D integer array, got {arr.dtype} of shape {arr.shape}")
    return arr.astype(np.int64)


class HashIndex:
    """A persistent index of image ids and their four hash codes (columns in ``ALGORITHMS`` order).

    Use :meth:`open`. ``ids`` and ``codes`` hold the live rows sorted by id, as read-only arrays.
    Every method leaves the directory in a state that reopens to the same contents; a crash at any
    point reopens to the state before or after the interrupted method.
    """

    def __init__(self, directory: Path, version: int) -> None:
        """Private: use :meth:`HashIndex.open`."""
        self.directory = Path(directory)
        self.version = int(version)
        #: True when the stored codes were of another algorithm version and were dropped: the
        #: caller must re-add every image's codes from its catalog.
        self.rebuilt_for_version_change = False
        self._generation = 0
        self._segments: list[_Segment] = []  # segments of our version, in manifest order
        self._listed: list[str] = []  # every segment name the manifest on disk lists
        self._ids, self._codes = _empty_state()
        self._closed = False

    @classmethod
    def open(cls, directory: Path, version: int = ALGORITHM_VERSION) -> HashIndex:
        """Open (creating if needed) the index in ``directory`` for codes of ``version``.

        Raises :class:`IndexCorruptError` if the manifest or a listed segment is damaged. Files
        left by an interrupted write (unlisted segments, temp manifests) are deleted.
        """
        index = cls(directory, version)
        index.directory.mkdir(parents=True, exist_ok=True)
        index._load(_read_manifest(index.directory))
        index._delete_unlisted()
        return index

    @property
    def ids(self) -> np.ndarray:
        """Live image ids, int64 (n,), ascending."""
        self._check_open()
        return self._ids

    @property
    def codes(self) -> np.ndarray:
        """Live codes, uint64 (n, 4), row i belonging to ``ids[i]``."""
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

    def refresh(self) -> None:
        """Reload from disk if another ``HashIndex`` object has written since we last looked."""
        self._check_open()
        doc = _read_manifest(self.directory)
        if (doc["generation"] if doc else 0) != self._generation:
            self._load(doc)

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add images (ids unique within the batch); an id already live gets the new codes."""
        self._check_open()
        ids = _as_ids(ids)
        if ids.size == 0:
            return
        codes = np.asarray(codes)
        if codes.shape != (len(ids), _NCODES):
            raise ValueError(f"{len(ids)} ids need codes of shape ({len(ids)}, {_NCODES}), got {codes.shape}")
        codes = codes.astype(np.uint64)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("duplicate image ids within one batch")
        self.refresh()
        self._commit(ids[self.contains(ids)], ids, codes, replace_all=False)

    def remove(self, ids: np.ndarray) -> None:
        """Remove images; ids that are not live are ignored (nothing is written if none are)."""
        self._check_open()
        ids = _as_ids(ids)
        if ids.size == 0:
            return
        self.refresh()
        tombs = np.unique(ids[self.contains(ids)])
        if tombs.size:
            self._commit(tombs, *_empty_state(), replace_all=False)

    def compact(self) -> None:
        """Rewrite the live rows as one segment and delete every older file."""
        self._check_open()
        self.refresh()
        segs = self._segments
        compact = (not segs and len(self) == 0) or (
            len(segs) == 1 and segs[0].tombstones == 0 and segs[0].count == len(self)
        )
        if compact and self._listed == [s.name for s in segs]:
            return
        self._commit(np.empty(0, np.int64), self._ids, self._codes, replace_all=True)

    def close(self) -> None:
        """Drop the in-memory arrays; nothing needs flushing (every write is durable on return)."""
        self._closed = True
        self._ids, self._codes = _empty_state()

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
        if doc is None:
            self._generation, self._segments, self._listed = 0, [], []
            self._set_state(*_empty_state())
            return
        segments: list[_Segment] = doc["segments"]  # type: ignore[assignment]
        self._generation = doc["generation"]  # type: ignore[assignment]
        self._listed = [s.name for s in segments]
        if doc["version"] != self.version:
            # Codes of another algorithm version are never compared; the old files stay until
            # the next write so that opening with a wrong version by mistake destroys nothing.
            self.rebuilt_for_version_change = True
            self._segments = []
            self._set_state(*_empty_state())
            return
        parts = [_read_segment(self.directory / s.name, s) for s in segments]
        self._segments = list(segments)
        self._set_state(*_resolve(parts))

    def _set_state(self, ids: np.ndarray, codes: np.ndarray) -> None:
        ids.flags.writeable = False
        codes.flags.writeable = False
        self._ids, self._codes = ids, codes

    def _commit(self, tombs: np.ndarray, ids: np.ndarray, codes: np.ndarray, *, replace_all: bool) -> None:
        """Write one segment (if it has content), then swap the manifest to list it."""
        generation = self._generation + 1
        new: list[_Segment] = []
        if tombs.size or ids.size:
            data = _encode_segment(self.version, tombs, ids, codes)
            name = f"seg-{generation:010d}-{secrets.token_hex(6)}.bin"
            _write_durable(self.directory / name, data)
            new.append(_Segment(name, len(ids), len(tombs), hashlib.sha256(data).hexdigest()))
        _crash_point("before-manifest")
        segments = new if replace_all else self._segments + new
        doc = {
            "format": _FORMAT,
            "version": self.version,
            "generation": generation,
            "algorithms": list(ALGORITHMS),
            "segments": [asdict(s) for s in segments],
        }
        tmp = self.directory / f"{MANIFEST_NAME}.{secrets.token_hex(6)}.tmp"
        try:
            _write_durable(tmp, json.dumps(doc, indent=1).encode())
            os.replace(tmp, self.directory / MANIFEST_NAME)
        except BaseException:
            # The old manifest is still in force: the new files are garbage, not state.
            tmp.unlink(missing_ok=True)
            for s in new:
                (self.directory / s.name).unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        _crash_point("after-manifest")
        self._generation, self._segments = generation, segments
        self._listed = [s.name for s in segments]
        if replace_all:
            self._set_state(ids.copy(), codes.copy())
        else:
            self._set_state(*_resolve([(np.empty(0, np.int64), self._ids, self._codes), (tombs, ids, codes)]))
        self._delete_unlisted()

    def _delete_unlisted(self) -> None:
        """Delete segments the manifest does not list and temp manifests: leftovers of crashes."""
        listed = set(self._listed)
        for path in self.directory.iterdir():
            name = path.name
            stale_segment = name.startswith("seg-") and name.endswith(".bin") and name not in listed
            stale_tmp = name.startswith(MANIFEST_NAME + ".") and name.endswith(".tmp")
            if stale_segment or stale_tmp:
                path.unlink(missing_ok=True)
