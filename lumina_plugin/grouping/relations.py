"""How a member relates to its keeper: a class with its own tag and a suggested action.

- ``exact``: byte-identical file.
- ``derivative``: the same pixels re-encoded: resized, recompressed, another format,
  rotated by its EXIF tag (every hash within ``Thresholds.derivative`` and the same aspect
  ratio), or turned in its pixels and nothing else.
- ``raw+jpeg``: the camera's RAW file and its JPEG, taken at the same instant.
- ``edit``: the same shot changed on purpose: cropped, recoloured, retouched, given bars,
  a frame or a caption band, straightened.
- ``burst``: a frame of the same burst whose pixels are essentially identical.
"""

from __future__ import annotations

import os
from typing import Final

from ..config import Thresholds
from ..files import RAW_EXTENSIONS
from ..model import ImageInfo
from .pairs import Link, is_burst

RELATIONS: Final = ("exact", "derivative", "raw+jpeg", "edit", "burst")

#: What a person usually does with each: the report and --json show it; nothing acts on it.
ACTIONS: Final = {
    "exact": "remove the copy",
    "derivative": "remove the copy unless it is an export you need",
    "raw+jpeg": "keep both (one shot in two formats)",
    "edit": "review: keep the edit if it is wanted",
    "burst": "review: keep the best frame",
}



def _is_raw(info: ImageInfo) -> bool:
    return os.path.splitext(info.path)[1].lower() in RAW_EXTENSIONS


def _same_aspect(x: ImageInfo, y: ImageInfo, tolerance: float = 0.01) -> bool:
    if not (x.width and x.height and y.width and y.height):
        return False
    return abs(x.width / x.height - y.width / y.height) <= tolerance * (x.width / x.height)


def classify(keeper: ImageInfo, member: ImageInfo, link: Link | None, t: Thresholds) -> str:
    """The relation of ``member`` to ``keeper`` (one of :data:`RELATIONS`)."""
    if keeper.checksum == member.checksum:
        return "exact"
    same_instant = (keeper.taken_ts is not None and member.taken_ts is not None
                    and abs(keeper.taken_ts - member.taken_ts) < 1.0)
    if _is_raw(keeper) != _is_raw(member) and same_instant:
        return "raw+jpeg"
    if is_burst(keeper, member, t.burst_seconds):
        return "burst"
    verdict = link.verdict if link is not None else None
    if verdict is not None:  # turned, bordered or cropped: the geometry words linked it
        return "derivative" if verdict.rotation_only else "edit"
    distance = link.distance if link is not None else 0
    if distance <= t.derivative and _same_aspect(keeper, member):
        return "derivative"
    return "edit"
