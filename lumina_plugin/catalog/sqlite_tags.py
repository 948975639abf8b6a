"""Tags, duplicate groups, runs and undo in the SQLite catalog.

A mixin of :class:`~lumina_plugin.catalog.sqlite.SqliteCatalog`, split out because it
is the write side of tagging: it applies a :class:`~lumina_plugin.tagging.TagDiff` in
one transaction and logs each row it inserts or deletes, so :meth:`undo_last` can
put the catalog back exactly as it was before that run.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from typing import Any

from .._faults import crash_point
from ..config import TagNames
from ..model import GroupRow, TagDiff, TagState


def now() -> str:
    """Naive UTC, as Lumina stores timestamps."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


class TagStore:
    conn: sqlite3.Connection
    catalog_id: str
    names: TagNames

    def _transaction(self) -> Any: ...  # provided by the catalog

    # -- reading ----------------------------------------------------------------------
    def _our_tag_names(self) -> list[str]:
        return [self.names.parent, *self.names.roles().values()]

    def tag_state(self) -> TagState:
        names = self._our_tag_names()
        marks = ",".join("?" * len(names))
        tags = frozenset(self.conn.execute(
            f"SELECT it.image_id, t.name FROM image_tags it JOIN tags t ON t.id=it.tag_id"
            f" WHERE t.catalog_id=? AND it.source=? AND t.name IN ({marks})",
            (self.catalog_id, self.names.source, *names)).fetchall())
        groups = []
        for gid, keeper, stype, conf, reason in self.conn.execute(
                "SELECT id, primary_image_id, similarity_type, confidence, keeper_reason"
                " FROM duplicate_groups WHERE catalog_id=? ORDER BY id", (self.catalog_id,)).fetchall():
            members = tuple(sorted(self.conn.execute(
                "SELECT image_id, relation, distance FROM duplicate_members WHERE group_id=? AND image_id<>?",
                (gid, keeper)).fetchall()))
            groups.append(GroupRow(keeper, stype, conf, reason or "", members))
        return TagState(image_tags=tags, groups=tuple(sorted(groups, key=lambda g: g.key())))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        cols = ("id", "kind", "started_at", "finished_at", "status", "changes")
        return [dict(zip(cols, r)) for r in self.conn.execute(
            f"SELECT {', '.join(cols)} FROM dedup_runs WHERE catalog_id=? ORDER BY id DESC LIMIT ?",
            (self.catalog_id, limit))]

    # -- writing ----------------------------------------------------------------------
    def _tag_ids(self) -> dict[str, int]:
        """Our tags, created on first use: the parent and one child per role."""
        ids: dict[str, int] = {}
        for name in self._our_tag_names():
            parent = ids.get(self.names.parent)
            self.conn.execute(
                "INSERT INTO tags (catalog_id, name, category, parent_id, description, created_at)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT(catalog_id, name) DO NOTHING",
                (self.catalog_id, name, self.names.category, parent,
                 "Written by lumina-dedup", now()))
            ids[name] = self.conn.execute("SELECT id FROM tags WHERE catalog_id=? AND name=?",
                                          (self.catalog_id, name)).fetchone()[0]
        return ids

    def apply_tag_diff(self, diff: TagDiff, kind: str, report: dict[str, Any], job_id: str | None = None) -> int:
        """Apply ``diff`` and record the run, all in one transaction; returns the run id.
        ``job_id`` (the host's job) is kept in the run's report."""
        if job_id is not None:
            report = {**report, "job_id": job_id}
        with self._transaction():
            started = now()
            run_id = self.conn.execute(
                "INSERT INTO dedup_runs (catalog_id, kind, started_at, status) VALUES (?,?,?,'running')",
                (self.catalog_id, kind, started)).lastrowid
            log: list[tuple[str, str, dict[str, Any]]] = []
            tag_ids = self._tag_ids() if len(diff) else {}
            for image_id, name in diff.remove_tags:
                row = self.conn.execute(
                    "SELECT confidence, created_at FROM image_tags WHERE image_id=? AND tag_id=?",
                    (image_id, tag_ids[name])).fetchone()
                self.conn.execute("DELETE FROM image_tags WHERE image_id=? AND tag_id=?",
                                  (image_id, tag_ids[name]))
                log.append(("image_tags", "delete", {"image_id": image_id, "tag": name,
                                                      "confidence": row[0], "created_at": row[1]}))
            for image_id, name in diff.add_tags:
                self._insert_tag(image_id, tag_ids[name], 1.0, now())
                log.append(("image_tags", "insert", {"image_id": image_id, "tag": name}))
                crash_point("inside-tags")
            for group in diff.remove_groups:
                gid = self._group_id(group)
                if gid is not None:
                    self.conn.execute("DELETE FROM duplicate_groups WHERE id=?", (gid,))
                    log.append(("duplicate_groups", "delete", {"id": gid, **_group_json(group)}))
            for group in diff.add_groups:
                gid = self._insert_group(group)
                log.append(("duplicate_groups", "insert", {"id": gid}))
            self.conn.executemany(
                "INSERT INTO dedup_undo (run_id, seq, table_name, op, row) VALUES (?,?,?,?,?)",
                [(run_id, seq, t, op, json.dumps(row)) for seq, (t, op, row) in enumerate(log)])
            self.conn.execute(
                "UPDATE dedup_runs SET finished_at=?, status='done', changes=?, report=? WHERE id=?",
                (now(), len(log), json.dumps(report, default=str), run_id))
        return int(run_id)

    def undo_last(self) -> dict[str, Any] | None:
        """Reverse the most recent run that changed something; None if there is none."""
        with self._transaction():
            row = self.conn.execute(
                "SELECT id, kind, started_at FROM dedup_runs WHERE catalog_id=? AND status='done'"
                " AND changes>0 AND kind<>'undo' ORDER BY id DESC LIMIT 1", (self.catalog_id,)).fetchone()
            if row is None:
                return None
            run_id, kind, started = row
            tag_ids = self._tag_ids()
            entries = self.conn.execute(
                "SELECT table_name, op, row FROM dedup_undo WHERE run_id=? ORDER BY seq DESC",
                (run_id,)).fetchall()
            removed: list[tuple[str, str]] = []
            restored: list[tuple[str, str]] = []
            for table, op, raw in entries:
                crash_point("inside-undo")
                data = json.loads(raw)
                if table == "image_tags" and op == "insert":
                    self.conn.execute("DELETE FROM image_tags WHERE image_id=? AND tag_id=?",
                                      (data["image_id"], tag_ids[data["tag"]]))
                    removed.append((data["image_id"], data["tag"]))
                elif table == "image_tags":
                    if self._image_exists(data["image_id"]):
                        self._insert_tag(data["image_id"], tag_ids[data["tag"]],
                                         data["confidence"], data["created_at"])
                        restored.append((data["image_id"], data["tag"]))
                elif op == "insert":
                    self.conn.execute("DELETE FROM duplicate_groups WHERE id=?", (data["id"],))
                else:
                    group = _group_from_json(data)
                    ids = [group.keeper_id, *(m[0] for m in group.members)]
                    if all(self._image_exists(i) for i in ids):
                        # Same id as before, so undoing an earlier run still finds it.
                        self._insert_group(group, data.get("id"))
            self.conn.execute("UPDATE dedup_runs SET status='undone' WHERE id=?", (run_id,))
            self.conn.execute(
                "INSERT INTO dedup_runs (catalog_id, kind, started_at, finished_at, status, changes, report)"
                " VALUES (?, 'undo', ?, ?, 'done', ?, ?)",
                (self.catalog_id, now(), now(), len(entries), json.dumps({"undone_run": run_id})))
        return {"undone_run": run_id, "kind": kind, "started_at": started, "changes_reversed": len(entries),
                "tags_removed": removed, "tags_restored": restored}

    def _insert_tag(self, image_id: str, tag_id: int, confidence: float, created_at: str) -> None:
        self.conn.execute(
            "INSERT INTO image_tags (image_id, tag_id, confidence, source, created_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(image_id, tag_id) DO NOTHING",
            (image_id, tag_id, confidence, self.names.source, created_at))

    def _image_exists(self, image_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone() is not None

    def _group_id(self, group: GroupRow) -> int | None:
        for (gid,) in self.conn.execute(
                "SELECT id FROM duplicate_groups WHERE catalog_id=? AND primary_image_id=?",
                (self.catalog_id, group.keeper_id)).fetchall():
            members = tuple(sorted(self.conn.execute(
                "SELECT image_id, relation, distance FROM duplicate_members WHERE group_id=? AND image_id<>?",
                (gid, group.keeper_id)).fetchall()))
            if members == tuple(sorted(group.members)):
                return int(gid)
        return None

    def _insert_group(self, group: GroupRow, gid: int | None = None) -> int:
        gid = self.conn.execute(
            "INSERT INTO duplicate_groups (id, catalog_id, primary_image_id, similarity_type, confidence,"
            " reviewed, created_at, keeper_reason) VALUES (?,?,?,?,?,0,?,?)",
            (gid, self.catalog_id, group.keeper_id, group.similarity_type, group.confidence, now(),
             group.keeper_reason)).lastrowid
        rows = [(gid, group.keeper_id, 100, "keeper", 0)]
        rows += [(gid, image_id, max(0, 100 - distance * 100 // 64), relation, distance)
                 for image_id, relation, distance in group.members]
        self.conn.executemany(
            "INSERT INTO duplicate_members (group_id, image_id, similarity_score, relation, distance)"
            " VALUES (?,?,?,?,?)", rows)
        return int(gid)


def _group_json(group: GroupRow) -> dict[str, Any]:
    return {"keeper_id": group.keeper_id, "similarity_type": group.similarity_type,
            "confidence": group.confidence, "keeper_reason": group.keeper_reason,
            "members": [list(m) for m in group.members]}


def _group_from_json(data: dict[str, Any]) -> GroupRow:
    return GroupRow(data["keeper_id"], data["similarity_type"], int(data["confidence"]),
                    data["keeper_reason"], tuple(tuple(m) for m in data["members"]))  # type: ignore[misc]
