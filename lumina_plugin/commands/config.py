"""config: the effective configuration, and where each value came from."""

from __future__ import annotations

import argparse

from ..config import Config, config_files
from ._output import print_json
from ._shared import catalog_path


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[common], help="print the effective configuration and where each value came from")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    catalog_dir = catalog_path(args).parent
    config, sources = Config.load_with_sources(args.config, catalog_dir)
    values = config.flat()
    rows = [{"key": k, "value": v, "source": sources.get(k, "default")} for k, v in values.items()]
    if args.json:
        print_json({"files": [str(f) for f in config_files(args.config, catalog_dir)], "settings": rows})
        return 0
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        value = list(r["value"]) if isinstance(r["value"], tuple) else r["value"]
        print(f"{r['key']:<{width}}  {value!r:<30}  {r['source']}")
    return 0
