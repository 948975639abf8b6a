"""Where a find-duplicates run's time goes, per decode mode, in one run (issue 19 item 2).

Makes two libraries of camera-like JPEGs from the sample catalog's originals (as
benchmarks/hash_throughput.py makes them: cropped, upscaled, noise added, quality 92):

- ``camera``: ``--files`` 12 MP (4000x3000) photos, about 3.2 MB each;
- ``mixed``: the same count spread over 640x400 scans, 1920x1080, 2560x1600 wallpapers
  and 12 MP camera files.

Then, for each library and each decode mode (``[hashing] decode``: exact, reduced):

1. end to end, as a user meets it: ``lumina-dedup find-duplicates LIB --json`` in a fresh
   process and a fresh catalog (start, imports, worker pool, hashing, search, grouping);
   wall seconds and photos per second, the best of ``--repeat`` runs;
2. one process, every file through ``record_for`` under cProfile: the share of each stage
   (read, checksum, EXIF, JPEG decode, other pixel work, thumbnails and hashes, geometry
   words), by the functions' own time.

The machine is shared: compare modes within one run; the load average is printed.

Usage: python benchmarks/profile_run.py [--files 24] [--repeat 2] [--modes exact,reduced]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import hash_throughput as ht  # noqa: E402  (the camera-like JPEG maker)

MIXED = [(640, 400), (1920, 1080), (2560, 1600), (4000, 3000)]

#: Stage of a profiled function: the first whose substrings one occurs in "file function".
STAGES = [
    ("read", ("read_file", "'read' of '_io.BufferedReader'")),
    ("checksum", ("sha256",)),
    ("EXIF", ("exifread", "decode/exif.py", "getexif", "TiffImagePlugin", "_orientation")),
    ("JPEG decode (libjpeg)", ("'decode' of 'ImagingDecoder'", "JpegImagePlugin", "draft")),
    ("gray, reduce, turn", ("'convert' of", "'reduce' of 'ImagingCore'", "'transpose' of", "to_gray")),
    ("thumbnails + 4 hashes", ("hashing/resize.py", "hashing/cpu.py", "pywt", "hashing/codes.py")),
    ("geometry words", ("hashing/borders.py", "hashing/geometry.py")),
]


def make(out: Path, sizes: list[tuple[int, int]], files: int, pool: ProcessPoolExecutor) -> list[str]:
    sources = ht._sources([])
    out.mkdir(parents=True)
    jobs = [(str(sources[n % len(sources)]), str(out / f"IMG_{n:04d}.jpg"), sizes[n % len(sizes)], n,
             n // len(sources), 10) for n in range(files)]
    list(pool.map(ht._make, jobs))
    return [j[1] for j in jobs]


def end_to_end(lib: Path, mode: str, work: Path) -> float:
    """Wall seconds of one fresh ``lumina-dedup find-duplicates`` over ``lib`` in ``mode``."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    config = work / "c.toml"
    config.write_text(f'[hashing]\ndecode = "{mode}"\n\n[gpu]\nuse = "off"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMINA_")}
    env |= {"XDG_CONFIG_HOME": str(work / "config"), "XDG_DATA_HOME": str(work / "data"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lumina_plugin.cli", "find-duplicates", str(lib), "--catalog",
           str(work / "c.db"), "--config", str(config), "--json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return seconds


def stage_of(key: tuple[str, int, str]) -> str:
    text = f"{key[0]} {key[2]}"
    for stage, parts in STAGES:
        if any(part in text for part in parts):
            return stage
    return "other (Python, NumPy, Pillow glue)"


def profile(paths: list[str], mode: str) -> tuple[float, dict[str, float]]:
    """(seconds per file, share of each stage) of ``record_for`` over ``paths`` in one process."""
    from threadpoolctl import threadpool_limits

    from lumina_plugin.ingest.records import record_for

    with threadpool_limits(1, user_api="blas"):  # as the pool's workers and the in-process path run
        record_for(paths[0], 250_000_000, 0, mode)  # first-call costs out
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        for p in paths:
            record_for(p, 250_000_000, 0, mode)
        prof.disable()
        seconds = time.perf_counter() - start
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    shares: dict[str, float] = {}
    for key, (_, _, own, _, _) in stats.items():
        shares[stage_of(key)] = shares.get(stage_of(key), 0.0) + own
    total = sum(shares.values()) or 1.0
    return seconds / len(paths), {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--modes", default="exact,reduced")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    modes = args.modes.split(",")
    results: dict = {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "load_before": os.getloadavg(), "libraries": {}}
    with tempfile.TemporaryDirectory(prefix="lumina-profile-") as tmp_name, ProcessPoolExecutor(2) as pool:
        tmp = Path(tmp_name)
        libs = {"camera": make(tmp / "camera", [(4000, 3000)], args.files, pool),
                "mixed": make(tmp / "mixed", MIXED, args.files, pool)}
        for name, paths in libs.items():
            mb = sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6
            rows = results["libraries"][name] = {"files": len(paths), "mb_per_file": round(mb, 2), "modes": {}}
            for mode in modes:
                seconds = min(end_to_end(tmp / name, mode, tmp / f"run-{name}-{mode}") for _ in range(args.repeat))
                per_file, shares = profile(paths, mode)
                rows["modes"][mode] = {"end_to_end_s": round(seconds, 2), "photos_per_s": round(len(paths) / seconds, 1),
                                       "one_process_ms_per_file": round(per_file * 1000, 1),
                                       "stages": {k: round(v, 3) for k, v in shares.items()}}
    results["load_after"] = os.getloadavg()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def markdown(results: dict) -> str:
    out = [f"{results['date']}, {results['cores']} cores, load average {results['load_before'][0]:.1f} before, "
           f"{results['load_after'][0]:.1f} after.", ""]
    for name, lib in results["libraries"].items():
        modes = list(lib["modes"])
        out += [f"**{name}** ({lib['files']} files, {lib['mb_per_file']} MB each)", "",
                "| | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes),
                "| find-duplicates, fresh process (s) | " + " | ".join(f"{lib['modes'][m]['end_to_end_s']}" for m in modes) + " |",
                "| photos/s end to end | " + " | ".join(f"{lib['modes'][m]['photos_per_s']}" for m in modes) + " |",
                "| one process, ms per file | " + " | ".join(f"{lib['modes'][m]['one_process_ms_per_file']}" for m in modes) + " |"]
        stages = {s for m in modes for s in lib["modes"][m]["stages"]}
        for stage in sorted(stages, key=lambda s: -lib["modes"][modes[0]]["stages"].get(s, 0)):
            out.append(f"| {stage} | " + " | ".join(f"{lib['modes'][m]['stages'].get(stage, 0):.0%}" for m in modes) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
