"""Settings: how photos are decoded and hashed: CPU workers, GPU use.

A section of :class:`lumina_plugin.config.Config` (its TOML table is ``[hashing]``).
Fields must have defaults and simple types (bool, int, float, str, tuple of str).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HashingSettings:
    #: "auto" (use a GPU when one passes the self-check), "on" (GPU or warn and use the CPU), "off".
    gpu: str = "auto"
    #: Photos per GPU batch; 0 = chosen from free GPU memory.
    gpu_batch_size: int = 0
    #: CPU worker processes; 0 = one per core.
    workers: int = 0
