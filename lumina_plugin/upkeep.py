"""Keeping the catalog in line with the disk, for the photos a run is about to show.

A mixin of :class:`lumina_plugin.engine.Engine`. The engine groups, asks
``grouping/present.py`` which members of the groups differ from the disk, and calls
:meth:`Upkeep._settle` before grouping again: vanished photos are taken out of the catalog (as
``Engine.remove_paths`` does: rows, pairs, tags, group memberships, decisions naming them),
moved ones keep their rows at the new path (``Catalog.move_paths``), changed ones are rehashed.
A dry run and the review write nothing: only their :class:`View` of the catalog changes.
``forget`` (:meth:`Upkeep.forget_paths`) takes photos out on request.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np

from .catalog.interface import Catalog, pairs_after_replace
from .grouping.candidates import FoundPairs
from .grouping.present import Stale, check_photos
from .index import HashIndex
from .index._arrays import isin
from .model import ImageInfo, StoredFile
from .run_report import RunReport

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


class View:
    """What a run leaves out of its groups, and whose decisions pass to which photo (a dry run's
    moved or rehashed photos have new temporary ids; the decisions name the stored ones)."""

    def __init__(self, hidden: set[int] | None = None) -> None:
        self.hidden: set[int] = hidden or set()
        self.aliases: dict[int, int] = {}



class Upkeep:
    """The engine's upkeep of the catalog against the disk (see the module docstring)."""

    catalog: Catalog
    index: HashIndex

    def _import(self, paths: Iterable[str], report: RunReport, store: bool,
                temp: int = -1) -> tuple[np.ndarray, np.ndarray, dict[str, StoredFile]]:
        raise NotImplementedError

    def _find_pairs(self, report: RunReport, ids: np.ndarray, codes: np.ndarray,
                    query_ids: np.ndarray | None = None, query_codes: np.ndarray | None = None) -> FoundPairs:
        raise NotImplementedError

    def _regroup(self, report: RunReport, a: np.ndarray, b: np.ndarray, dist: np.ndarray,
                 dry_run: bool, view: View | None = None) -> None:
        raise NotImplementedError

    def _on_disk(self, image_ids: Collection[str]) -> dict[int, ImageInfo]:
        """The facts of these catalogued photos (image ids) that are on disk as catalogued."""
        rows = self.catalog.stored_files(list(self.catalog.paths_of(image_ids).values()))
        infos = self.catalog.images(r.index_id for r in rows.values())
        return {i: infos[i] for i in check_photos(sorted(infos), infos, self.catalog.stored_files).fine}

    def forget_paths(self, paths: Sequence[str], dry_run: bool = False) -> tuple[RunReport, list[str], list[str]]:
        """Take photos out of the catalog (their rows, pairs, tags, group memberships and the
        decisions naming them) and regroup what remains; the files on disk are not touched.

        ``paths``: files, or folders (every catalogued photo under them). Returns the run's report,
        the paths taken out (a dry run: that would be) and the ``paths`` that matched no photo."""
        wanted = [os.path.abspath(os.fspath(p)) for p in paths]
        catalogued = {info.path: i for i, info in self.catalog.images().items()}  # one read; a folder needs the paths
        hits: dict[str, int] = {}
        unmatched = []
        for root in wanted:
            under = root.rstrip(os.sep) + os.sep
            found = {p: i for p, i in catalogued.items() if p == root or p.startswith(under)}
            hits.update(found)
            if not found:
                unmatched.append(root)
        report = RunReport(kind="forget", dry_run=dry_run, files=len(hits))
        if dry_run:
            self._regroup(report, *self.catalog.pairs(), dry_run=True, view=View(set(hits.values())))
        else:
            self.index.remove(np.array(self.catalog.remove_paths(sorted(hits)), dtype=np.int64))
            self._regroup(report, *self.catalog.pairs(), dry_run=False)
        return report, sorted(hits), unmatched

    def _settle(self, report: RunReport, stale: Stale, pairs: Pairs,
                dry_run: bool, view: View, base: dict[int, Any]) -> Pairs:
        """Bring the catalog up to date with the disk for the group members in ``stale``: the
        vanished taken out, the moved given their new paths, the changed rehashed. A dry run (and
        the review) writes nothing: only its view changes. Returns the pairs to group again."""
        images = report.images
        view.hidden.update(stale.unreachable)  # may exist: never removed, never advised on
        report.unavailable += sorted(images[i].path for i in stale.unreachable if images[i].path not in report.unavailable)
        gone = list(stale.vanished)
        for old, new in sorted(stale.moves.items()):
            move = (images[old].path, images[new].path)
            if dry_run or self.catalog.move_paths([move]):  # the old row, decisions and tags, at the new path
                report.moved.append(move)
                if dry_run:
                    view.aliases[old] = new
                else:
                    self.index.remove(np.array([new], dtype=np.int64))  # the new row gave way to the old
            else:  # a catalog that keeps its rows by path cannot move: an ordinary vanished photo
                gone.append(old)
        report.vanished += sorted(images[i].path for i in gone)
        if dry_run:
            view.hidden.update(gone, stale.moves)
        else:
            self.index.remove(np.array(self.catalog.remove_paths([images[i].path for i in gone]), dtype=np.int64))
        if stale.changed:
            sub = RunReport(kind=report.kind)
            ids, codes, _ = self._import([images[i].path for i in stale.changed], sub, store=not dry_run,
                                         temp=min([-1, *(i - 1 for i in base)]))
            report.hashed, report.errors = report.hashed + sub.hashed, report.errors + sub.errors
            report.hashed_ids |= sub.hashed_ids
            base.update(sub.images)
            now = {v.path: i for i, v in sub.images.items()}
            view.aliases.update({i: now[images[i].path] for i in stale.changed if images[i].path in now})
            failed = {e.path for e in sub.errors}  # no longer a photo we can read: left out
            view.hidden.update(i for i in stale.changed if images[i].path in failed)
            if len(ids):
                keep = ~isin(self.index.ids, np.array(sorted(view.hidden | set(view.aliases)), dtype=np.int64))
                found = self._find_pairs(sub, self.index.ids[keep], self.index.codes[keep], ids, codes)
                if not dry_run:
                    self.catalog.replace_pairs(ids, found.a, found.b, found.dist, None)
                pairs = pairs_after_replace(pairs, ids, found.a, found.b, found.dist)
        return pairs if dry_run else self.catalog.pairs()
