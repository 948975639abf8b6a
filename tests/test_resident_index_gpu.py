"""The resident index on the GPU: its lane tables grow by merging, and it finds exactly what its
CPU twin and the whole-index search find, batch after batch.

Marked ``gpu``: skipped where CuPy sees no GPU. Run on the GPU machine (see docs/index.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumina_plugin import gpu_status
from lumina_plugin.grouping import geometric
from lumina_plugin.index import HashIndex, lanes, query_pairs
from lumina_plugin.index.resident import ResidentIndex
from lumina_plugin.model import CLASSIC_WORDS, CODE_WORDS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(gpu_status.cupy_module() is None, reason="needs CuPy and a CUDA GPU"),
]

#: The whole-index search on the CPU, without FAISS (the GPU machine has none unless carried).
OPTIONS: dict[str, Any] = {"backend": "mih", "device": 0}


def _keys(chunks: list, q: int) -> list[int]:
    out: list[int] = []
    for i, j in chunks:
        i = i.get() if hasattr(i, "get") else i
        j = j.get() if hasattr(j, "get") else j
        out += (np.asarray(i, np.int64) * q + np.asarray(j, np.int64)).tolist()
    assert len(out) == len(set(out))  # each pair once
    return sorted(out)


def test_device_table_grows_by_merging_and_finds_what_the_cpu_lanes_find() -> None:
    from lumina_plugin.index.gpu_resident import DeviceTable

    rng = np.random.default_rng(7)
    table = DeviceTable(3, capacity=1024)
    values = np.empty((0, 3), np.uint64)
    for size in (1, 700, 5000, 1, 40_000, 3000):  # (past the capacity: the buffers grow)
        new = rng.integers(0, 2**64, (size, 3), dtype=np.uint64, endpoint=False)
        new[::3] = new[0]  # a bucket of identical codes
        if len(values):
            new[1::3] = values[rng.integers(0, len(values), len(new[1::3]))] ^ np.uint64(1 << 40)
        table.append(new)
        values = np.concatenate([values, new])
        assert table.n == len(values) and table.check()
        queries = np.concatenate([values[rng.integers(0, len(values), 50)] ^ np.uint64(3),
                                  rng.integers(0, 2**64, (20, 3), dtype=np.uint64, endpoint=False)])
        for column, radius in ((0, 0), (1, 6), (2, 10)):
            got = _keys(table.query(column, queries[:, column], radius, capacity=512), len(queries))
            want = _keys(list(lanes.join(np.ascontiguousarray(values[:, column]), queries[:, column], radius)),
                         len(queries))
            assert got == want


def _codes(rng: np.random.Generator, n: int, near_of: np.ndarray | None = None) -> np.ndarray:
    if near_of is None:
        return rng.integers(0, 2**63, (n, CODE_WORDS), dtype=np.uint64)
    out = near_of[rng.integers(0, len(near_of), n)].copy()
    return out ^ (np.uint64(1) << rng.integers(0, 64, out.shape).astype(np.uint64))


def _hits(copy: ResidentIndex, index: HashIndex, ids: np.ndarray) -> tuple[list, ...]:
    h = copy.search(index, ids)
    return (h.classic.a.tolist(), h.classic.b.tolist(), h.classic.dist.tolist(), h.geo_a.tolist(),
            h.geo_b.tolist(), h.ids.tolist())


@pytest.mark.parametrize("radii", [(-1, 10, 10, -1), (6, 8, 8, 6)])
def test_gpu_resident_copy_agrees_with_its_cpu_twin_and_the_whole_search(tmp_path: Path,
                                                                         radii: tuple[int, ...]) -> None:
    rng = np.random.default_rng(22)
    index = HashIndex.open(tmp_path / "idx")
    index.add(np.arange(20_000) * 3 + 7, _codes(rng, 20_000))
    gpu, cpu = ResidentIndex(radii, device=0), ResidentIndex(radii)
    gpu.RECENT_MIN = 700  # merge the recent table into the large one every few batches
    other = HashIndex.open(tmp_path / "idx")
    next_id = 100_000
    for batch in range(8):
        ids = np.arange(next_id, next_id + 300)
        next_id += 300
        codes = np.concatenate([_codes(rng, 200, index.codes), _codes(rng, 100)])
        if batch == 2:
            ids = np.concatenate([ids, index.ids[:40]])
            codes = np.concatenate([codes, _codes(rng, 40, index.codes)])
        if batch == 4:
            index.remove(index.ids[50:90])
        if batch == 5:
            other.add(np.arange(900_000, 900_200), _codes(rng, 200, index.codes))
            index.refresh()
        index.add(ids, codes)
        got = _hits(gpu, index, ids)
        assert got == _hits(cpu, index, ids)
        pairs = query_pairs(index.ids, index.codes[:, :CLASSIC_WORDS], ids, codes[:, :CLASSIC_WORDS], radii, **OPTIONS)
        ga, gb = geometric.candidates(index.ids, index.codes[:, CLASSIC_WORDS:], OPTIONS, ids, codes[:, CLASSIC_WORDS:])
        assert got[:5] == (pairs.a.tolist(), pairs.b.tolist(), pairs.dist.tolist(), ga.tolist(), gb.tolist())
    assert gpu.rebuilds == cpu.rebuilds == 2
    assert all(t.check() for t in gpu._tables)
