"""The pipeline: files -> decode -> hashes -> index -> pairs -> groups -> tags.

Each step is a plain function on plain data; only the catalog and the index hold
state. The catalog is the truth: the index is rebuilt from the catalog's hashes
whenever the two disagree (after a crash between their writes, or a new algorithm).

One catalog call per step (:mod:`lumina_plugin.catalog.interface`): a batch's rows, pairs
and tags are each written in one call, and what was written is kept in hand, not read back.
Commands and the watcher reach the catalog and the index through the engine's methods.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import calibration
from ._faults import crash_point
from .calibration import Calibration, Proposal
from .catalog import open_catalog
from .catalog.interface import Catalog, info_of, pairs_after_replace
from .catalog.locator import normalized
from .config import Config
from .files import FileError, discover
from .grouping import accept_pairs, build_groups, exact_links, plausible, search_radii
from .grouping.candidates import FoundPairs, find_pairs
from .grouping.present import ROUNDS, find_stale
from .grouping.second_look import pixel_look
from .grouping.stored import as_stored
from .index._arrays import isin
from .index.search import pick_backend
from .ingest.pipeline import hash_paths, record_for  # noqa: F401  (record_for: public here too)
from .model import CODE_WORDS, StoredFile
from .resident import Residents, open_index, search_batch
from .run_report import RunReport
from .tagging import desired_state, diff_states
from .upkeep import Upkeep, View

__all__ = ["Engine", "Progress", "RunReport", "record_for"]

log = logging.getLogger(__name__)

#: progress(phase, done, total): how long work reports itself (a bar on a terminal,
#: Redis messages inside a Celery worker, nothing in tests).
Progress = Callable[[str, int, int], None]


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Add the wall time of the block to ``timings[phase]`` (benchmarks and ``-v`` read them)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


class Engine(Upkeep):
    """One catalog and its index, opened for a run. Use as a context manager."""

    def __init__(self, catalog: Catalog | str | os.PathLike[str], config: Config | None = None,
                 progress: Progress | None = None, lock_timeout: float = 10.0, mode: str = "create",
                 keep: Residents | None = None) -> None:
        """``catalog`` is an open :class:`Catalog`, or a locator for :func:`open_catalog`
        (a SQLite path or a ``postgresql://`` URL); the engine closes it either way. ``mode``:
        what the run does with a SQLite catalog it opens (``catalog/sqlite_open.py``: create,
        write, read, or preview for a dry run); a catalog opened to read gets a read-only index.
        ``keep``: a long-lived process's kept indexes (``resident.py``): the index comes from there,
        open since the last event, and an import searches its resident copy."""
        self.config = config or Config()
        self.progress: Progress = progress or (lambda phase, done, total: None)
        #: Seconds spent opening: the catalog (connection, lock) and the index (read and reconciled).
        self.timings: dict[str, float] = {}
        if isinstance(catalog, (str, os.PathLike)):
            with _timed(self.timings, "open catalog"):
                catalog = open_catalog(normalized(catalog), self.config.tags, lock_timeout, self.config.lumina,
                                       mode=mode)
        self.catalog = catalog
        #: The algorithm version of the codes this run hashes and compares (the decode mode's).
        self.version = self.config.hash_version()
        try:
            with _timed(self.timings, "read hashes"):
                self.index, self.resident = open_index(self.catalog, self.version, keep)
        except BaseException:
            self.catalog.close()
            raise

    def close(self) -> None:
        if self.resident is None:  # a kept index stays open for the next event
            self.index.close()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hashing ------------------------------------------------------------------------
    def _needs_hashing(self, paths: Sequence[str]) -> tuple[list[str], dict[str, StoredFile]]:
        """The paths to hash (new, changed or hashed by another version), and the rows already stored."""
        if not paths:  # a whole-catalog run with nothing new: skip the catalog's lookup (a table scan in Lumina)
            return [], {}
        stored = self.catalog.stored_files(paths)
        return [p for p in paths if (prior := stored.get(p)) is None or not prior.still_current(p, self.version)], stored

    def _import(self, paths: Iterable[str], report: RunReport, store: bool,
                temp: int = -1) -> tuple[np.ndarray, np.ndarray, dict[str, StoredFile]]:
        """Hash new or changed files; store them unless ``store`` is False (dry run).

        Returns the (index ids, codes) of what was hashed and the rows stored before; a dry
        run gets negative temporary ids (``temp`` down) and their ImageInfo in ``report.images``;
        ``report.hashed_ids`` and ``report.new_ids`` gain what was hashed and what is new.
        """
        # A catalog that keeps text paths only (Lumina's PostgreSQL) gets one error line per name
        # that is not UTF-8; the SQLite catalog stores such names as their bytes.
        files, errors = discover(paths, self.config.extensions, self.config.follow_symlinks,
                                 utf8_only=not getattr(self.catalog, "lossless_paths", False))
        report.files, report.errors = len(files), list(errors)
        todo, stored = self._needs_hashing(files)
        report.unchanged = len(files) - len(todo)
        new_ids: list[np.ndarray] = []
        new_codes: list[np.ndarray] = []
        for records, errs in hash_paths(todo, self.config, self.progress):
            report.errors += errs
            report.hashed += len(records)
            if not records:
                continue
            codes = np.stack([r.codes for r in records])
            if store:
                rows = self.catalog.upsert_images(records)  # one call, one transaction per batch
                ids = np.array([r.index_id for r in rows], dtype=np.int64)
                crash_point("between-catalog-and-index")
                self.index.add(ids, codes)
            else:
                ids = np.arange(temp, temp - len(records), -1, dtype=np.int64)
                temp -= len(records)
                report.images.update({int(i): info_of(r, int(i), stored[r.path].id if r.path in stored
                                                      else self.catalog.new_image_id(r.path))
                                      for i, r in zip(ids, records)})
            new_ids.append(ids)
            new_codes.append(codes)
            report.hashed_ids.update(ids.tolist())
            report.new_ids.update(int(i) for i, r in zip(ids, records) if r.path not in stored)
        if not new_ids:
            return np.empty(0, np.int64), np.empty((0, CODE_WORDS), np.uint64), stored
        return np.concatenate(new_ids), np.concatenate(new_codes), stored

    # -- the three runs -------------------------------------------------------------------
    def import_paths(self, paths: Iterable[str], job_id: str | None = None) -> RunReport:
        """The on-import path: hash what is new, search it against the index, tag.
        ``job_id``: the host's job the import belongs to, recorded with the run."""
        report = RunReport(kind="import", job_id=job_id)
        ids, codes, _ = self._import(paths, report, store=True)
        pairs = self.catalog.pairs()  # read before the batch's pairs replace theirs: nothing is read back
        if len(ids):
            self.progress("searching", 0, 1)
            report.backend = self._backend(len(self.index.ids), len(ids))
            with _timed(report.timings, "search"):
                found = self._find_pairs(report, self.index.ids, self.index.codes, ids, codes, resident=True)
            self.catalog.replace_pairs(ids, found.a, found.b, found.dist, None)
            pairs = pairs_after_replace(pairs, ids, found.a, found.b, found.dist)
            self.progress("searching", 1, 1)
        self._regroup(report, *pairs, dry_run=False)
        return report

    def find_duplicates(self, paths: Iterable[str] = (), dry_run: bool = False,
                        job_id: str | None = None) -> RunReport:
        """Find Duplicates: import ``paths``, compare every photo with every other, tag.
        ``job_id``: the host's job (Lumina's jobs row of the button press), recorded with the run."""
        report = RunReport(kind="find-duplicates", dry_run=dry_run, job_id=job_id)
        with _timed(report.timings, "import"):
            if not dry_run:  # photos the host catalogued that we never hashed (Lumina's scans)
                paths = [*paths, *self.catalog.unhashed_paths(self.version)]
            new_ids, new_codes, stored = self._import(paths, report, store=not dry_run)
        ids, codes = self.index.ids, self.index.codes
        if dry_run and len(new_ids):  # a re-hashed file replaces its stored codes
            replaced = [stored[i.path].index_id for i in report.images.values() if i.path in stored]
            keep = ~isin(ids, np.array(replaced, dtype=np.int64))
            ids = np.concatenate([ids[keep], new_ids])
            codes = np.concatenate([codes[keep], new_codes])
        self.progress("comparing", 0, 1)
        report.backend = self._backend(len(ids), None)
        with _timed(report.timings, "search"):
            pairs = self._find_pairs(report, ids, codes)
        self.progress("comparing", 1, 1)
        if not dry_run:
            with _timed(report.timings, "store pairs"):
                self.catalog.replace_pairs(None, pairs.a, pairs.b, pairs.dist, None)
            crash_point("between-pairs-and-tags")
        self._regroup(report, pairs.a, pairs.b, pairs.dist, dry_run=dry_run)
        log.info("find-duplicates: %s", ", ".join(f"{k} {v:.2f} s" for k, v in {**self.timings, **report.timings}.items()))
        return report

    def _find_pairs(self, report: RunReport, ids: np.ndarray, codes: np.ndarray,
                    query_ids: np.ndarray | None = None, query_codes: np.ndarray | None = None,
                    resident: bool = False) -> FoundPairs:
        """The classic and the geometric search (grouping/candidates.py); unsure geometric pairs
        get a second look at their pixels, found through the catalog or this dry run's images.
        ``resident``: a batch added to the index, searched on the resident copy where kept."""
        def photo_of(index_id: int) -> tuple[str, int, int] | None:
            info = report.images.get(index_id) or self.catalog.images([index_id]).get(index_id)
            return None if info is None else (info.path, info.width, info.height)

        look = pixel_look(photo_of, self.config.max_pixels, self._look_workers())
        found = None
        if resident and self.resident is not None and query_ids is not None and query_codes is not None:
            found = search_batch(self.resident, self.index, self.config, query_ids, query_codes, look, report.timings)
        if found is None:
            found = find_pairs(ids, codes, self.config.thresholds, self.config.index.search_options(), query_ids,
                               query_codes, look)
        report.geometric = dict(found.geometric)
        return found

    def _look_workers(self) -> int:
        """Processes for the pixel looks: the pool as it runs (restarting it at another size
        would cost more than it saves), else the configured workers, else one per core."""
        from .ingest import pool
        return pool.running_workers() or self.config.hashing.workers or pool.cpu_count()

    def _backend(self, n: int, queries: int | None) -> str:
        """Which backend the search will use (for the widest radius), to say so in the report."""
        options = self.config.index.search_options()
        return pick_backend(options["backend"], max(search_radii(self.config.thresholds)), max(n, 1), queries,
                            device=options["device"])

    def remove_paths(self, paths: Sequence[str]) -> RunReport:
        """Photos gone from disk or from the host: forget them and regroup what remains."""
        report = RunReport(kind="remove")
        removed = self.catalog.remove_paths([os.path.abspath(os.fspath(p)) for p in paths])
        if removed:
            self.index.remove(np.array(removed, dtype=np.int64))
        report.files = len(removed)
        self._regroup(report, *self.catalog.pairs(), dry_run=False)
        return report

    def move_paths(self, moves: Sequence[tuple[str, str]]) -> RunReport:
        """Files renamed or moved on disk: keep their rows (hashes, tags, groups), change the path."""
        report = RunReport(kind="move")
        pairs = [(os.path.abspath(os.fspath(a)), os.path.abspath(os.fspath(b))) for a, b in moves]
        report.files = self.catalog.move_paths(pairs)
        return report

    def review(self) -> RunReport:
        """The groups as the catalog holds them now (after an undo: without the undone ones), their
        photos checked on disk (``grouping/stored.py``); writes nothing."""
        report = RunReport(kind="review", dry_run=True)
        self._regroup(report, *self.catalog.pairs(), dry_run=True)
        report.groups, report.images = as_stored(self.catalog.tag_state().groups, report.groups, report.images,
                                                 self._on_disk, self.config.keeper)
        report.diff = None  # what a run would change is find-duplicates --dry-run's to say
        return report

    def decide(self, kind: str, paths: Sequence[str]) -> RunReport:
        """Record a person's decision and retag at once.

        ``not-duplicate A B``: the pair is never flagged again. ``duplicate A B``: a
        confirmed pair (calibration counts it). ``keeper P``: P is kept in its group.
        """
        if kind != "forget":  # "forget": the decision is already withdrawn; just retag
            self.catalog.add_decision(kind, [os.path.abspath(os.fspath(p)) for p in paths])
        report = RunReport(kind=f"decide {kind}")
        self._regroup(report, *self.catalog.pairs(), dry_run=False)
        return report

    def undo(self) -> dict[str, Any] | None:
        """Reverse the last run that changed tags or groups (see ``Catalog.undo_last``); None if none."""
        result = self.catalog.undo_last()
        if result is not None and self.config.xmp_sidecars:
            errors = self._write_sidecars(result["tags_restored"], result["tags_removed"])
            result["errors"] = [e.as_json() for e in errors]
        return result

    # -- what commands and the watcher ask ---------------------------------------------------
    def decisions(self) -> list[dict[str, Any]]:
        """Every decision recorded so far, oldest first (``decide list``)."""
        return self.catalog.decisions()

    def forget(self, decision_id: int) -> RunReport | None:
        """Withdraw a decision and retag at once; None if there is no decision with that id."""
        return self.decide("forget", []) if self.catalog.forget_decision(decision_id) else None

    def calibrate(self, per_band: int, target: float = 0.95) -> tuple[list[Proposal], Calibration]:
        """Pairs to judge from each distance band, and the precision the verdicts so far show. The
        search is wider than the grouping thresholds: calibration must see the bands beyond them."""
        return calibration.calibrate(self.index.ids, self.index.codes, self.catalog.decisions(), per_band, target,
                                     lambda ids: {i: v.path for i, v in self.catalog.images(ids).items()},
                                     search_options=self.config.index.search_options())

    def catalogued(self, wanted: Callable[[str], bool]) -> dict[str, tuple[int, int, str]]:
        """Path -> (size, mtime_ns, checksum) of each catalogued photo that ``wanted`` accepts:
        what the watcher's catch-up compares its folders with."""
        sums = {info.path: info.checksum for info in self.catalog.images().values() if wanted(info.path)}
        return {p: (s.size_bytes, s.mtime_ns, sums[p]) for p, s in self.catalog.stored_files(list(sums)).items()}

    # -- grouping and tags ---------------------------------------------------------------
    def _regroup(self, report: RunReport, a: np.ndarray, b: np.ndarray, dist: np.ndarray,
                 dry_run: bool, view: View | None = None) -> None:
        """Group the pairs, check the groups' photos against the disk (``grouping/present.py``),
        deal with what differs and group again, then tag (a dry run: say what would change)."""
        timings = report.timings
        base = dict(report.images)  # a dry run's photos: hashed in this run, not stored
        view = view or View()
        checked = set(report.hashed_ids)  # just hashed, or found as catalogued in an earlier round
        for round_ in range(ROUNDS + 1):
            report.images = dict(base)
            self._group(report, a, b, dist, dry_run, view)
            if round_ == ROUNDS:
                break
            with _timed(timings, "check files"):
                stale = find_stale(report.groups, report.images, self.catalog.stored_files, checked, report.new_ids)
            checked |= stale.fine
            if not stale:
                break
            if round_ == ROUNDS - 1:  # still changing under us: leave those out of this run
                view.hidden.update(stale.vanished, stale.moves, stale.changed, stale.unreachable)
                continue
            a, b, dist = self._settle(report, stale, (a, b, dist), dry_run, view, base)
        images = report.images
        new_state = desired_state((g.row(images) for g in report.groups), self.config.tags)
        with _timed(timings, "diff"):
            report.diff = diff_states(self.catalog.tag_state(), new_state)
        if dry_run:
            ids = {i for i, _ in report.diff.add_tags + report.diff.remove_tags}
            report.paths = {**self.catalog.paths_of(ids), **{v.id: v.path for v in images.values()}}
        else:
            # The run report keeps the per-file errors too (capped: a bad mount can fail millions).
            # (a name that is not UTF-8 is kept escaped: JSON in PostgreSQL holds no lone surrogates)
            stored = {**report.summary(), "errors": [{k: v.encode("utf-8", "backslashreplace").decode()
                                                      for k, v in e.as_json().items()} for e in report.errors[:1000]]}
            with _timed(timings, "write tags"):
                report.run_id = self.catalog.apply_tag_diff(report.diff, report.kind, stored, job_id=report.job_id)
            if self.config.xmp_sidecars:
                report.errors += self._write_sidecars(report.diff.add_tags, report.diff.remove_tags)

    def _group(self, report: RunReport, a: np.ndarray, b: np.ndarray, dist: np.ndarray,
               dry_run: bool, view: View) -> None:
        """``report.groups`` (and ``report.images``, the facts of their photos) from the pairs,
        the byte-identical copies and the decisions, without the photos ``view`` hides."""
        timings = report.timings
        with _timed(timings, "read facts"):
            # Only pairs that pass on their distances need the photos' facts; in a large library
            # many candidates are chance look-alikes on one hash, dropped here unread.
            keep = plausible(dist, self.config.thresholds)
            a, b, dist = a[keep], b[keep], dist[keep]
            copy_sets = self.catalog.exact_copy_sets()
            wanted = set(a.tolist()) | set(b.tolist()) | {i for s in copy_sets for i in s}
            images = {**self.catalog.images(i for i in wanted if i >= 0), **report.images}
            if dry_run:  # a file re-hashed in this dry run shadows its stored row
                shadowed = {info.path for info in report.images.values()}
                images = {i: v for i, v in images.items() if i < 0 or v.path not in shadowed}
            images = {i: v for i, v in images.items() if i not in view.hidden}
            decisions = self.catalog.decisions()
        with _timed(timings, "group"):
            same = view.aliases.get  # a dry run's moved or rehashed photo keeps its decisions
            apart = {(min(same(x, x), same(y, y)), max(same(x, x), same(y, y)))
                     for x, y in ((d["index_1"], d["index_2"]) for d in decisions if d["kind"] == "not-duplicate")}
            preferred = {same(d["index_1"], d["index_1"]) for d in decisions if d["kind"] == "keeper"}
            links = [link for link in accept_pairs(a, b, dist, images, self.config.thresholds)
                     if (link.a, link.b) not in apart] + exact_links(images)
            report.groups = build_groups(links, images, self.config.keeper, self.config.thresholds, preferred)
            report.images = images

    def _write_sidecars(self, add: Iterable[tuple[str, str]], remove: Iterable[tuple[str, str]]) -> list[FileError]:
        """Mirror tag changes (image id, tag) into XMP sidecars; a sidecar that fails is an error line."""
        from . import xmp
        add, remove = list(add), list(remove)
        paths = self.catalog.paths_of({i for i, _ in add + remove})
        changes: dict[str, tuple[set[str], set[str]]] = {}
        for k, pairs in enumerate((add, remove)):  # k: 0 added, 1 removed
            for image_id, tag in pairs:
                changes.setdefault(paths[image_id], (set(), set()))[k].add(tag)
        return [FileError(p, f"XMP sidecar: {e}") for p, e in xmp.write_many(changes)]

