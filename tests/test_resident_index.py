"""The resident index (issue 21 item 3): a long-lived process keeps the index open and its
searched columns resident, grows them with each batch, and never serves a stale copy.

- The resident search of a batch gives exactly the pairs of ``query_pairs`` and
  ``geometric.candidates`` over the whole index, batch after batch, with ids re-added, removed,
  and other writers in between.
- A long-lived engine (one ``Residents`` across events, as the plugin keeps) importing real
  photos batch by batch gives exactly the groups and stored pairs of fresh engines, on SQLite
  and on Lumina's PostgreSQL; another process importing photos between its batches is noticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lumina_hooks import HostContext, PluginHost
from test_lumina_support import lumina, lumina_db, pg_database, sample_photos, scan_as_lumina  # noqa: F401

from lumina_plugin import plugin
from lumina_plugin.engine import Engine, RunReport
from lumina_plugin.grouping import geometric
from lumina_plugin.index import HashIndex, query_pairs
from lumina_plugin.index.resident import ResidentIndex
from lumina_plugin.model import CLASSIC_WORDS, CODE_WORDS
from lumina_plugin.resident import Residents

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
ORIGINALS = ("2015", "2016", "2018", "2019", "2021", "2022", "2023")
OPTIONS: dict[str, Any] = {"backend": "cpu", "device": 0}


# -- the resident search against the whole-index search -----------------------------------

def _codes(rng: np.random.Generator, n: int, near_of: np.ndarray | None = None) -> np.ndarray:
    """Random codes; with ``near_of``, each a copy of one of those with a few bits flipped in
    every word (classic hashes and geometry words alike, so both searches find them)."""
    if near_of is None:
        return rng.integers(0, 2**63, (n, CODE_WORDS), dtype=np.uint64)
    out = near_of[rng.integers(0, len(near_of), n)].copy()
    return out ^ (np.uint64(1) << rng.integers(0, 64, out.shape).astype(np.uint64))


def _whole(index: HashIndex, ids: np.ndarray, codes: np.ndarray, radii: tuple[int, ...]) -> tuple[object, ...]:
    """What find_pairs searches for a batch, over the whole index (the batch added to it)."""
    pairs = query_pairs(index.ids, index.codes[:, :CLASSIC_WORDS], ids, codes[:, :CLASSIC_WORDS], radii, **OPTIONS)
    ga, gb = geometric.candidates(index.ids, index.codes[:, CLASSIC_WORDS:], OPTIONS, ids, codes[:, CLASSIC_WORDS:])
    return pairs.a.tolist(), pairs.b.tolist(), pairs.dist.tolist(), ga.tolist(), gb.tolist()


def _resident(copy: ResidentIndex, index: HashIndex, ids: np.ndarray) -> tuple[object, ...]:
    hits = copy.search(index, ids)
    named = set(hits.classic.a.tolist() + hits.classic.b.tolist() + hits.geo_a.tolist() + hits.geo_b.tolist())
    assert hits.ids.tolist() == sorted(named - set(ids.tolist()))  # the photos the grouping step reads
    assert (hits.codes == index.codes[np.searchsorted(index.ids, hits.ids)]).all()
    return (hits.classic.a.tolist(), hits.classic.b.tolist(), hits.classic.dist.tolist(),
            hits.geo_a.tolist(), hits.geo_b.tolist())


@pytest.mark.parametrize("radii", [(-1, 10, 10, -1), (6, 8, 8, 6)])
def test_resident_search_equals_whole_index_search(tmp_path: Path, radii: tuple[int, ...]) -> None:
    rng = np.random.default_rng(21)
    base = _codes(rng, 5000)
    index = HashIndex.open(tmp_path / "idx")
    index.add(np.arange(5000) * 3 + 7, base)
    copy = ResidentIndex(radii)
    other = HashIndex.open(tmp_path / "idx")  # another writer of the same folder
    next_id = 20_000
    for batch in range(6):
        ids = np.arange(next_id, next_id + 200)[::-1].copy()  # (not in id order: the copy sorts)
        next_id += 200
        codes = np.concatenate([_codes(rng, 120, index.codes), _codes(rng, 80)])
        codes[:10] = codes[10:20]  # identical codes within the batch
        if batch == 2:  # re-imported photos: their ids come back with new codes
            ids = np.concatenate([ids, index.ids[:30]])
            codes = np.concatenate([codes, _codes(rng, 30, index.codes)])
        if batch == 3:  # photos removed: their rows must not pair any more
            index.remove(index.ids[100:160])
        if batch == 4:  # another writer adds photos: the copy reloads
            other.add(np.arange(90_000, 90_100), _codes(rng, 100, index.codes))
            index.refresh()
        index.add(ids, codes)
        assert _resident(copy, index, ids) == _whole(index, ids, codes, radii)
        assert copy.n >= len(index)
    assert copy.rebuilds == 2  # the first load, and after the other writer


def test_resident_copy_of_a_compacted_index_and_an_empty_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    index = HashIndex.open(tmp_path / "idx")
    copy = ResidentIndex((-1, 10, 10, -1))
    ids, codes = np.array([3, 1]), _codes(rng, 2)
    index.add(ids, codes)  # a first batch into an empty index
    assert _resident(copy, index, ids) == _whole(index, ids, codes, (-1, 10, 10, -1))
    index.add(np.arange(10, 3000), _codes(rng, 2990, codes))
    index.compact()  # the same rows, served from the new file: nothing to reload
    ids, codes = np.arange(5000, 5300), _codes(rng, 300, index.codes)
    index.add(ids, codes)
    assert _resident(copy, index, ids) == _whole(index, ids, codes, (-1, 10, 10, -1))
    assert copy.rebuilds == 1


def test_resident_copy_refuses_radii_the_lane_join_cannot_serve() -> None:
    with pytest.raises(ValueError, match="radii up to 15"):
        ResidentIndex((-1, 16, 10, -1))


# -- a long-lived engine on real photos --------------------------------------------------

@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    dest = tmp_path / "photos"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("*.md", "*.json", "*.txt"))
    return dest


def _batches(root: Path) -> list[list[str]]:
    """Three imports: the originals, then two halves of their copies (backups, exports...)."""
    photos = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    originals = [p for p in photos if Path(p).relative_to(root).parts[0] in ORIGINALS]
    rest = [p for p in photos if p not in originals]
    assert originals and len(rest) > 4
    return [originals, rest[::2], rest[1::2]]


def _groups(report: RunReport, root: Path) -> set[frozenset[str]]:
    return {frozenset(str(Path(report.images[i].path).relative_to(root))
                      for i in (g.keeper, *(m.index_id for m in g.members))) for g in report.groups}


def _stored_pairs(engine: Engine, root: Path) -> set[tuple[object, ...]]:
    a, b, dist = engine.catalog.pairs()
    images = engine.catalog.images(set(a.tolist()) | set(b.tolist()))
    rel = {i: str(Path(v.path).relative_to(root)) for i, v in images.items()}
    return {(*sorted((rel[x], rel[y])), tuple(d)) for x, y, d in zip(a.tolist(), b.tolist(), dist.tolist())}


def _other_process_imports(catalog: str, paths: list[str]) -> None:
    code = ("import sys; from lumina_plugin.engine import Engine\n"
            "with Engine(sys.argv[1]) as e: e.import_paths(sys.argv[2:])")
    subprocess.run([sys.executable, "-c", code, catalog, *paths], check=True, timeout=300)


def test_long_lived_engine_gives_the_groups_of_fresh_engines(photo_dir: Path, tmp_path: Path) -> None:
    """SQLite: the same three imports into two catalogs, one through a long-lived process's
    kept index (the second import made by another process), one through fresh engines."""
    batches = _batches(photo_dir)
    kept_cat, fresh_cat = str(tmp_path / "kept.db"), str(tmp_path / "fresh.db")
    keep = Residents()
    for k, batch in enumerate(batches):
        with Engine(fresh_cat) as fresh:
            want = fresh.import_paths(batch)
            want_pairs = _stored_pairs(fresh, photo_dir)
        if k == 1:
            _other_process_imports(kept_cat, batch)
            with Engine(kept_cat, keep=keep) as engine:  # the other process's photos are there
                got = engine.find_duplicates()
                assert engine.resident is not None and len(engine.index) == sum(map(len, batches[:2]))
            assert _groups(got, photo_dir) == _groups(want, photo_dir)
            continue
        with Engine(kept_cat, keep=keep) as engine:
            got = engine.import_paths(batch)
            got_pairs = _stored_pairs(engine, photo_dir)
            copy = engine.resident.copy if engine.resident else None
        assert got.hashed == want.hashed == len(batch)
        assert _groups(got, photo_dir) == _groups(want, photo_dir)
        assert got_pairs == want_pairs
        assert copy is not None and copy.rebuilds == k // 2 + 1  # reloaded after the other process wrote
    assert len(_groups(got, photo_dir)) > 0  # the copies in the last batch did find their originals


def test_plugin_keeps_the_index_between_events(photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks, as the watcher or a worker fire them: the second import searches the copy
    the first one made, and finds the same groups as a fresh engine."""
    monkeypatch.setattr(plugin, "_kept", Residents())
    batches = _batches(photo_dir)
    catalog = tmp_path / "cat.db"
    host = PluginHost(HostContext(name="test", catalog=str(catalog)))
    if not host.pm.is_registered(plugin):
        host.register(plugin, name="dedup")
    reports = [host.images_imported(batch) for batch in batches]
    assert all(len(r) == 1 and r[0].errors == 0 for r in reports)
    (resident,) = plugin.kept_indexes()._kept.values()
    assert resident.copy is not None and resident.copy.rebuilds == 1 and resident.copy.n == sum(map(len, batches))
    with Engine(tmp_path / "fresh.db") as fresh:
        for batch in batches:
            fresh.import_paths(batch)
        want, want_pairs = _groups(fresh.review(), photo_dir), _stored_pairs(fresh, photo_dir)
    with Engine(catalog) as engine:
        assert _groups(engine.review(), photo_dir) == want and _stored_pairs(engine, photo_dir) == want_pairs
    assert reports[-1][0].groups == len(want) > 0


def test_long_lived_engine_on_luminas_postgresql(lumina: tuple[str, str]) -> None:  # noqa: F811
    """Lumina's catalog: scans stored by Lumina, each batch imported through a kept index, gives
    the groups a fresh engine gives on the same catalog (its pairs, searched whole, agree)."""
    url, cid = lumina
    photos = sample_photos()
    originals = [p for p in photos if p.relative_to(SAMPLE).parts[0] in ORIGINALS]
    rest = [p for p in photos if p not in originals]
    keep = Residents()
    for batch in (originals, rest[::2], rest[1::2]):
        kept = scan_as_lumina(url, cid, batch)  # (Lumina drops byte copies)
        with Engine(url, keep=keep) as engine:
            got = engine.import_paths(kept)
            stored = _stored_pairs(engine, SAMPLE)
        assert got.hashed == len(kept)
    assert engine.resident is not None and engine.resident.copy is not None
    assert engine.resident.copy.rebuilds == 1
    with Engine(url) as fresh:  # a whole-catalog pass: same pairs, same groups, no change to make
        report = fresh.find_duplicates()
        assert _stored_pairs(fresh, SAMPLE) == stored
    assert _groups(report, SAMPLE) == _groups(got, SAMPLE)
    assert len(report.diff or ()) == 0
