"""Where photos, hashes, pairs, groups and tags are kept: the interface (base) and SQLite."""

from .base import (Catalog, CatalogError, CatalogLockedError, GroupRow, ImageInfo, ImageRecord,
                   StoredFile, TagState)
from .sqlite import SqliteCatalog

__all__ = ["Catalog", "CatalogError", "CatalogLockedError", "GroupRow", "ImageInfo", "ImageRecord",
           "SqliteCatalog", "StoredFile", "TagState"]
