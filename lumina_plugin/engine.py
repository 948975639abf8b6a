"""The pipeline: files -> decode -> hashes -> index -> pairs -> groups -> tags.

Each step is a plain function on plain data; only the catalog and the index hold
state. The catalog is the truth: the index is rebuilt from the catalog's hashes
whenever the two disagree (after a crash between their writes, or a new algorithm).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ._faults import crash_point
from .catalog import open_catalog
from .catalog.interface import Catalog
from .model import ImageInfo, ImageRecord, taken_timestamp
from .catalog.sqlite import image_id_for
from .config import Config
from .files import FileError, discover
from .ingest.pipeline import hash_paths, record_for  # noqa: F401  (record_for: public here too)
from .grouping import ACTIONS, Group, accept_pairs, build_groups, exact_links, plausible, search_radii
from .model import ALGORITHM_VERSION
from .index import HashIndex, all_pairs, query_pairs
from .index.search import pick_backend
from .tagging import TagDiff, desired_state, diff_states

log = logging.getLogger(__name__)

#: progress(phase, done, total): how long work reports itself (a bar on a terminal,
#: Redis messages inside a Celery worker, nothing in tests).
Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Add the wall time of the block to ``timings[phase]`` (benchmarks and ``-v`` read them)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


@dataclass
class RunReport:
    """What a run did; ``as_json`` is the ``--json`` output."""

    kind: str
    dry_run: bool = False
    files: int = 0
    hashed: int = 0
    unchanged: int = 0
    errors: list[FileError] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    images: dict[int, ImageInfo] = field(default_factory=dict)
    diff: TagDiff | None = None
    run_id: int | None = None
    #: Image id -> path for the images a dry run's changes touch.
    paths: dict[str, str] = field(default_factory=dict)
    #: The search backend that found the pairs ("mih", "faiss", "gpu"...), when one ran.
    backend: str | None = None
    #: Seconds per phase of this run ("search", "group", "write tags"...), in the order they ran.
    timings: dict[str, float] = field(default_factory=dict)
    #: The host's job this run belongs to (a Lumina jobs row, a scan): stored with the run.
    job_id: str | None = None

    def changes(self) -> dict[str, list[dict[str, str]]]:
        """The tag changes of a dry run, by path, as ``--json`` shows them."""
        if self.diff is None:
            return {"add": [], "remove": []}
        def rows(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
            return [{"path": self.paths.get(i, i), "tag": t} for i, t in pairs]
        return {"add": rows(self.diff.add_tags), "remove": rows(self.diff.remove_tags)}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files": self.files, "hashed": self.hashed, "unchanged": self.unchanged,
            "errors": len(self.errors), "groups": len(self.groups),
            "duplicates": sum(len(g.members) for g in self.groups), "dry_run": self.dry_run,
        }
        if self.diff is not None:
            out.update(self.diff.summary())
        if self.backend is not None:
            out["search_backend"] = self.backend
        return out

    def member_json(self, index_id: int, **fields: Any) -> dict[str, Any]:
        info = self.images[index_id]
        taken = (datetime.fromtimestamp(info.taken_ts, timezone.utc).replace(tzinfo=None).isoformat()
                 if info.taken_ts is not None else None)
        return {"path": info.path, **fields, "width": info.width, "height": info.height,
                "format": info.format, "size_bytes": info.size_bytes, "camera": info.camera,
                "taken_at": taken}

    def group_json(self, group: Group) -> dict[str, Any]:
        keeper = self.images[group.keeper]
        members = [self.member_json(group.keeper, kind="exact", relation="keeper", distance=0, role="keeper")]
        for m in group.members:
            entry = self.member_json(m.index_id, kind=m.kind, relation=m.relation, action=ACTIONS[m.relation],
                                     distance=m.distance, role="duplicate")
            if m.link is not None:
                entry["hashes"] = m.link.as_json()
            members.append(entry)
        return {"id": keeper.id, "keeper": keeper.path, "reason": group.reason,
                "similarity_type": group.similarity_type, "confidence": group.confidence,
                "savable_bytes": sum(self.images[m.index_id].size_bytes for m in group.members),
                "members": members}

    def as_json(self) -> dict[str, Any]:
        out = {"groups": [self.group_json(g) for g in self.groups],
               "errors": [e.as_json() for e in self.errors],
               "summary": self.summary()}
        if self.dry_run:
            out["changes"] = self.changes()
        return out


class Engine:
    """One catalog and its index, opened for a run. Use as a context manager."""

    def __init__(self, catalog: Catalog | Path | str, config: Config | None = None,
                 progress: Progress | None = None, lock_timeout: float = 10.0) -> None:
        """``catalog`` is an open :class:`Catalog`, or a locator for :func:`open_catalog`
        (a SQLite path or a ``postgresql://`` URL); the engine closes it either way."""
        self.config = config or Config()
        self.progress = progress or _no_progress
        #: Seconds spent opening: the catalog (connection, lock) and the index (read and reconciled).
        self.timings: dict[str, float] = {}
        if isinstance(catalog, (str, os.PathLike)):
            locator = os.fspath(catalog)
            if "://" not in locator:
                locator = os.path.abspath(locator)
            with _timed(self.timings, "open catalog"):
                catalog = open_catalog(locator, self.config.tags, lock_timeout, self.config.lumina)
        self.catalog = catalog
        try:
            with _timed(self.timings, "read hashes"):
                self.index = HashIndex.open(self.catalog.index_dir, ALGORITHM_VERSION)
                self._reconcile_index()
        except BaseException:
            self.catalog.close()
            raise

    def close(self) -> None:
        self.index.close()
        self.catalog.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- index <-> catalog ------------------------------------------------------------
    def _reconcile_index(self) -> None:
        """Make the index hold exactly the catalog's current codes."""
        ids, codes = self.catalog.all_codes(ALGORITHM_VERSION)
        have_ids, have_codes = self.index.ids, self.index.codes
        stale = have_ids[~_isin(have_ids, ids)]
        if len(stale):
            self.index.remove(stale)
        pos = np.searchsorted(have_ids, ids)
        present = (pos < len(have_ids)) & (have_ids[np.minimum(pos, max(len(have_ids) - 1, 0))] == ids) \
            if len(have_ids) else np.zeros(len(ids), dtype=bool)
        same = np.zeros(len(ids), dtype=bool)
        same[present] = (have_codes[pos[present]] == codes[present]).all(axis=1)
        if (~same).any():
            log.info("index: adding %d codes from the catalog", int((~same).sum()))
            self.index.add(ids[~same], codes[~same])

    # -- hashing ------------------------------------------------------------------------
    def _needs_hashing(self, paths: Sequence[str]) -> tuple[list[str], int]:
        if not paths:  # a whole-catalog run with nothing new: skip the catalog's lookup (a table scan in Lumina)
            return [], 0
        stored = self.catalog.stored_files(paths)
        todo = []
        for path in paths:
            prior = stored.get(path)
            if prior is not None and prior.hash_version == ALGORITHM_VERSION:
                try:
                    st = os.stat(path)
                except OSError:
                    st = None
                if st is not None and st.st_size == prior.size_bytes and st.st_mtime_ns == prior.mtime_ns:
                    continue
            todo.append(path)
        return todo, len(paths) - len(todo)

    def _import(self, paths: Iterable[str], report: RunReport, store: bool) -> tuple[np.ndarray, np.ndarray]:
        """Hash new or changed files; store them unless ``store`` is False (dry run).

        Returns the (index ids, codes) of what was hashed; a dry run gets negative
        temporary ids and their ImageInfo in ``report.images``.
        """
        files, errors = discover(paths, self.config.extensions, self.config.follow_symlinks)
        report.files, report.errors = len(files), list(errors)
        todo, report.unchanged = self._needs_hashing(files)
        new_ids: list[np.ndarray] = []
        new_codes: list[np.ndarray] = []
        temp = -1
        for records, errs in hash_paths(todo, self.config, self.progress):
            report.errors += errs
            report.hashed += len(records)
            if not records:
                continue
            codes = np.stack([r.codes for r in records])
            if store:
                rows = self.catalog.upsert_images(records)
                ids = np.array([r.index_id for r in rows], dtype=np.int64)
                crash_point("between-catalog-and-index")
                self.index.add(ids, codes)
            else:
                ids = np.arange(temp, temp - len(records), -1, dtype=np.int64)
                temp -= len(records)
                stored = self.catalog.stored_files([r.path for r in records])
                report.images.update({
                    int(i): info_from_record(int(i), r, stored[r.path].id if r.path in stored else image_id_for(r.path))
                    for i, r in zip(ids, records)})
            new_ids.append(ids)
            new_codes.append(codes)
        if not new_ids:
            return np.empty(0, np.int64), np.empty((0, 4), np.uint64)
        return np.concatenate(new_ids), np.concatenate(new_codes)

    # -- the three runs -------------------------------------------------------------------
    def import_paths(self, paths: Iterable[str], job_id: str | None = None) -> RunReport:
        """The on-import path: hash what is new, search it against the index, tag.
        ``job_id``: the host's job the import belongs to, recorded with the run."""
        report = RunReport(kind="import", job_id=job_id)
        ids, codes = self._import(paths, report, store=True)
        if len(ids):
            self.progress("searching", 0, 1)
            report.backend = self._backend(len(self.index.ids), len(ids))
            pairs = query_pairs(self.index.ids, self.index.codes, ids, codes, search_radii(self.config.thresholds),
                                **self.config.index.search_options())
            self.catalog.replace_pairs(ids, pairs.a, pairs.b, pairs.dist, None)
            self.progress("searching", 1, 1)
        self._regroup(report, *self.catalog.pairs(), dry_run=False)
        return report

    def find_duplicates(self, paths: Iterable[str] = (), dry_run: bool = False,
                        job_id: str | None = None) -> RunReport:
        """Find Duplicates: import ``paths``, compare every photo with every other, tag.
        ``job_id``: the host's job (Lumina's jobs row of the button press), recorded with the run."""
        report = RunReport(kind="find-duplicates", dry_run=dry_run, job_id=job_id)
        with _timed(report.timings, "import"):
            if not dry_run:  # photos the host catalogued that we never hashed (Lumina's scans)
                paths = [*paths, *self.catalog.unhashed_paths(ALGORITHM_VERSION)]
            new_ids, new_codes = self._import(paths, report, store=not dry_run)
        ids, codes = self.index.ids, self.index.codes
        if dry_run and len(new_ids):
            changed = set(self.catalog.stored_files([i.path for i in report.images.values()]).values())
            keep = ~np.isin(ids, [c.index_id for c in changed])
            ids = np.concatenate([ids[keep], new_ids])
            codes = np.concatenate([codes[keep], new_codes])
        self.progress("comparing", 0, 1)
        report.backend = self._backend(len(ids), None)
        with _timed(report.timings, "search"):
            # Only the hashes that can link an accepted pair are searched (search_radii says why).
            pairs = all_pairs(ids, codes, search_radii(self.config.thresholds), **self.config.index.search_options())
        self.progress("comparing", 1, 1)
        if not dry_run:
            with _timed(report.timings, "store pairs"):
                self.catalog.replace_pairs(None, pairs.a, pairs.b, pairs.dist, None)
            crash_point("between-pairs-and-tags")
        self._regroup(report, pairs.a, pairs.b, pairs.dist, dry_run=dry_run)
        log.info("find-duplicates: %s", ", ".join(f"{k} {v:.2f} s" for k, v in {**self.timings, **report.timings}.items()))
        return report

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
        """The groups as they stand (from the stored pairs and decisions), writing nothing."""
        report = RunReport(kind="review", dry_run=True)
        self._regroup(report, *self.catalog.pairs(), dry_run=True)
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
        result = self.catalog.undo_last()
        if result is not None and self.config.xmp_sidecars:
            errors = self._write_sidecars(result.get("tags_restored", ()), result.get("tags_removed", ()))
            result["errors"] = [e.as_json() for e in errors]
        return result

    # -- grouping and tags ---------------------------------------------------------------
    def _regroup(self, report: RunReport, a: np.ndarray, b: np.ndarray, dist: np.ndarray,
                 dry_run: bool) -> None:
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
            decisions = self.catalog.decisions()
        with _timed(timings, "group"):
            apart = {(min(d["index_1"], d["index_2"]), max(d["index_1"], d["index_2"]))
                     for d in decisions if d["kind"] == "not-duplicate"}
            preferred = {d["index_1"] for d in decisions if d["kind"] == "keeper"}
            links = [link for link in accept_pairs(a, b, dist, images, self.config.thresholds)
                     if (link.a, link.b) not in apart] + exact_links(images)
            groups = build_groups(links, images, self.config.keeper, self.config.thresholds, preferred)
            report.groups, report.images = groups, images
            new_state = desired_state((g.row(images) for g in groups), self.config.tags)
        with _timed(timings, "diff"):
            report.diff = diff_states(self.catalog.tag_state(), new_state)
        if dry_run:
            ids = {i for i, _ in report.diff.add_tags + report.diff.remove_tags}
            report.paths = {**self.catalog.paths_of(ids), **{v.id: v.path for v in images.values()}}
        else:
            # The run report keeps the per-file errors too (capped: a bad mount can fail millions).
            stored = {**report.summary(), "errors": [e.as_json() for e in report.errors[:1000]]}
            with _timed(timings, "write tags"):
                report.run_id = self.catalog.apply_tag_diff(report.diff, report.kind, stored, job_id=report.job_id)
            if self.config.xmp_sidecars:
                report.errors += self._write_sidecars(report.diff.add_tags, report.diff.remove_tags)

    def _write_sidecars(self, add: Iterable[tuple[str, str]], remove: Iterable[tuple[str, str]]) -> list[FileError]:
        """Mirror tag changes (image id, tag) into XMP sidecars; a sidecar that fails is an error line."""
        from . import xmp
        add, remove = list(add), list(remove)
        paths = self.catalog.paths_of({i for i, _ in add + remove})
        changes: dict[str, tuple[set[str], set[str]]] = {}
        for image_id, tag in add:
            changes.setdefault(paths[image_id], (set(), set()))[0].add(tag)
        for image_id, tag in remove:
            changes.setdefault(paths[image_id], (set(), set()))[1].add(tag)
        return [FileError(p, f"XMP sidecar: {e}") for p, e in xmp.write_many(changes)]


def _isin(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """Mask over ``values``: which occur in ``of``. Sort-based: NumPy 2.4's hash-based
    ``np.setdiff1d`` takes 0.1-0.4 s on 100,000 ids (an index's, every run), this 5 ms."""
    of = np.sort(np.asarray(of))
    if of.size == 0:
        return np.zeros(len(values), dtype=bool)
    return of[np.minimum(np.searchsorted(of, values), of.size - 1)] == values


def info_from_record(index_id: int, rec: ImageRecord, image_id: str) -> ImageInfo:
    """The grouping view of a record that has no catalog row yet (dry run)."""
    return ImageInfo(id=image_id, index_id=index_id, path=rec.path, checksum=rec.checksum,
                     size_bytes=rec.size_bytes, width=rec.width, height=rec.height, format=rec.format,
                     camera=rec.camera, taken_ts=taken_timestamp(rec.taken_at, rec.subsec),
                     exif_tags=rec.exif_tags)
