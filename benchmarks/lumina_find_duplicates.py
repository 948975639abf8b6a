"""Find Duplicates on a 100,000-image Lumina catalog through PostgreSQL, end to end and per phase.

Setup (not timed): a fresh PostgreSQL database with Lumina's tables (tests/lumina_schema.sql),
one catalog, N ``images`` rows as Lumina's scan writes them (id = checksum = SHA-256, source
path, dates and metadata JSON, status 'active'), then our hashes of every image stored through
our own catalog API, batch by batch, exactly as the import path does
(``PostgresCatalog.upsert_images`` then ``HashIndex.add``), so the stored format is the real one.

The codes are random 64-bit values per hash, plus what real libraries hold:
  * duplicate groups (5% of the images, groups of 2-5): copies whose four hashes are each
    0-4 bits from the original's (resized, PNG exports, crops); in a tenth of the groups one
    copy is byte-identical (same checksum and codes: its file was replaced after Lumina's scan);
  * bursts (1%, 3-6 frames, same camera, 0.3 s apart, 3-6 bits apart): must NOT be grouped;
  * identical burst frames (pairs 0-2 bits apart): grouped as burst siblings.

Timed: Find Duplicates run through the Engine API the commands call (open the catalog and read
the hashes, search, group, write tags and commit), then again (a re-run must change nothing),
then once more as the real command, ``lumina-dedup find-duplicates --catalog postgresql://...``,
in a fresh process. Checks: every planted group found exactly (recall), nothing else grouped,
the database's groups and tags match the report, and the re-runs change nothing.

Usage:
  python benchmarks/lumina_find_duplicates.py [--n 100000] [--keep-db] [--url ADMIN_URL]
  python benchmarks/lumina_find_duplicates.py --reuse lumina_bench_xxxx --data-dir DIR  # skip setup
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this tree's package, even where another copy is installed
from lumina_plugin.catalog.postgres import PostgresCatalog
from lumina_plugin.config import Config
from lumina_plugin.engine import Engine
from lumina_plugin.index import HashIndex
from lumina_plugin.model import ALGORITHM_VERSION, CODE_WORDS, ImageRecord
from lumina_plugin.settings.index import BACKENDS, IndexSettings

SCHEMA = ROOT / "tests" / "lumina_schema.sql"
CAMERAS = ("Canon EOS R6", "NIKON D750", "SONY ILCE-7M3", "Apple iPhone 12", "FUJIFILM X-T3")
EPOCH = dt.datetime(2012, 1, 1)


@dataclass
class Library:
    """N photos as arrays (one entry per Lumina image row), and the groups a correct run finds."""

    ids: list[str]  # Lumina's images.id (= its checksum: SHA-256 of the content it scanned)
    checksums: list[str]  # our record's checksum (differs from ids only for replaced files)
    paths: list[str]
    width: np.ndarray
    height: np.ndarray
    fmt: list[str]
    size: np.ndarray
    camera: list[str | None]
    taken: np.ndarray  # seconds after EPOCH (float), NaN = no capture time
    codes: np.ndarray  # uint64 (n, 4)
    expected: set[frozenset[str]] = field(default_factory=set)  # planted groups, as image ids


def _flip(rng: np.random.Generator, rows: int, lo: int, hi: int) -> np.ndarray:
    """(rows, 4) uint64 masks, each with lo..hi distinct random bits set."""
    bits = rng.integers(lo, hi + 1, (rows, 4))
    order = np.argsort(rng.random((rows, 4, 64)), axis=2)  # a random permutation of bit positions
    chosen = np.arange(64)[None, None, :] < bits[..., None]
    weights = np.zeros((rows, 4, 64), np.uint64)
    np.put_along_axis(weights, order, np.where(chosen, np.uint64(1), np.uint64(0)), axis=2)
    return (weights << np.arange(64, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)


def make_library(n: int, seed: int = 0) -> Library:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64, (n, CODE_WORDS), dtype=np.uint64, endpoint=False)
    width, height = np.full(n, 4000), np.full(n, 3000)
    fmt = ["JPEG"] * n
    cam_of = rng.integers(0, len(CAMERAS), n)
    camera: list[str | None] = [CAMERAS[c] for c in cam_of]
    taken = rng.random(n) * 10 * 365 * 86400.0  # ten years of photos
    ids = [hashlib.sha256(f"bench-{seed}-{i}".encode()).hexdigest() for i in range(n)]
    checksums = list(ids)
    paths = [""] * n
    kind = ["IMG"] * n
    expected: list[list[int]] = []
    same_bytes: list[tuple[int, int]] = []  # (copy, original)
    row = 0

    def take(k: int) -> list[int]:
        nonlocal row
        out = list(range(row, row + k))
        row += k
        return out

    while row < n * 5 // 100:  # duplicate groups: an original and 1-4 copies
        members = take(int(rng.integers(2, 6)))
        base, copies = members[0], members[1:]
        codes[copies] = codes[base] ^ _flip(rng, len(copies), 0, 4)
        for c in copies:
            how = rng.choice(["small", "png", "crop"], p=[0.5, 0.25, 0.25])
            kind[c] = f"COPY_{how}"
            taken[c] = taken[base]  # exports keep the capture time; camera kept or stripped
            camera[c] = camera[base] if rng.random() < 0.7 else None
            if how == "small":
                width[c], height[c] = 1600, 1200
            elif how == "png":
                fmt[c] = "PNG"
            else:
                width[c], height[c] = 3000, 3000
        if rng.random() < 0.1:  # a copy whose file became byte-identical to the original
            c = copies[-1]
            codes[c], checksums[c] = codes[base], checksums[base]
            width[c], height[c], fmt[c], kind[c] = width[base], height[base], fmt[base], "COPY_same"
            same_bytes.append((c, base))
        expected.append(members)
    burst_end = row + n // 100
    while row < burst_end:  # bursts: different frames, never duplicates
        frames = take(int(rng.integers(3, 7)))
        codes[frames[1:]] = codes[frames[0]] ^ _flip(rng, len(frames) - 1, 3, 6)
        for j, f in enumerate(frames):
            camera[f], taken[f], kind[f] = camera[frames[0]], taken[frames[0]] + 0.3 * j, "BURST"
    for _ in range(max(1, n // 2000)):  # identical burst frames: burst siblings
        a, b = take(2)
        codes[b] = codes[a] ^ _flip(rng, 1, 0, 2)[0]
        camera[b], taken[b], kind[a], kind[b] = camera[a], taken[a] + 0.5, "BURST", "BURST"
        expected.append([a, b])
    for i in range(n):
        day = EPOCH + dt.timedelta(seconds=float(taken[i]))
        ext = ".png" if fmt[i] == "PNG" else ".jpg"
        folder = "exports/web" if kind[i].startswith("COPY") else f"{day:%Y}/{day:%Y-%m-%d}"
        paths[i] = f"/photos/{folder}/{kind[i]}_{i:07d}{ext}"
    no_time = rng.random(n) < 0.05  # some photos carry no EXIF at all (and are no burst)
    no_time[: row] = False
    taken[no_time] = np.nan
    for i in np.flatnonzero(no_time):
        camera[i] = None
    size = (width * height * (0.25 + 0.1 * rng.random(n))).astype(np.int64)
    for c, base in same_bytes:
        size[c] = size[base]
    return Library(ids, checksums, paths, width, height, fmt, size, camera, taken, codes,
                   {frozenset(ids[i] for i in g) for g in expected})


def _iso(seconds: float) -> str | None:
    return None if np.isnan(seconds) else (EPOCH + dt.timedelta(seconds=float(seconds))).isoformat()


def scan_as_lumina(conn: psycopg.Connection, lib: Library) -> str:
    """One catalog and an images row per photo, with the columns Lumina's scan fills."""
    cid, now = str(uuid.uuid4()), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.execute("INSERT INTO catalogs (id, name, schema_name, source_directories, created_at, updated_at)"
                 " VALUES (%s, 'Photos', %s, %s, %s, %s)", (cid, f"catalog_{cid.replace('-', '_')}", ["/photos"], now, now))
    with conn.cursor().copy("COPY images (id, catalog_id, source_path, file_type, checksum, size_bytes, dates,"
                            " metadata, status_id, processing_flags, created_at, updated_at) FROM STDIN") as copy:
        for i in range(len(lib.ids)):
            taken = _iso(lib.taken[i])
            make, _, model = (lib.camera[i] or "").partition(" ")
            meta = {"format": lib.fmt[i], "width": int(lib.width[i]), "height": int(lib.height[i]),
                    "resolution": [int(lib.width[i]), int(lib.height[i])], "size_bytes": int(lib.size[i]),
                    "exif": {"DateTimeOriginal": taken} if taken else {},
                    "camera_make": make or None, "camera_model": model or None}
            dates = {"selected_date": taken, "source": "exif"} if taken else {}
            copy.write_row((lib.ids[i], cid, lib.paths[i], "image", lib.ids[i], int(lib.size[i]), json.dumps(dates),
                            json.dumps(meta), "active", "{}", now, now))
    conn.execute("ANALYZE images")
    return cid


def store_hashes(url: str, lib: Library, batch: int) -> None:
    """Our hashes of every image, through the import path's catalog and index calls."""
    with PostgresCatalog(url) as catalog:
        index = HashIndex.open(catalog.index_dir, ALGORITHM_VERSION)
        for start in range(0, len(lib.ids), batch):
            rows = range(start, min(start + batch, len(lib.ids)))
            records = [ImageRecord(
                path=lib.paths[i], checksum=lib.checksums[i], size_bytes=int(lib.size[i]),
                mtime_ns=1_700_000_000_000_000_000 + i, width=int(lib.width[i]), height=int(lib.height[i]),
                format=lib.fmt[i], orientation=1, camera=lib.camera[i], taken_at=_iso(lib.taken[i]),
                subsec=None, exif_tags=0 if lib.camera[i] is None else 42, codes=lib.codes[i],
                hash_version=ALGORITHM_VERSION) for i in rows]
            stored = catalog.upsert_images(records)
            index.add(np.array([s.index_id for s in stored], np.int64), lib.codes[rows.start:rows.stop])
        index.close()


def db_state(conn: psycopg.Connection) -> tuple[set[frozenset[str]], int]:
    """The groups (keeper and members, as image ids) and our image tag rows in the database."""
    groups: dict[int, set[str]] = {}
    for gid, keeper, member in conn.execute(
            "SELECT g.id, g.keeper_id, m.image_id FROM lumina_dedup_groups g"
            " JOIN lumina_dedup_members m ON m.group_id = g.id"):
        groups.setdefault(gid, {keeper}).add(member)
    tags = conn.execute("SELECT count(*) FROM image_tags WHERE source = 'lumina-dedup'").fetchone()[0]  # type: ignore[index]
    return {frozenset(g) for g in groups.values()}, int(tags)


def check(found: set[frozenset[str]], lib: Library) -> dict[str, Any]:
    hit = found & lib.expected
    planted = set().union(*lib.expected)
    stray = {i for g in found - lib.expected for i in g}
    return {"planted groups": len(lib.expected), "found exactly": len(hit),
            "recall": len(hit) / max(1, len(lib.expected)),
            "groups found": len(found), "wrong groups": len(found - lib.expected),
            "unplanted images grouped": len(stray - planted)}


def run_api(url: str, config: Config) -> dict[str, Any]:
    """One Find Duplicates through the Engine API, timed whole and per phase."""
    start = time.perf_counter()
    with Engine(url, config) as engine:
        report = engine.find_duplicates()
        phases = {**engine.timings, **report.timings}
        close = time.perf_counter()
    phases["close"] = time.perf_counter() - close
    total = time.perf_counter() - start
    found = {frozenset([report.images[g.keeper].id, *(report.images[m.index_id].id for m in g.members)])
             for g in report.groups}
    return {"total": total, "phases": phases, "summary": report.summary(), "found": found}


def run_cli(url: str, env: dict[str, str], config_file: Path) -> dict[str, Any]:
    """The real command in a fresh process (interpreter start and imports included), with its
    default text output: ``--json`` adds about 2 s of pure-Python indented JSON for 1,500 groups."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", "find-duplicates", "--catalog", url, "-v",
                          "--config", str(config_file)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    total = time.perf_counter() - start
    # -v logs the engine's phase times: "INFO lumina_plugin.engine: find-duplicates: search 1.23 s, ..."
    line = next((x for x in out.stderr.splitlines() if "lumina_plugin.engine: find-duplicates:" in x), "")
    phases: dict[str, float] = {}
    for part in line.split("find-duplicates:", 1)[-1].split(","):
        if part.strip():
            phase, seconds, _unit = part.strip().rsplit(" ", 2)
            phases[phase] = float(seconds)
    phases["process start, imports, close"] = total - sum(phases.values())
    # The last stderr line: "N groups, M duplicates; ...; tags +A -R, groups +GA -GR (written to the catalog)"
    m = re.search(r"(\d+) groups, .* tags \+(\d+) -(\d+), groups \+(\d+) -(\d+)", out.stderr)
    if m is None:
        raise RuntimeError(f"no summary line in the command's output:\n{out.stderr[-2000:]}")
    groups, *changes = map(int, m.groups())
    summary = {"groups": groups, **dict(zip(("tags_added", "tags_removed", "groups_added", "groups_removed"), changes))}
    backend = re.search(r"search backend: (\S+)", out.stderr)
    summary["search_backend"] = backend.group(1) if backend else None
    return {"total": total, "phases": phases, "summary": summary}


#: The table's summary rows: the issue's four phases (and the command's own start), from the engine's.
GROUPED = {"read (catalog, hashes, unhashed check)": ("open catalog", "read hashes", "import"),
           "search (all pairs)": ("search",), "group (facts, grouping, diff)": ("read facts", "group", "diff"),
           "write tags/commit (pairs, tags, close)": ("store pairs", "write tags", "close"),
           "process start, imports": ("process start, imports, close",)}


def table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    names = [k for _, r in runs for k in r["phases"]]
    names = list(dict.fromkeys(names))
    head = "| phase | " + " | ".join(n for n, _ in runs) + " |\n|---|" + "---:|" * len(runs) + "\n"
    lines = []
    for name in names:
        lines.append(f"| {name} | " + " | ".join(
            f"{r['phases'][name]:.2f}" if name in r["phases"] else "" for _, r in runs) + " |")
    for group, parts in GROUPED.items():
        lines.append(f"| **{group}** | " + " | ".join(
            f"{sum(r['phases'].get(p, 0.0) for p in parts):.2f}" if any(p in r["phases"] for p in parts) else ""
            for _, r in runs) + " |")
    lines.append("| **total** | " + " | ".join(f"**{r['total']:.2f}**" for _, r in runs) + " |")
    return head + "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--url", default=os.environ.get("LUMINA_DEDUP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="an admin connection to the server (the benchmark creates its own database)")
    ap.add_argument("--keep-db", action="store_true", help="keep the database (and print its name)")
    ap.add_argument("--reuse", metavar="DB", help="a database kept by --keep-db (same --n/--seed): skip the setup"
                    " and reset our tags, groups and pairs, so the first run starts from scratch again")
    ap.add_argument("--data-dir", help="where the hash index lives (default: a temporary folder)")
    ap.add_argument("--batch", type=int, default=1000, help="images per upsert while storing the hashes")
    ap.add_argument("--no-cli", action="store_true", help="skip the run through the command")
    ap.add_argument("--backend", default="auto", choices=BACKENDS, help="the [index] backend setting (default auto)")
    args = ap.parse_args()
    config = Config().replace(index=IndexSettings(backend=args.backend))

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="lumina-bench-"))
    os.environ["XDG_DATA_HOME"] = str(data_dir)  # where PostgresCatalog puts the index
    os.environ["XDG_CONFIG_HOME"] = str(data_dir / "config")  # no user configuration
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = args.url.rsplit("/", 1)[0]
    name = args.reuse or f"lumina_bench_{secrets.token_hex(4)}"
    lib = make_library(args.n, args.seed)
    print(f"# {args.n:,} images, {len(lib.expected)} planted groups; database {name}; index in {data_dir};"
          f" [index] backend = {args.backend!r}", flush=True)
    admin = psycopg.connect(args.url, autocommit=True)
    try:
        if not args.reuse:
            admin.execute(f'CREATE DATABASE "{name}"')
            t = time.perf_counter()
            with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
                conn.execute(SCHEMA.read_text())  # type: ignore[call-overload]
                cid = scan_as_lumina(conn, lib)
            print(f"# Lumina rows: {time.perf_counter() - t:.1f} s", flush=True)
            t = time.perf_counter()
            store_hashes(f"{base}/{name}", lib, args.batch)
            print(f"# hashes stored (upsert_images + index): {time.perf_counter() - t:.1f} s", flush=True)
        with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
            cid = str(conn.execute("SELECT id FROM catalogs").fetchone()[0])  # type: ignore[index]
            if args.reuse:
                conn.execute("DELETE FROM image_tags WHERE source = 'lumina-dedup'")
                conn.execute("DELETE FROM lumina_dedup_groups; DELETE FROM lumina_dedup_pairs;"
                             " DELETE FROM lumina_dedup_runs")
            conn.execute("VACUUM ANALYZE")
        url = f"{base}/{name}?catalog={cid}"
        runs: list[tuple[str, dict[str, Any]]] = []
        ok = True
        for label in ("first run", "re-run"):
            load = os.getloadavg()[0]
            result = run_api(url, config)
            runs.append((label, result))
            with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
                stored, tags = db_state(conn)
            verdict = check(result["found"], lib)
            s = result["summary"]
            changes = {k: s.get(k, 0) for k in ("tags_added", "tags_removed", "groups_added", "groups_removed")}
            print(f"# {label}: {result['total']:.2f} s (load before {load:.1f}); {verdict}; changes {changes};"
                  f" backend {s.get('search_backend')}", flush=True)
            expected_tags = 2 * sum(len(g) for g in lib.expected)
            ok &= verdict["recall"] == 1.0 and verdict["wrong groups"] == 0 and stored == result["found"] \
                and tags == expected_tags
            if label == "re-run":
                ok &= not any(changes.values())
        if not args.no_cli:
            load = os.getloadavg()[0]
            config_file = data_dir / "lumina-dedup.toml"
            config_file.write_text(f'[index]\nbackend = "{args.backend}"\n')
            result = run_cli(url, env, config_file)
            runs.append(("command (re-run)", result))
            changes = {k: result["summary"].get(k, 0) for k in ("tags_added", "tags_removed", "groups_added", "groups_removed")}
            print(f"# command: {result['total']:.2f} s (load before {load:.1f}); groups {result['summary']['groups']}; changes {changes};"
                  f" backend {result['summary']['search_backend']}", flush=True)
            ok &= not any(changes.values()) and result["summary"]["groups"] == len(lib.expected)
    finally:
        if not args.keep_db:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if not args.data_dir:
                shutil.rmtree(data_dir, ignore_errors=True)
        admin.close()
    load = os.getloadavg()
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
          f" load average {load[0]:.1f}; {dt.date.today()}; package at {Path(sys.modules['lumina_plugin'].__file__).parent}\n")
    print(table(runs))
    print("\nall checks passed" if ok else "\nCHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
