"""Build the public accuracy corpus of issue 17: copies people make and look-alikes, from photos
this project may redistribute, deterministically (fixed seeds), in well under a minute.

Why generated and not committed: about 1,100 files would bloat the repository; the originals
are already here (``sample_catalog/``, licences in its SOURCES.md) and the edits are code.

Originals:
- the original photos of ``sample_catalog/`` (the rows of SOURCES.md's "Original photos"
  table; never the planted copies), copied byte for byte with their EXIF;
- with ``skimage`` installed, the wheel's extra free photos listed in ``SKIMAGE_PHOTOS``
  (scikit-image's own licence notes in ``skimage/data/_fetchers.py``); the ones the sample
  catalog already holds (astronaut, coffee, chelsea, camera, rocket, motorcycle) are left out,
  or the same picture would appear as two "different" originals. Downscaled to ``max_side``.
Originals whose long side is under ``min_side`` px are skipped.

Layout: ``<out>/<source id>/original.jpg`` and ``<out>/<source id>/<kind>.<ext>`` for each
kind of ``_corpus_kinds.KINDS`` that applies; shifted windows as ``shifted_a``/``shifted_b``;
same-edit negatives as ``<kind>-<n>.jpg``. ``<out>/truth.json``:

    {"format": "lumina-accuracy-corpus/1", "seed": 17, "max_side": 1024, "min_side": 400,
     "sources": {"<id>": {"origin", "author", "licence", "size": [w, h]}},
     "kinds": {"<kind>": {"role": "copy"|"negative", "group", "bucket": "hard"|"colour"|"simple"|null,
                          "description", "vs_own_source": "false"|"ignore"}},
     "files": {"<id>/<kind>.jpg": {"source": "<id>", "kind": "<kind>"|"original",
                                   "role": "original"|"copy"|"negative", "params": {...}}},
     "negative_pairs": [{"files": [a, b], "kind": "mirror"}, ...],
     "related_sources": [{"sources": [id1, id2], "kind": "two_shots"}],
     "rules": "..."}

Usage: python benchmarks/accuracy_corpus.py OUT_DIR [--seed 17] [--max-side 1024] [--no-skimage] [--jobs 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

# benchmarks/ is not a package: its helpers are imported from beside this file, whether it runs
# as a script, from accuracy.py or from the tests.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import _corpus_edits as E
from _corpus_kinds import CAPTIONS, KINDS, PER_ORIGINAL, Out, shifted_windows

FORMAT = "lumina-accuracy-corpus/1"
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_catalog"

#: scikit-image data files (in the wheel, no download) free to redistribute and not already in
#: sample_catalog: file -> (author, licence as the skimage docstring states it). Textures
#: (brick, grass, gravel), microscopy (cell) and drawings are left out: not photos.
SKIMAGE_PHOTOS: dict[str, tuple[str, str]] = {
    "hubble_deep_field.jpg": ("NASA (Hubble eXtreme Deep Field)", "Public domain ('may be freely used in the public domain')"),
    "retina.jpg": ("Mikael H\u00e4ggstr\u00f6m (Wikimedia Commons)", "CC0-1.0"),
    "ihc.png": ("Center for Microscopy And Molecular Imaging (CMMI)", "No known copyright restrictions"),
    "clock_motion.png": ("Stefan van der Walt", "Public domain (released by the photographer)"),
}

#: The Middlebury stereo pair of sample_catalog: a real "two shots of one scene" negative.
STEREO = ("DSC_1001", "DSC_1002")

RULES = (
    "A pair of files is TRUE when both have the same source and both are the original or copies. "
    "A pair is FALSE when it is listed in negative_pairs; when its sources are listed together in "
    "related_sources (every file of one against every file of the other, counted under that kind); "
    "when the sources differ (cross_source); or when one file is a negative of the other's source and "
    "its kind has vs_own_source == 'false' (a mirror is a copy of no copy of its original either). "
    "Other pairs are not scored: two negatives of one source (a flip is a 180-degree turn of the "
    "mirror), and a shifted window or same-edit file against its own original or copies (a 75% window "
    "or a re-framed copy is a plausible crop of it). Recall per copy kind: (original, copy) pairs found.")


def sample_originals() -> list[dict[str, str]]:
    """The original photos of sample_catalog, from the 'Original photos' table of SOURCES.md."""
    rows, inside = [], False
    for line in (SAMPLE / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Original photos"
            continue
        if inside and line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rel = cells[0].strip("`")
            rows.append({"id": Path(rel).stem, "path": str(SAMPLE / rel), "origin": f"sample_catalog/{rel}",
                         "author": cells[2], "licence": cells[3]})
    return rows


def skimage_originals() -> list[dict[str, str]]:
    """The extra free photos in an installed scikit-image wheel (found, not imported: no SciPy)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    out = []
    for name, (author, licence) in SKIMAGE_PHOTOS.items():
        if (data / name).is_file():
            out.append({"id": "skimage_" + Path(name).stem, "path": str(data / name),
                        "origin": f"scikit-image: skimage/data/{name}", "author": author, "licence": licence})
    return out


def kind_rng(seed: int, source: str, kind: str) -> np.random.Generator:
    """The RNG of one (original, kind): independent of every other kind and original."""
    return np.random.default_rng([seed, zlib.crc32(source.encode()), zlib.crc32(kind.encode())])


def _exif_bytes(base: bytes | None, how: str | int) -> bytes | None:
    """The EXIF block for a copy: the original's raw block reloaded (sub-IFDs and times kept),
    its Orientation set to 1 ("keep") or to ``how``; None for "strip"."""
    if how == "strip":
        return None
    exif = Image.Exif()
    if base:
        exif.load(base)
    if how == "keep":
        if 274 in exif:
            exif[274] = 1
    else:
        exif[274] = int(how)
    return exif.tobytes() if len(exif) else None


def write(out: Out, path_stem: Path, base_exif: bytes | None) -> Path:
    """Encode ``out`` next to ``path_stem`` (extension from its format); returns the path."""
    path = path_stem.with_suffix("." + out.fmt)
    exif = _exif_bytes(base_exif, out.exif)
    kw: dict[str, Any] = {} if exif is None else {"exif": exif}
    img = out.image if out.image.mode in ("RGB", "L") else out.image.convert("RGB")
    if out.fmt == "jpg":
        if out.subsampling is not None:
            kw["subsampling"] = out.subsampling
        img.save(path, "JPEG", quality=out.quality, **kw)
    elif out.fmt == "png":
        img.save(path, "PNG", **kw)
    elif out.fmt == "webp":
        img.save(path, "WEBP", quality=out.quality, method=4, **kw)
    else:
        raise ValueError(out.fmt)
    return path


def _place_original(src: dict[str, str], out_dir: Path, max_side: int) -> Path:
    """Byte copy of a sample photo (its EXIF kept); an skimage photo downscaled and saved q90."""
    dest = out_dir / src["id"] / "original.jpg"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src["origin"].startswith("sample_catalog/") and Path(src["path"]).suffix.lower() in (".jpg", ".jpeg"):
        shutil.copyfile(src["path"], dest)
        return dest
    with Image.open(src["path"]) as im:
        img = ImageOps.exif_transpose(im)
        img = img.convert("L") if img.mode in ("L", "I", "I;16", "1") else img.convert("RGB")
    if max(img.size) > max_side:
        img = E.resize(img, max_side / max(img.size))
    img.save(dest, "JPEG", quality=90)
    return dest


def _load_upright(path: Path) -> tuple[Image.Image, bytes | None]:
    """The photo as displayed (orientation applied) and its raw EXIF block."""
    with Image.open(path) as im:
        exif = im.info.get("exif")
        img = ImageOps.exif_transpose(im)
        img = img.convert("L") if img.mode == "L" else img.convert("RGB")
    return img, exif


def build_source(src: dict[str, str], out_dir: Path, seed: int, max_side: int,
                 kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """All files of one original (or only ``kinds``): its truth fragment (files, negative pairs, size)."""
    original = _place_original(src, out_dir, max_side)
    img, exif = _load_upright(original)
    sid = src["id"]
    rel = lambda p: p.relative_to(out_dir).as_posix()  # noqa: E731
    files: dict[str, dict[str, Any]] = {rel(original): {"source": sid, "kind": "original", "role": "original"}}
    negatives: list[dict[str, Any]] = []
    for kind in (k for k in PER_ORIGINAL if kinds is None or k in kinds):
        made = KINDS[kind].make(img, kind_rng(seed, sid, kind))  # type: ignore[misc]
        if made is None:
            continue
        path = write(made, out_dir / sid / kind, exif)
        files[rel(path)] = {"source": sid, "kind": kind, "role": KINDS[kind].role, "params": made.params}
        if KINDS[kind].role == "negative":
            negatives.append({"files": [rel(original), rel(path)], "kind": kind})
    if kinds is None or "shifted" in kinds:
        pair = []
        for tag, made in zip("ab", shifted_windows(img, kind_rng(seed, sid, "shifted")), strict=True):
            path = write(made, out_dir / sid / f"shifted_{tag}", exif)
            files[rel(path)] = {"source": sid, "kind": "shifted", "role": "negative", "params": made.params}
            pair.append(rel(path))
        negatives.append({"files": pair, "kind": "shifted"})
    return {"id": sid, "size": list(img.size), "files": files, "negative_pairs": negatives}


def _same_edit(kind: str, img: Image.Image, n: int) -> Image.Image:
    """The one edit both photos of a same-edit pair get, on content normalised to one size."""
    if kind == "same_letterbox":
        content = E.centre_aspect_crop(img.convert("RGB"), 16 / 9).resize((640, 360), Image.Resampling.LANCZOS)
        return E.pad(content, 0, 140, 0, 140, (0, 0, 0))
    content = E.centre_aspect_crop(img.convert("RGB"), 3 / 2).resize((600, 400), Image.Resampling.LANCZOS)
    if kind == "same_caption":
        return E.caption_band(content, CAPTIONS[n % len(CAPTIONS)], 0.10, "bottom")
    return E.pad(content, 36, 36, 36, 36, (255, 255, 255))


def build_same_edits(ids: list[str], out_dir: Path, seed: int, pairs_per_kind: int,
                     kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Pairs of DIFFERENT originals given the same caption band, letterbox canvas or frame."""
    files: dict[str, dict[str, Any]] = {}
    negatives = []
    for kind in ("same_caption", "same_letterbox", "same_frame"):
        if kinds is not None and kind not in kinds:
            continue
        order = kind_rng(seed, "*", kind).permutation(sorted(ids))
        for n in range(min(pairs_per_kind, len(order) // 2)):
            pair = []
            for sid in order[2 * n:2 * n + 2]:
                img, exif = _load_upright(out_dir / sid / "original.jpg")
                path = write(Out(_same_edit(kind, img, n), exif="strip"), out_dir / sid / f"{kind}-{n}", exif)
                rel = path.relative_to(out_dir).as_posix()
                files[rel] = {"source": str(sid), "kind": kind, "role": "negative", "params": {"pair": n}}
                pair.append(rel)
            negatives.append({"files": pair, "kind": kind})
    return {"files": files, "negative_pairs": negatives}


def build(out_dir: str | Path, seed: int = 17, max_side: int = 1024, min_side: int = 400,
          use_skimage: bool = True, limit: int | None = None, jobs: int = 1,
          pairs_per_kind: int = 4, only: Iterable[str] | None = None,
          kinds: Iterable[str] | None = None) -> dict[str, Any]:
    """Write the corpus into ``out_dir`` (emptied of an older corpus first) and return truth.

    ``limit`` keeps the first N originals (sorted by id), ``only`` the originals with these ids,
    ``kinds`` only these edit and negative kinds: the tests build a tiny corpus."""
    out_dir = Path(out_dir)
    if (out_dir / "truth.json").exists():
        old = json.loads((out_dir / "truth.json").read_text())
        for sid in old.get("sources", {}):
            shutil.rmtree(out_dir / sid, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sample_originals() + (skimage_originals() if use_skimage else [])
    kept = []
    for src in sorted(sources, key=lambda s: s["id"]):
        with Image.open(src["path"]) as im:
            if max(im.size) >= min_side:
                kept.append(src)
    if only is not None:
        wanted = set(only)
        kept = [s for s in kept if s["id"] in wanted]
    kept = kept[:limit] if limit else kept
    only_kinds = None if kinds is None else tuple(kinds)
    n = len(kept)
    if jobs > 1 and n > 1:
        with ProcessPoolExecutor(min(jobs, n)) as pool:
            parts = list(pool.map(build_source, kept, [out_dir] * n, [seed] * n, [max_side] * n, [only_kinds] * n))
    else:
        parts = [build_source(s, out_dir, seed, max_side, only_kinds) for s in kept]
    truth: dict[str, Any] = {
        "format": FORMAT, "seed": seed, "max_side": max_side, "min_side": min_side,
        "sources": {}, "kinds": {}, "files": {}, "negative_pairs": [], "related_sources": [], "rules": RULES}
    for src, part in zip(kept, parts, strict=True):
        truth["sources"][src["id"]] = {k: src[k] for k in ("origin", "author", "licence")} | {"size": part["size"]}
        truth["files"].update(part["files"])
        truth["negative_pairs"] += part["negative_pairs"]
    same = build_same_edits([s["id"] for s in kept], out_dir, seed, pairs_per_kind, only_kinds)
    truth["files"].update(same["files"])
    truth["negative_pairs"] += same["negative_pairs"]
    if all(s in truth["sources"] for s in STEREO) and (only_kinds is None or "two_shots" in only_kinds):
        truth["related_sources"].append({"sources": list(STEREO), "kind": "two_shots"})
        truth["negative_pairs"].append({"files": [f"{s}/original.jpg" for s in STEREO], "kind": "two_shots"})
    for name, k in KINDS.items():
        truth["kinds"][name] = {"role": k.role, "group": k.group, "bucket": k.bucket, "description": k.description,
                                "vs_own_source": k.vs_own_source}
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return truth


def main(argv: list[str] | None = None) -> int:
    """Command line: build the corpus into OUT_DIR and print what was written."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--min-side", type=int, default=400)
    ap.add_argument("--no-skimage", action="store_true", help="only sample_catalog's originals")
    ap.add_argument("--limit", type=int, help="first N originals only")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    truth = build(args.out_dir, seed=args.seed, max_side=args.max_side, min_side=args.min_side,
                  use_skimage=not args.no_skimage, limit=args.limit, jobs=args.jobs)
    roles: dict[str, int] = {}
    for f in truth["files"].values():
        roles[f["role"]] = roles.get(f["role"], 0) + 1
    print(f"{len(truth['sources'])} originals, {len(truth['files'])} files ({roles}), "
          f"{len(truth['negative_pairs'])} negative pairs in {time.perf_counter() - start:.1f} s -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
