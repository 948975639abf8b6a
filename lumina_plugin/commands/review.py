"""review: an HTML report of the duplicate groups, to look at before deciding.

Regroups from the catalog's stored pairs and decisions without writing anything to it
(``Engine.review()``), closes the catalog, then makes the thumbnails and pages. The report goes to ``--out`` or
``<catalog>.review/`` beside the catalog, never into a photo folder.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

from ..progress import terminal_progress
from ._output import plural, print_json, print_upkeep, shown_catalog
from ._shared import catalog_path, is_database_url, open_engine

if TYPE_CHECKING:
    from ..engine import RunReport

#: Groups per page of the report (review/__init__.PAGE_SIZE; repeated here so --help loads no Pillow).
PAGE_SIZE = 100


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("review", parents=[common],
                       help="write an HTML report of the duplicate groups (thumbnails, facts, decide commands)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder for the report (default: <catalog>.review/ beside the catalog)")
    p.add_argument("--open", action="store_true", help="open the report in the web browser")
    p.add_argument("--page-size", type=_positive, default=PAGE_SIZE, metavar="N",
                   help=f"groups per page (default {PAGE_SIZE})")
    p.add_argument("--json", action="store_true", help='print {"report": PATH, "groups": N, "pages": N}')
    p.set_defaults(handler=cmd_review)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


#: The older name of :func:`._output.shown_catalog` (how a report names its catalog).
shown_locator = shown_catalog


def default_out(catalog: Path) -> Path:
    """``<catalog>.review/`` beside the catalog (as its index is ``<catalog>.index/``)."""
    return catalog.with_name(catalog.name + ".review")


def cmd_review(args: argparse.Namespace) -> int:
    from ..review import ReviewError, write_review
    from ..review.model import human_bytes
    catalog = catalog_path(args)  # for a postgresql:// catalog: where its file would be
    locator = shown_catalog(args)
    if not is_database_url(locator) and not catalog.is_file():
        print(f"lumina-dedup: error: no catalog at {catalog}; run find-duplicates first", file=sys.stderr)
        return 1
    out = (args.out or default_out(catalog)).absolute()
    with terminal_progress(not args.json) as progress:
        with open_engine(args, progress) as engine:
            report: RunReport = engine.review()
            groups = report.as_json()["groups"]
            facts = {info.path: info for info in report.images.values()}
            missing = {"vanished": list(report.vanished), "unavailable": list(report.unavailable)}
        try:
            result = write_review(groups, out, locator, facts, progress, page_size=args.page_size)
        except ReviewError as exc:
            print(f"lumina-dedup: error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # a read-only disk beside the catalog, a full one...
            print(f"lumina-dedup: error: cannot write the report in {out}: {exc.strerror or exc}; "
                  f"choose another folder with --out", file=sys.stderr)
            return 1
    if args.json:
        print_json({**result.as_json(), **missing})
    else:
        print(result.index)
        print(f"{plural(result.groups, 'group')} on {plural(result.pages, 'page')}; "
              f"{human_bytes(result.savable_bytes)} could be saved", file=sys.stderr)
        print_upkeep(report)  # photos of the groups deleted or out of reach: left out of the report
    if args.open and not webbrowser.open(result.index.as_uri()):
        print(f"lumina-dedup: could not start a browser; open {result.index.as_uri()}", file=sys.stderr)
    return 0
