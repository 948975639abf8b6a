"""The edits the accuracy corpus applies: pure functions from a Pillow image to a Pillow image.

Kept apart from ``accuracy_corpus.py`` (which decides *which* edits each original gets, with
what parameters, and writes the files) so that a test can call one edit directly, for example
``straighten`` with a magenta fill to prove that no blank corner survives its crop.

Conventions: every function takes an upright RGB (or L) image and returns a new image; angles
are in degrees, clockwise positive where it says so; fractions are of the relevant dimension.
Nothing here draws random numbers: the parameters come from the caller's seeded RNG.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

RGB = tuple[int, int, int]

#: TrueType fonts tried in order for caption bands and watermarks; Pillow's built-in scalable
#: font (Pillow >= 10.1) is the fallback, so the corpus builds anywhere, though text pixels may
#: then differ between machines (the rest of the corpus is identical for a given seed).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:/Windows/Fonts/arial.ttf",
)


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font ``size`` px tall: the first TTF found, else Pillow's default font scaled."""
    size = max(6, int(size))
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return ImageFont.truetype(candidate, size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font, still readable text
        return ImageFont.load_default()


# ---------------------------------------------------------------- geometry

#: Clockwise rotation in degrees -> Pillow transpose (Pillow's ROTATE_n turns counter-clockwise).
_CLOCKWISE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}

#: EXIF Orientation that makes a viewer undo a clockwise pixel rotation (ImageOps.exif_transpose
#: turns orientation 8 by 90 counter-clockwise, 6 by 90 clockwise, 3 by 180).
UNDO_ORIENTATION = {90: 8, 180: 3, 270: 6}


def rotate_cw(img: Image.Image, degrees: int) -> Image.Image:
    """Pixels turned clockwise by 90, 180 or 270 degrees (lossless: a transpose)."""
    return img.transpose(_CLOCKWISE[degrees])


def resize(img: Image.Image, scale: float) -> Image.Image:
    """Scaled by ``scale`` with Lanczos, as export dialogs do."""
    w, h = img.size
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def crop_fractions(img: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    """Cropped by the given fraction of the width (left, right) and height (top, bottom)."""
    w, h = img.size
    box = (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
    return img.crop(box)


def centre_aspect_crop(img: Image.Image, aspect: float) -> Image.Image:
    """Largest centred crop with width / height == ``aspect``."""
    w, h = img.size
    if w / h > aspect:
        nw = round(h * aspect)
        x0 = (w - nw) // 2
        return img.crop((x0, 0, x0 + nw, h))
    nh = round(w / aspect)
    y0 = (h - nh) // 2
    return img.crop((0, y0, w, y0 + nh))


def aspect_crop_loss(size: tuple[int, int], aspect: float) -> float:
    """Fraction of the area a centred crop to ``aspect`` removes."""
    w, h = size
    r = w / h
    return 1 - (aspect / r if r > aspect else r / aspect)


def straighten_scale(size: tuple[int, int], degrees: float) -> float:
    """Scale of the largest centred rectangle of the same aspect inside the image turned by
    ``degrees``: each corner (s*w/2, s*h/2), turned back, must stay inside the w x h frame."""
    w, h = size
    t = math.radians(abs(degrees))
    c, s = math.cos(t), math.sin(t)
    return min(w / (w * c + h * s), h / (w * s + h * c))


def straighten(img: Image.Image, degrees: float, fill: RGB = (0, 0, 0)) -> Image.Image:
    """Turned by ``degrees`` (counter-clockwise positive, as Pillow) about the centre, then
    cropped to the largest centred rectangle of the same aspect that holds no blank corner
    (less one pixel each side against resampling bleed), as an editor's straighten tool does."""
    w, h = img.size
    turned = img.convert("RGB").rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=fill)
    scale = straighten_scale((w, h), degrees)
    cw, ch = math.floor(w * scale) - 2, math.floor(h * scale) - 2
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return turned.crop((x0, y0, x0 + cw, y0 + ch))


def window(img: Image.Image, x: float, y: float, width: float, height: float) -> Image.Image:
    """The window at (x, y) of the given size, all as fractions of the image."""
    w, h = img.size
    x0, y0 = round(w * x), round(h * y)
    return img.crop((x0, y0, min(w, x0 + round(w * width)), min(h, y0 + round(h * height))))


# ---------------------------------------------------------------- bars, frames, bands


def pad(img: Image.Image, left: int, top: int, right: int, bottom: int, colour: RGB) -> Image.Image:
    """The photo pasted on a uniform canvas with the given margins (bars, frames)."""
    rgb = img.convert("RGB")
    canvas = Image.new("RGB", (rgb.width + left + right, rgb.height + top + bottom), colour)
    canvas.paste(rgb, (left, top))
    return canvas


def bars_for_aspect(size: tuple[int, int], canvas_aspect: float) -> tuple[int, int, int, int]:
    """Margins (left, top, right, bottom) that pad ``size`` to ``canvas_aspect`` centred:
    top/bottom bars when the canvas is taller (letterbox), left/right when wider (pillarbox)."""
    w, h = size
    if w / h > canvas_aspect:
        extra = round(w / canvas_aspect) - h
        return 0, extra // 2, 0, extra - extra // 2
    extra = round(h * canvas_aspect) - w
    return extra // 2, 0, extra - extra // 2, 0


def caption_band(img: Image.Image, text: str, fraction: float, where: str,
                 band: RGB = (255, 255, 255), ink: RGB = (0, 0, 0)) -> Image.Image:
    """A solid band ``fraction`` of the photo's height added at the top or bottom (the canvas
    grows, as a meme or a captioned post), with ``text`` centred in it."""
    rgb = img.convert("RGB")
    bh = max(8, round(rgb.height * fraction))
    canvas = Image.new("RGB", (rgb.width, rgb.height + bh), band)
    canvas.paste(rgb, (0, bh if where == "top" else 0))
    draw = ImageDraw.Draw(canvas)
    size = max(6, round(bh * 0.6))
    fnt = font(size)
    while size > 6 and draw.textlength(text, font=fnt) > rgb.width * 0.92:
        size -= 1
        fnt = font(size)
    y_mid = bh / 2 if where == "top" else rgb.height + bh / 2
    draw.text((rgb.width / 2, y_mid), text, fill=ink, font=fnt, anchor="mm")
    return canvas


def watermark(img: Image.Image, text: str, fraction: float, opacity: float, corner: str) -> Image.Image:
    """Semi-transparent white text with a dark outline in a corner, ``fraction`` of the height
    (smaller where the text would span more than 60% of the width: a portrait photo)."""
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(8, round(base.height * fraction))
    fnt = font(size)
    while size > 8 and draw.textlength(text, font=fnt) > base.width * 0.6:
        size -= 1
        fnt = font(size)
    margin = round(base.height * 0.03)
    anchor = {"br": "rd", "bl": "ld", "tr": "ra", "tl": "la"}[corner]
    x = base.width - margin if corner[1] == "r" else margin
    y = base.height - margin if corner[0] == "b" else margin
    alpha = round(255 * opacity)
    draw.text((x, y), text, font=fnt, anchor=anchor, fill=(255, 255, 255, alpha),
              stroke_width=max(1, size // 16), stroke_fill=(0, 0, 0, alpha // 2))
    return Image.alpha_composite(base, layer).convert("RGB")


# ---------------------------------------------------------------- colour and filters


def greyscale(img: Image.Image) -> Image.Image:
    """Black and white (mode L: a one-channel JPEG, as 'convert to greyscale' exports)."""
    return ImageOps.grayscale(img)


def saturation(img: Image.Image, factor: float) -> Image.Image:
    """Saturation scaled by ``factor`` (> 1 boosts, < 1 cuts)."""
    return ImageEnhance.Color(img.convert("RGB")).enhance(factor)


def warmth(img: Image.Image, amount: float) -> Image.Image:
    """A warm grade: red up, blue down by ``amount`` (0.1 = 10%), green up a third of that."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    gains = np.array([1 + amount, 1 + amount / 3, 1 - amount], dtype=np.float32)
    return Image.fromarray(np.clip(a * gains + 0.5, 0, 255).astype(np.uint8))


def contrast(img: Image.Image, factor: float) -> Image.Image:
    """Contrast scaled by ``factor`` about the mean grey (Pillow's ImageEnhance)."""
    return ImageEnhance.Contrast(img.convert("RGB")).enhance(factor)


def brightness(img: Image.Image, factor: float) -> Image.Image:
    """Brightness scaled by ``factor``."""
    return ImageEnhance.Brightness(img.convert("RGB")).enhance(factor)


def sharpen(img: Image.Image, percent: int) -> Image.Image:
    """An unsharp mask (radius 2, threshold 3) of strength ``percent``."""
    return img.convert("RGB").filter(ImageFilter.UnsharpMask(radius=2, percent=percent, threshold=3))


def denoise(img: Image.Image, size: int) -> Image.Image:
    """A median filter of ``size`` x ``size``: what a quick noise reduction does to detail."""
    return img.convert("RGB").filter(ImageFilter.MedianFilter(size))


def blur(img: Image.Image, radius: float) -> Image.Image:
    """A Gaussian blur of ``radius`` px."""
    return img.convert("RGB").filter(ImageFilter.GaussianBlur(radius))


def mirror(img: Image.Image) -> Image.Image:
    """Left-right mirror image (a negative: never a copy)."""
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def flip(img: Image.Image) -> Image.Image:
    """Upside-down flip (a negative: a vertical flip is not a 180-degree rotation)."""
    return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
