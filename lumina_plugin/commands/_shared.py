"""What the commands share: the catalog and configuration the common options name, the engine on them."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ._gpu_flags import apply_gpu_flags

if TYPE_CHECKING:
    from ..engine import Engine


def is_database_url(text: str) -> bool:
    """catalog.locator's test, imported when asked: the catalog package loads NumPy, and
    ``--help`` and usage errors must answer before any of that is loaded."""
    from ..catalog.locator import is_database_url as test
    return test(text)


def default_catalog() -> Path:
    """``$LUMINA_DEDUP_CATALOG``, else ``$XDG_DATA_HOME/lumina-dedup/catalog.db``."""
    if os.environ.get("LUMINA_DEDUP_CATALOG"):
        return Path(os.environ["LUMINA_DEDUP_CATALOG"])
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "lumina-dedup" / "catalog.db"


def catalog_path(args: argparse.Namespace) -> Path:
    """The SQLite catalog file (for a ``postgresql://`` catalog: the default file's place,
    where the configuration file is looked for)."""
    if args.catalog and is_database_url(args.catalog):
        return default_catalog().absolute()
    return Path(args.catalog).absolute() if args.catalog else default_catalog().absolute()


def catalog_locator(args: argparse.Namespace) -> str:
    """What ``--catalog`` names: a SQLite file's absolute path, or a ``postgresql://`` URL."""
    if args.catalog and is_database_url(args.catalog):
        return str(args.catalog)
    return str(catalog_path(args))


def load_config(args: argparse.Namespace) -> Config:
    """The configuration a command runs with: the file (``--config`` or beside the catalog)."""
    return Config.load(args.config, catalog_dir=catalog_path(args).parent)


def catalog_mode(args: argparse.Namespace) -> str:
    """What the command will do with a SQLite catalog (``catalog/sqlite_open.py``): ``create``
    for those that import (import, find-duplicates, watch), ``read`` for those that only read
    (review, decide list, calibrate: the catalog must exist and nothing is written, so they
    work on a read-only disk), ``preview`` for a dry run (as ``read``, or an empty catalog in
    memory where there is none yet), ``write`` for the rest (undo, decide: the catalog must
    exist, so a mistyped ``--catalog`` is refused rather than created)."""
    command = getattr(args, "command", None)
    if command == "find-duplicates":
        return "preview" if getattr(args, "dry_run", False) else "create"
    if command in ("import", "watch"):
        return "create"
    if command in ("review", "calibrate") or (command == "decide" and getattr(args, "decision", None) == "list"):
        return "read"
    return "write"


def open_engine(args: argparse.Namespace, progress: Any = None, config: Config | None = None,
                mode: str | None = None) -> Engine:
    """The engine on ``--catalog`` with ``config`` (default: :func:`load_config`) and the GPU
    flags where the command has them (``--gpu/--no-gpu/--gpu-batch-size``; a no-op elsewhere).
    ``mode``: what the command does with the catalog (default: :func:`catalog_mode`)."""
    from ..engine import Engine
    config = apply_gpu_flags(args, config or load_config(args))
    return Engine(catalog_locator(args), config, progress=progress, lock_timeout=max(0.0, args.wait),
                  mode=mode or catalog_mode(args))


def check_catalog(args: argparse.Namespace, mode: str | None = None) -> None:
    """Raise the one-line CatalogError that opening the SQLite catalog for ``mode`` (default:
    :func:`catalog_mode`) would, before a command writes anything beside it of its own (watch's
    queue): a missing catalog for a command that needs one, a catalog or a place that cannot be
    written for one that writes. A ``postgresql://`` catalog: nothing to check here."""
    locator = catalog_locator(args)
    if not is_database_url(locator):
        from ..catalog.sqlite_open import prepare
        prepare(Path(locator), mode or catalog_mode(args))


def nothing_exists(command: str, paths: Sequence[str]) -> bool:
    """When none of ``paths`` exists: say so in one line on stderr and return True, before any
    catalog is opened (nothing is written). Some missing among existing ones are per-file errors
    of the run, listed as usual."""
    if any(os.path.lexists(p) for p in paths):
        return False
    shown = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more)"
    print(f"lumina-dedup {command}: error: {shown}: no such file or folder; nothing written", file=sys.stderr)
    return True
