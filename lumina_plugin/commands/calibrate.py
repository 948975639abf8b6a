"""calibrate: pairs to judge from each distance band, then the precision this library shows."""

from __future__ import annotations

import argparse
import shlex

from ..calibration import BANDS, estimate, sample_pairs, verdicts_for
from ..index import all_pairs
from ._shared import catalog_locator, open_engine, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("calibrate", parents=[common],
                       help="pick pairs per distance band to judge; estimate precision and suggest a threshold")
    p.add_argument("--per-band", type=int, default=5, metavar="N", help="pairs to propose per band (default 5)")
    p.add_argument("--target", type=float, default=0.95, help="precision to reach (default 0.95)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        # Wider than the grouping thresholds: calibration must see the bands beyond them.
        widest = BANDS[-1][1]
        found = all_pairs(engine.index.ids, engine.index.codes, (-1, widest, widest, -1))
        a, b, dist = found.a, found.b, found.dist
        decisions = engine.catalog.decisions()
        judged = {(min(d["index_1"], d["index_2"]), max(d["index_1"], d["index_2"])) for d in decisions}
        proposals = sample_pairs(a, b, dist, judged, max(0, args.per_band))
        paths = {i: info.path for i, info in engine.catalog.images({x for _, p, q, _ in proposals for x in (p, q)}).items()}
        result = estimate(verdicts_for(decisions, a, b, dist), target=args.target)
    cat = shlex.quote(catalog_locator(args))
    todo = [{"band": list(BANDS[k]), "distance": d, "paths": [paths[p], paths[q]],
             "same": f"lumina-dedup decide duplicate {shlex.quote(paths[p])} {shlex.quote(paths[q])} --catalog {cat}",
             "different": f"lumina-dedup decide not-duplicate {shlex.quote(paths[p])} {shlex.quote(paths[q])} --catalog {cat}"}
            for k, p, q, d in proposals]
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
