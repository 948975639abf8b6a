"""HashIndex: persistence, replacement, removal, compaction, version change, corruption, crashes."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lumina_plugin.index import all_pairs, query_pairs
from lumina_plugin.index.segments import NCODES
from lumina_plugin.index.store import CRASH_ENV, MANIFEST_NAME, MERGE_FANOUT, HashIndex, IndexCorruptError

REPO = Path(__file__).resolve().parents[1]
WRITER = Path(__file__).with_name("_index_writer.py")


def batch(rng: np.random.Generator, n: int, id_range: tuple[int, int] = (0, 10**12)) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = id_range
    ids = lo + rng.choice(hi - lo, n, replace=False).astype(np.int64)
    codes = rng.integers(0, 2**64, size=(n, NCODES), dtype=np.uint64, endpoint=False)
    return ids, codes


def expected(rows: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array(sorted(rows), dtype=np.int64)
    codes = np.array([rows[i] for i in ids], dtype=np.uint64).reshape(-1, NCODES)
    return ids, codes


def assert_state(index: HashIndex, rows: dict[int, np.ndarray]) -> None:
    ids, codes = expected(rows)
    assert index.ids.dtype == np.int64 and index.codes.dtype == np.uint64
    np.testing.assert_array_equal(index.ids, ids)
    np.testing.assert_array_equal(index.codes, codes)
    assert len(index) == len(ids)


def assert_reopens(directory: Path, rows: dict[int, np.ndarray]) -> None:
    with HashIndex.open(directory) as again:
        assert_state(again, rows)


def segment_files(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("seg-*.bin")}


def listed(directory: Path) -> set[str]:
    return {s["name"] for s in json.loads((directory / MANIFEST_NAME).read_text())["segments"]}


def put(rows: dict[int, np.ndarray], ids: np.ndarray, codes: np.ndarray) -> None:
    rows.update({int(i): c for i, c in zip(ids, codes)})


def test_add_and_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    d = tmp_path / "idx"
    index = HashIndex.open(d)
    assert d.is_dir() and len(index) == 0 and not index.rebuilt_for_version_change
    ids, codes = batch(rng, 300)
    index.add(ids, codes)
    rows: dict[int, np.ndarray] = {}
    put(rows, ids, codes)
    assert_state(index, rows)
    assert not index.ids.flags.writeable
    assert_reopens(d, rows)
    assert segment_files(d) == listed(d) and len(listed(d)) == 1


def test_batches_grow_and_reload(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    index = HashIndex.open(tmp_path)
    rows: dict[int, np.ndarray] = {}
    for k in range(5):
        ids, codes = batch(rng, 50, (k * 1000, k * 1000 + 500))
        index.add(ids, codes)
        put(rows, ids, codes)
        assert_state(index, rows)
        assert_reopens(tmp_path, rows)
    assert len(segment_files(tmp_path)) == 5 and index.generation == 5
    np.testing.assert_array_equal(index.contains(np.array([ids[0], -7])), [True, False])


def test_empty_add_and_noop_remove_write_nothing(tmp_path: Path) -> None:
    index = HashIndex.open(tmp_path)
    index.add(np.empty(0, np.int64), np.empty((0, NCODES), np.uint64))
    index.remove(np.array([1, 2, 3]))
    assert list(tmp_path.iterdir()) == []
    index.add(np.array([5]), np.arange(1, NCODES + 1, dtype=np.uint64)[None])
    before = sorted(p.name for p in tmp_path.iterdir())
    index.add([], np.empty((0, NCODES), np.uint64))
    index.remove(np.array([6]))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_remove(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    index = HashIndex.open(tmp_path)
    ids, codes = batch(rng, 200)
    index.add(ids, codes)
    rows: dict[int, np.ndarray] = {}
    put(rows, ids, codes)
    gone = ids[::3]
    index.remove(np.concatenate([gone, [-1, -2]]))  # unknown ids are ignored
    for i in gone:
        del rows[int(i)]
    assert_state(index, rows)
    assert not index.contains(gone).any()
    assert_reopens(tmp_path, rows)
    # Removed then re-added: the later segment wins.
    index.add(gone[:2], codes[:2])
    put(rows, gone[:2], codes[:2])
    assert_state(index, rows)
    assert_reopens(tmp_path, rows)


def test_add_replaces_live_id(tmp_path: Path) -> None:
    index = HashIndex.open(tmp_path)
    index.add(np.array([10, 20, 30]), np.arange(3 * NCODES, dtype=np.uint64).reshape(3, NCODES))
    new = np.array([[2**64 - 1, 0] + [7] * (NCODES - 2), [9] * NCODES], np.uint64)
    index.add(np.array([20, 40]), new)
    rows = {10: np.arange(0, NCODES), 20: new[0], 30: np.arange(2 * NCODES, 3 * NCODES), 40: new[1]}
    assert_state(index, {k: np.asarray(v, np.uint64) for k, v in rows.items()})
    assert_reopens(tmp_path, {k: np.asarray(v, np.uint64) for k, v in rows.items()})
    with pytest.raises(ValueError):
        index.add(np.array([1, 1]), np.zeros((2, NCODES), np.uint64))
    with pytest.raises(ValueError):
        index.add(np.array([1, 2]), np.zeros((2, 3), np.uint64))


def test_compact(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    index = HashIndex.open(tmp_path)
    rows: dict[int, np.ndarray] = {}
    for _ in range(4):
        ids, codes = batch(rng, 40, (0, 120))  # overlapping ranges: replacements
        index.add(ids, codes)
        put(rows, ids, codes)
    index.remove(ids[:10])
    for i in ids[:10]:
        del rows[int(i)]
    old = segment_files(tmp_path)
    index.compact()
    assert_state(index, rows)
    files = segment_files(tmp_path)
    assert len(files) == 1 and not files & old and files == listed(tmp_path)
    assert_reopens(tmp_path, rows)
    generation = index.generation
    index.compact()  # already compact: nothing written
    assert index.generation == generation and segment_files(tmp_path) == files
    index.remove(np.array(sorted(rows)))
    index.compact()
    assert len(index) == 0 and segment_files(tmp_path) == set()
    assert_reopens(tmp_path, {})


def test_version_change_opens_empty(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    with HashIndex.open(tmp_path, version=1) as index:
        index.add(*batch(rng, 30))
    old = segment_files(tmp_path)
    index = HashIndex.open(tmp_path, version=2)
    assert index.rebuilt_for_version_change and len(index) == 0
    assert segment_files(tmp_path) == old  # nothing destroyed until the next write
    ids, codes = batch(rng, 10)
    index.add(ids, codes)
    assert not segment_files(tmp_path) & old
    rows: dict[int, np.ndarray] = {}
    put(rows, ids, codes)
    again = HashIndex.open(tmp_path, version=2)
    assert not again.rebuilt_for_version_change
    assert_state(again, rows)
    back = HashIndex.open(tmp_path, version=1)
    assert back.rebuilt_for_version_change and len(back) == 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupt_listed_segment(tmp_path: Path, damage: str) -> None:
    rng = np.random.default_rng(6)
    with HashIndex.open(tmp_path) as index:
        index.add(*batch(rng, 20))
        index.add(*batch(rng, 20))
    victim = tmp_path / sorted(listed(tmp_path))[-1]
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(bytes(data[:-8]))
    else:
        victim.unlink()
    with pytest.raises(IndexCorruptError) as err:
        HashIndex.open(tmp_path)
    assert victim.name in str(err.value) and "\n" not in str(err.value)


def test_unreadable_manifest(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text('{"format": 1, "vers')
    with pytest.raises(IndexCorruptError, match=MANIFEST_NAME):
        HashIndex.open(tmp_path)


def test_torn_temp_manifest_is_ignored(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ids, codes = batch(rng, 25)
    with HashIndex.open(tmp_path) as index:
        index.add(ids, codes)
    text = (tmp_path / MANIFEST_NAME).read_text()
    torn = tmp_path / f"{MANIFEST_NAME}.0123abcd.tmp"
    torn.write_text(text[: len(text) // 2])
    rows: dict[int, np.ndarray] = {}
    put(rows, ids, codes)
    assert_reopens(tmp_path, rows)
    assert not torn.exists()


def test_two_objects_on_one_directory(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    first, second = HashIndex.open(tmp_path), HashIndex.open(tmp_path)
    a_ids, a_codes = batch(rng, 30, (0, 1000))
    b_ids, b_codes = batch(rng, 30, (1000, 2000))
    first.add(a_ids, a_codes)
    second.add(b_ids, b_codes)  # sees first's batch before writing, so keeps it
    rows: dict[int, np.ndarray] = {}
    put(rows, a_ids, a_codes)
    put(rows, b_ids, b_codes)
    assert_state(second, rows)
    assert_reopens(tmp_path, rows)
    first.refresh()
    assert_state(first, rows)
    assert segment_files(tmp_path) == listed(tmp_path) and len(listed(tmp_path)) == 2


def run_writer(directory: Path, crash_at: str, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env[CRASH_ENV] = crash_at
    proc = subprocess.run(
        [sys.executable, str(WRITER), str(directory), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Path, dict[int, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(9)
    d = tmp_path / "idx"
    rows: dict[int, np.ndarray] = {}
    with HashIndex.open(d) as index:
        for _ in range(2):
            ids, codes = batch(rng, 40, (0, 200))
            index.add(ids, codes)
            put(rows, ids, codes)
    new_ids, new_codes = batch(rng, 40, (100, 300))  # overlaps: the batch replaces some rows
    np.savez(tmp_path / "batch.npz", ids=new_ids, codes=new_codes)
    return d, rows, (new_ids, new_codes)


def test_crash_before_manifest_keeps_old_state(populated) -> None:  # type: ignore[no-untyped-def]
    d, rows, (new_ids, new_codes) = populated
    before = segment_files(d)
    run_writer(d, "before-manifest", "add", str(d.parent / "batch.npz"))
    orphans = segment_files(d) - before
    assert len(orphans) == 1  # the segment was written, the manifest not swapped
    with HashIndex.open(d) as index:
        assert_state(index, rows)
        assert segment_files(d) == before
        index.add(new_ids, new_codes)
        put(rows, new_ids, new_codes)
        assert_state(index, rows)
    assert_reopens(d, rows)


def test_crash_after_manifest_keeps_batch(populated) -> None:  # type: ignore[no-untyped-def]
    d, rows, (new_ids, new_codes) = populated
    run_writer(d, "after-manifest", "add", str(d.parent / "batch.npz"))
    put(rows, new_ids, new_codes)
    assert_reopens(d, rows)


def test_crash_after_manifest_during_compact(populated) -> None:  # type: ignore[no-untyped-def]
    d, rows, _ = populated
    run_writer(d, "after-manifest", "compact")
    assert len(segment_files(d)) == 3  # two old ones not yet deleted, the compacted one listed
    assert_reopens(d, rows)
    assert segment_files(d) == listed(d) and len(listed(d)) == 1


def _mapped(array: np.ndarray) -> bool:
    """Whether ``array`` is a view of a memory map (not a copy in process memory)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


def test_compacted_index_is_served_from_a_memory_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    rows: dict[int, np.ndarray] = {}
    with HashIndex.open(tmp_path) as index:
        for _ in range(3):
            ids, codes = batch(rng, 500)
            index.add(ids, codes)
            put(rows, ids, codes)
        assert not _mapped(index.codes)  # three segments: resolved into one array
        index.compact()
        assert _mapped(index.codes) and _mapped(index.ids)
        assert_state(index, rows)
    with HashIndex.open(tmp_path) as again:
        assert _mapped(again.codes) and not again.codes.flags.writeable
        assert_state(again, rows)
    seg = tmp_path / next(iter(listed(tmp_path)))
    assert seg.stat().st_size == 32 + 8 * (1 + NCODES) * len(rows)  # header + 8 bytes per id and per code


def test_segment_rows_are_sorted_by_id(tmp_path: Path) -> None:
    ids = np.array([50, 7, 30, -2], np.int64)
    codes = np.arange(4 * NCODES, dtype=np.uint64).reshape(4, NCODES)
    with HashIndex.open(tmp_path) as index:
        index.add(ids, codes)
    data = (tmp_path / next(iter(listed(tmp_path)))).read_bytes()
    np.testing.assert_array_equal(np.frombuffer(data, "<i8", 4, 32), [-2, 7, 30, 50])
    assert_reopens(tmp_path, {int(i): c for i, c in zip(ids, codes)})


def test_many_small_writes_are_merged(tmp_path: Path) -> None:
    """Batch after batch (with replacements and removals): the segment count stays bounded by the
    size-tiered merges, and the contents always equal a plain dict's."""
    rng = np.random.default_rng(12)
    rows: dict[int, np.ndarray] = {}
    index = HashIndex.open(tmp_path)
    most = 0
    for step in range(150):
        if step % 7 == 6 and rows:
            gone = rng.choice(sorted(rows), min(len(rows), 5), replace=False)
            index.remove(gone)
            for i in gone:
                del rows[int(i)]
        else:
            ids, codes = batch(rng, int(rng.integers(1, 30)), (0, 3000))
            index.add(ids, codes)
            put(rows, ids, codes)
        most = max(most, len(listed(tmp_path)))
        if step % 25 == 0:
            assert_state(index, rows)
            assert_reopens(tmp_path, rows)
    assert_state(index, rows)
    assert_reopens(tmp_path, rows)
    assert most <= 3 * MERGE_FANOUT and segment_files(tmp_path) == listed(tmp_path)


def test_segment_of_another_version_is_refused(tmp_path: Path) -> None:
    """A segment whose header says another algorithm version is never mixed in (even with a
    matching checksum in the manifest)."""
    with HashIndex.open(tmp_path, version=1) as index:
        index.add(np.array([1, 2]), np.ones((2, NCODES), np.uint64))
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    seg = tmp_path / manifest["segments"][0]["name"]
    data = bytearray(seg.read_bytes())
    data[8:16] = (2).to_bytes(8, "little")
    seg.write_bytes(bytes(data))
    manifest["segments"][0]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="bad header"):
        HashIndex.open(tmp_path, version=1)


def test_incremental_search_add_and_delete(tmp_path: Path) -> None:
    """On import a batch is searched against the index's live rows, then added; a deleted photo
    disappears from the live rows (so from every search) at once, and after reopening."""
    rng = np.random.default_rng(13)
    radii = (6, 6, 6, 6)
    ids, codes = batch(rng, 3000, (0, 10**6))
    with HashIndex.open(tmp_path) as index:
        index.add(ids, codes)
    near = rng.choice(len(ids), 40, replace=False)
    q_ids = np.arange(10**6, 10**6 + 40, dtype=np.int64)
    q_codes = codes[near] ^ np.uint64(0b1011)  # 3 bits away from an indexed photo
    with HashIndex.open(tmp_path) as index:
        found = query_pairs(index.ids, index.codes, q_ids, q_codes, radii)
        assert set(zip(found.a.tolist(), found.b.tolist())) >= set(zip(ids[near].tolist(), q_ids.tolist()))
        assert (found.dist.min(axis=1) <= 6).all()
        index.add(q_ids, q_codes)
        gone = ids[near[:10]]
        index.remove(gone)
        again = query_pairs(index.ids, index.codes, q_ids[:20], q_codes[:20] ^ np.uint64(1 << 40), radii)
        assert not np.isin(again.a, gone).any() and not np.isin(again.b, gone).any()
        assert len(again) >= 10  # the other 10 indexed originals, and the batch's own old entries
        everything = all_pairs(index.ids, index.codes, radii)
        assert not np.isin(everything.a, gone).any() and not np.isin(everything.b, gone).any()
    with HashIndex.open(tmp_path) as reopened:
        assert not reopened.contains(gone).any()
        np.testing.assert_array_equal(all_pairs(reopened.ids, reopened.codes, radii).a, everything.a)
