"""Time per photo: ``lumina-dedup import`` against ``imagehash`` (all four hashes), in one run.

Makes camera-sized JPEGs from the sample catalog's real photos (upscaled with a
little noise so they compress like photos, not like smooth gradients), then times:

- imagehash, default settings: open each photo, average_hash, dhash, phash, whash
  (whash's default image_scale resizes to ~2048 px for a camera photo);
- imagehash with whash(image_scale=64), the scale our wHash uses;
- our import path end to end (read, SHA-256, EXIF, one decode, four hashes, catalog
  transaction, index segment, pair search, tagging) into a fresh catalog, one process.

Usage: python benchmarks/import_vs_imagehash.py [--count N] [--size 4000x3000] [--quality 92]
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"


def make_photos(out: Path, count: int, size: tuple[int, int], quality: int) -> list[Path]:
    sources = sorted(p for p in SAMPLE.rglob("*.jpg") if "exports" not in p.parts)
    rng = np.random.default_rng(0)
    paths = []
    for n in range(count):
        src = Image.open(sources[n % len(sources)]).convert("RGB").resize(size, Image.Resampling.BICUBIC)
        arr = np.asarray(src, dtype=np.int16) + rng.integers(-6, 7, size=(size[1], size[0], 3), dtype=np.int16)
        path = out / f"IMG_{n:04d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=quality)
        paths.append(path)
    return paths


def time_imagehash(paths: list[Path], whash_scale: int | None) -> float:
    import imagehash
    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            img.load()
            imagehash.average_hash(img), imagehash.dhash(img), imagehash.phash(img)
            imagehash.whash(img, image_scale=whash_scale)
    return time.perf_counter() - start


def time_import(paths: list[Path], workdir: Path) -> float:
    from lumina_plugin.engine import Engine
    start = time.perf_counter()
    with Engine(workdir / "bench.db") as engine:
        report = engine.import_paths([str(p) for p in paths])
    elapsed = time.perf_counter() - start
    assert report.hashed == len(paths) and not report.errors, report.errors
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--quality", type=int, default=92)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "photos").mkdir()
        paths = make_photos(work / "photos", args.count, size, args.quality)  # type: ignore[arg-type]
        mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        # Warm the page cache and the imports so every contender reads from memory.
        for p in paths:
            p.read_bytes()
        random.shuffle(paths)
        rows = [
            ("imagehash 4 hashes (whash default scale)", time_imagehash(paths, None)),
            ("imagehash 4 hashes (whash image_scale=64)", time_imagehash(paths, 64)),
            ("lumina-dedup import (end to end)", time_import(paths, work)),
        ]
    print(f"{args.count} JPEGs {size[0]}x{size[1]} q{args.quality}, {mb:.2f} MB each; "
          f"{platform.processor() or platform.machine()}, 1 process")
    base = rows[0][1]
    print(f"{'contender':45} {'ms/photo':>9} {'photos/s':>9} {'vs imagehash':>13}")
    for name, seconds in rows:
        print(f"{name:45} {1000 * seconds / args.count:9.1f} {args.count / seconds:9.2f} {base / seconds:12.2f}x")


if __name__ == "__main__":
    main()
