"""The host side of the Lumina plugin contract (installed as ``lumina_hooks``).

Hosts embed :class:`PluginHost`; plugins mark implementations with :data:`hookimpl`.
"""

from .events import HostContext, ImagesImported, ImagesMoved, ImagesRemoved, MenuAction, ScanFinished
from .host import ENTRY_POINT_GROUP, PluginHost
from .specs import PROJECT_NAME, hookimpl, hookspec

__all__ = [
    "ENTRY_POINT_GROUP", "HostContext", "ImagesImported", "ImagesMoved", "ImagesRemoved", "MenuAction",
    "PROJECT_NAME", "PluginHost", "ScanFinished", "hookimpl", "hookspec",
]
