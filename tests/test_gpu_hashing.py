"""The GPU path on a GPU: CuPy kernels equal to the CPU bit for bit on the same pixels,
nvImageCodec decoding close to libjpeg, and hash_paths with the GPU giving the CPU's
records (codes of GPU-decoded JPEGs within a few bits). Skipped without CuPy and a
device; run on the GPU machine (docs/gpu.md says how)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

cupy = pytest.importorskip("cupy")
try:
    _DEVICES = cupy.cuda.runtime.getDeviceCount()
except Exception:  # no driver
    _DEVICES = 0
if _DEVICES < 1:
    pytest.skip("no CUDA device", allow_module_level=True)

from conftest import MakePhoto  # noqa: E402

from lumina_plugin.config import Config  # noqa: E402
from lumina_plugin.decode.photo import probe  # noqa: E402
from lumina_plugin.hashing import resize  # noqa: E402
from lumina_plugin.hashing.codes import hamming  # noqa: E402
from lumina_plugin.hashing.cupy_hasher import GpuHasher, self_check  # noqa: E402
from lumina_plugin.ingest.pipeline import hash_paths  # noqa: E402
from lumina_plugin.ingest.records import record_for  # noqa: E402
from lumina_plugin.model import CLASSIC_WORDS, CODE_WORDS, DECODE_VERSIONS, reduced_factor  # noqa: E402
from lumina_plugin.settings.hashing import HashingSettings  # noqa: E402

pytestmark = pytest.mark.gpu

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
PHOTOS = sorted(p for p in SAMPLE_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
MAX_PIXELS = Config().max_pixels


@pytest.fixture(scope="module")
def hasher() -> GpuHasher:
    return GpuHasher()


def stored_rgb(path: Path) -> tuple[np.ndarray, int]:
    """Pillow's decode of the stored (un-rotated) pixels as RGB, and the EXIF orientation."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB")), probe(path, MAX_PIXELS).orientation


def test_self_check_passes(hasher: GpuHasher) -> None:
    assert self_check(hasher) is None


def test_kernels_equal_pillow_and_cpu_codes_on_every_sample_photo(hasher: GpuHasher) -> None:
    images = [stored_rgb(p) for p in PHOTOS]
    thumbs = cupy.asnumpy(hasher.thumbnails([(cupy.asarray(rgb), o) for rgb, o in images]))
    for path, row in zip(PHOTOS, thumbs):
        with Image.open(path) as im:
            gray = ImageOps.exif_transpose(im).convert("L")
        want = np.concatenate([np.asarray(gray.resize(s, Image.Resampling.LANCZOS)).ravel()
                               for s in resize.THUMB_SIZES])
        np.testing.assert_array_equal(row, want, err_msg=str(path))
    codes = hasher.hash([(cupy.asarray(rgb), o) for rgb, o in images])
    np.testing.assert_array_equal(codes, np.stack([record_for(str(p), MAX_PIXELS).codes for p in PHOTOS]))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_kernels_turn_camera_sized_photos_like_the_cpu(hasher: GpuHasher, make_photo: MakePhoto, orientation: int) -> None:
    path = make_photo(f"o{orientation}.jpg", size=(4000, 3000), orientation=orientation, quality=92)
    rgb, o = stored_rgb(path)
    assert o == orientation
    codes = hasher.hash([(cupy.asarray(rgb), o)])
    np.testing.assert_array_equal(codes[0], record_for(str(path), MAX_PIXELS).codes)


def test_kernels_on_the_noisy_camera_photo(hasher: GpuHasher, big_photo: Path) -> None:
    rgb, o = stored_rgb(big_photo)
    np.testing.assert_array_equal(hasher.hash([(cupy.asarray(rgb), o)])[0], record_for(str(big_photo), MAX_PIXELS).codes)


@pytest.mark.parametrize("orientation", [1, 6])
def test_reduced_kernels_equal_the_cpus_reduced_decode_of_a_png(hasher: GpuHasher, make_photo: MakePhoto,
                                                               orientation: int) -> None:
    """Reduced mode, the same stored pixels: the GPU's reduction (cupy_reduce on CuPy) and
    kernels give exactly the CPU's reduced-mode codes (Pillow's convert and reduce)."""
    from lumina_plugin.hashing.cupy_reduce import reduce_rgb

    path = make_photo(f"scan{orientation}.png", size=(2001, 1501), orientation=orientation)
    rgb, o = stored_rgb(path)
    small = reduce_rgb(cupy, cupy.asarray(rgb), reduced_factor(rgb.shape[1], rgb.shape[0]))
    assert small.shape[:2] == (-(-rgb.shape[0] // 4), -(-rgb.shape[1] // 4))
    want = record_for(str(path), MAX_PIXELS, mode="reduced").codes
    np.testing.assert_array_equal(hasher.hash([(small, o)])[0], want)


def test_codes_queued_on_another_stream_are_waited_for(hasher: GpuHasher) -> None:
    """The GPU process queues a part's kernels on a non-blocking stream and fetches the
    codes later from another: the fetch must wait for them (it once copied 12 MP codes
    half-made). Many camera-sized images make the kernels outlast a careless copy."""
    from lumina_plugin.hashing.geometry import geometry_codes
    from lumina_plugin.hashing.thumb_codes import hash_thumbnails

    rng = np.random.default_rng(7)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    rgb = np.repeat(np.repeat(small, 100, axis=0), 100, axis=1)  # 4000x3000, smooth blocks
    gray = resize.rgb_to_gray(rgb)
    want = np.concatenate([hash_thumbnails(resize.thumbnails(gray)[None])[0], geometry_codes(gray)])
    images = [(cupy.asarray(rgb), 1)] * 48
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        pending = hasher.hash_async(images)
    got = hasher.finish(pending)  # on the default stream
    np.testing.assert_array_equal(got, np.tile(want, (48, 1)))


# -- nvImageCodec and the whole pipeline -----------------------------------------------------

@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Camera-sized baseline JPEGs and everything the GPU must hand to the CPU."""
    pytest.importorskip("nvidia.nvimgcodec")
    from conftest import write_photo

    root = tmp_path_factory.mktemp("gpu_library")
    sources = [p for p in PHOTOS if p.suffix.lower() == ".jpg" and "exports" not in p.parts][:10]
    paths = [write_photo(root / f"cam{n:02d}.jpg", source=src, size=(2400, 1600), quality=92)
             for n, src in enumerate(sources)]
    paths.append(write_photo(root / "rot6.jpg", source=sources[0], size=(2400, 1600), orientation=6))
    paths.append(write_photo(root / "rot3.jpg", source=sources[1], size=(1600, 1200), orientation=3))
    with Image.open(paths[2]) as im:
        im.save(root / "progressive.jpg", "JPEG", progressive=True, quality=92)
        im.convert("L").save(root / "gray.jpg", "JPEG", quality=92)
        im.convert("CMYK").save(root / "cmyk.jpg", "JPEG", quality=92)
        im.save(root / "lossless.png")
        im.save(root / "web.webp", quality=90)
    (root / "truncated.jpg").write_bytes(paths[3].read_bytes()[:50_000])
    (root / "empty.jpg").write_bytes(b"")
    extra = ["progressive.jpg", "gray.jpg", "cmyk.jpg", "lossless.png", "web.webp", "truncated.jpg", "empty.jpg"]
    return [str(p) for p in paths] + [str(root / name) for name in extra]


def test_gpu_decoded_pixels_are_close_to_libjpeg(library: list[str]) -> None:
    from lumina_plugin.decode.nvimgcodec import GpuJpegDecoder

    decoder = GpuJpegDecoder()
    files = [Path(p).read_bytes() for p in library[:4]]
    images = decoder.decode(files)
    assert all(img is not None for img in images)
    for path, img in zip(library[:4], images):
        gpu = cupy.asnumpy(cupy.asarray(img))
        with Image.open(path) as im:
            cpu = np.asarray(im.convert("RGB"))
        assert gpu.shape == cpu.shape
        diff = np.abs(gpu.astype(int) - cpu)
        print(f"{Path(path).name}: max {diff.max()} mean {diff.mean():.3f} levels")
        assert diff.max() <= 16


@pytest.mark.parametrize("mode", ["reduced", "exact"])
def test_hash_paths_on_the_gpu_gives_the_cpus_records(library: list[str], mode: str) -> None:
    """In each decode mode: in "reduced" the GPU reduces its decoded pixels as the CPU reduces
    a PNG's (cupy_reduce), while the CPU takes a JPEG's luma from libjpeg's DCT scaling."""
    on = Config(batch_size=4, hashing=HashingSettings(gpu="on", gpu_batch_size=3, workers=2, parallel_min_mb=0,
                                                      decode=mode))
    off = Config(batch_size=4, hashing=HashingSettings(gpu="off", parallel_min_files=10**6, decode=mode))
    got, want = list(hash_paths(library, on)), list(hash_paths(library, off))
    from lumina_plugin.ingest.pipeline import LAST_RUN
    # the whole baseline colour JPEGs are shared out between the GPU and the CPU pool
    assert LAST_RUN["gpu"] and 1 <= LAST_RUN["gpu_hashed"] <= 12
    assert [len(r) + len(e) for r, e in got] == [len(r) + len(e) for r, e in want]
    assert [e for _, e in got] == [e for _, e in want]  # truncated and empty: same errors
    gpu_names = {f"cam{n:02d}.jpg" for n in range(10)} | {"rot6.jpg", "rot3.jpg"}
    worst, worst_geometry = 0, 0
    for (records, _), (expected, _) in zip(got, want):
        for r, w in zip(records, expected):
            # every fact but the codes is the CPU's: the checksum now comes from the GPU
            # process's own read, the EXIF from the head of the file (decode/head.py)
            facts = ("path", "checksum", "size_bytes", "mtime_ns", "width", "height", "orientation",
                     "format", "camera", "taken_at", "subsec", "exif_tags", "hash_version")
            assert [getattr(r, f) for f in facts] == [getattr(w, f) for f in facts], r.path
            bits = [hamming(a, b) for a, b in zip(r.codes, w.codes)]
            if Path(r.path).name in gpu_names:
                worst = max(worst, *bits[:CLASSIC_WORDS])
                worst_geometry = max(worst_geometry, *bits[CLASSIC_WORDS:])
            else:  # decoded by Pillow in the pool: identical
                assert bits == [0] * CODE_WORDS, r.path
    assert {r.hash_version for rs, _ in got for r in rs} == {DECODE_VERSIONS[mode]}
    print(f"{mode}: GPU-decoded codes differ from the CPU's by at most {worst} bits, geometry words {worst_geometry}")
    assert worst <= 4 and worst_geometry <= 16


def test_gpu_memory_stays_bounded_over_runs(library: list[str], tmp_path: Path) -> None:
    many = []
    for n in range(60):
        dest = tmp_path / f"copy{n:02d}.jpg"
        shutil.copyfile(library[n % 10], dest)
        many.append(str(dest))
    cfg = Config(batch_size=16, hashing=HashingSettings(gpu="on", gpu_batch_size=8, workers=2, parallel_min_mb=0))
    list(hash_paths(many, cfg))
    free_after_one = cupy.cuda.runtime.memGetInfo()[0]
    for _ in range(3):
        list(hash_paths(many, cfg))
    assert cupy.cuda.runtime.memGetInfo()[0] > free_after_one - (512 << 20)


@pytest.mark.slow
def test_killing_a_gpu_process_mid_run_loses_no_photo(library: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The real GPU processes, one SIGKILLed while it holds work: every photo still gets
    its record (the CPU's facts; GPU-decoded codes within a few bits), one warning, and
    the next load starts fresh GPU processes."""
    import logging
    import os
    import signal

    from lumina_plugin.ingest import gpu_processes

    many = []
    for n in range(400):  # enough that the GPU processes still hold work at the first commit
        dest = tmp_path / f"copy{n:03d}.jpg"
        os.link(library[n % 12], dest)
        many.append(str(dest))
    cfg = Config(batch_size=8, hashing=HashingSettings(gpu="on", gpu_batch_size=8, gpu_processes=2,
                                                       workers=2, parallel_min_mb=0))
    procs, reason = gpu_processes.load_gpu(2)
    assert len(procs) == 2, reason
    killed: list[int] = []

    def kill_one(phase: str, done: int, total: int) -> None:
        pid = procs[0].process.pid
        if not killed and done >= 8 and pid is not None:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    try:
        with caplog.at_level(logging.WARNING):
            got = list(hash_paths(many, cfg, progress=kill_one))
        want = list(hash_paths(many, Config(batch_size=8, hashing=HashingSettings(gpu="off", workers=2,
                                                                                  parallel_min_mb=0))))
        assert killed
        assert [[r.path for r in b] for b, _ in got] == [[r.path for r in b] for b, _ in want]
        assert not any(e for _, e in got)
        for (records, _), (expected, _) in zip(got, want):
            for r, w in zip(records, expected):
                assert (r.checksum, r.width, r.height, r.orientation) == (w.checksum, w.width, w.height, w.orientation)
                bits = [hamming(a, b) for a, b in zip(r.codes, w.codes)]
                assert max(bits[:CLASSIC_WORDS]) <= 4 and max(bits[CLASSIC_WORDS:]) <= 16, r.path
        assert len([r for r in caplog.records if "GPU hashing stopped" in r.getMessage()]) == 1
        assert gpu_processes.load_gpu(2)[0] == []  # this process now hashes on the CPU...
    finally:
        gpu_processes._LOADED = False  # ...until the GPU is loaded afresh (tests after this one)
        gpu_processes._REASON = None
