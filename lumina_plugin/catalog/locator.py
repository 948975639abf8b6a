"""Catalog locators: the one place that tells a database URL from a SQLite file path.

A locator is what ``--catalog``, ``$LUMINA_DEDUP_CATALOG`` and a host's ``HostContext.catalog``
hold: ``postgresql://user@host/db?catalog=ID`` (Lumina's database) or the path of a SQLite file.
"""

from __future__ import annotations

import os

#: URL schemes that name Lumina's PostgreSQL database.
DATABASE_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(locator: str | os.PathLike[str]) -> bool:
    """True for a database URL (``postgresql://...``), False for a file path.

    Any ``scheme://`` counts as a URL, so that a mistyped scheme is refused by
    :func:`lumina_plugin.catalog.open_catalog` instead of creating a file named after it.
    """
    return "://" in os.fspath(locator)


def normalized(locator: str | os.PathLike[str]) -> str:
    """The locator with a file path made absolute (a URL unchanged): one catalog, one name."""
    text = os.fspath(locator)
    return text if is_database_url(text) else os.path.abspath(text)
