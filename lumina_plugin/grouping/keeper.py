"""Which copy to keep: the best by resolution, then format, then file size, then metadata.

The order is total (the path breaks the last ties), so the same photos always give
the same keeper whatever order they were found in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from ..config import KeeperWeights
from ..model import ImageInfo


def rank_key(weights: KeeperWeights) -> Callable[[ImageInfo], tuple]:
    """A sort key: sorting ascending puts the best copy first."""
    def key(info: ImageInfo) -> tuple:
        return (-(info.width * info.height), -weights.format_rank.get(info.format.upper(), 0),
                -info.size_bytes, -info.exif_tags, info.path)
    return key


def keeper_reason(keeper: ImageInfo, others: Sequence[ImageInfo], weights: KeeperWeights,
                  derived: Mapping[int, str] | None = None) -> str:
    """Why ``keeper`` beat the others: the criteria that decided, in the order they apply,
    each said once and naming the photos it decided against ("higher resolution (640x400
    over 320x200 of small.jpg, 602x380 of web.webp)"): a person reads it beside the files.

    ``derived``: the others that are bordered or cropped copies (index id -> what changed):
    the full picture is kept over them before any other criterion."""
    derived = derived or {}
    def fmt(i: ImageInfo) -> int:
        return weights.format_rank.get(i.format.upper(), 0)

    k = keeper
    # (value compared, the keeper's side, the other's side): "<keeper's> over <other's> of NAME".
    criteria: list[tuple[str, Callable[[ImageInfo], object], str, Callable[[ImageInfo], str]]] = [
        ("higher resolution", lambda i: i.width * i.height, f"{k.width}x{k.height}", lambda o: f"{o.width}x{o.height}"),
        ("preferred format", fmt, k.format, lambda o: o.format),
        ("larger file", lambda i: i.size_bytes, f"{k.size_bytes} bytes", lambda o: str(o.size_bytes)),
        ("richer metadata", lambda i: i.exif_tags, f"{k.exif_tags} EXIF tags", lambda o: str(o.exif_tags)),
    ]
    decided: dict[int, list[tuple[str, ImageInfo]]] = {}  # rank -> (the other's side, the other)
    for other in others:
        if other.index_id in derived:
            decided.setdefault(-1, []).append((derived[other.index_id] or "cropped", other))
            continue
        for rank, (_, value, _, show) in enumerate(criteria):
            if value(keeper) != value(other):
                decided.setdefault(rank, []).append((show(other), other))
                break
        else:
            decided.setdefault(len(criteria), []).append(("", other))
    reasons: list[str] = []
    for rank, rows in sorted(decided.items()):
        if rank == -1:
            reasons.append("the full picture (" + ", ".join(f"{_name(o, k)} is {what}" for what, o in rows) + ")")
        elif rank == len(criteria):
            same = [o for _, o in rows if o.checksum == k.checksum]
            equal = [o for _, o in rows if o.checksum != k.checksum]
            if same:
                reasons.append(f"identical to {_names(same, k)} (the same bytes), and its path sorts first")
            if equal:
                reasons.append(f"as good as {_names(equal, k)} in resolution, format, size and metadata, "
                               "and its path sorts first")
        else:
            label, _, mine, _ = criteria[rank]
            by_value: dict[str, list[ImageInfo]] = {}
            for shown, o in rows:
                by_value.setdefault(shown, []).append(o)
            theirs = ", ".join(f"{shown} of {_names(group, k)}" for shown, group in by_value.items())
            reasons.append(f"{label} ({mine} over {theirs})")
    return "; ".join(reasons)


def _names(infos: Sequence[ImageInfo], keeper: ImageInfo) -> str:
    return " and ".join(_name(i, keeper) for i in infos) if len(infos) < 3 else \
        ", ".join(_name(i, keeper) for i in infos[:-1]) + " and " + _name(infos[-1], keeper)


def _name(info: ImageInfo, keeper: ImageInfo) -> str:
    """The photo's file name; where the keeper has the same name, its path below the folder the
    two share (a backup copy of 2015/IMG_1.jpg is "backup/2015/IMG_1.jpg"): a reason names the
    photos it compares so that a person can tell which is meant."""
    name = os.path.basename(info.path)
    if name != os.path.basename(keeper.path):
        return name
    try:
        return os.path.relpath(info.path, os.path.commonpath([info.path, keeper.path]))
    except ValueError:  # not on one drive (Windows)
        return info.path
