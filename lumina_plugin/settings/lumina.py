"""Settings: How the plugin reaches a real Lumina deployment (PostgreSQL, Redis, Celery).

A section of :class:`lumina_plugin.config.Config` (its TOML table has the same name).
Fields must have defaults and simple types (bool, int, float, str, tuple of str).

Empty strings mean "as Lumina itself is configured": the database URL is built from
Lumina's own ``POSTGRES_*`` variables and Redis from ``REDIS_*`` (see
:mod:`lumina_plugin.catalog.postgres` and :mod:`lumina_plugin.lumina.settings`), so the
plugin works wherever Lumina does without a second set of settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LuminaSettings:
    #: ``postgresql://`` URL of Lumina's database; "" = built from ``POSTGRES_*``.
    url: str = ""
    #: Which Lumina catalog (its UUID or its name); "" = the only one there is.
    catalog: str = ""
    #: Keep a copy of our groups in Lumina's ``duplicate_groups``/``duplicate_members``, so its
    #: own duplicates page lists them: on by default, since with our wrapper in front of its
    #: Find Duplicates button Lumina's own detector never fills that page. Every run, decision
    #: and undo brings the copies in step; false removes them at the next run (the opt-out).
    #: Our tables stay the truth: Lumina's own detector, if run anyway, deletes the copies and
    #: our next run writes them again (docs/lumina.md).
    show_in_lumina: bool = True
    #: Folder for the per-catalog hash index; "" = ``$XDG_DATA_HOME/lumina-dedup``.
    data_dir: str = ""
    #: Redis URL for progress messages and our Celery broker; "" = built from ``REDIS_*``.
    redis_url: str = ""
    #: The Celery queue our tasks run on (start a worker with ``-Q`` including it).
    queue: str = "lumina-dedup"
    #: How often the standalone listener polls ``jobs`` (seconds).
    poll_seconds: float = 2.0
    #: Fan-out (``lumina/fanout.py``): a Find Duplicates run, a scan batch or a catch-up of at
    #: least this many unhashed photos is cut into chunks of this many and sent to our queue, so
    #: every free worker hashes a share; smaller runs hash in the task's own process. 0 = never.
    #: A few hundred keeps each chunk's redelivery after a lost worker cheap (12 MP photos: about
    #: 3 s a chunk of 500 on a GPU, 20-30 s on one CPU core) while the per-chunk costs (a message,
    #: a database connection, a Redis mark) stay well under 1% of its time.
    fanout_chunk: int = 500
    #: Seconds before Redis hands a chunk that a worker took but never acknowledged (the worker
    #: died: the machine, or the whole worker process, killed) to another worker: Celery's Redis
    #: ``visibility_timeout`` for our own worker app (``lumina/worker.py``). It must exceed the
    #: longest chunk's run, or a slow chunk is run twice (harmless, since chunk writes are
    #: idempotent, but wasted). A killed pool child is redelivered at once either way.
    fanout_visibility_s: float = 1800.0
