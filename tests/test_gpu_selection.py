"""Choosing the GPU: the --gpu/--no-gpu/--gpu-batch-size flags, the detection, and the
fallback to the CPU with one warning line (never a crash). Runs anywhere: without a
usable GPU (CI) it checks the fallback; with one, the GPU tests do the rest."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
from pathlib import Path

import pytest

from lumina_plugin.commands._gpu_flags import add_gpu_flags, apply_gpu_flags
from lumina_plugin.config import Config
from lumina_plugin.decode.nvimgcodec import gpu_jpeg_size
from lumina_plugin.ingest.pipeline import gpu_status, hash_paths
from lumina_plugin.settings.hashing import HashingSettings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
GPU_USABLE, GPU_REASON = gpu_status()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_gpu_flags(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("argv, gpu, batch", [
    ((), "auto", 0), (("--gpu",), "on", 0), (("--no-gpu",), "off", 0),
    (("--gpu", "--gpu-batch-size", "16"), "on", 16),
])
def test_flags_override_the_configuration(argv: tuple[str, ...], gpu: str, batch: int) -> None:
    config = apply_gpu_flags(parse(*argv), Config())
    assert (config.hashing.gpu, config.hashing.gpu_batch_size) == (gpu, batch)


def test_no_flags_keep_the_file_settings() -> None:
    base = Config(hashing=HashingSettings(gpu="off", gpu_batch_size=8))
    assert apply_gpu_flags(parse(), base) is base
    assert apply_gpu_flags(argparse.Namespace(), base) is base  # a command without the flags


@pytest.mark.parametrize("argv", [("--gpu", "--no-gpu"), ("--gpu-batch-size", "0"), ("--gpu-batch-size", "x")])
def test_bad_flags_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def test_status_names_the_reason_when_there_is_no_gpu() -> None:
    if GPU_USABLE:
        assert GPU_REASON is None
    else:
        assert GPU_REASON and len(GPU_REASON.splitlines()) == 1
        if importlib.util.find_spec("cupy") is None:
            assert "CuPy" in GPU_REASON


@pytest.mark.skipif(GPU_USABLE, reason="a GPU is usable here: tests/test_gpu_hashing.py covers it")
def test_gpu_on_without_a_gpu_warns_once_and_hashes_on_the_cpu(tmp_path: Path, caplog) -> None:
    from lumina_plugin.ingest import pipeline

    photos = []
    for n, src in enumerate(sorted(SAMPLE_DIR.rglob("*.jpg"))[:6]):
        photos.append(str(shutil.copyfile(src, tmp_path / f"{n}.jpg")))
    pipeline._WARNED.discard("gpu")
    on = Config(batch_size=4, hashing=HashingSettings(gpu="on", workers=2, parallel_min_mb=0))
    off = Config(batch_size=4, hashing=HashingSettings(gpu="off", parallel_min_files=10**6))
    with caplog.at_level(logging.WARNING):
        got = [list(hash_paths(photos, on)) for _ in range(2)]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "GPU hashing unavailable" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    want = list(hash_paths(photos, off))
    for run in got:
        assert [[(r.path, list(r.codes)) for r in rs] for rs, _ in run] == \
            [[(r.path, list(r.codes)) for r in rs] for rs, _ in want]


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_gpu_auto_without_cupy_is_silent(tmp_path: Path, caplog) -> None:
    photos = [str(shutil.copyfile(src, tmp_path / f"{n}.jpg"))
              for n, src in enumerate(sorted(SAMPLE_DIR.rglob("*.jpg"))[:3])]
    with caplog.at_level(logging.WARNING):
        list(hash_paths(photos, Config(hashing=HashingSettings(gpu="auto", workers=2, parallel_min_mb=0))))
    assert not [r for r in caplog.records if "GPU" in r.getMessage()]


def test_only_whole_baseline_color_jpegs_go_to_the_gpu(make_photo, tmp_path: Path) -> None:
    base = make_photo("b.jpg", size=(320, 200))
    assert gpu_jpeg_size(base.read_bytes()) == (320, 200)
    rotated = make_photo("r.jpg", size=(320, 200), orientation=6)
    assert gpu_jpeg_size(rotated.read_bytes()) == (200, 320)  # as stored
    from PIL import Image
    with Image.open(base) as im:
        im.save(tmp_path / "prog.jpg", "JPEG", progressive=True)
        im.convert("L").save(tmp_path / "gray.jpg", "JPEG")
        im.convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG")
    for name in ("prog.jpg", "gray.jpg", "cmyk.jpg"):
        assert gpu_jpeg_size((tmp_path / name).read_bytes()) is None, name
    assert gpu_jpeg_size(base.read_bytes()[:2000]) is None  # truncated
    assert gpu_jpeg_size(base.read_bytes() + b"motion photo video" * 100) == (320, 200)  # a trailer is fine
    assert gpu_jpeg_size(make_photo("p.png", size=(32, 20)).read_bytes()) is None
    assert gpu_jpeg_size(b"") is None


class _Interface:
    """An object that offers the CUDA array interface, as nvImageCodec's images do."""

    def __init__(self, **cai) -> None:
        self.__cuda_array_interface__ = {"version": 3, "data": (1234, False), **cai}


def test_device_images_are_read_from_the_cuda_array_interface() -> None:
    from lumina_plugin.hashing.cupy_hasher import DeviceImage

    packed = DeviceImage.of(_Interface(shape=(1080, 1920, 3), typestr="|u1", strides=None))
    assert packed == DeviceImage(1234, (1080, 1920, 3), (5760, 3, 1))
    pitched = DeviceImage.of(_Interface(shape=(10, 20, 3), typestr="|u1", strides=(64, 3, 1)))
    assert pitched.strides == (64, 3, 1)
    for bad in (dict(shape=(10, 20), typestr="|u1"), dict(shape=(10, 20, 3), typestr="<u2"),
                dict(shape=(10, 20, 1), typestr="|u1"), dict(shape=(10, 20, 3), typestr="|u1", strides=(60, 1, 20))):
        with pytest.raises(ValueError):
            DeviceImage.of(_Interface(**bad))
