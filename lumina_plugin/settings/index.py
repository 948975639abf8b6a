"""Settings: Which search backend finds pairs, and its limits.

A section of :class:`lumina_plugin.config.Config` (its TOML table has the same name).
Fields must have defaults and simple types (bool, int, float, str, tuple of str), except
the ones marked :data:`HANDED_DOWN`, which the configuration sets from another section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ConfigError
from .gpu import GpuSettings

#: The values ``backend`` takes (lumina_plugin.index.search.BACKENDS, repeated here so that
#: reading the configuration does not import FAISS).
BACKENDS = ("auto", "cpu", "faiss", "mih", "gpu", "faiss-gpu")
#: Field metadata: set by :class:`~lumina_plugin.config.Config` from another section, not a
#: key of this one (a file naming it gets "unknown configuration key"; ``config`` does not list it).
HANDED_DOWN = {"handed_down": True}


@dataclass(frozen=True)
class IndexSettings:
    """How pairs are searched (every backend returns the same pairs; only time and memory differ).

    ``backend``: "auto" (a GPU that passes its self-check, else the faster CPU join for each
    radius), "cpu" (the faster CPU join for each radius), "faiss" (FAISS range search, CPU),
    "mih" (multi-index join, CPU), "gpu" (CuPy kernels) or "faiss-gpu" (FAISS
    GpuIndexBinaryFlat); a GPU backend that is missing or fails its self-check falls back to
    the CPU with a warning. The ``[gpu]`` switch applies on top (:meth:`search_options`).
    """

    backend: str = "auto"
    #: FAISS CPU threads; 0 = FAISS's default (all cores).
    threads: int = 0
    #: Candidate pairs checked per step (CPU) or pairs written per kernel launch (GPU): bounds the
    #: search's working memory (about 40 bytes a pair on the CPU, 8 on the GPU).
    pair_chunk: int = 262_144
    #: CUDA device for the GPU backends; 0 = ``[gpu] device`` (an older key: set ``[gpu] device``).
    gpu_device: int = 0
    #: The ``[gpu]`` section, handed down by Config so that :meth:`search_options` applies the
    #: one GPU switch (not a key of ``[index]``).
    gpu: GpuSettings = field(default_factory=GpuSettings, metadata=HANDED_DOWN)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"index.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.pair_chunk < 1:
            raise ConfigError(f"index.pair_chunk must be at least 1, got {self.pair_chunk}")

    def search_options(self) -> dict[str, Any]:
        """Keyword options for ``all_pairs`` / ``query_pairs`` (``backend`` and ``device`` also
        for ``pick_backend``): the backend as the ``[gpu]`` switch leaves it
        (:meth:`GpuSettings.index_backend`: "off" never picks a GPU backend)."""
        return {
            "backend": self.gpu.index_backend(self.backend),
            "faiss_threads": self.threads or None,
            "pair_chunk": self.pair_chunk,
            "device": self.gpu_device or self.gpu.device,
        }
