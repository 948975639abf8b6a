"""The hooks a Lumina host fires. Plugins implement them with ``@lumina_hooks.hookimpl``.

Every hook takes the :class:`~lumina_hooks.events.HostContext` as ``host``; an
implementation may accept any subset of a hook's arguments (pluggy passes only
those it names), so hosts can add arguments later without breaking plugins. Hooks
that do work answer with a :class:`~lumina_hooks.events.HookReport` (or None: nothing
to say); hosts read its fields, never a plugin's own JSON.
"""

from __future__ import annotations

from typing import Any

import pluggy

from .events import HookReport, HostContext, ImagesImported, ImagesMoved, ImagesRemoved, MenuAction, ScanFinished

PROJECT_NAME = "lumina"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(historic=True)
def lumina_startup(host: HostContext) -> None:
    """The host has started and opened its catalog.

    Historic: a plugin registered later still receives it.
    """


@hookspec
def lumina_images_imported(host: HostContext, event: ImagesImported) -> HookReport | None:
    """A batch of photos was imported. Return a short report (plugins answer in LIFO order)."""


@hookspec
def lumina_scan_finished(host: HostContext, event: ScanFinished) -> HookReport | None:
    """A scan finished. Plugins may do catalog-wide work here; return a short report."""


@hookspec
def lumina_images_removed(host: HostContext, event: ImagesRemoved) -> HookReport | None:
    """Photos were removed from the catalog; plugins forget them."""


@hookspec
def lumina_images_moved(host: HostContext, event: ImagesMoved) -> HookReport | None:
    """Photos were renamed or moved on disk; plugins update their paths instead of re-importing."""


@hookspec
def lumina_menu_actions(host: HostContext) -> list[MenuAction]:
    """The menu actions a plugin offers; the host shows the concatenation of all answers."""
    raise NotImplementedError  # a specification: pluggy never calls its body


@hookspec(firstresult=True)
def lumina_run_action(host: HostContext, action_id: str, params: dict[str, Any]) -> HookReport | None:
    """Run a menu action. The plugin that owns ``action_id`` answers; others return None."""


@hookspec
def lumina_shutdown(host: HostContext) -> None:
    """The host is stopping: flush and close what the plugin holds."""
