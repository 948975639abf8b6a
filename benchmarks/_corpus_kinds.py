"""Every edit kind of the accuracy corpus: what it is, which bucket it scores in, and how its
parameters are drawn. ``accuracy_corpus.py`` applies them and writes the files.

A kind's ``make`` takes the upright original and a seeded RNG of its own (seeded by corpus seed,
original and kind, so adding a kind never changes another kind's files) and returns an ``Out``,
or ``None`` where the kind does not apply to that original (a 16:9 crop of a 16:9 photo).

Roles: ``copy`` files must be grouped with their original (and with the other copies of it);
``negative`` files must not be. Buckets follow issue 17: ``hard`` (rotations, bars and bands,
crops, straightened), ``colour`` (colour grades, compression, filters and their combinations)
and ``simple`` (the copies the product already claimed to find).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _corpus_edits as E  # beside this file (benchmarks/ is on sys.path: see accuracy_corpus.py)
import numpy as np
from PIL import Image

CAPTIONS = ("Summer holidays 2023", "Happy birthday Grandma!", "Throwback Thursday", "Lisbon, June 2022",
            "When the coffee kicks in", "Best day ever", "Our new home", "Weekend vibes")
WATERMARKS = ("\u00a9 J. Doe Photography", "@travel.snaps", "\u00a9 2023 M. Rossi", "sample \u00b7 do not copy")

#: Canvas aspects people pad photos to: 16:9 video frames, square and 4:5 posts, 9:16 stories.
CANVAS_ASPECTS = (21 / 9, 2.0, 16 / 9, 3 / 2, 4 / 3, 5 / 4, 1.0, 4 / 5, 2 / 3, 9 / 16)

#: A centred aspect crop is a copy when it keeps most of the picture; beyond this it is a heavy crop.
MAX_ASPECT_LOSS = 0.35


@dataclass
class Out:
    """One file to write: pixels plus how to encode them.

    ``exif``: "keep" (the original's EXIF, Orientation reset to 1, as an editor's export),
    "strip" (none, as social networks and web exports), or an int: keep it with that
    Orientation (the stored pixels are turned and the tag turns them back)."""

    image: Image.Image
    params: dict[str, Any] = field(default_factory=dict)
    fmt: str = "jpg"
    quality: int = 90
    exif: str | int = "keep"
    subsampling: int | None = None


Make = Callable[[Image.Image, np.random.Generator], "Out | None"]


@dataclass(frozen=True)
class Kind:
    """An edit kind: its role, its group (for the table) and bucket (for the summary rows)."""

    name: str
    role: str
    group: str
    description: str
    make: Make | None
    #: How a pair of this negative with a copy/original of its OWN source is scored: "false"
    #: (a mirror is a copy of nothing) or "ignore" (a shifted window or a same-edit file is a
    #: plausible crop or bordered copy of its own original; only its listed partner counts).
    vs_own_source: str = "false"

    @property
    def bucket(self) -> str | None:
        """hard / colour / simple for copies, None for negatives."""
        if self.role != "copy":
            return None
        return {"rotation": "hard", "bars": "hard", "crop": "hard", "straighten": "hard"}.get(self.group, self.group)


def _u(rng: np.random.Generator, lo: float, hi: float, nd: int = 3) -> float:
    return round(float(rng.uniform(lo, hi)), nd)


def _pick(rng: np.random.Generator, seq: tuple | list) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _bar_margins(size: tuple[int, int], direction: str, rng: np.random.Generator) -> tuple[float, tuple[int, int, int, int]]:
    """A realistic canvas aspect that gives ``direction`` bars of 3-25% each; else a drawn fraction."""
    w, h = size
    r = w / h
    ok = []
    for a in CANVAS_ASPECTS:
        if direction == "letterbox" and a < r:
            each = (1 - a / r) / 2
        elif direction == "pillarbox" and a > r:
            each = (1 - r / a) / 2
        else:
            continue
        if 0.03 <= each <= 0.25:
            ok.append(a)
    if ok:
        aspect = float(_pick(rng, ok))
    else:
        each = _u(rng, 0.06, 0.2)
        aspect = r * (1 - 2 * each) if direction == "letterbox" else r / (1 - 2 * each)
    return round(aspect, 4), E.bars_for_aspect(size, aspect)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(float(rng.uniform()), float(rng.uniform(0.45, 0.9)), float(rng.uniform(0.3, 0.9)))
    return round(r * 255), round(g * 255), round(b * 255)


def _bars(img: Image.Image, rng: np.random.Generator, direction: str, colour: tuple[int, int, int]) -> Out:
    aspect, m = _bar_margins(img.size, direction, rng)
    params = {"direction": direction, "canvas_aspect": aspect, "margins": list(m), "colour": list(colour)}
    return Out(E.pad(img, *m, colour), params)


def _crop4(rng: np.random.Generator, lo: float, hi: float) -> list[float]:
    return [_u(rng, lo, hi) for _ in range(4)]


def _aspect_crop(img: Image.Image, aspect: float) -> Out | None:
    loss = E.aspect_crop_loss(img.size, aspect)
    if not 0.05 <= loss <= MAX_ASPECT_LOSS:
        return None
    return Out(E.centre_aspect_crop(img, aspect), {"aspect": round(aspect, 4), "area_removed": round(loss, 3)})


def _rot(d: int) -> Make:
    return lambda img, rng: Out(E.rotate_cw(img, d), {"degrees_cw": d})


def _rot_resize(img: Image.Image, rng: np.random.Generator) -> Out:
    d, s = int(_pick(rng, (90, 270))), _u(rng, 0.55, 0.7)
    return Out(E.resize(E.rotate_cw(img, d), s), {"degrees_cw": d, "scale": s})


def _rot_exif(img: Image.Image, rng: np.random.Generator) -> Out:
    d, s = int(_pick(rng, (90, 180, 270))), _u(rng, 0.6, 0.8)
    return Out(E.rotate_cw(E.resize(img, s), d), {"stored_degrees_cw": d, "scale": s, "orientation": E.UNDO_ORIENTATION[d]},
               exif=E.UNDO_ORIENTATION[d])


def _exif_rotation(img: Image.Image, rng: np.random.Generator) -> Out:
    d = int(_pick(rng, (90, 270, 180)))
    return Out(E.rotate_cw(img, d), {"stored_degrees_cw": d, "orientation": E.UNDO_ORIENTATION[d]}, exif=E.UNDO_ORIENTATION[d])


def _frame(img: Image.Image, rng: np.random.Generator) -> Out:
    frac = _u(rng, 0.03, 0.06)
    colour = _pick(rng, [(255, 255, 255), (0, 0, 0), (240, 234, 220), _colour(rng)])
    px = max(2, round(max(img.size) * frac))
    return Out(E.pad(img, px, px, px, px, colour), {"fraction": frac, "px": px, "colour": list(colour)})


def _caption(img: Image.Image, rng: np.random.Generator) -> Out:
    frac, where, text = _u(rng, 0.06, 0.10), str(_pick(rng, ("top", "bottom"))), str(_pick(rng, CAPTIONS))
    band, ink = _pick(rng, [((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255))])
    return Out(E.caption_band(img, text, frac, where, band, ink),
               {"fraction": frac, "where": where, "text": text, "band": list(band), "ink": list(ink)})


def _crop_mild(img: Image.Image, rng: np.random.Generator) -> Out:
    f = _crop4(rng, 0.02, 0.08)
    return Out(E.crop_fractions(img, *f), {"left_top_right_bottom": f})


def _straighten(img: Image.Image, rng: np.random.Generator) -> Out:
    deg = round(_u(rng, 1.0, 4.0, 2) * float(_pick(rng, (-1, 1))), 2)
    return Out(E.straighten(img, deg), {"degrees_ccw": deg, "scale": round(E.straighten_scale(img.size, deg), 4)})


def _social(img: Image.Image, rng: np.random.Generator) -> Out:
    long_side = max(img.size)
    scale = 1080 / long_side if long_side > 1080 else 0.5
    return Out(E.resize(img.convert("RGB"), scale), {"scale": round(scale, 4), "quality": 70, "subsampling": "4:2:0"},
               quality=70, exif="strip", subsampling=2)


def _combo_grey(img: Image.Image, rng: np.random.Generator) -> Out:
    s = _u(rng, 0.5, 0.7)
    return Out(E.greyscale(E.resize(img, s)), {"scale": s, "quality": 50}, quality=50)


def _combo_letterbox(img: Image.Image, rng: np.random.Generator) -> Out:
    out = _bars(img, rng, "letterbox", (0, 0, 0))
    out.quality, out.params["quality"] = 70, 70
    return out


def _combo_crop_warmth(img: Image.Image, rng: np.random.Generator) -> Out:
    f, a = _crop4(rng, 0.02, 0.08), _u(rng, 0.08, 0.15)
    return Out(E.warmth(E.crop_fractions(img, *f), a), {"left_top_right_bottom": f, "warmth": a})


def _drawn(edit: Callable[[Image.Image, float], Image.Image], lo: float, hi: float, key: str = "factor") -> Make:
    """A kind that applies ``edit`` with one parameter drawn uniformly from [lo, hi]."""
    def make(img: Image.Image, rng: np.random.Generator) -> Out:
        value = _u(rng, lo, hi)
        return Out(edit(img, value), {key: value})
    return make


def _watermark(img: Image.Image, rng: np.random.Generator) -> Out:
    text, frac = str(_pick(rng, WATERMARKS)), _u(rng, 0.04, 0.07)
    opacity, corner = _u(rng, 0.5, 0.8), str(_pick(rng, ("br", "bl", "tr", "tl")))
    params = {"text": text, "fraction": frac, "opacity": opacity, "corner": corner}
    return Out(E.watermark(img, text, frac, opacity, corner), params)


def _mild(rng: np.random.Generator) -> float:
    return _u(rng, 0.8, 0.9) if rng.uniform() < 0.5 else _u(rng, 1.1, 1.25)


def _heavy_crop(img: Image.Image, rng: np.random.Generator) -> Out:
    removed = _u(rng, 0.40, 0.50)
    side = math.sqrt(1 - removed)
    corner = str(_pick(rng, ("tl", "tr", "bl", "br")))
    x = 0.0 if corner[1] == "l" else 1 - side
    y = 0.0 if corner[0] == "t" else 1 - side
    return Out(E.window(img, x, y, side, side), {"area_removed": removed, "corner": corner, "side": round(side, 4)})


def _half(img: Image.Image, rng: np.random.Generator) -> Out:
    which = str(_pick(rng, ("left", "top")))
    box = (0, 0, 0.5, 1) if which == "left" else (0, 0, 1, 0.5)
    return Out(E.window(img, *box), {"half": which})


def shifted_windows(img: Image.Image, rng: np.random.Generator) -> tuple[Out, Out]:
    """Two consecutive shots of one scene, the camera moved: windows 75% wide (90-96% high),
    the second 20-25% of the width to the right, each with its own small vertical offset.
    EXIF stripped: with camera and times the burst rule would keep them apart trivially; the
    hard case (issue 17) is consecutive shots without EXIF times."""
    ww, d = 0.75, _u(rng, 0.20, 0.25)
    x0 = _u(rng, 0.0, 1 - ww - d)
    outs = []
    for x in (x0, x0 + d):
        hh = _u(rng, 0.90, 0.96)
        y = _u(rng, 0.0, 1 - hh)
        outs.append(Out(E.window(img, x, y, ww, hh), {"x": round(x, 3), "y": y, "width": ww, "height": hh, "offset": d},
                        exif="strip"))
    return outs[0], outs[1]


def _k(name: str, role: str, group: str, description: str, make: Make | None, vs_own_source: str = "false") -> Kind:
    return Kind(name, role, group, description, make, vs_own_source)


KINDS: dict[str, Kind] = {k.name: k for k in (
    # ---- hard: rotations
    _k("rot90", "copy", "rotation", "pixels turned 90 degrees clockwise, Orientation 1", _rot(90)),
    _k("rot180", "copy", "rotation", "pixels turned 180 degrees, Orientation 1", _rot(180)),
    _k("rot270", "copy", "rotation", "pixels turned 270 degrees clockwise, Orientation 1", _rot(270)),
    _k("rot90_resize", "copy", "rotation", "pixels turned 90 or 270 degrees and resized 0.55-0.7x", _rot_resize),
    _k("rot_exif", "copy", "rotation",
       "resized 0.6-0.8x, pixels turned 90/180/270 with the EXIF Orientation that turns them back", _rot_exif),
    # ---- hard: bars, frames, bands
    _k("letterbox", "copy", "bars", "black bars top and bottom to a 4:5 / 1:1 / 9:16 / ... canvas (3-25% each)",
       lambda img, rng: _bars(img, rng, "letterbox", (0, 0, 0))),
    _k("pillarbox", "copy", "bars", "black bars left and right to a 16:9 / 1:1 / ... canvas (3-25% each)",
       lambda img, rng: _bars(img, rng, "pillarbox", (0, 0, 0))),
    _k("bars_white", "copy", "bars", "white letterbox or pillarbox bars",
       lambda img, rng: _bars(img, rng, str(_pick(rng, ("letterbox", "pillarbox"))), (255, 255, 255))),
    _k("bars_colour", "copy", "bars", "coloured letterbox or pillarbox bars",
       lambda img, rng: _bars(img, rng, str(_pick(rng, ("letterbox", "pillarbox"))), _colour(rng))),
    _k("frame", "copy", "bars", "uniform border on all sides, 3-6% of the long side", _frame),
    _k("caption", "copy", "bars", "solid band with text, 6-10% of the height, added top or bottom", _caption),
    # ---- hard: crops
    _k("crop_mild", "copy", "crop", "2-8% off each side, independently", _crop_mild),
    _k("crop_16x9", "copy", "crop", "centred crop to 16:9 (9:16 for portrait) when it removes 5-35%",
       lambda img, rng: _aspect_crop(img, 16 / 9 if img.width >= img.height else 9 / 16)),
    _k("crop_square", "copy", "crop", "centred square crop when it removes 5-35%", lambda img, rng: _aspect_crop(img, 1.0)),
    _k("straighten", "copy", "straighten", "turned 1-4 degrees either way, cropped to lose the blank corners", _straighten),
    # ---- colour and compression
    _k("greyscale", "copy", "colour", "black and white (one-channel JPEG)", lambda img, rng: Out(E.greyscale(img))),
    _k("saturation_up", "copy", "colour", "saturation x1.4-1.8", _drawn(E.saturation, 1.4, 1.8)),
    _k("saturation_down", "copy", "colour", "saturation x0.3-0.6", _drawn(E.saturation, 0.3, 0.6)),
    _k("warmth", "copy", "colour", "warm grade: red +8-15%, blue -8-15%", _drawn(E.warmth, 0.08, 0.15, "amount")),
    _k("contrast_strong", "copy", "colour", "contrast x1.5-1.9", _drawn(E.contrast, 1.5, 1.9)),
    _k("jpeg_q25", "copy", "colour", "re-encoded JPEG quality 25", lambda img, rng: Out(img, {"quality": 25}, quality=25)),
    _k("social", "copy", "colour", "social re-encode: long side 1080 (0.5x when smaller), q70, 4:2:0, EXIF stripped", _social),
    _k("webp_q60", "copy", "colour", "lossy WebP quality 60, EXIF stripped",
       lambda img, rng: Out(img, {"quality": 60}, fmt="webp", quality=60, exif="strip")),
    _k("sharpen", "copy", "colour", "unsharp mask radius 2, 120-200%",
       lambda img, rng: (lambda p: Out(E.sharpen(img, p), {"percent": p}))(int(rng.integers(120, 201)))),
    _k("denoise", "copy", "colour", "median filter 3x3 or 5x5",
       lambda img, rng: (lambda s: Out(E.denoise(img, s), {"size": s}))(int(_pick(rng, (3, 5))))),
    _k("watermark", "copy", "colour", "semi-transparent text in a corner, 4-7% of the height", _watermark),
    _k("combo_resize_q50_grey", "copy", "colour", "resized 0.5-0.7x, greyscale, q50", _combo_grey),
    _k("combo_letterbox_q70", "copy", "colour", "black letterbox bars and q70", _combo_letterbox),
    _k("combo_crop_warmth", "copy", "colour", "crop_mild and a warm grade", _combo_crop_warmth),
    # ---- simple
    _k("resize_half", "copy", "simple", "resized 0.5x", lambda img, rng: Out(E.resize(img, 0.5), {"scale": 0.5})),
    _k("recompress_q75", "copy", "simple", "re-encoded JPEG q75", lambda img, rng: Out(img, {"quality": 75}, quality=75)),
    _k("png", "copy", "simple", "lossless PNG, EXIF kept", lambda img, rng: Out(img, fmt="png")),
    _k("exif_rotation", "copy", "simple", "pixels stored turned 90/270/180 with the Orientation that undoes it (a camera's way)",
       _exif_rotation),
    _k("brightness", "copy", "simple", "brightness x0.8-0.9 or x1.1-1.25",
       lambda img, rng: (lambda f: Out(E.brightness(img, f), {"factor": f}))(_mild(rng))),
    _k("contrast", "copy", "simple", "contrast x0.8-0.9 or x1.1-1.25",
       lambda img, rng: (lambda f: Out(E.contrast(img, f), {"factor": f}))(_mild(rng))),
    _k("blur", "copy", "simple", "Gaussian blur radius 1-2 px", _drawn(E.blur, 1.0, 2.0, "radius")),
    _k("crop_light", "copy", "simple", "1-2% off each side",
       lambda img, rng: (lambda f: Out(E.crop_fractions(img, *f), {"left_top_right_bottom": f}))(_crop4(rng, 0.01, 0.02))),
    # ---- negatives
    _k("mirror", "negative", "negative", "left-right mirror image of the original", lambda img, rng: Out(E.mirror(img))),
    _k("flip", "negative", "negative", "upside-down flip (not a 180-degree rotation)", lambda img, rng: Out(E.flip(img))),
    _k("half", "negative", "negative", "left half or top half", _half),
    _k("heavy_crop", "negative", "negative", "corner window keeping 50-60% of the area", _heavy_crop),
    _k("shifted", "negative", "negative", "two overlapping 75%-wide windows 20-25% apart: consecutive shots, camera moved, "
       "no EXIF; the PAIR is the negative, each window vs its original is not scored", None, vs_own_source="ignore"),
    _k("two_shots", "negative", "negative", "Middlebury stereo pair from sample_catalog: two shots of one scene (all files "
       "of one vs all files of the other)", None),
    _k("same_caption", "negative", "negative", "two different photos, same size, same caption band", None, "ignore"),
    _k("same_letterbox", "negative", "negative", "two different photos, same 16:9 content in the same square black canvas",
       None, "ignore"),
    _k("same_frame", "negative", "negative", "two different photos, same size, same 6% white frame", None, "ignore"),
)}

#: Kinds every original gets (in this order); the rest are made by the builder across originals.
PER_ORIGINAL = [k for k, v in KINDS.items() if v.make is not None]
