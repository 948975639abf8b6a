"""Grouping: consensus of hashes, no chaining, bursts, mirrors, exact copies, order independence."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lumina_plugin.config import KeeperWeights, Thresholds
from lumina_plugin.engine import Engine
from lumina_plugin.grouping import accept_pairs, build_groups, exact_links, plausible, search_radii
from lumina_plugin.index import all_pairs
from lumina_plugin.model import ImageInfo

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
PHOTO = SAMPLE / "2019/2019-04-27/DSCF0815.jpg"
OTHER = SAMPLE / "2018/2018-10-14/DSC00388.jpg"


def info(i: int, *, px: int = 100, size: int = 1000, checksum: str | None = None,
         camera: str | None = None, ts: float | None = None, fmt: str = "JPEG") -> ImageInfo:
    return ImageInfo(id=f"id{i:03d}", index_id=i, path=f"/p/{i:03d}.jpg", checksum=checksum or f"sum{i}",
                     size_bytes=size, width=px, height=px, format=fmt, camera=camera, taken_ts=ts, exif_tags=0)


def group_sets(groups, images) -> set[frozenset[str]]:
    return {frozenset([images[g.keeper].path, *(images[m.index_id].path for m in g.members)]) for g in groups}


def run_grouping(images, pairs, t=None):
    t = t or Thresholds()
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    d = np.array([p[2] for p in pairs], dtype=np.uint8).reshape(-1, 4)
    links = accept_pairs(a, b, d, images, t) + exact_links(images)
    return build_groups(links, images, KeeperWeights())


def test_chain_does_not_join_the_far_ends() -> None:
    # a~b and b~c within thresholds, a and c far apart: a (best) keeps b; c stays alone.
    images = {1: info(1, px=300), 2: info(2, px=200), 3: info(3, px=100)}
    pairs = [(1, 2, (3, 4, 4, 3)), (2, 3, (3, 4, 4, 3)), (1, 3, (12, 14, 16, 12))]
    groups = run_grouping(images, pairs)
    assert group_sets(groups, images) == {frozenset({"/p/001.jpg", "/p/002.jpg"})}
    # Every member is within the thresholds of its keeper.
    for g in groups:
        for m in g.members:
            assert m.link is not None and {g.keeper, m.index_id} == {m.link.a, m.link.b}


def test_chain_around_best_middle_is_a_star() -> None:
    # When the middle photo is the best copy, both ends are its duplicates (each within reach of it).
    images = {1: info(1, px=100), 2: info(2, px=300), 3: info(3, px=100)}
    pairs = [(1, 2, (3, 4, 4, 3)), (2, 3, (3, 4, 4, 3)), (1, 3, (12, 14, 16, 12))]
    groups = run_grouping(images, pairs)
    assert len(groups) == 1 and groups[0].keeper == 2 and len(groups[0].members) == 2


def test_one_hash_alone_does_not_make_a_duplicate() -> None:
    images = {1: info(1), 2: info(2)}
    assert run_grouping(images, [(1, 2, (0, 30, 30, 30))]) == []
    # aHash and wHash agree but neither structural hash does (a mirror image looks like this).
    assert run_grouping(images, [(1, 2, (2, 18, 32, 4))]) == []
    # Three hashes agree but pHash disagrees wildly: two different dark photos.
    assert run_grouping(images, [(1, 2, (5, 9, 34, 6))]) == []
    assert len(run_grouping(images, [(1, 2, (5, 9, 9, 6))])) == 1


def test_burst_is_not_a_duplicate_unless_pixels_are_identical() -> None:
    cam = "NIKON D7500"
    images = {1: info(1, camera=cam, ts=1000.0), 2: info(2, camera=cam, ts=1001.0)}
    assert run_grouping(images, [(1, 2, (4, 6, 4, 3))]) == []
    assert len(run_grouping(images, [(1, 2, (0, 1, 2, 0))])) == 1  # essentially identical frames
    # Same time (a copy of one shot), or different cameras: ordinary duplicates.
    same_time = {1: info(1, camera=cam, ts=1000.0), 2: info(2, camera=cam, ts=1000.0)}
    assert len(run_grouping(same_time, [(1, 2, (4, 6, 4, 3))])) == 1
    other_cam = {1: info(1, camera=cam, ts=1000.0), 2: info(2, camera="Canon", ts=1001.0)}
    assert len(run_grouping(other_cam, [(1, 2, (4, 6, 4, 3))])) == 1


def test_exact_copies_group_whatever_the_hashes_say() -> None:
    images = {1: info(1, checksum="same"), 2: info(2, checksum="same"), 3: info(3)}
    groups = run_grouping(images, [(1, 2, (40, 40, 40, 40))])
    assert len(groups) == 1
    assert [m.kind for m in groups[0].members] == ["exact"]
    assert groups[0].similarity_type == "exact" and groups[0].confidence == 100


def test_result_does_not_depend_on_order() -> None:
    rng = random.Random(7)
    images = {i: info(i, px=50 + (i * 37) % 200, size=1000 + i) for i in range(1, 40)}
    pairs = []
    for _ in range(120):
        x, y = rng.sample(sorted(images), 2)
        pairs.append((min(x, y), max(x, y), tuple(rng.choice([0, 2, 5, 9, 14, 25]) for _ in range(4))))
    pairs = list({(p[0], p[1]): p for p in pairs}.values())
    expected = [(g.keeper, g.members) for g in run_grouping(images, pairs)]
    for _ in range(5):
        rng.shuffle(pairs)
        shuffled_images = dict(rng.sample(list(images.items()), len(images)))
        assert [(g.keeper, g.members) for g in run_grouping(shuffled_images, pairs)] == expected


# -- real photos through the engine -------------------------------------------------------------

def _save_with_exif(img: Image.Image, path: Path, make: str, model: str, when: str) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(0x8769)[0x9003] = when
    img.save(path, quality=90, exif=exif)


def _groups(engine_report, root: Path) -> set[frozenset[str]]:
    return {frozenset(str(Path(m["path"]).relative_to(root)) for m in g["members"])
            for g in engine_report.as_json()["groups"]}


def test_real_mirror_and_heavy_crop_are_not_duplicates(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    img = Image.open(PHOTO).convert("RGB")
    img.save(lib / "photo.jpg", quality=92)
    ImageOps.mirror(img).save(lib / "mirror.jpg", quality=92)
    w, h = img.size
    img.crop((int(w * .3), int(h * .3), int(w * .7), int(h * .7))).save(lib / "detail.jpg", quality=92)
    img.resize((w // 2, h // 2)).save(lib / "small.jpg", quality=80)
    with Engine(tmp_path / "cat.db") as engine:
        report = engine.find_duplicates([lib])
    assert _groups(report, lib) == {frozenset({"photo.jpg", "small.jpg"})}


def test_real_burst_frames_stay_apart(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    img = Image.open(OTHER).convert("RGB")
    w, h = img.size
    # Two frames a second apart with the camera moved slightly: near on every hash.
    frame1 = img.crop((0, 0, w - 12, h - 8))
    frame2 = img.crop((12, 8, w, h))
    _save_with_exif(frame1, lib / "DSC_0001.jpg", "NIKON", "D7500", "2023:05:20 14:31:07")
    _save_with_exif(frame2, lib / "DSC_0002.jpg", "NIKON", "D7500", "2023:05:20 14:31:08")
    shutil.copy(lib / "DSC_0001.jpg", lib / "DSC_0001 copy.jpg")
    with Engine(tmp_path / "cat.db") as engine:
        report = engine.find_duplicates([lib])
        pairs = engine.catalog.pairs()
    assert len(pairs[0]) >= 1, "the frames must be hash neighbours for this test to mean anything"
    assert _groups(report, lib) == {frozenset({"DSC_0001.jpg", "DSC_0001 copy.jpg"})}
    # Without the EXIF the same frames are duplicates: the camera and time made the difference.
    lib2 = tmp_path / "lib2"
    lib2.mkdir()
    frame1.save(lib2 / "a.jpg", quality=90)
    frame2.save(lib2 / "b.jpg", quality=90)
    with Engine(tmp_path / "cat2.db") as engine:
        assert _groups(engine.find_duplicates([lib2]), lib2) == {frozenset({"a.jpg", "b.jpg"})}


def test_grouping_is_the_same_whatever_the_import_order(tmp_path: Path) -> None:
    files = sorted(p for p in SAMPLE.rglob("*") if p.suffix.lower() in {".jpg", ".png", ".webp"})
    results = []
    for n, order in enumerate([files, list(reversed(files))]):
        with Engine(tmp_path / f"cat{n}.db") as engine:
            for chunk in (order[:13], order[13:27], order[27:]):
                engine.import_paths([str(p) for p in chunk])
            results.append(engine.find_duplicates().as_json()["groups"])
    assert results[0] == results[1]
    assert len(results[0]) == 8


def test_identical_burst_frames_group_as_burst_siblings() -> None:
    from lumina_plugin.grouping import classify
    cam = "NIKON D7500"
    images = {1: info(1, camera=cam, ts=1000.0, size=2000), 2: info(2, camera=cam, ts=1001.0)}
    (group,) = run_grouping(images, [(1, 2, (0, 1, 0, 0))])
    assert group.members[0].relation == "burst"
    assert classify(images[1], images[2], None, Thresholds()) == "burst"


def _near_copies(rng: np.random.Generator, originals: int, copies: int, max_bits: int) -> np.ndarray:
    """Codes of ``originals`` random photos and ``copies`` each, every hash 0..max_bits bits away."""
    base = rng.integers(0, 2**64, (originals, 4), dtype=np.uint64)
    rows = [base]
    for _ in range(copies):
        flipped = base.copy()
        for r in range(originals):
            for k in range(4):
                for bit in rng.choice(64, int(rng.integers(0, max_bits + 1)), replace=False):
                    flipped[r, k] ^= np.uint64(1) << np.uint64(bit)
        rows.append(flipped)
    return np.concatenate(rows)


@pytest.mark.parametrize("t", [Thresholds(), Thresholds(min_agreeing=1), Thresholds(min_agreeing=3, veto=12),
                               Thresholds(dhash=2, phash=12, burst_identical=3),  # pruned: 3 <= phash
                               Thresholds(dhash=4, phash=4, burst_identical=6),   # every hash searched
                               Thresholds(burst_identical=12)])
def test_searching_only_the_hashes_that_can_link_finds_every_duplicate(t: Thresholds) -> None:
    """search_radii leaves out aHash and wHash where no accepted pair needs them: the links
    (and so the groups) are exactly those of a search over every hash, with fewer candidates."""
    rng = np.random.default_rng(5)
    codes = _near_copies(rng, originals=60, copies=4, max_bits=14)
    ids = np.arange(1, len(codes) + 1, dtype=np.int64)
    cams = ["CAM", None]
    images = {int(i): info(int(i), camera=cams[int(i) % 2], ts=float(i // 120)) for i in ids}  # some bursts
    full = all_pairs(ids, codes, t.radii())
    pruned = all_pairs(ids, codes, search_radii(t))
    assert set(zip(pruned.a.tolist(), pruned.b.tolist())) <= set(zip(full.a.tolist(), full.b.tolist()))
    links = accept_pairs(full.a, full.b, full.dist, images, t)
    assert links and accept_pairs(pruned.a, pruned.b, pruned.dist, images, t) == links
    if search_radii(t) != t.radii():
        assert len(pruned) < len(full)
    # plausible() is the distance half of accept_pairs: every link passes it; without bursts, only they do.
    keep = plausible(full.dist, t)
    assert {(x.a, x.b) for x in links} <= set(zip(full.a[keep].tolist(), full.b[keep].tolist()))
    plain = {i: info(i) for i in images}
    assert {(x.a, x.b) for x in accept_pairs(full.a, full.b, full.dist, plain, t)} == \
        set(zip(full.a[keep].tolist(), full.b[keep].tolist()))
