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
from collections import OrderedDict
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

#: A look: (index id a, index id b, rotation) -> packed verdict or 0.
Look = Callable[[int, int, int], int]

#: Below this many pairs the looks run in the calling process: the pool's start (about a
#: second when it is not running yet) and the photos' second decode in a worker cost more.
POOL_MIN_PAIRS = 16


def one_look(photo_of: PhotoOf, max_pixels: int) -> Look:
    """A look at one pair: decode the two photos (reduced to ``LOOK_SIDE``; the last ``CACHE``
    kept, prepared, with their rotations: a photo is often in several unsure pairs) and
    register them.

    A photo that cannot be read (gone, changed, unreadable) makes the pair "no match": the
    look never fails a run."""
    cache: OrderedDict[int, LookPhoto | None] = OrderedDict()

    def prepared(index_id: int) -> LookPhoto | None:
        if index_id in cache:
            cache.move_to_end(index_id)
            return cache[index_id]
        found = photo_of(index_id)
        photo = None
        if found is not None:
            path, width, height = found
            draft = max(1, max(width, height) // LOOK_SIDE)
            try:
                photo = LookPhoto(np.asarray(decode(Path(path), max_pixels, draft).gray))
            except (PhotoError, OSError) as exc:
                log.info("second look: %s: %s", path, exc)
        cache[index_id] = photo
        if len(cache) > CACHE:
            cache.popitem(last=False)
        return photo

    def look(a: int, b: int, rotation: int) -> int:
        pa, pb = prepared(a), prepared(b)
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

    return look


def looks_task(photos: dict[int, tuple[str, int, int]], pairs: list[tuple[int, int, int]],
               max_pixels: int) -> list[int]:
    """A pool worker's share of the looks: ``pairs`` in order, their photos in ``photos``."""
    look = one_look(photos.get, max_pixels)
    return [look(a, b, r) for a, b, r in pairs]


def pixel_look(photo_of: PhotoOf, max_pixels: int, workers: int = 1) -> SecondLook:
    """A :data:`~.candidates.SecondLook`: the verdicts of a list of pairs, in order.

    With ``workers`` > 1 and enough pairs, the looks are shared out over the worker pool
    (``ingest/pool.py``) in contiguous runs of pairs sorted by photo, so a photo in several
    pairs is mostly decoded once; each look is the same function either way, so the verdicts
    are the serial ones (``tests/test_second_look_pool.py``)."""
    serial = one_look(photo_of, max_pixels)

    def looks(pairs: Sequence[tuple[int, int, int]]) -> list[int]:
        pairs = [(int(a), int(b), int(r)) for a, b, r in pairs]
        if workers <= 1 or len(pairs) < POOL_MIN_PAIRS:
            return [serial(a, b, r) for a, b, r in pairs]
        from ..ingest.pool import get_pool, shutdown_pool

        order = sorted(range(len(pairs)), key=lambda k: (pairs[k][0], pairs[k][1]))
        per = -(-len(order) // (workers * 4))  # a few tasks per worker: a slow one is not the tail
        parts = [order[i:i + per] for i in range(0, len(order), per)]
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
            # are the same function, here, one at a time; the next run starts a fresh pool.
            log.warning("second looks: the worker pool stopped (%s); looking at the rest in this process",
                        exc.__class__.__name__)
            shutdown_pool(wait=False)
            for n, part in enumerate(parts):
                if not done[n]:
                    for k in part:
                        out[k] = serial(*pairs[k])
        return out

    return looks
