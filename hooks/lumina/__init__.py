"""Deprecated aliases of :mod:`lumina_plugin.lumina` (the Lumina bridge moved into the plugin).

Kept for one release so that commands typed with the old paths keep working:
``--include lumina_hooks.lumina.celery``, ``uvicorn lumina_hooks.lumina.router:app``,
``celery -A lumina_hooks.lumina.worker``. Each module here (``bridge``, ``celery``,
``listener``, ``router``, ``tasks``, ``worker``) warns DeprecationWarning and puts the
plugin's module of the same name in its place, so both paths give one module object.

This package itself stays a package of its own, imports nothing and does not warn: were it
replaced by :mod:`lumina_plugin.lumina`, Python would look for ``lumina_hooks.lumina.celery``
in the plugin's folder and run ``celery.py`` a second time as another module. The host
contract in ``lumina_hooks`` depends on no plugin: the aliases import the plugin by name,
only when someone asks for an old path.
"""
