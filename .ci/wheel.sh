#!/usr/bin/env bash
# CI step: the package as a user installs it (issue 20, item 4). Builds the sdist and the wheel
# (`python -m build`: the sdist first, then the wheel from the unpacked sdist, so a file the sdist
# misses fails here), checks that the wheel holds every module and data file of the source tree,
# installs the wheel with its [lumina] extra into a clean venv, and from a folder outside the
# checkout (so nothing of the checkout can be imported) runs
#
#   lumina-dedup find-duplicates sample_catalog/ --catalog <tmp>/c.db --json
#
# which must find exactly the groups of sample_catalog/expected_groups.json.
#
#   .ci/wheel.sh [--keep]
#
# Everything goes in a fresh `mktemp -d` folder, removed at the end (kept with --keep or when a
# step fails, and its path printed). PYTHON picks the interpreter (default python3). Needs PyPI
# (or the machine's pip configuration) for `build` and the package's dependencies.
# Exit codes: 0 all good; 1 a step failed (the message says which).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-python3}
keep=0; [ "${1:-}" = --keep ] && keep=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lumina-dedup-wheel.XXXXXX")
ok=0
cleanup() { if [ $ok = 1 ] && [ $keep = 0 ]; then rm -rf "$tmp"; else echo "wheel: files left in $tmp"; fi; }
trap cleanup EXIT
fail() { echo "wheel: FAILED: $*" >&2; exit 1; }
pipq() { "$@" --disable-pip-version-check -q; }

echo "wheel: building the sdist and the wheel (tools in $tmp/tools)"
"$py" -m venv "$tmp/tools" || fail "cannot make a venv with $py"
pipq "$tmp/tools/bin/python" -m pip install build >"$tmp/tools.log" 2>&1 || { cat "$tmp/tools.log"; fail "pip install build"; }
"$tmp/tools/bin/python" -m build --outdir "$tmp/dist" "$root" >"$tmp/build.log" 2>&1 \
    || { tail -40 "$tmp/build.log"; fail "python -m build"; }
shopt -s nullglob
wheels=("$tmp"/dist/*.whl); sdists=("$tmp"/dist/*.tar.gz)
[ ${#wheels[@]} = 1 ] && [ ${#sdists[@]} = 1 ] || fail "expected one wheel and one sdist in $tmp/dist: $(ls "$tmp/dist")"
whl=${wheels[0]}; sdist=${sdists[0]}
echo "wheel: built $(basename "$sdist") and $(basename "$whl")"

# Every file of the two packages' source trees (lumina_plugin/, and hooks/ installed as lumina_hooks/),
# .py and data (catalog/*.sql, py.typed) alike, must be in the wheel: a package missing from
# pyproject's package list, or a data file missing from its package-data, fails here.
"$py" - "$root" "$whl" <<'PY' || fail "the wheel misses files of the source tree (above)"
import sys, zipfile
from pathlib import Path
root, whl = Path(sys.argv[1]), sys.argv[2]
names = set(zipfile.ZipFile(whl).namelist())
want = {}
for src, dest in (("lumina_plugin", "lumina_plugin"), ("hooks", "lumina_hooks")):
    for f in sorted((root / src).rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo"):
            want[f"{dest}/{f.relative_to(root / src).as_posix()}"] = f
missing = sorted(n for n in want if n not in names)
for n in missing:
    print(f"  missing from the wheel: {n}")
data = sorted(n for n in names if n.endswith((".sql", "py.typed")))
print(f"wheel: {len(want)} files of the source tree all in the wheel" if not missing else "", end="")
print(f"; data files: {', '.join(data)}" if not missing else "")
sys.exit(1 if missing else 0)
PY

echo "wheel: installing $(basename "$whl")[lumina] into a clean venv ($tmp/venv)"
"$py" -m venv "$tmp/venv" || fail "cannot make a venv with $py"
pipq "$tmp/venv/bin/python" -m pip install "${whl}[lumina]" >"$tmp/install.log" 2>&1 \
    || { tail -40 "$tmp/install.log"; fail "pip install of the wheel"; }
"$tmp/venv/bin/python" -m pip check --disable-pip-version-check || fail "pip check in the clean venv"

# From outside the checkout, with no PYTHONPATH: only the installed wheel can be imported.
mkdir -p "$tmp/run"
cd "$tmp/run"
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
export XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data"   # not the user's own settings
"$tmp/venv/bin/python" - "$root" "$tmp/venv" <<'PY' || fail "the installed modules (above)"
import sys
from pathlib import Path
root, venv = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
import lumina_hooks, lumina_plugin, lumina_plugin.cli, lumina_plugin.lumina.celery, lumina_plugin.lumina.router
import lumina_plugin.lumina.tasks, lumina_plugin.lumina.listener, lumina_plugin.catalog.postgres
for mod in (lumina_plugin, lumina_hooks, lumina_plugin.lumina.router):
    where = Path(mod.__file__).resolve()
    assert where.is_relative_to(venv) and not where.is_relative_to(root), f"{mod.__name__} imported from {where}"
print(f"wheel: imports come from the installed wheel ({Path(lumina_plugin.__file__).parent})")
PY
echo "wheel: lumina-dedup find-duplicates $root/sample_catalog --catalog $tmp/c.db --json"
"$tmp/venv/bin/lumina-dedup" find-duplicates "$root/sample_catalog" --catalog "$tmp/c.db" --json \
    >"$tmp/groups.json" 2>"$tmp/find.err" || { cat "$tmp/find.err"; fail "lumina-dedup find-duplicates exited $?"; }
"$tmp/venv/bin/python" - "$root/sample_catalog" "$tmp/groups.json" <<'PY' || fail "the groups found (above)"
import json, sys
from pathlib import Path
sample = Path(sys.argv[1]).resolve()
found = json.loads(Path(sys.argv[2]).read_text())
expected = {frozenset(g) for g in json.loads((sample / "expected_groups.json").read_text())["groups"]}
got = {frozenset(Path(m["path"]).resolve().relative_to(sample).as_posix() for m in g["members"]) for g in found["groups"]}
for g in sorted(map(sorted, expected - got)):
    print(f"  expected, not found: {g}")
for g in sorted(map(sorted, got - expected)):
    print(f"  found, not expected: {g}")
if got != expected:
    sys.exit(1)
print(f"wheel: the installed lumina-dedup found the {len(got)} expected groups"
      f" ({sum(len(g) for g in got)} photos; {len(found.get('errors', []))} unreadable files listed)")
PY
ok=1
echo "wheel: OK"
