"""The geometry words on the GPU (hashing/cupy_geometry.py) are the CPU's bits for the same
pixels (hashing/geometry.py).

Two halves:

- CPU twins, run everywhere: the batch functions the GPU runs, called with NumPy, against
  Pillow's ``reduce`` and geometry.geometry_codes on real photos of sample_catalog/ and
  their letterboxed, pillarboxed, captioned and framed copies (made with Pillow);
- ``gpu`` tests, skipped without CuPy and a device: the kernels and the CuPy batch on the
  same photos and on camera-sized copies (12 MP, turned in their pixels or by EXIF,
  letterboxed, captioned), and ``hash_paths`` with the GPU processes, whose words must be
  those of the pixels the JPEG engines decoded.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from lumina_plugin.hashing import borders
from lumina_plugin.hashing import cupy_geometry as cg
from lumina_plugin.hashing.borders import content_box, working_image
from lumina_plugin.hashing.geometry import GEO_WORDS, geometry_codes
from lumina_plugin.model import CLASSIC_WORDS, CODE_WORDS

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
PHOTOS = sorted(p for p in SAMPLE_DIR.rglob("*.jpg") if "exports" not in p.parts)


def _cupy() -> object | None:
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # no CuPy, no driver
        return None


CUPY = _cupy()
needs_gpu = pytest.mark.skipif(CUPY is None, reason="needs CuPy and a CUDA device")


def upright(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def pad(img: Image.Image, left: int, top: int, right: int, bottom: int, colour: tuple[int, int, int]) -> Image.Image:
    canvas = Image.new("RGB", (img.width + left + right, img.height + top + bottom), colour)
    canvas.paste(img, (left, top))
    return canvas


def caption(img: Image.Image, fraction: float = 0.1) -> Image.Image:
    band = round(img.height * fraction)
    canvas = pad(img, 0, 0, 0, band, (255, 255, 255))
    ImageDraw.Draw(canvas).text((img.width / 2, img.height + band / 2), "WHEN THE GPU AGREES", fill=(0, 0, 0),
                                anchor="mm")
    return canvas


def copies(img: Image.Image) -> list[Image.Image]:
    """The photo and its bordered copies: letterbox, pillarbox, caption band, coloured frame."""
    w, h = img.size
    return [img, pad(img, 0, h // 8, 0, h // 8, (0, 0, 0)), pad(img, w // 6, 0, w // 6, 0, (255, 255, 255)),
            caption(img), pad(img, w // 40, w // 40, w // 40, w // 40, (40, 90, 200))]


def jpeg_gray(img: Image.Image, quality: int = 90) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("L"))


@pytest.fixture(scope="module")
def grays() -> list[np.ndarray]:
    """Gray pixels of every sample photo and its bordered copies (JPEG round trip), and
    two flat images (every coefficient but the DC is 0: all flagged, all on the host)."""
    out = [jpeg_gray(c) for p in PHOTOS for c in copies(upright(p))]
    return out + [np.zeros((400, 600), np.uint8), np.full((300, 700), 128, np.uint8)]


# ---------------------------------------------------------------- CPU twins (NumPy)


@pytest.mark.parametrize("size", [(523, 701), (1080, 1920), (3000, 4000), (2999, 4001), (600, 257), (255, 300),
                                  (511, 100), (512, 512), (1023, 767), (5000, 300), (7001, 6999)])
def test_block_sums_rounded_as_pillow_are_its_reduce(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[0] * 10_007 + size[1])
    for gray in (rng.integers(0, 256, size, dtype=np.uint8), np.full(size, 255, np.uint8),
                 np.clip(rng.normal(128, 60, size), 0, 255).astype(np.uint8)):
        got = cg.finish_reduce(np, cg.block_sums(gray)[None], *size)[0]
        np.testing.assert_array_equal(got, working_image(gray).astype(np.uint8), err_msg=str(size))
        assert got.shape == cg.working_size(*size)


def test_content_boxes_are_the_cpus(grays: list[np.ndarray]) -> None:
    trimmed = 0
    for gray in grays:
        work = working_image(gray)
        want = content_box(np, work)
        got = tuple(int(x) for x in cg.content_boxes(np, work.astype(np.uint8)[None])[0])
        assert got == want, gray.shape
        trimmed += want != (0, work.shape[0], 0, work.shape[1])
    assert trimmed >= 3 * len(PHOTOS)  # the bordered copies were trimmed


def bordered_batch() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """96 working images of one size, each with its own bars (and some turned), and their
    content boxes by borders.content_box."""
    rng = np.random.default_rng(17)
    sources = [upright(p) for p in PHOTOS[:12]]
    works, wants = [], []
    for n in range(96):
        left, right, top, bottom = (int(rng.integers(0, lim)) if rng.random() < 0.5 else 0
                                    for lim in (200, 200, 150, 150))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) if rng.random() < 0.5 else (0, 0, 0)
        canvas = Image.new("RGB", (900, 640), colour)
        canvas.paste(sources[n % len(sources)].resize((900 - left - right, 640 - top - bottom)), (left, top))
        if rng.random() < 0.3:
            canvas = canvas.rotate(90, expand=True).resize((900, 640))
        work = working_image(np.asarray(canvas.convert("L")))
        works.append(work.astype(np.uint8))
        wants.append(content_box(np, work))
    assert sum(w != (0, works[0].shape[0], 0, works[0].shape[1]) for w in wants) > 48
    return np.stack(works), wants


def test_content_boxes_of_a_batch_with_different_borders() -> None:
    """One batch, one size, every image its own bars, band and turn: the masks of the
    second pass (each image's own box) must not mix images."""
    works, wants = bordered_batch()
    got = cg.content_boxes(np, works)
    assert [tuple(int(x) for x in row) for row in got] == wants


def test_batch_basis_is_borders_basis() -> None:
    a = np.array([0.0, 3.25, 10.5, 0.0])
    b = np.array([155.0, 140.75, 99.0, 1.5])
    got = cg.batch_basis(np, 155, a, b)
    for k in range(len(a)):
        np.testing.assert_allclose(got[k], borders.basis(np, 155, float(a[k]), float(b[k]), 16), rtol=0, atol=1e-15)


def test_words_of_the_batch_functions_are_geometry_codes(grays: list[np.ndarray]) -> None:
    for gray in grays:
        work = working_image(gray).astype(np.uint8)
        np.testing.assert_array_equal(cg.geometry_words(np, work[None])[0], geometry_codes(gray), err_msg=str(gray.shape))


def test_coefficients_near_zero_are_decided_on_the_host(grays: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """With every coefficient flagged, every photo's words come from host_words: the same."""
    calls: list[int] = []
    host_words = cg.host_words
    monkeypatch.setattr(cg, "COEFF_TIE", 1e9)
    monkeypatch.setattr(cg, "host_words", lambda work, box: calls.append(1) or host_words(work, box))
    picked = grays[:: max(1, len(grays) // 12)]
    for gray in picked:
        work = working_image(gray).astype(np.uint8)
        np.testing.assert_array_equal(cg.geometry_words(np, work[None])[0], geometry_codes(gray))
    assert len(calls) == len(picked)


def test_chunks_of_several_sizes_fill_their_own_rows(grays: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """As GpuHasher queues them: one group per upright size, interleaved in the batch, cut
    into chunks; each photo's words land in its own row."""
    monkeypatch.setattr(cg, "CHUNK", 2)
    picked = [grays[i] for i in (0, 5, 1, 0, 2, 5, 0, 6, 1, 0, 5)]
    out = np.zeros((len(picked), GEO_WORDS), np.uint64)
    by_size: dict[tuple[int, int], list[int]] = {}
    for n, gray in enumerate(picked):
        by_size.setdefault(working_image(gray).shape, []).append(n)
    queued = []
    for members in by_size.values():
        sums = np.stack([cg.block_sums(picked[n]) for n in members])
        work = cg.finish_reduce(np, sums, *picked[members[0]].shape)
        queued += cg.queue_boxes(np, np.array(members), work)
    assert len(by_size) > 1 and len(queued) > len(by_size)
    cg.finish_words(np, queued, out[:, :])
    np.testing.assert_array_equal(out, np.stack([geometry_codes(g) for g in picked]))


# ---------------------------------------------------------------- on the GPU


def stored_rgb(path: Path) -> tuple[np.ndarray, int]:
    """Pillow's decode of the stored (un-rotated) pixels as RGB, and the EXIF orientation."""
    from lumina_plugin.decode.photo import probe

    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB")), probe(path, 250_000_000).orientation


@pytest.fixture(scope="module")
def hasher() -> object:
    from lumina_plugin.hashing.cupy_hasher import GpuHasher

    return GpuHasher()


@pytest.fixture(scope="module")
def camera_copies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Camera-sized JPEGs (12 MP, q92) of sample photos and their copies: turned in the
    pixels and by EXIF, letterboxed, pillarboxed, captioned; and 2 MP ones."""
    from conftest import write_photo

    root = tmp_path_factory.mktemp("geometry_gpu")
    out = []
    for n, path in enumerate(PHOTOS[:3]):
        img = upright(path).resize((4000, 3000), Image.Resampling.BICUBIC)
        rng = np.random.default_rng(n)
        img = Image.fromarray(np.clip(np.asarray(img, np.int16) + rng.integers(-6, 7, (3000, 4000, 3)),
                                      0, 255).astype(np.uint8))
        out.append(write_photo(root / f"cam{n}.jpg", source=img, quality=92))
        out.append(write_photo(root / f"cam{n}_rot90.jpg", source=img.transpose(Image.Transpose.ROTATE_90), quality=92))
        out.append(write_photo(root / f"cam{n}_exif6.jpg", source=img, quality=92, orientation=6))
        out.append(write_photo(root / f"cam{n}_exif3.jpg", source=img, quality=92, orientation=3))
        out.append(write_photo(root / f"cam{n}_letterbox.jpg", source=pad(img.resize((4000, 2250)), 0, 375, 0, 375,
                                                                              (0, 0, 0)), quality=92))
        out.append(write_photo(root / f"cam{n}_pillarbox.jpg", source=pad(img.resize((3000, 2250)), 500, 0, 500, 0,
                                                                              (255, 255, 255)), quality=92))
        out.append(write_photo(root / f"cam{n}_caption.jpg", source=caption(img), quality=92))
        out.append(write_photo(root / f"small{n}.jpg", source=img, size=(1920, 1080), quality=92))
        out.append(write_photo(root / f"small{n}_exif8.jpg", source=caption(img.resize((1920, 1080))),
                               size=(1920, 1188), quality=92, orientation=8))
    return out


def _gpu_codes(hasher: object, paths: list[Path]) -> np.ndarray:
    cupy = CUPY
    images = [stored_rgb(p) for p in paths]
    return hasher.hash([(cupy.asarray(rgb), o) for rgb, o in images])  # type: ignore[attr-defined]


@pytest.mark.gpu
@needs_gpu
def test_box_kernel_and_cupy_arrays_give_the_cpus_boxes(grays: list[np.ndarray]) -> None:
    """BoxKernel (what the GPU process runs) and content_boxes on CuPy arrays: the CPU's boxes
    for a batch of different borders and for every sample photo and bordered copy."""
    cupy = CUPY
    kernel = cg.BoxKernel(cupy)
    works, wants = bordered_batch()
    for find in (kernel, lambda w: cg.content_boxes(cupy, w)):
        assert [tuple(int(x) for x in row) for row in cupy.asnumpy(find(cupy.asarray(works)))] == wants  # type: ignore[attr-defined]
    for gray in grays:
        work = working_image(gray)
        got = cupy.asnumpy(kernel(cupy.asarray(work.astype(np.uint8)[None])))[0]  # type: ignore[attr-defined]
        assert tuple(int(x) for x in got) == content_box(np, work), gray.shape


@pytest.mark.gpu
@needs_gpu
def test_gpu_words_are_the_cpus_on_every_sample_photo(hasher: object) -> None:
    from lumina_plugin.ingest.records import record_for

    got = _gpu_codes(hasher, PHOTOS)
    assert got.shape == (len(PHOTOS), CODE_WORDS)
    want = np.stack([record_for(str(p), 250_000_000).codes for p in PHOTOS])
    np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
@needs_gpu
def test_gpu_words_are_the_cpus_on_camera_sized_copies(hasher: object, camera_copies: list[Path]) -> None:
    """One batch of several sizes (12 MP both ways, letterboxed, 2 MP): each photo's 12 words
    are the CPU's for the same file, and the bordered copies were trimmed."""
    from lumina_plugin.hashing.geometry import meta_fields
    from lumina_plugin.ingest.records import record_for

    for start in range(0, len(camera_copies), 12):  # 12 MP pixels: a dozen at a time
        paths = camera_copies[start:start + 12]
        got = _gpu_codes(hasher, paths)
        want = np.stack([record_for(str(p), 250_000_000).codes for p in paths])
        for path, g, w in zip(paths, got, want):
            np.testing.assert_array_equal(g, w, err_msg=path.name)
            if "letterbox" in path.name or "pillarbox" in path.name:
                trims, _ = meta_fields(g[CLASSIC_WORDS:])
                assert trims.max() > 0.05, path.name


@pytest.mark.gpu
@needs_gpu
def test_gpu_batches_of_one_size_in_chunks(hasher: object, camera_copies: list[Path]) -> None:
    """More same-size images than a chunk (cupy_geometry.CHUNK), repeated: the chunks'
    words land on their own photos."""
    from lumina_plugin.ingest.records import record_for

    cupy = CUPY
    smalls = [p for p in camera_copies if p.name.startswith("small") and "exif" not in p.name]
    images = [stored_rgb(p) for p in smalls]
    want = np.stack([record_for(str(p), 250_000_000).codes for p in smalls])
    batch = [(cupy.asarray(rgb), o) for rgb, o in images] * (cg.CHUNK // len(smalls) + 2)  # type: ignore[attr-defined]
    got = hasher.hash(batch)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got, np.tile(want, (len(batch) // len(smalls), 1)))


@pytest.mark.gpu
@needs_gpu
def test_hash_paths_on_the_gpu_gives_the_words_of_the_engines_pixels(camera_copies: list[Path]) -> None:
    """The real GPU processes (engines, kernels, protocol, records): every photo's 12 words
    are codes_of_gray of the pixels the JPEG engines decode for that file, turned by its
    EXIF orientation; and within a few bits of the CPU's libjpeg decode."""
    pytest.importorskip("nvidia.nvimgcodec")
    from lumina_plugin.config import Config
    from lumina_plugin.decode.nvimgcodec import GpuJpegDecoder
    from lumina_plugin.decode.photo import _TRANSPOSE
    from lumina_plugin.hashing.codes import hamming
    from lumina_plugin.hashing.cupy_hasher import GpuHasher
    from lumina_plugin.ingest.pipeline import LAST_RUN, hash_paths
    from lumina_plugin.ingest.records import codes_of_gray, record_for
    from lumina_plugin.settings.hashing import HashingSettings

    cupy = CUPY
    paths = [str(p) for p in camera_copies]
    cfg = Config(batch_size=8, hashing=HashingSettings(decode="exact", gpu="on", gpu_batch_size=5, workers=2, parallel_min_mb=0,
                                                       cpu_files_beside_gpu=0))
    batches = list(hash_paths(paths, cfg))
    assert not any(errors for _, errors in batches)
    got = {r.path: r for records, _ in batches for r in records}
    # (on Pillow 13 the tall ones are the CPU's: GpuHasher.supports)
    on_gpu = [p for p in paths if GpuHasher.supports(*stored_rgb(Path(p))[0].shape[1::-1], got[p].orientation)]
    assert LAST_RUN["gpu"] and LAST_RUN["gpu_hashed"] == len(on_gpu) > 0
    decoder = GpuJpegDecoder()
    worst = np.zeros(CODE_WORDS, int)
    for path in on_gpu:
        record = got[path]
        image = decoder.decode([Path(path).read_bytes()])[0]
        pixels = Image.fromarray(cupy.asnumpy(cupy.asarray(image)))  # type: ignore[attr-defined]
        if record.orientation != 1:
            pixels = pixels.transpose(_TRANSPOSE[record.orientation])
        want = codes_of_gray(pixels.convert("L"))
        np.testing.assert_array_equal(record.codes, want, err_msg=Path(path).name)
        cpu = record_for(path, 250_000_000).codes
        worst = np.maximum(worst, [hamming(a, b) for a, b in zip(record.codes, cpu)])
    print(f"GPU-decoded words vs libjpeg's, most differing bits per word: {worst.tolist()}")
    assert worst[:CLASSIC_WORDS].max() <= 4 and worst[CLASSIC_WORDS:].max() <= 16
    assert len(want) == CLASSIC_WORDS + GEO_WORDS
