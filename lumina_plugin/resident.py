"""The index kept open in a long-lived process, between the events it handles.

The plugin's hooks open an :class:`~lumina_plugin.engine.Engine` per event (the catalog is
opened and closed with it, so no lock is held between events). In a process that runs for days
(the watcher, a Celery worker, the Lumina listener) the plugin passes its :class:`Residents`:
the engine then takes the catalog's :class:`~lumina_plugin.index.HashIndex` from there, open
since the last event, with its :class:`~lumina_plugin.index.resident.ResidentIndex` (the
searched columns and geometric search keys, on the GPU or in host memory), instead of reading
the index and checking it against the whole catalog again; an import batch is then searched
against the resident copy (:func:`search_batch`).

Never stale: at each event the kept index re-reads its manifest (``HashIndex.refresh``); when
another process wrote it since (its generation moved), it reloads, the engine checks it against
the catalog again, and the resident copy is rebuilt from it at the next search. Our own writes
are replayed into the copy from the index's change log.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .grouping import search_radii
from .grouping.candidates import FoundPairs, SecondLook, find_pairs
from .index import HashIndex
from .index._arrays import isin
from .index.resident import ResidentIndex
from .index.search import pick_backend

if TYPE_CHECKING:
    from .catalog.interface import Catalog
    from .config import Config

__all__ = ["Resident", "Residents", "open_index", "reconcile", "search_batch"]

log = logging.getLogger(__name__)


class Resident:
    """One catalog's index, kept open, and its resident search copy (made at the first search)."""

    def __init__(self, directory: Path, version: int) -> None:
        self.directory, self.version = directory, version
        self.index = HashIndex.open(directory, version)  # (read-only where the folder cannot be written)
        #: The index epoch last checked against the catalog (-1: never).
        self.reconciled_epoch = -1
        self.copy: ResidentIndex | None = None

    def open(self) -> HashIndex:
        """The index as it is on disk now (reloaded if another process wrote it)."""
        self.index.refresh()
        return self.index

    def search_copy(self, radii: tuple[int, ...], device: int | None) -> ResidentIndex | None:
        """The resident copy for these radii and device (None: a radius it cannot serve)."""
        copy = self.copy
        if copy is None or copy.radii != radii or copy.device != device:
            try:
                copy = self.copy = ResidentIndex(radii, device)
            except ValueError:
                self.copy = None
        return self.copy

    def close(self) -> None:
        self.copy = None
        self.index.close()


class Residents:
    """The kept indexes of a process, by index folder and algorithm version (at most ``keep``:
    the least recently used one is closed). One lock: events are handled one at a time."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._kept: OrderedDict[tuple[str, int], Resident] = OrderedDict()
        self.lock = threading.RLock()

    def get(self, directory: Path, version: int) -> Resident:
        key = (os.path.realpath(directory), int(version))
        kept = self._kept.pop(key, None)
        if kept is None:
            kept = Resident(Path(directory), version)
        self._kept[key] = kept
        while len(self._kept) > self.keep:
            self._kept.popitem(last=False)[1].close()
        return kept

    def clear(self) -> None:
        """Close every kept index (tests; a process about to exit)."""
        while self._kept:
            self._kept.popitem()[1].close()


def reconcile(index: HashIndex, catalog: Catalog, version: int) -> None:
    """Make the index hold exactly the catalog's current codes (the catalog is the truth: after a
    crash between their writes, or a new algorithm version)."""
    ids, codes = catalog.all_codes(version)
    have_ids, have_codes = index.ids, index.codes
    stale = have_ids[~isin(have_ids, ids)]
    if len(stale):
        index.remove(stale)
    present = isin(ids, have_ids)
    same = present.copy()
    same[present] = (have_codes[np.searchsorted(have_ids, ids[present])] == codes[present]).all(axis=1)
    if (~same).any():
        log.info("index: adding %d codes from the catalog", int((~same).sum()))
        index.add(ids[~same], codes[~same])


def open_index(catalog: Catalog, version: int, keep: Residents | None) -> tuple[HashIndex, Resident | None]:
    """The catalog's index, level with the catalog, for an engine: opened and checked against
    the whole catalog, or (``keep``, a catalog opened to write) the kept one, checked again only
    when it was reloaded since (another process wrote it). A catalog opened to read gets a
    read-only index of its own."""
    read_only = bool(getattr(catalog, "read_only", False))
    if keep is None or read_only:
        index = HashIndex.open(catalog.index_dir, version, read_only=read_only or None)
        reconcile(index, catalog, version)
        return index, None
    with keep.lock:
        resident = keep.get(catalog.index_dir, version)
        index = resident.open()
        if resident.reconciled_epoch != index.epoch:
            reconcile(index, catalog, version)
            resident.reconciled_epoch = index.epoch
        return index, resident


def copy_device(config: Config, n: int, q: int) -> int | None:
    """The GPU the resident copy lives on, or None for host memory: where the search runs."""
    options = config.index.search_options()
    radius = max(search_radii(config.thresholds))
    chosen = pick_backend(options["backend"], max(radius, 0), max(n, 2), max(q, 1), device=options["device"])
    return int(options["device"]) if chosen == "gpu" else None


def search_batch(resident: Resident, index: HashIndex, config: Config, ids: np.ndarray, codes: np.ndarray,
                 second_look: SecondLook | None, timings: dict[str, float] | None = None) -> FoundPairs | None:
    """An import batch (``ids``, ``codes``: already added to ``index``) against the resident
    copy, then ``find_pairs`` on what it found; None when the copy cannot serve the search
    (a radius beyond the lane join's), and the caller searches the whole index as before.
    ``timings`` gains the two parts: "resident search" (the copy grown by the batch and
    searched) and "verify pairs" (``find_pairs`` on the hits: the geometric verdicts)."""
    copy = resident.search_copy(tuple(search_radii(config.thresholds)), copy_device(config, len(index), len(ids)))
    if copy is None:
        return None
    t0 = time.perf_counter()
    hits = copy.search(index, ids)
    t1 = time.perf_counter()
    options: dict[str, Any] = config.index.search_options()
    found = find_pairs(hits.ids, hits.codes, config.thresholds, options, ids, codes, second_look,
                       searched=(hits.classic, hits.geo_a, hits.geo_b))
    if timings is not None:
        timings["resident search"] = timings.get("resident search", 0.0) + t1 - t0
        timings["verify pairs"] = timings.get("verify pairs", 0.0) + time.perf_counter() - t1
    return found
