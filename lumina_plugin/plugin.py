"""The plugin: Lumina hook implementations, each a thin call into the engine.

Registered in the ``lumina`` entry-point group, so any :class:`lumina_hooks.PluginHost`
loads it. Each event opens the host's catalog for the length of the work and closes
it again, so the plugin holds no lock between events. Each answers with a
:class:`lumina_hooks.HookReport` made from the engine's report (:func:`hook_report`):
its counts, and the ``--json`` object as ``details``.

Loading this module is cheap (the engine is imported at the first event), so the Lumina
bridge and ``lumina-dedup plugins`` may import it freely.

The processes that fire these hooks run for days (the watcher, a Celery worker, the Lumina
listener), so the catalog's index stays open between events, with its resident search copy
(:mod:`lumina_plugin.resident`): an import batch costs its own search, not a reload of the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumina_hooks import (
    FailedFile,
    HookReport,
    HostContext,
    ImagesImported,
    ImagesMoved,
    ImagesRemoved,
    MenuAction,
    ScanFinished,
    hookimpl,
)

from .catalog.locator import is_database_url
from .config import Config

if TYPE_CHECKING:
    from .engine import Engine, RunReport
    from .resident import Residents

#: The id of the plugin's Find Duplicates menu action (the Lumina bridge runs it by this id).
FIND_DUPLICATES = "lumina-dedup.find-duplicates"


_kept: Residents | None = None


def kept_indexes() -> Residents:
    """This process's kept indexes (made at the first event)."""
    global _kept
    if _kept is None:
        from .resident import Residents
        _kept = Residents()
    return _kept


def _engine(host: HostContext, dry_run: bool = False) -> Engine:
    from .engine import Engine
    locator: str | Path
    if is_database_url(host.catalog):  # Lumina's database: postgresql://...?catalog=<id>
        locator, base = host.catalog, Config.load()
    else:
        locator = Path(host.catalog)
        base = Config.load(catalog_dir=locator.parent)
    config = Config.from_mapping(host.config, base) if host.config else base
    # A dry run writes nothing anywhere: a SQLite catalog that does not exist is not made.
    return Engine(locator, config, progress=host.progress, mode="preview" if dry_run else "create",
                  keep=None if dry_run else kept_indexes())


def hook_report(report: RunReport) -> HookReport:
    """The engine's report as the contract's answer: its summary's counts, the files that
    failed, and its ``--json`` object (:meth:`RunReport.as_json`) as ``details``."""
    summary = report.summary()
    return HookReport(kind=report.kind, files=summary["files"], hashed=summary["hashed"],
                      unchanged=summary["unchanged"], groups=summary["groups"], duplicates=summary["duplicates"],
                      errors=summary["errors"], dry_run=report.dry_run,
                      failed=tuple(FailedFile(e.path, e.error) for e in report.errors), details=report.as_json())


@hookimpl
def lumina_images_imported(host: HostContext, event: ImagesImported) -> HookReport:
    with _engine(host) as engine:
        return hook_report(engine.import_paths(event.paths, job_id=event.job_id))


@hookimpl
def lumina_scan_finished(host: HostContext, event: ScanFinished) -> HookReport:
    # Imports already flagged each batch against the index; a finished scan is when a
    # whole-catalog pass is worth its cost (it also regroups across batches).
    with _engine(host) as engine:
        return hook_report(engine.find_duplicates(job_id=event.job_id))


@hookimpl
def lumina_images_removed(host: HostContext, event: ImagesRemoved) -> HookReport:
    with _engine(host) as engine:
        return hook_report(engine.remove_paths(event.paths))


@hookimpl
def lumina_images_moved(host: HostContext, event: ImagesMoved) -> HookReport:
    with _engine(host) as engine:
        return hook_report(engine.move_paths(event.moves))


@hookimpl
def lumina_menu_actions(host: HostContext) -> list[MenuAction]:
    return [MenuAction(FIND_DUPLICATES, "Find Duplicates",
                       "Group every photo in the catalog with its copies and tag them", "dedup")]


@hookimpl
def lumina_run_action(host: HostContext, action_id: str, params: dict[str, Any]) -> HookReport | None:
    if action_id != FIND_DUPLICATES:
        return None
    with _engine(host, dry_run=bool(params.get("dry_run"))) as engine:
        return hook_report(engine.find_duplicates(params.get("paths", ()), dry_run=bool(params.get("dry_run")),
                                                  job_id=params.get("job_id")))
