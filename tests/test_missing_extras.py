"""An optional part that is not installed: one line naming the extra, never a traceback.

Run in a REAL virtual environment that lacks every extra (``[lumina]``, ``[gpu]``, ``[raw]``,
``[heif]``), built once per session without the network: ``python -m venv --without-pip``,
then one ``.pth`` file naming a folder of links to the base dependencies only (pyproject's
``dependencies`` and what they require, found through this environment's installed
distributions), and to the checkout's own packages. ``import psycopg`` fails there as it
does on a user's machine after ``pip install lumina-plugin``; nothing is faked in the
process under test. The commands run as the user runs them: ``python -m lumina_plugin.cli``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
EXTRA_MODULES = {"psycopg": "lumina", "celery": "lumina", "redis": "lumina", "cupy": "gpu",
                 "rawpy": "raw", "pillow_heif": "heif"}
PG_URL = "postgresql://lumina@127.0.0.1:5432/lumina?catalog=1"


def _base_distributions() -> dict[str, metadata.Distribution]:
    """The installed distributions the base install needs: pyproject's dependencies and,
    recursively, what they require (markers evaluated with no extra asked for)."""
    todo = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    found: dict[str, metadata.Distribution] = {}
    while todo:
        req = todo.pop()
        key = req.name.lower().replace("_", "-")
        if key in found or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        found[key] = metadata.distribution(req.name)
        todo += [Requirement(r) for r in found[key].requires or []]
    return found


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a venv holding only the base dependencies and this checkout."""
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    links = venv / "base-packages"
    links.mkdir()
    for dist in _base_distributions().values():
        for file in dist.files or []:
            top = file.parts[0]
            source = Path(str(dist.locate_file(top)))
            # (top-level modules, their .libs folders of shared libraries, their metadata;
            # not the console scripts under ../../bin, nor the .pth files of other packages)
            if top in ("..", "__pycache__") or top.endswith(".pth") or (links / top).exists():
                continue
            if source.exists():
                (links / top).symlink_to(source)
    (links / "lumina_plugin").symlink_to(ROOT / "lumina_plugin")
    (links / "lumina_hooks").symlink_to(ROOT / "hooks")
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "lumina-base.pth").write_text(f"{links}\n")
    # The premise of every test here: the base imports, no extra does.
    probe = ("import importlib.util, json, numpy, PIL, faiss, pywt, lumina_plugin.cli\n"
             f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {sorted(EXTRA_MODULES)!r}}}))")
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not any(json.loads(done.stdout).values()), f"the bare venv has an extra: {done.stdout}"
    return python


def run_bare(python: Path, home: Path, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """``lumina-dedup ARGV`` in the bare venv, with a HOME (and default catalog) of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMINA_DEDUP", "POSTGRES_", "PYTHON"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    return subprocess.run([python, "-m", "lumina_plugin.cli", *map(str, argv)], capture_output=True,
                          text=True, env=env, cwd=home, timeout=300)


LUMINA_LINE = ("lumina-dedup: error: this needs the optional 'lumina' part (psycopg is not installed): "
               "pip install 'lumina-plugin[lumina]'")


@pytest.mark.parametrize("argv", [
    ("lumina", "status"), ("lumina", "find-duplicates", "--dry-run"), ("lumina", "listen"),
    ("lumina", "undo"), ("lumina", "uninstall", "--yes"),
    ("find-duplicates", "--catalog", PG_URL, "{photos}"), ("import", "--catalog", PG_URL, "{photos}"),
    ("undo", "--catalog", PG_URL), ("review", "--catalog", PG_URL, "--out", "{home}/report"),
], ids=lambda argv: " ".join(a for a in argv if not a.startswith(("{", "postgresql"))))
def test_lumina_commands_without_the_lumina_extra_print_one_line_naming_it(
        bare_python: Path, tmp_path: Path, argv: tuple[str, ...]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes((SAMPLE_DIR / "2015/2015-10-29/IMG_8812.jpg").read_bytes())
    done = run_bare(bare_python, tmp_path, *(a.format(photos=photos, home=tmp_path) for a in argv))
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (1, [LUMINA_LINE], "")
    assert not (tmp_path / "report").exists() and not (tmp_path / "data").exists()  # nothing written


def test_raw_and_heic_without_their_extras_are_per_file_errors_naming_them(bare_python: Path, tmp_path: Path) -> None:
    jpeg = SAMPLE_DIR / "2015/2015-10-29/IMG_8812.jpg"
    nef = DATA / "raw" / "Nikon.nef"  # a real camera's layout whose previews are placeholders: LibRaw needed
    heic = DATA / "heif" / "IMG_0412.heic"
    done = run_bare(bare_python, tmp_path, "hash", "--json", nef, heic, jpeg)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    out = json.loads(done.stdout)
    assert [f["path"] for f in out["files"]] == [str(jpeg)]  # the rest of the run goes on
    errors = {e["path"]: e["error"] for e in out["errors"]}
    assert errors[str(nef)].endswith("needs the optional 'raw' part (rawpy is not installed): "
                                     "pip install 'lumina-plugin[raw]'")
    assert errors[str(heic)] == ("HEIC/HEIF needs the optional 'heif' part (pillow-heif is not installed): "
                                 "pip install 'lumina-plugin[heif]'")

    done = run_bare(bare_python, tmp_path, "find-duplicates", "--json", "--catalog", tmp_path / "c.db", nef, heic, jpeg)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert {e["path"]: e["error"] for e in report["errors"]} == errors
    assert report["summary"]["hashed"] == 1


def test_gpu_on_without_cupy_names_the_gpu_extra_and_runs_on_the_cpu(bare_python: Path, tmp_path: Path) -> None:
    photos = sorted(SAMPLE_DIR.rglob("*.jpg"))[:6]
    config = tmp_path / "gpu.toml"
    # A pool run (not the in-process one a few files get), so that hashing asks for the GPU too.
    config.write_text('[gpu]\nuse = "on"\n[hashing]\nparallel_min_files = 2\nparallel_min_mb = 0\nworkers = 2\n')
    done = run_bare(bare_python, tmp_path, "find-duplicates", "--json", "--catalog", tmp_path / "c.db",
                    "--config", config, *photos)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    about_cupy = [line for line in done.stderr.splitlines() if "CuPy" in line]
    assert about_cupy, done.stderr  # "on" without CuPy: a warning, then the CPU (the flag's documented fallback)
    for line in about_cupy:
        assert "CuPy is not installed (the optional 'gpu' part: pip install 'lumina-plugin[gpu]')" in line
    assert json.loads(done.stdout)["summary"]["hashed"] == len(photos)
