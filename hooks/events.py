"""What a host passes to plugins: its context and one dataclass per event.

Plain, serialisable data (paths as strings, ids as strings) so an event can cross a
process boundary, e.g. from Lumina's Celery worker to the plugin's own queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

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
