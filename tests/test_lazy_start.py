"""``lumina-dedup --help`` and usage errors answer before NumPy, Pillow, faiss or the engine load
(issue 19: a command line that answers at once). Checked in a fresh interpreter, on what it
actually imported, not on timings."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "PIL", "faiss", "pywt", "exifread", "watchdog", "pluggy", "lumina_plugin.engine",
         "lumina_plugin.catalog", "importlib.metadata")

PROBE = """
import sys
from lumina_plugin.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("LOADED", ",".join(m for m in {heavy!r} if m in sys.modules))
sys.exit(code)
"""


def loaded_by(*argv: str) -> tuple[int, list[str], str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
                          capture_output=True, text=True, timeout=120)
    line = [x for x in done.stdout.splitlines() if x.startswith("LOADED")][-1]
    return done.returncode, [m for m in line.split(" ", 1)[1].split(",") if m], done.stdout + done.stderr


@pytest.mark.parametrize("argv", [
    ("--help",), ("find-duplicates", "--help"), ("import", "--help"), ("watch", "--help"),
    ("review", "--help"), ("lumina", "--help"), ("hash", "--help"), ("decide", "--help"),
])
def test_help_loads_nothing_heavy(argv: tuple[str, ...]) -> None:
    code, loaded, out = loaded_by(*argv)
    assert code == 0, out
    assert "usage: lumina-dedup" in out
    assert loaded == [], f"--help imported {loaded}"


@pytest.mark.parametrize("argv", [("find-duplicates", "--no-such-flag"), ("nonsense",), ("decide",)])
def test_usage_errors_load_nothing_heavy(argv: tuple[str, ...]) -> None:
    code, loaded, out = loaded_by(*argv)
    assert code == 2, out
    assert loaded == [], f"a usage error imported {loaded}"


def test_version_still_reads_the_installed_metadata() -> None:
    done = subprocess.run([sys.executable, "-m", "lumina_plugin.cli", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    assert done.stdout.startswith("lumina-dedup ") and done.stdout.strip() != "lumina-dedup"


def test_a_real_run_still_loads_the_engine(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "a.png")
    code, loaded, out = loaded_by("find-duplicates", str(tmp_path), "--catalog", str(tmp_path / "c.db"), "--json")
    assert code == 0, out
    assert "numpy" in loaded and "lumina_plugin.engine" in loaded
