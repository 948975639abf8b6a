"""The host side of the Lumina plugin contract (installed as ``lumina_hooks``).

Hosts embed :class:`PluginHost`; plugins mark implementations with :data:`hookimpl` and
answer with a :class:`HookReport`. This package needs only pluggy and the standard library:
it imports no plugin (the Lumina bridge lives in the plugin, ``lumina_plugin.lumina``;
``lumina_hooks.lumina`` is its deprecated alias for one release).
"""

from .events import (
                     FailedFile,
                     HookReport,
                     HostContext,
                     ImagesImported,
                     ImagesMoved,
                     ImagesRemoved,
                     MenuAction,
                     ScanFinished,
)
from .host import ENTRY_POINT_GROUP, PluginHost
from .specs import PROJECT_NAME, hookimpl, hookspec

__all__ = [
    "ENTRY_POINT_GROUP", "FailedFile", "HookReport", "HostContext", "ImagesImported", "ImagesMoved", "ImagesRemoved", "MenuAction",
    "PROJECT_NAME", "PluginHost", "ScanFinished", "hookimpl", "hookspec",
]
