"""``lumina-dedup``: the embedded host's command line. Thin: parse, call the engine, print.

The subcommands live in :mod:`lumina_plugin.commands`. Exit codes: 0 the run
finished (files that failed are listed, not fatal), 1 the run could not be done
(catalog locked or unreadable, bad configuration, an optional part such as ``[lumina]``
not installed), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .commands import register_all
from .commands._arg_types import non_negative_float


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked (see ``__init__``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from . import __version__
        print(f"{parser.prog} {__version__}")  # on stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumina-dedup", description="Find duplicate photos and tag them.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--catalog", default=None, metavar="DB",
                        help="SQLite catalog file, or Lumina's database as postgresql://...?catalog=ID "
                             "(default: $LUMINA_DEDUP_CATALOG or ~/.local/share/lumina-dedup/catalog.db)")
    common.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="TOML configuration (default: lumina-dedup.toml beside the catalog)")
    common.add_argument("--wait", type=non_negative_float, default=10.0, metavar="SECONDS",
                        help="how long to wait for another process using the catalog (default 10)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_all(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _escape_unencodable_output()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("lumina-dedup: interrupted; every finished batch is saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        message = _one_line(exc)
        if message is None:
            raise
        print(f"lumina-dedup: error: {message}", file=sys.stderr)
        return 1


def _escape_unencodable_output() -> None:
    """Print what the terminal's encoding cannot hold as backslash escapes, not a crash.

    A file name that is not valid UTF-8 (old FAT drives, Windows code pages) arrives as a
    str with surrogate escapes (PEP 383); a strict UTF-8 stdout (the usual locale) raises
    UnicodeEncodeError on it halfway through the output. Escaped, the name still shows
    which file it is (``caf\\udce9.jpg``), the same under every locale.
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, io.UnsupportedOperation):  # a stream that cannot change: leave it
                pass


def _one_line(exc: Exception) -> str | None:
    """The one line to print for an exception that ends the run with exit 1, or None for a
    bug (its traceback is printed). An optional part that is not installed names the extra
    to install (:mod:`lumina_plugin.extras`)."""
    from .extras import missing_extra_message
    if isinstance(exc, ModuleNotFoundError):
        return missing_extra_message(exc)
    return str(exc) if _fatal_in_one_line(exc) else None


def _fatal_in_one_line(exc: Exception) -> bool:
    """Whether ``exc`` is a run that cannot be done (catalog, configuration, index): one line,
    exit 1. Imported here, not at the top: ``--help`` must not load the catalog's NumPy."""
    from .catalog.interface import CatalogError
    from .index.store import IndexCorruptError
    from .settings import ConfigError
    return isinstance(exc, (CatalogError, ConfigError, IndexCorruptError))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
