"""What one card of the review shows: the groups JSON made complete, sorted and totalled.

The groups come from ``RunReport.as_json()["groups"]``. Facts the JSON may not carry
yet (resolution, format, size, camera, date, relation, group id, space saved) are
taken from the run's :class:`ImageInfo` rows, else from the file itself, else shown
as unknown: the report never fails for a missing field.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..decode.exif import display_camera
from ..model import ImageInfo

#: How each relation is named on a card (relation classes: issue 10, item 6).
RELATION_LABELS = {
    "keeper": "keeper", "exact": "exact copy", "near": "near copy", "derivative": "derivative",
    "raw+jpeg": "RAW+JPEG pair", "edit": "edit", "burst": "burst sibling",
}


@dataclass(frozen=True)
class MemberView:
    """One photo of a group, with every fact a card shows (None: unknown)."""

    path: str
    role: str  # "keeper" or "duplicate"
    kind: str  # "exact" (byte-identical) or "near"
    relation: str
    action: str | None
    distance: int
    distances: Mapping[str, int]
    linked_by: tuple[str, ...]
    width: int | None
    height: int | None
    format: str | None
    size_bytes: int | None
    camera: str | None
    taken_at: str | None
    #: What changed for a turned, bordered or cropped copy ("rotated 90, letterboxed").
    change: str = ""

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def relation_label(self) -> str:
        return RELATION_LABELS.get(self.relation, self.relation)


@dataclass(frozen=True)
class GroupView:
    """One group: its keeper, its exact copies and its near copies, set apart."""

    id: str
    rank: int  # 1-based position after sorting by space saved
    keeper: MemberView
    reason: str
    similarity_type: str
    confidence: int | None
    exact: tuple[MemberView, ...]
    near: tuple[MemberView, ...]
    savable_bytes: int

    @property
    def members(self) -> tuple[MemberView, ...]:
        return (self.keeper, *self.exact, *self.near)


def _iso_from_ts(ts: float | None) -> str | None:
    # taken_ts counts seconds on the camera's clock as if it were UTC (model.py).
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _size_on_disk(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def member_view(m: Mapping[str, Any], info: ImageInfo | None) -> MemberView:
    """A member of the groups JSON, its missing facts filled from ``info`` or the file."""
    def fact(key: str, attr: str | None = None) -> Any:
        if m.get(key) is not None:
            return m[key]
        return getattr(info, attr or key, None) if info is not None else None

    hashes = m.get("hashes") or {}
    role = m.get("role", "duplicate")
    size = fact("size_bytes")
    if size is None:
        size = _size_on_disk(m["path"])
    taken = m["taken_at"] if m.get("taken_at") else _iso_from_ts(info.taken_ts if info else None)
    return MemberView(
        path=m["path"], role=role, kind=m.get("kind", "near"),
        relation=m.get("relation") or ("keeper" if role == "keeper" else m.get("kind", "near")),
        action=m.get("action"), distance=int(m.get("distance") or 0),
        distances=dict(hashes.get("distances") or {}), linked_by=tuple(hashes.get("linked_by") or ()),
        width=fact("width"), height=fact("height"), format=fact("format"), size_bytes=size,
        camera=display_camera(fact("camera")), taken_at=taken, change=str(m.get("change") or ""))


def group_id(paths: Iterable[str]) -> str:
    """A stable id from the member paths, for groups whose JSON has none."""
    return hashlib.sha1("\0".join(sorted(paths)).encode("utf-8", "surrogatepass")).hexdigest()[:12]


def group_views(groups: Iterable[Mapping[str, Any]], facts: Mapping[str, ImageInfo]) -> list[GroupView]:
    """Every group as a card, the most space to save first (ties: keeper path)."""
    staged = []
    for g in groups:
        members = [member_view(m, facts.get(m["path"])) for m in g["members"]]
        keeper = next((m for m in members if m.role == "keeper" or m.path == g["keeper"]), members[0])
        others = sorted((m for m in members if m is not keeper), key=lambda m: (m.distance, m.path))
        saved = g.get("savable_bytes")
        if saved is None:
            saved = sum(m.size_bytes or 0 for m in others)
        staged.append((int(saved), keeper, others, g))
    staged.sort(key=lambda s: (-s[0], s[1].path))
    return [GroupView(
        id=str(g.get("id") or group_id(m["path"] for m in g["members"])), rank=rank, keeper=keeper,
        reason=g.get("reason", ""), similarity_type=g.get("similarity_type", ""),
        confidence=g.get("confidence"), savable_bytes=saved,
        exact=tuple(m for m in others if m.kind == "exact"),
        near=tuple(m for m in others if m.kind != "exact"))
        for rank, (saved, keeper, others, g) in enumerate(staged, 1)]


def totals(groups: Iterable[GroupView]) -> dict[str, int]:
    """Counts and bytes for the report's header."""
    out = {"groups": 0, "exact": 0, "near": 0, "savable_bytes": 0, "exact_bytes": 0}
    for g in groups:
        out["groups"] += 1
        out["exact"] += len(g.exact)
        out["near"] += len(g.near)
        out["savable_bytes"] += g.savable_bytes
        out["exact_bytes"] += sum(m.size_bytes or 0 for m in g.exact)
    return out


def not_duplicate_command(a: str, b: str, catalog: str) -> str:
    """The shell command that records "a and b are not duplicates" (quoted for POSIX shells)."""
    return f"lumina-dedup decide not-duplicate {shlex.quote(a)} {shlex.quote(b)} --catalog {shlex.quote(catalog)}"


def keeper_command(path: str, catalog: str) -> str:
    """The shell command that makes ``path`` the keeper of its group."""
    return f"lumina-dedup decide keeper {shlex.quote(path)} --catalog {shlex.quote(catalog)}"


def human_bytes(n: int | None) -> str:
    """1234567 -> "1.2 MB" (decimal units, as file managers show them)."""
    if n is None:
        return "size unknown"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover
