"""How fast could find-duplicates be on the peer library? Its floor, against findimagedupes.

Issue 19 asks for find-duplicates three times as fast as findimagedupes on a library of mixed
real photos. This script measures how much of a run any change to our hashing or our pixel
looks could remove, by running the same command with parts of it switched off (in one run,
in turn with findimagedupes, on a warm page cache):

- ``ours``: ``lumina-dedup find-duplicates LIB`` as users run it;
- ``ours, no looks``: every pixel look answers "no match" at once (the pairs the geometry
  words leave unsure are dropped and the classic matches they doubt are kept apart);
- ``ours, no hashing or looks``: every photo is read, checksummed, its EXIF parsed and its
  pixels decoded as usual, but its code words are random (nothing is hashed, no pair is
  found, nothing is looked at): the process start, the worker pool, the decoders, the
  catalog and the search over codes that never meet.

The switched-off variants are no product: they lose copies (their F1 is printed beside them).
They bound what hashing and looks can win: the third is what ours would cost if both took no
time at all. The parts are switched off in every process of a run (the worker pool's too)
by a ``sitecustomize`` module on ``PYTHONPATH`` that patches ``lumina_plugin.ingest.records``
and ``lumina_plugin.grouping.second_look`` as they are imported; the product has no such
switch.

Then, in this process, every file's decode (``lumina_plugin.decode.photo.decode``, reduced
mode) under cProfile: the CPU seconds spent inside Pillow's C decoders (libjpeg-turbo, zlib)
against the Python around them.

CPU seconds are the machine's busy time (``/proc/stat``) over each run: the whole process
tree, pool workers included. Run it on a quiet machine.

Usage: python benchmarks/floor.py [--library DIR] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peer_library
from vs_peers import FindImageDupes, Ours, Tool, score_library, warm

ROOT = Path(__file__).resolve().parent.parent

SITE_NAME = "sitecustomize.py"
#: Imported first by every Python process of a run (``PYTHONPATH``): patches the modules
#: named in ``LUMINA_BENCH_FLOOR`` ("looks", or "hashing" for hashing and looks) as they load.
SITECUSTOMIZE = '''
import importlib.abc, importlib.machinery, os, sys

_OFF = os.environ.get("LUMINA_BENCH_FLOOR", "")


def _no_looks(module):
    def pixel_look(photo_of, max_pixels, workers=1):
        return lambda pairs: [0] * len(pairs)
    module.pixel_look = pixel_look


def _no_hashing(module):
    import time
    import numpy as np
    from lumina_plugin.model import CODE_WORDS
    made = {}

    def codes_of_gray(gray):
        # random words that never meet (no pass over the pixels); the generator is made in
        # the worker itself, so that two workers forked from one server never share a stream
        rng = made.get(os.getpid())
        if rng is None:
            rng = made[os.getpid()] = np.random.default_rng([os.getpid(), time.time_ns()])
        return rng.integers(0, 1 << 63, CODE_WORDS, dtype=np.uint64)
    module.codes_of_gray = codes_of_gray


_PATCHES = {"lumina_plugin.grouping.second_look": _no_looks}
if _OFF == "hashing":
    _PATCHES["lumina_plugin.ingest.records"] = _no_hashing


class _Patcher(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec


if _OFF:
    sys.meta_path.insert(0, _Patcher())
'''


def busy_seconds() -> float:
    """CPU seconds the machine has been busy (all cores: user, nice, system, irq, softirq; not
    the time a hypervisor stole, which on a shared host is nobody's work here)."""
    with open("/proc/stat", encoding="ascii") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def variants(python: str, site: Path) -> list[tuple[Tool, str | None]]:
    """The contenders and how each is switched off (the LUMINA_BENCH_FLOOR value)."""
    path = os.pathsep.join([str(site), str(ROOT)])
    out: list[tuple[Tool, str | None]] = []
    for label, off in (("ours", None), ("ours, no looks", "looks"), ("ours, no hashing or looks", "hashing")):
        env = [f"PYTHONPATH={path}"] + ([f"LUMINA_BENCH_FLOOR={off}"] if off else [])
        out.append((Ours(label, ["env", *env, python, "-m", "lumina_plugin.cli"], None), off))
    out.append((FindImageDupes(), None))
    return out


def time_all(contenders: list[tuple[Tool, str | None]], lib: Path, truth: dict[str, Any], repeats: int,
             tmp: Path) -> dict[str, dict[str, Any]]:
    """Each contender ``repeats`` times, in turn: wall seconds, busy CPU seconds, score."""
    results: dict[str, dict[str, Any]] = {}
    for rep in range(repeats):
        before: set[Any] | None = None  # the pairs of the run before, one part less switched off
        for tool, off in contenders:
            if tool.missing:
                continue
            r = results.setdefault(tool.label, {"seconds": [], "cpu": []})
            cpu, start = busy_seconds(), time.perf_counter()
            pairs, note = tool.run(lib, tmp / f"{tool.label.replace(' ', '_').replace(',', '')}-{rep}")
            r["seconds"].append(time.perf_counter() - start)
            r["cpu"].append(busy_seconds() - cpu)
            r["note"], r["score"] = note, score_library(truth, pairs)
            if off is not None and pairs == before:
                # what the run before found: this part was not switched off (a module renamed?),
                # and the figure would be the run before's under another name
                raise SystemExit(f"{tool.label}: found exactly the pairs of the run before; "
                                 f"{SITE_NAME} switched nothing off")
            before = pairs
            print(f"  {tool.label}: {r['seconds'][-1]:.2f} s, {r['cpu'][-1]:.2f} s CPU, "
                  f"F1 {r['score']['f1'] or 0:.3f}", file=sys.stderr)
    for r in results.values():
        r["median_s"], r["median_cpu"] = statistics.median(r["seconds"]), statistics.median(r["cpu"])
    return results


def decoder_share(lib: Path) -> dict[str, float]:
    """CPU seconds of every file's reduced decode in this process, and how much of it Pillow's
    C decoders took (their ``ImagingDecoder.decode`` calls' own time)."""
    sys.path.insert(0, str(ROOT))
    from lumina_plugin.decode.photo import PhotoError, decode

    files = sorted(p for p in lib.rglob("*") if p.is_file() and p.name != "truth.json")

    def decode_all() -> None:
        for p in files:
            try:
                decode(p, 0, 0, "reduced")
            except PhotoError:
                pass

    decode_all()  # warm: imports, lazily built tables
    start = time.process_time()
    decode_all()
    plain = time.process_time() - start
    prof = cProfile.Profile()
    prof.runcall(decode_all)
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())
    in_c = sum(v[2] for (_, _, name), v in stats.items() if name == "<method 'decode' of 'ImagingDecoder' objects>")
    return {"files": len(files), "decode_cpu_s": plain, "c_decoders_share": in_c / total if total else 0.0}


def table(results: dict[str, dict[str, Any]]) -> str:
    base = results.get("findimagedupes", {}).get("median_s")
    rows = ["| run | seconds (median) | busy CPU s (median) | runs (s) | F1 | vs findimagedupes |",
            "|---|---:|---:|---|---:|---:|"]
    for label, r in results.items():
        ratio = f"{base / r['median_s']:.2f}x" if base else "-"
        rows.append(f"| {label} | {r['median_s']:.2f} | {r['median_cpu']:.2f} | "
                    f"{', '.join(f'{x:.2f}' for x in r['seconds'])} | {r['score']['f1'] or 0:.3f} | {ratio} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", help="peer library folder: reused if it holds a truth.json, else built there")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each (median reported)")
    ap.add_argument("--json", help="also write every figure as JSON to this file")
    args = ap.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="lumina-floor-") as tmp_name:
        tmp = Path(tmp_name)
        lib = Path(args.library or tmp / "library")
        truth_file = lib / "truth.json"
        truth = json.loads(truth_file.read_text()) if truth_file.exists() else None
        if not truth or truth.get("format") != _peer_library.FORMAT:
            print(f"building the library in {lib} ...", file=sys.stderr)
            truth = _peer_library.build(lib, seed=args.seed)
        lib = lib.resolve()
        warm(lib)
        site = tmp / "site"
        site.mkdir()
        (site / SITE_NAME).write_text(SITECUSTOMIZE, encoding="utf-8")
        results = time_all(variants(sys.executable, site), lib, truth, args.repeats, tmp / "runs")
        decoders = decoder_share(lib)
    cores = os.cpu_count() or 1
    print(f"Machine: {platform.machine()}, {cores} CPUs, {platform.platform()}, Python {platform.python_version()}; "
          f"started {started:%Y-%m-%d %H:%M} UTC; load at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"Command: python benchmarks/floor.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    print(f"Library: {_peer_library.summary(truth)}\n")
    print(table(results))
    floor = results.get("ours, no hashing or looks")
    base = results.get("findimagedupes", {}).get("median_s")
    if floor and base:
        print(f"\nWith hashing and looks free, ours would be {base / floor['median_s']:.2f}x findimagedupes; "
              f"3x needs {base / 3:.2f} s, which leaves {base / 3 - floor['median_s']:.2f} s of wall "
              f"(about {(base / 3 - floor['median_s']) * cores:.2f} s of CPU on {cores} cores) for both, "
              f"against {results['ours']['median_cpu'] - floor['median_cpu']:.2f} s of CPU they take now.")
    print(f"\nDecoding alone, one process: {decoders['decode_cpu_s']:.2f} s CPU for {decoders['files']} files, "
          f"{100 * decoders['c_decoders_share']:.0f}% of it inside Pillow's C decoders (by cProfile's own time).")
    if args.json:
        Path(args.json).write_text(json.dumps({"started": started.isoformat(), "results": results,
                                               "decoders": decoders}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
