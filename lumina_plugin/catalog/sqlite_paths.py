"""File paths in the SQLite catalog, losslessly: a name that is not valid UTF-8 is kept as its bytes.

On POSIX a file name is bytes; Python gives it as text with each undecodable byte escaped as a
lone surrogate (``os.fsdecode``, "surrogateescape"): ``b"caf\\xe9.jpg"`` from an old FAT drive
or a Windows code page reads as ``"caf\\udce9.jpg"``. SQLite text must be valid UTF-8, so such a
path is stored as a BLOB of its exact bytes (``os.fsencode``) and read back to the same text.

Why bytes and not an escaping in text: a BLOB cannot be confused with any real name (an escape
sequence could be one, and escaping the escape character would change every stored path that
contains it), and every valid UTF-8 path stays TEXT, so existing catalogs and tools that read
``images.source_path`` see no change. SQLite compares a BLOB only with a BLOB, so lookups by
path, the UNIQUE constraint and joins work as they do for text.
"""

from __future__ import annotations

import os


def to_db(path: str) -> str | bytes:
    """The value stored for ``path``: the text itself, or its bytes where it is not valid UTF-8."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def from_db(value: str | bytes) -> str:
    """The path a stored value names, as Python's ``os`` functions take it (surrogate-escaped)."""
    return value if isinstance(value, str) else os.fsdecode(value)
