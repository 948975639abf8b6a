"""What the commands print: JSON on stdout, a run's report as text.

The text is for a person: each group's photos on stdout with what each copy is and what
to do with it, in words; the errors, a short summary, where the catalog is and what to
run next on stderr. Internal facts (hash distances, the search backend) only with ``-v``.
The JSON (``--json``) is for programs and is the whole report; per-file errors go to
stderr under it too, as the README says, so a script sees them without parsing.
Camera strings are shown as make and model only (decode/exif.py display_camera): no body
serial, nor its digest, in anything printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from ..engine import RunReport
    from ..grouping import Group
    from ..model import ImageInfo

#: Each relation to the keeper in plain words (grouping/relations.py RELATIONS).
RELATION_WORDS = {
    "exact": "exact copy (same bytes)",
    "derivative": "resized or re-encoded copy",
    "raw+jpeg": "the same shot as RAW and JPEG",
    "edit": "edited copy",
    "burst": "near-identical burst frame",
}


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    # One write of the whole text: json.dump to a stream writes each of its many small
    # pieces through sys.stdout (0.22-0.27 s of CPU for a 1,900-photo report, against
    # 0.03-0.05 s to build the same text with dumps).
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 group``, ``2 groups``, ``0 copies`` (``many``: the plural when not word + "s")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def shown_catalog(args: argparse.Namespace) -> str:
    """The catalog as output names it: the SQLite file's absolute path, or a ``postgresql://``
    URL without its password (output and reports are passed around; libpq finds the password
    in ~/.pgpass or $PGPASSWORD)."""
    from ._shared import catalog_path, is_database_url
    raw = str(args.catalog or "")
    if not is_database_url(raw):
        return str(catalog_path(args))
    parts = urlsplit(raw)
    if parts.password is None:
        return raw
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}@{host}"))


def command(*words: str) -> str:
    """A ``lumina-dedup`` command line to paste, named as the user ran this one (so a
    ``.venv/bin/lumina-dedup`` run suggests ``.venv/bin/lumina-dedup ...``), quoted for a shell."""
    prog = sys.argv[0] if os.path.basename(sys.argv[0]) == "lumina-dedup" else "lumina-dedup"
    return " ".join(shlex.quote(w) for w in (prog, *words))


def shown_path(path: str) -> str:
    """A photo's path as text output shows it: relative to the working folder when it lies
    inside it (as the user typed it, shorter), else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith(os.pardir) else rel


def human_bytes(n: int) -> str:
    """1234567 -> "1.2 MB" (decimal units, as file managers show them)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def private_free(data: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` report with each member's camera as make and model only."""
    from ..decode.exif import display_camera
    for group in data.get("groups", ()):
        for member in group.get("members", ()):
            member["camera"] = display_camera(member.get("camera"))
    return data


def print_errors(report: RunReport) -> None:
    """One ``error: PATH: message`` line per file that failed, on stderr."""
    for err in report.errors:
        print(f"error: {err.path}: {err.error}", file=sys.stderr)


def print_group(report: RunReport, group: Group, title: str, verbose: int = 0) -> None:
    """One group on stdout: the keeper and why, then each copy, its relation and the suggested action."""
    from ..grouping import ACTIONS
    keeper = report.images[group.keeper]
    print(f"{title} ({plural(len(group.members) + 1, 'photo')})")
    print(f"  keep  {shown_path(keeper.path)}")
    print(f"        why: {group.reason}")
    for m in group.members:
        what = RELATION_WORDS.get(m.relation, m.relation) + (f", {m.change}" if m.change else "")
        if verbose and m.kind != "exact":
            linked = f" by {', '.join(m.link.linked_by)}" if m.link else ""
            what += f", distance {m.distance}{linked}"
        print(f"  copy  {shown_path(report.images[m.index_id].path)}")
        print(f"        {what} - {ACTIONS[m.relation]}")


def print_report(report: RunReport, as_json: bool, catalog: str | None = None, verbose: int = 0) -> None:
    """A run's report: one JSON object, or its groups as text (see the module's docstring).
    ``catalog``: the catalog as the user names it, for the summary and the next commands."""
    print_errors(report)
    if as_json:
        print_json(private_free(report.as_json()))
        return
    for n, group in enumerate(report.groups, 1):
        print_group(report, group, f"Group {n} of {len(report.groups)}", verbose)
    if report.dry_run:
        _print_planned(report)
    s = report.summary()
    saved = sum(report.images[m.index_id].size_bytes for g in report.groups for m in g.members)
    found = (f"{plural(s['groups'], 'group')} of duplicates: {plural(s['duplicates'], 'copy', 'copies')}, "
             f"{human_bytes(saved)} that could be freed" if s["groups"] else "no duplicates")
    errors = plural(s["errors"], "error") + (" (listed above)" if s["errors"] else "")
    checked = (f" Checked {plural(s['files'], 'file')}: {s['hashed']} hashed, {s['unchanged']} unchanged, {errors}."
               if s["files"] or s["errors"] else "")  # a whole-catalog run given no paths checks none
    say(f"Found {found}.{checked}")
    print_upkeep(report)
    _print_written(report, catalog, s)
    if verbose and report.backend:
        say(f"search backend: {report.backend}")
    if catalog is not None and s["groups"] and report.dry_run:
        say("Next: run it again without --dry-run to write the tags.")
    elif catalog is not None and s["groups"]:
        say(f"Next: look at the groups with thumbnails:  {command('review', '--catalog', catalog)}")
        if s.get("tags_added") or s.get("tags_removed"):  # else undo would take back an earlier run
            say(f"      take this run's tags back:           {command('undo', '--catalog', catalog)}")


def print_upkeep(report: RunReport) -> None:
    """What the run found on disk about the photos of its groups: deleted, moved, out of reach."""
    def some(paths: list[str]) -> str:
        return ", ".join(shown_path(p) for p in paths[:3]) + (", ..." if len(paths) > 3 else "")

    if report.vanished:  # deleted from disk since they were catalogued
        done = "left out of the groups (dry run)" if report.dry_run else "taken out of the catalog"
        say(f"{plural(len(report.vanished), 'photo')} no longer on disk, {done}: {some(report.vanished)}")
    for old, new in report.moved:
        say(f"moved on disk: {shown_path(old)} -> {shown_path(new)} (its decisions and tags follow it)")
    if report.unavailable:
        say(f"{plural(len(report.unavailable), 'photo')} out of reach (a folder or disk that is not there "
            f"now?), left out of the groups and kept in the catalog: {some(report.unavailable)}; "
            f"if they were deleted: {command('forget', 'FOLDER')}")


def say(line: str) -> None:
    """A line for the person, on stderr."""
    print(line, file=sys.stderr)


def _print_written(report: RunReport, catalog: str | None, s: Mapping[str, Any]) -> None:
    where = f"the catalog {catalog}" if catalog else "the catalog"
    added, removed = s.get("tags_added", 0), s.get("tags_removed", 0)
    if report.dry_run:
        say(f"Dry run: nothing written to {where}; it would add {plural(added, 'tag')} "
            f"and remove {removed}.")
    elif added or removed:
        say(f"Tags written to {where}: {added} added, {removed} removed.")
    else:
        say(f"Nothing written: {where} already has these tags.")


def _print_planned(report: RunReport) -> None:
    """A dry run's tag changes, one line per photo."""
    for key, verb in (("add", "would tag  "), ("remove", "would untag")):
        by_path: dict[str, list[str]] = {}
        for row in report.changes()[key]:
            by_path.setdefault(row["path"], []).append(row["tag"])
        for path, tags in sorted(by_path.items()):
            print(f"{verb} {shown_path(path)}: {', '.join(tags)}")


def touched_groups(report: RunReport) -> tuple[list[Group], list[str]]:
    """What a decision changed: the groups now standing that hold a photo whose tags changed,
    and the keepers' paths of the groups that dissolved (no photo of theirs in a group now)."""
    diff = report.diff
    if diff is None:
        return [], []
    path_of = {info.id: info.path for info in report.images.values()}
    touched = {i for i, _ in (*diff.add_tags, *diff.remove_tags)}
    for row in (*diff.add_groups, *diff.remove_groups):
        touched |= {row.keeper_id, *(m[0] for m in row.members)}
    now = [g for g in report.groups if _ids(report.images, g) & touched]
    standing = set().union(*(_ids(report.images, g) for g in now))
    gone = [path_of.get(r.keeper_id, report.paths.get(r.keeper_id, r.keeper_id)) for r in diff.remove_groups
            if not {r.keeper_id, *(m[0] for m in r.members)} & standing]  # else rebuilt, shown above
    return now, gone


def _ids(images: Mapping[int, ImageInfo], group: Group) -> set[str]:
    return {images[i].id for i in (group.keeper, *(m.index_id for m in group.members))}


def print_decision(report: RunReport, as_json: bool, what: str, verbose: int = 0) -> None:
    """After ``decide``: only what changed (a library has thousands of groups), or with
    ``--json`` the groups that changed, the dissolved ones and the tag changes. ``what``:
    the decision in words ("Recorded: keeper P", "Withdrew decision 3")."""
    now, gone = touched_groups(report)
    s = report.summary()
    if as_json:
        print_json(private_free({"decision": what, "groups": [report.group_json(g) for g in now],
                                 "dissolved": [{"keeper": p} for p in gone],
                                 "summary": {k: s.get(k, 0) for k in
                                             ("tags_added", "tags_removed", "groups_added", "groups_removed")}}))
        return
    for n, group in enumerate(now, 1):
        print_group(report, group, "Group now" if len(now) == 1 else f"Changed group {n} of {len(now)}", verbose)
    for path in gone:
        print(f"Group dissolved (its keeper was {shown_path(path)})")
    if not now and not gone:
        say(f"{what}. No group changed.")
    else:
        say(f"{what}. {plural(len(now) + len(gone), 'group')} changed; tags "
            f"{s.get('tags_added', 0)} added, {s.get('tags_removed', 0)} removed.")


def paths_in_groups(report: RunReport, groups: Iterable[Group] | None = None) -> set[str]:
    """Every photo path in the report's groups (keepers and copies)."""
    return {report.images[i].path for g in (report.groups if groups is None else groups)
            for i in (g.keeper, *(m.index_id for m in g.members))}
