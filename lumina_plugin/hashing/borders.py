"""The pixel side of the geometry codes (hashing/geometry.py): the small working image, the
box of the picture inside bars, frames and caption bands, the regions that are hashed, and
the bases of its 16x16 coefficients (the second look, hashing/look.py, registers with them).

Why trim: a letterboxed, pillarboxed, framed or captioned copy holds the original's pixels
inside a uniform margin. Hashing the whole canvas mixes the margin into every coefficient;
hashing the box inside the margins gives the original's code back. The margin itself is
never hashed or compared, so two different photos with the same band stay apart.

How a margin is found, per side, on the working image (long side 256-511 px): the median of
the two outermost lines sets its colour. A line is "clean" when ``CLEAN`` of its pixels are
within ``TOL`` grey levels of it, "margin-like" when ``LOOSE`` are (a line through caption
text). The margin is a run of margin-like lines from the edge that starts clean; it ends at
a clean line that is followed, within two lines, by a line with at most ``STEP`` of its
pixels in the margin colour: a margin ends in a step, a photo's own sky or shadow fades out,
so a plain photo keeps its edges (a false trim would differ between copies). Text stretches
longer than ``MAX_TEXT`` are the photo. Runs longer than ``MAX_SIDE`` of the dimension are
not margins; trims under ``MIN_SIDE`` are ignored. If the loose tolerance finds no step, a
strict one (``STRICT_TOL``) finds an exact bar beside a photo edge of nearly its colour (white
bars against a pale sky). A second pass inside the first box trims what the photo without
its bar would lose, so a bordered copy and its original get the same box.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import numpy as np
from PIL import Image

#: Grey levels (of 255) a margin pixel may stray from the margin's colour (JPEG q25 ringing).
TOL: Final[float] = 14.0
#: The tolerance of the second try: exact bars beside a photo edge of nearly their colour.
STRICT_TOL: Final[float] = 4.0
#: At most this fraction of the line just inside a margin may be within TOL of its colour:
#: a margin ends in a step, a photo's uniform sky or shadow fades out.
STEP: Final[float] = 0.6
#: Fraction of a line within TOL for it to look like margin (a line through caption text:
#: bold text covers up to about half of it).
LOOSE: Final[float] = 0.3
#: Tallest stretch of text lines inside a band, as a fraction of the dimension.
MAX_TEXT: Final[float] = 0.08
#: Fraction within TOL for a clean margin line (the band's outer and inner edges).
CLEAN: Final[float] = 0.97
#: Largest margin on one side, as a fraction of that dimension.
MAX_SIDE: Final[float] = 0.34
#: Smallest margin kept, as a fraction of that dimension.
MIN_SIDE: Final[float] = 0.01


def _side_at(frac: list[float], limit: int, length: int) -> int:
    """Margin depth with one tolerance, or 0 when no margin with a clear inner edge is found.
    ``frac``: the fraction of each of the side's first ``limit + 3`` lines (0 the outermost)
    within the tolerance of the margin's colour; ``length``: the lines of that dimension.
    Plain Python on a short list (about 180 numbers at most for a working image): cheaper
    than the dozen tiny array calls the same steps take in NumPy."""
    if not frac[0] >= CLEAN:  # a margin starts with a clean line
        return 0
    # A margin ends in a step: with none among the lines that can follow an inner edge
    # (1 to limit + 1, all that the walk below reads), there is no margin.
    if not min(frac[1:limit + 2]) <= STEP:
        return 0
    # margin-like lines from the edge, up to the first line that is not (at most limit + 1)
    run = next((i for i, f in enumerate(frac[:limit + 1]) if f < LOOSE), limit + 1)
    cleans = [i for i, f in enumerate(frac[:run]) if f >= CLEAN]
    # A text line is at most MAX_TEXT of the dimension: a longer stretch without a clean
    # line is the photo, so the band ends at the clean line before it.
    gap = max(2, int(MAX_TEXT * length))
    end = next((j + 1 for j, (c, d) in enumerate(zip(cleans, cleans[1:])) if d - c > gap), len(cleans))
    # The inner edge: the band's last clean line, then the photo within two lines. Walking
    # back from the deepest candidate finds the band when the photo goes on in a colour
    # close to it; a soft edge everywhere (a sky that fades) is no band.
    step = [f <= STEP for f in frac]
    for c in reversed(cleans[:end]):
        if c < limit and (step[c + 1] or step[c + 2]):
            return c + 1
    return 0


def _fractions(xp: Any, away: Any, tol: float, axis: int, m: int) -> list[float]:
    """Per line, the fraction of its ``m`` pixels within ``tol`` (``away``: distances from
    the margin's colour, lines along ``axis``): the float64 that ``.mean()`` of the line's
    booleans gives (an exact count over ``m``). The booleans are summed as bytes."""
    near = (away <= tol).view(xp.uint8)
    return (near.sum(axis=axis, dtype=xp.uint16 if m < 65536 else xp.int64) / m).tolist()


def _sides(xp: Any, img: Any, axis: int) -> tuple[int, int]:
    """Margin depths (in lines) of the two sides of ``img`` across ``axis``: top and bottom
    (``axis`` 0, lines are rows) or left and right (1, lines are columns). A loose tolerance
    first (JPEG ringing, text); a strict one finds an exact bar beside a photo edge of nearly
    its colour (white bars against a pale sky).

    Both sides at once where it pays: their colours come from one sort, by np.median's
    own rule (the mean of the two middle values, NaN when any value is NaN), so they are
    np.median's floats exactly; their outermost lines are tested in one comparison."""
    n_lines, m = img.shape[axis], img.shape[1 - axis]
    limit = int(MAX_SIDE * n_lines)
    if limit < 2 or m == 0:
        return 0, 0
    # the two outermost lines of each side, (2, 2m): lines 0, 1 and lines -1, -2
    edges = img.take([0, 1, -1, -2], axis=axis)
    edges = (edges if axis == 0 else edges.T).reshape(2, 2 * m)
    ordered = xp.sort(edges, axis=1)  # NaNs sort last
    lo, hi = ordered[:, m - 1], ordered[:, m]
    if lo.dtype.kind == "f" and lo.dtype.itemsize >= 4:
        ref = (lo + hi) / 2  # np.mean's float of the two (an exact halving), without its overhead
    else:
        ref = ordered[:, m - 1:m + 1].mean(axis=1)  # its float64 (integers), float32 (float16) sums
    # Most photos have no margin: their outermost line is not clean, which one line shows
    # (the test of the depth below on line 0 alone). Not clean at TOL is not clean at the
    # stricter STRICT_TOL either, so neither tolerance reads further. np.median's colour is
    # NaN when a NaN is among the two lines: near no pixel, no margin.
    outer = edges[:, :m] - ref[:, None]
    xp.abs(outer, out=outer)
    starts = ((outer <= TOL).sum(axis=1) / m >= CLEAN) & ~xp.isnan(ordered[:, -1])
    depths = [0, 0]
    for s in xp.flatnonzero(starts).tolist():
        k = limit + 3  # the side's first k lines, line 0 the outermost, as rows or columns
        if axis == 0:
            block = img[:k] if s == 0 else img[:-k - 1:-1]
        else:
            block = img[:, :k] if s == 0 else img[:, :-k - 1:-1]
        away = block - ref[s]
        xp.abs(away, out=away)
        depths[s] = _side_at(_fractions(xp, away, TOL, 1 - axis, m), limit, n_lines)
        # the strict tolerance where its own line 0 is clean (elsewhere _side_at gives 0)
        if not depths[s] and int(xp.count_nonzero(outer[s] <= STRICT_TOL)) / m >= CLEAN:
            depths[s] = _side_at(_fractions(xp, away, STRICT_TOL, 1 - axis, m), limit, n_lines)
    return depths[0], depths[1]


def _box_once(xp: Any, img: Any) -> tuple[int, int, int, int]:
    h, w = img.shape
    top, bottom = _sides(xp, img, 0)
    left, right = _sides(xp, img, 1)
    top, bottom = (t if t >= MIN_SIDE * h else 0 for t in (top, bottom))
    left, right = (t if t >= MIN_SIDE * w else 0 for t in (left, right))
    return top, h - bottom, left, w - right


def content_box(xp: Any, img: Any) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the content inside the margins of a (H, W) float image,
    in its pixels (bottom and right exclusive). The whole image when no margin is found.

    Two passes: a bar next to a photo's own uniform edge (a black bar beside a night sky)
    stops at the photo; the second pass then trims what the same photo without the bar
    would lose, so a bordered copy and its original get the same box."""
    h, w = img.shape
    t, b, lf, r = _box_once(xp, img)
    if (t, b, lf, r) != (0, h, 0, w) and b - t > 8 and r - lf > 8:
        t2, b2, l2, r2 = _box_once(xp, img[t:b, lf:r])
        t, b, lf, r = t + t2, t + b2, lf + l2, lf + r2
    if b - t < h // 3 or r - lf < w // 3:
        return 0, h, 0, w  # mostly margin: a blank or graphic image, not a framed photo
    return t, b, lf, r


# ---------------------------------------------------------------- the working image and its regions

#: The working image's long side is reduced (integer box filter) to at least this.
WORK_LONG: Final[int] = 256
#: Scale (of width and height) of the centred region of word 4: a crop of 2-8% off each side
#: keeps 84-96% of each dimension.
CENTRE_SCALE: Final[float] = 0.9
WIDE: Final[float] = 16 / 9
_NF: Final[int] = 16


def working_image(gray: np.ndarray) -> np.ndarray:
    """The (H, W) uint8 image box-reduced by an integer factor to a long side of
    ``WORK_LONG``..``2*WORK_LONG - 1`` (smaller images as they are), as float32.

    Pillow's ``reduce`` averages whole blocks in C: about 2 ms for 12 MP, where the
    hashes' LANCZOS pass over the same pixels costs tens of ms."""
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 gray image, got {gray.dtype} {gray.shape}")
    factor = max(1, max(gray.shape) // WORK_LONG)
    if factor > 1:
        gray = np.asarray(Image.fromarray(gray).reduce(factor))
    return gray.astype(np.float32)


def basis(xp: Any, n_px: int, a: float, b: float, nf: int) -> Any:
    """(nf, n_px): ``cos(pi*u*t)`` at pixel centres, ``t`` across [a, b), each pixel weighted
    by its overlap with [a, b) and the whole divided by the region's length (so a
    coefficient is a mean, the same at any resolution)."""
    i = xp.arange(n_px, dtype=xp.float64)
    overlap = xp.clip(xp.minimum(i + 1, b) - xp.maximum(i, a), 0.0, 1.0)
    t = xp.clip((i + 0.5 - a) / (b - a), 0.0, 1.0)
    u = xp.arange(nf, dtype=xp.float64)[:, None]
    return xp.cos(np.pi * u * t[None, :]) * (overlap / (b - a))[None, :]


@functools.lru_cache(maxsize=512)  # 16 x 511 float64 at most (64 KB) an entry; tiles of many sizes
def _host_basis(n_px: int, a: float, b: float, nf: int) -> np.ndarray:
    out = basis(np, n_px, a, b, nf)
    out.flags.writeable = False
    return out


def _basis_of(xp: Any, n_px: int, a: float, b: float, nf: int) -> Any:
    """:func:`basis`, kept on the host for the regions that come up again: photos of one
    camera (one size, no margin) share every region, so their bases are computed once."""
    return _host_basis(n_px, float(a), float(b), nf) if xp is np else basis(xp, n_px, a, b, nf)


def _centred(box: tuple[float, float, float, float], sx: float, sy: float) -> tuple[float, float, float, float]:
    t, b, lf, r = box
    cy, cx, hh, hw = (t + b) / 2, (lf + r) / 2, (b - t) * sy / 2, (r - lf) * sx / 2
    return cy - hh, cy + hh, cx - hw, cx + hw


def _aspect_region(box: tuple[float, float, float, float], aspect: float) -> tuple[float, float, float, float]:
    """The largest centred region of ``aspect`` (long side over short side, in the box's own
    orientation: landscape boxes get a landscape region)."""
    t, b, lf, r = box
    h, w = b - t, r - lf
    target = aspect if w >= h else 1 / aspect
    if w / h > target:
        return _centred(box, h * target / w, 1.0)
    return _centred(box, 1.0, w / target / h)


def regions(box: tuple[float, float, float, float]) -> list[tuple[float, float, float, float]]:
    """(top, bottom, left, right) of the full, centre, wide and square regions of a content box.
    A square box has no orientation for its wide region (a quarter turn would flip it):
    there it is the whole box (a 16:9 crop of a square removes 44%: no copy anyway)."""
    t, b, lf, r = box
    square = abs((r - lf) / (b - t) - 1) < 0.02
    wide = box if square else _aspect_region(box, WIDE)
    return [box, _centred(box, CENTRE_SCALE, CENTRE_SCALE), wide, _aspect_region(box, 1.0)]


def coefficients(xp: Any, img: Any, boxes: list[tuple[float, float, float, float]], nf: int = _NF) -> Any:
    """(len(boxes), nf, nf) DCT-II coefficients (continuous form) of regions of one image:
    one product with every region's row basis stacked, then a small one per region."""
    img = xp.asarray(img, dtype=xp.float64)
    h, w = img.shape
    rows = xp.concatenate([_basis_of(xp, h, t, b, nf) for t, b, _, _ in boxes]) @ img
    return xp.stack([rows[i * nf:(i + 1) * nf] @ _basis_of(xp, w, lf, r, nf).T for i, (_, _, lf, r) in enumerate(boxes)])
