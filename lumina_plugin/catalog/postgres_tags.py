"""The PostgreSQL dialect of the tag store, and the decisions, in Lumina's database.

A mixin of :class:`~lumina_plugin.catalog.postgres.PostgresCatalog`. The logic (what a run
writes, the undo log, what undo restores) is :class:`~lumina_plugin.catalog.tag_store.TagStore`;
here are its row operations in PostgreSQL. Tags go into Lumina's own ``tags``/``image_tags``
(namespaced names, our ``source``, explicit ``created_at`` and ``confidence``, since Lumina's
defaults are client-side only); groups into our ``lumina_dedup_groups``/``_members``, copied (by
default; ``show_in_lumina``) into Lumina's ``duplicate_groups``/``duplicate_members`` for its
duplicates page, in the same transaction as every run, decision and undo. Every
statement is a set operation over arrays (``unnest``) or a COPY: a run costs a handful of round
trips, not one per row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from ..model import GroupRow, StoredFile
from .interface import CatalogError, check_decision
from .tag_store import TAG_DESCRIPTION, TagRow, TagStore, UndoEntry, member_rows, now


class PostgresTags(TagStore):
    conn: psycopg.Connection
    catalog_name: str
    show_in_lumina: bool

    GROUP_LOG = "groups"

    def stored_files(self, paths: Sequence[str]) -> dict[str, StoredFile]:
        raise NotImplementedError  # provided by the catalog

    # -- reading ----------------------------------------------------------------------
    def _tag_rows(self) -> set[tuple[str, str]]:
        return {(r[0], r[1]) for r in self.conn.execute(
            "SELECT it.image_id, t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id"
            " WHERE t.catalog_id = %s AND it.source = %s AND t.name = ANY(%s)",
            (self.catalog_id, self.names.source, self._our_tag_names()))}

    def _stored_groups(self) -> list[tuple[int, GroupRow]]:
        return member_rows(self.conn.execute(
            "SELECT g.id, g.keeper_id, g.similarity_type, g.confidence, g.keeper_reason,"
            " m.image_id, m.relation, m.distance FROM lumina_dedup_groups g"
            " LEFT JOIN lumina_dedup_members m ON m.group_id = g.id WHERE g.catalog_id = %s ORDER BY g.id",
            (self.catalog_id,)).fetchall())

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first."""
        cols = ("id", "kind", "started_at", "finished_at", "status", "changes", "job_id")
        return [dict(zip(cols, r)) for r in self.conn.execute(
            "SELECT id, kind, started_at, finished_at, status, changes, job_id FROM lumina_dedup_runs"
            " WHERE catalog_id = %s ORDER BY id DESC LIMIT %s", (self.catalog_id, limit))]

    # -- row operations -----------------------------------------------------------------
    def _tag_ids(self) -> dict[str, int]:
        """Our tags in Lumina's ``tags``, created on first use: the parent and one child per role."""
        names = self._our_tag_names()
        self.conn.execute(
            "INSERT INTO tags (catalog_id, name, category, description, created_at)"
            " SELECT %s, n, %s, %s, %s FROM unnest(%s::text[]) AS n ON CONFLICT (catalog_id, name) DO NOTHING",
            (self.catalog_id, self.names.category, TAG_DESCRIPTION, now(), names))
        ids = {r[0]: r[1] for r in self.conn.execute("SELECT name, id FROM tags WHERE catalog_id = %s AND name = ANY(%s)",
                                                     (self.catalog_id, names))}
        self.conn.execute("UPDATE tags SET parent_id = %s WHERE id = ANY(%s) AND parent_id IS NULL",
                          (ids[self.names.parent], [ids[n] for n in names[1:]]))
        return ids

    def _delete_tags(self, pairs: Sequence[tuple[str, int]], crash: str = "") -> list[TagRow]:
        if not pairs:
            return []
        return [(image_id, tag_id, conf, created.isoformat()) for image_id, tag_id, conf, created in self.conn.execute(
            "DELETE FROM image_tags it USING unnest(%s::text[], %s::int[]) AS x(image_id, tag_id)"
            " WHERE it.image_id = x.image_id AND it.tag_id = x.tag_id AND it.source = %s"
            " RETURNING it.image_id, it.tag_id, it.confidence, it.created_at",
            ([i for i, _ in pairs], [t for _, t in pairs], self.names.source)).fetchall()]

    def _insert_tags(self, rows: Sequence[TagRow], crash: str = "") -> list[tuple[str, int]]:
        if not rows:
            return []
        return [(r[0], r[1]) for r in self.conn.execute(
            "INSERT INTO image_tags (image_id, tag_id, confidence, source, created_at)"
            " SELECT x.image_id, x.tag_id, x.confidence, %s, x.created_at"
            " FROM unnest(%s::text[], %s::int[], %s::float8[], %s::timestamp[]) AS x(image_id, tag_id, confidence, created_at)"
            " WHERE EXISTS (SELECT 1 FROM images i WHERE i.id = x.image_id)"
            " ON CONFLICT (image_id, tag_id) DO NOTHING RETURNING image_id, tag_id",
            (self.names.source, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
             [datetime.fromisoformat(r[3]) for r in rows])).fetchall()]

    def _delete_groups(self, ids: Sequence[int], crash: str = "") -> None:
        if ids:
            self._delete_mirrors([r[0] for r in self.conn.execute(
                "DELETE FROM lumina_dedup_groups WHERE id = ANY(%s) RETURNING lumina_group_id", (list(ids),))
                if r[0] is not None])

    def _delete_mirrors(self, mirrors: list[int]) -> None:
        """Delete our copies in Lumina's ``duplicate_groups`` (never a group of Lumina's own)."""
        if mirrors:
            self.conn.execute("DELETE FROM duplicate_groups WHERE id = ANY(%s) AND catalog_id = %s",
                              (mirrors, self.catalog_id))

    def _insert_groups(self, groups: Sequence[GroupRow], ids: Sequence[int] | None = None,
                       crash: str = "") -> list[int]:
        if not groups:
            return []
        if ids is None:
            ids = [r[0] for r in self.conn.execute(
                "SELECT nextval(pg_get_serial_sequence('lumina_dedup_groups', 'id')) FROM generate_series(1, %s)",
                (len(groups),))]
        alive = {r[0] for r in self.conn.execute(
            "SELECT id FROM images WHERE id = ANY(%s)",
            ([i for g in groups for i in (g.keeper_id, *(m[0] for m in g.members))],))}
        keep = [(gid, g) for gid, g in zip(ids, groups)
                if g.keeper_id in alive and all(m[0] in alive for m in g.members)]
        if not keep:
            return []
        self.conn.execute(
            "INSERT INTO lumina_dedup_groups (id, catalog_id, keeper_id, similarity_type, confidence, keeper_reason,"
            " created_at) SELECT x.id, %s, x.keeper, x.stype, x.conf, x.reason, %s"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[]) AS x(id, keeper, stype, conf, reason)",
            (self.catalog_id, now(), [gid for gid, _ in keep], [g.keeper_id for _, g in keep],
             [g.similarity_type for _, g in keep], [g.confidence for _, g in keep], [g.keeper_reason for _, g in keep]))
        members = [(gid, *m) for gid, g in keep for m in g.members]
        if members:
            self.conn.execute(
                "INSERT INTO lumina_dedup_members (group_id, image_id, relation, distance)"
                " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[])",
                tuple(map(list, zip(*members))))
        return [gid for gid, _ in keep]

    # -- runs and the undo log -------------------------------------------------------------
    def _start_run(self, kind: str, job_id: str | None) -> int:
        row = self.conn.execute(
            "INSERT INTO lumina_dedup_runs (catalog_id, kind, started_at, status, job_id)"
            " VALUES (%s, %s, %s, 'running', %s) RETURNING id", (self.catalog_id, kind, now(), job_id)).fetchone()
        assert row is not None
        return int(row[0])

    def _finish_run(self, run_id: int, log: list[UndoEntry], report: dict[str, Any], job_id: str | None) -> None:
        with self.conn.cursor().copy("COPY lumina_dedup_undo (run_id, seq, table_name, op, row) FROM STDIN") as cp:
            for seq, (table, op, row) in enumerate(log):
                cp.write_row((run_id, seq, table, op, json.dumps(row)))
        self.conn.execute(
            "UPDATE lumina_dedup_runs SET finished_at = %s, status = 'done', changes = %s, report = %s::jsonb"
            " WHERE id = %s", (now(), len(log), json.dumps(report, default=str), run_id))

    def _last_run(self) -> tuple[int, str, str] | None:
        row = self.conn.execute(
            "SELECT id, kind, started_at FROM lumina_dedup_runs WHERE catalog_id = %s AND status = 'done'"
            " AND changes > 0 AND kind <> 'undo' ORDER BY id DESC LIMIT 1 FOR UPDATE", (self.catalog_id,)).fetchone()
        return None if row is None else (int(row[0]), row[1], row[2].isoformat())

    def _undo_log(self, run_id: int) -> list[UndoEntry]:
        return [(t, op, data) for t, op, data in self.conn.execute(
            "SELECT table_name, op, row FROM lumina_dedup_undo WHERE run_id = %s ORDER BY seq DESC", (run_id,))]

    def _mark_undone(self, run_id: int, changes: int) -> None:
        self.conn.execute("UPDATE lumina_dedup_runs SET status = 'undone' WHERE id = %s", (run_id,))
        self.conn.execute(
            "INSERT INTO lumina_dedup_runs (catalog_id, kind, started_at, finished_at, status, changes, report)"
            " VALUES (%s, 'undo', %s, %s, 'done', %s, %s::jsonb)",
            (self.catalog_id, now(), now(), changes, json.dumps({"undone_run": run_id})))

    def _changed(self) -> None:
        self.sync_lumina_groups()

    # -- Lumina's own duplicates page -----------------------------------------------------
    def sync_lumina_groups(self) -> int:
        """Make Lumina's ``duplicate_groups`` hold a copy of each of our groups (show_in_lumina),
        or none of them (off). Copies Lumina's own duplicate job deleted are written again;
        Lumina's own groups are never touched. Returns how many rows were written or removed."""
        if not self.show_in_lumina:
            mirrors = [r[0] for r in self.conn.execute(
                "SELECT lumina_group_id FROM lumina_dedup_groups WHERE catalog_id = %s"
                " AND lumina_group_id IS NOT NULL", (self.catalog_id,))]
            if mirrors:
                self._delete_mirrors(mirrors)
                self.conn.execute("UPDATE lumina_dedup_groups SET lumina_group_id = NULL WHERE catalog_id = %s",
                                  (self.catalog_id,))
            return len(mirrors)
        todo = self.conn.execute(
            "SELECT g.id, g.keeper_id, g.similarity_type, g.confidence FROM lumina_dedup_groups g"
            " LEFT JOIN duplicate_groups l ON l.id = g.lumina_group_id AND l.primary_image_id = g.keeper_id"
            " WHERE g.catalog_id = %s AND l.id IS NULL ORDER BY g.id", (self.catalog_id,)).fetchall()
        if not todo:
            return 0
        new_ids = [r[0] for r in self.conn.execute(
            "SELECT nextval(pg_get_serial_sequence('duplicate_groups', 'id')) FROM generate_series(1, %s)", (len(todo),))]
        self.conn.execute(
            "INSERT INTO duplicate_groups (id, catalog_id, primary_image_id, similarity_type, confidence, reviewed,"
            " created_at) SELECT x.id, %s, x.keeper, x.stype, x.conf, false, %s"
            " FROM unnest(%s::int[], %s::text[], %s::text[], %s::int[]) AS x(id, keeper, stype, conf)",
            (self.catalog_id, now(), new_ids, [r[1] for r in todo], [r[2] for r in todo], [r[3] for r in todo]))
        self.conn.execute(
            "INSERT INTO duplicate_members (group_id, image_id, similarity_score)"
            " SELECT x.lid, x.keeper, 100 FROM unnest(%s::int[], %s::text[]) AS x(lid, keeper)"
            " UNION ALL SELECT x.lid, m.image_id, GREATEST(0, 100 - m.distance * 100 / 64)"
            " FROM unnest(%s::int[], %s::bigint[]) AS x(lid, gid) JOIN lumina_dedup_members m ON m.group_id = x.gid",
            (new_ids, [r[1] for r in todo], new_ids, [r[0] for r in todo]))
        self.conn.execute(
            "UPDATE lumina_dedup_groups g SET lumina_group_id = x.lid FROM unnest(%s::bigint[], %s::int[]) AS x(gid, lid)"
            " WHERE g.id = x.gid", ([r[0] for r in todo], new_ids))
        return len(todo)

    # -- decisions ----------------------------------------------------------------------
    def add_decision(self, kind: str, paths: Sequence[str]) -> int:
        """Remember a person's decision about photos we hashed; returns its id."""
        check_decision(kind, paths)
        with self._transaction():
            stored = self.stored_files(paths)
            missing = [p for p in paths if p not in stored or not stored[p].index_id]
            if missing:
                raise CatalogError(f"{missing[0]}: not in Lumina catalog {self.catalog_name}, or not hashed yet")
            ids = sorted(stored[p].id for p in paths)
            if kind == "keeper":
                ids = [ids[0], ids[0]]
            self.conn.execute(
                "INSERT INTO lumina_dedup_decisions (catalog_id, kind, image_1, image_2, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", (self.catalog_id, kind, *ids, now()))
            row = self.conn.execute(
                "SELECT id FROM lumina_dedup_decisions WHERE catalog_id = %s AND kind = %s AND image_1 = %s"
                " AND image_2 = %s", (self.catalog_id, kind, *ids)).fetchone()
        assert row is not None
        return int(row[0])

    def decisions(self) -> list[dict[str, Any]]:
        """Every decision with the photos' index ids and paths, oldest first."""
        keys = ("id", "kind", "created_at", "index_1", "index_2", "path_1", "path_2")
        return [dict(zip(keys, r)) for r in self.conn.execute(
            "SELECT d.id, d.kind, d.created_at, x.index_id, y.index_id, a.source_path, b.source_path"
            " FROM lumina_dedup_decisions d JOIN images a ON a.id = d.image_1 JOIN images b ON b.id = d.image_2"
            " JOIN lumina_dedup_images x ON x.image_id = d.image_1 JOIN lumina_dedup_images y ON y.image_id = d.image_2"
            " WHERE d.catalog_id = %s ORDER BY d.id", (self.catalog_id,))]

    def forget_decision(self, decision_id: int) -> bool:
        """Withdraw a decision; False if there is none with that id."""
        with self._transaction():
            return self.conn.execute("DELETE FROM lumina_dedup_decisions WHERE id = %s AND catalog_id = %s",
                                     (decision_id, self.catalog_id)).rowcount > 0
