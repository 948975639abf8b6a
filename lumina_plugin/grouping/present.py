"""Are the photos of the groups still on disk, as catalogued? A stat of each group member.

The catalog remembers photos; the disk is the truth. Before a run shows or writes its groups,
the engine asks this module about the photos in them (only those: one ``stat`` per member,
never a walk of the library) and learns which are

- **vanished**: no file at the path any more (deleted, or moved away). Advice built on them
  would be wrong in the worst way: "keep" a photo that is gone and "remove" its last copies.
- **moved**: vanished, but a photo new to the catalog in this run has the same content
  (SHA-256 checksum): the same photo under another path. Byte-identical copies always share
  a group, so the new path is found among the vanished photo's own group; photos that were
  catalogued before are never taken for a move (they are copies that were always there).
- **changed**: the file's size or mtime differ from its row: rewritten in place, to rehash.
- **unreachable**: the stat failed otherwise (permission, I/O error), or the photo's folder is
  gone too (an unplugged disk, an unmounted share, a renamed folder): it may exist, so it is
  left out of this run's groups but kept in the catalog, decisions and all (``forget`` takes a
  folder that was really deleted out).

What is done about it (remove, move, rehash; a dry run and the review only leave them out) is
the engine's (:meth:`lumina_plugin.engine.Engine._regroup`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..model import ImageInfo, StoredFile
from .groups import Group

#: How often a run regroups after fixing what it found: each round fixes every member it
#: found wrong, and a later round only sees members that a new grouping brought in.
ROUNDS = 4

#: stat errors that mean "no file there": anything else may be a file we cannot see now.
_GONE = (errno.ENOENT, errno.ENOTDIR)


@dataclass
class Stale:
    """The group members that differ from the disk, by index id (see the module docstring)."""

    vanished: list[int] = field(default_factory=list)
    #: vanished index id -> index id of the same content new in this run (its new path).
    moves: dict[int, int] = field(default_factory=dict)
    changed: list[int] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)
    #: The members that are on disk as catalogued: not checked again in a later round.
    fine: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.vanished or self.moves or self.changed or self.unreachable)


def members(groups: Iterable[Group]) -> list[int]:
    """Index ids of every photo in ``groups``, keepers included."""
    return sorted({i for g in groups for i in (g.keeper, *(m.index_id for m in g.members))})


def on_disk(path: str) -> os.stat_result | None | OSError:
    """The file's stat; None when there is no file (or not a regular one); the error when the
    stat failed for another reason (the file may exist)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno not in _GONE:
            return exc
        # A file deleted from a folder that is still there is gone. A folder that is gone too
        # is as likely a disk that is not mounted now: taking its photos (and the decisions on
        # them) out of the catalog would lose a library to an unplugged cable.
        folder = os.path.dirname(path)
        if folder and not os.path.isdir(folder):
            return FileNotFoundError(exc.errno, "its folder is not there (an unplugged disk?)", folder)
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def find_stale(groups: Sequence[Group], images: Mapping[int, ImageInfo],
               stored: Callable[[list[str]], dict[str, StoredFile]],
               skip: Collection[int] = (), new_ids: Collection[int] = ()) -> Stale:
    """Stat the members of ``groups`` (but those in ``skip``: hashed in this run or already
    checked) and compare them with their stored rows (``stored``: ``Catalog.stored_files``).

    ``new_ids``: photos new to the catalog in this run, where a vanished photo may have moved.
    Ids below zero (a dry run's photos, not stored) are never checked: they were just hashed.
    """
    out = check_photos(members(groups), images, stored, skip)
    out.moves = _moves(groups, images, out.vanished, new_ids)
    out.vanished = [i for i in out.vanished if i not in out.moves]
    return out


def check_photos(ids: Iterable[int], images: Mapping[int, ImageInfo],
                 stored: Callable[[list[str]], dict[str, StoredFile]], skip: Collection[int] = ()) -> Stale:
    """Stat these catalogued photos (index ids in ``images``, but those in ``skip`` or below
    zero): which are gone, changed, unreachable, or on disk as catalogued (no moves here)."""
    out = Stale()
    todo = [i for i in ids if i >= 0 and i not in skip and i in images]
    rows = stored([images[i].path for i in todo]) if todo else {}
    for i in todo:
        info = images[i]
        st = on_disk(info.path)
        row = rows.get(info.path)
        if st is None:
            out.vanished.append(i)
        elif isinstance(st, OSError):
            out.unreachable.append(i)
        elif row is not None and (st.st_size != row.size_bytes or st.st_mtime_ns != row.mtime_ns):
            out.changed.append(i)
        else:
            out.fine.add(i)
    return out


def _moves(groups: Sequence[Group], images: Mapping[int, ImageInfo], vanished: Sequence[int],
           new_ids: Collection[int]) -> dict[int, int]:
    """Each vanished photo paired with a photo of the same checksum new in this run, in its group
    (one new path per vanished photo, by path order on both sides)."""
    gone = set(vanished)
    moves: dict[int, int] = {}
    for group in groups:
        ids = [group.keeper, *(m.index_id for m in group.members)]
        lost = sorted((i for i in ids if i in gone), key=lambda i: images[i].path)
        if not lost:
            continue
        found = sorted((i for i in ids if i in new_ids and i not in gone), key=lambda i: images[i].path)
        for old in lost:
            match = next((n for n in found if images[n].checksum == images[old].checksum), None)
            if match is not None:
                moves[old] = match
                found.remove(match)
    return moves
