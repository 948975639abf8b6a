"""Photos as they lie on disk: hashing files that are not in the page cache, in mixed
formats, beside the disk's own read throughput measured in the same run.

The library: camera JPEGs (12 MP, 4000x3000 q92 with camera EXIF), camera RAWs (DNGs laid
out as cameras do, tests/test_decode_raw.py's ``write_raw``, each holding a full-size
4000x3000 JPEG preview: the GPU engines decode that preview), HEICs (2 MP, when
pillow-heif is installed: only the CPU decodes them; the run says when there is none) and
PNGs (2 MP, CPU). Every file is distinct on disk (a few base photos, each copy given a
unique comment or trailing bytes, so no two share a page), and each is dropped from the
page cache after it is written and again before each pass
(``os.posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)``; the run refuses a tmpfs, where that
drops nothing). Then, per pass, caches dropped first:

- the disk alone: every file read whole, raw, by 1 and by ``--threads`` threads (bytes/s
  and files/s of this very mix; ``--threads 16,32`` reads with each count, and the bound
  takes the fastest);
- ``hash_paths`` end to end (the pool, and the GPU processes when a GPU is usable, started
  and warmed on other files first): photos/s and bytes/s;
- the same run again with every file in the page cache: the decode ceiling of this mix.

The target: cold photos/s at least 90% of the lower of the disk's files/s and the warm run's.

Usage: python benchmarks/cold_files.py [--files 1200] [--dir DIR] [--mix jpeg:70,raw:15,heic:5,png:10]
           [--threads 16[,32]] [--decode reduced] [--json OUT]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

import hash_throughput as ht  # noqa: E402  (puts the project on the path)

from lumina_plugin.config import Config  # noqa: E402
from lumina_plugin.ingest import pipeline  # noqa: E402
from lumina_plugin.ingest import pool as parallel  # noqa: E402
from lumina_plugin.settings.hashing import HashingSettings  # noqa: E402

BASES = 6  # distinct photos per format


def _heif() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _base(job: tuple[str, str, int]) -> bytes:
    """One base file's bytes: ``kind`` made from a sample photo with camera-like noise."""
    kind, src, n = job
    size = (4000, 3000) if kind in ("jpeg", "raw") else (1920, 1080)
    with tempfile.TemporaryDirectory() as tmp:
        ht._make((src, f"{tmp}/x.jpg", size, n, n, 10))
        with Image.open(f"{tmp}/x.jpg") as im:
            im.load()
            jpeg = Path(f"{tmp}/x.jpg").read_bytes()
            if kind == "jpeg":
                exif = Image.Exif()
                exif.update({0x010F: "Canon", 0x0110: "Canon EOS 5D Mark IV", 0x0112: (1, 6, 8)[n % 3],
                             0x0132: f"2024:05:{1 + n:02d} 10:11:12"})
                payload = exif.tobytes()
                return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]
            if kind == "raw":
                from test_decode_raw import write_raw

                write_raw(Path(f"{tmp}/x.dng"), preview=jpeg, orientation=(1, 6, 8)[n % 3])
                return Path(f"{tmp}/x.dng").read_bytes()
            buf = io.BytesIO()
            if kind == "heic":
                _heif()
            im.save(buf, "PNG" if kind == "png" else "HEIF", **({"quality": 90} if kind == "heic" else {}))
            return buf.getvalue()


def _unique(kind: str, data: bytes, n: int) -> bytes:
    """``data`` made a distinct file that decodes to the same pixels: a JPEG comment, a PNG
    text chunk, bytes after a RAW's or HEIC's last structure."""
    tag = f"lumina cold-files copy {n}".encode()
    if kind == "jpeg":
        return data[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]
    if kind == "png":
        body = b"tEXt" + b"Comment\0" + tag
        chunk = len(body[4:]).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        return data[:33] + chunk + data[33:]  # after the signature and IHDR
    return data + tag


def drop(paths: list[str]) -> None:
    """Drop each file's pages from the page cache."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def make_library(root: Path, files: int, mix: dict[str, int], makers: ProcessPoolExecutor) -> list[str]:
    sources = ht._sources([])
    kinds = [k for k in mix if mix[k] > 0]
    bases = {k: list(makers.map(_base, [(k, str(sources[(7 * n + i) % len(sources)]), n)
                                        for n in range(BASES)])) for i, k in enumerate(kinds)}
    total = sum(mix[k] for k in kinds)
    counts = {k: files * mix[k] // total for k in kinds}
    counts[kinds[0]] += files - sum(counts.values())
    paths = []
    ext = {"jpeg": ".jpg", "raw": ".dng", "heic": ".heic", "png": ".png"}
    for k in kinds:
        for n in range(counts[k]):
            dest = root / f"{k}_{n:05d}{ext[k]}"
            with open(dest, "wb") as fh:
                fh.write(_unique(k, bases[k][n % BASES], n))
                fh.flush()
                os.fsync(fh.fileno())
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            paths.append(str(dest))
    rng = np.random.default_rng(1)  # interleaved, as a camera folder with RAW+JPEG pairs would be
    return [paths[i] for i in rng.permutation(len(paths))]


def read_raw(paths: list[str], threads: int) -> float:
    """Seconds to read every file whole with ``threads`` threads (caches dropped first)."""
    drop(paths)

    def one(p: str) -> int:
        with open(p, "rb", buffering=0) as fh:
            return len(fh.read())
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as readers:
        sum(readers.map(one, paths))
    return time.perf_counter() - start


def hash_run(paths: list[str], config: Config, cold: bool) -> tuple[float, dict]:
    if cold:
        drop(paths)
    else:
        for p in paths:
            Path(p).read_bytes()
    start = time.perf_counter()
    done = 0
    for records, errors in pipeline.hash_paths(paths, config):
        assert not errors, errors[:3]
        done += len(records)
    seconds = time.perf_counter() - start
    assert done == len(paths)
    return seconds, dict(pipeline.LAST_RUN)


def thread_counts(text: str) -> list[int]:
    """``--threads``: one count or several, comma-separated ("16,32"), each at least 1."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of thread counts: {text!r} (for example 16 or 16,32)") from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be at least 1: {text!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1200)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the library (a real disk, not tmpfs)")
    parser.add_argument("--mix", default="jpeg:70,raw:15,heic:5,png:10")
    parser.add_argument("--threads", type=thread_counts, default=[16],
                        help="reading threads of the disk's own pass; several, comma-separated, each read in turn "
                             "(the bound is the fastest)")
    parser.add_argument("--decode", default=HashingSettings().decode)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gpu-processes", type=int, default=0, help="per device (0: the default)")
    parser.add_argument("--gpu-batch-size", type=int, default=0, help="photos per GPU batch (0: the default)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-prefetch", action="store_true",
                        help="[hashing] prefetch = false: no read-ahead advice for the GPU's batches")
    parser.add_argument("--prefetch-ahead", type=int, default=HashingSettings().prefetch_ahead,
                        help="[hashing] prefetch_ahead: batches past each claimed GPU batch read ahead too")
    parser.add_argument("--no-one-thread", action="store_true",
                        help="skip the disk's one-thread read (the bound uses the many-thread read; saves a "
                             "slow pass on a large library)")
    parser.add_argument("--library", type=Path, default=None,
                        help="keep the library in this folder and use it again when it is there (several "
                             "runs over the same files; made when missing, never removed)")
    args = parser.parse_args()
    mix = {k: int(v) for k, v in (part.split(":") for part in args.mix.split(","))}
    heif = _heif()
    if not heif and mix.get("heic"):
        print("no HEIC decoder here (pillow-heif is not installed): the library has no HEICs")
        mix["heic"] = 0
    info = ht.machine()
    print(json.dumps(info))
    root = args.library or Path(tempfile.mkdtemp(prefix="cold-files-", dir=args.dir))
    root.mkdir(parents=True, exist_ok=True)
    made = root / "paths.json"
    fs = _filesystem(root)
    print(f"library in {root} ({fs})")
    if fs == "tmpfs":
        raise SystemExit("the library is on tmpfs, which the page cache cannot drop: pass --dir on a disk")
    config = Config(batch_size=256, hashing=HashingSettings(decode=args.decode, gpu_processes=args.gpu_processes,
                                                            gpu_batch_size=args.gpu_batch_size,
                                                            prefetch=not args.no_prefetch,
                                                            prefetch_ahead=args.prefetch_ahead))
    try:
        with ProcessPoolExecutor(parallel.cpu_count()) as makers:
            t0 = time.perf_counter()
            if args.library and made.exists():
                warm, paths = json.loads(made.read_text())
            else:
                (root / "warm").mkdir()
                (root / "lib").mkdir()
                warm = make_library(root / "warm", 96, mix, makers)
                paths = make_library(root / "lib", args.files, mix, makers)
                if args.library:
                    made.write_text(json.dumps([warm, paths]))
        size = sum(os.path.getsize(p) for p in paths)
        print(f"{len(paths)} files, {size / 1e9:.2f} GB ({', '.join(f'{k} {v}' for k, v in mix.items() if v)}), "
              f"made in {time.perf_counter() - t0:.0f} s")
        list(pipeline.hash_paths(warm, config))  # the pool and the GPU processes started, first batches done
        ht._start_every_worker()
        rows: list[tuple[str, float, dict]] = []
        for r in range(args.rounds):
            for threads in ([] if args.no_one_thread else [1]) + args.threads:
                rows.append((f"disk alone, raw reads, {threads} thread{'s' if threads > 1 else ''} (round {r + 1})",
                             read_raw(paths, threads), {}))
            seconds, stats = hash_run(paths, config, cold=True)
            rows.append((f"ours, cold files (round {r + 1})", seconds, stats))
            seconds, stats = hash_run(paths, config, cold=False)
            rows.append((f"ours, files in the page cache (round {r + 1})", seconds, stats))
        print(f"\n{'contender':48} {'files/s':>8} {'MB/s':>8}  split")
        for name, seconds, stats in rows:
            split = f"GPU {stats['gpu_hashed']}/{len(paths)} in {stats.get('gpu_processes')} processes, batches of {stats.get('gpu_batch')}, {stats['workers']} workers" if stats.get("gpu") else \
                (f"{stats['workers']} workers, CPU only" if stats else "")
            print(f"{name:48} {len(paths) / seconds:8.1f} {size / seconds / 1e6:8.1f}  {split}")
            if stats.get("gpu_last_answers_s"):  # far apart: some GPU processes idled at the end
                print(f"{'':48} {seconds:8.2f} s; the GPU processes' last answers at "
                      f"{', '.join(f'{t:.2f}' for t in stats['gpu_last_answers_s'])} s")
        disk = max(len(paths) / s for n, s, _ in rows if n.startswith("disk"))
        ceiling = max(len(paths) / s for n, s, _ in rows if "page cache" in n)
        cold = max(len(paths) / s for n, s, _ in rows if "cold" in n)
        bound = min(disk, ceiling)
        print(f"\ncold {cold:.1f} photos/s = {cold / bound:.1%} of the lower of the disk ({disk:.1f} files/s) "
              f"and the decode ceiling ({ceiling:.1f} photos/s, files cached)")
        if args.json:
            args.json.write_text(json.dumps({"machine": info, "files": len(paths), "bytes": size, "mix": mix,
                                             "filesystem": fs, "rows": [{"name": n, "seconds": s, "stats": st}
                                                                        for n, s, st in rows]}, indent=2))
    finally:
        parallel.shutdown_pool()
        if not args.library:
            import shutil
            shutil.rmtree(root, ignore_errors=True)


def _filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` lies on (from /proc/mounts), or "unknown"."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


if __name__ == "__main__":
    main()
