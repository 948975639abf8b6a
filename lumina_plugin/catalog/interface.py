"""The Catalog interface: what the engine needs from wherever photos are catalogued.

Two implementations: the embedded SQLite catalog (``catalog/sqlite.py``) and Lumina's
PostgreSQL database (``catalog/postgres.py``); their tags, groups, runs and undo are one
tag store (``catalog/tag_store.py``) in two SQL dialects (``sqlite_tags.py``,
``postgres_tags.py``). Only plain data crosses this boundary: the types of
:mod:`lumina_plugin.model`. Catalog locators (path or URL) are parsed in ``catalog/locator.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..model import CLASSIC_WORDS, PAIR_COLUMNS, ImageInfo, ImageRecord, StoredFile, TagDiff, TagState, taken_timestamp


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


def image_id_for(path: str) -> str:
    """The image id of a file known by its path alone: the SQLite catalog's ids are per path
    (not per content), so byte-identical copies keep their rows."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def info_of(record: ImageRecord, index_id: int, image_id: str) -> ImageInfo:
    """What :meth:`Catalog.images` gives for ``record`` once stored under these ids: the engine
    keeps it in hand instead of reading it back (and a dry run, which stores nothing, shows it)."""
    return ImageInfo(id=image_id, index_id=index_id, path=record.path, checksum=record.checksum,
                     size_bytes=record.size_bytes, width=record.width, height=record.height, format=record.format,
                     camera=record.camera, taken_ts=taken_timestamp(record.taken_at, record.subsec),
                     exif_tags=record.exif_tags)


#: The dtype of a pair's distance row (Hamming distances <= 64, verdicts below 2**31).
PAIR_DTYPE = np.int32


def pair_rows(dist: np.ndarray) -> np.ndarray:
    """Pairs' distances as :meth:`Catalog.pairs` gives them: int32 (n, PAIR_COLUMNS), the four
    Hamming distances then the packed geometric verdict (0 = none). A (n, CLASSIC_WORDS) array
    (no verdicts) gets verdict 0; any other shape is refused."""
    dist = np.asarray(dist)
    if dist.size == 0:
        return np.zeros((0, PAIR_COLUMNS), dtype=PAIR_DTYPE)
    if dist.ndim != 2 or dist.shape[1] not in (CLASSIC_WORDS, PAIR_COLUMNS):
        raise CatalogError(f"pair distances have {CLASSIC_WORDS} or {PAIR_COLUMNS} columns, "
                           f"got shape {dist.shape}")
    out = np.zeros((len(dist), PAIR_COLUMNS), dtype=PAIR_DTYPE)
    out[:, :dist.shape[1]] = dist
    return out


def pairs_after_replace(stored: tuple[np.ndarray, np.ndarray, np.ndarray], index_ids: np.ndarray,
                        a: np.ndarray, b: np.ndarray,
                        dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :meth:`Catalog.pairs` gives after ``replace_pairs(index_ids, a, b, dist)``, from what it
    gave before: the engine keeps the pairs it wrote in hand instead of reading them back.
    ``a < b`` in each row, rows unique (as the index's search returns them)."""
    sa, sb, sdist = stored
    keep = ~(np.isin(sa, index_ids) | np.isin(sb, index_ids))  # a batch's ids against all pairs: a table lookup
    out_a, out_b = np.concatenate([sa[keep], a]), np.concatenate([sb[keep], b])
    out_dist = np.concatenate([pair_rows(sdist)[keep], pair_rows(dist)])
    order = np.lexsort((out_b, out_a))
    return out_a[order], out_b[order], out_dist[order]


class Catalog(Protocol):
    """A catalog of photos the engine reads and writes.

    Every write method is one transaction: it commits whole or not at all.
    """

    catalog_id: str
    #: Where this catalog's hash index lives (beside a SQLite file; a data folder otherwise).
    index_dir: Path

    def stored_files(self, paths: Sequence[str]) -> dict[str, StoredFile]: ...

    def new_image_id(self, path: str) -> str:
        """The image id a file at ``path`` that has no row yet would get (what a dry run shows)."""
        ...

    def unhashed_paths(self, hash_version: int, limit: int | None = None) -> list[str]: ...

    def upsert_images(self, records: Sequence[ImageRecord]) -> list[StoredFile]: ...

    def remove_paths(self, paths: Sequence[str]) -> list[int]: ...

    def move_paths(self, moves: Sequence[tuple[str, str]]) -> int: ...

    def all_codes(self, hash_version: int) -> tuple[np.ndarray, np.ndarray]:
        """(index ids int64 (n,), codes uint64 (n, CODE_WORDS)) of the rows hashed with this
        version, by index id; geometry words a row lacks read as zeros (``catalog/words.py``)."""
        ...

    def exact_copy_sets(self) -> list[list[int]]: ...

    def add_decision(self, kind: str, paths: Sequence[str]) -> int: ...

    def decisions(self) -> list[dict[str, Any]]: ...

    def forget_decision(self, decision_id: int) -> bool: ...

    def images(self, index_ids: Iterable[int] | None = None) -> dict[int, ImageInfo]: ...

    def replace_pairs(self, index_ids: np.ndarray | None, a: np.ndarray, b: np.ndarray,
                      dist: np.ndarray, run_id: int | None) -> None:
        """Replace the stored pairs that involve ``index_ids`` (all if None) by these; ``dist``
        as :func:`pair_rows` takes it ((n, PAIR_COLUMNS), or (n, CLASSIC_WORDS): verdict 0)."""
        ...

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored pairs: (a, b) int64 index ids, a < b, sorted; dist as :func:`pair_rows` gives it."""
        ...

    def paths_of(self, image_ids: Iterable[str]) -> dict[str, str]: ...

    def tag_state(self) -> TagState: ...

    def apply_tag_diff(self, diff: TagDiff, kind: str, report: dict, job_id: str | None = None) -> int: ...

    def undo_last(self) -> dict | None: ...

    def close(self) -> None: ...
