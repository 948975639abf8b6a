"""calibrate: pairs to judge from each distance band, then the precision this library shows."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from ._arg_types import positive_int, precision
from ._gpu_flags import add_gpu_flags
from ._output import print_json
from ._shared import catalog_locator, open_engine


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("calibrate", parents=[common],
                       help="pick pairs per distance band to judge; estimate precision and suggest a threshold")
    p.add_argument("--per-band", type=positive_int, default=5, metavar="N", help="pairs to propose per band (default 5)")
    p.add_argument("--target", type=precision, default=0.95, help="precision to reach (default 0.95)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_gpu_flags(p)
    p.set_defaults(handler=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        proposals, result = engine.calibrate(args.per_band, args.target)
    cat = shlex.quote(catalog_locator(args))
    todo: list[dict[str, Any]] = []
    for p in proposals:
        pair = " ".join(shlex.quote(path) for path in p.paths)
        todo.append({"band": list(p.band), "distance": p.distance, "paths": list(p.paths),
                     "same": f"lumina-dedup decide duplicate {pair} --catalog {cat}",
                     "different": f"lumina-dedup decide not-duplicate {pair} --catalog {cat}"})
    bands = [{"band": list(e.band), "judged": e.judged, "duplicates": e.duplicates,
              "precision": e.precision, "interval95": [round(e.low, 3), round(e.high, 3)]} for e in result.bands]
    if args.json:
        print_json({"to_judge": todo, "bands": bands, "suggested_threshold": result.suggested,
                    "verdict": result.verdict})
        return 0
    print("band    judged  copies  precision  95% interval")
    for e in result.bands:
        prec = "-" if e.precision is None else f"{e.precision:.2f}"
        print(f"{e.band[0]:>2}-{e.band[1]:<3} {e.judged:>7} {e.duplicates:>7} {prec:>10}  {e.low:.2f}-{e.high:.2f}")
    print(f"\n{result.verdict}")
    if todo:
        print(f"\nJudge these {len(todo)} pairs (open both photos, then run one command each):")
        for t in todo:
            print(f"\n  distance {t['distance']}: {t['paths'][0]}\n               {t['paths'][1]}")
            print(f"    same shot:  {t['same']}\n    different:  {t['different']}")
    return 0
