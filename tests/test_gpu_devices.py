"""Hashing on several GPUs (``[gpu] devices``, ``--gpus all|0,1``), on any machine.

What a user relies on: the setting and the flag accept "all" or device numbers and refuse
anything else with one clear error (a bad flag is bad usage, exit 2); each listed device
gets a group of GPU processes, the run's files are shared out among every group and give
the CPU's records; a device the machine does not have is left out with one warning. On a
machine without a GPU the groups are stand-ins that speak the GPU process's protocol
(tests/_gpu_standin.py), so the main process's side runs for real; the real GPU processes
run the same path in tests/test_gpu_devices_gpu.py on the device machine.

Also here: camera RAWs go to the GPU processes as their embedded JPEG preview (the GPU
process's reader takes the preview, the main process's facts describe the RAW), with the
CPU's records.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import subprocess
import sys
import threading
from pathlib import Path

import _gpu_standin
import pytest
from conftest import upright_source, write_photo
from PIL import Image
from test_decode_raw import SOURCE, write_raw

from lumina_plugin import gpu_status
from lumina_plugin.commands._gpu_flags import add_gpu_flags, apply_gpu_flags
from lumina_plugin.config import Config
from lumina_plugin.ingest import gpu_processes
from lumina_plugin.ingest.gpu_worker import _read
from lumina_plugin.ingest.pipeline import LAST_RUN, hash_paths, hashing_devices
from lumina_plugin.settings import ConfigError
from lumina_plugin.settings.gpu import GpuSettings, parse_devices
from lumina_plugin.settings.hashing import HashingSettings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
FACTS = ("path", "checksum", "size_bytes", "mtime_ns", "width", "height", "orientation", "format",
         "camera", "taken_at", "subsec", "exif_tags", "hash_version", "codes")


# -- the setting and the flag ------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("all", "all"), (" ALL ", "all"), ("", ()), ("0", (0,)), ("0,1", (0, 1)), ("1, 0", (1, 0)),
    ("0,0", (0, 0)), ("3,3,2", (3, 3, 2)),
])
def test_devices_accepts_all_or_device_numbers(text: str, want: object) -> None:
    assert parse_devices(text) == want
    GpuSettings(devices=text)  # and the configuration takes it


@pytest.mark.parametrize("text", ["x", "-1", "0,", ",1", "0;1", "0.5", "1e2", "all,0", "٣", "0," * 17 + "0"])
def test_bad_devices_are_one_clear_configuration_error(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_mapping({"gpu": {"devices": text}})
    assert str(err.value).startswith("gpu.devices: ") and len(str(err.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="gpu.devices must be of type str"):
        Config.from_mapping({"gpu": {"devices": [0, 1]}})


def test_hashing_devices_per_group() -> None:
    assert GpuSettings().hashing_devices(4) == (0,)
    assert GpuSettings(device=2).hashing_devices(4) == (2,)
    assert GpuSettings(devices="all").hashing_devices(3) == (0, 1, 2)
    assert GpuSettings(devices="all", device=1).hashing_devices(0) == (1,)  # none seen: the checks say why
    assert GpuSettings(devices="1,0,1").hashing_devices(2) == (1, 0, 1)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_gpu_flags(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("argv, devices", [((), ""), (("--gpus", "all"), "all"), (("--gpus", "0,1"), "0,1"),
                                           (("--gpus", " 1 , 0 "), "1,0"), (("--gpus", "All"), "all")])
def test_the_gpus_flag_sets_the_devices(argv: tuple[str, ...], devices: str) -> None:
    config = apply_gpu_flags(_parse(*argv), Config.from_mapping({"gpu": {"devices": ""}}))
    assert config.gpu.devices == devices
    # The flag wins over a file's devices.
    if argv:
        assert apply_gpu_flags(_parse(*argv), Config.from_mapping({"gpu": {"devices": "7"}})).gpu.devices == devices


@pytest.mark.parametrize("value", ["x", "", "0,,1", "-1", "gpu0"])
def test_a_bad_gpus_flag_is_bad_usage_with_one_error_line(value: str, tmp_path: Path) -> None:
    """Through the real command line: exit 2, and one error line that names the flag and the value."""
    write_photo(tmp_path / "a.jpg")
    done = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", "hash", str(tmp_path / "a.jpg"), "--gpus", value],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--gpus" in errors[0] and repr(value) in errors[0], done.stderr


def test_a_device_the_machine_lacks_is_left_out_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(gpu_status, "device_count", lambda: 2)
    with caplog.at_level(logging.WARNING):
        assert hashing_devices(Config(gpu=GpuSettings(devices="0,5,1,7"))) == (0, 1)
        assert hashing_devices(Config(gpu=GpuSettings(devices="all"))) == (0, 1)
        assert hashing_devices(Config(gpu=GpuSettings(device=1))) == (1,)
    warned = [r.getMessage() for r in caplog.records if "--gpus" in r.getMessage()]
    assert len(warned) <= 1 and (not warned or "5, 7" in warned[0])


# -- groups of GPU processes sharing a run (stand-ins) -----------------------------------

@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Baseline colour JPEGs (some turned by EXIF), camera RAWs with a JPEG preview (a DNG
    turned by its own tag, a NEF-like file), and files the GPU hands back (PNG, progressive)."""
    root = tmp_path_factory.mktemp("devices")
    sources = sorted(p for p in SAMPLE_DIR.rglob("*.jpg") if "exports" not in p.parts)[:6]
    for n in range(30):
        write_photo(root / f"p{n:02d}.jpg", source=sources[n % len(sources)], size=(400 - n, 300),
                    orientation=(1, 6, 3, 8)[n % 4], make="Canon" if n % 3 else None)
    for n, (orientation, dng) in enumerate([(1, True), (6, True), (8, False), (3, True)]):
        buf = io.BytesIO()
        upright_source(SOURCE).resize((1200 + 16 * n, 800)).save(buf, "JPEG", quality=90)
        write_raw(root / f"r{n}.{'dng' if dng else 'nef'}", preview=buf.getvalue(), orientation=orientation, dng=dng)
    with Image.open(root / "p00.jpg") as im:
        im.save(root / "q_prog.jpg", "JPEG", progressive=True)
        im.save(root / "q.png")
    return sorted(str(p) for p in root.iterdir())


def _records(batches: list) -> dict[str, tuple]:
    return {r.path: tuple(tuple(int(c) for c in r.codes) if f == "codes" else getattr(r, f) for f in FACTS)
            for records, _ in batches for r in records}


@pytest.fixture(scope="module")
def cpu_only(library: list[str]) -> list:
    return list(hash_paths(library, Config(batch_size=8, hashing=HashingSettings(gpu="off", workers=2,
                                                                                 parallel_min_mb=0))))


def test_a_raw_goes_to_the_gpu_as_its_preview(library: list[str]) -> None:
    """The GPU process's reader takes a RAW's embedded JPEG at its stored size, turned by the
    RAW's orientation, with the RAW's own byte count and checksum (what the CPU records)."""
    raws = [p for p in library if p.endswith((".dng", ".nef"))]
    for index, path in enumerate(raws):
        job = _read(index, path)
        assert job is not None, path
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(job.data)) as preview:
            assert preview.format == "JPEG" and job.size == preview.size
        assert job.file[0] == len(data) and job.file[2] == hashlib.sha256(data).hexdigest()
        assert job.data in data  # the preview, not a re-encoding
    assert [_read(0, p).orientation for p in raws] == [1, 6, 8, 3]  # type: ignore[union-attr]
    assert _read(0, next(p for p in library if p.endswith(".png"))) is None


def _run_with_groups(monkeypatch: pytest.MonkeyPatch, library: list[str], devices: str, processes: int,
                     visible: int = 1) -> list:
    """A run with [gpu] devices = ``devices``, each group's processes stand-ins (slowed a
    little, so that every feeder claims work before the first answers come back)."""
    _gpu_standin.install(monkeypatch, delay=0.3)
    monkeypatch.setattr(gpu_status, "device_count", lambda: visible)  # the one-GPU machine, by default
    cfg = Config(batch_size=8, gpu=GpuSettings(devices=devices),
                 hashing=HashingSettings(gpu="on", gpu_batch_size=4, gpu_processes=processes, workers=2,
                                         parallel_min_mb=0))
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(hash_paths(library, cfg)), daemon=True)
    try:
        worker.start()
        worker.join(180)
        assert not worker.is_alive(), "the run did not finish in 180 s: files were lost"
    finally:
        for proc in gpu_processes._PROCESSES:
            proc.stop()
    return out


def test_two_process_groups_on_one_device_share_a_run(
        library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--gpus 0,0``: two groups of two GPU processes on device 0 (the several-GPU path on a
    one-GPU machine): four processes, each told a quarter of the device's memory; every group
    hashes a share of the run; the records are the CPU's, RAWs included."""
    got = _run_with_groups(monkeypatch, library, "0,0", 2)
    slots = sorted(p.slot for p in gpu_processes._PROCESSES)
    assert slots == [(0, 0), (0, 0), (1, 0), (1, 0)]
    assert {p.device for p in gpu_processes._PROCESSES} == {"stand-in (share 1/4, device 0)"}
    assert LAST_RUN["gpu_processes"] == 4 and LAST_RUN["gpu_groups"] == 2
    by_group = LAST_RUN["gpu_hashed_by_group"]
    assert isinstance(by_group, dict) and set(by_group) == {"0:0", "1:0"} and min(by_group.values()) >= 1
    assert sum(by_group.values()) == LAST_RUN["gpu_hashed"]
    assert LAST_RUN["gpu_hashed"] == 34  # the 30 JPEGs and the 4 RAWs; the PNG and progressive JPEG: the CPU's
    assert _records(got) == _records(cpu_only)
    assert [e for _, e in got] == [e for _, e in cpu_only]
    assert {r.format for records, _ in got for r in records if r.path.endswith((".dng", ".nef"))} == {"DNG", "RAW"}


def test_one_group_per_listed_device(library: list[str], cpu_only: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--gpus 1,0`` (say a two-GPU host): a group on each, in that order, each process
    started on its own device and sharing that device's memory with its group alone."""
    got = _run_with_groups(monkeypatch, library, "1,0", 1, visible=2)
    assert sorted(p.slot for p in gpu_processes._PROCESSES) == [(0, 1), (1, 0)]
    assert sorted(p.device for p in gpu_processes._PROCESSES) == [
        "stand-in (share 1/1, device 0)", "stand-in (share 1/1, device 1)"]
    assert LAST_RUN["gpu_groups"] == 2 and LAST_RUN["gpu_hashed"] >= 2
    assert _records(got) == _records(cpu_only)
