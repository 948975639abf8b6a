"""Deprecated alias of :mod:`lumina_plugin.lumina.tasks` (the Lumina bridge moved into the plugin).

Kept for one release so that commands typed with the old path (``--include
lumina_hooks.lumina.celery``, ``lumina_hooks.lumina.router:app``...) keep working. The host
contract in ``lumina_hooks`` depends on no plugin: this alias is imported by name, only
when someone asks for the old path.
"""

import importlib
import sys
import warnings

warnings.warn("lumina_hooks.lumina is deprecated: use lumina_plugin.lumina.tasks", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("lumina_plugin.lumina.tasks")
