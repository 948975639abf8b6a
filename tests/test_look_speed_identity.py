"""The second look's kept work (lumina_plugin/hashing/look.py: bases, large products and windows'
coefficients kept across registrations; grouping/second_look.py: the looks run photo by photo)
gives every look the verdict of the plain registration it replaced, bit for bit: each
registration is checked against that plain coordinate ascent (written out below as it was,
nothing kept), on real photos of sample_catalog/ with crops and straightened copies made with
Pillow, while the caches are too small to hold a registration's work (so kept and recomputed
numbers meet)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_gray, upright_source

from lumina_plugin.grouping import second_look
from lumina_plugin.hashing import look
from lumina_plugin.hashing.borders import basis

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
sys.path.insert(0, str(SAMPLE.parent / "benchmarks"))

from _corpus_edits import straighten  # noqa: E402  (the accuracy corpus's straightened copies)

ORIGINALS = ["2015/2015-10-29/IMG_8812.jpg", "2018/2018-10-14/DSC00401.jpg", "2021/2021-12-24/IMG_3307.jpg"]


def plain_basis(n_px: int, a: float, b: float) -> np.ndarray:
    """The window-side basis as the registration first computed it (np.clip, nothing kept)."""
    i = np.arange(n_px, dtype=np.float64)
    span = b - a
    overlap = np.clip(np.minimum(i + 1, b) - np.maximum(i, a), 0.0, 1.0) / span
    c1 = np.cos(np.pi * np.clip((i + 0.5 - a) / span, 0.0, 1.0))
    out = np.empty((16, n_px))
    out[0], out[1] = 1.0, c1
    for u in range(2, 16):
        out[u] = 2.0 * c1 * out[u - 1] - out[u - 2]
    return out * overlap


def plain_register(big: np.ndarray, small_c: np.ndarray, margin: float, lo: float, give_up: int | None = None,
                   key: object = None, steps: tuple[float, ...] = (0.02, 0.01, 0.005)
                   ) -> tuple[int, tuple[float, float, float, float]]:
    """The coordinate ascent as it was before its work was kept: every basis and product
    computed where it is needed, the rows and columns recomputed at every accepted move."""
    big = np.asarray(big, dtype=np.float64)
    h, w = big.shape
    want = small_c.ravel()[1:]
    target = want / (math.sqrt(want.dot(want)) + 1e-12)
    signs = want > 0
    p = [lo + margin / 2, 1 - lo - margin / 2, lo + margin / 2, 1 - lo - margin / 2]

    def base(vertical: bool, q: list[float]) -> np.ndarray:
        n, first, last = (h, q[0], q[1]) if vertical else (w, q[2], q[3])
        return plain_basis(n, first * n, last * n)

    def score(c: np.ndarray) -> float:
        v = c.ravel()[1:]
        return float(v.dot(target) / (math.sqrt(v.dot(v)) + 1e-12))

    by, bx = base(True, p), base(False, p)
    rows, cols = by @ big, big @ bx.T
    best = score(by @ cols)
    for step in steps:
        moved = True
        while moved:
            moved = False
            for i in range(4):
                for sign in (-1, 1):
                    q = list(p)
                    q[i] += sign * step
                    inset = q[i] if i in (0, 2) else 1 - q[i]
                    if not lo - 1e-9 <= inset <= lo + margin + 1e-9:
                        continue
                    nb = base(i < 2, q)
                    sc = score(nb @ cols) if i < 2 else score(rows @ nb.T)
                    if sc > best + 1e-9:
                        best, p, moved = sc, q, True
                        if i < 2:
                            by, rows = nb, nb @ big
                        else:
                            bx, cols = nb, big @ nb.T
        if give_up is not None and step == 0.02 and int(((by @ cols).ravel()[1:] > 0).__ne__(signs).sum()) > give_up:
            break
    return int(((by @ cols).ravel()[1:] > 0).__ne__(signs).sum()), (p[0], p[1], p[2], p[3])


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Per original: itself, straightened by 2 and -3 degrees, an uneven crop, turned a quarter;
    then a square photo (its two sides' windows alike) and a crop of it."""
    grays: list[np.ndarray] = []
    for rel in ORIGINALS:
        img = upright_source(rel).convert("RGB")
        img.thumbnail((900, 900))
        w, h = img.size
        grays += [jpeg_gray(img), jpeg_gray(straighten(img, 2.0)), jpeg_gray(straighten(img, -3.0)),
                  jpeg_gray(img.crop((int(0.06 * w), int(0.02 * h), w - int(0.03 * w), h - int(0.08 * h)))),
                  jpeg_gray(img.rotate(90, expand=True))]
    square = img.crop(((w - h) // 2, 0, (w - h) // 2 + h, h)) if w > h else img.crop((0, 0, w, w))
    side = square.width
    grays += [jpeg_gray(square), jpeg_gray(square.crop((int(0.03 * side), int(0.05 * side), side - int(0.04 * side), side)))]
    return grays


def test_kept_work_gives_the_plain_registrations_verdicts(photos: list[np.ndarray],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Each original with its copies (both ways), and with the other originals' copies (close
    # misses whose angle search runs to the end); the photos shared by all, in an order where
    # one image is registered again and again.
    pairs = [(5 * i, 5 * i + k, 3 if k == 4 else 0) for i in range(3) for k in range(1, 5)]
    pairs += [(5 * i + k, 5 * i, 1 if k == 4 else 0) for i in range(3) for k in (1, 3, 4)]
    pairs += [(15, 16, 0), (16, 15, 0)]
    pairs += [(5 * i, 5 * j + k, 0) for i in range(3) for j in range(3) if i != j for k in (1, 2)]

    registrations: list[tuple[tuple[int, tuple[float, ...]], tuple[int, tuple[float, ...]]]] = []
    kept_register = look._register

    def both(big: np.ndarray, small_c: np.ndarray, margin: float, lo: float, give_up: int | None = None,
             key: object = None, steps: tuple[float, ...] = look._STEPS) -> tuple[int, tuple[float, float, float, float]]:
        found = kept_register(big, small_c, margin, lo, give_up, key, steps)
        registrations.append((found, plain_register(big, small_c, margin, lo, give_up, steps=steps)))
        return found

    # Caches far smaller than one registration's work: kept numbers and recomputed ones meet.
    monkeypatch.setattr(look._BASES, "size", 64 << 10)
    monkeypatch.setattr(look._PRODUCTS, "size", 3)
    monkeypatch.setattr(look._COEFFICIENTS, "size", 12)
    monkeypatch.setattr(look, "_register", both)
    prepared = [look.LookPhoto(g) for g in photos]
    kept = [look.look_at(prepared[a], prepared[b], r) for a, b, r in pairs]
    assert len(registrations) > 3 * len(pairs)
    assert all(found == plain for found, plain in registrations), \
        [k for k, (found, plain) in enumerate(registrations) if found != plain]

    # The verdicts themselves: the plain ascent alone, every photo prepared afresh.
    monkeypatch.setattr(look, "_register", plain_register)
    assert [look.second_look(photos[a], photos[b], r) for a, b, r in pairs] == kept
    copies = kept[:23]
    assert all(v.ok for v in copies), [(p, v.distance) for p, v in zip(pairs, copies) if not v.ok]
    assert sum(1 for v in copies if v.angle) >= 8  # the straightened copies were turned back


def test_a_square_image_registered_from_its_best_window(photos: list[np.ndarray]) -> None:
    """A square image's first window has the same sides across and down: kept apart, by
    what reads them, when the search stays there."""
    big = look.LookPhoto(photos[15]).content
    n = big.shape[0]
    assert big.shape == (n, n)
    start = plain_basis(n, 0.06 * n, 0.94 * n)
    small_c = start @ big @ start.T  # the first window's own code: no side moves at first
    plain = plain_register(big, small_c, 0.12, 0.0, 100)
    assert plain[0] == 0
    for key in (None, "square", "square"):
        assert look._register(big, small_c, 0.12, 0.0, 100, key) == plain


def test_kept_bases_and_codes_are_the_plain_ones(photos: list[np.ndarray]) -> None:
    for n, a, b in ((300, 0.0, 300.0), (257, 12.34, 240.5), (383, 25.0, 371.2), (190, 11.4, 178.6)):
        assert np.array_equal(look._look_basis(n, a, b), plain_basis(n, a, b))
    photo = look.LookPhoto(photos[1])
    for turn in range(4):
        small = np.rot90(photo.content, turn)
        hs, ws = small.shape
        plain = basis(np, hs, 0, hs, 16) @ np.ascontiguousarray(small) @ basis(np, ws, 0, ws, 16).T
        assert np.array_equal(photo.code(turn), plain)
        assert photo.code(turn) is photo.code(turn + 4)


def test_looks_in_photo_order_give_the_one_at_a_time_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run photo by photo with a cache of two, a photo dropped when no later pair needs it,
    the one needed last when full: the verdicts are those of one look at a time, in order,
    an unreadable or unknown photo "no match" either way."""
    found: dict[int, tuple[str, int, int]] = {}
    for k, rel in enumerate(ORIGINALS):
        img = upright_source(rel).convert("RGB")
        img.thumbnail((500, 500))
        w, h = img.size
        crop = img.crop((int(0.04 * w), int(0.03 * h), w - int(0.05 * w), h - int(0.02 * h)))
        img.save(tmp_path / f"{k}.jpg", quality=92)
        crop.save(tmp_path / f"{k}c.jpg", quality=88)
        found[10 * k] = (str(tmp_path / f"{k}.jpg"), w, h)
        found[10 * k + 1] = (str(tmp_path / f"{k}c.jpg"), crop.width, crop.height)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    found[99] = (str(tmp_path / "broken.jpg"), 600, 400)
    pairs = [(0, 1, 0), (10, 21, 0), (20, 0, 0), (11, 10, 0), (1, 99, 0), (21, 20, 0), (0, 10, 0),
             (98, 0, 0), (10, 1, 0), (20, 21, 0), (1, 11, 0), (0, 1, 0)]
    order = second_look.photo_order(pairs)
    assert sorted(order) == list(range(len(pairs)))
    monkeypatch.setattr(second_look, "CACHE", 2)
    verdicts = second_look.looks_in_order(found.get, 250_000_000, pairs)

    def alone(i: int) -> look.LookPhoto | None:  # each look's photos prepared afresh: the reference
        return second_look._prepare(found.get, 250_000_000, i)

    assert verdicts == [second_look._verdict(alone(a), alone(b), r) for a, b, r in pairs]
    assert [bool(v) for v in verdicts] == [True, False, False, True, False, True, False,
                                           False, False, True, False, True]


def test_content_at_the_looks_scale_is_the_block_mean(photos: list[np.ndarray]) -> None:
    """A photo's content, reduced by sums of whole grey levels, is the plain block mean."""
    from lumina_plugin.hashing.borders import content_box, working_image

    reduced = 0
    for g in photos + [np.ascontiguousarray(np.pad(p, 40, constant_values=0).T) for p in photos[:4]]:
        img = working_image(g)
        t, b, lf, r = content_box(np, img)
        plain = img[t:b, lf:r].astype(np.float64)
        factor = max(plain.shape) // look._LOOK_LONG
        if factor > 1:
            reduced += 1
            h, w = plain.shape[0] // factor * factor, plain.shape[1] // factor * factor
            plain = plain[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
        got = look._content(g)
        assert got.dtype == np.float64 and got.tobytes() == plain.tobytes()
    assert reduced >= 4
