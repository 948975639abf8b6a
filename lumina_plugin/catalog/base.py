"""The Catalog interface: what the engine needs from wherever photos are catalogued.

Two implementations share these shapes: the embedded SQLite catalog (``sqlite.py``)
and, later, Lumina's PostgreSQL database. Only plain data crosses this boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Iterable, Protocol, Sequence

import numpy as np


def taken_timestamp(taken_at: str | None, subsec: float | None) -> float | None:
    """Capture time as seconds on the camera's clock (ISO text + sub-seconds), or None."""
    if not taken_at:
        return None
    try:
        return datetime.fromisoformat(taken_at).replace(tzinfo=timezone.utc).timestamp() + (subsec or 0.0)
    except ValueError:
        return None


class CatalogError(Exception):
    """The catalog cannot be used (locked by another process, wrong schema, unreadable)."""


#: What a person can decide about photos (``Catalog.add_decision``).
DECISIONS = ("not-duplicate", "duplicate", "keeper")


def check_decision(kind: str, paths: Sequence[str]) -> None:
    """Refuse a decision of an unknown kind or with the wrong number of distinct photos."""
    if kind not in DECISIONS:
        raise CatalogError(f"unknown decision {kind!r} (one of {', '.join(DECISIONS)})")
    want = 1 if kind == "keeper" else 2
    if len(paths) != want or len(set(paths)) != want:
        raise CatalogError(f"decision {kind!r} takes {want} different photo path(s)")


class CatalogLockedError(CatalogError):
    """Another process holds the catalog."""


@dataclass(frozen=True)
class ImageRecord:
    """A hashed photo on its way into the catalog (no ids yet)."""

    path: str
    checksum: str
    size_bytes: int
    mtime_ns: int
    width: int
    height: int
    format: str
    orientation: int
    camera: str | None
    taken_at: str | None
    subsec: float | None
    exif_tags: int
    codes: np.ndarray  # uint64 (4,) in ALGORITHMS order
    hash_version: int


@dataclass(frozen=True)
class ImageInfo:
    """What grouping and reports need about a catalogued photo."""

    id: str
    index_id: int
    path: str
    checksum: str
    size_bytes: int
    width: int
    height: int
    format: str
    camera: str | None
    #: Capture time as seconds on the camera's clock (sub-seconds included), or None.
    taken_ts: float | None
    exif_tags: int


@dataclass(frozen=True)
class StoredFile:
    """Enough to tell whether a file on disk changed since it was hashed."""

    id: str
    index_id: int
    size_bytes: int
    mtime_ns: int
    hash_version: int | None


@dataclass(frozen=True)
class GroupRow:
    """One duplicate group as stored: the keeper and every other member."""

    keeper_id: str
    similarity_type: str  # "exact" or "perceptual"
    confidence: int
    keeper_reason: str
    #: (image_id, relation to the keeper, distance), the keeper excluded.
    members: tuple[tuple[str, str, int], ...] = field(default_factory=tuple)

    def key(self) -> tuple[str, tuple[tuple[str, str, int], ...]]:
        return (self.keeper_id, tuple(sorted(self.members)))


@dataclass(frozen=True)
class TagState:
    """The plugin's visible output in the catalog: tag assignments and groups."""

    #: (image_id, tag name)
    image_tags: frozenset[tuple[str, str]]
    groups: tuple[GroupRow, ...]


@dataclass(frozen=True)
class TagDiff:
    """The change that takes the catalog's tags and groups to the desired ones."""

    add_tags: tuple[tuple[str, str], ...]
    remove_tags: tuple[tuple[str, str], ...]
    add_groups: tuple[GroupRow, ...]
    remove_groups: tuple[GroupRow, ...]

    def __len__(self) -> int:
        return len(self.add_tags) + len(self.remove_tags) + len(self.add_groups) + len(self.remove_groups)

    def summary(self) -> dict[str, int]:
        return {
            "tags_added": len(self.add_tags), "tags_removed": len(self.remove_tags),
            "groups_added": len(self.add_groups), "groups_removed": len(self.remove_groups),
        }


class Catalog(Protocol):
    """A catalog of photos the engine reads and writes.

    Every write method is one transaction: it commits whole or not at all.
    """

    catalog_id: str
    #: Where this catalog's hash index lives (beside a SQLite file; a data folder otherwise).
    index_dir: Path

    def stored_files(self, paths: Sequence[str]) -> dict[str, StoredFile]: ...

    def unhashed_paths(self, hash_version: int, limit: int | None = None) -> list[str]: ...

    def upsert_images(self, records: Sequence[ImageRecord]) -> list[StoredFile]: ...

    def remove_paths(self, paths: Sequence[str]) -> list[int]: ...

    def move_paths(self, moves: Sequence[tuple[str, str]]) -> int: ...

    def all_codes(self, hash_version: int) -> tuple[np.ndarray, np.ndarray]: ...

    def exact_copy_sets(self) -> list[list[int]]: ...

    def add_decision(self, kind: str, paths: Sequence[str]) -> int: ...

    def decisions(self) -> list[dict[str, Any]]: ...

    def forget_decision(self, decision_id: int) -> bool: ...

    def images(self, index_ids: Iterable[int] | None = None) -> dict[int, ImageInfo]: ...

    def replace_pairs(self, index_ids: np.ndarray | None, a: np.ndarray, b: np.ndarray,
                      dist: np.ndarray, run_id: int | None) -> None: ...

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def paths_of(self, image_ids: Iterable[str]) -> dict[str, str]: ...

    def tag_state(self) -> TagState: ...

    def apply_tag_diff(self, diff: TagDiff, kind: str, report: dict, job_id: str | None = None) -> int: ...

    def undo_last(self) -> dict | None: ...

    def close(self) -> None: ...
