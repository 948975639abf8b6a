"""Our own Celery app, for a worker of our own beside Lumina's (no ``--include`` in Lumina's):

    celery -A lumina_plugin.lumina.worker worker -Q lumina-dedup --concurrency 1

It uses Lumina's broker (``CELERY_BROKER_URL``, else Lumina's Redis) and keeps no results
(Lumina's jobs table and Redis messages are where results go).
"""

from __future__ import annotations

from celery import Celery

from . import bridge

_settings = bridge.load_config().lumina

app = Celery("lumina_dedup", broker=bridge.redis_url(_settings), include=["lumina_plugin.lumina.tasks"])
app.conf.update(task_default_queue=_settings.queue, task_ignore_result=True, worker_prefetch_multiplier=1,
                task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
