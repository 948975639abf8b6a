"""borders.content_box reads each axis's two sides together (hashing/borders.py: ``_sides``):
one sort for both margin colours, one comparison for both outermost lines, whole blocks of
lines counted at once, the decision on a Python list. It must give the depths of the
straightforward per-side, per-line reading it replaced, kept here as the reference, for every
input: bars, frames and caption bands of any colour, JPEG-like noise around the tolerances,
fractions right at CLEAN / LOOSE / STEP, tiny images, other dtypes, NaN and infinite pixels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lumina_plugin.hashing import borders
from lumina_plugin.hashing.borders import CLEAN, LOOSE, MAX_SIDE, MAX_TEXT, MIN_SIDE, STEP, STRICT_TOL, TOL, content_box

# ---------------------------------------------------------------- the reference: one side, line by line


def _ref_side_at(lines: np.ndarray, limit: int, tol: float, ref: np.ndarray) -> int:
    frac = (np.abs(lines[: limit + 3] - ref) <= tol).mean(axis=1)
    if not bool(frac[0] >= CLEAN):
        return 0
    clean = frac >= CLEAN
    bad = np.flatnonzero(frac[: limit + 1] < LOOSE)
    run = int(bad[0]) if bad.size else limit + 1
    cleans = np.flatnonzero(clean[:run])
    gaps = np.flatnonzero(np.diff(cleans) > max(2, int(MAX_TEXT * lines.shape[0])))
    if gaps.size:
        cleans = cleans[: int(gaps[0]) + 1]
    for c in cleans[::-1].tolist():
        if c + 1 > limit:
            continue
        if min(float(frac[c + 1]), float(frac[c + 2])) <= STEP:
            return c + 1
    return 0


def _ref_side(lines: np.ndarray, limit: int, found: list[str]) -> int:
    """Depth of one side (line 0 the outermost); ``found`` records which tolerance found it."""
    if limit < 2:
        return 0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # np.median and .mean() of an empty line
        ref = np.median(lines[:2].reshape(-1))
        if not bool((np.abs(lines[0] - ref) <= TOL).mean() >= CLEAN):
            return 0
        loose = _ref_side_at(lines, limit, TOL, ref)
        strict = 0 if loose else _ref_side_at(lines, limit, STRICT_TOL, ref)
    if loose or strict:
        found.append("loose" if loose else "strict")
    return loose or strict


def _ref_four(img: np.ndarray, found: list[str]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) depths, before the MIN_SIDE rule."""
    lim_v, lim_h = int(MAX_SIDE * img.shape[0]), int(MAX_SIDE * img.shape[1])
    return (_ref_side(img, lim_v, found), _ref_side(img[::-1], lim_v, found),
            _ref_side(img.T, lim_h, found), _ref_side(img.T[::-1], lim_h, found))


def _ref_content_box(img: np.ndarray) -> tuple[int, int, int, int]:
    def once(sub: np.ndarray) -> tuple[int, int, int, int]:
        h, w = sub.shape
        top, bottom, left, right = _ref_four(sub, [])
        top, bottom = (t if t >= MIN_SIDE * h else 0 for t in (top, bottom))
        left, right = (t if t >= MIN_SIDE * w else 0 for t in (left, right))
        return top, h - bottom, left, w - right

    h, w = img.shape
    t, b, lf, r = once(img)
    if (t, b, lf, r) != (0, h, 0, w) and b - t > 8 and r - lf > 8:
        t2, b2, l2, r2 = once(img[t:b, lf:r])
        t, b, lf, r = t + t2, t + b2, lf + l2, lf + r2
    if b - t < h // 3 or r - lf < w // 3:
        return 0, h, 0, w
    return t, b, lf, r


# ---------------------------------------------------------------- images


def _bordered(rng: np.random.Generator) -> np.ndarray:
    """A noise or gradient 'photo' with bars, a frame or caption bands on 1-4 sides, as float32."""
    h, w = (int(x) for x in rng.integers(12, 160, 2))
    if rng.random() < 0.5:
        photo = rng.integers(0, 256, (h, w)).astype(np.float64)
    else:  # a sky that fades: the photo's own edge near the bar's colour
        photo = np.linspace(rng.uniform(0, 255), rng.uniform(0, 255), h)[:, None] + rng.normal(0, 3, (h, w))
    colour = float(rng.choice([0, 255, 128, rng.integers(0, 256)]))
    pads = [int(rng.integers(0, int(0.45 * (h if k < 2 else w)) + 1)) if rng.random() < 0.6 else 0 for k in range(4)]
    canvas = np.full((h + pads[0] + pads[1], w + pads[2] + pads[3]), colour)
    noise = float(rng.choice([0, 0, 3, 4, 5, 13, 14, 15]))
    if noise:
        canvas += rng.integers(-int(noise), int(noise) + 1, canvas.shape)
    canvas[pads[0]:pads[0] + h, pads[2]:pads[2] + w] = photo
    if rng.random() < 0.3:  # photo edge within STRICT_TOL..TOL of the bar: only the strict tolerance finds it
        canvas[pads[0]:pads[0] + int(rng.integers(1, 6))] = colour + float(rng.choice([-9, 6, 10]))
    if pads[0] > 6 and rng.random() < 0.5:  # caption text inside the top band
        r0 = int(rng.integers(1, pads[0] - 3))
        canvas[r0:r0 + int(rng.integers(1, 4)), : int(rng.integers(1, canvas.shape[1]))] = float(rng.integers(0, 256))
    img = np.clip(canvas, 0, 255)
    if rng.random() < 0.7:
        img = np.round(img)
    return img.astype(np.float32)


def _at_fractions(rng: np.random.Generator) -> np.ndarray:
    """A margin whose lines hold exactly CLEAN, STEP or LOOSE of its colour (or one pixel in
    100 either side), text lines inside it, and an inner edge around the deepest margin kept
    (MAX_SIDE): the other pixels are far from the colour, so each share is exact."""
    w = 100 * int(rng.integers(1, 3))
    h = int(rng.integers(10, 120))
    limit = int(MAX_SIDE * h)
    c = float(rng.integers(0, 80))
    img = rng.integers(c + 40, 256, (h, w)).astype(np.float32)
    depth = int(rng.choice([rng.integers(1, max(2, limit)), limit - 1, limit, limit + 1, limit + 2]))
    exact = rng.random() < 0.3  # an exact bar (beside a photo edge near its colour, below)
    shares = []
    for r in range(min(h, depth + 3)):
        if r < depth:
            shares.append(1.0 if exact else float(rng.choice([1.0, 1.0, 1.0, 0.97, 0.96, 0.3, 0.29, 0.31, 0.6])))
        else:
            shares.append(float(rng.choice([0.6, 0.59, 0.61, 0.3, 0.29, 0.97, 0.0])))
    shares[0] = 1.0 if exact else float(rng.choice([1.0, 0.97, 0.96]))
    for r, share in enumerate(shares):
        # all within TOL of the colour (the median), some not within STRICT_TOL
        off = rng.choice([0.0, 4.0, -4.0, 3.5, 13.5, 14.0, -14.0], w, p=[0.8, 0.04, 0.04, 0.03, 0.03, 0.03, 0.03])
        if exact and r < depth:
            off[:] = 0
        img[r, rng.permutation(w)[: int(round(share * w))]] = c + off[: int(round(share * w))]
    if exact or rng.random() < 0.3:  # a photo edge within TOL, not STRICT_TOL: the strict tolerance's step
        img[depth:depth + int(rng.choice([1, 3, h])), : int(rng.choice([w, w * 0.7, w * 0.3]))] = c + 9
    return np.ascontiguousarray(np.rot90(img, int(rng.integers(4))))


def _check(img: np.ndarray, found: list[str]) -> None:
    top, bottom, left, right = _ref_four(img, found)
    assert borders._sides(np, img, 0) == (top, bottom), img.shape
    assert borders._sides(np, img, 1) == (left, right), img.shape
    box = content_box(np, img)
    assert box == _ref_content_box(img), img.shape
    assert all(type(x) is int for x in box)


# ---------------------------------------------------------------- tests


def test_sides_are_the_per_line_readings_on_bordered_images() -> None:
    rng = np.random.default_rng(17)
    found: list[str] = []
    for _ in range(250):
        img = _bordered(rng)
        _check(img, found)
        _check(np.ascontiguousarray(img.T), found)
        _check(np.rot90(img), [])  # a strided view, as the second pass's crop is
    # the images exercise both tolerances, not only photos without a margin
    assert found.count("loose") > 100 and found.count("strict") > 5, (found.count("loose"), found.count("strict"))


def test_sides_are_the_per_line_readings_at_the_thresholds() -> None:
    rng = np.random.default_rng(18)
    found: list[str] = []
    for _ in range(400):
        _check(_at_fractions(rng), found)
    assert found.count("loose") > 50 and found.count("strict") > 5, (found.count("loose"), found.count("strict"))


@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (5, 2), (6, 6), (7, 300), (300, 7), (9, 9), (0, 5), (40, 0),
                                   (1, 400), (64, 64)])
def test_tiny_and_empty_images(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for img in (np.zeros(shape, np.float32), np.full(shape, 200, np.float32),
                rng.integers(0, 256, shape).astype(np.float32)):
        framed = img.copy()
        if min(shape) > 2:
            framed[1:-1, 1:-1] = rng.integers(0, 256, (shape[0] - 2, shape[1] - 2))
        for x in (img, framed):
            _check(x, [])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float16, np.float64])
def test_other_dtypes(dtype: type) -> None:
    """Integer images get np.median's float64 colour, float16 its float16 one."""
    rng = np.random.default_rng(19)
    for _ in range(40):
        _check(_bordered(rng).astype(dtype), [])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_and_infinite_pixels() -> None:
    """A NaN among the two outermost lines makes np.median's colour NaN: no margin there."""
    rng = np.random.default_rng(20)
    for k in range(60):
        img = _bordered(rng)
        h, w = img.shape
        row, col = int(rng.integers(0, 2)) if k % 2 else int(rng.integers(h)), int(rng.integers(w))
        img[row, col] = (np.nan, np.inf, -np.inf)[k % 3]
        if k % 5 == 0:
            img[-1, :] = np.inf
            img[-2, :] = -np.inf
        _check(img, [])
        _check(np.ascontiguousarray(img.T), [])
