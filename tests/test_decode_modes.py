"""The two decode modes (issue 19): "reduced" by default, "exact" bit-identical with imagehash,
and codes of the two never meeting in a catalog.

Real photos throughout: sample_catalog's JPEGs, camera-sized JPEGs written with Pillow, and
the ``lumina-dedup`` command line on a real SQLite catalog for the switch between modes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from conftest import MakePhoto
from PIL import Image

from lumina_plugin.config import Config
from lumina_plugin.decode.photo import decode
from lumina_plugin.hashing.codes import hamming
from lumina_plugin.hashing.cupy_reduce import reduce_rgb
from lumina_plugin.ingest.pipeline import hash_paths
from lumina_plugin.model import DECODE_VERSIONS, reduced_factor
from lumina_plugin.settings.hashing import HashingSettings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"
MAX_PIXELS = Config().max_pixels
#: Upright sample JPEGs (orientation 1: imagehash ignores the tag, we do not).
JPEGS = [p for p in sorted(SAMPLE_DIR.rglob("*.jpg")) if Image.open(p).getexif().get(0x0112, 1) == 1][:12]


def imagehash_codes(path: Path) -> list[int]:
    with Image.open(path) as im:
        im.load()
        hashes = (imagehash.average_hash(im), imagehash.dhash(im), imagehash.phash(im),
                  imagehash.whash(im, image_scale=64))
    return [int(str(h), 16) for h in hashes]


def run_hashing(paths: list[Path], decode_mode: str | None) -> list:
    settings = HashingSettings(gpu="off", workers=1) if decode_mode is None else \
        HashingSettings(gpu="off", workers=1, decode=decode_mode)
    return [r for records, _ in hash_paths([str(p) for p in paths], Config(hashing=settings)) for r in records]


def test_reduced_is_the_default_and_each_mode_stamps_its_own_version() -> None:
    assert Config().hashing.decode == "reduced"
    assert DECODE_VERSIONS == {"exact": 2, "reduced": 4}
    assert {r.hash_version for r in run_hashing(JPEGS[:3], None)} == {DECODE_VERSIONS["reduced"]}
    assert {r.hash_version for r in run_hashing(JPEGS[:3], "exact")} == {2}


def test_exact_mode_equals_imagehash_on_real_jpegs(big_photo: Path) -> None:
    paths = [*JPEGS, big_photo]
    records = run_hashing(paths, "exact")
    assert [r.path for r in records] == [str(p) for p in paths]
    for path, record in zip(paths, records):
        assert [int(c) for c in record.codes[:4]] == imagehash_codes(path), path


def test_reduced_mode_decodes_a_camera_jpeg_at_one_eighth(make_photo: MakePhoto) -> None:
    path = make_photo("camera.jpg", size=(4000, 3000), quality=92)
    turned = make_photo("turned.jpg", size=(3000, 4000), orientation=6, quality=92)
    photo = decode(path, MAX_PIXELS, mode="reduced")
    assert (photo.width, photo.height) == (4000, 3000)  # the photo's size, not the decode's
    assert photo.gray.mode == "L" and photo.gray.size == (500, 375)
    photo = decode(turned, MAX_PIXELS, mode="reduced")  # stored 4000x3000, shown upright
    assert (photo.width, photo.height) == (3000, 4000) and photo.gray.size == (375, 500)
    assert decode(path, MAX_PIXELS, mode="exact").gray.size == (4000, 3000)


@pytest.mark.parametrize("size, factor", [((4000, 3000), 8), ((1920, 1080), 4), ((1024, 683), 2),
                                          ((800, 600), 2), ((640, 400), 1), ((400, 300), 1), ((2000, 100), 1),
                                          ((4001, 3001), 8)])
def test_the_reduction_keeps_what_the_hashes_need(size: tuple[int, int], factor: int) -> None:
    """A 384-pixel long side (1.5x the geometry words' working image), 64 pixels across for
    the wHash thumbnail: the largest libjpeg scale that keeps both."""
    assert reduced_factor(*size) == factor
    assert -(-max(size) // factor) >= 384 or factor == 1
    assert -(-min(size) // factor) >= 64 or factor == 1


def test_reduced_non_jpeg_is_the_gpu_paths_reduction_bit_for_bit(make_photo: MakePhoto) -> None:
    """A PNG (decoded whole, then reduced) gives exactly what the GPU process computes from
    decoded RGB (hashing/cupy_reduce.py, run here with NumPy): the CPU/GPU twin."""
    path = make_photo("scan.png", size=(1401, 1051))
    photo = decode(path, MAX_PIXELS, mode="reduced")
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    twin = reduce_rgb(np, rgb, reduced_factor(1401, 1051))
    assert photo.gray.size == (701, 526)
    np.testing.assert_array_equal(np.asarray(photo.gray), twin[:, :, 0])
    np.testing.assert_array_equal(twin[:, :, 0], twin[:, :, 2])


def test_reduced_codes_stay_close_to_exact_and_copies_still_meet(big_photo: Path, tmp_path: Path) -> None:
    """Reduced decoding moves a code by a few bits at most, far inside the thresholds; a
    resized, recompressed copy meets its original in reduced mode as in exact mode."""
    copy = tmp_path / "copy.jpg"
    with Image.open(big_photo) as im:
        im.resize((1200, 800), Image.Resampling.LANCZOS).save(copy, "JPEG", quality=75)
    exact, reduced = run_hashing([*JPEGS, big_photo, copy], "exact"), run_hashing([*JPEGS, big_photo, copy], "reduced")
    for e, r in zip(exact, reduced):
        assert max(hamming(int(a), int(b)) for a, b in zip(e.codes[:4], r.codes[:4])) <= 6, e.path
    veto = Config().thresholds.veto
    big, small = reduced[-2], reduced[-1]
    assert max(hamming(int(a), int(b)) for a, b in zip(big.codes[:4], small.codes[:4])) < veto


# -- a catalog switched between modes ----------------------------------------------------------

def cli(*args: str) -> dict:
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "lumina_plugin.cli"]
    proc = subprocess.run([*cmd, *args, "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def versions(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return {Path(p).name: v for p, v in con.execute("SELECT source_path, hash_version FROM images")}


def grouped(out: dict) -> set[frozenset[str]]:
    return {frozenset(Path(m["path"]).name for m in g["members"]) for g in out["groups"]}


def test_switching_a_catalog_between_modes_rehashes_everything_and_never_mixes(
        tmp_path: Path, make_photo: MakePhoto) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for name in ("2019/2019-04-27/DSCF0815.jpg", "2016/2016-08-19/DSC04512.jpg", "2015/2015-10-29/IMG_8812.jpg"):
        shutil.copyfile(SAMPLE_DIR / name, library / Path(name).name)
    make_photo("library/DSCF0815_small.jpg", source=SAMPLE_DIR / "2019/2019-04-27/DSCF0815.jpg",
               size=(480, 300), quality=80)
    late = make_photo("late/DSC04512_copy.jpg", source=SAMPLE_DIR / "2016/2016-08-19/DSC04512.jpg",
                      size=(500, 312), quality=85)
    db = tmp_path / "c.db"
    configs = {}
    for mode in ("exact", "reduced"):
        configs[mode] = tmp_path / f"{mode}.toml"
        configs[mode].write_text(f'[hashing]\ndecode = "{mode}"\ngpu = "off"\n')
    pair = frozenset({"DSCF0815.jpg", "DSCF0815_small.jpg"})

    # Exact: everything at version 2, the copy grouped with its original.
    out = cli("find-duplicates", str(library), str(late.parent), "--catalog", str(db), "--config", str(configs["exact"]))
    assert set(versions(db).values()) == {2} and len(versions(db)) == 5
    assert pair in grouped(out) and frozenset({"DSC04512.jpg", "DSC04512_copy.jpg"}) in grouped(out)

    # The late copy's file is replaced by an unreadable one: it cannot be rehashed, and its
    # stored version-2 codes (those of a true copy) must not meet the reduced codes.
    late.write_bytes(b"not a photo any more")
    out = cli("find-duplicates", str(library), "--catalog", str(db), "--config", str(configs["reduced"]))
    after = versions(db)
    assert after["DSC04512_copy.jpg"] == 2  # still catalogued, with its old codes
    assert {after[n] for n in after if n != "DSC04512_copy.jpg"} == {DECODE_VERSIONS["reduced"]}
    assert pair in grouped(out)
    assert not any("DSC04512_copy.jpg" in g for g in grouped(out))

    # And back: rehashed again at version 2.
    out = cli("find-duplicates", str(library), "--catalog", str(db), "--config", str(configs["exact"]))
    back = versions(db)
    assert {back[n] for n in back if n != "DSC04512_copy.jpg"} == {2}
    assert pair in grouped(out)
