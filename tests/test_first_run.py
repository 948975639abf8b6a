"""The first run (issue 18, item 5): the README's demo, exactly as written, as a new user runs it.

The demo's ``lumina-dedup`` command is read from README.md (its first command, under "Try
it") and run with HOME and XDG_DATA_HOME pointing at an empty folder: it finds the 8 groups
``sample_catalog/expected_groups.json`` lists, keeps them in a catalog of its own, and leaves
the user's default catalog (``~/.local/share/lumina-dedup/catalog.db``) uncreated, so the
demo photos never show up in the user's own runs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((ROOT / "sample_catalog" / "expected_groups.json").read_text())


def readme_demo() -> list[str]:
    """The ``lumina-dedup`` part of the README's first command (under "## Try it"), as argv."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Try it", 1)[1]
    first = next(line.strip() for line in section.splitlines() if line.startswith("    "))
    (part,) = [p for p in first.split("&&") if "lumina-dedup " in p]
    return shlex.split(part)


def test_readme_demo_uses_its_own_catalog(tmp_path: Path) -> None:
    argv = readme_demo()
    assert Path(argv[0]).name == "lumina-dedup"
    work, home, data = tmp_path / "checkout", tmp_path / "home", tmp_path / "data"
    shutil.copytree(ROOT / "sample_catalog", work / "sample_catalog")
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LUMINA_DEDUP_CATALOG"}
    env.update(HOME=str(home), XDG_DATA_HOME=str(data), XDG_CONFIG_HOME=str(home / ".config"))
    exe = shutil.which("lumina-dedup", path=os.path.dirname(sys.executable))
    assert exe, "the lumina-dedup script of this environment"
    before = set(work.iterdir())
    proc = subprocess.run([exe, *argv[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # The user's default catalog was not created (neither under XDG_DATA_HOME nor HOME).
    assert not (data / "lumina-dedup").exists()
    assert not (home / ".local" / "share" / "lumina-dedup").exists()
    # The demo's catalog is where the README says, and holds the 8 expected groups.
    made = sorted(p.name for p in set(work.iterdir()) - before)
    assert made and all(name.startswith("demo.db") for name in made), made
    assert proc.stdout.count("Group ") == len(EXPECTED["groups"]) == 8
    assert f"the catalog {work / 'demo.db'}" in proc.stderr
    out = subprocess.run([exe, "find-duplicates", "--catalog", "demo.db", "--json"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    groups = {frozenset(str(Path(m["path"]).relative_to(work / "sample_catalog")) for m in g["members"])
              for g in json.loads(out.stdout)["groups"]}
    assert groups == {frozenset(g) for g in EXPECTED["groups"]}
    assert not (data / "lumina-dedup").exists()


def test_git_ignores_what_the_demo_writes(tmp_path: Path) -> None:
    """The demo writes demo.db, its lock, index and review beside the checkout's files: none of
    them may show up as new files in ``git status`` (checked by git itself, on this .gitignore)."""
    git = shutil.which("git")
    assert git, "git is needed to read .gitignore as git does"
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    names = ["demo.db", "demo.db-wal", "demo.db.lock", "demo.db.index/seg-1", "demo.db.review/index.html"]
    proc = subprocess.run([git, "check-ignore", "--no-index", *names], cwd=tmp_path, capture_output=True, text=True)
    assert proc.stdout.split() == names
