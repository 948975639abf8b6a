"""Settings: Background folder watching (lumina-dedup watch).

A section of :class:`lumina_plugin.config.Config` (its TOML table has the same name).
Fields must have defaults and simple types (bool, int, float, str, tuple of str).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WatchSettings:
    pass
