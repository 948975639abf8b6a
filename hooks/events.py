"""What a host and its plugins pass each other: the host's context, one dataclass per
event, and :class:`HookReport`, what a plugin answers.

Plain, serialisable data (paths as strings, ids as strings) so an event or a report can
cross a process boundary, e.g. from Lumina's Celery worker to the plugin's own queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: progress(phase, done, total), given by the host; plugins report long work through it.
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class HostContext:
    """The host, as plugins see it.

    ``catalog`` locates the host's catalog: a SQLite file path for the embedded host,
    a ``postgresql://`` URL for Lumina. ``config`` is the plugin's section of the
    host's configuration (plugins read their own keys and ignore the rest).
    """

    name: str
    catalog: str
    config: Mapping[str, Any] = field(default_factory=dict)
    progress: ProgressCallback | None = None


@dataclass(frozen=True)
class ImagesImported:
    """A batch of photos was added to the catalog (a scan batch, a watched folder, a CLI import)."""

    paths: tuple[str, ...]
    source: str = "host"
    job_id: str | None = None


@dataclass(frozen=True)
class ScanFinished:
    """A scan of ``roots`` ended; every batch it imported has been announced already."""

    roots: tuple[str, ...] = ()
    job_id: str | None = None


@dataclass(frozen=True)
class ImagesRemoved:
    """Photos left the catalog (deleted from disk or removed by the user)."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class ImagesMoved:
    """Photos were renamed or moved: (old path, new path) each; their content is unchanged."""

    moves: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MenuAction:
    """An action a plugin adds to the host's menus; ``id`` is what the host passes back."""

    id: str
    label: str
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class FailedFile:
    """A file a plugin could not process, and why (one line)."""

    path: str
    error: str


@dataclass(frozen=True)
class HookReport:
    """What a plugin reports for an event or a menu action.

    The counts are what a host reads (a watcher adds them up, a job panel shows them):
    ``files`` given, ``hashed`` and ``unchanged`` among them, ``groups`` of duplicates and
    the ``duplicates`` they hold, ``errors`` (the files of ``failed``, or more where a plugin
    does not name them). ``details`` is the plugin's full answer as JSON-ready data (groups,
    members, tag changes...) for a host that shows it or passes it on; hosts do not read
    its keys. :meth:`as_json` and :meth:`from_json` carry a report across a process boundary.
    """

    kind: str
    files: int = 0
    hashed: int = 0
    unchanged: int = 0
    groups: int = 0
    duplicates: int = 0
    errors: int = 0
    dry_run: bool = False
    failed: tuple[FailedFile, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (``details`` copied as given)."""
        return {"kind": self.kind, "files": self.files, "hashed": self.hashed, "unchanged": self.unchanged,
                "groups": self.groups, "duplicates": self.duplicates, "errors": self.errors,
                "dry_run": self.dry_run, "failed": [{"path": f.path, "error": f.error} for f in self.failed],
                "details": dict(self.details)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HookReport:
        """The report :meth:`as_json` gave (keys it does not know are ignored)."""
        def count(name: str) -> int:
            return int(data.get(name, 0))
        return cls(kind=str(data["kind"]), files=count("files"), hashed=count("hashed"),
                   unchanged=count("unchanged"), groups=count("groups"), duplicates=count("duplicates"),
                   errors=count("errors"), dry_run=bool(data.get("dry_run", False)),
                   failed=tuple(FailedFile(str(f["path"]), str(f["error"])) for f in data.get("failed", ())),
                   details=dict(data.get("details", {})))
