"""The second look: is one photo a mild crop of another, possibly straightened?

The geometry words (hashing/geometry.py) leave some pairs unsure: a crop of a few percent off
each side, unevenly, or a copy turned 1-4 degrees and cropped, shifts every coefficient a
little. For those pairs both photos' pixels are registered against each other: the crop's
16x16 code (hashing/borders.py's bases) is fixed, and the window of the other photo that
matches it best is found by coordinate ascent over its four sides, unturned and then, if that
does not fit, at the straightening angles whose coarse windows, at half the look's scale, came
closest. Registered, a crop agrees in nearly every bit; two
shots of one scene (parallax) or a shifted window do not.

What a look costs is mostly bases (one per window side tried), matrix products and Pillow's
rotation of the containing photo per angle. A :class:`LookPhoto` keeps one photo's prepared
pixels, its code as a crop and its rotations, so a photo in several unsure pairs (a burst, a
tile beside its neighbours) is prepared and turned once. A registration keeps what it
computes for the image it searches: the bases of window sides (shared by photos of one
size), the large products and the windows' coefficients (its ascent asks for many windows
again, and the next registration of the same image takes many of the same steps). A kept
number is the one that would be computed again (the same operations on the same operands),
so none of this changes a bit of any verdict.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final, NamedTuple

import numpy as np
from PIL import Image

from .borders import _NF, basis, content_box, working_image

#: Most differing bits (of 255) between the crop's full code and the best-registered window
#: of the other photo (mild crops and straightened copies: 0-20 measured; a stereo pair 47).
T_LOOK: Final[int] = 30
#: Largest crop the second look searches, per side (fraction of the other photo).
LOOK_MARGIN: Final[float] = 0.12
#: Straightening angles tried (degrees) when the unturned window does not fit.
LOOK_ANGLES: Final[tuple[float, ...]] = (-1.0, 1.0, -2.0, 2.0, -3.0, 3.0, -4.0, 4.0)
#: A straightened copy (1-4 degrees) registers within this many bits without turning; a
#: window further off is not worth the angle search.
_LOOK_TURN: Final[int] = 90
#: Largest crop searched per side at a straightening angle, beyond the turned photo's blank
#: corners (fraction of a side): the registrations of every angle share it.
_ANGLE_MARGIN: Final[float] = min(LOOK_MARGIN, 0.06)
#: A look registers at a long side of at least this many pixels (the content is box-reduced
#: by a whole factor down to ``_LOOK_LONG``..``2*_LOOK_LONG - 1``). Sixteen coefficients a side
#: need far fewer pixels than the working image's 256-511; at 192 the looks cost half as much
#: and every measured look keeps its verdict and its distance (at 128 some moved by a bit).
_LOOK_LONG: Final[int] = 192
#: After the coarse stage of a registration, a window further off than this many bits is no
#: crop: measured, mild crops and straightened copies are within 71 bits of their original at
#: that stage (median 23), while the windows of two different pictures sit near 112.
#: Past it the finer stages are skipped (and so are the angles, beyond ``_LOOK_TURN``).
_GIVE_UP: Final[int] = 100
#: Bytes of window-side bases kept across registrations (each 16 x side floats, at most 48 KB:
#: a thousand of the largest, more of smaller sides): photos of one size start every ascent
#: at the same window and take many of the same steps (measured: 54% of the peer library's
#: bases and 85% of the accuracy corpus's come again).
_BASES_BYTES: Final[int] = 48 << 20
#: Large products of window sides (``y_basis @ big``, ``big @ x_basis.T``: 16 x side floats, at
#: most 48 KB) and windows' 16x16 coefficients (2 KB) kept across registrations, the last
#: used: a photo inside several unsure pairs (an original and its copies) is registered
#: again and again, each time from the same window and mostly by the same first steps
#: (measured on the accuracy corpus: 64% of the large products come again; 256 kept find
#: nearly nine in ten of those).
_PRODUCTS_KEPT: Final[int] = 256
#: The registration's step sizes (fractions of a side), coarse to fine, and its coarse stage.
_STEPS: Final[tuple[float, ...]] = (0.02, 0.01, 0.005)
_COARSE: Final[tuple[float, ...]] = _STEPS[:1]
#: How many of a look's (direction, angle) pairs are registered at the look's scale, those
#: whose half-scale coarse windows came closest first.
_FINISHED: Final[int] = 3
#: A (direction, angle) is registered at the look's scale only when its half-scale coarse
#: window is within this many bits: measured, every angle that ended within ``T_LOOK`` was
#: within 50 there on the peer library and 53 on the accuracy corpus, while most angles of
#: the corpus's looks that find no match sit at 70-100.
_FINISH_WITHIN: Final[int] = 70
#: The half-degree steps around the best angle are tried only when it is within this many
#: bits: measured, every step that brought a look within ``T_LOOK`` started from 32 or less.
_REFINE_WITHIN: Final[int] = 50
_COEFFICIENTS_KEPT: Final[int] = 4096

#: Keys of the images registered (:meth:`LookPhoto._key`): never reused within a process.
_serial = itertools.count()

#: A window's side: (pixels of that dimension, first, last), the arguments of :func:`_look_basis`.
_Side = tuple[int, float, float]


class _Kept:
    """Arrays under their keys, the last used: at most ``size`` of them (``in_bytes``: of
    their bytes), the least recently used out first. Read-only: nobody may change a kept one."""

    def __init__(self, size: int, in_bytes: bool = False) -> None:
        self.size, self.in_bytes, self.held = size, in_bytes, 0
        self.items: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable) -> np.ndarray | None:
        value = self.items.get(key)
        if value is not None:
            try:
                self.items.move_to_end(key)
            except KeyError:  # another thread's look dropped it meanwhile
                pass
        return value

    def put(self, key: Hashable, value: np.ndarray) -> np.ndarray:
        value.flags.writeable = False
        self.items[key] = value
        self.held += value.nbytes if self.in_bytes else 1
        while self.held > self.size and self.items:
            try:
                gone = self.items.popitem(last=False)[1]
            except KeyError:
                break
            self.held -= gone.nbytes if self.in_bytes else 1
        return value


#: Bases under their :data:`_Side`; large products under (image, vertical, side); windows'
#: coefficients under (image, vertical, y side, x side) (:func:`_register`).
_BASES: Final = _Kept(_BASES_BYTES, in_bytes=True)
_PRODUCTS: Final = _Kept(_PRODUCTS_KEPT)
_COEFFICIENTS: Final = _Kept(_COEFFICIENTS_KEPT)


class Look(NamedTuple):
    """ok; distance (of 255) at the best window; angle (degrees, counter-clockwise) and
    window (top, bottom, left, right fractions of the containing photo); b_inside_a."""

    ok: bool
    distance: int
    angle: float
    window: tuple[float, float, float, float]
    b_inside_a: bool


def _content(gray: np.ndarray) -> np.ndarray:
    """The picture inside its margins, as float64 at the look's scale."""
    img = working_image(gray)
    t, b, lf, r = content_box(np, img)
    box = img[t:b, lf:r]
    factor = max(box.shape) // _LOOK_LONG
    if factor <= 1:
        return box.astype(np.float64)
    # The pixels are whole grey levels (a uint8 image reduced by Pillow), so every partial
    # sum of a block is exact and this is the block mean's value to the bit.
    return _block_means(box, factor)


def _block_means(img: np.ndarray, factor: int) -> np.ndarray:
    """The float64 mean of each ``factor`` x ``factor`` block of ``img`` (a partial last row or
    column of blocks dropped), as the sum of its pixels over their count: a few whole-array
    additions instead of a reduction over two strided axes (a 480x360 box: 0.13 ms, not 1.1)."""
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    out = np.zeros((h // factor, w // factor))
    for dy in range(factor):
        for dx in range(factor):
            out += img[dy:h:factor, dx:w:factor]
    out /= factor * factor
    return out


class LookPhoto:
    """One photo as the looks read it: its content (inside the margins, at the look's scale),
    its quarter turns and its straightened versions, each made once and kept with the photo
    (a few MB at most: the content is at most 383 pixels a side, 1.2 MB; a straightened copy
    needs eight rotations at half the scale, up to four at the look's scale (0.6 MB each) and
    the float32 images they are turned from, a negative none)."""

    def __init__(self, gray: np.ndarray) -> None:
        self.content = _content(gray)
        self._id = next(_serial)
        self._turned: dict[int, np.ndarray] = {0: self.content}
        self._rotated: dict[tuple[int, float, bool], np.ndarray] = {}
        self._codes: dict[int, np.ndarray] = {}
        self._images: dict[tuple[int, bool], Image.Image] = {}

    def _key(self, quarter_turns: int, angle: float | None = None, half: bool = False) -> Hashable:
        """What names the pixels of :meth:`turned` (``angle`` None) or :meth:`rotated` for
        the products and coefficients kept across registrations (:func:`_register`)."""
        return self._id, quarter_turns % 4, None if angle is None else float(angle), half

    def code(self, quarter_turns: int) -> np.ndarray:
        """The 16x16 coefficients of the whole of :meth:`turned`: the code a look fixes
        when this photo is the crop (kept: the photo is often the crop of several pairs)."""
        k = quarter_turns % 4
        if k not in self._codes:
            small = self.turned(k)
            hs, ws = small.shape
            self._codes[k] = _whole_basis(hs) @ small @ _whole_basis(ws).T
            self._codes[k].flags.writeable = False
        return self._codes[k]

    def turned(self, quarter_turns: int) -> np.ndarray:
        k = quarter_turns % 4
        if k not in self._turned:
            self._turned[k] = np.ascontiguousarray(np.rot90(self.content, k))
        return self._turned[k]

    def rotated(self, quarter_turns: int, angle: float, half: bool = False) -> np.ndarray:
        """:meth:`turned`, then rotated by ``angle`` degrees (bicubic, same size), as Pillow
        gives it: float32, half the memory of a kept rotation (a registration reads it as
        float64, the same values). ``half``: the 2x2 block means of :meth:`turned`, rotated
        bilinear, which only ranks the angles (a quarter of bicubic's taps)."""
        key = (quarter_turns % 4, float(angle), half)
        if key not in self._rotated:
            # The float32 image that Pillow turns, made once for all the angles tried at its scale.
            img = self._images.get((key[0], half))
            if img is None:
                source = self.turned(quarter_turns)
                img = Image.fromarray((_block_means(source, 2) if half else source).astype(np.float32))
                self._images[key[0], half] = img
            resample = Image.Resampling.BILINEAR if half else Image.Resampling.BICUBIC
            self._rotated[key] = np.asarray(img.rotate(angle, resample=resample))
        return self._rotated[key]


def second_look(gray_a: np.ndarray, gray_b: np.ndarray, rotation: int = 0, derived: int = 0) -> Look:
    """Decide an ``unsure`` pair from its pixels (two (H, W) uint8 gray images): is one photo
    a mild crop (up to ``LOOK_MARGIN`` off each side) of the other, possibly straightened by
    up to 4 degrees? See :func:`look_at`."""
    return look_at(LookPhoto(gray_a), LookPhoto(gray_b), rotation, derived)


def look_at(photo_a: LookPhoto, photo_b: LookPhoto, rotation: int = 0, derived: int = 0) -> Look:
    """:func:`second_look` of two prepared photos.

    The crop's 16x16 code is fixed; the window of the other photo that best matches it is
    found by coordinate ascent over its four sides (and, if that fails, at the angles of
    ``LOOK_ANGLES`` ranked by their coarse stage at half the scale, inside the part that holds
    no blank corner). ``rotation`` and
    ``derived`` are the verdict's: A ~ ``np.rot90(B, rotation)``; 1: look for B inside A only,
    -1: A inside B only, 0: both. Angles are tried only when the unturned window is not far
    off (a straightened copy is within ``_LOOK_TURN`` bits of it)."""
    a, b = photo_a.content, photo_b.turned(rotation)
    best = Look(False, 1 << 30, 0.0, (0.0, 1.0, 0.0, 1.0), True)
    # Both directions unturned first: when the pair's second photo is the crop, the first
    # direction is far off and its angle search was wasted (on the peer library 49 of the
    # 75 accepted looks turned eight times before the other direction fitted at once).
    unturned: list[tuple[LookPhoto, int, np.ndarray, bool, int]] = []
    for big_photo, turn, big, small_photo, small_turn, small, inside in (
            (photo_a, 0, a, photo_b, rotation, b, True), (photo_b, rotation, b, photo_a, 0, a, False)):
        if big.size == 0 or small.size == 0 or (derived == 1 and not inside) or (derived == -1 and inside):
            continue
        small_c = small_photo.code(small_turn)
        d, win = _register(big, small_c, LOOK_MARGIN, 0.0, _GIVE_UP, big_photo._key(turn))
        unturned.append((big_photo, turn, small_c, inside, d))
        if d < best.distance:
            best = Look(d <= T_LOOK, d, 0.0, win, inside)
    if best.distance <= T_LOOK // 2:
        return best
    # The angles: the coarse stage of every (direction, angle) on the photo at half the
    # look's scale (a quarter of the pixels to turn and to read), then the whole registration
    # at the look's scale only where that coarse window came closest (_FINISHED) and close
    # enough to end within T_LOOK (_FINISH_WITHIN). The half-scale coarse distances rank the
    # angles as the full ones do (correlation 0.99 over the peer library's looks), and the
    # wrong angles of a straightened copy, like every angle of a negative, never come close.
    coarse: list[tuple[int, LookPhoto, int, float, np.ndarray, bool]] = []
    for big_photo, turn, small_c, inside, straight in unturned:
        if straight > _LOOK_TURN:
            continue
        # (a sliver of a photo, under 32 pixels across, is ranked at its own scale: halved, it
        # would hold fewer pixels a side than the code has coefficients)
        half = min(big_photo.content.shape) >= 2 * _NF
        for angle in LOOK_ANGLES:
            turned, lo = _turned_window(big_photo, turn, angle, half=half)
            d, _ = _register(turned, small_c, _ANGLE_MARGIN, lo, None,
                             big_photo._key(turn, angle, half=half), steps=_COARSE)
            if d <= _FINISH_WITHIN:
                coarse.append((d, big_photo, turn, angle, small_c, inside))
    # (a stable sort: of equal distances, the first tried comes first)
    for _, big_photo, turn, angle, small_c, inside in sorted(coarse, key=lambda c: c[0])[:_FINISHED]:
        turned, lo = _turned_window(big_photo, turn, angle)
        d, win = _register(turned, small_c, _ANGLE_MARGIN, lo, _GIVE_UP, big_photo._key(turn, angle))
        if d < best.distance:
            best = Look(d <= T_LOOK, d, angle, win, inside)
        if best.distance <= T_LOOK // 2:
            return best
    # half a degree either side of the best angle found, in its direction, when that may
    # bring it within T_LOOK
    if best.angle and best.distance <= _REFINE_WITHIN:
        big_photo, turn, small_c, inside, _ = next(u for u in unturned if u[3] == best.b_inside_a)
        for angle in (best.angle - 0.5, best.angle + 0.5):
            turned, lo = _turned_window(big_photo, turn, angle)
            d, win = _register(turned, small_c, _ANGLE_MARGIN, lo, _GIVE_UP, big_photo._key(turn, angle))
            if d < best.distance:  # the angle half a degree on was the best one: done
                best = Look(d <= T_LOOK, d, angle, win, inside)
                break
    return best


def _turned_window(photo: LookPhoto, turn: int, angle: float, half: bool = False) -> tuple[np.ndarray, float]:
    """``photo`` turned and rotated by ``angle`` (:meth:`LookPhoto.rotated`), and how far
    inside each side its blank corners reach (the registration's windows start there)."""
    turned = photo.rotated(turn, angle, half)
    t = np.radians(abs(angle))
    hb, wb = turned.shape
    lo = 0.5 * (1 - min(wb / (wb * np.cos(t) + hb * np.sin(t)), hb / (wb * np.sin(t) + hb * np.cos(t))))
    return turned, float(lo)


@functools.lru_cache(maxsize=128)
def _whole_basis(n_px: int) -> np.ndarray:
    """:func:`~lumina_plugin.hashing.borders.basis` of a whole side of ``n_px`` pixels (the
    crop's code), kept for the photos of one size (read-only)."""
    out = basis(np, n_px, 0, n_px, _NF)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=128)
def _pixel_lines(n_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, i + 1, i + 0.5) for the n_px pixels of a side, as float64 (read-only)."""
    i = np.arange(n_px, dtype=np.float64)
    out = (i, i + 1, i + 0.5)
    for x in out:
        x.flags.writeable = False
    return out


def _look_basis(n_px: int, a: float, b: float) -> np.ndarray:
    """:func:`~lumina_plugin.hashing.borders.basis` with ``nf = 16``, its rows by the Chebyshev
    recurrence ``cos((u+1)x) = 2 cos(x) cos(ux) - cos((u-1)x)``: one cosine per pixel instead
    of sixteen, for the thousands of windows a registration tries (equal to ``basis`` within
    1e-14; the stored codes keep ``basis`` itself). Read-only: it is kept for later calls."""
    out = _BASES.get((n_px, a, b))
    if out is not None:
        return out
    i, i1, ih = _pixel_lines(n_px)
    span = b - a
    overlap = np.minimum(i1, b)
    np.subtract(overlap, np.maximum(i, a), out=overlap)
    np.maximum(overlap, 0.0, out=overlap)  # and never above 1: min(i + 1, b) - max(i, a) <= 1
    overlap /= span
    x = np.subtract(ih, a)
    x /= span
    np.maximum(x, 0.0, out=x)  # np.clip(x, 0, 1), in two calls for less (no NaN or -0.0 here)
    np.minimum(x, 1.0, out=x)
    x *= np.pi
    c1 = np.cos(x, out=x)
    out = np.empty((_NF, n_px))
    out[0], out[1] = 1.0, c1
    twice = 2.0 * c1
    for u in range(2, _NF):
        row = out[u]
        np.multiply(twice, out[u - 1], out=row)
        np.subtract(row, out[u - 2], out=row)
    out *= overlap
    return _BASES.put((n_px, a, b), out)


def _register(big: np.ndarray, small_c: np.ndarray, margin: float, lo: float,
              give_up: int | None = None, key: Hashable | None = None,
              steps: tuple[float, ...] = _STEPS) -> tuple[int, tuple[float, float, float, float]]:
    """Coordinate ascent of the cosine similarity between ``small_c`` (16x16 coefficients of
    the crop) and a window of ``big`` whose sides each lie ``lo``..``lo + margin`` inside.
    Moving a top or bottom side needs only ``big @ x_basis.T``, a left or right side only
    ``y_basis @ big``: one small product per trial, a large one per side the trials read.
    With ``give_up``, a window still further off than that after the coarse stage is
    returned as it is (a negative costs a third of the work).

    ``key`` names ``big``'s pixels (:meth:`LookPhoto._key`): the large products and the
    windows' coefficients are kept under it, for the ascent, which tries many windows again
    (the side it just left, the sides after the last move when a pass ends), and for the
    next registrations of the same pixels (a photo inside several unsure pairs). Each number
    is computed as the plain ascent computes it (the same products of the same operands), so
    kept or not, every comparison and so the verdict are the same.

    ``steps``: the ascent's step sizes, largest first; ``_COARSE`` is its coarse stage alone
    (a look ranks its angles by that stage's distance)."""
    h, w = big.shape
    if key is None:
        key = next(_serial)  # nothing to share: a key no other registration has
    pixels: list[np.ndarray] = []  # big as float64 (a kept rotation is float32), made once
    # The coefficients but the DC term, flat: element 0 of a C-ordered 16x16 is the DC.
    want = small_c.ravel()[1:]
    target = want / (math.sqrt(want.dot(want)) + 1e-12)
    signs = want > 0
    p = [lo + margin / 2, 1 - lo - margin / 2, lo + margin / 2, 1 - lo - margin / 2]  # top, bottom, left, right
    low, high = lo - 1e-9, lo + margin + 1e-9

    def window(vertical: bool, ny: _Side, nx: _Side) -> np.ndarray:
        """The coefficients of the window with sides ``ny`` and ``nx``, as the trial of a top or
        bottom side reads them (``vertical``: ``y_basis @ (big @ x_basis.T)``) or of a left or
        right one (``(y_basis @ big) @ x_basis.T``): the two round differently, so each is
        kept apart."""
        c = _COEFFICIENTS.get((key, vertical, ny, nx))
        if c is not None:
            return c
        fixed = nx if vertical else ny
        m = _PRODUCTS.get((key, vertical, fixed))
        if m is None:
            if not pixels:
                pixels.append(np.asarray(big, dtype=np.float64))
            m = pixels[0] @ _look_basis(*fixed).T if vertical else _look_basis(*fixed) @ pixels[0]
            _PRODUCTS.put((key, vertical, fixed), m)
        c = _look_basis(*ny) @ m if vertical else m @ _look_basis(*nx).T
        return _COEFFICIENTS.put((key, vertical, ny, nx), c)

    def score(c: np.ndarray) -> float:
        v = c.ravel()[1:]
        return float(v.dot(target) / (math.sqrt(v.dot(v)) + 1e-12))

    def distance() -> int:
        return int((window(True, y, x).ravel()[1:] > 0).__ne__(signs).sum())

    y, x = (h, p[0] * h, p[1] * h), (w, p[2] * w, p[3] * w)
    best = score(window(True, y, x))
    for step in steps:
        moved = True
        while moved:
            moved = False
            for i in range(4):
                vertical = i < 2
                for sign in (-1, 1):
                    q = list(p)
                    q[i] += sign * step
                    inset = q[i] if i in (0, 2) else 1 - q[i]
                    if not low <= inset <= high:
                        continue
                    ny, nx = ((h, q[0] * h, q[1] * h), x) if vertical else (y, (w, q[2] * w, q[3] * w))
                    sc = score(window(vertical, ny, nx))
                    if sc > best + 1e-9:
                        best, p, moved, y, x = sc, q, True, ny, nx
        if give_up is not None and step == _STEPS[0] and distance() > give_up:
            break
    return distance(), (p[0], p[1], p[2], p[3])
