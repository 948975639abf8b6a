"""The one configuration object: thresholds, hashes, tag names, keeper weights.

Values come from, lowest precedence first: the defaults below, a TOML file
(``lumina-dedup.toml`` beside the catalog, or ``--config FILE``, or the
``[tool.lumina-dedup]`` table of a ``pyproject.toml``), then explicit overrides
(command-line flags or the host's config passed to the startup hook).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import PHOTO_EXTENSIONS
from .model import ALGORITHMS, algorithm_version
from .settings import ConfigError
from .settings.gpu import GpuSettings
from .settings.hashing import HashingSettings
from .settings.index import IndexSettings
from .settings.lumina import LuminaSettings
from .settings.watch import WatchSettings

#: File name looked for beside the catalog.
CONFIG_FILE_NAME = "lumina-dedup.toml"

#: Extensions we try to decode when walking folders (lower case, with dot).
#: Every format the decoders read: JPEG, PNG, WebP, GIF, TIFF, BMP, the HEIF family
#: (pillow-heif, optional) and camera RAWs (their embedded preview; docs/formats.md).
DEFAULT_EXTENSIONS = PHOTO_EXTENSIONS


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
    #: A copy whose linking hashes are all within this distance (and whose aspect ratio
    #: is the same) is a "derivative" (re-encoded); further, an "edit" (crop, colour).
    derivative: int = 3

    def radii(self) -> tuple[int, int, int, int]:
        """Per-algorithm thresholds in :data:`ALGORITHMS` order."""
        return tuple(getattr(self, name) for name in ALGORITHMS)


@dataclass(frozen=True)
class KeeperWeights:
    """How the best copy of a group is chosen: compared in this order, larger wins.

    Format ranks follow what photographers keep: RAW/TIFF/PNG are lossless or
    originals, JPEG is the common camera output, WebP/GIF are usually exports.
    """

    format_rank: Mapping[str, int] = field(default_factory=lambda: {
        "RAW": 3, "DNG": 3, "TIFF": 3, "PNG": 3, "HEIF": 2, "AVIF": 2, "JPEG": 2, "MPO": 2,
        "WEBP": 1, "GIF": 1, "BMP": 1,
    })


@dataclass(frozen=True)
class TagNames:
    """Tag names written to the catalog. Namespaced so they never collide with
    Lumina's own ``dup-xxxxxxxx`` tags, and removable as a set."""

    parent: str = "lumina-dedup:duplicate"
    keeper: str = "lumina-dedup:keeper"
    exact: str = "lumina-dedup:exact-copy"
    derivative: str = "lumina-dedup:derivative"
    raw_jpeg: str = "lumina-dedup:raw-jpeg"
    edit: str = "lumina-dedup:edit"
    burst: str = "lumina-dedup:burst-sibling"
    category: str = "duplicate"
    source: str = "lumina-dedup"

    def roles(self) -> dict[str, str]:
        """Tag name per role: the keeper, and one per relation of a member to its keeper."""
        return {"keeper": self.keeper, "exact": self.exact, "derivative": self.derivative,
                "raw+jpeg": self.raw_jpeg, "edit": self.edit, "burst": self.burst}


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
    #: Also write the tags into XMP sidecars (photo.ext.xmp) for digiKam, darktable and
    #: Lightroom; undo removes them. The photos themselves are never written.
    xmp_sidecars: bool = False
    #: Feature sections, each defined beside the code it configures.
    #: The one GPU switch, for hashing and the index search together (settings/gpu.py).
    gpu: GpuSettings = field(default_factory=GpuSettings)
    hashing: HashingSettings = field(default_factory=HashingSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    lumina: LuminaSettings = field(default_factory=LuminaSettings)

    def __post_init__(self) -> None:
        # The index's search options apply the [gpu] switch themselves (the engine calls
        # config.index.search_options()), so [gpu] is handed down to the index's section.
        if self.index.gpu != self.gpu:
            object.__setattr__(self, "index", dataclasses.replace(self.index, gpu=self.gpu))

    def hash_version(self) -> int:
        """The algorithm version of the codes this configuration hashes (its decode mode)."""
        return algorithm_version(self.hashing.decode)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` (whole sections or top-level values)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: Config | None = None) -> Config:
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
                names = {f.name: f for f in _keys_of(sections[key])}
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
    def load(cls, path: Path | None = None, catalog_dir: Path | None = None) -> Config:
        """The effective configuration; see :meth:`load_with_sources`."""
        return cls.load_with_sources(path, catalog_dir)[0]

    @classmethod
    def load_with_sources(cls, path: Path | None = None,
                          catalog_dir: Path | None = None) -> tuple[Config, dict[str, str]]:
        """Defaults, then the user's file, then ``path`` (or ``lumina-dedup.toml`` beside the
        catalog when no path is given), each overriding the one before.

        Returns the configuration and, for every key a file set, which file it came from.
        """
        config, sources = cls(), {}
        for candidate in config_files(path, catalog_dir):
            data = _read_toml(candidate)
            try:
                config = cls.from_mapping(data, config)
            except ConfigError as exc:
                raise ConfigError(f"{candidate}: {exc}") from exc
            sources.update({key: str(candidate) for key in _dotted_keys(data)})
        return config, sources

    def flat(self) -> dict[str, Any]:
        """Every setting as ``section.key -> value`` (what ``lumina-dedup config`` prints)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                for sub in _keys_of(type(value)):
                    v = getattr(value, sub.name)
                    out[f"{f.name}.{sub.name}"] = dict(v) if isinstance(v, Mapping) else v
            else:
                out[f.name] = value
        return out


def _keys_of(section: type) -> list[dataclasses.Field]:
    """The fields of a section that a file may set (not those handed down from another section)."""
    return [f for f in dataclasses.fields(section) if not f.metadata.get("handed_down")]


def user_config_file() -> Path:
    """``$XDG_CONFIG_HOME/lumina-dedup/config.toml`` (``~/.config/...`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lumina-dedup" / "config.toml"


def config_files(path: Path | None, catalog_dir: Path | None) -> list[Path]:
    """The files that make the configuration, lowest precedence first."""
    files = [user_config_file()] if user_config_file().is_file() else []
    if path is not None:
        if not path.is_file() and str(path) != os.devnull:
            raise ConfigError(f"{path}: no such configuration file")
        files.append(path)
    elif catalog_dir is not None and (catalog_dir / CONFIG_FILE_NAME).is_file():
        files.append(catalog_dir / CONFIG_FILE_NAME)
    return files


def _read_toml(candidate: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{candidate}: {exc}") from exc
    if candidate.name == "pyproject.toml":
        data = data.get("tool", {}).get("lumina-dedup", {})
    return data


def _dotted_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        if isinstance(value, Mapping) and not prefix and key != "keeper":
            keys += _dotted_keys(value, f"{key}.")
        elif isinstance(value, Mapping) and key == "keeper":
            keys += [f"keeper.{k}" for k in value]
        else:
            keys.append(prefix + key)
    return keys


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
