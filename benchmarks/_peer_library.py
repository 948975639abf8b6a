"""A library of about 2,000 real photos of mixed sizes with planted copies, for ``vs_peers.py``.

Built deterministically (fixed seeds) from real photographs this machine can get without the
internet: the camera photos among Debian's desktop wallpapers (``apt-get install
lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers``: the files of ``WALLPAPERS``,
chosen by eye as photographs, not drawings or renders) and the original photos of
``sample_catalog/`` (licences in its SOURCES.md). Whatever is missing is skipped with a note.

Every source gives pictures cut from disjoint parts of its frame, so no two originals share a
pixel (no original is a crop of another):
- sample_catalog's photos (640 px) are one original each, at their own size;
- the left 35% of a wallpaper's frame, cropped to the target's aspect, becomes one large original, by
  turns a 12 MP camera JPEG (4000x3000 with +-10 levels of noise where upscaled and camera EXIF,
  as ``hash_throughput.py`` makes them), a 2560x1600 wallpaper or a 2048-px phone photo;
- the rest of the frame is cut into tiles of 160-440 px (small scans and web pictures, JPEG of
  quality 80-95, one in eight PNG). Tiles with too little detail to tell apart (clear sky, a
  blurred background: grey 16x16 thumbnail std below ``MIN_DETAIL``) are dropped.

Then 40% of the originals get one or two planted copies each: ``byte_copy`` (the same file
in a backup folder), ``resized`` (50-70%, quality 85), ``recompressed`` (quality 60-75),
``cropped`` (2-5% off some edges), ``rotated_tag`` (pixels turned 90 degrees, EXIF orientation
6 or 8 so it shows upright, as phones and lossless rotation write it) and ``png`` (small ones).

``<out>/truth.json``: {"format", "seed", "files": {"<rel path>": {"group", "role":
"original"|"copy", "kind", "source", "size"}}, "groups": [[rel paths of one picture], ...]}.
Two files are a true pair exactly when they are in the same group.

Usage: python benchmarks/_peer_library.py OUT_DIR [--seed 19] [--files 2000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

FORMAT = "lumina-peer-library/1"
#: Camera photographs among Debian's wallpaper packages (paths under /usr/share), by package.
WALLPAPERS: dict[str, tuple[str, ...]] = {
    "lomiri-wallpapers-16.04 / -20.04": tuple(f"backgrounds/{n}.jpg" for n in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Infinite-Sea_by_Aury88", "Kleiber_by_Lukas_Baubkus",
        "Picture_0B_by_freespace", "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
        "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")),
    "mate-backgrounds": tuple(f"backgrounds/mate/nature/{n}.jpg" for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
        "TwoWings", "Wood", "YellowFlower")),
    "plasma-workspace-wallpapers": tuple(f"wallpapers/{n}/contents/images/2560x1600.jpg" for n in (
        "BytheWater", "ColdRipple", "EveningGlow", "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path",
        "summer_1am")),
}
SHARE = Path("/usr/share")
#: sample_catalog originals left out: DSC_1002 is a second shot of DSC_1001's scene (a look-alike).
SKIP_SAMPLES = ("DSC_1002",)
MIN_DETAIL = 8.0
#: Sources with a long side under this are one original each, at their own size (sample_catalog's).
SMALL_SOURCE = 1500
#: The share of a large source's width that makes its one large original; the rest becomes tiles.
LARGE_SHARE = 0.35
CAMERAS = (("Canon", "Canon EOS R6"), ("NIKON CORPORATION", "NIKON D750"), ("SONY", "ILCE-7M3"),
           ("FUJIFILM", "X-T3"), ("Apple", "iPhone 12"))
COPY_KINDS = ("byte_copy", "resized", "recompressed", "cropped", "rotated_tag", "png")


def rng_for(seed: int, *what: object) -> np.random.Generator:
    """A generator of its own for each (seed, source, purpose): edits never shift each other."""
    return np.random.default_rng(zlib.crc32(":".join(map(str, (seed, *what))).encode()))


def sources() -> tuple[list[dict[str, str]], list[str]]:
    """(sources found as {"id", "path", "origin"}, notes on those missing), sorted by id."""
    import accuracy_corpus  # noqa: PLC0415 - its sample_originals() reads sample_catalog's SOURCES.md

    found, missing = [], []
    for package, rels in WALLPAPERS.items():
        for rel in rels:
            path = SHARE / rel
            sid = "wp_" + (rel.split("/")[1] if rel.startswith("wallpapers/") else Path(rel).stem)
            if path.exists():
                found.append({"id": sid, "path": str(path), "origin": f"Debian {package}: /usr/share/{rel}"})
            else:
                missing.append(f"/usr/share/{rel} ({package} not installed)")
    for src in accuracy_corpus.sample_originals():
        if src["id"] not in SKIP_SAMPLES:
            found.append({"id": "sc_" + src["id"], "path": src["path"], "origin": "sample_catalog"})
    return sorted(found, key=lambda s: s["id"]), missing


def _exif(make_model: tuple[str, str] | None, orientation: int = 1, when: str | None = None) -> bytes:
    exif = Image.Exif()
    if make_model:
        exif[0x010F], exif[0x0110] = make_model
    if when:
        exif[0x0132] = when
    if orientation != 1:
        exif[0x0112] = orientation
    return exif.tobytes()


def _save(img: Image.Image, dest: Path, quality: int, exif: bytes | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix == ".png":
        img.save(dest, "PNG", compress_level=6)
    else:
        img.save(dest, "JPEG", quality=quality, exif=exif or b"")


def _fit(img: Image.Image, size: tuple[int, int], noise: int, rng: np.random.Generator) -> Image.Image:
    """``img`` centre-cropped to ``size``'s aspect and resized; noise where upscaled (camera grain)."""
    w, h = img.size
    aspect = size[0] / size[1]
    cw, ch = (int(h * aspect), h) if w / h > aspect else (w, int(w / aspect))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    up = size[0] > cw
    out = img.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.Resampling.BICUBIC if up else Image.Resampling.LANCZOS)
    if up and noise:
        arr = np.asarray(out, dtype=np.int16) + rng.integers(-noise, noise + 1, size=(size[1], size[0], 3), dtype=np.int16)
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return out


def _detail(img: Image.Image) -> float:
    return float(np.asarray(img.convert("L").resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32).std())


def build_source(n: int, src: dict[str, str], out: Path, seed: int) -> dict[str, dict[str, Any]]:
    """The originals cut from one source: {rel path: file entry}."""
    with Image.open(src["path"]) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    sid, rng = src["id"], rng_for(seed, src["id"], "originals")
    w, h = img.size
    files: dict[str, dict[str, Any]] = {}

    def add(pic: Image.Image, rel: str, kind: str, quality: int, exif: bytes | None = None) -> None:
        _save(pic, out / rel, quality, exif)
        files[rel] = {"group": rel, "role": "original", "kind": kind, "source": sid, "size": list(pic.size)}

    if max(w, h) < SMALL_SOURCE:  # a small photo: itself, at its own size
        add(img, f"photos/{sid}.jpg", "small_photo", 90, _exif(CAMERAS[n % len(CAMERAS)], 1, None))
        return files
    split = int(w * LARGE_SHARE)
    left, right = img.crop((0, 0, split, h)), img.crop((split, 0, w, h))
    role = ("camera", "wallpaper", "phone")[n % 3]
    if role == "camera":
        make = CAMERAS[n % len(CAMERAS)]
        when = f"20{15 + n % 9:02d}:{1 + n % 12:02d}:{1 + n % 28:02d} 1{n % 10}:2{n % 10}:0{n % 10}"
        size = (4000, 3000) if left.width >= left.height else (3000, 4000)
        add(_fit(left, size, 10, rng), f"camera/DSC{n:05d}.jpg", "camera_12mp", 92, _exif(make, 1, when))
    elif role == "wallpaper":
        add(_fit(left, (2560, 1600), 0, rng), f"wallpapers/{sid}.jpg", "wallpaper", 90)
    else:
        size = (2048, 1536) if left.width >= left.height else (1536, 2048)
        add(_fit(left, size, 4, rng), f"phone/IMG_{n:04d}.jpg", "phone", 88, _exif(("Google", "Pixel 6"), 1, None))
    tile = int(rng.integers(160, 441))
    cols, rows = max(1, right.width // tile), max(1, right.height // tile)
    tw, th = right.width // cols, right.height // rows
    cells = [(c, r) for r in range(rows) for c in range(cols)]
    for k, (c, r) in enumerate(cells):
        pic = right.crop((c * tw, r * th, (c + 1) * tw, (r + 1) * th))
        if min(pic.size) < 150 or _detail(pic) < MIN_DETAIL:
            continue
        ext = ".png" if rng.integers(8) == 0 else ".jpg"
        add(pic, f"scans/{sid}/scan_{k:03d}{ext}", "scan", int(rng.integers(80, 96)))
    return files


def _rotate_by_tag(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    """Stored pixels turned a quarter, with the orientation tag that shows them upright again."""
    if rng.integers(2):
        return img.transpose(Image.Transpose.ROTATE_90), _exif(None, 6)   # stored turned left: show turned right
    return img.transpose(Image.Transpose.ROTATE_270), _exif(None, 8)


def plant_copy(rel: str, entry: dict[str, Any], kind: str, dest_rel: str, out: Path, seed: int) -> dict[str, Any]:
    """Write one copy of original ``rel`` and return its file entry."""
    rng = rng_for(seed, rel, kind, dest_rel)
    src = out / rel
    dest = out / dest_rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "byte_copy":
        shutil.copyfile(src, dest)
        size = entry["size"]
    else:
        with Image.open(src) as im:
            exif = im.info.get("exif")
            img = ImageOps.exif_transpose(im).convert("RGB")
        if kind == "resized":
            f = float(rng.uniform(0.5, 0.7))
            img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.Resampling.LANCZOS)
            _save(img, dest, 85, exif)
        elif kind == "recompressed":
            _save(img, dest, int(rng.integers(60, 76)), exif)
        elif kind == "cropped":
            cuts = [int(rng.uniform(0.02, 0.05) * s) if rng.integers(3) else 0 for s in (img.width, img.height) * 2]
            img = img.crop((cuts[0], cuts[1], img.width - cuts[2], img.height - cuts[3]))
            _save(img, dest, 90, exif)
        elif kind == "rotated_tag":
            img, tag = _rotate_by_tag(img, rng)
            _save(img, dest, 92, tag)
        elif kind == "png":
            _save(img, dest, 0)
        else:
            raise ValueError(kind)
        size = list(img.size)
    return {"group": entry["group"], "role": "copy", "kind": kind, "source": entry["source"], "size": size}


def _copy_job(job: tuple[str, dict[str, Any], str, str, str, int]) -> tuple[str, dict[str, Any]]:
    rel, entry, kind, dest_rel, out, seed = job
    return dest_rel, plant_copy(rel, entry, kind, dest_rel, Path(out), seed)


def _source_job(job: tuple[int, dict[str, str], str, int]) -> dict[str, dict[str, Any]]:
    n, src, out, seed = job
    return build_source(n, src, Path(out), seed)


def build(out_dir: str | Path, seed: int = 19, files: int = 2000, copy_share: float = 0.4, jobs: int = 2,
          given: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Write the library into ``out_dir`` (emptied first) and return its truth.

    ``files``: about how many files in all (originals + copies; if the sources give more
    tiles than that needs, tiles are dropped at random); ``copy_share``: the share of originals
    that get copies; ``given``: these sources ({"id", "path", "origin"}) instead of ``sources()``."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    found, missing = (given, []) if given is not None else sources()
    if not found:
        raise SystemExit("no source photos found: " + "; ".join(missing))
    # copies add about copy_share * 1.3 files per original
    wanted_originals = files / (1 + copy_share * 1.3)
    job_args, large = [], 0
    for s in found:  # large roles take turns among the large sources only
        job_args.append((large, s, str(out), seed))
        with Image.open(s["path"]) as im:
            large += max(im.size) >= SMALL_SOURCE
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        parts = list(pool.map(_source_job, job_args))
    originals: dict[str, dict[str, Any]] = {}
    for part in parts:
        originals.update(part)
    names = sorted(originals)
    rng = rng_for(seed, "trim")
    if len(names) > wanted_originals:  # too many tiles: drop scans at random (never the large ones)
        scans = [r for r in names if originals[r]["kind"] == "scan"]
        drop = set(rng.choice(scans, size=min(len(scans), len(names) - int(wanted_originals)), replace=False).tolist())
        for rel in drop:
            (out / rel).unlink()
            del originals[rel]
        names = sorted(originals)
    rng = rng_for(seed, "copies")
    chosen = sorted(rng.choice(names, size=int(len(names) * copy_share), replace=False).tolist())
    jobs_list = []
    for i, rel in enumerate(chosen):
        entry = originals[rel]
        kinds = [k for k in COPY_KINDS if not (k == "png" and max(entry["size"]) > 1200)]
        if not rel.endswith(".jpg"):
            kinds = [k for k in kinds if k != "rotated_tag"]  # PNG has no orientation tag readers agree on
        for j, kind in enumerate(rng.choice(kinds, size=1 + int(rng.random() < 0.3), replace=False).tolist()):
            folder = {"byte_copy": "backup", "png": "exports", "resized": "exports"}.get(kind, "edited")
            ext = ".png" if kind == "png" else Path(rel).suffix
            jobs_list.append((rel, entry, kind, f"{folder}/{i:04d}_{j}{ext}", str(out), seed))
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        copies = dict(pool.map(_copy_job, jobs_list))
    all_files = {**originals, **copies}
    groups: dict[str, list[str]] = {}
    for rel, entry in sorted(all_files.items()):
        groups.setdefault(entry["group"], []).append(rel)
    truth = {"format": FORMAT, "seed": seed, "sources": {s["id"]: s["origin"] for s in found}, "missing": missing,
             "files": all_files, "groups": [g for g in groups.values() if len(g) > 1]}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def summary(truth: dict[str, Any]) -> str:
    """One line: how many files of each kind, how many pictures with copies, MB on disk."""
    kinds: dict[str, int] = {}
    for f in truth["files"].values():
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    pairs = sum(len(g) * (len(g) - 1) // 2 for g in truth["groups"])
    return (f"{len(truth['files'])} files from {len(truth['sources'])} source photos: {kinds}; "
            f"{len(truth['groups'])} pictures with planted copies ({pairs} true pairs)")


def main(argv: list[str] | None = None) -> int:
    """Command line: build the library into OUT_DIR and print what was written."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    truth = build(args.out_dir, seed=args.seed, files=args.files, jobs=args.jobs)
    for note in truth["missing"]:
        print(f"note: missing source {note}", file=sys.stderr)
    print(f"{summary(truth)}; built in {time.perf_counter() - start:.1f} s -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
