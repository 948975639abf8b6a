"""The start-up check of the CuPy joins: they must agree with the CPU joins before any
search uses them (a GPU or driver that computes wrongly would otherwise go unnoticed).

Apart from index/cupy_join.py (the all-pairs kernels) and index/gpu_lanes.py (the batch kernel,
which builds on cupy_join.py), so neither of those needs the other to check itself.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import gpu_status
from ..gpu_status import GpuProblem, Why
from . import cupy_join, gpu_lanes, mih

__all__ = ["gpu_problem"]


def _self_check_codes(n: int = 4096) -> np.ndarray:
    """Codes that exercise every path: random, near copies at 1-10 bits, a bucket of identical
    codes, and codes sharing one block but far apart."""
    rng = np.random.default_rng(20261125)
    x = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    for t in range(0, n // 2, 2):
        bits = rng.choice(64, int(rng.integers(0, 11)), replace=False)
        x[t + 1] = x[t] ^ np.uint64(sum(1 << int(b) for b in bits))
    m, h = n // 14, n // 2  # 4096 codes: a bucket of 292 identical ones (42,486 pairs)
    x[h : h + m] = x[h]
    x[h + m : h + 2 * m] = (x[h + m : h + 2 * m] & ~np.uint64(0xFFFF)) | np.uint64(0x1234)
    return x


def _pair_set(chunks: Iterator[tuple[Any, Any]], n: int) -> np.ndarray:
    keys = [np.asarray(i.get() if hasattr(i, "get") else i) * n + np.asarray(j.get() if hasattr(j, "get") else j)
            for i, j in chunks]
    return np.sort(np.concatenate(keys)) if keys else np.empty(0, np.int64)


@functools.cache
def gpu_problem(device: int = 0) -> GpuProblem | None:
    """Why the CuPy joins must not be used on ``device`` (None: both kernels agree with the CPU
    join on a few thousand codes, at several radii, for all pairs and for queries, and the lane
    kernel of :mod:`.gpu_lanes` agrees with the CPU lane join). Cached per device."""
    if gpu_status.cupy_module() is None:
        return gpu_status.cupy_problem() or GpuProblem(Why.NO_CUPY)
    x = _self_check_codes()
    n = len(x)
    try:
        for radius in (0, 3, 6, 10):
            for q0 in (0, n - n // 6):
                want = _pair_set(mih.join(x, radius, first_query=q0), n)
                got = {"brute_join": _pair_set(cupy_join.brute_join(x, radius, first_query=q0, device=device, capacity=4096), n)}
                # the plans the cost model picks for large inputs, and the classic r + 1 blocks
                plans = {mih.make_plan(radius, max(3, min(radius + 1, 16))), mih.make_plan(radius, 4)}
                plans |= {p for p in (cupy_join.choose_plan(radius, 10**6), cupy_join.choose_plan(radius, 10**8)) if p is not None}
                for plan in plans:
                    got[f"mih_join ({plan})"] = _pair_set(
                        cupy_join.mih_join(x, radius, first_query=q0, plan=plan, device=device, capacity=4096), n)
                for name, keys in got.items():
                    if not np.array_equal(keys, want):
                        return GpuProblem(Why.SELF_CHECK, f"{name} disagrees with the CPU join "
                                                          f"(radius {radius}: {len(keys)} vs {len(want)} pairs)")
        problem = gpu_lanes.self_check(x, device)
        if problem is not None:
            return GpuProblem(Why.SELF_CHECK, problem)
    except Exception as err:
        return GpuProblem.of(Why.FAILED, err)
    return None
