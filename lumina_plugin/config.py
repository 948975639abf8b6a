"""The one configuration object: thresholds, hashes, tag names, keeper weights.

Values come from, lowest precedence first: the defaults below, a TOML file
(``lumina-dedup.toml`` beside the catalog, or ``--config FILE``, or the
``[tool.lumina-dedup]`` table of a ``pyproject.toml``), then explicit overrides
(command-line flags or the host's config passed to the startup hook).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .hashing.codes import ALGORITHMS
from .settings.hashing import HashingSettings
from .settings.index import IndexSettings
from .settings.lumina import LuminaSettings
from .settings.watch import WatchSettings

#: File name looked for beside the catalog.
CONFIG_FILE_NAME = "lumina-dedup.toml"

#: Extensions we try to decode when walking folders (lower case, with dot).
DEFAULT_EXTENSIONS = (
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp",
    ".heic", ".heif",
)


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


@dataclass(frozen=True)
class Thresholds:
    """When two photos are the same shot.

    A pair is *linked* by a hash when that hash's Hamming distance is at most its
    threshold. A pair is a duplicate candidate when at least ``min_agreeing`` hashes
    link it: one hash alone is fooled by look-alike shots (a single 64-bit aHash
    matches many unrelated dark photos), two rarely agree by chance.
    """

    ahash: int = 8
    dhash: int = 10
    phash: int = 10
    whash: int = 8
    min_agreeing: int = 2
    #: A pair is never a duplicate when any hash is further apart than this: copies move
    #: every hash a little, while look-alikes (two dark photos, a mirror image) match
    #: on some hashes and are far apart on others.
    veto: int = 20
    #: Photos by the same camera taken more than 0 and at most this many seconds apart
    #: are a burst: different shots, not duplicates...
    burst_seconds: float = 2.0
    #: ...unless every hash is within this distance (pixels essentially identical).
    burst_identical: int = 2

    def radii(self) -> tuple[int, int, int, int]:
        """Per-algorithm thresholds in :data:`ALGORITHMS` order."""
        return tuple(getattr(self, name) for name in ALGORITHMS)  # type: ignore[return-value]


@dataclass(frozen=True)
class KeeperWeights:
    """How the best copy of a group is chosen: compared in this order, larger wins.

    Format ranks follow what photographers keep: RAW/TIFF/PNG are lossless or
    originals, JPEG is the common camera output, WebP/GIF are usually exports.
    """

    format_rank: Mapping[str, int] = field(default_factory=lambda: {
        "RAW": 3, "DNG": 3, "TIFF": 3, "PNG": 3, "HEIF": 2, "JPEG": 2, "MPO": 2,
        "WEBP": 1, "GIF": 1, "BMP": 1,
    })


@dataclass(frozen=True)
class TagNames:
    """Tag names written to the catalog. Namespaced so they never collide with
    Lumina's own ``dup-xxxxxxxx`` tags, and removable as a set."""

    parent: str = "lumina-dedup:duplicate"
    keeper: str = "lumina-dedup:keeper"
    exact: str = "lumina-dedup:exact-copy"
    near: str = "lumina-dedup:near-copy"
    category: str = "duplicate"
    source: str = "lumina-dedup"

    def roles(self) -> dict[str, str]:
        return {"keeper": self.keeper, "exact": self.exact, "near": self.near}


@dataclass(frozen=True)
class Config:
    """Everything the engine can be told. Immutable: derive with :meth:`replace`."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    keeper: KeeperWeights = field(default_factory=KeeperWeights)
    tags: TagNames = field(default_factory=TagNames)
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    #: Refuse images with more pixels than this (decompression bombs); 0 = Pillow's default.
    max_pixels: int = 250_000_000
    #: Files hashed per catalog transaction and index segment.
    batch_size: int = 256
    #: Whether to follow symlinks while walking folders.
    follow_symlinks: bool = False
    #: Feature sections, each defined beside the code it configures.
    hashing: HashingSettings = field(default_factory=HashingSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    lumina: LuminaSettings = field(default_factory=LuminaSettings)

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: "Config | None" = None) -> "Config":
        """Build from a parsed TOML table, on top of ``base`` (defaults if None).

        Unknown keys are an error: a typo in a threshold name must not be silently ignored.
        """
        base = base or cls()
        sections = {f.name: type(getattr(base, f.name)) for f in dataclasses.fields(cls)
                    if dataclasses.is_dataclass(getattr(base, f.name))}
        changes: dict[str, Any] = {}
        top_fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key not in top_fields:
                raise ConfigError(f"unknown configuration key {key!r}")
            if key in sections:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"[{key}] must be a table")
                current = getattr(base, key)
                names = {f.name: f for f in dataclasses.fields(sections[key])}
                sub: dict[str, Any] = {}
                for sk, sv in value.items():
                    if sk not in names:
                        raise ConfigError(f"unknown configuration key {key}.{sk}")
                    sub[sk] = _check_type(f"{key}.{sk}", getattr(current, sk), sv)
                changes[key] = dataclasses.replace(current, **sub)
            elif key == "extensions":
                if not isinstance(value, (list, tuple)) or not all(isinstance(e, str) and e for e in value):
                    raise ConfigError(f"extensions must be a list of strings such as [\".jpg\", \".png\"], got {value!r}")
                changes[key] = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in value)
            else:
                changes[key] = _check_type(key, getattr(base, key), value)
        return dataclasses.replace(base, **changes)

    @classmethod
    def load(cls, path: Path | None = None, catalog_dir: Path | None = None) -> "Config":
        """Read ``path`` if given, else ``lumina-dedup.toml`` in ``catalog_dir`` if present."""
        candidate = path
        if candidate is None and catalog_dir is not None:
            beside = catalog_dir / CONFIG_FILE_NAME
            candidate = beside if beside.is_file() else None
        if candidate is None:
            return cls()
        try:
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{candidate}: {exc}") from exc
        if candidate.name == "pyproject.toml":
            data = data.get("tool", {}).get("lumina-dedup", {})
        try:
            return cls.from_mapping(data)
        except ConfigError as exc:
            raise ConfigError(f"{candidate}: {exc}") from exc


def _check_type(name: str, current: Any, value: Any) -> Any:
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(current, str):
        ok = isinstance(value, str)
    elif isinstance(current, tuple):
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif isinstance(current, Mapping):
        ok = isinstance(value, Mapping)
        if ok:
            for k, v in value.items():
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ConfigError(f"{name}.{k} must be a whole number >= 0, got {v!r}")
            # Keys are format names, compared upper-case (Pillow's "JPEG", "WEBP").
            value = {**current, **{str(k).upper(): v for k, v in value.items()}}
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{name} must be of type {type(current).__name__}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    bounds = _RANGES.get(name.rsplit(".", 1)[-1])
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{name} must be between {bounds[0]} and {bounds[1]}, got {value!r}")
    return value


#: Ranges for the values where "not negative" is not enough.
_RANGES = {"min_agreeing": (1, 4), "batch_size": (1, 1_000_000)}
