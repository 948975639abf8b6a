"""Where photos, hashes, pairs, groups and tags are kept: the interface, SQLite and Lumina's PostgreSQL.

- ``interface.py``: the :class:`Catalog` protocol the engine talks to, and its errors;
- ``locator.py``: the one place that tells a database URL from a file path;
- ``words.py``: how a photo's code words are stored (classic hashes, then the geometry words);
- ``sqlite.py`` + ``sqlite_tags.py``: the embedded SQLite catalog; ``sqlite_schema.py``: its
  schema, older catalogs brought up to date on open; ``sqlite_open.py``: opening it to create,
  write or only read it (a read-only disk); ``sqlite_paths.py``: file names that are not UTF-8;
- ``postgres.py`` + ``postgres_tags.py``: one Lumina catalog in its PostgreSQL database;
  ``postgres_db.py``: that database as a whole (URL, our schema, uninstall); ``pg_copy.py``:
  binary COPY into NumPy;
- ``tag_store.py``: tags, groups, runs and undo, shared by both (``*_tags.py`` are its dialects).
"""

import os
from pathlib import Path

from ..config import TagNames
from ..settings.lumina import LuminaSettings
from .interface import Catalog, CatalogError, CatalogLockedError
from .locator import DATABASE_SCHEMES, is_database_url
from .sqlite import SqliteCatalog


def open_catalog(locator: str | os.PathLike[str], tags: TagNames | None = None,
                 lock_timeout: float = 10.0, settings: LuminaSettings | None = None,
                 mode: str = "create") -> Catalog:
    """The catalog a locator names: a ``postgresql://`` URL (Lumina's database) or a SQLite file.

    ``mode``, for a SQLite file (``catalog/sqlite_open.py``): ``create`` (a run that imports:
    made if missing), ``write`` (must exist), ``read`` (must exist; nothing is written) or
    ``preview`` (a dry run: as ``read``, or empty where missing). A Lumina catalog is made by
    Lumina and is always opened as it is."""
    text = os.fspath(locator)
    if text.startswith(DATABASE_SCHEMES):
        try:
            from .postgres import PostgresCatalog  # optional: needs the PostgreSQL driver
        except ModuleNotFoundError as exc:  # the plugin's hooks and the bridge come here too, not only the CLI
            from ..extras import missing_extra_message
            message = missing_extra_message(exc)
            if message is None:
                raise
            raise CatalogError(message) from None
        return PostgresCatalog(text, tags, lock_timeout=lock_timeout, settings=settings)
    if is_database_url(text):
        raise CatalogError(f"{text}: not a catalog (a file path or a postgresql:// URL)")
    return SqliteCatalog(Path(text), tags, lock_timeout=lock_timeout, mode=mode)

__all__ = ["Catalog", "CatalogError", "CatalogLockedError", "SqliteCatalog", "is_database_url", "open_catalog"]
