"""forget: take photos out of the catalog on request; the files on disk are never touched.

Runs find vanished group members on their own (``grouping/present.py``); ``forget`` is for the
rest: a folder that is gone for good, photos imported by mistake (the demo's), a disk retired.
"""

from __future__ import annotations

import argparse
import sys

from ._output import print_json
from ._shared import catalog_locator, catalog_path, is_database_url, open_engine


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("forget", parents=[common],
                       help="take photos (files, or every catalogued photo under a folder) out of the catalog")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dry-run", action="store_true", help="show what would be taken out, write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_forget)


def cmd_forget(args: argparse.Namespace) -> int:
    if not is_database_url(catalog_locator(args)) and not catalog_path(args).is_file():
        print(f"lumina-dedup forget: error: no catalog at {catalog_path(args)}; nothing to forget", file=sys.stderr)
        return 1
    with open_engine(args) as engine:
        report, forgotten, unmatched = engine.forget_paths(args.paths, dry_run=args.dry_run)
    if args.json:
        print_json({"forgotten": forgotten, "not_in_catalog": unmatched, **report.as_json()})
    else:
        verb = "would forget" if args.dry_run else "forgot"
        for path in forgotten:
            print(f"{verb} {path}")
        s = report.summary()
        tail = "dry run: nothing written" if args.dry_run else "the files on disk are untouched"
        print(f"{len(forgotten)} photo{'' if len(forgotten) == 1 else 's'} out of the catalog; "
              f"{s['groups']} groups remain; tags +{s.get('tags_added', 0)} -{s.get('tags_removed', 0)}, "
              f"groups +{s.get('groups_added', 0)} -{s.get('groups_removed', 0)} ({tail})", file=sys.stderr)
    for path in unmatched:
        print(f"lumina-dedup forget: {path}: no photo in the catalog", file=sys.stderr)
    return 1 if unmatched and not forgotten else 0
