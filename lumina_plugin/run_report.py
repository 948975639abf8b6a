"""What a run did: :class:`RunReport`, the ``--json`` output of every command that groups.

Kept apart from the engine (which fills it) so the engine stays about the pipeline; the engine
re-exports it (``from lumina_plugin.engine import RunReport`` keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .decode.exif import display_camera
from .files import FileError
from .grouping import ACTIONS, Group
from .model import ImageInfo
from .tagging import TagDiff


@dataclass
class RunReport:
    """What a run did; ``as_json`` is the ``--json`` output."""

    kind: str
    dry_run: bool = False
    files: int = 0
    hashed: int = 0
    unchanged: int = 0
    errors: list[FileError] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    images: dict[int, ImageInfo] = field(default_factory=dict)
    diff: TagDiff | None = None
    run_id: int | None = None
    #: Image id -> path for the images a dry run's changes touch.
    paths: dict[str, str] = field(default_factory=dict)
    #: The search backend that found the pairs ("mih", "faiss", "gpu"...), when one ran.
    backend: str | None = None
    #: Seconds per phase of this run ("search", "group", "write tags"...), in the order they ran.
    timings: dict[str, float] = field(default_factory=dict)
    #: The host's job this run belongs to (a Lumina jobs row, a scan): stored with the run.
    job_id: str | None = None
    #: The geometric search's counts: candidates, accepted on their words, looked at, accepted by a look.
    geometric: dict[str, int] = field(default_factory=dict)
    #: Catalogued photos of the groups that are no longer on disk: left out of the groups (and,
    #: unless a dry run or the review, taken out of the catalog; see ``freshness.py``).
    vanished: list[str] = field(default_factory=list)
    #: (old path, new path) of the photos found again elsewhere by their content: they keep
    #: their rows, decisions and tags (a dry run only shows it).
    moved: list[tuple[str, str]] = field(default_factory=list)
    #: Catalogued photos of the groups that cannot be seen now (their folder is gone: an unplugged
    #: disk, an unmounted share; or a stat failed): left out of the groups, kept in the catalog.
    unavailable: list[str] = field(default_factory=list)
    #: Index ids hashed in this run (fresh: not checked on disk again), and of those the
    #: photos new to the catalog (where a vanished photo may have moved to).
    hashed_ids: set[int] = field(default_factory=set, repr=False)
    new_ids: set[int] = field(default_factory=set, repr=False)

    def changes(self) -> dict[str, list[dict[str, str]]]:
        """The tag changes of a dry run, by path, as ``--json`` shows them."""
        diff = self.diff or TagDiff((), (), (), ())
        return {key: [{"path": self.paths.get(i, i), "tag": t} for i, t in rows]
                for key, rows in (("add", diff.add_tags), ("remove", diff.remove_tags))}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files": self.files, "hashed": self.hashed, "unchanged": self.unchanged,
            "errors": len(self.errors), "groups": len(self.groups),
            "duplicates": sum(len(g.members) for g in self.groups), "dry_run": self.dry_run,
        }
        if self.diff is not None:
            out.update(self.diff.summary())
        if self.backend is not None:
            out["search_backend"] = self.backend
        if self.geometric:
            out["geometric"] = self.geometric
        out["vanished"], out["moved"], out["unavailable"] = len(self.vanished), len(self.moved), len(self.unavailable)
        return out

    def member_json(self, index_id: int, **fields: Any) -> dict[str, Any]:
        info = self.images[index_id]
        taken = (datetime.fromtimestamp(info.taken_ts, UTC).replace(tzinfo=None).isoformat()
                 if info.taken_ts is not None else None)
        return {"path": info.path, **fields, "width": info.width, "height": info.height,
                "format": info.format, "size_bytes": info.size_bytes, "camera": display_camera(info.camera),
                "taken_at": taken}

    def group_json(self, group: Group) -> dict[str, Any]:
        keeper = self.images[group.keeper]
        members = [self.member_json(group.keeper, kind="exact", relation="keeper", distance=0, role="keeper")]
        for m in group.members:
            entry = self.member_json(m.index_id, kind=m.kind, relation=m.relation, action=ACTIONS[m.relation],
                                     distance=m.distance, role="duplicate")
            if m.change:
                entry["change"] = m.change
            if m.link is not None:
                entry["hashes"] = m.link.as_json()
            members.append(entry)
        return {"id": keeper.id, "keeper": keeper.path, "reason": group.reason,
                "similarity_type": group.similarity_type, "confidence": group.confidence,
                "savable_bytes": sum(self.images[m.index_id].size_bytes for m in group.members),
                "members": members}

    def as_json(self) -> dict[str, Any]:
        out = {"groups": [self.group_json(g) for g in self.groups],
               "errors": [e.as_json() for e in self.errors],
               "summary": self.summary()}
        out["vanished"] = list(self.vanished)
        out["moved"] = [{"from": a, "to": b} for a, b in self.moved]
        out["unavailable"] = list(self.unavailable)
        if self.dry_run:
            out["changes"] = self.changes()
        return out
