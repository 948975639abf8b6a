"""Camera-like JPEGs made from the sample catalog's originals, for the throughput benchmarks.

Shared by benchmarks/hash_throughput.py (which re-exports these names for the scripts that
import them from there), jpeg_engines.py, profile_run.py, cold_files.py and gpu_split.py.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

SIZES = {"12": (4000, 3000), "2": (1920, 1080)}
def _sources(dirs: list[str]) -> list[Path]:
    if not dirs:
        sample = ROOT / "sample_catalog"
        return sorted(p for p in sample.rglob("*.jpg") if "exports" not in p.parts and "backup" not in p.parts)
    found = []
    for d in dirs:
        found += sorted(p for p in Path(d).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return found


def _make(job: tuple[str, str, tuple[int, int], int, int, int]) -> int:
    """One camera-like JPEG: the source cropped to the target's aspect (the crop slides
    with ``variant``: centre, top-left, bottom-right), resized, with +-``noise`` levels of
    uniform noise when upscaled (so a small source compresses like a camera photo, about
    3.5 MB at 12 MP for noise 10, not like a smooth gradient), saved at quality 92."""
    src, dest, size, seed, variant, noise = job
    with Image.open(src) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    aspect = size[0] / size[1]
    cw, ch = (int(h * aspect), h) if w / h > aspect else (w, int(w / aspect))
    frac = (0.5, 0.0, 1.0)[variant % 3]
    x0, y0 = int((w - cw) * frac), int((h - ch) * frac)
    upscale = size[0] > cw
    rgb = rgb.crop((x0, y0, x0 + cw, y0 + ch)).resize(
        size, Image.Resampling.BICUBIC if upscale else Image.Resampling.LANCZOS)
    arr = np.asarray(rgb, dtype=np.int16)
    if upscale:
        rng = np.random.default_rng(seed)
        arr = arr + rng.integers(-noise, noise + 1, size=arr.shape, dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92)
    Path(dest).write_bytes(buf.getvalue())
    return len(buf.getvalue())


def make_library(out: Path, sources: list[Path], size: tuple[int, int], distinct: int, files: int,
                 pool: ProcessPoolExecutor, noise: int) -> tuple[list[str], list[str], float]:
    """(distinct photo paths, all paths (hard links of those), mean MB per photo)."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(sources[n % len(sources)]), str(out / f"IMG_{n:04d}.jpg"), size, n, n // len(sources), noise)
            for n in range(distinct)]
    sizes = list(pool.map(_make, jobs))
    originals = [j[1] for j in jobs]
    originals_and_copies = list(originals)
    paths = []
    for n in range(files):
        original = originals[n % distinct]
        if n < distinct:
            paths.append(original)
            continue
        link = out / f"IMG_{n:04d}_copy.jpg"
        try:
            os.link(original, link)  # shares the original's pages in the page cache
        except OSError:
            link.write_bytes(Path(original).read_bytes())
            originals_and_copies.append(str(link))
        paths.append(str(link))
    for p in originals_and_copies:  # into the page cache
        Path(p).read_bytes()
    return originals, paths, float(np.mean(sizes)) / 1e6
