"""How the watcher meets its host: which folders, which PluginHost, what a batch did.

The watcher is one more event source for the host contract: it fires the same
``images_removed`` / ``images_moved`` / ``images_imported`` events a host fires, so a
host embedding it and the ``lumina-dedup watch`` command share one path. What a batch
did is read back from the plugins' answers (our plugin answers with the engine's
report: files hashed, unchanged, errors).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lumina_hooks import HookReport, HostContext, PluginHost

from ..config import Config
from ..settings.hashing import HashingSettings
from .errors import WatchError

#: The name the watcher's own host gives itself in the HostContext.
HOST_NAME = "lumina-dedup watch"


def check_roots(roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Absolute, existing folders, sorted; a folder inside another given one is dropped.

    Raises WatchError naming the first folder that does not exist or is a file."""
    out: list[str] = []
    for given in roots:
        path = os.path.abspath(os.fspath(given))
        if not os.path.exists(path):
            raise WatchError(f"{path}: no such folder")
        if not os.path.isdir(path):
            raise WatchError(f"{path}: not a folder (watch the folder that holds it)")
        out.append(path)
    if not out:
        raise WatchError("no folder to watch: give one or more, or set [watch] folders in the configuration")
    kept: list[str] = []
    for path in sorted(out, key=len):
        if not any(path == k or path.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(path)
    return sorted(kept)


def default_host(catalog: str | os.PathLike[str], config: Mapping[str, Any] | None = None) -> PluginHost:
    """The host the watcher fires events on when none is given: the plugins of the
    ``lumina`` entry points, and ours even where autoloading is off (without it the
    watcher would import nothing). A plugin blocked by ``LUMINA_BLOCK_PLUGINS`` stays off."""
    from .. import plugin as dedup_plugin

    host = PluginHost(HostContext(name=HOST_NAME, catalog=os.fspath(catalog), config=dict(config or {})))
    if not host.pm.is_registered(dedup_plugin) and not host.pm.is_blocked("dedup"):
        host.register(dedup_plugin, name="dedup")
    return host


#: [hashing] values for a process that runs for days: start the worker pool at once.
_LONG_RUNNING_HASHING = {"parallel_min_mb": 0}


def own_host_config(host_config: Mapping[str, Any], config: Config, warm_pool: bool) -> dict[str, Any]:
    """The plugin's configuration for the watcher's own host: as given, plus the
    ``[hashing]`` values that suit a long-running process (``warm_pool``), for each
    key that this version has and that neither the file nor the host sets."""
    out = {key: dict(value) if isinstance(value, Mapping) else value for key, value in host_config.items()}
    if not warm_pool:
        return out
    hashing = dict(out.get("hashing", {}))
    defaults = HashingSettings()
    for key, value in _LONG_RUNNING_HASHING.items():
        default = getattr(defaults, key, None)
        if default is not None and key not in hashing and getattr(config.hashing, key, None) == default:
            hashing[key] = value
    if hashing:
        out["hashing"] = hashing
    return out


@dataclass
class BatchResult:
    """What one batch did; :meth:`as_json` is the watcher's ``--json`` line."""

    number: int
    imported: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    hashed: int = 0
    unchanged: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    #: The files this batch flagged as copies: {"path", "relation", "keeper"}, where relation is
    #: grouping.RELATIONS' (a copy of a photo the batch brought, or one the batch's photo copies).
    flagged: list[dict[str, str]] = field(default_factory=list)
    started_at: float = 0.0    # time.time()
    committed_at: float = 0.0  # time.time(), once every event of the batch returned
    backlog: int = 0           # operations still waiting

    def count(self, answers: Iterable[HookReport] | None, paths: Iterable[str] = ()) -> None:
        """Add up the plugins' answers to an images-imported event of ``paths`` (their
        HookReports), and note the copies among their groups that involve these paths."""
        batch = set(paths)
        seen = {f["path"] for f in self.flagged}
        for answer in answers or []:
            self.hashed += answer.hashed
            self.unchanged += answer.unchanged
            self.errors += [{"path": f.path, "error": f.error} for f in answer.failed]
            for row in flagged_copies(answer.details, batch):
                if row["path"] not in seen:
                    seen.add(row["path"])
                    self.flagged.append(row)

    def as_json(self) -> dict[str, Any]:
        return {"batch": self.number, "committed_at": round(self.committed_at, 6),
                "seconds": round(self.committed_at - self.started_at, 3),
                "imported": len(self.imported), "hashed": self.hashed, "unchanged": self.unchanged,
                "removed": len(self.removed), "moved": len(self.moved), "errors": self.errors,
                "backlog": self.backlog, "paths": self.imported, "flagged": self.flagged,
                "moves": [list(m) for m in self.moved], "removed_paths": self.removed}


def flagged_copies(details: Mapping[str, Any], batch: set[str]) -> list[dict[str, str]]:
    """The copies a plugin's answer (its ``--json`` groups, in ``details``) flags among the
    groups that hold a photo of ``batch``: a new photo that copies one already there, or,
    when the new photo is the better one and became the keeper, the older copies it outranks.
    Groups that do not involve the batch are left out: the watcher names what this batch did."""
    out: list[dict[str, str]] = []
    groups = details.get("groups") if isinstance(details, Mapping) else None
    for group in groups if isinstance(groups, list) else ():
        members = [m for m in group.get("members", ()) if isinstance(m, Mapping) and "path" in m]
        keeper = str(group.get("keeper", ""))
        if keeper not in batch and not any(m["path"] in batch for m in members):
            continue
        out += [{"path": str(m["path"]), "relation": str(m.get("relation", m.get("kind", "near"))), "keeper": keeper}
                for m in members if m.get("role") != "keeper" and m["path"] != keeper
                and (keeper in batch or m["path"] in batch)]
    return out
