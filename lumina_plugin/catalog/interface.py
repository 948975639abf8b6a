"""The Catalog interface: what the engine needs from wherever photos are catalogued.

Two implementations: the embedded SQLite catalog (``sqlite.py``) and Lumina's PostgreSQL
database (``postgres.py``). Only plain data crosses this boundary: the types of
:mod:`lumina_plugin.model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from ..model import ImageInfo, ImageRecord, StoredFile, TagDiff, TagState


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
