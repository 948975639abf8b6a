"""lumina ...: the plugin inside a real Lumina deployment (its PostgreSQL database and Redis).

    lumina-dedup lumina find-duplicates [--url URL] [--catalog ID|NAME] [--no-show-in-lumina] [--dry-run] [--json]
    lumina-dedup lumina listen [--catalog ID|NAME]...
    lumina-dedup lumina status [--json]
    lumina-dedup lumina undo [--catalog ID|NAME]
    lumina-dedup lumina uninstall --yes

The database is Lumina's own (``POSTGRES_*``, or ``[lumina] url``, or ``--url``); Redis is
Lumina's (``REDIS_*``/``CELERY_BROKER_URL`` or ``[lumina] redis_url``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..config import Config
from ._arg_types import non_negative_float
from ._gpu_flags import add_gpu_flags, apply_gpu_flags
from ._output import print_json, print_report

if TYPE_CHECKING:
    from ..catalog.postgres import PostgresCatalog


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    lumina = sub.add_parser("lumina", help="work on a real Lumina deployment (PostgreSQL, Redis, Celery)")
    inner = lumina.add_subparsers(dest="lumina_command", required=True, metavar="ACTION")
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--url", default=None, help="Lumina's database URL (default: [lumina] url, else POSTGRES_*)")
    shared.add_argument("--config", type=argparse.FileType("rb"), default=None, metavar="FILE",
                        help="TOML configuration (default: the user's config file)")
    shared.add_argument("--wait", type=non_negative_float, default=10.0, metavar="SECONDS",
                        help="how long to wait for another run on the same catalog (default 10)")
    shared.add_argument("-v", "--verbose", action="count", default=0)

    p = inner.add_parser("find-duplicates", parents=[shared],
                         help="hash what Lumina catalogued and we have not, group the whole catalog, tag it")
    p.add_argument("--catalog", default=None, metavar="ID|NAME", help="which Lumina catalog (default: the only one)")
    p.add_argument("--show-in-lumina", action=argparse.BooleanOptionalAction, default=None,
                   help="write the groups into Lumina's duplicate_groups, its duplicates page (default: on; "
                        "--no-show-in-lumina or show_in_lumina = false leaves the page to Lumina's detector)")
    p.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_gpu_flags(p)
    p.set_defaults(handler=cmd_find)

    p = inner.add_parser("listen", parents=[shared],
                         help="follow Lumina's scans (Redis + polling jobs) and tag new duplicates; Ctrl-C stops")
    p.add_argument("--catalog", action="append", default=[], metavar="ID|NAME", help="only these catalogs")
    add_gpu_flags(p)
    p.set_defaults(handler=cmd_listen)

    p = inner.add_parser("status", parents=[shared], help="our recent runs and what is waiting to be hashed")
    p.add_argument("--catalog", default=None, metavar="ID|NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = inner.add_parser("undo", parents=[shared], help="restore our tags and groups as before the last run")
    p.add_argument("--catalog", default=None, metavar="ID|NAME")
    p.set_defaults(handler=cmd_undo)

    p = inner.add_parser("uninstall", parents=[shared],
                         help="remove every tag, group and table lumina-dedup wrote into Lumina's database")
    p.add_argument("--yes", action="store_true", help="really do it")
    p.set_defaults(handler=cmd_uninstall)


def _config(args: argparse.Namespace) -> Config:
    if args.config is not None:
        import tomllib
        config = Config.from_mapping(tomllib.load(args.config), Config.load())
    else:
        config = Config.load()
    url = args.url
    if url and isinstance(getattr(args, "catalog", None), str):  # the flag wins over the URL's ?catalog=
        from urllib.parse import urlencode

        from ..catalog.postgres import split_url
        base, ours = split_url(url)
        ours.pop("catalog", None)
        url = base + (("&" if "?" in base else "?") + urlencode(ours) if ours else "")
    changes = {k: v for k, v in (("url", url), ("catalog", getattr(args, "catalog", None)),
                                 ("show_in_lumina", getattr(args, "show_in_lumina", None)))
               if v is not None and not isinstance(v, list)}
    config = config.replace(lumina=dataclasses.replace(config.lumina, **changes)) if changes else config
    return apply_gpu_flags(args, config)


def _open(config: Config, wait: float) -> PostgresCatalog:
    from ..catalog.postgres import PostgresCatalog
    return PostgresCatalog(None, config.tags, lock_timeout=max(0.0, wait), settings=config.lumina)


def cmd_find(args: argparse.Namespace) -> int:
    from ..engine import Engine
    from ..progress import terminal_progress
    config = _config(args)
    catalog = _open(config, args.wait)
    with terminal_progress(not args.json) as progress, Engine(catalog, config, progress=progress) as engine:
        report = engine.find_duplicates(catalog.unhashed_paths(engine.version), dry_run=args.dry_run)
    print_report(report, args.json, verbose=args.verbose)
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    from ..lumina.listener import Listener
    config = _config(args)

    def show(report: dict[str, Any]) -> None:
        for cid, n in report["imported"].items():
            print(f"catalog {cid}: {n} new image(s) hashed and checked", file=sys.stderr)
        for scan in report["scans"]:
            print(f"catalog {scan['catalog_id']}: regrouped after scan {scan['job_id'] or '(catch-up)'}", file=sys.stderr)

    stop = threading.Event()
    print("listening to Lumina (Ctrl-C stops)", file=sys.stderr)
    try:
        Listener(config, args.catalog, on_report=show).run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..lumina import elsewhere
    config = _config(args)
    with _open(config, args.wait) as catalog:
        runs = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in catalog.runs(10)]
        out: dict[str, Any] = {"catalog_id": catalog.catalog_id, "catalog": catalog.catalog_name,
               "show_in_lumina": catalog.show_in_lumina, "index_dir": str(catalog.index_dir),
               "waiting": len(catalog.unhashed_paths(config.hash_version())), "runs": runs,
               # photos under the catalog's folders that Lumina stored under another catalog (issue 20, item 5)
               "elsewhere": elsewhere.check_catalog(catalog.conn, catalog.catalog_id, config.extensions)}
    if args.json:
        print_json(out)
    else:
        print(f"{out['catalog']} ({out['catalog_id']}): {out['waiting']} image(s) waiting to be hashed; "
              f"index in {out['index_dir']}")
        for line in elsewhere.describe(out["elsewhere"]):
            print(f"  {line}")
        for r in runs:
            print(f"  run {r['id']:>5}  {r['kind']:16} {r['status']:7} {r['changes']:>6} changes  {r['started_at']}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from ..engine import Engine
    config = _config(args)
    with Engine(_open(config, args.wait), config) as engine:
        result = engine.undo()
    print("nothing to undo" if result is None else
          f"undid run {result['undone_run']} ({result['kind']}): {result['changes_reversed']} changes reversed",
          file=sys.stderr)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from ..catalog.postgres import uninstall
    if not args.yes:
        print("lumina-dedup: this removes every tag, group and table lumina-dedup wrote; add --yes", file=sys.stderr)
        return 2
    config = _config(args)
    removed = uninstall(None, config.lumina, config.tags)
    print(f"removed {removed['image_tags']} image tag(s), {removed['tags']} tag(s), "
          f"{removed['lumina_groups']} group(s) on Lumina's duplicates page, {removed['jobs']} Find Duplicates "
          f"job(s) and {removed['tables']} table(s)", file=sys.stderr)
    return 0
