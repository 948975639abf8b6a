"""JPEG draft decoding (HashingSettings.draft, the older setting of exact decode mode) and the
hashing settings' checks.

Draft decoding gives other pixels than a full decode, so codes may move a bit or two;
it is off by default (docs/benchmarks.md has the measurement behind that). The default
decode mode, "reduced", picks its own scale (tests/test_decode_modes.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MakePhoto

from lumina_plugin.config import Config, ConfigError
from lumina_plugin.decode.photo import decode, probe
from lumina_plugin.hashing.codes import hamming
from lumina_plugin.ingest.pipeline import hash_paths
from lumina_plugin.ingest.records import record_for
from lumina_plugin.settings.hashing import HashingSettings

MAX_PIXELS = Config().max_pixels


def test_default_is_full_decode() -> None:
    assert HashingSettings().draft == 0


@pytest.mark.parametrize("draft, reduced", [(1, (3000, 2000)), (2, (1500, 1000)), (4, (750, 500)), (8, (375, 250))])
def test_draft_decodes_luma_at_a_fraction_and_keeps_the_full_size(big_photo: Path, draft: int,
                                                                     reduced: tuple[int, int]) -> None:
    photo = decode(big_photo, MAX_PIXELS, draft)
    assert photo.gray.size == reduced and photo.gray.mode == "L"
    assert (photo.width, photo.height) == (3000, 2000)
    full = record_for(str(big_photo), MAX_PIXELS)
    drafted = record_for(str(big_photo), MAX_PIXELS, draft)
    assert (drafted.width, drafted.height, drafted.checksum) == (full.width, full.height, full.checksum)
    assert max(hamming(a, b) for a, b in zip(full.codes, drafted.codes)) <= 4


def test_draft_applies_the_orientation_after_scaling(make_photo: MakePhoto) -> None:
    path = make_photo("r.jpg", size=(1200, 800), orientation=6, quality=95)
    photo = decode(path, MAX_PIXELS, 4)
    assert (photo.width, photo.height) == (1200, 800)
    assert photo.gray.size == (300, 200)  # stored 800x1200 scaled to 200x300, then turned


@pytest.mark.parametrize("name", ["p.png", "w.webp"])
def test_draft_leaves_other_formats_alone(make_photo: MakePhoto, name: str) -> None:
    path = str(make_photo(name, size=(320, 200)))
    np.testing.assert_array_equal(record_for(path, MAX_PIXELS, 2).codes, record_for(path, MAX_PIXELS).codes)


def test_draft_setting_reaches_hash_paths(big_photo: Path) -> None:
    cfg = Config(hashing=HashingSettings(draft=8, gpu="off", decode="exact"))
    (records, errors), = list(hash_paths([str(big_photo)], cfg))
    np.testing.assert_array_equal(records[0].codes, record_for(str(big_photo), MAX_PIXELS, 8).codes)


def test_probe_tells_everything_but_the_pixels(make_photo: MakePhoto) -> None:
    path = make_photo("p.jpg", size=(400, 300), orientation=8, make="Canon", model="EOS 80D")
    facts, photo = probe(path, MAX_PIXELS), decode(path, MAX_PIXELS)
    assert (facts.width, facts.height, facts.orientation, facts.format, facts.mode) == \
        (photo.width, photo.height, photo.orientation, photo.format, photo.mode) == (400, 300, 8, "JPEG", "RGB")
    assert facts.file == photo.file and facts.exif == photo.exif and not facts.progressive
    assert probe(make_photo("q.jpg", size=(64, 48)), MAX_PIXELS).progressive is False


@pytest.mark.parametrize("table, key", [
    ("[hashing]\ndraft = 3\n", "hashing.draft"),
    ("[hashing]\ndecode = \"fast\"\n", "hashing.decode"),
    ("[hashing]\ngpu = \"yes\"\n", "hashing.gpu"),
    ("[hashing]\nworkers = -1\n", "hashing.workers"),
    ("[hashing]\ngpu_batch_size = \"big\"\n", "hashing.gpu_batch_size"),
    ("[hashing]\ngpu_processes = -2\n", "hashing.gpu_processes"),
    ("[hashing]\ncpu_files_beside_gpu = -2\n", "hashing.cpu_files_beside_gpu"),
    ("[hashing]\ncpu_files_beside_gpu = true\n", "hashing.cpu_files_beside_gpu"),
])
def test_bad_hashing_settings_name_the_key(tmp_path: Path, table: str, key: str) -> None:
    path = tmp_path / "lumina-dedup.toml"
    path.write_text(table)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Config.load(path)


def test_good_hashing_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "lumina-dedup.toml"
    path.write_text('[hashing]\ngpu = "off"\ngpu_batch_size = 16\ngpu_processes = 1\nworkers = 3\ndraft = 2\n'
                    'parallel_min_mb = 100\ncpu_files_beside_gpu = 2\ndecode = "exact"\n')
    assert Config.load(path).hashing == HashingSettings(gpu="off", gpu_batch_size=16, gpu_processes=1, workers=3,
                                                        draft=2, parallel_min_mb=100, cpu_files_beside_gpu=2,
                                                        decode="exact")
