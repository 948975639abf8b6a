"""What the commands share: opening the engine from the common options, printing a report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..catalog.locator import is_database_url
from ..config import Config
from ..engine import Engine, RunReport
from ._gpu_flags import apply_gpu_flags


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


def open_engine(args: argparse.Namespace, progress: Any = None, config: Config | None = None) -> Engine:
    """The engine on ``--catalog`` with ``config`` (default: :func:`load_config`) and the GPU
    flags where the command has them (``--gpu/--no-gpu/--gpu-batch-size``; a no-op elsewhere)."""
    config = apply_gpu_flags(args, config or load_config(args))
    return Engine(catalog_locator(args), config, progress=progress, lock_timeout=max(0.0, args.wait))


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_report(report: RunReport, as_json: bool) -> None:
    """A run's report: one JSON object, or its groups as text (errors and a summary on stderr)."""
    if as_json:
        print_json(report.as_json())
        return
    for n, group in enumerate(report.groups, 1):
        keeper = report.images[group.keeper]
        print(f"Group {n} ({group.similarity_type}, {len(group.members) + 1} files)")
        print(f"  keep  {keeper.path}")
        print(f"        because: {group.reason}")
        for m in group.members:
            info = report.images[m.index_id]
            how = "exact copy" if m.kind == "exact" else \
                f"{m.relation}, distance {m.distance} ({', '.join(m.link.linked_by) if m.link else ''})"
            if m.change:
                how += f": {m.change}"
            print(f"  {'=' if m.kind == 'exact' else '~'}     {info.path}  [{how}]")
    if report.dry_run:
        planned = report.changes()
        for key in ("add", "remove"):
            for row in planned[key]:
                print(f"would {key:6} {row['tag']:26} {row['path']}")
    for err in report.errors:
        print(f"error: {err.path}: {err.error}", file=sys.stderr)
    s = report.summary()
    tail = "dry run: nothing written" if report.dry_run else "written to the catalog"
    changes = (f"tags +{s.get('tags_added', 0)} -{s.get('tags_removed', 0)}, "
               f"groups +{s.get('groups_added', 0)} -{s.get('groups_removed', 0)}")
    print(f"{s['groups']} groups, {s['duplicates']} duplicates; {s['files']} files seen, {s['hashed']} hashed, "
          f"{s['unchanged']} unchanged, {s['errors']} errors; {changes} ({tail})", file=sys.stderr)
    if report.backend:
        print(f"search backend: {report.backend}", file=sys.stderr)


def nothing_exists(command: str, paths: Sequence[str]) -> bool:
    """When none of ``paths`` exists: say so in one line on stderr and return True, before any
    catalog is opened (nothing is written). Some missing among existing ones are per-file errors
    of the run, listed as usual."""
    if any(os.path.lexists(p) for p in paths):
        return False
    shown = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more)"
    print(f"lumina-dedup {command}: error: {shown}: no such file or folder; nothing written", file=sys.stderr)
    return True
