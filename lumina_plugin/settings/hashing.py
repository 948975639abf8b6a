"""Settings: how photos are decoded and hashed: CPU workers, JPEG draft decoding, GPU batches.

A section of :class:`lumina_plugin.config.Config` (its TOML table is ``[hashing]``).
Fields must have defaults and simple types (bool, int, float, str, tuple of str).
Values are checked when the section is built, so a typo fails at load time with a
:class:`~lumina_plugin.config.ConfigError` that names the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import DECODE_VERSIONS
from . import ConfigError
from .gpu import GPU_MODES

#: 0 = full decode; N > 0 = JPEG luma-only DCT-domain decoding at scale 1/N (see ``draft``).
DRAFT_SCALES = (0, 1, 2, 4, 8)


@dataclass(frozen=True)
class HashingSettings:
    #: An older key, for hashing only: the ``[gpu] use`` switch (settings/gpu.py) governs
    #: hashing and the index together; this narrows it for hashing ("off" keeps hashing on
    #: the CPU, "on" asks for the GPU loudly). The effective mode is
    #: ``config.gpu.hashing_mode(config.hashing.gpu)``.
    gpu: str = "auto"
    #: How photos are decoded for hashing; each mode has its own algorithm version
    #: (model.DECODE_VERSIONS), so a catalog never mixes codes of two modes.
    #: "reduced" (default): JPEGs decoded in the DCT domain at 1/2, 1/4 or 1/8 (the largest
    #: that keeps a 384-pixel long side; other formats box-reduced after the decode): on the
    #: CPU 4.2x the photos/s of "exact" at 12 MP and 2.4x at 2 MP, the same accuracy on the
    #: corpus (docs/benchmarks.md). The GPU decodes whole either way (nvImageCodec has no
    #: scaled decode) and reduces after.
    #: "exact": every pixel, codes bit-identical with imagehash 4.3.
    decode: str = "reduced"
    #: Photos per GPU decode batch; 0 = automatic: about 224 MB of files a batch, 32 to 256
    #: photos (2 MP JPEGs: 256, 12 MP: about 60), lowered to what free GPU memory allows.
    gpu_batch_size: int = 0
    #: GPU processes feeding the JPEG engines; 0 = 4 (while one runs Python between its
    #: batches, the others keep the engines busy: on the H100, 2 MP photos 4,796 a second
    #: with 2, 5,280 with 4, 98% of the engines' ceiling; 12 MP 990 and 976).
    gpu_processes: int = 0
    #: CPU worker processes; 0 = one per core (half the cores less one beside the GPU).
    workers: int = 0
    #: Whole files the CPU pool decodes at once beside the GPU, on top of those the GPU
    #: hands back (PNG, progressive, CMYK...); -1 = automatic (none: at full decode the
    #: pool's share was 1-2% of the photos, and it slowed the GPU by more, see
    #: ingest/pipeline.py). Meanwhile the pool probes the GPU files' facts. If the GPU
    #: fails mid-run, the CPU takes everything.
    cpu_files_beside_gpu: int = -1
    #: Ask the kernel to read each GPU batch's files as soon as the batch is claimed
    #: (``posix_fadvise`` WILLNEED, ingest/prefetch.py), so that files out of the page cache
    #: are read in parallel ahead of the GPU processes' reader threads.
    prefetch: bool = True
    #: With ``prefetch``: how many batches past each claimed GPU batch are advised too, so the
    #: disk works on the next claims' files while the engines decode this one's (0: only
    #: the claimed batch). 0 by default: on the H100 host, cold files came in at 530 photos/s
    #: with 0 (8 runs) and 514 with 1 (9 runs, docs/benchmarks.md, 2026-12-07).
    prefetch_ahead: int = 0
    #: JPEG draft decoding on the CPU: 0 = off (full decode: the codes are imagehash's,
    #: bit for bit); 1 = luma only at full size (about 20-40% faster); 2, 4, 8 = luma only
    #: at 1/2, 1/4, 1/8 size in the DCT domain (2-3x faster). Measured on 114 real 12 MP
    #: photos, the share whose four codes all equal the full decode's: 1 -> 93.9%,
    #: 2 -> 88.6%, 4 -> 78.9%, 8 -> 62.3%, a differing code by at most 3 bits
    #: (docs/benchmarks.md). No scale reaches the 99% that would make it the
    #: default; a differing bit or two is far inside the duplicate thresholds.
    draft: int = 0
    #: Runs of fewer files than this hash in the calling process.
    parallel_min_files: int = 2
    #: ...and so do runs whose files weigh less than this many MB while the worker pool
    #: is not started yet: starting it (about a second) or the GPU (one to two seconds)
    #: would cost more than it saves (a 12 MP JPEG takes about 0.2 s per 3 MB to decode).
    #: Once started, the pool (and the GPU) serve every run of parallel_min_files or more.
    parallel_min_mb: int = 32

    def __post_init__(self) -> None:
        if self.gpu not in GPU_MODES:
            raise ConfigError(f"hashing.gpu must be one of {', '.join(GPU_MODES)}, got {self.gpu!r}")
        if self.decode not in DECODE_VERSIONS:
            raise ConfigError(f"hashing.decode must be one of {', '.join(DECODE_VERSIONS)}, got {self.decode!r}")
        if self.draft not in DRAFT_SCALES:
            raise ConfigError(f"hashing.draft must be one of {', '.join(map(str, DRAFT_SCALES))}, "
                              f"got {self.draft!r}")
        for name in ("gpu_batch_size", "gpu_processes", "workers", "parallel_min_files", "parallel_min_mb",
                     "prefetch_ahead"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"hashing.{name} must be a whole number >= 0, got {value!r}")
        value = self.cpu_files_beside_gpu
        if not isinstance(value, int) or isinstance(value, bool) or value < -1:
            raise ConfigError(f"hashing.cpu_files_beside_gpu must be -1 (automatic) or a whole number "
                              f">= 0, got {value!r}")
