"""decide: a person's verdict flows back into the catalog, and the tags follow at once.

What it prints is what the decision changed (the groups it touched), never the whole
catalog: a real library has thousands of groups. Bad usage (one photo named twice) is
exit 2 before the catalog is opened; a photo the catalog does not hold, or a keeper
chosen for a photo in no group, is one line and exit 1 with nothing recorded.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._output import paths_in_groups, print_decision, print_json, shown_path
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


def _error(args: argparse.Namespace, message: str) -> None:
    print(f"lumina-dedup decide {args.decision}: error: {message}", file=sys.stderr)


def cmd_decide(args: argparse.Namespace) -> int:
    paths = [os.path.abspath(p) for p in getattr(args, "paths", ())]
    if len(paths) == 2 and paths[0] == paths[1]:
        _error(args, f"{args.paths[0]} is named twice; name two different photos")
        return 2
    with open_engine(args) as engine:
        if args.decision == "list":
            return _list(engine.decisions(), args.json)
        if args.decision == "keeper" and paths[0] not in paths_in_groups(engine.review()):
            # Checked before recording: a keeper choice for a photo in no group would do
            # nothing now and quietly pin it later.
            held = engine.catalog.stored_files(paths)
            _error(args, f"{shown_path(paths[0])}: " + ("is in no duplicate group; nothing recorded" if held
                                                        else "not in the catalog (import it first)"))
            return 1
        if args.decision == "forget":
            report = engine.forget(args.decision_id)
            what = f"Withdrew decision {args.decision_id}"
        else:
            report = engine.decide(args.decision, paths)
            what = " ".join(["Recorded:", args.decision, *(shown_path(p) for p in paths)])
    if report is None:
        _error(args, f"no decision with id {args.decision_id} (see decide list)")
        return 1
    print_decision(report, args.json, what, args.verbose)
    return 0


def _list(decisions: list[dict], as_json: bool) -> int:
    if as_json:
        print_json({"decisions": decisions})
    elif not decisions:
        print("no decisions yet", file=sys.stderr)
    for d in decisions if not as_json else ():
        pair = d["path_1"] if d["kind"] == "keeper" else f"{d['path_1']}  {d['path_2']}"
        print(f"{d['id']:>5}  {d['kind']:13}  {pair}")
    return 0
