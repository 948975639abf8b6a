#!/usr/bin/env python3
"""Build the lumina-plugin demo photo library (``sample_catalog/``).

Every photo in this folder is derived from a freely licensed REAL photograph
that ships inside a Debian package or a PyPI wheel.  This script reads those
files from where the packages installed them, writes the "library" (originals
plus planted copies and look-alikes), ``expected_groups.json`` and
``SOURCES.md``.  It uses Pillow (and nothing else outside the stdlib).

Install the sources first (Debian 12 "bookworm"; run as root)::

    apt-get install --no-install-recommends \
        plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04
    #   -> /usr/share/wallpapers/<Name>/contents/images/*.jpg   (4:5.27.5-2)
    #   -> /usr/share/backgrounds/*_by_*.jpg                    (20.04.0-2)

    python3 -m venv /tmp/sample_work/venv
    /tmp/sample_work/venv/bin/pip install --no-deps \
        scikit-image==0.26.0 scikit-learn==1.9.1
    #   (only the bundled data files are used; nothing is imported)
    #   -> <site-packages>/skimage/data/*.png|jpg
    #   -> <site-packages>/sklearn/datasets/images/china.jpg, flower.jpg

Then, from the repository root::

    .venv/bin/python sample_catalog/make_sample.py \
        --site-packages /tmp/sample_work/venv/lib/python3.11/site-packages

The script deletes and rewrites every image it owns inside sample_catalog/
(it never touches files outside that folder) and is deterministic for a given
Pillow/libjpeg/libwebp build.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageChops, ImageOps

HERE = Path(__file__).resolve().parent
JPEG_Q = 85
EXIF_IFD = 0x8769
# IFD0 tags
MAKE, MODEL, ORIENTATION, SOFTWARE, DATETIME, ARTIST = 271, 272, 274, 305, 306, 315
# Exif sub-IFD tags
DT_ORIGINAL, DT_DIGITIZED, PIXEL_X, PIXEL_Y, MAKER_NOTE = 36867, 36868, 40962, 40963, 37500

# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------
DEB = {
    "plasma": ("plasma-workspace-wallpapers", "4:5.27.5-2"),
    "lomiri": ("lomiri-wallpapers-16.04", "20.04.0-2"),
    "lomiri20": ("lomiri-wallpapers-20.04", "20.04.0-2"),
}
WHEEL = {
    "skimage": ("scikit-image", "0.26.0"),
    "sklearn": ("scikit-learn", "1.9.1"),
}

SKIMAGE_LIC = ("scikit-image data docstring (skimage/data/_fetchers.py)")

# key: (origin, path inside package, author, licence, note)
# origin is "plasma"/"lomiri" (absolute Debian path) or "skimage"/"sklearn"
# (path relative to site-packages).
SOURCES = {
    "coffee": ("skimage", "skimage/data/coffee.png", "Rachel Michetti (courtesy of Pikolo Espresso Bar)",
               "CC0-1.0", "'No copyright restrictions. CC0 by the photographer' (" + SKIMAGE_LIC + ")"),
    "chelsea": ("skimage", "skimage/data/chelsea.png", "Stefan van der Walt",
                "CC0-1.0", "'No copyright restrictions. CC0 by the photographer' (" + SKIMAGE_LIC + ")"),
    "astronaut": ("skimage", "skimage/data/astronaut.png", "NASA (photo of astronaut Eileen Collins)",
                  "Public domain", "NASA Great Images database, https://flic.kr/p/r9qvLn; 'No known copyright "
                  "restrictions, released into the public domain' (" + SKIMAGE_LIC + ")"),
    "rocket": ("skimage", "skimage/data/rocket.jpg", "SpaceX (DSCOVR launch on Falcon 9, Feb 2015)",
               "Public domain", "https://www.flickr.com/photos/spacexphotos/16511594820/ ; SpaceX released its "
               "photos into the public domain (" + SKIMAGE_LIC + ")"),
    "moto_l": ("skimage", "skimage/data/motorcycle_left.png",
               "Middlebury 2014 stereo dataset (N. Nesic, P. Westling, X. Wang, Y. Kitajima, G. Krathwohl, "
               "D. Scharstein)", "BSD-3-Clause (scikit-image package licence, 'Files: *')",
               "left view of a rectified stereo pair, 4x downsampled by scikit-image; no separate licence is "
               "stated for this file, it is redistributed as part of scikit-image under the package's "
               "BSD-3-Clause terms; cite Scharstein et al., GCPR 2014"),
    "moto_r": ("skimage", "skimage/data/motorcycle_right.png",
               "Middlebury 2014 stereo dataset (N. Nesic, P. Westling, X. Wang, Y. Kitajima, G. Krathwohl, "
               "D. Scharstein)", "BSD-3-Clause (scikit-image package licence, 'Files: *')",
               "right view of the same stereo pair (see motorcycle_left)"),
    "camera": ("skimage", "skimage/data/camera.png", "Lav Varshney",
               "CC0-1.0", "'No copyright restrictions. CC0 by the photographer' (" + SKIMAGE_LIC + ")"),
    "china": ("sklearn", "sklearn/datasets/images/china.jpg", "Daniel Buechele (flickr: danielbuechele)",
              "CC-BY-2.0", "https://www.flickr.com/photos/danielbuechele/6061409035/ "
              "(sklearn/datasets/images/README.txt)"),
    "flower": ("sklearn", "sklearn/datasets/images/flower.jpg", "flickr user 'vultilion'",
               "CC-BY-2.0", "https://www.flickr.com/photos/vultilion/6056698931/ "
               "(sklearn/datasets/images/README.txt; its 'Attribution' line names danielbuechele, apparently "
               "copied from the china.jpg entry, while the link points to vultilion)"),
    "kleiber": ("lomiri20", "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus (2021)",
                "CC-BY-SA-3.0", "/usr/share/doc/lomiri-wallpapers-20.04/copyright"),
    "dragonfly": ("lomiri", "/usr/share/backgrounds/Dragonfly_by_Bolly.jpg", "'Bolly' (2018)",
                  "CC-BY-SA-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "fig": ("lomiri", "/usr/share/backgrounds/Picture_0B_by_freespace.jpg", "Trevor 'Freespace' (2018)",
            "CC-BY-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "wine": ("lomiri", "/usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg", "Jakub Mede (2018)",
             "CC-BY-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "aitzgorri": ("lomiri", "/usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg",
                  "Aitzol Berasategi (2018)", "CC-BY-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "picos": ("lomiri", "/usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg",
              "Aitzol Berasategi (2018)", "CC-BY-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "life": ("lomiri", "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi (2018)",
             "CC-BY-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "sunset": ("lomiri", "/usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi (2018)",
               "CC-BY-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "friends": ("lomiri", "/usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi (2018)",
                "CC-BY-4.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "seeding": ("lomiri", "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt (2018)",
                "CC0-1.0", "/usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    "coldripple": ("plasma", "/usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg", "Risto Saukonpää",
                   "LGPL-3.0 (metadata.json); Debian copyright: GPL-2+",
                   "/usr/share/wallpapers/ColdRipple/metadata.json, /usr/share/doc/plasma-workspace-wallpapers/copyright"),
    "darkesthour": ("plasma", "/usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg", "Risto Saukonpää",
                    "LGPL-3.0 (metadata.json); Debian copyright: GPL-2+",
                    "/usr/share/wallpapers/DarkestHour/metadata.json, /usr/share/doc/plasma-workspace-wallpapers/copyright"),
    "kite": ("plasma", "/usr/share/wallpapers/Kite/contents/images/2560x1600.jpg", "Risto Saukonpää",
             "LGPL-3.0 (metadata.json); Debian copyright: GPL-2+",
             "/usr/share/wallpapers/Kite/metadata.json, /usr/share/doc/plasma-workspace-wallpapers/copyright"),
    "path": ("plasma", "/usr/share/wallpapers/Path/contents/images/2560x1600.jpg", "Risto Saukonpää",
             "LGPL-3.0 (metadata.json); Debian copyright: GPL-2+",
             "/usr/share/wallpapers/Path/metadata.json, /usr/share/doc/plasma-workspace-wallpapers/copyright"),
    "fallenleaf": ("plasma", "/usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg", "Martin Klapetek",
                   "LGPL-3.0 (metadata.json); Debian copyright: GPL-2+",
                   "/usr/share/wallpapers/FallenLeaf/metadata.json, /usr/share/doc/plasma-workspace-wallpapers/copyright"),
    "eveningglow": ("plasma", "/usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg", "Ian Hex",
                    "LGPL-3.0 (metadata.json); Debian copyright: GPL-2+",
                    "/usr/share/wallpapers/EveningGlow/metadata.json, /usr/share/doc/plasma-workspace-wallpapers/copyright"),
}

CANON80D = ("Canon", "Canon EOS 80D")
PIXEL6 = ("Google", "Pixel 6")
XT3 = ("FUJIFILM", "X-T3")
D7500 = ("NIKON CORPORATION", "NIKON D7500")
A6000 = ("SONY", "ILCE-6000")
A7M3 = ("SONY", "ILCE-7M3")
SCANNER = ("EPSON", "Perfection V600")

# key -> (destination, long side in px, EXIF to add or None = keep the source's own EXIF)
ORIGINALS = {
    "coffee": ("2021/2021-03-14/IMG_0412.jpg", 600, CANON80D + ("2021:03:14 10:42:07",)),
    "wine": ("2021/2021-12-24/IMG_3307.jpg", 640, CANON80D + ("2021:12:24 18:05:51",)),
    "kleiber": ("2022/2022-02-05/IMG_5521.jpg", 720, CANON80D + ("2022:02:05 09:12:40",)),
    "chelsea": ("phone/PXL_20220611_081522.jpg", 451, PIXEL6 + ("2022:06:11 08:15:22",)),
    "dragonfly": ("phone/PXL_20220724_152210.jpg", 640, PIXEL6 + ("2022:07:24 15:22:10",)),
    "fig": ("phone/PXL_20220903_193045.jpg", 600, PIXEL6 + ("2022:09:03 19:30:45",)),
    "friends": ("phone/PXL_20230102_120311.jpg", 640, PIXEL6 + ("2023:01:02 12:03:11",)),
    "china": ("2019/2019-04-27/DSCF0815.jpg", 640, XT3 + ("2019:04:27 11:20:14",)),
    "flower": ("2019/2019-04-28/DSCF0902.jpg", 640, XT3 + ("2019:04:28 16:47:33",)),
    "camera": ("2019/2019-09-08/DSCF2231.jpg", 512, XT3 + ("2019:09:08 13:02:55",)),
    # burst: same camera, consecutive frame numbers, one second apart
    "moto_l": ("2023/2023-05-20/DSC_1001.jpg", 640, D7500 + ("2023:05:20 14:31:07",)),
    "moto_r": ("2023/2023-05-20/DSC_1002.jpg", 640, D7500 + ("2023:05:20 14:31:08",)),
    "seeding": ("2023/2023-06-03/DSC_1450.jpg", 640, D7500 + ("2023:06:03 20:41:19",)),
    "aitzgorri": ("2018/2018-10-13/DSC00211.jpg", 640, A6000 + ("2018:10:13 17:55:02",)),
    "picos": ("2018/2018-10-14/DSC00388.jpg", 640, A6000 + ("2018:10:14 10:31:46",)),
    "sunset": ("2018/2018-10-14/DSC00401.jpg", 640, A6000 + ("2018:10:14 19:12:08",)),
    "life": ("2018/2018-10-15/DSC00420.jpg", 640, A6000 + ("2018:10:15 12:26:37",)),
    "eveningglow": ("2016/2016-08-19/DSC04512.jpg", 640, A7M3 + ("2016:08:19 20:14:51",)),
    # these four carry their photographer's original EXIF (Olympus E-M1 / Canon EOS 70D)
    "darkesthour": ("2015/2015-06-21/P6210097.jpg", 640, None),
    "coldripple": ("2015/2015-06-21/P6210118.jpg", 640, None),
    "kite": ("2015/2015-07-21/P7210044.jpg", 640, None),
    "path": ("2015/2015-09-06/P9060231.jpg", 640, None),
    "fallenleaf": ("2015/2015-10-29/IMG_8812.jpg", 640, None),
    # downloaded pictures; scanned-print style EXIF (scan time) added
    "astronaut": ("downloads/astronaut_collins.jpg", 512, SCANNER + ("2020:11:02 19:05:33",)),
    "rocket": ("downloads/spacex_dscovr_launch.jpg", 640, SCANNER + ("2020:11:02 19:09:12",)),
}

# Planted duplicates: (key of original, kind, destination, parameters)
COPIES = [
    ("coffee", "identical", "backup/2021/2021-03-14/IMG_0412.jpg", {}),
    ("coffee", "webp", "exports/web/IMG_0412.webp", {"quality": 80}),
    ("chelsea", "png", "exports/chelsea_cat.png", {}),
    ("china", "recompress", "exports/web/DSCF0815_q60.jpg", {"quality": 60}),
    ("china", "crop", "exports/DSCF0815_crop.jpg", {"box_pct": (4, 3, 2, 5)}),
    ("kleiber", "resize", "exports/IMG_5521_small.jpg", {"scale": 0.5}),
    ("kleiber", "exif_rotate", "backup/sdcard/DCIM/100CANON/IMG_5521.JPG", {"orientation": 8}),
    ("wine", "exif_rotate", "backup/sdcard/DCIM/100CANON/IMG_3307.JPG", {"orientation": 6}),
    ("fallenleaf", "identical", "backup/2015/IMG_8812.jpg", {}),
    ("fallenleaf", "webp", "exports/web/IMG_8812.webp", {"quality": 75}),
    ("fallenleaf", "crop", "exports/IMG_8812_crop.jpg", {"box_pct": (3, 2, 3, 3)}),
    ("eveningglow", "resize", "exports/web/DSC04512_small.jpg", {"scale": 0.5, "quality": 75}),
    ("astronaut", "recompress", "downloads/astronaut_collins (1).jpg", {"quality": 70}),
]

# Look-alikes that must NOT be grouped (besides the burst/different-shot originals above)
LOOKALIKE_COPIES = [
    ("flower", "mirror", "exports/DSCF0902_flipped.jpg", {}),
    ("life", "heavy_crop", "exports/DSC00420_detail.jpg", {"keep": 0.40}),
]

NOT_DUPLICATES = [
    ({"orig": ["moto_l", "moto_r"]}, "burst"),
    ({"orig": ["flower"], "copy": ["exports/DSCF0902_flipped.jpg"]}, "mirror"),
    ({"orig": ["life"], "copy": ["exports/DSC00420_detail.jpg"]}, "heavy crop"),
    ({"orig": ["darkesthour", "coldripple"]}, "different shot"),
    ({"orig": ["aitzgorri", "picos"]}, "different shot"),
]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def src_path(key: str, site: Path) -> Path:
    origin, rel = SOURCES[key][:2]
    return Path(rel) if origin in DEB else site / rel


def fit_long_side(im: Image.Image, long_side: int) -> Image.Image:
    w, h = im.size
    if max(w, h) <= long_side:
        return im.copy()
    s = long_side / max(w, h)
    return im.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS, reducing_gap=3.0)


def build_exif(src: Image.Image | None, added, size, orientation=1) -> bytes:
    """Either rewrite the source's own EXIF (maker note and thumbnail dropped, pixel
    size updated) or create a plausible camera EXIF from ``added``."""
    if added is None:
        exif = src.getexif()
        ifd = exif.get_ifd(EXIF_IFD)
        ifd.pop(MAKER_NOTE, None)
        for t in (MAKE, MODEL):  # some cameras pad these with spaces
            if isinstance(exif.get(t), str):
                exif[t] = exif[t].strip()
    else:
        make, model, dto = added
        exif = Image.Exif()
        exif[MAKE], exif[MODEL], exif[DATETIME] = make, model, dto
        ifd = exif.get_ifd(EXIF_IFD)
        ifd[DT_ORIGINAL] = ifd[DT_DIGITIZED] = dto
    exif[ORIENTATION] = orientation
    ifd[PIXEL_X], ifd[PIXEL_Y] = size
    return exif.tobytes()


def exif_with(path: Path, **changes) -> bytes:
    """EXIF of an already written file, with IFD0/ExifIFD tags changed."""
    exif = Image.open(path).getexif()
    ifd = exif.get_ifd(EXIF_IFD)
    for tag, val in changes.get("ifd0", {}).items():
        exif[tag] = val
    for tag, val in changes.get("exififd", {}).items():
        ifd[tag] = val
    return exif.tobytes()


def save_jpeg(im: Image.Image, dest: Path, exif: bytes | None, quality=JPEG_Q):
    dest.parent.mkdir(parents=True, exist_ok=True)
    kw = {"quality": quality, "optimize": True}
    if exif:
        kw["exif"] = exif
    im.save(dest, "JPEG", **kw)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    d = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    hist = d.histogram()
    return sum(i * n for i, n in enumerate(hist)) / (a.size[0] * a.size[1])


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def version_of(origin: str) -> str:
    if origin in DEB:
        pkg, expect = DEB[origin]
        try:
            got = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                                 text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            got = "?"
        return got or expect
    return WHEEL[origin][1]


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site-packages", required=True, type=Path,
                    help="site-packages that holds skimage/ and sklearn/ (installed with --no-deps)")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    out: Path = args.out
    site: Path = args.site_packages

    # check wheel versions via their dist-info folders (nothing is imported)
    for origin, (dist, ver) in WHEEL.items():
        di = site / f"{dist.replace('-', '_')}-{ver}.dist-info"
        if not di.is_dir():
            print(f"warning: {di} not found; expected {dist}=={ver}", file=sys.stderr)
    for origin, (pkg, ver) in DEB.items():
        got = version_of(origin)
        if got != ver:
            print(f"warning: {pkg} is {got}, this catalog was made from {ver}", file=sys.stderr)

    # wipe what we own (image files and the two generated docs), keep this script
    for p in sorted(out.rglob("*"), reverse=True):
        if p.is_file() and p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()

    dest_of = {k: v[0] for k, v in ORIGINALS.items()}
    log: list[tuple[str, str, str]] = []  # (dest, made from, how)

    # ---- originals
    for key, (dest, long_side, added) in ORIGINALS.items():
        src = Image.open(src_path(key, site))
        src_exif_img = src
        im = ImageOps.exif_transpose(src)  # all sources are upright (Orientation absent or 1)
        im = im.convert("L") if im.mode in ("L", "LA", "I;16") else im.convert("RGB")
        im = fit_long_side(im, long_side)
        exif = build_exif(src_exif_img, added, im.size)
        save_jpeg(im, out / dest, exif)
        how = (f"resized to {im.size[0]}x{im.size[1]}, JPEG q{JPEG_Q}, "
               + ("photographer's original EXIF kept (maker note/thumbnail dropped)" if added is None
                  else f"EXIF ADDED by this script: {added[0]} {added[1]}, DateTimeOriginal {added[2]}"))
        log.append((dest, key, how))

    # ---- planted copies + look-alike copies
    def make_copy(key, kind, dest, prm):
        o = out / dest_of[key]
        d = out / dest
        d.parent.mkdir(parents=True, exist_ok=True)
        im = Image.open(o)
        im.load()
        if kind == "identical":
            shutil.copyfile(o, d)
            assert sha256(o) == sha256(d)
            return "byte-identical copy"
        if kind == "webp":
            im.save(d, "WEBP", quality=prm["quality"], method=6)  # exported without EXIF
            return f"WebP q{prm['quality']}, EXIF stripped"
        if kind == "png":
            im.save(d, "PNG", optimize=True, exif=im.info["exif"])
            return "PNG (lossless, EXIF kept in eXIf chunk)"
        if kind == "recompress":
            save_jpeg(im, d, im.info["exif"], quality=prm["quality"])
            return f"re-encoded JPEG q{prm['quality']}, EXIF kept"
        if kind == "resize":
            w, h = im.size
            sm = im.resize((round(w * prm["scale"]), round(h * prm["scale"])), Image.Resampling.LANCZOS)
            q = prm.get("quality", JPEG_Q)
            save_jpeg(sm, d, exif_with(o, exififd={PIXEL_X: sm.size[0], PIXEL_Y: sm.size[1]}), quality=q)
            return f"resized {int(prm['scale'] * 100)}% to {sm.size[0]}x{sm.size[1]}, JPEG q{q}, EXIF kept"
        if kind == "crop":
            w, h = im.size
            l, t, r, b = prm["box_pct"]
            box = (round(w * l / 100), round(h * t / 100), w - round(w * r / 100), h - round(h * b / 100))
            c = im.crop(box)
            save_jpeg(c, d, exif_with(o, exififd={PIXEL_X: c.size[0], PIXEL_Y: c.size[1]}))
            return f"cropped {l}%/{t}%/{r}%/{b}% (left/top/right/bottom) to {c.size[0]}x{c.size[1]}, EXIF kept"
        if kind == "exif_rotate":
            ori = prm["orientation"]
            # Stored pixels are the sensor orientation; the tag tells viewers how to turn them.
            # Orientation 6 = "rotate 90 deg clockwise to display" -> store the upright picture
            # turned 90 deg counter-clockwise; Orientation 8 is the opposite.
            stored = im.transpose(Image.Transpose.ROTATE_90 if ori == 6 else Image.Transpose.ROTATE_270)
            exif = exif_with(o, ifd0={ORIENTATION: ori},
                             exififd={PIXEL_X: stored.size[0], PIXEL_Y: stored.size[1]})
            save_jpeg(stored, d, exif)
            back = ImageOps.exif_transpose(Image.open(d))
            assert back.size == im.size, (back.size, im.size)
            err = mean_abs_diff(back, im)
            assert err < 4.0, f"exif_transpose of {d} does not restore the original (mad={err:.1f})"
            return (f"pixels rotated 90 deg ({stored.size[0]}x{stored.size[1]}), EXIF Orientation={ori}; "
                    f"ImageOps.exif_transpose restores the original (mean abs diff {err:.2f})")
        if kind == "mirror":
            save_jpeg(ImageOps.mirror(im), d, im.info["exif"])
            return "horizontally MIRRORED, EXIF kept - NOT a duplicate"
        if kind == "heavy_crop":
            w, h = im.size
            k = prm["keep"]
            cw, ch = round(w * k), round(h * k)
            box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
            c = im.crop(box)
            save_jpeg(c, d, exif_with(o, exififd={PIXEL_X: c.size[0], PIXEL_Y: c.size[1]}))
            return f"central {int(k * 100)}% x {int(k * 100)}% crop ({c.size[0]}x{c.size[1]}), EXIF kept - NOT a duplicate"
        raise ValueError(kind)

    groups: dict[str, list[str]] = {}
    for key, kind, dest, prm in COPIES:
        how = make_copy(key, kind, dest, prm)
        log.append((dest, key, f"copy of {dest_of[key]}: {how}"))
        groups.setdefault(key, [dest_of[key]]).append(dest)
    for key, kind, dest, prm in LOOKALIKE_COPIES:
        how = make_copy(key, kind, dest, prm)
        log.append((dest, key, f"derived from {dest_of[key]}: {how}"))

    # ---- expected_groups.json
    gl = sorted(sorted(g) for g in groups.values())
    nd = []
    for spec, why in NOT_DUPLICATES:
        files = [dest_of[k] for k in spec.get("orig", [])] + spec.get("copy", [])
        nd.append({"files": sorted(files), "why": why})
    nd.sort(key=lambda e: e["files"])
    with open(out / "expected_groups.json", "w") as f:
        json.dump({"groups": gl, "not_duplicates": nd}, f, indent=2)
        f.write("\n")

    # sanity: every referenced file exists
    all_imgs = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                      if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    for g in gl + [e["files"] for e in nd]:
        for f in g:
            assert f in all_imgs, f

    write_sources(out, log, dest_of, gl, nd, all_imgs)
    print(f"wrote {len(all_imgs)} images, {len(gl)} groups, {len(nd)} not-duplicate sets into {out}")
    return 0


def write_sources(out: Path, log, dest_of, groups, nd, all_imgs):
    L = []
    w = L.append
    w("# sample_catalog - sources and licences\n")
    w("A small demo photo library for lumina-plugin with planted duplicates. Everything here was produced by")
    w("`make_sample.py` (see its header for the install commands) from real photographs shipped in Debian")
    w("packages and PyPI wheels. Expected results: `expected_groups.json`.\n")
    w("**About the EXIF:** the five photos under `2015/` (from `plasma-workspace-wallpapers`) keep their")
    w("photographers' original EXIF (camera, DateTimeOriginal; maker note and thumbnail dropped, pixel size")
    w("updated). For every other original the Make / Model / DateTimeOriginal were ADDED by `make_sample.py`")
    w("and are invented (plausible, not the real capture data); distinct shots got distinct times. In")
    w("particular the *burst* `2023/2023-05-20/DSC_1001.jpg` + `DSC_1002.jpg` is the left and right view of")
    w("a Middlebury stereo pair to which we gave the same camera (NIKON D7500) and DateTimeOriginal one second")
    w("apart. The file names and folders are invented too.\n")
    w("All pictures were downscaled (long side 451-720 px) and re-encoded, i.e. they are modified versions of")
    w("the originals. Attribution for CC-BY / CC-BY-SA works: the author named below; share-alike works are")
    w("redistributed here under the same licence.\n")
    w("## Original photos\n")
    w("| file | source (package version: path) | author | licence | notes |")
    w("|---|---|---|---|---|")
    for dest, key, how in log:
        if key not in dest_of or dest != dest_of[key]:
            continue
        origin, rel, author, lic, note = SOURCES[key]
        pkg = DEB[origin][0] if origin in DEB else WHEEL[origin][0]
        where = f"{pkg} {version_of(origin)}: `{rel}`"
        w(f"| `{dest}` | {where} | {author} | {lic} | {note}; {how} |")
    w("\n## Derived files (planted copies and look-alikes)\n")
    w("| file | made from | how |")
    w("|---|---|---|")
    for dest, key, how in log:
        if dest == dest_of.get(key):
            continue
        w(f"| `{dest}` | `{dest_of[key]}` | {how} |")
    w("\n## Expected duplicate groups\n")
    for g in groups:
        w("- " + ", ".join(f"`{f}`" for f in g))
    w("\n## Look-alikes that must NOT be grouped\n")
    for e in nd:
        w(f"- **{e['why']}**: " + ", ".join(f"`{f}`" for f in e["files"]))
    w("\nEvery other file is a singleton.\n")
    w("## Licence texts\n")
    w("- CC0-1.0: https://creativecommons.org/publicdomain/zero/1.0/")
    w("- CC-BY-2.0: https://creativecommons.org/licenses/by/2.0/")
    w("- CC-BY-4.0: https://creativecommons.org/licenses/by/4.0/")
    w("- CC-BY-SA-3.0: https://creativecommons.org/licenses/by-sa/3.0/")
    w("- CC-BY-SA-4.0: https://creativecommons.org/licenses/by-sa/4.0/")
    w("- LGPL-3.0: https://www.gnu.org/licenses/lgpl-3.0.html ; GPL-2+: https://www.gnu.org/licenses/old-licenses/gpl-2.0.html")
    w("- BSD-3-Clause (scikit-image): https://github.com/scikit-image/scikit-image/blob/main/LICENSE.txt")
    (out / "SOURCES.md").write_text("\n".join(L) + "\n")


if __name__ == "__main__":
    sys.exit(main())
