"""decide: a person's verdict flows back into the catalog, and the tags follow at once."""

from __future__ import annotations

import argparse
import sys

from ._output import print_json, print_report
from ._shared import open_engine


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("decide", parents=[common], help="record a decision from the review and retag")
    what = p.add_subparsers(dest="decision", required=True, metavar="DECISION")
    d = what.add_parser("not-duplicate", parents=[common], help="these two photos are different shots: never flag them again")
    d.add_argument("paths", nargs=2, metavar="PATH")
    d = what.add_parser("duplicate", parents=[common], help="confirm that two photos are copies (counts for calibrate)")
    d.add_argument("paths", nargs=2, metavar="PATH")
    d = what.add_parser("keeper", parents=[common], help="keep this photo in its group, whatever the ranking says")
    d.add_argument("paths", nargs=1, metavar="PATH")
    d = what.add_parser("list", parents=[common], help="list the decisions made so far")
    d = what.add_parser("forget", parents=[common], help="withdraw a decision by its id (see list)")
    d.add_argument("decision_id", type=int, metavar="ID")
    for parser in (p, *what.choices.values()):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_decide)


def cmd_decide(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        if args.decision == "list":
            decisions = engine.decisions()
            if args.json:
                print_json({"decisions": decisions})
            if not decisions and not args.json:
                print("no decisions yet", file=sys.stderr)
            for d in decisions if not args.json else ():
                pair = d["path_1"] if d["kind"] == "keeper" else f"{d['path_1']}  {d['path_2']}"
                print(f"{d['id']:>5}  {d['kind']:13}  {pair}")
            return 0
        report = (engine.forget(args.decision_id) if args.decision == "forget"
                  else engine.decide(args.decision, args.paths))
    if report is None:
        print(f"lumina-dedup: error: no decision with id {args.decision_id}", file=sys.stderr)
        return 1
    print_report(report, args.json)
    return 0
