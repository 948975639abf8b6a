"""The accuracy corpus generator (benchmarks/accuracy_corpus.py) keeps its promises, on real files.

A tiny corpus is built from two of sample_catalog's photos (a portrait and a 4:3 landscape)
into a temporary folder; every check decodes the written files and compares their pixels with
the original's, so a wrong rotation direction, a non-uniform bar, an EXIF tag that does not
restore the photo, or a negative listed but not written fails here and not, silently, in the
benchmark's numbers. Also: the scoring rules on a hand-made prediction.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _corpus_edits as E  # noqa: E402
import accuracy_corpus  # noqa: E402
from _accuracy_score import Judge, group_pairs, score  # noqa: E402
from _corpus_kinds import KINDS, PER_ORIGINAL  # noqa: E402

ORIGINALS = ("IMG_3307", "DSC00388")  # 427x640 portrait, 640x480 landscape


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus")
    truth = accuracy_corpus.build(out, only=ORIGINALS, use_skimage=False)
    return out, truth


def pixels(path: Path, upright: bool = False) -> np.ndarray:
    with Image.open(path) as im:
        img = ImageOps.exif_transpose(im) if upright else im
        return np.asarray(img.convert("RGB"), dtype=np.float32)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).mean())


def resized(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(a.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32)


def files_of(truth: dict, sid: str, kind: str) -> list[str]:
    return sorted(p for p, f in truth["files"].items() if f["source"] == sid and f["kind"] == kind)


def one(truth: dict, sid: str, kind: str) -> tuple[str, dict]:
    (path,) = files_of(truth, sid, kind)
    return path, truth["files"][path]


def test_truth_matches_the_files_on_disk(corpus: tuple[Path, dict]) -> None:
    out, truth = corpus
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "truth.json"}
    assert on_disk == set(truth["files"])
    assert set(truth["sources"]) == set(ORIGINALS)
    for path, f in truth["files"].items():
        assert f["role"] == ("original" if f["kind"] == "original" else KINDS[f["kind"]].role)
        with Image.open(out / path) as im:
            im.load()
    assert json.loads((out / "truth.json").read_text())["format"] == accuracy_corpus.FORMAT


def test_every_kind_is_written_for_every_original(corpus: tuple[Path, dict]) -> None:
    out, truth = corpus
    for sid in ORIGINALS:
        size = truth["sources"][sid]["size"]
        for kind in PER_ORIGINAL:
            if kind in ("crop_16x9", "crop_square"):
                aspect = 1.0 if kind == "crop_square" else (16 / 9 if size[0] >= size[1] else 9 / 16)
                expected = 0.05 <= E.aspect_crop_loss(tuple(size), aspect) <= 0.35
                assert len(files_of(truth, sid, kind)) == expected, (sid, kind)
            else:
                assert len(files_of(truth, sid, kind)) == 1, (sid, kind)
        assert len(files_of(truth, sid, "shifted")) == 2


@pytest.mark.parametrize("sid", ORIGINALS)
def test_rotated_copies_are_the_exact_rotations(corpus: tuple[Path, dict], sid: str) -> None:
    out, truth = corpus
    orig = pixels(out / sid / "original.jpg")
    for kind, k in (("rot90", -1), ("rot180", 2), ("rot270", 1)):  # np.rot90 turns counter-clockwise
        got = pixels(out / one(truth, sid, kind)[0])
        assert mad(got, np.rot90(orig, k)) < 3.0, kind
        if kind != "rot180":  # the other direction is far off: the direction is right
            assert mad(got, np.rot90(orig, -k)) > 3 * mad(got, np.rot90(orig, k)) + 5
    path, f = one(truth, sid, "rot90_resize")
    got = pixels(out / path)
    turned = np.rot90(orig, -1 if f["params"]["degrees_cw"] == 90 else 1)
    assert 0.55 <= f["params"]["scale"] <= 0.7
    assert mad(got, resized(turned, (got.shape[1], got.shape[0]))) < 4.0


@pytest.mark.parametrize("sid", ORIGINALS)
def test_exif_orientation_copies_restore_upright(corpus: tuple[Path, dict], sid: str) -> None:
    out, truth = corpus
    orig = pixels(out / sid / "original.jpg")
    for kind in ("rot_exif", "exif_rotation"):
        path, f = one(truth, sid, kind)
        with Image.open(out / path) as im:
            assert im.getexif().get(274) == f["params"]["orientation"] != 1
            stored = im.size
        upright = pixels(out / path, upright=True)
        if f["params"]["stored_degrees_cw"] != 180:
            assert stored == (upright.shape[0], upright.shape[1])  # stored sideways
        assert mad(upright, resized(orig, (upright.shape[1], upright.shape[0]))) < 4.0, kind
        # and the stored pixels alone are NOT upright (a rotation, not just a tag)
        assert pixels(out / path).shape != upright.shape or mad(pixels(out / path), upright) > 10


@pytest.mark.parametrize("sid", ORIGINALS)
def test_copies_keep_or_strip_exif_as_documented(corpus: tuple[Path, dict], sid: str) -> None:
    out, truth = corpus
    with Image.open(out / sid / "original.jpg") as im:
        taken = im.getexif().get_ifd(0x8769).get(36867)
    assert taken  # sample_catalog's photos carry a DateTimeOriginal
    for kind in ("rot90", "letterbox", "greyscale", "png", "mirror"):
        with Image.open(out / one(truth, sid, kind)[0]) as im:
            exif = im.getexif()
            assert exif.get(274, 1) == 1 and exif.get_ifd(0x8769).get(36867) == taken, kind
    for path in [one(truth, sid, "social")[0], one(truth, sid, "webp_q60")[0], *files_of(truth, sid, "shifted")]:
        with Image.open(out / path) as im:
            assert not im.getexif().get_ifd(0x8769).get(36867), path


def _uniform(region: np.ndarray, colour: list[int], tol: float) -> None:
    assert region.size, "empty bar"
    assert np.abs(region - np.array(colour, dtype=np.float32)).mean() < tol
    assert region.std(axis=(0, 1)).max() < tol


@pytest.mark.parametrize("sid", ORIGINALS)
def test_bars_and_frames_are_uniform_and_hold_the_photo(corpus: tuple[Path, dict], sid: str) -> None:
    out, truth = corpus
    orig = pixels(out / sid / "original.jpg")
    h, w = orig.shape[:2]
    for kind in ("letterbox", "pillarbox", "bars_white", "bars_colour", "frame", "combo_letterbox_q70"):
        path, f = one(truth, sid, kind)
        got = pixels(out / path)
        p = f["params"]
        left, top, right, bottom = p["margins"] if "margins" in p else [p["px"]] * 4
        assert got.shape[:2] == (h + top + bottom, w + left + right), kind
        tol = 8.0 if kind == "combo_letterbox_q70" else 5.0
        m = 3  # JPEG ringing next to the photo's edge
        bars = [got[:max(0, top - m)], got[h + top + m:], got[:, :max(0, left - m)], got[:, w + left + m:]]
        assert sum(b.size for b in bars) > 0.05 * got.size, kind
        for bar in bars:
            if bar.size:
                _uniform(bar, p["colour"], tol)
        if kind in ("letterbox", "combo_letterbox_q70"):
            assert left == right == 0 and 3 <= top <= 0.25 * got.shape[0] + 1
        if kind == "pillarbox":
            assert top == bottom == 0 and 3 <= left <= 0.25 * got.shape[1] + 1
        assert mad(got[top:top + h, left:left + w], orig) < (6.0 if kind == "combo_letterbox_q70" else 4.0), kind


@pytest.mark.parametrize("sid", ORIGINALS)
def test_caption_band_is_a_solid_band_with_text(corpus: tuple[Path, dict], sid: str) -> None:
    out, truth = corpus
    orig = pixels(out / sid / "original.jpg")
    path, f = one(truth, sid, "caption")
    got = pixels(out / path)
    p = f["params"]
    band_h = got.shape[0] - orig.shape[0]
    assert 0.06 <= band_h / orig.shape[0] <= 0.10 + 1 / orig.shape[0]
    band, photo = (got[:band_h], got[band_h:]) if p["where"] == "top" else (got[-band_h:], got[:-band_h])
    near = np.abs(band - np.array(p["band"], dtype=np.float32)).max(axis=2) < 40
    assert 0.6 < near.mean() < 0.995  # mostly the band colour, and some text on it
    ink = np.abs(band - np.array(p["ink"], dtype=np.float32)).max(axis=2) < 80
    assert ink.sum() > 30
    assert mad(photo, orig) < 4.0


@pytest.mark.parametrize("sid", ORIGINALS)
def test_crops_and_straighten(corpus: tuple[Path, dict], sid: str) -> None:
    out, truth = corpus
    orig = pixels(out / sid / "original.jpg")
    h, w = orig.shape[:2]
    for kind, lo, hi in (("crop_mild", 0.02, 0.08), ("crop_light", 0.01, 0.02)):
        path, f = one(truth, sid, kind)
        fl, ft, fr, fb = f["params"]["left_top_right_bottom"]
        assert all(lo <= x <= hi for x in (fl, ft, fr, fb))
        expect = orig[round(h * ft):h - round(h * fb), round(w * fl):w - round(w * fr)]
        assert mad(pixels(out / path), expect) < 4.0, kind
    for kind in ("crop_16x9", "crop_square"):
        for path in files_of(truth, sid, kind):
            got = pixels(out / path)
            aspect = truth["files"][path]["params"]["aspect"]
            assert abs(got.shape[1] / got.shape[0] - aspect) < 0.01 * aspect
            assert truth["files"][path]["params"]["area_removed"] <= 0.35
    path, f = one(truth, sid, "straighten")
    deg = f["params"]["degrees_ccw"]
    assert 1 <= abs(deg) <= 4
    with Image.open(out / sid / "original.jpg") as im:
        probe = np.asarray(E.straighten(im.convert("RGB"), deg, fill=(255, 0, 255)), dtype=np.int16)
    magenta = (probe[..., 0] > 200) & (probe[..., 1] < 60) & (probe[..., 2] > 200)
    assert not magenta.any()  # the crop left no blank corner
    assert pixels(out / path).shape == probe.shape
    assert probe.shape[0] * probe.shape[1] > 0.75 * h * w


@pytest.mark.parametrize("sid", ORIGINALS)
def test_negatives_exist_and_are_what_they_say(corpus: tuple[Path, dict], sid: str) -> None:
    out, truth = corpus
    orig = pixels(out / sid / "original.jpg")
    h, w = orig.shape[:2]
    assert mad(pixels(out / one(truth, sid, "mirror")[0]), orig[:, ::-1]) < 3.0
    assert mad(pixels(out / one(truth, sid, "flip")[0]), orig[::-1]) < 3.0
    # an upside-down flip is not the 180-degree turn
    assert mad(pixels(out / one(truth, sid, "flip")[0]), np.rot90(orig, 2)) > 10
    half = pixels(out / one(truth, sid, "half")[0])
    assert half.shape[:2] in ((h, round(w * 0.5)), (round(h * 0.5), w))
    heavy = pixels(out / one(truth, sid, "heavy_crop")[0])
    assert 0.38 <= 1 - heavy.shape[0] * heavy.shape[1] / (h * w) <= 0.52
    a, b = files_of(truth, sid, "shifted")
    pa, pb = truth["files"][a]["params"], truth["files"][b]["params"]
    assert 0.20 <= pb["x"] - pa["x"] <= 0.25 + 1e-3 and pa["width"] == 0.75
    assert abs(pixels(out / a).shape[1] - 0.75 * w) <= 1
    listed = {frozenset(n["files"]): n["kind"] for n in truth["negative_pairs"]}
    assert listed[frozenset((a, b))] == "shifted"
    for kind in ("mirror", "flip", "half", "heavy_crop"):
        assert listed[frozenset((f"{sid}/original.jpg", one(truth, sid, kind)[0]))] == kind


def test_listed_negative_pairs_exist(corpus: tuple[Path, dict]) -> None:
    out, truth = corpus
    kinds = {n["kind"] for n in truth["negative_pairs"]}
    assert kinds == {"mirror", "flip", "half", "heavy_crop", "shifted", "same_caption", "same_letterbox", "same_frame"}
    for neg in truth["negative_pairs"]:
        assert len(neg["files"]) == 2 and neg["files"][0] != neg["files"][1]
        for path in neg["files"]:
            assert (out / path).is_file() and path in truth["files"]
        if neg["kind"].startswith("same_"):
            a, b = (truth["files"][p] for p in neg["files"])
            assert a["source"] != b["source"]
            pa, pb = pixels(out / neg["files"][0]), pixels(out / neg["files"][1])
            assert pa.shape == pb.shape
            if neg["kind"] == "same_letterbox":
                for img in (pa, pb):
                    _uniform(img[:137], [0, 0, 0], 5.0)
                    _uniform(img[-137:], [0, 0, 0], 5.0)


def test_stereo_pair_is_a_two_shots_negative(tmp_path: Path) -> None:
    truth = accuracy_corpus.build(tmp_path, only=accuracy_corpus.STEREO, kinds=["two_shots"], use_skimage=False)
    assert truth["related_sources"] == [{"sources": list(accuracy_corpus.STEREO), "kind": "two_shots"}]
    (neg,) = truth["negative_pairs"]
    assert neg["kind"] == "two_shots" and all((tmp_path / p).is_file() for p in neg["files"])


def test_build_is_deterministic(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = corpus
    again = accuracy_corpus.build(tmp_path, only=ORIGINALS, use_skimage=False)
    assert again == truth
    for path in truth["files"]:
        assert (tmp_path / path).read_bytes() == (out / path).read_bytes(), path


def test_scoring_rules(corpus: tuple[Path, dict]) -> None:
    _, truth = corpus
    judge = Judge(truth)
    sid, other = ORIGINALS
    orig = f"{sid}/original.jpg"
    rot = one(truth, sid, "rot90")[0]
    mirror, flip = one(truth, sid, "mirror")[0], one(truth, sid, "flip")[0]
    a, _ = files_of(truth, sid, "shifted")
    assert judge(orig, rot) == ("true", None)
    assert judge(orig, mirror) == ("false", "mirror")
    assert judge(rot, mirror) == ("false", "mirror")  # a mirror is a copy of no copy either
    assert judge(mirror, flip) == ("ignore", None)  # a flip is the mirror turned 180 degrees
    assert judge(orig, a) == ("ignore", None)  # a 75% window may pass for a crop
    assert judge(orig, f"{other}/original.jpg") == ("false", "cross_source")
    positives = [p for p, f in truth["files"].items() if f["source"] == sid and f["role"] != "negative"]
    perfect = score(truth, group_pairs([positives]))
    hard = sum(1 for p in positives if truth["files"][p]["role"] == "copy" and KINDS[truth["files"][p]["kind"]].bucket == "hard")
    assert perfect["precision"] == 1.0 and perfect["false_pairs"] == 0
    assert perfect["buckets"]["hard"]["found"] == hard > 10
    assert perfect["true_pairs"] == len(positives) * (len(positives) - 1) // 2
    worse = score(truth, group_pairs([positives + [mirror]]))
    assert worse["negatives"]["mirror"]["joined"] == 1
    assert worse["negatives"]["mirror"]["false_pairs"] == len(positives)
