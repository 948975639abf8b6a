"""A file name that is not valid UTF-8 is printed escaped, never a UnicodeEncodeError (issue 18,
item 10: printing only; storing such names is the catalog's part).

Python hands such a name over as a str with surrogate escapes (PEP 383: b"caf\\xe9" becomes
"caf\\udce9"). A UTF-8 stdout in strict mode, as under the usual en_US.UTF-8 locale, cannot
encode it; ``PYTHONIOENCODING=utf-8`` gives the test that stdout whatever the machine's locale.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
NAME = b"caf\xe9"  # "cafe" with e-acute in Latin-1: what an old FAT drive or Windows code page left


def run(*argv: str | bytes, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config"), "PYTHONIOENCODING": "utf-8"}
    env.pop("LUMINA_DEDUP_CATALOG", None)
    return subprocess.run([sys.executable, "-m", "lumina_plugin.cli", *argv], capture_output=True,
                          text=True, errors="strict", env=env, cwd=ROOT, timeout=300)


def test_config_from_a_file_whose_name_is_not_utf8_prints_the_name_escaped(tmp_path: Path) -> None:
    config = os.path.join(os.fsencode(tmp_path), NAME + b".toml")
    with open(config, "w") as f:
        f.write("[thresholds]\nahash = 7\n")
    done = run("config", "--config", config, home=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("thresholds.ahash")]
    assert line.split()[1] == "7" and line.endswith(f"{tmp_path}/caf\\udce9.toml")


def test_hashing_a_folder_holding_such_a_name_does_not_crash(tmp_path: Path) -> None:
    folder = tmp_path / "old-drive"
    folder.mkdir()
    photo = (SAMPLE_DIR / "2015/2015-10-29/IMG_8812.jpg").read_bytes()
    with open(os.path.join(os.fsencode(folder), NAME + b".jpg"), "wb") as f:
        f.write(photo)
    done = run("hash", str(folder), home=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    # Hashed (stdout, escaped) or refused as that file's error (stderr): either way, named.
    assert "old-drive/caf" in done.stdout + done.stderr
