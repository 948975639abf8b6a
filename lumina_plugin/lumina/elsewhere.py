
"""Photos of a catalog that Lumina stored under another catalog (issue 20, item 5).

Lumina's image id is the file's SHA-256, unique across all catalogs, and its scan inserts
with ``ON CONFLICT (id) DO NOTHING``. So scanning photos that another catalog already holds
(the same folders, or byte copies of them) into a second catalog stores none of them, while
the scan job still counts them as added: that catalog looks empty to lumina-dedup, and our
groups silently lack those photos. Nothing in Lumina says so; this module does.

:func:`check_catalog` walks the catalog's ``source_directories`` and sorts every photo file
that has no ``images`` row in this catalog: stored under another catalog (found by its path,
else by its SHA-256), a byte copy of a photo this catalog already holds (Lumina keeps one row),
or not stored at all (not scanned yet, or failed). Only files without a row here are read,
and at most ``limit`` of them are hashed. :func:`scan_shortfall` is the cheap trigger the
listener and our scan-finished task use: a finished scan whose job counted more files added
than this catalog gained rows since the job began. :func:`describe` words a check for people
(``lumina-dedup lumina status``, the listener's log).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from ..files import sha256_of

#: Files hashed at most by one check (the rest are counted as unchecked): a second catalog of
#: 100,000 photos must not make ``status`` read them all.
HASH_LIMIT = 5000
#: Examples kept in a check's answer.
EXAMPLES = 5


def photo_files(roots: Iterable[str], extensions: Iterable[str]) -> tuple[list[str], list[str]]:
    """(photo files under ``roots``, sorted; the roots that are not folders here)."""
    exts = {e.lower() for e in extensions}
    found: list[str] = []
    missing: list[str] = []
    for root in roots:
        if not os.path.isdir(root):
            missing.append(root)
            continue
        for folder, _, names in os.walk(root):
            found += [os.path.join(folder, n) for n in names if os.path.splitext(n)[1].lower() in exts]
    return sorted(set(found)), missing


def check_catalog(conn: Any, catalog_id: str, extensions: Iterable[str], limit: int = HASH_LIMIT) -> dict[str, Any]:
    """Where the photos under this catalog's folders are stored (see the module docstring).

    Returns ``{catalog_id, catalog, roots, missing_roots, files, stored_here, elsewhere:
    {count, catalogs: [{id, name, count}], examples: [{path, catalog, stored_as}]},
    copies_here, not_stored, unchecked}``."""
    row = conn.execute("SELECT name, source_directories FROM catalogs WHERE id = %s", (catalog_id,)).fetchone()
    name, roots = (row[0], list(row[1] or [])) if row else ("?", [])
    files, missing_roots = photo_files(roots, extensions)
    here = {r[0] for r in conn.execute(
        "SELECT source_path FROM images WHERE catalog_id = %s AND source_path = ANY(%s)", (catalog_id, files))}
    absent = [f for f in files if f not in here]
    # The same path in another catalog: no need to read the file.
    owner: dict[str, tuple[str, str]] = {r[0]: (r[1], r[0]) for r in conn.execute(
        "SELECT DISTINCT ON (source_path) source_path, catalog_id::text FROM images"
        " WHERE catalog_id <> %s AND source_path = ANY(%s) ORDER BY source_path, created_at", (catalog_id, absent))}
    to_hash = [f for f in absent if f not in owner]
    sums = {f: s for f in to_hash[:limit] if (s := sha256_of(f)) is not None}
    rows = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT id, catalog_id::text, source_path FROM images WHERE id = ANY(%s)", (sorted(set(sums.values())),))}
    copies_here = 0
    not_stored = min(len(to_hash), limit) - len(sums)  # unreadable here
    for path, digest in sums.items():
        hit = rows.get(digest)
        if hit is None:
            not_stored += 1
        elif hit[0] == catalog_id:
            copies_here += 1
        else:
            owner[path] = hit
    names = dict(conn.execute("SELECT id::text, name FROM catalogs").fetchall())
    counts: dict[str, int] = {}
    for other, _ in owner.values():
        counts[other] = counts.get(other, 0) + 1
    examples = [{"path": p, "catalog": names.get(owner[p][0], owner[p][0]), "stored_as": owner[p][1]}
                for p in sorted(owner)[:EXAMPLES]]
    return {"catalog_id": catalog_id, "catalog": name, "roots": roots, "missing_roots": missing_roots,
            "files": len(files), "stored_here": len(here),
            "elsewhere": {"count": len(owner), "examples": examples,
                          "catalogs": [{"id": c, "name": names.get(c, c), "count": n}
                                       for c, n in sorted(counts.items(), key=lambda kv: -kv[1])]},
            "copies_here": copies_here, "not_stored": not_stored,
            "unchecked": max(0, len(to_hash) - limit)}


def describe(check: dict[str, Any]) -> list[str]:
    """A check in words, one line per finding; [] when every photo is stored in this catalog."""
    lines = []
    where = check["elsewhere"]
    if where["count"]:
        others = ", ".join(f"{c['name']} ({c['id']}): {c['count']}" for c in where["catalogs"])
        lines.append(
            f"catalog {check['catalog']}: {where['count']} of the {check['files']} photo(s) under its folders are"
            f" stored only in another Lumina catalog ({others}). Lumina keys images by SHA-256 across all"
            " catalogs, so its scan stored none of them here (its job still counts them as added) and"
            " lumina-dedup cannot group them in this catalog. Find duplicates in that catalog instead, or"
            " delete it in Lumina and scan again. E.g. " + where["examples"][0]["path"])
    if check["copies_here"]:
        lines.append(f"catalog {check['catalog']}: {check['copies_here']} photo file(s) are byte copies of photos"
                     " this catalog already holds: Lumina keeps one row per content, so they are not listed.")
    if check["unchecked"]:
        lines.append(f"catalog {check['catalog']}: {check['unchecked']} file(s) without a row here not checked"
                     f" (at most {HASH_LIMIT} are read per check).")
    if check["missing_roots"]:
        lines.append(f"catalog {check['catalog']}: folder(s) not readable from here, not checked: "
                     + ", ".join(check["missing_roots"]))
    return lines


def scan_shortfall(conn: Any, job_id: str) -> tuple[int, int] | None:
    """(files the scan job counted as added, rows its catalog gained since the job began), or
    None where the job reports no count. More added than gained: Lumina dropped some."""
    row = conn.execute("SELECT catalog_id::text, created_at, result FROM jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    result = row[2] if isinstance(row[2], dict) else json.loads(row[2] or "{}")
    added = (result.get("files") or {}).get("added") if isinstance(result, dict) else None
    if not isinstance(added, int):
        return None
    gained = conn.execute("SELECT count(*) FROM images WHERE catalog_id = %s AND created_at >= %s",
                          (row[0], row[1])).fetchone()[0]
    return added, int(gained)


def check_after_scan(conn: Any, catalog_id: str, job_id: str | None, extensions: Iterable[str]) -> dict[str, Any] | None:
    """After a finished scan: the catalog's check where its job counted more files added than
    the catalog gained rows, else None (the usual case costs one query)."""
    counts = scan_shortfall(conn, job_id) if job_id else None
    if counts is None or counts[0] <= counts[1]:
        return None
    check = check_catalog(conn, catalog_id, extensions)
    check["scan"] = {"job_id": job_id, "added": counts[0], "stored": counts[1]}
    return check
