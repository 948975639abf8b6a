"""``lumina-dedup``: the embedded host's command line. Thin: parse, call the engine, print.

Exit codes: 0 the run finished (files that failed are listed, not fatal), 1 the run
could not be done (catalog locked or unreadable, bad configuration), 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .catalog.base import CatalogError
from .config import Config, ConfigError
from .decode.cpu import PhotoError
from .engine import Engine, RunReport, record_for
from .files import FileError, discover
from .hashing.codes import ALGORITHMS, code_to_hex
from .index.store import IndexCorruptError
from .progress import terminal_progress

log = logging.getLogger("lumina_plugin")


def default_catalog() -> Path:
    """``$LUMINA_DEDUP_CATALOG``, else ``$XDG_DATA_HOME/lumina-dedup/catalog.db``."""
    if os.environ.get("LUMINA_DEDUP_CATALOG"):
        return Path(os.environ["LUMINA_DEDUP_CATALOG"])
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "lumina-dedup" / "catalog.db"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumina-dedup", description="Find duplicate photos and tag them.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--catalog", type=Path, default=None, metavar="DB",
                        help="SQLite catalog (default: $LUMINA_DEDUP_CATALOG or ~/.local/share/lumina-dedup/catalog.db)")
    common.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="TOML configuration (default: lumina-dedup.toml beside the catalog)")
    common.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for another process using the catalog (default 10)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("import", parents=[common], help="add photos, hash them and flag copies of photos already in the catalog")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("find-duplicates", parents=[common], help="import PATHs if given, then group the whole catalog and tag it")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")

    p = sub.add_parser("hash", help="print the four hashes of each file (imagehash hex)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-v", "--verbose", action="count", default=0)

    p = sub.add_parser("undo", parents=[common], help="restore the tags and groups as they were before the last run")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("plugins", help="list the Lumina plugins installed here and their hooks")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except (CatalogError, ConfigError, IndexCorruptError) as exc:
        print(f"lumina-dedup: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lumina-dedup: interrupted; every finished batch is saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def _engine(args: argparse.Namespace, progress: Any) -> Engine:
    catalog = (args.catalog or default_catalog()).absolute()
    config = Config.load(args.config, catalog_dir=catalog.parent)
    return Engine(catalog, config, progress=progress, lock_timeout=max(0.0, args.wait))


def _print_report(report: RunReport, as_json: bool) -> None:
    if as_json:
        json.dump(report.as_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for n, group in enumerate(report.groups, 1):
        keeper = report.images[group.keeper]
        print(f"Group {n} ({group.similarity_type}, {len(group.members) + 1} files)")
        print(f"  keep  {keeper.path}")
        print(f"        because: {group.reason}")
        for m in group.members:
            info = report.images[m.index_id]
            how = "exact copy" if m.kind == "exact" else \
                f"near copy, distance {m.distance} ({', '.join(m.link.linked_by) if m.link else ''})"
            print(f"  {'=' if m.kind == 'exact' else '~'}     {info.path}  [{how}]")
    if report.dry_run:
        changes = report.changes()
        for sign, key in (("+", "add"), ("-", "remove")):
            for row in changes[key]:
                print(f"would {key:6} {row['tag']:26} {row['path']}")
    for err in report.errors:
        print(f"error: {err.path}: {err.error}", file=sys.stderr)
    s = report.summary()
    tail = "dry run: nothing written" if report.dry_run else "written to the catalog"
    changes = (f"tags +{s.get('tags_added', 0)} -{s.get('tags_removed', 0)}, "
               f"groups +{s.get('groups_added', 0)} -{s.get('groups_removed', 0)}")
    print(f"{s['groups']} groups, {s['duplicates']} duplicates; {s['files']} files seen, {s['hashed']} hashed, "
          f"{s['unchanged']} unchanged, {s['errors']} errors; {changes} ({tail})", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    with terminal_progress(not args.json) as progress, _engine(args, progress) as engine:
        report = engine.import_paths(args.paths)
    _print_report(report, args.json)
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    with terminal_progress(not args.json) as progress, _engine(args, progress) as engine:
        report = engine.find_duplicates(args.paths, dry_run=args.dry_run)
    _print_report(report, args.json)
    return 0


def cmd_hash(args: argparse.Namespace) -> int:
    config = Config()
    files, errors = discover(args.files, config.extensions)
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            rec = record_for(path, config.max_pixels)
        except PhotoError as exc:
            errors.append(FileError(exc.path, exc.reason))
            continue
        results.append({"path": path, **{a: code_to_hex(c) for a, c in zip(ALGORITHMS, rec.codes)}})
    if args.json:
        json.dump({"files": results, "errors": [e.as_json() for e in errors]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in results:
            print("  ".join(f"{a}={r[a]}" for a in ALGORITHMS) + f"  {r['path']}")
        for e in errors:
            print(f"error: {e.path}: {e.error}", file=sys.stderr)
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    with _engine(args, None) as engine:
        result = engine.undo()
    if args.json:
        print(json.dumps({"undone": result}))
    elif result is None:
        print("nothing to undo", file=sys.stderr)
    else:
        print(f"undid run {result['undone_run']} ({result['kind']} of {result['started_at']}): "
              f"{result['changes_reversed']} changes reversed", file=sys.stderr)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from lumina_hooks import HostContext, PluginHost
    host = PluginHost(HostContext(name="lumina-dedup", catalog=str(default_catalog())))
    print(json.dumps(host.plugins(), indent=2))
    return 0


COMMANDS = {"import": cmd_import, "find-duplicates": cmd_find, "hash": cmd_hash, "undo": cmd_undo,
            "plugins": cmd_plugins}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
