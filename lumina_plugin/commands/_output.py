"""What the commands print: JSON on stdout, a run's report as text (its errors and summary on stderr)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine import RunReport


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_report(report: RunReport, as_json: bool) -> None:
    """A run's report: one JSON object, or its groups as text (errors and a summary on stderr)."""
    if as_json:
        print_json(report.as_json())
        return
    for n, group in enumerate(report.groups, 1):
        keeper = report.images[group.keeper]
        print(f"Group {n} ({group.similarity_type}, {len(group.members) + 1} files)")
        print(f"  keep  {keeper.path}")
        print(f"        because: {group.reason}")
        for m in group.members:
            info = report.images[m.index_id]
            how = "exact copy" if m.kind == "exact" else \
                f"{m.relation}, distance {m.distance} ({', '.join(m.link.linked_by) if m.link else ''})"
            if m.change:
                how += f": {m.change}"
            print(f"  {'=' if m.kind == 'exact' else '~'}     {info.path}  [{how}]")
    if report.dry_run:
        planned = report.changes()
        for key in ("add", "remove"):
            for row in planned[key]:
                print(f"would {key:6} {row['tag']:26} {row['path']}")
    for err in report.errors:
        print(f"error: {err.path}: {err.error}", file=sys.stderr)
    s = report.summary()
    tail = "dry run: nothing written" if report.dry_run else "written to the catalog"
    changes = (f"tags +{s.get('tags_added', 0)} -{s.get('tags_removed', 0)}, "
               f"groups +{s.get('groups_added', 0)} -{s.get('groups_removed', 0)}")
    print(f"{s['groups']} groups, {s['duplicates']} duplicates; {s['files']} files seen, {s['hashed']} hashed, "
          f"{s['unchanged']} unchanged, {s['errors']} errors; {changes} ({tail})", file=sys.stderr)
    if report.backend:
        print(f"search backend: {report.backend}", file=sys.stderr)
