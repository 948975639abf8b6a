"""Fault injection for the crash tests: die abruptly at a named point when asked.

``LUMINA_DEDUP_TEST_CRASH_AT=name`` (or ``name@N``: at the Nth time the point is
reached) makes the process SIGKILL itself there, as a power cut would. Unset, as it
always is outside the tests, each point costs one dictionary lookup. The one mechanism for
every point: the catalog's (``inside-images``, ``inside-tags``, ``inside-undo``), the
engine's (``between-catalog-and-index``, ``between-pairs-and-tags``) and the hash index's
(``before-manifest``, ``after-manifest`` in :mod:`lumina_plugin.index.store`).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "LUMINA_DEDUP_TEST_CRASH_AT"
_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if :data:`CRASH_ENV` names this point (and its count is reached)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))  # (no SIGKILL on Windows)
