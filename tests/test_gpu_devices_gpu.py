"""On the GPU machine: several process groups on the real device (``[gpu] devices = "0,0"``,
the several-GPU path on one GPU), camera RAWs through the JPEG engines, and the batch
reduction kernel against its NumPy twin. Skipped without CuPy and a device."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError
except Exception:
    pytest.skip("no CUDA device", allow_module_level=True)

from conftest import upright_source, write_photo  # noqa: E402
from test_decode_raw import SOURCE, write_raw  # noqa: E402

from lumina_plugin.config import Config  # noqa: E402
from lumina_plugin.hashing.cupy_hasher import DeviceImage  # noqa: E402
from lumina_plugin.hashing.cupy_reduce import BatchReducer, reduce_rgb  # noqa: E402
from lumina_plugin.ingest import gpu_processes  # noqa: E402
from lumina_plugin.ingest.pipeline import LAST_RUN, hash_paths  # noqa: E402
from lumina_plugin.settings.gpu import GpuSettings  # noqa: E402
from lumina_plugin.settings.hashing import HashingSettings  # noqa: E402

pytestmark = pytest.mark.gpu
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"


def test_the_batch_reduction_is_reduce_rgb_bit_for_bit() -> None:
    """One kernel per size and factor (cupy_reduce.BatchReducer) against the NumPy body
    that CI checks against Pillow: odd sizes (partial blocks), every factor, a strided view."""
    rng = np.random.default_rng(7)
    reducer = BatchReducer(cupy)
    images, factors = [], []
    for height, width, factor in [(1080, 1920, 4), (1081, 1919, 4), (300, 401, 2), (3000, 4000, 8),
                                  (17, 9, 1), (1080, 1920, 4), (999, 777, 8)]:
        images.append(cupy.asarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)))
        factors.append(factor)
    padded = cupy.asarray(rng.integers(0, 256, (200, 300, 4), dtype=np.uint8))  # RGBA: a pixel stride of 4
    images.append(padded)
    factors.append(2)
    views = [DeviceImage.of(im) for im in images]
    out, held = reducer.reduce([(v.ptr, v.shape, v.strides) for v in views], factors)
    cupy.cuda.get_current_stream().synchronize()
    for image, factor, (ptr, shape, strides) in zip(images, factors, out):
        got = cupy.ndarray(shape, cupy.uint8, cupy.cuda.MemoryPointer(
            cupy.cuda.UnownedMemory(ptr, int(np.prod(shape)), held[0]), 0), strides=strides)
        want = reduce_rgb(np, cupy.asnumpy(image), factor)
        assert np.array_equal(cupy.asnumpy(got), want), (image.shape, factor)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("gpus")
    sources = sorted(p for p in SAMPLE_DIR.rglob("*.jpg") if "exports" not in p.parts)[:8]
    for n in range(96):
        write_photo(root / f"p{n:02d}.jpg", source=sources[n % len(sources)], size=(1280 - n, 720),
                    orientation=(1, 6, 3, 8)[n % 4])
    for n, orientation in enumerate([1, 6, 8, 3]):
        buf = io.BytesIO()
        upright_source(SOURCE).resize((1600 + 16 * n, 1064)).save(buf, "JPEG", quality=90)
        write_raw(root / f"r{n}.dng", preview=buf.getvalue(), orientation=orientation)
    return sorted(str(p) for p in root.iterdir())


@pytest.mark.parametrize("mode", ["exact", "reduced"])
def test_two_process_groups_on_the_device_give_the_cpus_records(library: list[str], mode: str) -> None:
    """``--gpus 0,0``: four GPU processes (two groups of two) on device 0 share the run; in
    exact mode every record is the CPU's, RAWs (hashed from their preview on the engines)
    included; in reduced mode the facts are and the codes are within a few bits."""
    def run(gpu: str, devices: str = "") -> list:
        # (two processes a group, named: the default, four since 684d80c, would test the same
        # sharing with twice the start-up time)
        cfg = Config(batch_size=16, gpu=GpuSettings(devices=devices),
                     hashing=HashingSettings(gpu=gpu, gpu_batch_size=8, gpu_processes=2, workers=2,
                                             parallel_min_mb=0, decode=mode))
        return [r for records, _ in hash_paths(library, cfg) for r in records]

    got = run("on", "0,0")
    assert LAST_RUN["gpu_groups"] == 2 and LAST_RUN["gpu_processes"] == 4
    assert LAST_RUN["gpu_hashed"] == len(library)  # every JPEG and every RAW on the engines
    by_group = LAST_RUN["gpu_hashed_by_group"]
    assert isinstance(by_group, dict) and min(by_group.values()) >= 1
    assert len({p.device for p in gpu_processes._PROCESSES}) == 1
    want = run("off")
    assert [r.path for r in got] == [r.path for r in want]
    for g, w in zip(got, want):
        assert (g.checksum, g.width, g.height, g.orientation, g.format, g.size_bytes) == \
            (w.checksum, w.width, w.height, w.orientation, w.format, w.size_bytes), g.path
        if mode == "exact":
            assert [int(c) for c in g.codes] == [int(c) for c in w.codes], g.path
        else:
            bits = [bin(int(a) ^ int(b)).count("1") for a, b in zip(g.codes, w.codes)]
            assert max(bits) <= 16, (g.path, bits)
