"""import, find-duplicates and undo: the commands that change the catalog."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..progress import terminal_progress
from ._gpu_flags import add_gpu_flags
from ._output import plural, print_report, shown_catalog
from ._shared import load_config, nothing_exists, open_engine

if TYPE_CHECKING:
    from ..config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common],
                       help="add photos, hash them and flag copies of photos already in the catalog")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_gpu_flags(p)
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("find-duplicates", parents=[common],
                       help="import PATHs if given, then group the whole catalog and tag it")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    add_gpu_flags(p)
    p.set_defaults(handler=cmd_find)

    p = sub.add_parser("undo", parents=[common],
                       help="restore the tags and groups as they were before the last run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_undo)


def cmd_import(args: argparse.Namespace) -> int:
    if nothing_exists("import", args.paths):
        return 1
    config = _start_early(args)
    with terminal_progress(not args.json) as progress, open_engine(args, progress, config) as engine:
        report = engine.import_paths(args.paths)
    print_report(report, args.json, shown_catalog(args), args.verbose)
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    if args.paths and nothing_exists("find-duplicates", args.paths):
        return 1
    config = _start_early(args)
    with terminal_progress(not args.json) as progress, open_engine(args, progress, config) as engine:
        report = engine.find_duplicates(args.paths, dry_run=args.dry_run)
    print_report(report, args.json, shown_catalog(args), args.verbose)
    return 0


def _start_early(args: argparse.Namespace) -> Config:
    """The command's configuration; the worker processes' fork server started meanwhile when
    the PATHs are a library to hash (ingest/early_start.py says why)."""
    from ..ingest.early_start import start_fork_server
    config = load_config(args)
    if args.paths:
        start_fork_server(args.paths, config.extensions, config.hashing.parallel_min_files,
                          config.hashing.parallel_min_mb << 20)
    return config


def cmd_undo(args: argparse.Namespace) -> int:
    import sys
    with open_engine(args) as engine:
        result = engine.undo()
    if args.json:
        print(json.dumps({"undone": result}))
    elif result is None:
        print("nothing to undo", file=sys.stderr)
    else:
        print(f"undid run {result['undone_run']} ({result['kind']} of {result['started_at']}): "
              f"{plural(result['changes_reversed'], 'change')} reversed", file=sys.stderr)
    return 0
