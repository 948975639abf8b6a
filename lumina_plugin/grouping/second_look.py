"""A second look at the pixels of the pairs the geometry words leave unsure.

A mild crop (a few percent off each side, unevenly) or a straightened copy (turned 1-4
degrees, then cropped) shifts every coefficient a little: its words come close to the
original's but not within the thresholds, and so do some consecutive shots of one scene. For
those candidates only, both photos are decoded again (at a reduced scale: the margins are
found on the 256-511 pixel working image, the registration runs at 192-383) and registered
against each other
(:func:`lumina_plugin.hashing.look.look_at`). The count is bounded by the search: only
pairs whose keys met and whose low codes are close are looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ..decode.photo import PhotoError, decode
from ..hashing import geometry
from ..hashing.look import LookPhoto, look_at
from . import geometric
from .candidates import SecondLook

log = logging.getLogger(__name__)

#: Long side (pixels) the photos are decoded to for a look: twice the working image's.
LOOK_SIDE = 2 * geometry.WORK_LONG
#: Photos kept between looks, prepared (a photo is often in several unsure pairs): each
#: holds its content at the look's scale and the rotations tried on it, a few MB at most.
CACHE = 32

#: photo(index id) -> (path, width, height), or None when the photo is unknown.
PhotoOf = Callable[[int], "tuple[str, int, int] | None"]

#: Below this many pairs the looks run in the calling process: the pool's start (about a
#: second when it is not running yet) and the photos' second decode in a worker cost more.
POOL_MIN_PAIRS = 16


def _prepare(photo_of: PhotoOf, max_pixels: int, index_id: int) -> LookPhoto | None:
    """One photo decoded (reduced to ``LOOK_SIDE``) and prepared for the looks; None when it
    cannot be read (gone, changed, unreadable): its pairs are "no match", the look never
    fails a run."""
    found = photo_of(index_id)
    if found is None:
        return None
    path, width, height = found
    draft = max(1, max(width, height) // LOOK_SIDE)
    try:
        return LookPhoto(np.asarray(decode(Path(path), max_pixels, draft).gray))
    except (PhotoError, OSError) as exc:
        log.info("second look: %s: %s", path, exc)
        return None


def _verdict(pa: LookPhoto | None, pb: LookPhoto | None, rotation: int) -> int:
    """The packed verdict of a look at two prepared photos, or 0."""
    if pa is None or pb is None:
        return 0
    seen = look_at(pa, pb, rotation)
    if not seen.ok:
        return 0
    relation = geometry.CROPPED | (geometry.ROTATED if rotation else 0)
    if seen.angle:
        relation |= geometry.STRAIGHTENED
    derived = 1 if seen.b_inside_a else -1
    return int(geometric.pack(np.array([rotation]), np.array([relation]), np.array([derived]),
                              np.array([seen.distance // 4]))[0])


def photo_order(pairs: Sequence[tuple[int, int, int]]) -> list[int]:
    """The pairs' indices in an order that keeps photos together: every pair of a photo, then
    those of the last photo met there, and so on (a depth-first walk of the pairs' graph,
    from the smallest id). Consecutive looks share their photos, so few are prepared twice
    (the peer library's 399 looks, ``CACHE`` photos kept one look at a time: 553 preparations
    of its 312 photos in the search's order, 509 sorted by photo, 335 in this one)."""
    of_photo: dict[int, list[int]] = {}
    for k, (a, b, _) in enumerate(pairs):
        of_photo.setdefault(a, []).append(k)
        if b != a:
            of_photo.setdefault(b, []).append(k)
    done = [False] * len(pairs)
    order: list[int] = []
    for start in sorted(of_photo):
        stack = [start]
        while stack:
            i = stack.pop()
            for k in of_photo[i]:
                if not done[k]:
                    done[k] = True
                    order.append(k)
                    a, b, _ = pairs[k]
                    stack.append(b if a == i else a)
    return order


def looks_in_order(photo_of: PhotoOf, max_pixels: int, pairs: Sequence[tuple[int, int, int]]) -> list[int]:
    """The verdicts of ``pairs``, in their order: each the one that its two photos, prepared
    afresh, would give (:func:`_prepare`, :func:`_verdict`), for less work. The looks run in
    :func:`photo_order`, and knowing the pairs to come, a
    prepared photo (with its rotations) is dropped once no later pair needs it, and when
    ``CACHE`` are kept the one needed last makes room (the peer library: each of its 312
    photos prepared once; the accuracy corpus, cliques of an original and its 36 copies:
    1,130 preparations of 980 photos, where one look at a time in the search's order took
    1,430). Fewer preparations are fewer decodes and fewer Pillow rotations."""
    order = photo_order(pairs)
    steps: dict[int, list[int]] = {}  # photo -> the steps that look at it, the next one last
    for step in range(len(order) - 1, -1, -1):
        a, b, _ = pairs[order[step]]
        for i in {a, b}:
            steps.setdefault(i, []).append(step)
    kept: dict[int, LookPhoto | None] = {}
    out = [0] * len(pairs)
    for k in order:
        a, b, rotation = pairs[k]
        for i in (a, b):
            if i not in kept:
                others = [j for j in kept if j not in (a, b)]
                if len(kept) >= CACHE and others:  # the one needed last goes (each kept one comes again)
                    del kept[max(others, key=lambda j: steps[j][-1])]
                kept[i] = _prepare(photo_of, max_pixels, i)
        out[k] = _verdict(kept[a], kept[b], rotation)
        for i in {a, b}:
            steps[i].pop()
            if not steps[i]:
                del kept[i]
    return out


def guided_parts(order: Sequence[int], workers: int, smallest: int = 8) -> list[list[int]]:
    """``order`` cut into contiguous runs for ``workers`` processes, each run half of what is
    left per worker (at least ``smallest``): large runs first keep a photo's pairs together,
    small ones last let the workers end together. The cost of a look varies twentyfold (a
    negative gives up after the coarse stage, a straightened crop turns up to ten times), so
    equal runs left one worker alone on the last one: the peer library's 399 looks in eight
    runs of 50 took 0.11-0.61 s of CPU each. Guided self-scheduling, as OpenMP's
    ``schedule(guided)``."""
    parts: list[list[int]] = []
    i = 0
    while i < len(order):
        n = max(smallest, -(-(len(order) - i) // (2 * workers)))
        parts.append(list(order[i:i + n]))
        i += n
    return parts


def looks_task(photos: dict[int, tuple[str, int, int]], pairs: list[tuple[int, int, int]],
               max_pixels: int) -> list[int]:
    """A pool worker's share of the looks: ``pairs`` in order, their photos in ``photos``."""
    return looks_in_order(photos.get, max_pixels, pairs)


def pixel_look(photo_of: PhotoOf, max_pixels: int, workers: int = 1) -> SecondLook:
    """A :data:`~.candidates.SecondLook`: the verdicts of a list of pairs, in order.

    With ``workers`` > 1 and enough pairs, the looks are shared out over the worker pool
    (``ingest/pool.py``) in contiguous runs of :func:`photo_order`, so a photo in several
    pairs is mostly decoded once; each look is the same function either way, so the verdicts
    are the serial ones (``tests/test_second_look_pool.py``)."""
    def looks(pairs: Sequence[tuple[int, int, int]]) -> list[int]:
        pairs = [(int(a), int(b), int(r)) for a, b, r in pairs]
        if workers <= 1 or len(pairs) < POOL_MIN_PAIRS:
            return looks_in_order(photo_of, max_pixels, pairs)
        from ..ingest.pool import get_pool, shutdown_pool

        parts = guided_parts(photo_order(pairs), workers)
        out = [0] * len(pairs)
        done = [False] * len(parts)
        try:
            pool = get_pool(workers)
            futures = []
            for part in parts:
                ids = {i for k in part for i in pairs[k][:2]}
                photos = {i: p for i in ids if (p := photo_of(i)) is not None}
                futures.append(pool.submit(looks_task, photos, [pairs[k] for k in part], max_pixels))
            for n, (part, fut) in enumerate(zip(parts, futures, strict=True)):
                for k, verdict in zip(part, fut.result(), strict=True):
                    out[k] = verdict
                done[n] = True
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            # A worker killed (out of memory, by hand) must not end the run: the looks left
            # are the same function, here; the next run starts a fresh pool.
            log.warning("second looks: the worker pool stopped (%s); looking at the rest in this process",
                        exc.__class__.__name__)
            shutdown_pool(wait=False)
            for n, part in enumerate(parts):
                if not done[n]:
                    for k, verdict in zip(part, looks_in_order(photo_of, max_pixels, [pairs[k] for k in part]),
                                          strict=True):
                        out[k] = verdict
        return out

    return looks
