"""Ours against findimagedupes and imagededup (issue 19 item 5): seconds and F1, in one run.

Two sets of photos, every tool run as its users run it, cold (a fresh process and, for ours, a
fresh catalog; the photos already in the page cache), one tool after another:

1. the library of about 2,000 real photos of mixed sizes with planted copies that
   ``_peer_library.py`` builds (small scans to 2560x1600 wallpapers and 12 MP camera JPEGs):
   seconds, photos/s, precision, recall and F1 over pairs of files, the ratio to findimagedupes;
2. the accuracy corpus of issue 17 (``accuracy_corpus.py``): precision, recall (every true
   pair, copy-copy pairs included; ``_accuracy_score.py`` judges each pair) and F1.

The tools:
- ``ours``: ``lumina-dedup find-duplicates LIB --catalog TMP/c.db --json -v`` (``-v``: its log
  line of phase times goes into the note) in an empty config
  and data home (as ``accuracy.py`` runs it), its package byte-compiled first as installing a
  wheel leaves it (an editable install under ``PYTHONDONTWRITEBYTECODE=1``, as on the
  development machine, would otherwise compile every module in every run: 0.1-0.3 s a run, a
  cost no installed user pays); ``--ours-config FILE`` (repeatable) runs it with
  ``--config FILE`` instead, once per file, e.g. TOMLs of ``[hashing]`` ``decode = "exact"`` and
  ``decode = "reduced"`` to compare the decode modes; two files are a pair when they share a group;
- ``findimagedupes``: Debian's ``findimagedupes -R LIB`` (``apt-get install findimagedupes``),
  its default threshold 90% (25 of 256 bits), no fingerprint database; one group per line;
- ``imagededup``: ``PHash().find_duplicates(image_dir=LIB, max_distance_threshold=10,
  recursive=True)`` (its defaults; PyPI ``imagededup``, which needs torch and torchvision: put
  it in a venv of its own, e.g. ``python -m venv /tmp/idd && /tmp/idd/bin/pip install
  torch==2.14.1 torchvision==0.29.1 imagededup``, and pass ``--imagededup-python
  /tmp/idd/bin/python``); a pair for each file and each duplicate it lists.
A tool that is not installed is skipped with a note. None is a dependency of this project.

Usage: python benchmarks/vs_peers.py [--library DIR] [--corpus DIR] [--repeats 3]
           [--tools ours,findimagedupes,imagededup] [--ours-config FILE]... [--out FILE.md]
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peer_library
import accuracy_corpus
from _accuracy_score import Pair, score
from accuracy import ours_command

#: What an imagededup user writes; it also times the call alone (torch's import is not in it).
IMAGEDEDUP = """import json, sys, time
from imagededup.methods import PHash
start = time.perf_counter()
found = PHash(verbose=False).find_duplicates(image_dir=sys.argv[1], max_distance_threshold=10, recursive=True)
json.dump({"found": found, "call_s": time.perf_counter() - start}, open(sys.argv[2], "w"))
"""


def _load() -> str:
    """Load averages now: the machine is shared, so every figure comes with it."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _pairs(groups: list[list[str]]) -> set[Pair]:
    return {frozenset(p) for g in groups for p in combinations(sorted(set(g)), 2)}


def _rel(path: str, root: Path) -> str:
    return Path(path).resolve().relative_to(root).as_posix()


class Tool:
    """One contender: ``run(root, work)`` -> (pairs of paths relative to ``root``, note)."""

    def __init__(self, label: str, missing: str | None = None) -> None:
        self.label, self.missing = label, missing

    def run(self, root: Path, work: Path) -> tuple[set[Pair], str]:  # pragma: no cover - overridden
        raise NotImplementedError


class Ours(Tool):
    """lumina-dedup find-duplicates, fresh catalog, empty config and data home."""

    def __init__(self, label: str, command: list[str], config: str | None) -> None:
        super().__init__(label, None if config is None or Path(config).exists() else f"{config} not found")
        self.command, self.config = command, config

    def run(self, root: Path, work: Path) -> tuple[set[Pair], str]:
        work.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUMINA_")}
        env |= {"XDG_CONFIG_HOME": str(work / "config"), "XDG_DATA_HOME": str(work / "data")}
        # -v only adds log lines; one of them times the phases (import, search, group...)
        cmd = [*self.command, "find-duplicates", str(root), "--catalog", str(work / "c.db"), "--json", "-v"]
        if self.config:
            cmd += ["--config", str(Path(self.config).resolve())]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        report = json.loads(proc.stdout)
        groups = [[_rel(m["path"], root) for m in g["members"]] for g in report["groups"]]
        errors = report.get("errors", [])
        geo = report.get("summary", {}).get("geometric", {})  # where the time beyond hashing goes
        phases = [line.split("find-duplicates: ", 1)[1] for line in proc.stderr.splitlines()
                  if "find-duplicates: open catalog" in line]
        return _pairs(groups), (f"{len(groups)} groups" + (f", {len(errors)} errors" if errors else "")
                                + (f"; phases: {phases[-1]}" if phases else "") + (f"; geometric {geo}" if geo else ""))


class FindImageDupes(Tool):
    """Debian's findimagedupes with its defaults, recursing, no fingerprint database."""

    def __init__(self) -> None:
        exe = shutil.which("findimagedupes")
        super().__init__("findimagedupes", None if exe else "not installed: apt-get install findimagedupes")
        self.exe = exe or "findimagedupes"

    def run(self, root: Path, work: Path) -> tuple[set[Pair], str]:
        proc = subprocess.run([self.exe, "-R", "--", str(root)], capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1):  # 1: "there were warnings"
            raise SystemExit(f"findimagedupes exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        # one group per line, paths separated by spaces (the library's names have none)
        groups = [[_rel(p, root) for p in line.split()] for line in proc.stdout.splitlines() if line.strip()]
        warnings = sum(1 for line in proc.stderr.splitlines() if line.strip())
        return _pairs(groups), f"{len(groups)} groups" + (f", {warnings} stderr lines" if warnings else "")


class ImageDedup(Tool):
    """imagededup's PHash with its defaults, in the interpreter that has it."""

    def __init__(self, python: str | None) -> None:
        self.python = python or sys.executable
        probe = subprocess.run([self.python, "-c", "import imagededup.methods"], capture_output=True, text=True,
                               check=False)  # also brings torch's files into the page cache, as for the photos
        why = None if probe.returncode == 0 else (
            f"not importable in {self.python} ({probe.stderr.strip().splitlines()[-1:] or '?'}): install it in a "
            "venv of its own and pass --imagededup-python")
        super().__init__("imagededup PHash", why)

    def run(self, root: Path, work: Path) -> tuple[set[Pair], str]:
        work.mkdir(parents=True)
        out = work / "found.json"
        proc = subprocess.run([self.python, "-c", IMAGEDEDUP, str(root), str(out)], capture_output=True, text=True,
                              cwd=work, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"imagededup exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
        found: dict[str, list[str]] = result["found"]
        pairs = {frozenset((_rel(str(root / a), root), _rel(str(root / b), root))) for a, dups in found.items() for b in dups}
        return pairs, (f"{sum(1 for d in found.values() if d)} files with duplicates; find_duplicates itself "
                       f"{result['call_s']:.1f} s (the rest: Python start and importing torch)")


def warm(root: Path) -> int:
    """Read every file once so that no tool pays for the disk and none profits from another's reads."""
    n = 0
    for p in root.rglob("*"):
        if p.is_file():
            p.read_bytes()
            n += 1
    return n


def prf(true_pairs: int, predicted: int, right: int) -> dict[str, float | None]:
    """Precision, recall and F1 of ``right`` correct pairs among ``predicted``, of ``true_pairs``."""
    p = right / predicted if predicted else None
    r = right / true_pairs if true_pairs else None
    f1 = 2 * p * r / (p + r) if p and r else 0.0 if p is not None and r is not None else None
    return {"precision": p, "recall": r, "f1": f1}


def score_library(truth: dict[str, Any], pairs: set[Pair]) -> dict[str, Any]:
    """P/R/F1 over pairs of files; false pairs split into same-source look-alikes and the rest."""
    files = truth["files"]
    true = _pairs(truth["groups"])
    right = pairs & true
    wrong = pairs - true
    same_source = sum(1 for p in wrong if len({files[f]["source"] for f in p if f in files}) == 1)
    missed_by_kind: dict[str, int] = {}
    for g in truth["groups"]:
        original = next(f for f in g if files[f]["role"] == "original")
        for f in g:
            if f != original and frozenset((original, f)) not in pairs:
                missed_by_kind[files[f]["kind"]] = missed_by_kind.get(files[f]["kind"], 0) + 1
    return {**prf(len(true), len(pairs), len(right)), "predicted": len(pairs), "false": len(wrong),
            "false_same_source": same_source, "missed_original_copy_by_kind": missed_by_kind}


def time_tools(tools: list[Tool], root: Path, repeats: int, tmp: Path, scorer: Any) -> dict[str, dict[str, Any]]:
    """Each tool ``repeats`` times, in turn (ours, peers, ours, peers...): seconds and score."""
    results: dict[str, dict[str, Any]] = {t.label: {"seconds": [], "loads": []} for t in tools if not t.missing}
    for rep in range(repeats):
        for tool in tools:
            if tool.missing:
                continue
            r = results[tool.label]
            r["loads"].append(_load())
            start = time.perf_counter()
            pairs, note = tool.run(root, tmp / f"{tool.label.replace(' ', '_')}-{rep}")
            r["seconds"].append(time.perf_counter() - start)
            r["note"], r["score"] = note, scorer(pairs)
            s = r["score"]  # printed as it comes, so a run cut short still tells what it measured
            print(f"  {tool.label}: {r['seconds'][-1]:.1f} s, load {r['loads'][-1]}, P {_f(s['precision'])} "
                  f"R {_f(s.get('recall_all_pairs', s['recall']))} F1 {_f(s['f1'])}, {note}", file=sys.stderr)
    for r in results.values():
        r["median_s"] = statistics.median(r["seconds"])
    return results


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def library_table(results: dict[str, dict[str, Any]], n_files: int, tools: list[Tool]) -> str:
    base = results.get("findimagedupes", {}).get("median_s")
    rows = ["| tool | seconds (median) | runs (s) | photos/s | precision | recall | F1 | false pairs (same source) "
            "| speed vs findimagedupes |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        s = r["score"]
        ratio = f"{base / r['median_s']:.2f}x" if base else "-"
        rows.append(f"| {label} | {r['median_s']:.1f} | {', '.join(f'{x:.1f}' for x in r['seconds'])} | "
                    f"{n_files / r['median_s']:.0f} | {_f(s['precision'])} | {_f(s['recall'])} | {_f(s['f1'])} | "
                    f"{s['false']} ({s['false_same_source']}) | {ratio} |")
    rows += [f"- {t.label}: not run ({t.missing})" for t in tools if t.missing]
    missed = {label: r["score"]["missed_original_copy_by_kind"] for label, r in results.items()}
    rows += ["", "(original, copy) pairs missed, per planted kind: " + "; ".join(
        f"{label} {m or 'none'}" for label, m in missed.items())]
    return "\n".join(rows)


def corpus_table(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| tool | seconds | precision | recall (all pairs) | F1 | hard R | colour R | simple R | false pairs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        s = r["score"]
        b = s["buckets"]
        rows.append(f"| {label} | {r['median_s']:.1f} | {_f(s['precision'])} | {_f(s['recall_all_pairs'])} | "
                    f"{_f(s['f1'])} | {_f(b['hard']['recall'])} | {_f(b['colour']['recall'])} | "
                    f"{_f(b['simple']['recall'])} | {s['false_pairs']} |")
    return "\n".join(rows)


def byte_compile_ours() -> Path | None:
    """Compile this interpreter's ``lumina_plugin`` to bytecode, as ``pip install`` of a wheel
    does; the folder, or None where the package is not importable here."""
    spec = importlib.util.find_spec("lumina_plugin")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    compileall.compile_dir(folder, quiet=1)
    return folder


def make_tools(args: argparse.Namespace) -> list[Tool]:
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    tools: list[Tool] = []
    ours_cmd = shlex.split(args.ours_cmd) if args.ours_cmd else ours_command()
    if "ours" in wanted and not args.ours_cmd and (folder := byte_compile_ours()) is not None:
        print(f"note: {folder} byte-compiled, as an installed wheel is", file=sys.stderr)
    for name in wanted:
        if name == "ours":
            # with --ours-config, only those: the default config is whatever the tree's default is
            tools += [Ours(f"ours ({Path(c).name})", ours_cmd, c) for c in args.ours_config] or [
                Ours("ours", ours_cmd, None)]
        elif name == "findimagedupes":
            tools.append(FindImageDupes())
        elif name == "imagededup":
            tools.append(ImageDedup(args.imagededup_python or os.environ.get("IMAGEDEDUP_PYTHON")))
        else:
            raise SystemExit(f"unknown tool {name!r} (ours, findimagedupes, imagededup)")
    for t in tools:
        if t.missing:
            print(f"note: {t.label} skipped: {t.missing}", file=sys.stderr)
    return tools


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the library and the corpus, time and score every tool, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", help="library folder: reused if it holds a truth.json, else built there")
    ap.add_argument("--files", type=int, default=2000, help="about how many files the library gets")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--corpus", help="accuracy corpus folder: reused if it holds a truth.json, else built there")
    ap.add_argument("--corpus-limit", type=int, help="first N originals of the corpus only (a smaller corpus)")
    ap.add_argument("--no-corpus", action="store_true", help="the library only")
    ap.add_argument("--no-library", action="store_true", help="the accuracy corpus only")
    ap.add_argument("--no-skimage", action="store_true", help="corpus from sample_catalog only")
    ap.add_argument("--jobs", type=int, default=2, help="processes building the library and corpus")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each tool on the library (median reported)")
    ap.add_argument("--tools", default="ours,findimagedupes,imagededup")
    ap.add_argument("--ours-cmd", help="how to start lumina-dedup (default: this interpreter's lumina_plugin.cli)")
    ap.add_argument("--ours-config", action="append", default=[], metavar="FILE",
                    help="run ours with --config FILE (a lumina-dedup TOML) instead of the default config; repeatable")
    ap.add_argument("--imagededup-python", help="interpreter that has imagededup (default: $IMAGEDEDUP_PYTHON or this one)")
    ap.add_argument("--out", help="also write the markdown to this file")
    ap.add_argument("--json", help="also write every figure as JSON to this file")
    args = ap.parse_args(argv)
    tools = make_tools(args)
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="lumina-vs-peers-") as tmp_name:
        tmp = Path(tmp_name)
        truth: dict[str, Any] | None = None
        lib_results: dict[str, dict[str, Any]] = {}
        n_files = 0
        if not args.no_library:
            lib = Path(args.library or tmp / "library")
            truth_file = lib / "truth.json"
            truth = json.loads(truth_file.read_text()) if truth_file.exists() else None
            if not truth or truth.get("format") != _peer_library.FORMAT:
                print(f"building the library in {lib} ...", file=sys.stderr)
                truth = _peer_library.build(lib, seed=args.seed, files=args.files, jobs=args.jobs)
            lib = lib.resolve()
            n_files = warm(lib) - 1  # less truth.json, which no tool reads as a photo
            print(f"library: {_peer_library.summary(truth)}", file=sys.stderr)
            lib_truth = truth
            lib_results = time_tools(tools, lib, args.repeats, tmp / "lib-runs",
                                     lambda pairs: score_library(lib_truth, pairs))
        corpus_results: dict[str, dict[str, Any]] = {}
        corpus_note = ""
        if not args.no_corpus:
            cdir = Path(args.corpus or tmp / "corpus")
            ctruth_file = cdir / "truth.json"
            ctruth = json.loads(ctruth_file.read_text()) if ctruth_file.exists() else None
            if not ctruth or ctruth.get("format") != accuracy_corpus.FORMAT:
                print(f"building the accuracy corpus in {cdir} ...", file=sys.stderr)
                ctruth = accuracy_corpus.build(cdir, use_skimage=not args.no_skimage, limit=args.corpus_limit,
                                               jobs=args.jobs)
            cdir = cdir.resolve()
            warm(cdir)
            corpus_note = (f"{len(ctruth['sources'])} originals, {len(ctruth['files'])} files, seed {ctruth['seed']}"
                           + (f", first {args.corpus_limit} originals only" if args.corpus_limit else ""))

            def corpus_score(pairs: set[Pair]) -> dict[str, Any]:
                s = score(ctruth, {p for p in pairs if all(f in ctruth["files"] for f in p)})
                return s | {"f1": _f1(s["precision"], s["recall_all_pairs"])}

            corpus_results = time_tools(tools, cdir, 1, tmp / "corpus-runs", corpus_score)
    md = render(args, tools, truth, n_files, lib_results, corpus_results, corpus_note, started)
    print(md)
    if args.out:
        Path(args.out).write_text(md, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({"library": lib_results, "corpus": corpus_results}, indent=1, default=str))
    return 0


def _f1(p: float | None, r: float | None) -> float | None:
    return None if p is None or r is None else (2 * p * r / (p + r) if p + r else 0.0)


def render(args: argparse.Namespace, tools: list[Tool], truth: dict[str, Any] | None, n_files: int,
           lib_results: dict[str, dict[str, Any]], corpus_results: dict[str, dict[str, Any]], corpus_note: str,
           started: dt.datetime) -> str:
    """The markdown: machine, command, date and load, then the two tables."""
    try:
        from lumina_plugin.model import DECODE_VERSIONS  # noqa: PLC0415 - only to say which modes exist
        modes = ", ".join(DECODE_VERSIONS)
    except ImportError:
        modes = "?"
    out = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python "
           f"{platform.python_version()}; started {started:%Y-%m-%d %H:%M} UTC; load (1/5/15 min) before each run "
           f"is in the JSON, at the end: {_load()}. Decode modes this tree knows: {modes}.",
           "Command: python benchmarks/vs_peers.py " + shlex.join(sys.argv[1:])]
    if truth is not None:
        out += ["", f"Library: {_peer_library.summary(truth)}; {n_files} photo files, {args.repeats} run(s) of each "
                "tool (median).", "", library_table(lib_results, n_files, tools)]
    for label, r in lib_results.items():
        out.append(f"- {label}: loads before its runs {' / '.join(r['loads'])}; {r['note']}")
    if corpus_results:
        out += ["", f"Accuracy corpus: {corpus_note}; one run of each tool.", "", corpus_table(corpus_results)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
