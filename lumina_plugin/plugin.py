"""The plugin: Lumina hook implementations, each a thin call into the engine.

Registered in the ``lumina`` entry-point group, so any :class:`lumina_hooks.PluginHost`
loads it. Each event opens the host's catalog for the length of the work and closes
it again, so the plugin holds no lock between events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lumina_hooks import (HostContext, ImagesImported, ImagesMoved, ImagesRemoved, MenuAction, ScanFinished,
                          hookimpl)

from .config import Config
from .engine import Engine

FIND_DUPLICATES = "lumina-dedup.find-duplicates"


def _engine(host: HostContext) -> Engine:
    locator: str | Path
    if "://" in host.catalog:  # Lumina's database: postgresql://...?catalog=<id>
        locator, base = host.catalog, Config.load()
    else:
        locator = Path(host.catalog)
        base = Config.load(catalog_dir=locator.parent)
    config = Config.from_mapping(host.config, base) if host.config else base
    return Engine(locator, config, progress=host.progress)


@hookimpl
def lumina_images_imported(host: HostContext, event: ImagesImported) -> dict[str, Any]:
    with _engine(host) as engine:
        return engine.import_paths(event.paths, job_id=event.job_id).as_json()


@hookimpl
def lumina_scan_finished(host: HostContext, event: ScanFinished) -> dict[str, Any]:
    # Imports already flagged each batch against the index; a finished scan is when a
    # whole-catalog pass is worth its cost (it also regroups across batches).
    with _engine(host) as engine:
        return engine.find_duplicates(job_id=event.job_id).as_json()


@hookimpl
def lumina_images_removed(host: HostContext, event: ImagesRemoved) -> dict[str, Any]:
    with _engine(host) as engine:
        return engine.remove_paths(event.paths).as_json()


@hookimpl
def lumina_images_moved(host: HostContext, event: ImagesMoved) -> dict[str, Any]:
    with _engine(host) as engine:
        return engine.move_paths(event.moves).as_json()


@hookimpl
def lumina_menu_actions(host: HostContext) -> list[MenuAction]:
    return [MenuAction(FIND_DUPLICATES, "Find Duplicates",
                       "Group every photo in the catalog with its copies and tag them", "dedup")]


@hookimpl
def lumina_run_action(host: HostContext, action_id: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if action_id != FIND_DUPLICATES:
        return None
    with _engine(host) as engine:
        report = engine.find_duplicates(params.get("paths", ()), dry_run=bool(params.get("dry_run")),
                                        job_id=params.get("job_id"))
        return report.as_json()
