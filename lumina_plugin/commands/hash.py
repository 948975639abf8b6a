"""hash: the four hashes of each file, as imagehash prints them. Needs no catalog."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Config
from ..decode.photo import PhotoError
from ..ingest.pipeline import record_for
from ..files import FileError, discover
from ..model import ALGORITHMS
from ..hashing.codes import code_to_hex
from ._shared import print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("hash", help="print the four hashes of each file (imagehash hex)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(handler=cmd_hash)


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
        print_json({"files": results, "errors": [e.as_json() for e in errors]})
    else:
        for r in results:
            print("  ".join(f"{a}={r[a]}" for a in ALGORITHMS) + f"  {r['path']}")
        for e in errors:
            print(f"error: {e.path}: {e.error}", file=sys.stderr)
    return 0
