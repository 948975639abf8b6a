"""Settings: How the plugin reaches a real Lumina deployment (PostgreSQL, Redis, Celery).

A section of :class:`lumina_plugin.config.Config` (its TOML table has the same name).
Fields must have defaults and simple types (bool, int, float, str, tuple of str).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LuminaSettings:
    pass
