"""Where photos, hashes, pairs, groups and tags are kept: the interface (base) and SQLite."""

import os
from pathlib import Path

from ..config import TagNames
from ..settings.lumina import LuminaSettings
from .base import (Catalog, CatalogError, CatalogLockedError, GroupRow, ImageInfo, ImageRecord,
                   StoredFile, TagState)
from .sqlite import SqliteCatalog


def open_catalog(locator: str | os.PathLike[str], tags: TagNames | None = None,
                 lock_timeout: float = 10.0, settings: LuminaSettings | None = None) -> Catalog:
    """The catalog a locator names: a ``postgresql://`` URL (Lumina's database) or a SQLite file."""
    text = os.fspath(locator)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresCatalog  # optional: needs the PostgreSQL driver
        return PostgresCatalog(text, tags, lock_timeout=lock_timeout, settings=settings)
    return SqliteCatalog(Path(text), tags, lock_timeout=lock_timeout)

__all__ = ["Catalog", "CatalogError", "CatalogLockedError", "GroupRow", "ImageInfo", "ImageRecord",
           "SqliteCatalog", "StoredFile", "TagState", "open_catalog"]
