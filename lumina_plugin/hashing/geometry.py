"""Codes that survive a turn, a border or a crop: rotated, letterboxed, captioned and
aspect-cropped copies from ONE decoded gray image (issue 17).

Why DCT signs at zero: the cosine transform of a picture turned by a quarter turn holds the
same coefficients, transposed, every odd row negated (``c'[u, v] = (-1)**u * c[v, u]`` for
``np.rot90``). So the SIGNS of the coefficients (thresholded at 0, not at a median, which
the turn would not preserve) of every rotation are a fixed bit permutation and XOR of one
stored code: :func:`rotate_code`. A mirror is another permutation (``(-1)**v``), which is
never applied, so a mirror image or an upside-down flip stays a different picture.

Why projections and not a resized thumbnail: each coefficient is the image projected on
``cos(pi*u*t)`` over a region, in continuous coordinates (``t`` in [0, 1] across the
region, pixels weighted by their overlap with it). Any box, at any fraction of a pixel, of
a small working image then gives its coefficients by two small matrix products; a turned
image gives exactly the permuted coefficients; a copy at another resolution gives nearly
the same ones.

Per photo, ``GEO_WORDS`` = 8 uint64 words (the index stores them beside the four hashes):

- words 0-3 ``full``: the signs of the 16x16 low coefficients (DC excluded from every
  distance) of the content box: the picture inside bars, frames and caption bands
  (hashing/borders.py). 256 bits, like PDQ: the verifier of turned and bordered copies.
- word 4 ``centre``: 8x8 signs of the centred region at ``CENTRE_SCALE`` of the content:
  a copy cropped a few percent on each side meets it with its own 8x8 code.
- word 5 ``wide``: 8x8 signs of the centred 16:9 (9:16 for a portrait) region of the content.
- word 6 ``square``: 8x8 signs of the centred square region of the content.
- word 7 ``meta``: what was trimmed on each side, in 1/256 of that dimension (bits 24-31
  top, 16-23 bottom, 8-15 left, 0-7 right), the content's aspect ratio (bits 32-47:
  ``round(log2(w / h) * 4096) + 32768``) and ``GEO_VERSION`` (bits 48-63).

A code's bit ``u*n + v`` (MSB first, row-major) is the sign of coefficient (u, v).

Search and decision: :func:`search_keys` gives four rotation-free 64-bit keys per photo
(full, centre, wide, square) to join at ``KEY_RADIUS`` (column 0 with itself and with the
others); :func:`verify_pairs` decides the candidates over the four turns, never a mirror,
and flags the mild crops and straightened copies it cannot settle from codes as ``unsure``
for :func:`second_look` (hashing/look.py), which registers one photo's pixels inside the
other's.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import numpy as np

from . import bitmatrix as bm
from .borders import CENTRE_SCALE, WIDE, WORK_LONG, coefficients, content_box, regions, working_image
from .code_words import (
    CENTRE,
    FLIP8,
    FLIP16,
    FULL,
    GEO_VERSION,
    GEO_WORDS,
    META,
    PERM8,
    PERM16,
    SQUARE_W,
    WIDE_W,
    mask_word,
    pack_bits,
    unpack_bits,
)
from .look import Look, second_look

__all__ = ["GEO_WORDS", "KEY_COLUMNS", "KEY_RADIUS", "CENTRE_SCALE", "WIDE", "WORK_LONG", "Look", "Verdicts",
           "border_fraction", "coefficients", "describe", "geometry_codes", "geometry_codes_batch", "meta_fields",
           "regions", "rotate_code", "search_keys", "second_look", "verify_pairs", "working_image"]


def _meta(box: tuple[int, int, int, int], h: int, w: int) -> int:
    t, b, lf, r = box
    sides = (t / h, (h - b) / h, lf / w, (w - r) / w)
    q = [min(255, round(s * 256)) for s in sides]
    aspect = min(max(round(np.log2((r - lf) / (b - t)) * 4096) + 32768, 0), 65535)  # (np.clip: 5 us)
    return q[0] << 24 | q[1] << 16 | q[2] << 8 | q[3] | aspect << 32 | GEO_VERSION << 48


def codes_from_coefficients(xp: Any, coeffs: Any) -> Any:
    """(N, 4, 16, 16) coefficients of the four regions -> (N, 7) uint64 code words."""
    n = coeffs.shape[0]
    full = pack_bits(xp, (coeffs[:, 0] > 0).reshape(n, 256))
    small = pack_bits(xp, (coeffs[:, 1:, :8, :8] > 0).reshape(n, 3, 64))[..., 0]
    return xp.concatenate([full, small], axis=1)


def geometry_codes(gray: np.ndarray) -> np.ndarray:
    """The ``GEO_WORDS`` uint64 words of one upright (EXIF orientation applied) gray image."""
    img = working_image(gray)
    h, w = img.shape
    box = content_box(np, img)
    coeffs = coefficients(np, img, regions(tuple(float(x) for x in box)))  # type: ignore[arg-type]
    words = np.empty(GEO_WORDS, np.uint64)
    # codes_from_coefficients' bits, packed in one call (its stack of one: 30 us of calls)
    words[:META] = pack_bits(np, np.concatenate([(coeffs[0] > 0).reshape(256), (coeffs[1:, :8, :8] > 0).reshape(192)]))
    words[META] = np.uint64(_meta(box, h, w))
    return words


def geometry_codes_batch(grays: list[np.ndarray]) -> np.ndarray:
    """(N, GEO_WORDS) words of N gray images."""
    out = np.zeros((len(grays), GEO_WORDS), np.uint64)
    for i, g in enumerate(grays):
        out[i] = geometry_codes(g)
    return out


# ---------------------------------------------------------------- rotations


def turns(words: Any, xp: Any = np) -> Any:
    """(4, ..., GEO_WORDS): the words of the picture turned k = 0, 1, 2, 3 quarter turns
    (:func:`rotate_code`), the bits unpacked, permuted and packed once for all four."""
    words = xp.asarray(words, dtype=xp.uint64)
    lead = words.shape[:-1]
    full = unpack_bits(xp, words[..., FULL:CENTRE])                      # (..., 256)
    full = xp.take(full, xp.asarray(PERM16.reshape(-1)), axis=-1).reshape(*lead, 4, 256) ^ xp.asarray(FLIP16)
    small = unpack_bits(xp, words[..., CENTRE:META, None])               # (..., 3, 64)
    small = xp.take(small, xp.asarray(PERM8.reshape(-1)), axis=-1).reshape(*lead, 3, 4, 64) ^ xp.asarray(FLIP8)
    small = xp.moveaxis(small, -2, -3)                                    # (..., 4, 3, 64)
    meta = words[..., META]
    sides = [(meta >> xp.uint64(s)) & xp.uint64(255) for s in (24, 16, 8, 0)]  # top, bottom, left, right
    aspect = (meta >> xp.uint64(32)) & xp.uint64(65535)
    metas = []
    for k in range(4):  # np.rot90: the right side becomes the top, the top the left
        top, bottom, left, right = sides
        turned_aspect = xp.uint64(65536) - aspect if k % 2 else aspect
        metas.append(top << xp.uint64(24) | bottom << xp.uint64(16) | left << xp.uint64(8) | right
                     | turned_aspect << xp.uint64(32) | (meta >> xp.uint64(48)) << xp.uint64(48))
        sides = [right, left, top, bottom]
    out = xp.concatenate([pack_bits(xp, full), pack_bits(xp, small)[..., 0], xp.stack(metas, axis=-1)[..., None]],
                         axis=-1)                                         # (..., 4, GEO_WORDS)
    out[..., 0, :] = words  # k = 0 is the words themselves (their meta's unused bits included)
    return xp.moveaxis(out, -2, 0)


def rotate_code(words: Any, k: int, xp: Any = np) -> Any:
    """The words of the picture turned ``k`` quarter turns counter-clockwise (``np.rot90``),
    from the words of the upright one: bit permutations and XORs, trims moved to their new
    sides, the aspect inverted for odd ``k``. Exact up to the working image's rounding.
    (One turn of :func:`turns`, which makes all four.)"""
    return turns(words, xp)[k % 4].copy()


# ---------------------------------------------------------------- search keys

#: Key columns of :func:`search_keys`: the content's own key, then the keys of its centre,
#: wide and square regions. Join column 0 with itself and with each other column.
KEY_COLUMNS: Final[tuple[str, ...]] = ("full", "centre", "wide", "square")
#: Self-join radius of the keys (MIH on 64-bit keys; radius 5 costs about as radius 4).
KEY_RADIUS: Final[int] = 5


def _low8(xp: Any, words: Any) -> Any:
    """The 8x8 code (64 bits) held in the top-left corner of the 16x16 ``full`` code: the top
    8 bits of each of its first 8 rows of 16 (row u in word u // 4, at bit (u % 4) * 16)."""
    out = xp.zeros(words.shape[:-1], dtype=xp.uint64)
    for u in range(8):
        row = (words[..., FULL + u // 4] >> xp.uint64(56 - (u % 4) * 16)) & xp.uint64(255)
        out |= row << xp.uint64(56 - 8 * u)
    return out


def _byte_tables(perm: np.ndarray) -> np.ndarray:
    """(8, 256) uint64: for each input byte (most significant first) and value, the bits it sets
    in the output of the permutation ``out_bit[i] = in_bit[perm[i]]`` (bit 0 most significant).
    A permutation of 64 bits is then 8 table look-ups and ORs: no (N, 64) arrays of bits."""
    table = np.zeros((8, 256), dtype=np.uint64)
    values = np.arange(256)
    for i, j in enumerate(np.asarray(perm).tolist()):
        byte, bit = divmod(j, 8)
        has = (values >> (7 - bit)) & 1
        table[byte, has == 1] |= np.uint64(1) << np.uint64(63 - i)
    return table


def _permute(xp: Any, codes: Any, table: Any) -> Any:
    out = xp.zeros(codes.shape, dtype=xp.uint64)
    for byte in range(8):
        out |= table[byte][((codes >> xp.uint64(56 - 8 * byte)) & xp.uint64(255)).astype(xp.intp)]
    return out


_TURN_TABLES: Final = [_byte_tables(PERM8[k]) for k in range(4)]
_TURN_FLIPS: Final = [mask_word(FLIP8[k]) for k in range(4)]
#: The canonical turn's two bits, (0, 1) and (1, 0): MSB-first bits 1 and 8.
_PICK: Final = np.uint64((1 << 62) | (1 << 55))


def _canonical8(xp: Any, codes: Any) -> Any:
    """The rotation-free form of 8x8 codes: the one of their four turns whose (0, 1) and
    (1, 0) bits are both set. Those two bits cycle (1,1) -> (1,0) -> (0,0) -> (0,1) under
    quarter turns, so exactly one turn qualifies; they are the strongest AC coefficients
    (the brightness gradients across and down the picture), so a copy almost always picks
    the same turn as its original. A mirror image picks some turn too, but its bits are
    another permutation: its key meets the original's only by chance."""
    codes = xp.asarray(codes, dtype=xp.uint64)
    out = codes.copy()
    for k in range(4):
        turned = _permute(xp, codes, xp.asarray(_TURN_TABLES[k])) ^ xp.uint64(_TURN_FLIPS[k])
        out = xp.where((turned & _PICK) == _PICK, turned, out)
    return out


def search_keys(words: Any, xp: Any = np) -> Any:
    """(N, 4) uint64 rotation-free keys in ``KEY_COLUMNS`` order.

    A copy's ``full`` key is within ``KEY_RADIUS`` of its original's ``full`` key when it is
    turned, bordered or recoloured, and of the original's ``wide`` / ``square`` key when it is
    a 16:9 or square crop (and of ``centre`` for some mild crops). A wide or square column
    equal to the full one (the photo already has that shape) finds nothing new: an engine
    may drop it. Bit permutations go through byte tables (8 look-ups a word): a million
    photos' keys in well under a second."""
    words = xp.asarray(words, dtype=xp.uint64).reshape(-1, GEO_WORDS)
    cols = [_low8(xp, words)] + [words[:, j] for j in (CENTRE, WIDE_W, SQUARE_W)]
    keys = _canonical8(xp, xp.stack(cols, axis=1))  # (elementwise: one pass over the four columns)
    return _permute(xp, keys, xp.asarray(_KEY_TABLE))


def _key_order() -> np.ndarray:
    """Key bit order: the three constant bits of a canonical code (DC, (0, 1), (1, 0)) moved
    to bits 15, 31 and 47, one in each block of a 3- or 4-block multi-index join, so no
    block loses more than one bit of spread."""
    constant = [0, 1, 8]
    rest = [i for i in range(64) if i not in constant]
    order = []
    for pos in range(64):
        order.append(constant.pop(0) if pos in (15, 31, 47) else rest.pop(0))
    return np.array(order)


_KEY_ORDER: Final[np.ndarray] = _key_order()
_KEY_TABLE: Final[np.ndarray] = _byte_tables(_KEY_ORDER)


# ---------------------------------------------------------------- verification

#: Most differing bits (of 255) between two ``full`` codes of one picture: turned, bordered,
#: recoloured, JPEG q25. Two shots of one scene (a stereo pair) differ in about 60.
T_FULL: Final[int] = 48
#: Most differing bits (of 63) between a 16:9 / square crop's 8x8 code and the same region
#: of its original (the region is exact: 0-3 bits measured).
T_SHAPE: Final[int] = 5
#: Most differing bits among the 35 of the 6x6 low corner (the part a shift of 2-4% leaves
#: alone) between one photo's full code and the other's full or centre code, for a pair to be
#: worth a second look (mild crops, straightened copies: at most 8 measured).
T_UNSURE: Final[int] = 8
_LOW6: Final[int] = sum(1 << (63 - (u * 8 + v)) for u in range(6) for v in range(6) if u or v)
_LOG_UNIT: Final[float] = 4096.0
#: Aspect agreement (log2 units of meta): full codes within 15%, shape crops within 3%,
#: a photo already of the shape (within 5%) has no distinct region; second looks within 20%.
_L_FULL, _L_SHAPE, _L_DISTINCT, _L_CROP = (round(np.log2(x) * _LOG_UNIT) for x in (1.15, 1.03, 1.05, 1.2))
_L_WIDE: Final[int] = round(np.log2(WIDE) * _LOG_UNIT)

#: Relation flags of :func:`verify_pairs`.
ROTATED, BORDERED, CROPPED_WIDE, CROPPED_SQUARE, CROPPED, STRAIGHTENED = 1, 2, 4, 8, 16, 32
#: The ``full`` code's bits that count in a distance (the DC sign is always set).
NO_DC_FULL: Final[np.ndarray] = np.array([0x7FFFFFFFFFFFFFFF] + [0xFFFFFFFFFFFFFFFF] * 3, dtype=np.uint64)
_NO_DC8 = np.uint64(0x7FFFFFFFFFFFFFFF)


class Verdicts(NamedTuple):
    """Per candidate pair (all arrays of length N).

    ok: a copy by its codes alone. unsure: not ok, but close enough that a second look at
    the pixels (:func:`second_look`) should decide (mild crops, straightened copies).
    rotation: k with A ~ ``np.rot90(B, k)``: B is A turned k*90 degrees clockwise.
    relation: ROTATED | BORDERED | CROPPED_* flags. distance: differing bits of the code that
    decided (of 255 for full codes, of 63 for shape crops, of 35 for unsure pairs).
    derived: 1 when B is the derived copy (bordered or cropped from A), -1 when A is, 0 when
    neither shows (for unsure pairs: which one looks like the crop, a hint for the second look)."""

    ok: np.ndarray
    unsure: np.ndarray
    rotation: np.ndarray
    relation: np.ndarray
    distance: np.ndarray
    derived: np.ndarray


def meta_fields(words: Any, xp: Any = np) -> tuple[Any, Any]:
    """(trims (N, 4) float: top, bottom, left, right as fractions; log2 aspect (N,) int)."""
    meta = xp.asarray(words, dtype=xp.uint64).reshape(-1, GEO_WORDS)[:, META]
    trims = xp.stack([((meta >> xp.uint64(s)) & xp.uint64(255)).astype(xp.float64) / 256 for s in (24, 16, 8, 0)], 1)
    aspect = ((meta >> xp.uint64(32)) & xp.uint64(65535)).astype(xp.int64) - 32768
    return trims, aspect


def border_fraction(words: Any, xp: Any = np) -> Any:
    """Fraction of each photo's canvas that is bars, frame or caption band (the keeper rule
    prefers the photo with none)."""
    trims, _ = meta_fields(words, xp)
    return _bordered(trims)


def _bordered(trims: Any) -> Any:
    return 1 - (1 - trims[:, 0] - trims[:, 1]) * (1 - trims[:, 2] - trims[:, 3])


def verify_pairs(words_a: Any, words_b: Any, xp: Any = np) -> Verdicts:
    """Decide candidate pairs (row i of ``words_a`` against row i of ``words_b``) over the
    four quarter turns of B, never its mirror images.

    A pair is a copy when, for some turn, the full codes agree within ``T_FULL`` and the
    content aspects within 15% (turned, bordered, recoloured copies), or one photo's full
    8x8 code meets the other's 16:9 or square region within ``T_SHAPE`` and its aspect is
    that shape (centred aspect crops). Halves and heavy crops fail the aspect or the code;
    mirror images fail the code (their bits are a permutation never tried).

    The turn that decides a copy is the one with the best rank (full matches by distance,
    then shape crops), the first of equals; an unsure pair keeps its closest turn. All four
    turns are decided together, on words (no unpacked bits): a batch's few hundred candidates
    cost the same few dozen array operations as one pair, and a long list goes through in
    blocks of ``_VERIFY_BLOCK`` pairs (the turns' words of a block stay in cache)."""
    a = xp.asarray(words_a, dtype=xp.uint64).reshape(-1, GEO_WORDS)
    b = xp.asarray(words_b, dtype=xp.uint64).reshape(-1, GEO_WORDS)
    if a.shape[0] <= _VERIFY_BLOCK:
        return _verify_block(a, b, xp)
    parts = [_verify_block(a[i:i + _VERIFY_BLOCK], b[i:i + _VERIFY_BLOCK], xp)
             for i in range(0, a.shape[0], _VERIFY_BLOCK)]
    return Verdicts(*(xp.concatenate(column) for column in zip(*parts, strict=True)))


#: Pairs decided together by :func:`verify_pairs` (the four turns' words: 350 bytes a pair).
_VERIFY_BLOCK: Final[int] = 4096


# The verdict's words side by side, 11 rows of N uint64 a turn, so that one XOR, one AND and one
# popcount give every distance a verdict reads: the four 8x8 blocks of the full codes (bitmatrix.py),
# then the 8x8 comparisons: A's wide and square regions against B's low corner, B's wide and square
# regions against A's low corner (the shape crops), the two low corners and each against the
# other's centre (the unsure pairs). A quarter turn of B transposes its blocks (the off-diagonal
# ones trading places) and its regions, a half turn only flips signs. Pairs run along the last
# axis: numpy's inner loops then span the batch, not 11 words.
_BLOCKS: Final[np.ndarray] = bm.memory_order(bm.BLOCKS16, CENTRE)
_ROWS: Final[np.ndarray] = bm.memory_order([*bm.BLOCKS16, *range(8 * CENTRE, 8 * META)], GEO_WORDS)
_SIDE: Final[int] = 11
_A_ROWS: Final = [0, 1, 2, 3, 5, 6, 0, 0, 0, 0, 4]   # of blocks 0-3, centre, wide, square
_B_ROWS: Final = [0, 1, 2, 3, 0, 0, 5, 6, 0, 4, 0]   # of blocks 0-3, centre, wide, square
_B_TURNED: Final = [0, 2, 1, 3, 4, 5, 6]             # what the transposes are made of (rows 7-13 then)
_B_PARITIES: Final = _B_ROWS + [7 + r for r in _B_ROWS]
_COUNTED = np.array([*NO_DC_FULL, *[_NO_DC8] * 4, *[np.uint64(_LOW6)] * 3], dtype=np.uint64)


def _side_flips() -> np.ndarray:
    """(2, 2, 11, 1): turn 2i + p's sign flips of B's side, where counted."""
    full = bm.gather_bytes(np, pack_bits(np, FLIP16), _BLOCKS)                    # (4 turns, 4 blocks)
    small = np.array(_TURN_FLIPS, dtype=np.uint64)
    side = np.concatenate([full, small[:, None].repeat(3, 1)], axis=1)[:, _B_ROWS]
    return (side & _COUNTED).reshape(2, 2, _SIDE, 1)


_FLIPS: Final[np.ndarray] = _side_flips()
_TURN_ORDER: Final[np.ndarray] = np.arange(4, dtype=np.int32).reshape(2, 2, 1)
_CHECKS: Final[np.ndarray] = np.arange(4, dtype=np.int32).reshape(4, 1)
_NONE: Final[int] = 1 << 24
#: meta's top, bottom, left and right trims and aspect.
_META_SHIFTS: Final[np.ndarray] = np.array([24, 16, 8, 0, 32], dtype=np.uint64)
_META_MASKS: Final[np.ndarray] = np.array([255, 255, 255, 255, 65535], dtype=np.uint64)
#: A border that changed by more than 2% of the canvas (|ta - tb| > 0.02 in 1/65536 units).
_BORDER_CHANGE: Final[int] = 1310


def _rows(xp: Any, words: Any) -> Any:
    """(N, GEO_WORDS) -> (7, N): the full code's four blocks, the centre, wide and square words."""
    return xp.ascontiguousarray(bm.gather_bytes(xp, words, xp.asarray(_ROWS)).T)


def _verify_block(a: Any, b: Any, xp: Any) -> Verdicts:
    n = a.shape[0]
    both = xp.concatenate([a, b])
    rows = _rows(xp, both)
    left, rows_b = rows[_A_ROWS, :n], rows[:, n:]
    right = xp.concatenate([rows_b, bm.transpose8(xp, rows_b[_B_TURNED])])[_B_PARITIES].reshape(2, _SIDE, n)
    right ^= left
    right &= xp.asarray(_COUNTED)[:, None]
    counts = xp.empty((2, 2, _SIDE, n), dtype=xp.uint8)                            # turn 2i + p
    right ^= xp.asarray(_FLIPS[0])
    xp.bitwise_count(right, out=counts[0])
    right ^= xp.asarray(_FLIPS[1] ^ _FLIPS[0])  # (in place: no (2, 2, 11, N) words)
    xp.bitwise_count(right, out=counts[1])
    fields = ((both[:, META, None] >> xp.asarray(_META_SHIFTS)) & xp.asarray(_META_MASKS)).astype(xp.int64)
    # 65536 x the content's share of the canvas (the same in every turn): _bordered's fractions
    # are exact multiples of 1/65536, so these integers decide exactly as they do
    inside = (256 - fields[:, 0] - fields[:, 1]) * (256 - fields[:, 2] - fields[:, 3])
    ia, ib = inside[:n], inside[n:]
    la, lb0 = fields[:n, 4] - 32768, fields[n:, 4] - 32768
    lb = xp.stack([lb0, ((32768 - lb0) & 65535) - 32768])                          # (2, N): by turn parity
    # full codes, then the shape crops' four checks (x: the photo whose region is matched)
    d_full = counts[:, :, :4].sum(axis=2, dtype=xp.int32)
    full_ok = (d_full <= T_FULL) & (xp.abs(la - lb) <= _L_FULL)
    wide_a, wide_b = xp.where(la >= 0, _L_WIDE, -_L_WIDE), xp.where(lb >= 0, _L_WIDE, -_L_WIDE)
    aspects = xp.stack([(xp.abs(lb - wide_a) <= _L_SHAPE) & (xp.abs(la - wide_a) > _L_DISTINCT),
                        (xp.abs(lb) <= _L_SHAPE) & (xp.abs(la) > _L_DISTINCT),
                        (xp.abs(la - wide_b) <= _L_SHAPE) & (xp.abs(lb - wide_b) > _L_DISTINCT),
                        (xp.abs(la) <= _L_SHAPE) & (xp.abs(lb) > _L_DISTINCT)], axis=1)  # (2, 4, N)
    d_shape = counts[:, :, 4:8]
    # per turn, the first of the closest checks; over the turns, full matches by distance, then
    # shape crops by distance, the first turn of equals: one minimum of keys packing the rank
    # (bits 4 and up: the distance, shape crops 1000 up), the turn (bits 2-3) and the check
    check = xp.where((d_shape <= T_SHAPE) & aspects, d_shape.astype(xp.int32) * 16 + xp.asarray(_CHECKS),
                     _NONE).min(axis=2)
    key = xp.where(full_ok, d_full * 16, 16000 + check) + 4 * xp.asarray(_TURN_ORDER)
    m = key.reshape(4, n).min(axis=0)
    ok = m < _NONE
    best, idx, full = (m >> 2) & 3, m & 3, m < 16000
    d_near = counts[:, :, 8:].min(axis=2)
    near_ok = (d_near <= T_UNSURE) & (xp.abs(la - lb) <= _L_CROP)
    near = (xp.where(near_ok, d_near.astype(xp.int32) * 4, _NONE) + xp.asarray(_TURN_ORDER)).reshape(4, n).min(axis=0)
    closest = near & 3
    unsure = (near < _NONE) & ~ok
    # an unsure pair's hint of which one looks like the crop, at its closest turn
    at = closest * (_SIDE * n) + xp.arange(n)
    a_in_b = xp.take(counts.reshape(-1), at + 9 * n).astype(xp.int32)
    b_in_a = xp.take(counts.reshape(-1), at + 10 * n).astype(xp.int32)
    hint = xp.where(b_in_a + 3 <= a_in_b, 1, xp.where(a_in_b + 3 <= b_in_a, -1, 0))
    bordered = xp.abs(ia - ib) > _BORDER_CHANGE
    rotation = xp.where(ok, best, xp.where(unsure, closest, 0)).astype(xp.int32)
    shape_rel = xp.where(idx & 1, CROPPED_SQUARE, CROPPED_WIDE)
    relation = (xp.where(ok, xp.where(full, xp.where(bordered, BORDERED, 0), shape_rel), xp.where(unsure, CROPPED, 0))
                | xp.where(rotation != 0, ROTATED, 0)).astype(xp.int64)
    distance = xp.where(ok, (m >> 4) - xp.where(full, 0, 1000), xp.where(unsure, near >> 2, 0)).astype(xp.int64)
    derived = xp.where(ok, xp.where(full, xp.where(bordered, xp.where(ib < ia, 1, -1), 0), xp.where(idx < 2, 1, -1)),
                       xp.where(unsure, hint, 0)).astype(xp.int64)
    return Verdicts(ok, unsure, rotation, relation, distance, derived)


def describe(rotation: int, relation: int, trims: tuple[float, float, float, float] | None = None) -> str:
    """Words for the reasons and the review: "rotated 90, letterboxed", "cropped to 16:9".
    ``trims``: the derived copy's (top, bottom, left, right) margins, to name the border."""
    parts = [f"rotated {90 * rotation}"] if relation & ROTATED else []
    if relation & BORDERED:
        kind = "bordered"
        if trims is not None:
            sides = [t > 0.01 for t in trims]
            kind = {(True, True, False, False): "letterboxed", (False, False, True, True): "pillarboxed",
                    (True, True, True, True): "framed", (True, False, False, False): "caption band",
                    (False, True, False, False): "caption band"}.get(tuple(sides), "bordered")  # type: ignore[arg-type]
        parts.append(kind)
    if relation & CROPPED_WIDE:
        parts.append("cropped to 16:9")
    if relation & CROPPED_SQUARE:
        parts.append("cropped square")
    if relation & STRAIGHTENED:
        parts.append("straightened")
    elif relation & CROPPED:
        parts.append("cropped")
    return ", ".join(parts) or "edited"
