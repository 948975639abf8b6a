"""Tags, duplicate groups, runs and undo: the logic both catalogs share, over two SQL dialects.

:class:`TagStore` applies a :class:`~lumina_plugin.model.TagDiff` in one transaction and logs
each row it inserts or deletes (the undo log), so :meth:`TagStore.undo_last` can put the
catalog back exactly as it was before that run. What differs between the embedded SQLite
file and Lumina's PostgreSQL database is only how rows are read and written: each dialect
(:class:`~lumina_plugin.catalog.sqlite_tags.SqliteTags`,
:class:`~lumina_plugin.catalog.postgres_tags.PostgresTags`) implements the small set of
``_``-prefixed set operations below; the undo log's format, the group JSON and the order of
the steps are here, once.

An undo log entry is ``(table, op, row)``: ``("image_tags", "insert", {image_id, tag})``,
``("image_tags", "delete", {image_id, tag, confidence, created_at})``, and for groups
``(GROUP_LOG, "insert", {id})`` or ``(GROUP_LOG, "delete", {id, **group_json})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from ..config import TagNames
from ..model import GroupRow, TagDiff, TagState

#: Marks the tags we created (their ``description``), so uninstall removes only those.
TAG_DESCRIPTION = "Written by lumina-dedup"

#: (table, op, row) of the undo log.
UndoEntry = tuple[str, str, dict[str, Any]]
#: (image id, tag id, confidence, created_at as ISO text): one ``image_tags`` row.
TagRow = tuple[str, int, float, str]


def now() -> datetime:
    """Naive UTC, as Lumina stores timestamps (the SQLite catalog stores its ISO text)."""
    return datetime.now(UTC).replace(tzinfo=None)


def stamp() -> str:
    """:func:`now` as the ISO text the SQLite catalog and the undo log store."""
    return now().isoformat(timespec="microseconds")


def group_json(group: GroupRow) -> dict[str, Any]:
    """A group as the undo log keeps it."""
    return {"keeper_id": group.keeper_id, "similarity_type": group.similarity_type,
            "confidence": group.confidence, "keeper_reason": group.keeper_reason,
            "members": [list(m) for m in group.members]}


def group_from_json(data: dict[str, Any]) -> GroupRow:
    """The group an undo log entry holds (see :func:`group_json`)."""
    members = tuple((str(m[0]), str(m[1]), int(m[2])) for m in data["members"])
    return GroupRow(data["keeper_id"], data["similarity_type"], int(data["confidence"]),
                    data["keeper_reason"], members)


def member_rows(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, GroupRow]]:
    """Groups from rows ``(id, keeper, similarity_type, confidence, reason, member, relation,
    distance)`` (one per member, member None for a group without any), as ``(id, GroupRow)``."""
    heads: dict[Any, tuple[Any, ...]] = {}
    members: dict[Any, list[tuple[str, str, int]]] = {}
    for gid, keeper, stype, conf, reason, image_id, relation, distance in rows:
        heads[gid] = (keeper, stype, conf, reason)
        if image_id is not None:
            members.setdefault(gid, []).append((image_id, relation, distance))
    return [(gid, GroupRow(h[0], h[1], h[2], h[3] or "", tuple(sorted(members.get(gid, [])))))
            for gid, h in heads.items()]


class TagStore:
    """The tag side of a catalog: a mixin of both catalog classes (see the module docstring)."""

    catalog_id: str
    names: TagNames
    #: The undo log's table name for group rows (each dialect kept its own; both are read).
    GROUP_LOG = "groups"

    # -- what each dialect provides ----------------------------------------------------------
    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _tag_rows(self) -> set[tuple[str, str]]:
        """(image id, tag name) of our tags in this catalog."""
        raise NotImplementedError

    def _stored_groups(self) -> list[tuple[int, GroupRow]]:
        """Our groups as stored, with their ids."""
        raise NotImplementedError

    def _tag_ids(self) -> dict[str, int]:
        """Our tags, created on first use: the parent and one child per role."""
        raise NotImplementedError

    def _delete_tags(self, pairs: Sequence[tuple[str, int]], crash: str = "") -> list[TagRow]:
        """Delete these (image id, tag id) rows; returns the rows deleted. ``crash``: a fault
        point to pass after each row (the dialects that write a row at a time)."""
        raise NotImplementedError

    def _insert_tags(self, rows: Sequence[TagRow], crash: str = "") -> list[tuple[str, int]]:
        """Insert image tags of images that still exist; returns (image id, tag id) of those inserted."""
        raise NotImplementedError

    def _delete_groups(self, ids: Sequence[int], crash: str = "") -> None:
        raise NotImplementedError

    def _insert_groups(self, groups: Sequence[GroupRow], ids: Sequence[int] | None = None,
                       crash: str = "") -> list[int]:
        """Insert groups whose photos all still exist (with these ids, else new ones); returns the ids."""
        raise NotImplementedError

    def _start_run(self, kind: str, job_id: str | None) -> int:
        raise NotImplementedError

    def _finish_run(self, run_id: int, log: list[UndoEntry], report: dict[str, Any], job_id: str | None) -> None:
        """Write the run's undo log and mark it done with its report."""
        raise NotImplementedError

    def _last_run(self) -> tuple[int, str, str] | None:
        """(id, kind, started_at as ISO text) of the latest run that changed something, not undone."""
        raise NotImplementedError

    def _undo_log(self, run_id: int) -> list[UndoEntry]:
        """The run's undo log, last entry first."""
        raise NotImplementedError

    def _mark_undone(self, run_id: int, changes: int) -> None:
        """Mark the run undone and record the undo as a run of its own."""
        raise NotImplementedError

    def _changed(self) -> None:
        """Called inside the transaction after tags or groups changed (PostgreSQL: Lumina's copies)."""

    # -- shared -------------------------------------------------------------------------------
    def _our_tag_names(self) -> list[str]:
        return [self.names.parent, *self.names.roles().values()]

    def tag_state(self) -> TagState:
        """Our tags and groups as the catalog holds them now."""
        groups = sorted((g for _, g in self._stored_groups()), key=lambda g: g.key())
        return TagState(image_tags=frozenset(self._tag_rows()), groups=tuple(groups))

    def apply_tag_diff(self, diff: TagDiff, kind: str, report: dict[str, Any], job_id: str | None = None) -> int:
        """Apply ``diff`` and record the run, all in one transaction; returns the run id.
        ``job_id``: the host's job the run belongs to, kept with the run."""
        with self._transaction():
            run_id = self._start_run(kind, job_id)
            log: list[UndoEntry] = []
            tag_ids = self._tag_ids() if len(diff) else {}
            name_of = {v: k for k, v in tag_ids.items()}
            if diff.remove_tags:
                for image_id, tag_id, confidence, created in self._delete_tags(
                        [(i, tag_ids[n]) for i, n in diff.remove_tags]):
                    log.append(("image_tags", "delete", {"image_id": image_id, "tag": name_of[tag_id],
                                                         "confidence": confidence, "created_at": created}))
            if diff.add_tags:
                created = stamp()
                for image_id, tag_id in self._insert_tags([(i, tag_ids[n], 1.0, created) for i, n in diff.add_tags],
                                                          crash="inside-tags"):
                    log.append(("image_tags", "insert", {"image_id": image_id, "tag": name_of[tag_id]}))
            if diff.remove_groups:
                stored = {g.key(): gid for gid, g in self._stored_groups()}
                gone = [(stored[g.key()], g) for g in diff.remove_groups if g.key() in stored]
                self._delete_groups([gid for gid, _ in gone])
                log += [(self.GROUP_LOG, "delete", {"id": gid, **group_json(g)}) for gid, g in gone]
            if diff.add_groups:
                log += [(self.GROUP_LOG, "insert", {"id": gid}) for gid in self._insert_groups(diff.add_groups)]
            self._finish_run(run_id, log, report, job_id)
            self._changed()
        return run_id

    def undo_last(self) -> dict[str, Any] | None:
        """Reverse the most recent run that changed something; None if there is none.

        Rows of photos deleted since are not restored. Returns the run undone and the
        (image id, tag) pairs removed and restored (XMP sidecars follow them)."""
        with self._transaction():
            last = self._last_run()
            if last is None:
                return None
            run_id, kind, started = last
            entries = self._undo_log(run_id)
            tag_ids = self._tag_ids()
            name_of = {v: k for k, v in tag_ids.items()}
            tags = [(op, d) for t, op, d in entries if t == "image_tags"]
            groups = [(op, d) for t, op, d in entries if t != "image_tags"]
            removed = [(d["image_id"], d["tag"]) for op, d in tags if op == "insert"]
            self._delete_tags([(i, tag_ids[n]) for i, n in removed], crash="inside-undo")
            restored = self._insert_tags([(d["image_id"], tag_ids[d["tag"]], d["confidence"], d["created_at"])
                                          for op, d in tags if op == "delete"], crash="inside-undo")
            self._delete_groups([d["id"] for op, d in groups if op == "insert"], crash="inside-undo")
            # Same ids as before, so undoing an earlier run still finds them.
            back = [d for op, d in groups if op == "delete"]
            self._insert_groups([group_from_json(d) for d in back], [d["id"] for d in back], crash="inside-undo")
            self._mark_undone(run_id, len(entries))
            self._changed()
        return {"undone_run": run_id, "kind": kind, "started_at": started, "changes_reversed": len(entries),
                "tags_removed": removed, "tags_restored": [(i, name_of[t]) for i, t in restored]}
