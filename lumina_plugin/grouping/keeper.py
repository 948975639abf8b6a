"""Which copy to keep: the best by resolution, then format, then file size, then metadata.

The order is total (the path breaks the last ties), so the same photos always give
the same keeper whatever order they were found in.
"""

from __future__ import annotations

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
    """Why ``keeper`` beat the others: the criteria that decided, in the order they apply.

    ``derived``: the others that are bordered or cropped copies (index id -> what changed):
    the full picture is kept over them before any other criterion."""
    derived = derived or {}
    def fmt(i: ImageInfo) -> int:
        return weights.format_rank.get(i.format.upper(), 0)

    criteria: list[tuple[Callable[[ImageInfo], object], Callable[[ImageInfo], str]]] = [
        (lambda i: i.width * i.height, lambda o: f"higher resolution ({keeper.width}x{keeper.height} over {o.width}x{o.height})"),
        (fmt, lambda o: f"preferred format ({keeper.format} over {o.format})"),
        (lambda i: i.size_bytes, lambda o: f"larger file ({keeper.size_bytes} over {o.size_bytes} bytes)"),
        (lambda i: i.exif_tags, lambda o: f"richer metadata ({keeper.exif_tags} over {o.exif_tags} EXIF tags)"),
    ]
    decided: dict[int, list[str]] = {}
    for other in others:
        if other.index_id in derived:
            decided.setdefault(-1, []).append(f"the full picture ({derived[other.index_id] or 'the other is cropped'})")
            continue
        for rank, (value, show) in enumerate(criteria):
            if value(keeper) != value(other):
                decided.setdefault(rank, []).append(show(other))
                break
        else:
            decided.setdefault(len(criteria), []).append("a byte-identical or equal copy: first by path")
    reasons: list[str] = []
    for rank in sorted(decided):
        for text in decided[rank]:
            if text not in reasons:
                reasons.append(text)
    return "; ".join(reasons)
