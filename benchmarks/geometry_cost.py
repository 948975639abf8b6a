"""What the geometry words cost (issue 17), measured in one run: hashing time per photo on the
CPU with and without them, the geometric candidate search over N photos (CPU or GPU), and the
index's bytes per photo.

    python benchmarks/geometry_cost.py                       # CPU: hashing, 100k and 1M search
    python benchmarks/geometry_cost.py --sizes 10000000 --device gpu --skip-hashing

Hashing: photos generated at 12 MP, 2 MP and 640x480 (smooth noise, so that resizes do real
work); the classic hashes alone (hashing/cpu.py ``hash_gray``, today's path) against all the
code words (ingest/records.py ``codes_of_gray``), best of ``--repeat`` runs each. Search: the
words of N photos joined by grouping/geometric.py ``candidates`` with the backend asked for,
once warm. Uniform random words: the search's cost on N distinct photos.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lumina_plugin.decode.photo import decode
from lumina_plugin.grouping import geometric
from lumina_plugin.hashing.cpu import hash_gray
from lumina_plugin.index.segments import NCODES
from lumina_plugin.ingest.records import codes_of_gray, record_for
from lumina_plugin.model import CLASSIC_WORDS, GEO_WORDS

SIZES = {"12 MP": (4000, 3000), "2 MP": (1600, 1200), "640x480": (640, 480)}


def smooth_noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def hashing(repeat: int, tmp: Path) -> None:
    """Per photo: the hashing step alone (from the decoded gray image), and the whole file as
    the pool hashes it (read, checksum, EXIF, decode, hashes: ``record_for``) as a JPEG q90."""
    print("| image | classic hashes (ms) | all code words (ms) | added | whole file, classic (ms) "
          "| whole file, all words (ms) | added |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (w, h) in SIZES.items():
        gray = smooth_noise(w, h, 7)
        classic = best(lambda: hash_gray(gray), repeat)  # noqa: B023
        everything = best(lambda: codes_of_gray(gray), repeat)  # noqa: B023
        path = tmp / f"{w}x{h}.jpg"
        gray.convert("RGB").save(path, quality=90)
        file_classic = best(lambda: hash_gray(decode(path).gray), repeat)  # noqa: B023
        file_all = best(lambda: record_for(str(path), 10**9), repeat)  # noqa: B023
        print(f"| {name} | {classic * 1e3:.1f} | {everything * 1e3:.1f} | {everything / classic - 1:+.0%} "
              f"| {file_classic * 1e3:.1f} | {file_all * 1e3:.1f} | {file_all / file_classic - 1:+.0%} |")


def random_words(n: int, seed: int) -> np.ndarray:
    """Words of n photos, uniform random bits: every key as likely as any other (a library of
    distinct photos), the search's cost without the pairs it must report."""
    return np.random.default_rng(seed).integers(0, 2**64, (n, GEO_WORDS), dtype=np.uint64, endpoint=False)


def search(sizes: list[int], backend: str, device: int) -> None:
    print("| N | backend | seconds | candidate pairs |")
    print("|---:|---|---:|---:|")
    for n in sizes:
        words = random_words(n, n)
        ids = np.arange(n, dtype=np.int64)
        options = {"backend": backend, "device": device}
        geometric.candidates(ids[:1000], words[:1000], options)  # warm: kernels, tables
        start = time.perf_counter()
        a, _ = geometric.candidates(ids, words, options)
        seconds = time.perf_counter() - start
        print(f"| {n:,} | {backend} | {seconds:.2f} | {len(a):,} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="photos in the search, comma-separated")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--gpu-device", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-hashing", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.node()} ({os.cpu_count()} cores, {platform.machine()}), Python "
          f"{platform.python_version()}, NumPy {np.__version__}, {time.strftime('%Y-%m-%d')}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"index bytes per photo: {8 + 8 * NCODES} with the geometry words ({GEO_WORDS} words), "
          f"{8 + 8 * CLASSIC_WORDS} without: {(8 + 8 * NCODES) / (8 + 8 * CLASSIC_WORDS):.1f}x\n")
    if not args.skip_hashing:
        with tempfile.TemporaryDirectory() as tmp:
            hashing(args.repeat, Path(tmp))
        print()
    backend = "gpu" if args.device == "gpu" else "mih"
    search([int(s) for s in args.sizes.split(",") if s], backend, args.gpu_device)


if __name__ == "__main__":
    main()
