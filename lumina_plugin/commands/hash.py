"""hash: the four hashes of each file, as imagehash prints them. Needs no catalog.

Hashes through the same pipeline as import (``hash_paths``: in this process for a few
small files, else the worker pool and, where one is usable, the GPU), with the user's
configuration file (``~/.config/lumina-dedup/config.toml``) and the GPU flags on top.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..config import Config
from ..model import ALGORITHMS
from ._gpu_flags import add_gpu_flags, apply_gpu_flags
from ._output import print_json
from ._shared import nothing_exists


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``hash`` command."""
    p = sub.add_parser("hash", help="print the four hashes of each file (imagehash hex)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--decode", choices=("exact", "reduced"), default=None,
                   help="how photos are decoded (default: the configuration's hashing.decode, reduced); "
                        "exact prints imagehash 4.3's hashes bit for bit")
    p.add_argument("--config", type=Path, default=None, metavar="FILE", help="TOML configuration")
    add_gpu_flags(p)
    p.set_defaults(handler=cmd_hash)


def cmd_hash(args: argparse.Namespace) -> int:
    """Print the hashes of ``args.files`` (folders: their photos), then the files that failed."""
    if nothing_exists("hash", args.files):
        return 1
    from ..files import discover
    from ..hashing.codes import code_to_hex
    from ..ingest.pipeline import hash_paths
    config = apply_gpu_flags(args, Config.load(args.config))
    if args.decode:
        config = config.replace(hashing=dataclasses.replace(config.hashing, decode=args.decode))
    files, errors = discover(args.files, config.extensions)
    results: list[dict[str, Any]] = []
    for records, failed in hash_paths(files, config):
        results += [{"path": r.path, **{a: code_to_hex(c) for a, c in zip(ALGORITHMS, r.codes)}} for r in records]
        errors += failed
    if args.json:
        print_json({"files": results, "errors": [e.as_json() for e in errors]})
    else:
        for r in results:
            print("  ".join(f"{a}={r[a]}" for a in ALGORITHMS) + f"  {r['path']}")
    for e in errors:  # on stderr under --json too (README: a script's log shows what failed)
        print(f"error: {e.path}: {e.error}", file=sys.stderr)
    return 0
