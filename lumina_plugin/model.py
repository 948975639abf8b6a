"""The shared model: the data types every package passes around, and the hash algorithms.

This is the bottom of the package graph: it imports nothing of the project, and any
module may import it. Decode and hashing produce :class:`ImageRecord`; the catalog
stores them and hands back :class:`ImageInfo` and :class:`StoredFile`; grouping and
tagging produce :class:`GroupRow`, :class:`TagState` and :class:`TagDiff`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # numpy is not loaded for --help (the command line imports this module)
    import numpy as np

#: The four hashes, in the column order used everywhere (arrays, index, catalog).
ALGORITHMS: Final[tuple[str, ...]] = ("ahash", "dhash", "phash", "whash")

#: Bumped whenever any hash could change for the same file (decode rule, resize,
#: wHash scale...). Codes of different versions are never compared: a catalog's older codes
#: are rehashed on first use.
#: v1: Pillow decode, EXIF orientation applied, imagehash 4.3 algorithms, wHash image_scale=64.
#: v2: v1 and the geometry words (hashing/geometry.py: turned, bordered, cropped copies).
ALGORITHM_VERSION: Final[int] = 2

#: The algorithm version of each decode mode (settings/hashing.py ``decode``): codes of
#: different modes carry different versions, so they never mix in one catalog.
#: v3 (never released): "reduced" down to the working image's own 256-pixel long side.
#: v4 ("reduced"): v2's hashes and words on a gray image decoded at 1/2, 1/4 or 1/8 scale
#: (:func:`reduced_factor`): JPEG luma in the DCT domain, other formats box-reduced.
DECODE_VERSIONS: Final[dict[str, int]] = {"exact": ALGORITHM_VERSION, "reduced": 4}

#: Reduced decoding keeps at least this long side and this short side (the 64x64 wHash
#: thumbnail). 1.5x the geometry words' working image (hashing/borders.WORK_LONG, 256): at
#: 256 itself the working image lost its anti-aliasing margin and the accuracy corpus lost 4 of
#: its 911 copies (a caption, two crops, a straightened copy); at 384 (and 512) every kind's
#: recall equals exact decoding's (docs/benchmarks.md). A 12 MP photo still decodes at 1/8.
REDUCED_MIN_LONG: Final[int] = 384
REDUCED_MIN_SHORT: Final[int] = 64
#: The scales libjpeg decodes in the DCT domain, largest first.
REDUCED_FACTORS: Final[tuple[int, ...]] = (8, 4, 2)


def reduced_factor(width: int, height: int) -> int:
    """The reduction (1, 2, 4 or 8) of a ``width`` x ``height`` photo in "reduced" mode: the
    largest whose image (partial blocks kept: ceil(side / f)) still has REDUCED_MIN_LONG
    pixels on its long side and REDUCED_MIN_SHORT on its short side."""
    long, short = max(width, height), min(width, height)
    for f in REDUCED_FACTORS:
        if -(-long // f) >= REDUCED_MIN_LONG and -(-short // f) >= REDUCED_MIN_SHORT:
            return f
    return 1


def algorithm_version(decode: str = "exact") -> int:
    """The version stored with codes hashed in ``decode`` mode (see :data:`DECODE_VERSIONS`)."""
    return DECODE_VERSIONS[decode]

#: A photo's code words: the four classic hashes (ALGORITHMS order), then the geometry words.
CLASSIC_WORDS: Final[int] = len(ALGORITHMS)
GEO_WORDS: Final[int] = 8
CODE_WORDS: Final[int] = CLASSIC_WORDS + GEO_WORDS
#: Columns of a pair's distances: one per classic hash, then the packed geometric verdict
#: (grouping/geometric.py; 0 where the pair is no geometric match).
PAIR_COLUMNS: Final[int] = CLASSIC_WORDS + 1

def taken_timestamp(taken_at: str | None, subsec: float | None) -> float | None:
    """Capture time as seconds on the camera's clock (ISO text + sub-seconds), or None."""
    if not taken_at:
        return None
    try:
        return datetime.fromisoformat(taken_at).replace(tzinfo=UTC).timestamp() + (subsec or 0.0)
    except ValueError:
        return None

@dataclass(frozen=True)
class ImageRecord:
    """A hashed photo on its way into the catalog (no ids yet)."""

    path: str
    checksum: str
    size_bytes: int
    mtime_ns: int
    width: int
    height: int
    format: str
    orientation: int
    camera: str | None
    taken_at: str | None
    subsec: float | None
    exif_tags: int
    codes: np.ndarray  # uint64 (CODE_WORDS,): ALGORITHMS order, then the geometry words
    hash_version: int

@dataclass(frozen=True)
class ImageInfo:
    """What grouping and reports need about a catalogued photo."""

    id: str
    index_id: int
    path: str
    checksum: str
    size_bytes: int
    width: int
    height: int
    format: str
    camera: str | None
    #: Capture time as seconds on the camera's clock (sub-seconds included), or None.
    taken_ts: float | None
    exif_tags: int

@dataclass(frozen=True)
class StoredFile:
    """Enough to tell whether a file on disk changed since it was hashed."""

    id: str
    index_id: int
    size_bytes: int
    mtime_ns: int
    hash_version: int | None

    def still_current(self, path: str, version: int) -> bool:
        """Whether these codes still stand for the file at ``path``: hashed by ``version``, and
        the file (still there) has the size and modification time it had then."""
        if self.hash_version != version:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        return st.st_size == self.size_bytes and st.st_mtime_ns == self.mtime_ns

@dataclass(frozen=True)
class GroupRow:
    """One duplicate group as stored: the keeper and every other member."""

    keeper_id: str
    similarity_type: str  # "exact" or "perceptual"
    confidence: int
    keeper_reason: str
    #: (image_id, relation to the keeper, distance), the keeper excluded.
    members: tuple[tuple[str, str, int], ...] = field(default_factory=tuple)

    def key(self) -> tuple[str, tuple[tuple[str, str, int], ...]]:
        return (self.keeper_id, tuple(sorted(self.members)))

@dataclass(frozen=True)
class TagState:
    """The plugin's visible output in the catalog: tag assignments and groups."""

    #: (image_id, tag name)
    image_tags: frozenset[tuple[str, str]]
    groups: tuple[GroupRow, ...]

@dataclass(frozen=True)
class TagDiff:
    """The change that takes the catalog's tags and groups to the desired ones."""

    add_tags: tuple[tuple[str, str], ...]
    remove_tags: tuple[tuple[str, str], ...]
    add_groups: tuple[GroupRow, ...]
    remove_groups: tuple[GroupRow, ...]

    def __len__(self) -> int:
        return len(self.add_tags) + len(self.remove_tags) + len(self.add_groups) + len(self.remove_groups)

    def summary(self) -> dict[str, int]:
        return {
            "tags_added": len(self.add_tags), "tags_removed": len(self.remove_tags),
            "groups_added": len(self.add_groups), "groups_removed": len(self.remove_groups),
        }
