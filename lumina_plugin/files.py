"""Which files a run looks at: paths given by the user, folders walked recursively.

A folder contributes the files whose extension is a photo format; a file named
explicitly is always tried (so a photo with a wrong extension is not skipped
silently). Paths are made absolute but not resolved: the catalog keeps the path the
user knows, symlink or not.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

#: Camera RAW extensions (lower case, with dot); decode/raw.py hashes their embedded JPEG.
#: The same list as grouping/relations.py uses to tell a RAW+JPEG pair.
RAW_EXTENSIONS: frozenset[str] = frozenset({
    ".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf",
    ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc", ".mrw",
})
#: HEIF family (decode/heif.py): HEIC/HEIF through pillow-heif, AVIF through Pillow itself.
HEIF_EXTENSIONS: frozenset[str] = frozenset({".heic", ".heif", ".hif", ".avif"})
#: Every photo extension this package can decode, for a default extension list.
PHOTO_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp",
    *sorted(HEIF_EXTENSIONS), *sorted(RAW_EXTENSIONS),
)


@dataclass(frozen=True)
class FileError:
    """A file that could not be processed, and why (one line)."""

    path: str
    error: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "error": self.error}


def not_utf8(path: str) -> bool:
    """Whether ``path`` has bytes that are not valid UTF-8 (names from old FAT drives and Windows
    code pages): Python gives them surrogate-escaped (``os.fsdecode``). The SQLite catalog keeps
    them (``catalog/sqlite_paths.py``); Lumina's PostgreSQL catalog, whose text is UTF-8, cannot."""
    try:
        path.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


#: The per-file error of a name a catalog that keeps text only cannot hold.
NOT_UTF8 = "file name is not valid UTF-8; Lumina's catalog cannot hold it (rename the file)"


def discover(paths: Iterable[str | os.PathLike[str]], extensions: Iterable[str],
             follow_symlinks: bool = False, utf8_only: bool = False) -> tuple[list[str], list[FileError]]:
    """Absolute file paths under ``paths`` (sorted, unique) and the paths that failed.

    Names that are not valid UTF-8 are found as the others, surrogate-escaped; ``utf8_only``
    (a catalog that keeps text only) makes each of them an error line (:data:`NOT_UTF8`) instead."""
    exts = {e.lower() for e in extensions}
    found: set[str] = set()
    errors: list[FileError] = []

    def walk_error(exc: OSError) -> None:
        errors.append(FileError(os.path.abspath(exc.filename or "?"),
                                f"cannot list folder: {exc.strerror or exc}"))

    for given in paths:
        path = os.path.abspath(os.fspath(given))
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path, onerror=walk_error, followlinks=follow_symlinks):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in files:
                    if name.startswith(".") or os.path.splitext(name)[1].lower() not in exts:
                        continue
                    found.add(os.path.join(root, name))
        elif os.path.lexists(path):
            found.add(path)
        else:
            errors.append(FileError(path, "no such file or folder"))

    good: list[str] = []
    for path in sorted(found):
        if utf8_only and not_utf8(path):
            errors.append(FileError(path, NOT_UTF8))
        else:
            good.append(path)
    return good, errors


def chunked(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


def sha256_of(path: str) -> str | None:
    """The file's SHA-256, 64 lowercase hex digits (the catalog's checksum, and Lumina's image
    id); None if it cannot be read. Read in 1 MiB blocks: a RAW or a video is never held whole."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
