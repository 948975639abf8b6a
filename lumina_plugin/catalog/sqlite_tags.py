"""The SQLite dialect of the tag store: tags, groups, runs and undo in the SQLite catalog.

A mixin of :class:`~lumina_plugin.catalog.sqlite.SqliteCatalog`. The logic (what a run
writes, the undo log, what undo restores) is :class:`~lumina_plugin.catalog.tag_store.TagStore`;
here are its row operations in SQLite's SQL, Lumina's ``tags``/``image_tags`` and
``duplicate_groups``/``duplicate_members`` layout (the keeper is a member row too). Rows are
written one at a time inside the run's transaction, passing the crash tests' fault point
after each.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from .._faults import crash_point
from ..model import GroupRow
from .sqlite_paths import from_db, to_db
from .tag_store import TAG_DESCRIPTION, TagRow, TagStore, UndoEntry, member_rows, stamp


def _crash(point: str) -> None:
    if point:
        crash_point(point)


class SqliteTags(TagStore):
    conn: sqlite3.Connection

    GROUP_LOG = "duplicate_groups"

    # -- reading ----------------------------------------------------------------------
    def _tag_rows(self) -> set[tuple[str, str]]:
        names = self._our_tag_names()
        return set(self.conn.execute(
            f"SELECT it.image_id, t.name FROM image_tags it JOIN tags t ON t.id=it.tag_id"
            f" WHERE t.catalog_id=? AND it.source=? AND t.name IN ({','.join('?' * len(names))})",
            (self.catalog_id, self.names.source, *names)).fetchall())

    def _stored_groups(self) -> list[tuple[int, GroupRow]]:
        # A keeper reason names a file, whose name may not be UTF-8: stored as sqlite_paths keeps paths.
        return member_rows([(*r[:4], r[4] if r[4] is None else from_db(r[4]), *r[5:]) for r in self.conn.execute(
            "SELECT g.id, g.primary_image_id, g.similarity_type, g.confidence, g.keeper_reason,"
            " m.image_id, m.relation, m.distance FROM duplicate_groups g LEFT JOIN duplicate_members m"
            " ON m.group_id=g.id AND m.image_id<>g.primary_image_id WHERE g.catalog_id=? ORDER BY g.id",
            (self.catalog_id,))])

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first."""
        cols = ("id", "kind", "started_at", "finished_at", "status", "changes")
        return [dict(zip(cols, r)) for r in self.conn.execute(
            f"SELECT {', '.join(cols)} FROM dedup_runs WHERE catalog_id=? ORDER BY id DESC LIMIT ?",
            (self.catalog_id, limit))]

    # -- row operations -----------------------------------------------------------------
    def _tag_ids(self) -> dict[str, int]:
        ids: dict[str, int] = {}
        for name in self._our_tag_names():
            parent = ids.get(self.names.parent)
            self.conn.execute(
                "INSERT INTO tags (catalog_id, name, category, parent_id, description, created_at)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT(catalog_id, name) DO NOTHING",
                (self.catalog_id, name, self.names.category, parent, TAG_DESCRIPTION, stamp()))
            ids[name] = self.conn.execute("SELECT id FROM tags WHERE catalog_id=? AND name=?",
                                          (self.catalog_id, name)).fetchone()[0]
        return ids

    def _delete_tags(self, pairs: Sequence[tuple[str, int]], crash: str = "") -> list[TagRow]:
        deleted: list[TagRow] = []
        for image_id, tag_id in pairs:  # (no DELETE ... RETURNING: SQLite before 3.35 lacks it)
            row = self.conn.execute("SELECT confidence, created_at FROM image_tags WHERE image_id=? AND tag_id=?",
                                    (image_id, tag_id)).fetchone()
            if row is not None:
                self.conn.execute("DELETE FROM image_tags WHERE image_id=? AND tag_id=?", (image_id, tag_id))
                deleted.append((image_id, tag_id, row[0], row[1]))
            _crash(crash)
        return deleted

    def _insert_tags(self, rows: Sequence[TagRow], crash: str = "") -> list[tuple[str, int]]:
        inserted: list[tuple[str, int]] = []
        for image_id, tag_id, confidence, created_at in rows:
            if self.conn.execute(
                    "INSERT INTO image_tags (image_id, tag_id, confidence, source, created_at)"
                    " SELECT ?,?,?,?,? WHERE EXISTS (SELECT 1 FROM images WHERE id=?)"
                    " ON CONFLICT(image_id, tag_id) DO NOTHING",
                    (image_id, tag_id, confidence, self.names.source, created_at, image_id)).rowcount:
                inserted.append((image_id, tag_id))
            _crash(crash)
        return inserted

    def _delete_groups(self, ids: Sequence[int], crash: str = "") -> None:
        for gid in ids:  # members go with their group (ON DELETE CASCADE)
            self.conn.execute("DELETE FROM duplicate_groups WHERE id=?", (gid,))
            _crash(crash)

    def _insert_groups(self, groups: Sequence[GroupRow], ids: Sequence[int] | None = None,
                       crash: str = "") -> list[int]:
        done: list[int] = []
        for group, gid in zip(groups, ids if ids is not None else [None] * len(groups)):
            photos = [group.keeper_id, *(m[0] for m in group.members)]
            if all(self.conn.execute("SELECT 1 FROM images WHERE id=?", (i,)).fetchone() for i in photos):
                done.append(self._insert_group(group, gid))
            _crash(crash)
        return done

    def _insert_group(self, group: GroupRow, gid: int | None) -> int:
        new_id = self.conn.execute(
            "INSERT INTO duplicate_groups (id, catalog_id, primary_image_id, similarity_type, confidence,"
            " reviewed, created_at, keeper_reason) VALUES (?,?,?,?,?,0,?,?)",
            (gid, self.catalog_id, group.keeper_id, group.similarity_type, group.confidence, stamp(),
             to_db(group.keeper_reason))).lastrowid
        rows = [(new_id, group.keeper_id, 100, "keeper", 0)]
        rows += [(new_id, image_id, max(0, 100 - distance * 100 // 64), relation, distance)
                 for image_id, relation, distance in group.members]
        self.conn.executemany(
            "INSERT INTO duplicate_members (group_id, image_id, similarity_score, relation, distance)"
            " VALUES (?,?,?,?,?)", rows)
        return int(new_id or 0)

    # -- runs and the undo log -------------------------------------------------------------
    def _start_run(self, kind: str, job_id: str | None) -> int:
        cur = self.conn.execute("INSERT INTO dedup_runs (catalog_id, kind, started_at, status)"
                                " VALUES (?,?,?,'running')", (self.catalog_id, kind, stamp()))
        return int(cur.lastrowid or 0)

    def _finish_run(self, run_id: int, log: list[UndoEntry], report: dict[str, Any], job_id: str | None) -> None:
        if job_id is not None:  # no column for it here: it goes into the report
            report = {**report, "job_id": job_id}
        self.conn.executemany(
            "INSERT INTO dedup_undo (run_id, seq, table_name, op, row) VALUES (?,?,?,?,?)",
            [(run_id, seq, t, op, json.dumps(row)) for seq, (t, op, row) in enumerate(log)])
        self.conn.execute("UPDATE dedup_runs SET finished_at=?, status='done', changes=?, report=? WHERE id=?",
                          (stamp(), len(log), json.dumps(report, default=str), run_id))

    def _last_run(self) -> tuple[int, str, str] | None:
        row = self.conn.execute(
            "SELECT id, kind, started_at FROM dedup_runs WHERE catalog_id=? AND status='done'"
            " AND changes>0 AND kind<>'undo' ORDER BY id DESC LIMIT 1", (self.catalog_id,)).fetchone()
        return None if row is None else (int(row[0]), row[1], row[2])

    def _undo_log(self, run_id: int) -> list[UndoEntry]:
        return [(t, op, json.loads(raw)) for t, op, raw in self.conn.execute(
            "SELECT table_name, op, row FROM dedup_undo WHERE run_id=? ORDER BY seq DESC", (run_id,))]

    def _mark_undone(self, run_id: int, changes: int) -> None:
        self.conn.execute("UPDATE dedup_runs SET status='undone' WHERE id=?", (run_id,))
        self.conn.execute(
            "INSERT INTO dedup_runs (catalog_id, kind, started_at, finished_at, status, changes, report)"
            " VALUES (?, 'undo', ?, ?, 'done', ?, ?)",
            (self.catalog_id, stamp(), stamp(), changes, json.dumps({"undone_run": run_id})))
