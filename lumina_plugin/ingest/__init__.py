"""Ingest: turning files into :class:`~lumina_plugin.model.ImageRecord` rows at full speed.

The machinery around the pure hashing math of :mod:`lumina_plugin.hashing`: the pipeline that
picks the CPU pool or the GPU processes (``pipeline``), the worker pool and its scheduler
(``pool``), the GPU processes and their feeders (``gpu_processes``, ``gpu_worker``), and one
file's decode-and-hash (``records``).
"""
