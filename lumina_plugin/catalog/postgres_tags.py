"""Tags, groups, decisions, runs and undo of the PostgreSQL catalog.

A mixin of :class:`~lumina_plugin.catalog.postgres.PostgresCatalog`. Tags go into Lumina's
own ``tags``/``image_tags`` (namespaced names, our ``source``, explicit ``created_at`` and
``confidence``, since Lumina's defaults are client-side only); groups into our
``lumina_dedup_groups``/``_members``, optionally mirrored into Lumina's
``duplicate_groups``/``duplicate_members`` for its duplicates page. Each run's row changes
are logged so :meth:`undo_last` can reverse them. Every statement is a set operation over
arrays (``unnest``) or a COPY: a run costs a handful of round trips, not one per row.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

import psycopg

from ..config import TagNames
from .interface import DECISIONS, CatalogError, check_decision
from ..model import GroupRow, TagDiff, TagState


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def member_score(distance: int) -> int:
    """Lumina's 0-100 similarity of a member to its keeper, from our Hamming distance."""
    return max(0, 100 - int(distance) * 100 // 64)


class PgTagStore:
    conn: psycopg.Connection
    catalog_id: str
    catalog_name: str
    names: TagNames
    show_in_lumina: bool

    #: Marks the tags we created, so uninstall removes only those.
    TAG_DESCRIPTION = "Written by lumina-dedup"
    DECISIONS = DECISIONS

    def _transaction(self) -> Any: ...  # provided by the catalog

    def stored_files(self, paths: Sequence[str]) -> Any: ...  # provided by the catalog

    # -- reading ----------------------------------------------------------------------
    def _our_tag_names(self) -> list[str]:
        return [self.names.parent, *self.names.roles().values()]

    def _groups(self) -> list[tuple[int, GroupRow, int | None]]:
        """Our stored groups: (id, row, id of its copy in Lumina's duplicate_groups)."""
        rows = self.conn.execute(
            "SELECT g.id, g.keeper_id, g.similarity_type, g.confidence, g.keeper_reason, g.lumina_group_id,"
            " m.image_id, m.relation, m.distance FROM lumina_dedup_groups g"
            " LEFT JOIN lumina_dedup_members m ON m.group_id = g.id WHERE g.catalog_id = %s ORDER BY g.id",
            (self.catalog_id,)).fetchall()
        heads: dict[int, tuple[Any, ...]] = {}
        members: dict[int, list[tuple[str, str, int]]] = {}
        for gid, keeper, stype, conf, reason, mirror, image_id, relation, distance in rows:
            heads[gid] = (keeper, stype, conf, reason, mirror)
            if image_id is not None:
                members.setdefault(gid, []).append((image_id, relation, distance))
        return [(gid, GroupRow(h[0], h[1], h[2], h[3] or "", tuple(sorted(members.get(gid, [])))), h[4])
                for gid, h in heads.items()]

    def tag_state(self) -> TagState:
        tags = frozenset((r[0], r[1]) for r in self.conn.execute(
            "SELECT it.image_id, t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id"
            " WHERE t.catalog_id = %s AND it.source = %s AND t.name = ANY(%s)",
            (self.catalog_id, self.names.source, self._our_tag_names())))
        groups = sorted((g for _, g, _ in self._groups()), key=lambda g: g.key())
        return TagState(image_tags=tags, groups=tuple(groups))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        cols = ("id", "kind", "started_at", "finished_at", "status", "changes", "job_id")
        return [dict(zip(cols, r)) for r in self.conn.execute(
            "SELECT id, kind, started_at, finished_at, status, changes, job_id FROM lumina_dedup_runs"
            " WHERE catalog_id = %s ORDER BY id DESC LIMIT %s", (self.catalog_id, limit))]

    # -- writing ----------------------------------------------------------------------
    def _tag_ids(self) -> dict[str, int]:
        """Our tags in Lumina's ``tags``, created on first use: the parent and one child per role."""
        names = self._our_tag_names()
        self.conn.execute(
            "INSERT INTO tags (catalog_id, name, category, description, created_at)"
            " SELECT %s, n, %s, %s, %s FROM unnest(%s::text[]) AS n ON CONFLICT (catalog_id, name) DO NOTHING",
            (self.catalog_id, self.names.category, self.TAG_DESCRIPTION, _now(), names))
        ids = dict(self.conn.execute("SELECT name, id FROM tags WHERE catalog_id = %s AND name = ANY(%s)",  # type: ignore[arg-type]
                                     (self.catalog_id, names)).fetchall())
        self.conn.execute("UPDATE tags SET parent_id = %s WHERE id = ANY(%s) AND parent_id IS NULL",
                          (ids[self.names.parent], [ids[n] for n in names[1:]]))
        return ids

    def apply_tag_diff(self, diff: TagDiff, kind: str, report: dict[str, Any], job_id: str | None = None) -> int:
        """Apply ``diff`` and record the run, all in one transaction; returns the run id."""
        with self._transaction():
            run_id = self.conn.execute(
                "INSERT INTO lumina_dedup_runs (catalog_id, kind, started_at, status, job_id)"
                " VALUES (%s, %s, %s, 'running', %s) RETURNING id", (self.catalog_id, kind, _now(), job_id)
            ).fetchone()[0]  # type: ignore[index]
            log: list[tuple[str, str, dict[str, Any]]] = []
            tag_ids = self._tag_ids() if len(diff) else {}
            name_of = {v: k for k, v in tag_ids.items()}
            if diff.remove_tags:
                for image_id, tag_id, conf, created in self.conn.execute(
                        "DELETE FROM image_tags it USING unnest(%s::text[], %s::int[]) AS x(image_id, tag_id)"
                        " WHERE it.image_id = x.image_id AND it.tag_id = x.tag_id AND it.source = %s"
                        " RETURNING it.image_id, it.tag_id, it.confidence, it.created_at",
                        ([i for i, _ in diff.remove_tags], [tag_ids[n] for _, n in diff.remove_tags],
                         self.names.source)).fetchall():
                    log.append(("image_tags", "delete", {"image_id": image_id, "tag": name_of[tag_id],
                                                          "confidence": conf, "created_at": created.isoformat()}))
            if diff.add_tags:
                for image_id, tag_id in self._insert_tags([(i, tag_ids[n], 1.0, _now()) for i, n in diff.add_tags]):
                    log.append(("image_tags", "insert", {"image_id": image_id, "tag": name_of[tag_id]}))
            if diff.remove_groups:
                stored = {g.key(): (gid, mirror) for gid, g, mirror in self._groups()}
                gone = [stored[g.key()] + (g,) for g in diff.remove_groups if g.key() in stored]
                self._delete_groups([gid for gid, _, _ in gone], [m for _, m, _ in gone if m is not None])
                log += [("groups", "delete", {"id": gid, **_group_json(g)}) for gid, _, g in gone]
            if diff.add_groups:
                log += [("groups", "insert", {"id": gid}) for gid in self._insert_groups(diff.add_groups)]
            with self.conn.cursor().copy("COPY lumina_dedup_undo (run_id, seq, table_name, op, row) FROM STDIN") as cp:
                for seq, (table, op, row) in enumerate(log):
                    cp.write_row((run_id, seq, table, op, json.dumps(row)))
            self.conn.execute(
                "UPDATE lumina_dedup_runs SET finished_at = %s, status = 'done', changes = %s, report = %s::jsonb"
                " WHERE id = %s", (_now(), len(log), json.dumps(report, default=str), run_id))
            self.sync_lumina_groups()
        return int(run_id)

    def undo_last(self) -> dict[str, Any] | None:
        """Reverse the most recent run that changed something; None if there is none."""
        with self._transaction():
            row = self.conn.execute(
                "SELECT id, kind, started_at FROM lumina_dedup_runs WHERE catalog_id = %s AND status = 'done'"
                " AND changes > 0 AND kind <> 'undo' ORDER BY id DESC LIMIT 1 FOR UPDATE", (self.catalog_id,)).fetchone()
            if row is None:
                return None
            run_id, kind, started = row
            entries = [(t, op, data) for t, op, data in self.conn.execute(
                "SELECT table_name, op, row FROM lumina_dedup_undo WHERE run_id = %s ORDER BY seq DESC", (run_id,))]
            tag_ids = self._tag_ids()
            drop = [(d["image_id"], tag_ids[d["tag"]]) for t, op, d in entries if t == "image_tags" and op == "insert"]
            if drop:
                self.conn.execute(
                    "DELETE FROM image_tags it USING unnest(%s::text[], %s::int[]) AS x(image_id, tag_id)"
                    " WHERE it.image_id = x.image_id AND it.tag_id = x.tag_id AND it.source = %s",
                    ([i for i, _ in drop], [t for _, t in drop], self.names.source))
            self._insert_tags([(d["image_id"], tag_ids[d["tag"]], d["confidence"], datetime.fromisoformat(d["created_at"]))
                               for t, op, d in entries if t == "image_tags" and op == "delete"])
            added = [d["id"] for t, op, d in entries if t == "groups" and op == "insert"]
            mirrors = [r[0] for r in self.conn.execute(
                "SELECT lumina_group_id FROM lumina_dedup_groups WHERE id = ANY(%s) AND lumina_group_id IS NOT NULL",
                (added,))]
            self._delete_groups(added, mirrors)
            # Same ids as before, so undoing an earlier run still finds them.
            self._insert_groups([_group_from_json(d) for t, op, d in entries if t == "groups" and op == "delete"],
                                [d["id"] for t, op, d in entries if t == "groups" and op == "delete"])
            self.conn.execute("UPDATE lumina_dedup_runs SET status = 'undone' WHERE id = %s", (run_id,))
            self.conn.execute(
                "INSERT INTO lumina_dedup_runs (catalog_id, kind, started_at, finished_at, status, changes, report)"
                " VALUES (%s, 'undo', %s, %s, 'done', %s, %s::jsonb)",
                (self.catalog_id, _now(), _now(), len(entries), json.dumps({"undone_run": run_id})))
            self.sync_lumina_groups()
        return {"undone_run": run_id, "kind": kind, "started_at": started.isoformat(),
                "changes_reversed": len(entries)}

    def _insert_tags(self, rows: list[tuple[str, int, float, datetime]]) -> list[tuple[str, int]]:
        """Insert image tags of images that still exist; returns those actually inserted."""
        if not rows:
            return []
        return [(r[0], r[1]) for r in self.conn.execute(
            "INSERT INTO image_tags (image_id, tag_id, confidence, source, created_at)"
            " SELECT x.image_id, x.tag_id, x.confidence, %s, x.created_at"
            " FROM unnest(%s::text[], %s::int[], %s::float8[], %s::timestamp[]) AS x(image_id, tag_id, confidence, created_at)"
            " WHERE EXISTS (SELECT 1 FROM images i WHERE i.id = x.image_id)"
            " ON CONFLICT (image_id, tag_id) DO NOTHING RETURNING image_id, tag_id",
            (self.names.source, *map(list, zip(*rows)))).fetchall()]

    def _delete_groups(self, ids: list[int], mirrors: list[int]) -> None:
        if mirrors:
            self.conn.execute("DELETE FROM duplicate_groups WHERE id = ANY(%s) AND catalog_id = %s",
                              (mirrors, self.catalog_id))
        if ids:
            self.conn.execute("DELETE FROM lumina_dedup_groups WHERE id = ANY(%s)", (ids,))

    def _insert_groups(self, groups: Sequence[GroupRow], ids: Sequence[int] | None = None) -> list[int]:
        """Insert groups whose photos all still exist (with these ids, else new ones); returns the ids."""
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
            (self.catalog_id, _now(), [gid for gid, _ in keep], [g.keeper_id for _, g in keep],
             [g.similarity_type for _, g in keep], [g.confidence for _, g in keep], [g.keeper_reason for _, g in keep]))
        members = [(gid, *m) for gid, g in keep for m in g.members]
        if members:
            self.conn.execute(
                "INSERT INTO lumina_dedup_members (group_id, image_id, relation, distance)"
                " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[])",
                tuple(map(list, zip(*members))))
        return [gid for gid, _ in keep]

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
                self._delete_groups([], mirrors)
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
            (self.catalog_id, _now(), new_ids, [r[1] for r in todo], [r[2] for r in todo], [r[3] for r in todo]))
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
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", (self.catalog_id, kind, *ids, _now()))
            row = self.conn.execute(
                "SELECT id FROM lumina_dedup_decisions WHERE catalog_id = %s AND kind = %s AND image_1 = %s"
                " AND image_2 = %s", (self.catalog_id, kind, *ids)).fetchone()
        return int(row[0])  # type: ignore[index]

    def decisions(self) -> list[dict[str, Any]]:
        """Every decision with the photos' index ids and paths, oldest first."""
        keys = ("id", "kind", "created_at", "index_1", "index_2", "path_1", "path_2")
        return [dict(zip(keys, r)) for r in self.conn.execute(
            "SELECT d.id, d.kind, d.created_at, x.index_id, y.index_id, a.source_path, b.source_path"
            " FROM lumina_dedup_decisions d JOIN images a ON a.id = d.image_1 JOIN images b ON b.id = d.image_2"
            " JOIN lumina_dedup_images x ON x.image_id = d.image_1 JOIN lumina_dedup_images y ON y.image_id = d.image_2"
            " WHERE d.catalog_id = %s ORDER BY d.id", (self.catalog_id,))]

    def forget_decision(self, decision_id: int) -> bool:
        with self._transaction():
            return self.conn.execute("DELETE FROM lumina_dedup_decisions WHERE id = %s AND catalog_id = %s",
                                     (decision_id, self.catalog_id)).rowcount > 0


def _group_json(group: GroupRow) -> dict[str, Any]:
    return {"keeper_id": group.keeper_id, "similarity_type": group.similarity_type,
            "confidence": group.confidence, "keeper_reason": group.keeper_reason,
            "members": [list(m) for m in group.members]}


def _group_from_json(data: dict[str, Any]) -> GroupRow:
    return GroupRow(data["keeper_id"], data["similarity_type"], int(data["confidence"]),
                    data["keeper_reason"], tuple(tuple(m) for m in data["members"]))  # type: ignore[misc]
