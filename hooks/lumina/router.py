"""Deprecated alias of :mod:`lumina_plugin.lumina.router` (the Lumina bridge moved into the plugin).

Kept for one release so that commands typed with the old path keep working; importing it
warns DeprecationWarning and gives the plugin's module itself (see :mod:`lumina_hooks.lumina`).
"""

import importlib
import sys
import warnings

warnings.warn("lumina_hooks.lumina.router is deprecated: use lumina_plugin.lumina.router",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("lumina_plugin.lumina.router")
