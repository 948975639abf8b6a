"""The resident index's GPU code run on the CPU: the merge kernel and the lane kernel compiled as
C++ (their exact source, behind the CUDA shim of tests/test_index_gpu_emulated.py), the host code of
``gpu_resident.py`` and ``resident.py`` unchanged over a NumPy stand-in for CuPy that checks every
kernel argument against the kernel's C signature. So CI checks the growing GPU lane tables and
the GPU copy's search against the CPU twin; tests/test_resident_index_gpu.py runs the real thing.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_index_gpu_emulated import _SHIM, _SIGNATURES, _WRAPPERS, _dev, _Kernel

from lumina_plugin import gpu_status
from lumina_plugin.index import HashIndex, cupy_join, gpu_check, gpu_lanes, gpu_resident, lanes
from lumina_plugin.index.resident import ResidentIndex
from lumina_plugin.model import CODE_WORDS

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the kernels for the CPU")

_MERGE_WRAPPER = r"""
extern "C" void run_lane_merge(unsigned grid, unsigned block, const int* order, const u64* sval, const int* starts,
                               const u64* fresh, const u64* vals, int n_lanes, int columns, long long n, long long q,
                               long long cap, int* out_order, u64* out_sval, u64* x) {
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b; threadIdx.x = t;
            lane_merge(order, sval, starts, fresh, vals, n_lanes, columns, n, q, cap, out_order, out_sval, x);
        }
}
extern "C" void run_lane_starts(unsigned grid, unsigned block, int* starts, const u64* fresh, int n_lanes,
                                long long q) {
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b; threadIdx.x = t;
            lane_starts(starts, fresh, n_lanes, q);
        }
}
extern "C" void run_lane_scan(unsigned grid, unsigned block, const u64* sval, const int* order, const int* starts,
                              long long stride, int lane0, const u64* queries, const unsigned int* flips,
                              int n_flips, long long probes, int s, int radius, int* out_i, int* out_j,
                              u64* counter, u64 capacity) {
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b; threadIdx.x = t;
            lane_scan(sval, order, starts, stride, lane0, queries, flips, n_flips, probes, s, radius, out_i, out_j,
                      counter, capacity);
        }
}
"""
_P = "ptr"
_MERGE_SIGNATURE = [(_P, np.int32), (_P, np.uint64), (_P, np.int32), (_P, np.uint64), (_P, np.uint64), np.int32,
                    np.int32, np.int64, np.int64, np.int64, (_P, np.int32), (_P, np.uint64), (_P, np.uint64)]
_STARTS_SIGNATURE = [(_P, np.int32), (_P, np.uint64), np.int32, np.int64]
_SCAN_SIGNATURE = [(_P, np.uint64), (_P, np.int32), (_P, np.int32), np.int64, np.int32, (_P, np.uint64),
                   (_P, np.uint32), np.int32, np.int64, np.int32, np.int32, (_P, np.int32), (_P, np.int32),
                   (_P, np.uint64), np.uint64]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    d = tmp_path_factory.mktemp("resident_kernels")
    src = d / "kernels.cpp"
    # (the wrappers of the other kernels come along: their kernels must then be compiled too)
    src.write_text(_SHIM + cupy_join._SOURCE + gpu_resident._CODE + _WRAPPERS
                   + _MERGE_WRAPPER)
    so = d / "kernels.so"
    proc = subprocess.run(["g++", "-std=c++20", "-O2", "-shared", "-fPIC", "-pthread", str(src), "-o", str(so)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(Path(so)))


def _fake_cupy(lib: ctypes.CDLL) -> types.ModuleType:
    """The CuPy that gpu_lanes.py, gpu_resident.py and resident.py use, on NumPy."""
    cp = types.ModuleType("cupy")
    for name in ("uint64", "int64", "int32", "uint32", "uint16", "uint8"):
        setattr(cp, name, getattr(np, name))

    def wrap(fn):  # type: ignore[no-untyped-def]
        return lambda *a, **k: _dev(fn(*a, **k))

    for name in ("asarray", "ascontiguousarray", "empty", "empty_like", "zeros", "arange", "sort", "argsort",
                 "bincount", "cumsum", "concatenate", "all"):
        setattr(cp, name, wrap(getattr(np, name)))
    signatures = {**_SIGNATURES, "lane_merge": _MERGE_SIGNATURE, "lane_starts": _STARTS_SIGNATURE,
                  "lane_scan": _SCAN_SIGNATURE}

    class RawModule:
        def __init__(self, code: str, options: tuple[str, ...] = ()) -> None:
            assert code in (gpu_lanes._SOURCE, gpu_resident._CODE)

        def get_function(self, name: str) -> _Kernel:
            kernel = _Kernel.__new__(_Kernel)
            kernel.name, kernel.fn, kernel.sig = name, getattr(lib, f"run_{name}"), signatures[name]
            ctype = {np.int64: ctypes.c_longlong, np.int32: ctypes.c_int, np.uint64: ctypes.c_ulonglong}
            kernel.fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
                ctypes.c_void_p if isinstance(p, tuple) else ctype[p] for p in kernel.sig]  # type: ignore[index]
            kernel.fn.restype = None
            return kernel

    cp.RawModule = RawModule  # type: ignore[attr-defined]
    cp.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        Device=lambda device=0: contextlib.nullcontext(),
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
    )
    return cp


@pytest.fixture
def fake_gpu(lib: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(gpu_status, "cupy_module", lambda: _fake_cupy(lib))
    caches = (gpu_lanes._kernel, gpu_resident._module, gpu_resident._masks, gpu_check.gpu_problem)
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


def _pairs(chunks: list, q: int) -> list[int]:  # type: ignore[type-arg]
    out: list[int] = []
    for i, j in chunks:
        out += (np.asarray(i, np.int64) * q + np.asarray(j, np.int64)).tolist()
    return sorted(out)


def test_emulated_device_table_grows_by_merging(fake_gpu: None) -> None:
    rng = np.random.default_rng(3)
    table = gpu_resident.DeviceTable(2, capacity=1024)
    values = np.empty((0, 2), np.uint64)
    for size in (1, 300, 900, 5):  # (past the capacity: the buffers grow)
        new = rng.integers(0, 2**64, (size, 2), dtype=np.uint64, endpoint=False)
        new[::3] = new[0]
        table.append(new)
        values = np.concatenate([values, new])
        assert table.n == len(values) and table.check()
        queries = np.concatenate([values[rng.integers(0, len(values), 20)] ^ np.uint64(5),
                                  rng.integers(0, 2**64, (5, 2), dtype=np.uint64, endpoint=False)])
        for column, radius in ((0, 2), (1, 8)):
            got = _pairs(table.query(column, queries[:, column], radius, capacity=64), len(queries))
            want = _pairs(list(lanes.join(np.ascontiguousarray(values[:, column]), queries[:, column], radius)),
                          len(queries))
            assert got == want


def test_emulated_gpu_copy_agrees_with_its_cpu_twin(fake_gpu: None, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    index = HashIndex.open(tmp_path / "idx")
    index.add(np.arange(1500) * 2 + 1, rng.integers(0, 2**63, (1500, CODE_WORDS), dtype=np.uint64))
    gpu, cpu = ResidentIndex((-1, 10, 10, -1), device=0), ResidentIndex((-1, 10, 10, -1))
    gpu.RECENT_MIN, gpu.PAIRS_PER_LAUNCH = 150, 8  # merges into the large table; launches that overflow
    early = []  # batches whose classic searches of the large table started before the copy grew
    start_large = gpu._start_large
    gpu._start_large = lambda *a: early.append(start_large(*a)) or early[-1]  # type: ignore[method-assign]
    next_id = 10_000
    for batch in range(4):
        ids = np.arange(next_id, next_id + 60)
        next_id += 60
        near = index.codes[rng.integers(0, len(index), 40)] ^ (
            np.uint64(1) << rng.integers(0, 64, (40, CODE_WORDS)).astype(np.uint64))
        codes = np.concatenate([near, rng.integers(0, 2**63, (20, CODE_WORDS), dtype=np.uint64)])
        if batch == 2:
            index.remove(index.ids[:30])
        index.add(ids, codes)
        g, c = gpu.search(index, ids), cpu.search(index, ids)
        assert len(g.classic) > 0 and len(g.geo_a) > 0
        assert (g.classic.a.tolist(), g.classic.b.tolist(), g.classic.dist.tolist(), g.geo_a.tolist(),
                g.geo_b.tolist(), g.ids.tolist()) == (c.classic.a.tolist(), c.classic.b.tolist(),
                                                       c.classic.dist.tolist(), c.geo_a.tolist(), c.geo_b.tolist(),
                                                       c.ids.tolist())
    assert all(t.check() for t in gpu._tables) and gpu._tables[0].n > 1500
    assert any(e is not None for e in early) and any(e is None for e in early)  # both ways were taken


def test_emulated_append_sorts_a_batch_on_the_host_as_on_the_device(fake_gpu: None) -> None:
    """A host batch's lane entries are sorted on the host (small batches) or on the device
    (large ones, and values already there): the same tables either way."""
    rng = np.random.default_rng(5)
    host, device = gpu_resident.DeviceTable(2, capacity=1024), gpu_resident.DeviceTable(2, capacity=1024)
    device.HOST_SORT = 0
    for size in (1, 200, 700):
        new = rng.integers(0, 2**64, (size, 2), dtype=np.uint64, endpoint=False)
        new[::4] = new[0]  # equal keys: their rows stay in order
        host.append(new)
        device.append(new)
        assert host.check() and device.check()
        for a, b in ((host.order, device.order), (host.sval, device.sval), (host.starts, device.starts),
                     (host.x, device.x)):
            assert np.array_equal(np.asarray(a)[..., : host.n] if a.shape[-1] != 65537 else np.asarray(a),
                                  np.asarray(b)[..., : device.n] if b.shape[-1] != 65537 else np.asarray(b))
