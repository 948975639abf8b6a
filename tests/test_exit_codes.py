"""Exit codes and argument checks (issue 18, item 8; the ``decide`` parts live with decide).

A value that makes no sense is bad usage: argparse's one error line, exit 2, before any
catalog is opened (nothing created). Per-file errors go to stderr under ``--json`` too.
The command runs as the user runs it: a real process, real files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR

from lumina_plugin.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PHOTO = SAMPLE_DIR / "2015/2015-10-29/IMG_8812.jpg"


def run(*argv: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``lumina-dedup ARGV`` from this checkout, with a HOME (and default catalog) of its own."""
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config")}
    env.pop("LUMINA_DEDUP_CATALOG", None)
    return subprocess.run([sys.executable, "-m", "lumina_plugin.cli", *map(str, argv)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("argv, option", [
    (("calibrate", "--target", "2"), "--target"),
    (("calibrate", "--target", "0"), "--target"),
    (("calibrate", "--target", "nan"), "--target"),
    (("calibrate", "--per-band", "0"), "--per-band"),
    (("calibrate", "--per-band", "-3"), "--per-band"),
    (("undo", "--wait", "-5"), "--wait"),
    (("find-duplicates", "--wait", "-5", PHOTO), "--wait"),
    (("review", "--wait", "nan"), "--wait"),
    (("lumina", "status", "--wait", "-5"), "--wait"),
], ids=lambda v: " ".join(map(str, v)) if isinstance(v, tuple) else None)
def test_values_that_make_no_sense_are_bad_usage_and_write_nothing(
        tmp_path: Path, argv: tuple[str, ...], option: str) -> None:
    catalog = tmp_path / "catalog.db"
    extra = () if argv[0] == "lumina" else ("--catalog", catalog)
    done = run(*argv, *extra, home=tmp_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lumina-dedup ") and f"error: argument {option}: " in last, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no catalog, lock, index or data folder


def test_sensible_edge_values_are_taken() -> None:
    parser = build_parser()
    args = parser.parse_args(["calibrate", "--target", "1", "--per-band", "1", "--wait", "0"])
    assert (args.target, args.per_band, args.wait) == (1.0, 1, 0.0)
    assert parser.parse_args(["undo", "--wait", "inf"]).wait == float("inf")  # wait as long as it takes
    assert parser.parse_args(["lumina", "undo", "--wait", "2.5"]).wait == 2.5


def test_hash_json_lists_per_file_errors_on_stderr_too(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a photo at all")
    done = run("hash", "--json", bad, PHOTO, home=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)  # stdout stays one JSON object
    assert [f["path"] for f in out["files"]] == [str(PHOTO)]
    [error] = out["errors"]
    assert error["path"] == str(bad)
    assert f"error: {bad}: {error['error']}" in done.stderr.splitlines()
