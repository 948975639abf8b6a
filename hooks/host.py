"""PluginHost: what any host embeds to load Lumina plugins and fire their hooks.

Plugins are found in the ``lumina`` entry-point group (``[project.entry-points.lumina]``)
and may also be registered directly. Set ``LUMINA_DISABLE_PLUGIN_AUTOLOAD=1`` to skip
entry points, or ``LUMINA_BLOCK_PLUGINS=a,b`` to skip named ones, as pytest and tox
allow. The typed methods below are the host's only way to call hooks, so host code
never touches the untyped ``pm.hook``: the events answer with the plugins'
:class:`~lumina_hooks.events.HookReport` objects, whatever a plugin returned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from . import specs
from .events import HookReport, HostContext, ImagesImported, ImagesMoved, ImagesRemoved, MenuAction, ScanFinished

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = specs.PROJECT_NAME


def _report(hook: str, answer: object) -> HookReport | None:
    """A plugin's answer as a HookReport. A mapping (the plugin's JSON, as the contract
    had it before HookReport) becomes its ``details``, with no counts; anything else is
    dropped. Either is logged: hosts read the report's fields only."""
    if answer is None or isinstance(answer, HookReport):
        return answer
    if isinstance(answer, Mapping):
        log.warning("a plugin answered %s with a %s, not a HookReport: its counts are lost",
                    hook, type(answer).__name__)
        return HookReport(kind=hook, details=dict(answer))
    log.warning("a plugin answered %s with a %s, not a HookReport: ignored", hook, type(answer).__name__)
    return None


def _reports(hook: str, answers: Iterable[object]) -> list[HookReport]:
    return [r for r in (_report(hook, a) for a in answers) if r is not None]


class PluginHost:
    """Load plugins, check them against the specs, and fire events.

    Use as a context manager to fire startup and shutdown around a block.
    """

    def __init__(self, context: HostContext, plugins: Iterable[object] = (),
                 load_entrypoints: bool | None = None) -> None:
        self.context = context
        self.pm = pluggy.PluginManager(specs.PROJECT_NAME)
        self.pm.add_hookspecs(specs)
        if log.isEnabledFor(logging.DEBUG):
            self.pm.trace.root.setwriter(log.debug)
            self.pm.enable_tracing()
        for name in filter(None, os.environ.get("LUMINA_BLOCK_PLUGINS", "").split(",")):
            self.pm.set_blocked(name.strip())
        if load_entrypoints is None:
            load_entrypoints = not os.environ.get("LUMINA_DISABLE_PLUGIN_AUTOLOAD")
        if load_entrypoints:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for plugin in plugins:
            self.register(plugin)
        self.pm.check_pending()
        self._started = False

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register one more plugin (an object or module with ``lumina_*`` hookimpls)."""
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise ValueError(f"plugin {name or plugin!r} is blocked or already registered")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            # A plugin that fails validation must not poison every later registration.
            self.pm.unregister(plugin)
            raise
        return registered

    def plugins(self) -> list[dict[str, Any]]:
        """Each registered plugin, its distribution (if from an entry point) and its hooks."""
        dists = {id(p): d for p, d in self.pm.list_plugin_distributions()}
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda x: x[0]):
            if plugin is None or self.pm.is_blocked(name):  # pluggy keeps blocked names as None
                continue
            dist = dists.get(id(plugin))
            out.append({
                "name": name,
                "distribution": f"{dist.metadata['name']} {dist.version}" if dist else None,
                "hooks": sorted(h.name for h in self.pm.get_hookcallers(plugin) or []),
            })
        return out

    # -- events ------------------------------------------------------------------------
    def startup(self) -> None:
        self.pm.hook.lumina_startup.call_historic(kwargs={"host": self.context})
        self._started = True

    def images_imported(self, paths: Iterable[str], source: str = "host",
                        job_id: str | None = None) -> list[HookReport]:
        """Fire images-imported; the plugins' reports, in the order they answered."""
        event = ImagesImported(tuple(str(p) for p in paths), source, job_id)
        return _reports("lumina_images_imported", self.pm.hook.lumina_images_imported(host=self.context, event=event))

    def scan_finished(self, roots: Iterable[str] = (), job_id: str | None = None) -> list[HookReport]:
        """Fire scan-finished; the plugins' reports."""
        event = ScanFinished(tuple(str(r) for r in roots), job_id)
        return _reports("lumina_scan_finished", self.pm.hook.lumina_scan_finished(host=self.context, event=event))

    def images_removed(self, paths: Iterable[str]) -> list[HookReport]:
        """Fire images-removed; the plugins' reports."""
        event = ImagesRemoved(tuple(str(p) for p in paths))
        return _reports("lumina_images_removed", self.pm.hook.lumina_images_removed(host=self.context, event=event))

    def images_moved(self, moves: Iterable[tuple[str, str]]) -> list[HookReport]:
        """Fire images-moved; the plugins' reports."""
        event = ImagesMoved(tuple((str(a), str(b)) for a, b in moves))
        return _reports("lumina_images_moved", self.pm.hook.lumina_images_moved(host=self.context, event=event))

    def menu_actions(self) -> list[MenuAction]:
        """Every plugin's menu actions, concatenated."""
        return [a for answer in self.pm.hook.lumina_menu_actions(host=self.context) for a in answer]

    def run_action(self, action_id: str, **params: Any) -> HookReport:
        """Run a menu action; the report of the plugin that owns it. KeyError if none does."""
        result = _report("lumina_run_action",
                         self.pm.hook.lumina_run_action(host=self.context, action_id=action_id, params=params))
        if result is None:
            raise KeyError(f"no plugin offers the action {action_id!r}")
        return result

    def shutdown(self) -> None:
        if self._started:
            self.pm.hook.lumina_shutdown(host=self.context)
            self._started = False

    def __enter__(self) -> PluginHost:
        self.startup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
