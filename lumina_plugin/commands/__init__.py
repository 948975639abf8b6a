"""The subcommands of ``lumina-dedup``, one module per family.

Each public module here has ``register(subparsers, common)``, which adds its parsers
and sets ``handler`` (a function of the parsed args returning the exit code). The
command line finds them by listing this package, so a feature adds its commands
without editing the others.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register_all(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub, common)
