"""Accuracy on the copies people make (issue 17): ours, imagehash's pHash and Meta's PDQ, one run.

Builds the public corpus (``accuracy_corpus.py``: rotated, barred, captioned, cropped,
straightened, re-graded and re-encoded copies of free photos, plus mirrors, flips, halves,
heavy crops, shifted consecutive shots, a stereo pair and different photos given the same
border) or reuses one, then scores:

- ``ours``: the product as a black box, ``lumina-dedup find-duplicates CORPUS --catalog
  TMP/c.db --json`` in a fresh catalog and an empty config/data home; two files are paired
  when they share a group (``groups[].members[].path``);
- ``phash``: ``imagehash.phash`` of each file as stored (no EXIF orientation: how people call
  imagehash), every pair within ``--phash-max`` bits (8) by brute force;
- ``pdq``: the ``pdqhash`` package's 256-bit PDQ of each file with the EXIF orientation
  applied, every pair within ``--pdq-max`` bits (70); skipped with a note if not installed.

The scoring rules are in ``_accuracy_score.py`` and in truth.json's ``rules``. Precision is
over all predicted pairs; recall per edit kind is over (original, copy) pairs; "hard" = the
rotation, bars/bands, crop and straighten kinds, "colour" = grades, compression, filters and
combinations, "simple" = the copies of the issue's simple bucket.

With ``--ours-decode exact,reduced`` ours runs once per decode mode (``[hashing] decode`` in
a config file handed to ``--config``), each in a fresh catalog, and the tables get a column
pair per mode: the before/after of issue 19's reduced decoding in one run.

Usage: python benchmarks/accuracy.py [--corpus DIR] [--rebuild] [--methods ours,phash,pdq]
                                     [--ours-decode MODE,...] [--json] [--out FILE.md]
Without --corpus the corpus is built in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy_corpus
from _accuracy_score import Pair, group_pairs, markdown, score


def corpus(path: str | None, rebuild: bool, seed: int, use_skimage: bool, jobs: int,
           tmp: Path) -> tuple[Path, dict[str, Any], float | None]:
    """(corpus dir, truth, build seconds or None when an existing corpus was reused)."""
    out = Path(path) if path else tmp / "corpus"
    truth_file = out / "truth.json"
    if truth_file.exists() and not rebuild:
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        if truth.get("format") == accuracy_corpus.FORMAT:
            return out, truth, None
    start = time.perf_counter()
    truth = accuracy_corpus.build(out, seed=seed, use_skimage=use_skimage, jobs=jobs)
    return out, truth, time.perf_counter() - start


def ours_command() -> list[str]:
    """This interpreter's ``lumina_plugin.cli``, else the ``lumina-dedup`` script beside it."""
    if importlib.util.find_spec("lumina_plugin") is not None:
        return [sys.executable, "-m", "lumina_plugin.cli"]
    script = Path(sys.executable).with_name("lumina-dedup")
    if script.exists():
        return [str(script)]
    raise SystemExit("lumina_plugin is not importable and no lumina-dedup script sits beside " + sys.executable)


def run_ours(root: Path, truth: dict[str, Any], work: Path, command: list[str] | None = None,
             decode: str | None = None, toml: str = "") -> tuple[set[Pair], dict[str, Any]]:
    """Pairs the product groups, from one find-duplicates run in a fresh catalog.
    ``command``: how to start lumina-dedup (default ``ours_command()``); ``decode``: the
    ``[hashing] decode`` mode, through a ``--config`` file (None: the product's default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMINA_")}
    env |= {"XDG_CONFIG_HOME": str(work / "config"), "XDG_DATA_HOME": str(work / "data")}
    cmd = (command or ours_command()) + ["find-duplicates", str(root), "--catalog", str(work / "c.db"), "--json"]
    work.mkdir(parents=True, exist_ok=True)  # cwd: so `-m` imports the installed package, not ./lumina_plugin
    if decode or toml:  # ``toml``: more settings, e.g. '[index]\nbackend = "mih"' where faiss is missing
        text = (f'[hashing]\ndecode = "{decode}"\n' if decode else "") + toml.replace("\\n", "\n")
        (work / "decode.toml").write_text(text + "\n", encoding="utf-8")
        cmd += ["--config", str(work / "decode.toml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    base = root.resolve()
    groups, unknown = [], set()
    for g in report["groups"]:
        members = []
        for m in g["members"]:
            rel = Path(m["path"]).resolve().relative_to(base).as_posix()
            if rel in truth["files"]:
                members.append(rel)
            else:
                unknown.add(rel)
        groups.append(members)
    info = {"groups": len(report["groups"]), "errors": report.get("errors", []), "unknown_files": sorted(unknown),
            "summary": report.get("summary", {})}
    return group_pairs(groups), info


def _pairs_within(codes: np.ndarray, names: list[str], radius: int) -> set[Pair]:
    """Brute force: every pair of rows of ``codes`` (uint64 words) within ``radius`` bits."""
    dist = np.zeros((len(codes), len(codes)), dtype=np.int32)
    for w in range(codes.shape[1]):
        x = codes[:, None, w] ^ codes[None, :, w]
        if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
            dist += np.bitwise_count(x).astype(np.int32)
        else:
            dist += np.unpackbits(x.view(np.uint8), axis=-1).reshape(*x.shape, 64).sum(axis=-1, dtype=np.int32)
    i, j = np.nonzero(np.triu(dist <= radius, k=1))
    return {frozenset((names[a], names[b])) for a, b in zip(i.tolist(), j.tolist())}


def run_phash(root: Path, names: list[str], radius: int) -> set[Pair]:
    """imagehash.phash on the stored pixels of every file; pairs within ``radius``."""
    import imagehash  # noqa: PLC0415 - a dev dependency, only this baseline needs it

    codes = np.zeros((len(names), 1), dtype=np.uint64)
    for n, name in enumerate(names):
        with Image.open(root / name) as im:
            codes[n, 0] = np.uint64(int(str(imagehash.phash(im)), 16))
    return _pairs_within(codes, names, radius)


def pdq_available() -> str | None:
    """None when pdqhash imports, else why not."""
    try:
        import pdqhash  # noqa: F401, PLC0415
    except ImportError as exc:
        return f"pdqhash not installed ({exc}); pip install pdqhash"
    return None


def run_pdq(root: Path, names: list[str], radius: int) -> set[Pair]:
    """PDQ (256 bits) of every file, EXIF orientation applied; pairs within ``radius``."""
    import pdqhash  # noqa: PLC0415

    bits = np.zeros((len(names), 256), dtype=np.uint8)
    for n, name in enumerate(names):
        with Image.open(root / name) as im:
            rgb = np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
        bits[n] = pdqhash.compute(rgb)[0]
    return _pairs_within(np.packbits(bits, axis=1).view(np.uint64), names, radius)


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the corpus, run every method, print the tables (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", help="corpus folder: reused if it holds a truth.json, else built there")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the corpus even if --corpus holds one")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--no-skimage", action="store_true", help="corpus from sample_catalog only")
    ap.add_argument("--jobs", type=int, default=2, help="processes building the corpus")
    ap.add_argument("--methods", default="ours,phash,pdq")
    ap.add_argument("--ours-cmd", help="how to start lumina-dedup, e.g. 'env PYTHONPATH=/tmp/other python -m "
                    "lumina_plugin.cli' (default: this interpreter's lumina_plugin.cli)")
    ap.add_argument("--ours-decode", default="", help="run ours once per decode mode, e.g. 'exact,reduced' "
                    "(default: once, in the product's default mode)")
    ap.add_argument("--ours-toml", default="", help="more settings for ours, TOML with \\n for new lines, "
                    "e.g. '[index]\\nbackend = \"mih\"'")
    ap.add_argument("--phash-max", type=int, default=8)
    ap.add_argument("--pdq-max", type=int, default=70)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    ap.add_argument("--out", help="also write the markdown tables to this file")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    modes = [m.strip() for m in args.ours_decode.split(",") if m.strip()]
    if modes and "ours" in methods:
        at = methods.index("ours")
        methods[at:at + 1] = [f"ours:{m}" for m in modes]
    with tempfile.TemporaryDirectory(prefix="lumina-accuracy-") as tmp_name:
        tmp = Path(tmp_name)
        root, truth, built = corpus(args.corpus, args.rebuild, args.seed, not args.no_skimage, args.jobs, tmp)
        names = sorted(truth["files"])
        results: dict[str, dict[str, Any]] = {}
        for method in methods:
            start = time.perf_counter()
            extra: dict[str, Any] = {}
            if method == "ours" or method.startswith("ours:"):
                decode = method.partition(":")[2] or None
                pairs, extra = run_ours(root, truth, tmp / method.replace(":", "-"),
                                        shlex.split(args.ours_cmd) if args.ours_cmd else None, decode,
                                        args.ours_toml)
                label = f"ours {decode}" if decode else "ours"
            elif method == "phash":
                pairs, label = run_phash(root, names, args.phash_max), f"pHash<={args.phash_max}"
            elif method == "pdq":
                label = f"PDQ<={args.pdq_max}"
                why = pdq_available()
                if why:
                    results[label] = {"skipped": why}
                    print(f"note: PDQ skipped: {why}", file=sys.stderr)
                    continue
                pairs = run_pdq(root, names, args.pdq_max)
            else:
                raise SystemExit(f"unknown method {method!r} (ours, phash, pdq)")
            results[label] = {"seconds": time.perf_counter() - start, "score": score(truth, pairs), **extra}
    roles: dict[str, int] = {}
    for f in truth["files"].values():
        roles[f["role"]] = roles.get(f["role"], 0) + 1
    build_note = f"built in {built:.1f} s" if built is not None else "reused"
    header = (f"Corpus: {len(truth['sources'])} originals, {len(names)} files ({roles}), "
              f"{len(truth['negative_pairs'])} listed negative pairs, seed {truth['seed']}, {build_note}. "
              f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.")
    table = markdown(truth, results, header)
    if args.out:
        Path(args.out).write_text(table, encoding="utf-8")
    if args.json:
        print(json.dumps({"corpus": {"sources": len(truth["sources"]), "files": len(names), "roles": roles,
                                     "seed": truth["seed"], "build_seconds": built},
                          "methods": results}, indent=1))
    else:
        print(table)
        for label, r in results.items():
            for err in r.get("errors", [])[:5]:
                print(f"{label} error: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
