"""The index's files: segment encoding, memory-mapped reading with checksums, the manifest, and
resolving a list of segments into the live rows. :mod:`.store` decides what to write and when.

Segment layout (little-endian): a 32-byte header (magic, algorithm version, number of tombstones,
number of rows), then tombstone ids ``<i8``, row ids ``<i8`` (sorted) and row codes ``<u8`` (rows,
NCODES). The header keeps the payload 8-aligned, so the arrays are views of the memory map.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import CODE_WORDS

MANIFEST_NAME = "manifest.json"
FORMAT = 1
_MAGIC = b"LUMIDXS1"
_HEADER = struct.Struct("<8sQQQ")
#: Code words per row: the classic hashes and the geometry words (model.CODE_WORDS).
NCODES = CODE_WORDS

__all__ = [
    "FORMAT", "MANIFEST_NAME", "NCODES", "IndexCorruptError", "Part", "Segment", "empty_state",
    "encode_segment", "fsync_dir", "read_manifest", "read_segment", "resolve", "write_durable",
]


class IndexCorruptError(Exception):
    """A file the manifest relies on is unreadable, missing, truncated or fails its checksum."""


@dataclass(frozen=True)
class Segment:
    """A manifest entry: file name, number of rows and tombstones, SHA-256 of the whole file."""

    name: str
    count: int
    tombstones: int
    sha256: str


Part = tuple[np.ndarray, np.ndarray, np.ndarray]  # (tombstone ids, row ids, row codes)


def empty_state() -> tuple[np.ndarray, np.ndarray]:
    """No rows: (ids, codes) of length 0."""
    return np.empty(0, np.int64), np.empty((0, NCODES), np.uint64)


def _latest(ids: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Positions of each id's last occurrence (by segment, then position), ordered by id."""
    order = np.lexsort((np.arange(len(ids)), seg, ids))
    ordered = ids[order]
    return order[np.append(ordered[1:] != ordered[:-1], True)]


def resolve(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    """Live (ids, codes), sorted by id, of segments applied in order (tombstones before rows).

    Done in one vectorised pass rather than segment by segment, so opening an index of many small
    segments costs O(N log N), not O(segments * N).
    """
    if not parts:
        return empty_state()
    if len(parts) == 1 and parts[0][0].size == 0:
        ids, codes = parts[0][1], parts[0][2]
        if ids.size < 2 or bool((ids[1:] > ids[:-1]).all()):
            return ids, codes  # one sorted segment: its (memory-mapped) arrays as they are
    row_ids = np.concatenate([p[1] for p in parts])
    row_codes = np.concatenate([p[2] for p in parts]).reshape(-1, NCODES)
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


def fsync_dir(directory: Path) -> None:
    """Make a rename or new file in ``directory`` durable (POSIX)."""
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes) -> None:
    """Create ``path`` (never overwriting) with ``data`` and fsync it."""
    with open(path, "xb") as f:  # "x": never overwrite another writer's file
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def encode_segment(version: int, tombs: np.ndarray, ids: np.ndarray, codes: np.ndarray) -> bytes:
    """The bytes of a segment; rows are written sorted by id (ids unique within a segment)."""
    order = np.argsort(ids, kind="stable")
    ids, codes, tombs = ids[order], codes[order], np.sort(tombs)
    header = _HEADER.pack(_MAGIC, version, len(tombs), len(ids))
    return b"".join(
        (header, tombs.astype("<i8").tobytes(), ids.astype("<i8").tobytes(), codes.astype("<u8").tobytes())
    )


def _map(path: Path) -> mmap.mmap | bytes:
    """The file's bytes, memory-mapped read-only (empty files cannot be mapped)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def read_segment(path: Path, seg: Segment, version: int) -> Part:
    """The segment's arrays: read-only views of its memory map, after checking its SHA-256."""
    try:
        data = _map(path)
    except FileNotFoundError:
        raise IndexCorruptError(f"index segment {path} is listed in the manifest but missing") from None
    if hashlib.sha256(data).hexdigest() != seg.sha256:
        raise IndexCorruptError(f"index segment {path} fails its SHA-256 checksum (damaged or truncated)")
    magic, seg_version, n_tomb, n_rows = _HEADER.unpack_from(data) if len(data) >= _HEADER.size else (b"", 0, 0, 0)
    size = _HEADER.size + 8 * (n_tomb + n_rows + NCODES * n_rows)
    if magic != _MAGIC or len(data) != size or (n_rows, n_tomb) != (seg.count, seg.tombstones) or seg_version != version:
        raise IndexCorruptError(f"index segment {path} has a bad header for its manifest entry")
    off = _HEADER.size
    # "<i8"/"<u8" are the native int64/uint64 on little-endian machines: no copy is made.
    tombs = np.frombuffer(data, "<i8", n_tomb, off).astype(np.int64, copy=False)
    ids = np.frombuffer(data, "<i8", n_rows, off + 8 * n_tomb).astype(np.int64, copy=False)
    codes = np.frombuffer(data, "<u8", NCODES * n_rows, off + 8 * (n_tomb + n_rows)).astype(np.uint64, copy=False)
    return tombs, ids, codes.reshape(n_rows, NCODES)


def read_manifest(directory: Path) -> dict[str, object] | None:
    """The parsed manifest, or None when the index has never been written."""
    path = directory / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        if doc["format"] != FORMAT:
            raise ValueError(f"unknown format {doc['format']!r}")
        doc["segments"] = [
            Segment(str(s["name"]), int(s["count"]), int(s["tombstones"]), str(s["sha256"])) for s in doc["segments"]
        ]
        doc["version"], doc["generation"] = int(doc["version"]), int(doc["generation"])
    except (ValueError, KeyError, TypeError) as err:
        raise IndexCorruptError(f"index manifest {path} is unreadable: {err}") from None
    return doc
