"""inotify seen from ``/proc``: the watch limit, and which folders an observer really watches.

inotify needs one watch per *folder*. When ``fs.inotify.max_user_watches`` runs out,
watchdog 6 and later silently skip the folders it could not watch (commit ad0d055), and
every release skips a folder created later that it cannot watch: photos landing there
would never be seen. :func:`inotify_budget` counts the folders first and compares with
the limit (minus the watches this user already holds), so the watcher can say so and
poll instead.

watchdog before 7.1 also leaves a folder moved in from outside the watch, or renamed
before its watch was added, unwatched. The kernel lists every watch of an inotify
instance in ``/proc/self/fdinfo`` (inode and device), so :func:`read_fdinfo` and
:func:`unwatched_in` tell, without any private watchdog API, whether a folder is watched.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_INOTIFY = "anon_inode:inotify"


@dataclass(frozen=True)
class InotifyBudget:
    """Folders to watch against the user's inotify watch limit."""

    folders: int
    limit: int | None  # None: not Linux, or unreadable
    in_use: int

    @property
    def free(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.in_use)

    def fits(self) -> bool:
        return self.free is None or self.folders <= self.free

    def message(self) -> str:
        need = self.folders + self.in_use
        return (f"inotify cannot watch all {self.folders} folders: fs.inotify.max_user_watches is {self.limit} "
                f"and {self.in_use} watches are already in use by this user; watchdog would miss photos in "
                f"the folders left over, so the watcher polls instead (slower to notice). To use inotify, "
                f"raise the limit: sudo sysctl fs.inotify.max_user_watches={max(need * 2, 524288)}")


def count_folders(roots: Iterable[str], follow_symlinks: bool = False) -> int:
    """Folders under ``roots``, the roots included: the inotify watches a recursive watch needs."""
    total = 0
    for root in roots:
        for _ in os.walk(root, followlinks=follow_symlinks):
            total += 1
    return total


def max_user_watches() -> int | None:
    """``/proc/sys/fs/inotify/max_user_watches``, or None where there is no such file."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None


def watches_in_use() -> int:
    """inotify watches held by this user's processes (best effort, from ``/proc/*/fdinfo``)."""
    uid, total = os.getuid(), 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != _INOTIFY:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    total += sum(1 for line in fh if line.startswith("inotify wd:"))
            except OSError:
                continue
    return total


def inotify_budget(roots: Iterable[str], limit: int | None = None) -> InotifyBudget:
    """Whether inotify can watch every folder under ``roots``; ``limit`` overrides the
    system's value (tests, or a host that knows better)."""
    limit = max_user_watches() if limit is None else limit
    in_use = watches_in_use() if limit is not None else 0
    return InotifyBudget(count_folders(roots), limit, in_use)


# -- which folders are watched -------------------------------------------------------------
def own_inotify_fds() -> set[int]:
    """This process's inotify file descriptors (empty where there is no ``/proc``)."""
    out: set[int] = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return out
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}") == _INOTIFY:
                out.add(int(name))
        except (OSError, ValueError):
            continue
    return out


def read_fdinfo(fds: Iterable[int]) -> str | None:
    """The fdinfo text of ``fds`` (one line per watch), or None when none can be read
    (one closed meanwhile is left out)."""
    parts = []
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}") as fh:
                parts.append(fh.read())
        except OSError:
            continue
    return "\n".join(parts) if parts else None


def folder_key(path: str) -> str | None:
    """How a watch on folder ``path`` is written in fdinfo (``ino:HEX sdev:HEX``), or None
    when ``path`` is not a folder (gone again, or a link, which watchdog does not follow).
    fdinfo writes the kernel's ``MKDEV(major, minor)``, not ``st_dev``'s encoding."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return f"ino:{st.st_ino:x} sdev:{(os.major(st.st_dev) << 20) | os.minor(st.st_dev):x}"


_KEY = re.compile(r" (ino:[0-9a-f]+ sdev:[0-9a-f]+) ")


def unwatched_in(fdinfo: str, folders: Iterable[str]) -> list[str]:
    """The folders among ``folders`` that exist but have no watch in ``fdinfo``.

    A few folders are looked up as plain substrings, many through one parse: either way a
    check stays cheap with 100,000 watches."""
    keys = [(folder, key) for folder in folders if (key := folder_key(folder)) is not None]
    if len(keys) <= 4:
        return [folder for folder, key in keys if f" {key} " not in fdinfo]
    watched = set(_KEY.findall(fdinfo))
    return [folder for folder, key in keys if key not in watched]
