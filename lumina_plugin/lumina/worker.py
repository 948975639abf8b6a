"""Our own Celery app, for a worker of our own beside Lumina's (no ``--include`` in Lumina's):

    celery -A lumina_plugin.lumina.worker worker -Q lumina-dedup --concurrency 1

A GPU machine's worker: ``--pool solo`` (or ``threads``), since a prefork pool's children may not
start the GPU processes, and hashing there stays on one CPU core (:mod:`~lumina_plugin.ingest.pipeline`).

It uses Lumina's broker (``CELERY_BROKER_URL``, else Lumina's Redis) and keeps no results
(Lumina's jobs table and Redis messages are where results go).
"""

from __future__ import annotations

from celery import Celery

from . import bridge

_settings = bridge.load_config().lumina

app = Celery("lumina_dedup", broker=bridge.redis_url(_settings), include=["lumina_plugin.lumina.tasks"])
# One message per slot: with late acknowledgement (the fan-out's tasks) the message in hand is then
# the only one a worker holds, so an idle worker is never left waiting while a busy one keeps a
# chunk. visibility_timeout: when Redis hands a dead worker's unacknowledged chunk to another.
app.conf.update(task_default_queue=_settings.queue, task_ignore_result=True, worker_prefetch_multiplier=1,
                task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True,
                broker_transport_options={"visibility_timeout": _settings.fanout_visibility_s})
