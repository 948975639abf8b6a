"""The catch-up scan: what changed in the watched folders while nobody was watching.

Run at start-up (photos that arrived while the watcher was down) and again now and
then, or when the kernel dropped events, since an observer can miss things. The
folders are compared with the catalog by path, size and mtime only: an unchanged
file is never read, let alone re-hashed.

- a photo on disk with no catalog row, or whose size or mtime differ: to import;
- a catalogued photo no longer on disk: removed, unless a new file has the same size,
  mtime and SHA-256 (a rename while we were away): then it is a move, and the photo
  keeps its row, hashes and tags.

The catalog is read through :meth:`lumina_plugin.engine.Engine.catalogued`, like every
other reader of the catalog.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config import Config
from ..engine import Engine
from ..files import sha256_of
from .readiness import NameRules

Signature = tuple[int, int]  # (size, mtime_ns)


@dataclass
class ScanResult:
    """What a scan found; nothing is changed until the service queues it."""

    found: dict[str, Signature] = field(default_factory=dict)   # new or changed on disk
    removed: list[str] = field(default_factory=list)            # catalogued, gone from disk
    moved: list[tuple[str, str]] = field(default_factory=list)  # renamed while away
    known: set[str] = field(default_factory=set)                # catalogued under the roots, now
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)             # one line per folder not listed


def walk(roots: Iterable[str], rules: NameRules,
         follow_symlinks: bool = False) -> tuple[dict[str, Signature], list[str]]:
    """Every wanted photo under ``roots`` with its (size, mtime_ns), and listing errors."""
    found: dict[str, Signature] = {}
    errors: list[str] = []

    def failed(exc: OSError) -> None:
        errors.append(f"{exc.filename}: cannot list folder: {exc.strerror or exc}")

    for root in roots:
        for folder, dirs, files in os.walk(root, onerror=failed, followlinks=follow_symlinks):
            dirs[:] = [d for d in dirs if not rules.ignored_part(d)]
            for name in files:
                path = os.path.join(folder, name)
                if not rules.wanted(path):
                    continue
                if not utf8(path):
                    errors.append(f"{printable(path)}: file name is not valid UTF-8; not imported")
                    continue
                try:
                    info = os.stat(path)  # a link to a photo counts, as when importing a folder
                except OSError:
                    continue  # gone meanwhile, or a dangling link
                if stat.S_ISREG(info.st_mode):
                    found[path] = (info.st_size, info.st_mtime_ns)
    return found, errors


def utf8(path: str) -> bool:
    """Whether ``path`` can be stored as text (a name of bytes that are not UTF-8 cannot)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(path: str) -> str:
    """``path`` with the bytes that are not UTF-8 shown as replacement characters."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")



def compare(on_disk: dict[str, Signature], catalogued: dict[str, Signature],
            checksums: dict[str, str]) -> ScanResult:
    """Diff the folders against the catalog rows of the same folders."""
    result = ScanResult(known=set(catalogued))
    for path, sig in on_disk.items():
        prior = catalogued.get(path)
        if prior is None or prior != sig:
            result.found[path] = sig
        else:
            result.unchanged += 1
    gone = [p for p in catalogued if p not in on_disk]
    # Renames while away: a unique (size, mtime) on both sides, confirmed by content.
    new_by_sig: dict[Signature, list[str]] = {}
    for path, sig in result.found.items():
        if path not in catalogued:
            new_by_sig.setdefault(sig, []).append(path)
    gone_by_sig: dict[Signature, list[str]] = {}
    for path in gone:
        gone_by_sig.setdefault(catalogued[path], []).append(path)
    moved_from: set[str] = set()
    for sig, olds in gone_by_sig.items():
        news = new_by_sig.get(sig, [])
        if len(olds) == 1 and len(news) == 1 and checksums.get(olds[0]) and \
                sha256_of(news[0]) == checksums[olds[0]]:
            result.moved.append((olds[0], news[0]))
            moved_from.add(olds[0])
            del result.found[news[0]]  # the move carries its row; nothing to hash
    result.removed = sorted(p for p in gone if p not in moved_from)
    return result


def catch_up(catalog: str | os.PathLike[str], roots: Iterable[str], rules: NameRules,
             config: Config | None = None, lock_timeout: float = 10.0) -> ScanResult:
    """Walk ``roots`` and compare with ``catalog``. The catalog is opened only while read."""
    config = config or Config()
    on_disk, errors = walk(roots, rules, config.follow_symlinks)
    with Engine(catalog, config, lock_timeout=lock_timeout) as engine:
        rows = engine.catalogued(rules.wanted)
    catalogued = {path: (size, mtime_ns) for path, (size, mtime_ns, _) in rows.items()}
    checksums = {path: checksum for path, (_, _, checksum) in rows.items()}
    result = compare(on_disk, catalogued, checksums)
    result.errors = errors
    return result
