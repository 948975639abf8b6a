"""watch: import photos from folders as they land, in batches, until stopped.

Thin: settings from the configuration's ``[watch]`` table with the flags on top, a
:class:`~lumina_plugin.watch.service.WatchService`, and the signals. SIGINT and
SIGTERM stop the watcher after the batch in progress (a second SIGINT stops at
once; nothing is lost either way, the queue file keeps what was not applied).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import tomllib
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..settings.watch import WatchSettings
from ..watch.errors import WatchError
from ._gpu_flags import add_gpu_flags, apply_gpu_flags, gpu_overrides, merge_tables
from ._shared import catalog_locator, catalog_path, check_catalog, load_config

if TYPE_CHECKING:
    from ..watch.host import BatchResult


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``watch`` command."""
    p = sub.add_parser("watch", parents=[common],
                       help="watch folders and import photos as they land, in batches, until stopped")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders to watch, recursively (default: [watch] folders of the configuration)")
    p.add_argument("--polling", action="store_true", default=None,
                   help="poll instead of inotify: for network shares, or where inotify watches run out")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="a batch closes at N files (default 256)...")
    p.add_argument("--max-wait", type=float, default=None, metavar="S",
                   help="...or S seconds after the last new file (default 0.25)")
    p.add_argument("--json", action="store_true", help="print one JSON line per batch (NDJSON)")
    add_gpu_flags(p)
    p.set_defaults(handler=cmd_watch)


def _host_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--config`` file's table with the GPU flags on top, passed to the plugin through
    the host context (the plugin reads the file beside the catalog itself)."""
    data: dict[str, Any] = {}
    if args.config is not None:
        data = tomllib.loads(args.config.read_text(encoding="utf-8"))  # load_config has checked it
        if args.config.name == "pyproject.toml":
            data = data.get("tool", {}).get("lumina-dedup", {})
    return merge_tables(data, gpu_overrides(args))


def settings_from(args: argparse.Namespace, config: Config) -> WatchSettings:
    """The configuration's ``[watch]`` settings with the command-line flags on top.

    Raises WatchError (one line) for a flag out of range."""
    changes: dict[str, Any] = {}
    if args.polling:
        changes["polling"] = True
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise WatchError(f"--batch-size must be at least 1, got {args.batch_size}")
        changes["batch_size"] = args.batch_size
    if args.max_wait is not None:
        if args.max_wait < 0:
            raise WatchError(f"--max-wait must not be negative, got {args.max_wait}")
        changes["max_wait"] = args.max_wait
        changes["max_age"] = max(config.watch.max_age, args.max_wait)
    return dataclasses.replace(config.watch, **changes)


def cmd_watch(args: argparse.Namespace) -> int:
    """Watch until stopped: 0, 130 after Ctrl-C, 2 for bad flags, 1 when it cannot run (a folder
    that does not exist or is a file, as for find-duplicates, import and hash)."""
    from ..watch.host import check_roots
    from ..watch.service import WatchService
    config = apply_gpu_flags(args, load_config(args))
    try:
        settings = settings_from(args, config)
    except WatchError as exc:
        print(f"lumina-dedup watch: error: {exc}", file=sys.stderr)
        return 2
    try:
        roots = check_roots(args.paths or settings.folders)
    except WatchError as exc:
        print(f"lumina-dedup watch: error: {exc}", file=sys.stderr)
        return 1
    check_catalog(args)  # a read-only catalog: one line before the watch queue's lock file fails
    if args.verbose == 0:
        logging.getLogger("lumina_plugin.watch").setLevel(logging.INFO)  # one line per batch

    def print_batch(result: BatchResult) -> None:
        sys.stdout.write(json.dumps(result.as_json()) + "\n")
        sys.stdout.flush()

    service = WatchService(roots, catalog_locator(args), config, settings, host_config=_host_config(args),
                           on_batch=print_batch if args.json else None, state_dir=catalog_path(args).parent,
                           lock_timeout=max(0.0, args.wait))
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now; the queue keeps the rest
        received.append(signum)
        print("lumina-dedup watch: stopping after the current batch", file=sys.stderr)
        service.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        service.run()
    except WatchError as exc:
        print(f"lumina-dedup: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 130 if signal.SIGINT in received else 0
