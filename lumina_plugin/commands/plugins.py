"""plugins: which Lumina plugins this environment would load, and their hooks."""

from __future__ import annotations

import argparse

from ._output import print_json
from ._shared import default_catalog


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("plugins", help="list the Lumina plugins installed here and their hooks")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(handler=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    from lumina_hooks import HostContext, PluginHost
    host = PluginHost(HostContext(name="lumina-dedup", catalog=str(default_catalog())))
    print_json(host.plugins())
    return 0
