"""Choosing the GPU: the one switch (``[gpu] use``, --gpu/--no-gpu) for hashing and the index
search together, the older per-part keys, the detection and its typed reasons, and the
fallback to the CPU with one warning line (never a crash). Runs anywhere: without a usable
GPU (CI) it checks the fallback; with one, the GPU tests do the rest."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
from pathlib import Path

import pytest
from conftest import MakePhoto

from lumina_plugin import gpu_status as status
from lumina_plugin.commands._gpu_flags import add_gpu_flags, apply_gpu_flags, gpu_overrides, merge_tables
from lumina_plugin.config import Config, ConfigError
from lumina_plugin.decode.jpeg_header import read_jpeg_header
from lumina_plugin.gpu_status import GpuProblem, Why
from lumina_plugin.ingest.pipeline import gpu_mode, gpu_status, hash_paths
from lumina_plugin.settings.gpu import GpuSettings
from lumina_plugin.settings.hashing import HashingSettings
from lumina_plugin.settings.index import IndexSettings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
GPU_USABLE, GPU_REASON = gpu_status()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_gpu_flags(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("argv, gpu, batch, backend", [
    ((), "auto", 0, "auto"), (("--gpu",), "on", 0, "gpu"), (("--no-gpu",), "off", 0, "cpu"),
    (("--gpu", "--gpu-batch-size", "16"), "on", 16, "gpu"),
])
def test_flags_govern_hashing_and_the_index_together(argv: tuple[str, ...], gpu: str, batch: int,
                                                      backend: str) -> None:
    config = apply_gpu_flags(parse(*argv), Config())
    assert (config.gpu.use, gpu_mode(config), config.hashing.gpu_batch_size) == (gpu, gpu, batch)
    assert config.index.search_options()["backend"] == backend


def test_flags_win_over_the_older_keys_of_a_file() -> None:
    base = Config.from_mapping({"hashing": {"gpu": "off"}, "index": {"backend": "gpu"}})
    on = apply_gpu_flags(parse("--gpu"), base)
    assert gpu_mode(on) == "on" and on.index.search_options()["backend"] == "gpu"
    off = apply_gpu_flags(parse("--no-gpu"), base)
    assert gpu_mode(off) == "off" and off.index.search_options()["backend"] == "cpu"


def test_no_flags_keep_the_file_settings() -> None:
    base = Config(hashing=HashingSettings(gpu="off", gpu_batch_size=8))
    assert apply_gpu_flags(parse(), base) is base
    assert apply_gpu_flags(argparse.Namespace(), base) is base  # a command without the flags
    assert gpu_overrides(argparse.Namespace()) == {}


def test_flags_as_tables_for_a_host_built_elsewhere() -> None:
    file_table = {"gpu": {"device": 1}, "hashing": {"workers": 3}, "batch_size": 8}
    merged = merge_tables(file_table, gpu_overrides(parse("--no-gpu", "--gpu-batch-size", "4")))
    assert merged == {"gpu": {"device": 1, "use": "off"}, "batch_size": 8,
                      "hashing": {"workers": 3, "gpu": "auto", "gpu_batch_size": 4}}
    config = Config.from_mapping(merged)
    assert (config.gpu, gpu_mode(config)) == (GpuSettings(use="off", device=1), "off")


@pytest.mark.parametrize("use, hashing, want", [
    ("auto", "auto", "auto"), ("auto", "on", "on"), ("auto", "off", "off"),
    ("on", "auto", "on"), ("on", "off", "off"), ("off", "on", "off"), ("off", "auto", "off"),
])
def test_the_switch_and_the_older_hashing_key(use: str, hashing: str, want: str) -> None:
    config = Config.from_mapping({"gpu": {"use": use}, "hashing": {"gpu": hashing}})
    assert gpu_mode(config) == want


@pytest.mark.parametrize("use, backend, want", [
    ("auto", "auto", "auto"), ("on", "auto", "gpu"), ("off", "auto", "cpu"),
    ("off", "gpu", "cpu"), ("off", "faiss-gpu", "faiss"), ("off", "mih", "mih"), ("on", "mih", "mih"),
    ("auto", "faiss", "faiss"), ("on", "cpu", "cpu"),
])
def test_the_switch_and_the_index_backend(use: str, backend: str, want: str) -> None:
    """An [index] backend naming one CPU join stays; "off" keeps every choice off the GPU."""
    config = Config.from_mapping({"gpu": {"use": use}, "index": {"backend": backend}})
    assert config.index.search_options()["backend"] == want
    assert config.index.backend == backend  # what the file said, as `config` shows it


def test_the_switch_reaches_the_index_however_the_config_is_made() -> None:
    off = GpuSettings(use="off", device=2)
    for config in (Config(gpu=off), Config().replace(gpu=off), Config(gpu=off).replace(index=IndexSettings()),
                   Config.from_mapping({"index": {"threads": 2}}, Config(gpu=off))):
        assert config.index.search_options()["backend"] == "cpu"
        assert config.index.search_options()["device"] == 2
    # the older [index] gpu_device, when set, still names the index's device
    assert Config.from_mapping({"gpu": {"device": 2}, "index": {"gpu_device": 1}}).index.search_options()["device"] == 1


def test_gpu_section_is_checked_and_shown() -> None:
    for bad in ({"use": "yes"}, {"device": -1}, {"use": 1}, {"cores": 2}):
        with pytest.raises(ConfigError, match="gpu"):
            Config.from_mapping({"gpu": bad})
    with pytest.raises(ConfigError, match="index.gpu"):  # handed down from [gpu]: not a key of [index]
        Config.from_mapping({"index": {"gpu": {"use": "off"}}})
    flat = Config.from_mapping({"gpu": {"use": "off"}}).flat()
    assert flat["gpu.use"] == "off" and flat["gpu.device"] == 0 and "index.gpu" not in flat


def test_switched_off_is_a_reason_found_without_looking(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_looking() -> None:
        raise AssertionError("switched off: the GPU must not be looked for")

    monkeypatch.setattr(status, "cupy_problem", no_looking)
    assert gpu_status(Config(gpu=GpuSettings(use="off"))) == (False, GpuProblem(Why.SWITCHED_OFF))
    assert gpu_status(Config(hashing=HashingSettings(gpu="off")))[1] == GpuProblem(Why.SWITCHED_OFF)


def test_reasons_are_typed_and_one_line() -> None:
    problem = GpuProblem(Why.NO_DEVICE, "cudaErrorNoDevice: no CUDA-capable device is detected")
    assert str(problem) == "no CUDA device is visible: cudaErrorNoDevice: no CUDA-capable device is detected"
    assert str(GpuProblem(Why.NO_CUPY)) == ("CuPy is not installed (the optional 'gpu' part: "
                                            "pip install 'lumina-plugin[gpu]')")
    assert GpuProblem.of(Why.FAILED, RuntimeError("line one\nline two")).detail == "RuntimeError: line one"
    assert {w for w in Why if w.absent} == {Why.SWITCHED_OFF, Why.NO_CUPY, Why.NO_DEVICE}
    if status.cupy_module() is None:
        with pytest.raises(status.GpuUnavailable) as raised:
            status.require_cupy()
        assert raised.value.problem == status.cupy_problem() is not None


@pytest.mark.parametrize("why, warned", [(Why.NO_CUPY, False), (Why.NO_DEVICE, False),
                                         (Why.NO_NVIMGCODEC, True), (Why.SELF_CHECK, True), (Why.FAILED, True)])
def test_auto_warns_only_for_a_gpu_that_is_there_but_unusable(
        why: Why, warned: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from lumina_plugin.ingest import gpu_processes, pipeline

    photos = [str(shutil.copyfile(src, tmp_path / f"{n}.jpg"))
              for n, src in enumerate(sorted(SAMPLE_DIR.rglob("*.jpg"))[:3])]
    monkeypatch.setattr(gpu_processes, "load_gpu", lambda processes=1, device=0, devices=None: ([], GpuProblem(why, "seen")))
    monkeypatch.setattr(pipeline, "_WARNED", set())
    cfg = Config(hashing=HashingSettings(workers=2, parallel_min_mb=0))
    with caplog.at_level(logging.WARNING):
        list(hash_paths(photos, cfg))
    lines = [r.getMessage() for r in caplog.records if "GPU hashing unavailable" in r.getMessage()]
    assert lines == ([f"GPU hashing unavailable ({GpuProblem(why, 'seen')}); hashing on the CPU"] if warned else [])


@pytest.mark.parametrize("argv", [("--gpu", "--no-gpu"), ("--gpu-batch-size", "0"), ("--gpu-batch-size", "x")])
def test_bad_flags_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def test_status_names_the_reason_when_there_is_no_gpu() -> None:
    if GPU_USABLE:
        assert GPU_REASON is None
    else:
        assert GPU_REASON is not None and len(str(GPU_REASON).splitlines()) == 1
        if importlib.util.find_spec("cupy") is None:
            assert GPU_REASON == GpuProblem(Why.NO_CUPY) == status.cupy_problem()


@pytest.mark.skipif(GPU_USABLE, reason="a GPU is usable here: tests/test_gpu_hashing.py covers it")
def test_gpu_on_without_a_gpu_warns_once_and_hashes_on_the_cpu(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
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
def test_gpu_auto_without_cupy_is_silent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    photos = [str(shutil.copyfile(src, tmp_path / f"{n}.jpg"))
              for n, src in enumerate(sorted(SAMPLE_DIR.rglob("*.jpg"))[:3])]
    with caplog.at_level(logging.WARNING):
        list(hash_paths(photos, Config(hashing=HashingSettings(gpu="auto", workers=2, parallel_min_mb=0))))
    assert not [r for r in caplog.records if "GPU" in r.getMessage()]


def _engine_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as stored when the GPU process would hand ``data`` to the engines."""
    header = read_jpeg_header(data)
    return (header.width, header.height) if header is not None and header.engine_ready else None


def test_only_whole_baseline_color_jpegs_go_to_the_gpu(make_photo: MakePhoto, tmp_path: Path) -> None:
    base = make_photo("b.jpg", size=(320, 200))
    assert _engine_size(base.read_bytes()) == (320, 200)
    rotated = make_photo("r.jpg", size=(320, 200), orientation=6)
    assert _engine_size(rotated.read_bytes()) == (200, 320)  # as stored
    from PIL import Image
    with Image.open(base) as im:
        im.save(tmp_path / "prog.jpg", "JPEG", progressive=True)
        im.convert("L").save(tmp_path / "gray.jpg", "JPEG")
        im.convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG")
    for name in ("prog.jpg", "gray.jpg", "cmyk.jpg"):
        assert _engine_size((tmp_path / name).read_bytes()) is None, name
    assert _engine_size(base.read_bytes()[:2000]) is None  # truncated
    assert _engine_size(base.read_bytes() + b"motion photo video" * 100) == (320, 200)  # a trailer is fine
    assert _engine_size(make_photo("p.png", size=(32, 20)).read_bytes()) is None
    assert _engine_size(b"") is None


class _Interface:
    """An object that offers the CUDA array interface, as nvImageCodec's images do."""

    def __init__(self, **cai: object) -> None:
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
