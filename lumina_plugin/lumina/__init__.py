"""The bridge that makes the real Lumina fire the plugin contract, without editing Lumina.

Lumina has no plugin system; this package is its host side:

- :mod:`.bridge`   -- what every way in shares: Lumina's settings (``POSTGRES_*``, ``REDIS_*``),
                      the catalog URL, a :class:`~lumina_hooks.PluginHost` per event, Lumina's
                      job rows and Redis progress messages.
- :mod:`.tasks`    -- our Celery tasks (on our own queue): a running scan followed, a scan batch
                      imported, a scan finished, Find Duplicates as a Lumina job.
- :mod:`.follow`   -- the follower: a running scan's rows hashed and tagged as Lumina stores them.
- :mod:`.fanout`   -- a large run cut into chunks that every free worker hashes, then one grouping step.
- :mod:`.elsewhere` -- photos of a catalog that Lumina stored under another catalog.
- :mod:`.celery`   -- loaded into Lumina's worker with ``--include lumina_plugin.lumina.celery``:
                      signal receivers on ``scan_worker``/``scan_finalizer`` that enqueue the tasks.
- :mod:`.worker`   -- our own Celery app, for a worker of our own (``celery -A lumina_plugin.lumina.worker``).
- :mod:`.listener` -- ``lumina-dedup lumina listen``: no change to Lumina's worker at all; Redis
                      progress channels plus polling ``jobs``, with catch-up after a restart.
- :mod:`.router`   -- the Find Duplicates action over HTTP, and an ASGI wrapper around Lumina's app.

Nothing here is imported by ``lumina_hooks`` itself: Celery, FastAPI and Redis are needed
only by the parts that use them (the ``lumina`` extra).
"""
