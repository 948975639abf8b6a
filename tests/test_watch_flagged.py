"""``lumina-dedup watch`` names the files it flags (issue 18, item 7), not only how many.

A real watcher process on a real folder: copies of a photo land in it; its log (stderr) has
a line per flagged file with the relation and the photo it copies, and its ``--json`` batch
events list them as ``flagged`` ({"path", "relation", "keeper"}).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from PIL import Image
from test_watch_cli import Watcher

SAMPLE = Path(__file__).resolve().parent.parent / "sample_catalog"
PHOTO = SAMPLE / "2016/2016-08-19/DSC04512.jpg"


def test_watch_names_the_files_it_flagged(tmp_path: Path) -> None:
    folder, staging = tmp_path / "inbox", tmp_path / "staging"
    folder.mkdir()
    staging.mkdir()
    original = folder / "DSC04512.jpg"
    shutil.copy(PHOTO, original)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}
    watcher = Watcher(folder, tmp_path / "c.db", env)
    try:
        watcher.wait_line("start-up scan")
        shutil.copy(PHOTO, staging / "backup.jpg")
        with Image.open(PHOTO) as im:
            im.convert("RGB").resize((320, 200), Image.Resampling.LANCZOS).save(staging / "small.jpg", quality=85)
        for name in ("backup.jpg", "small.jpg"):  # moved in whole, as a sync tool finishes a file
            os.replace(staging / name, folder / name)
        exact = watcher.wait_line(f"flagged {folder / 'backup.jpg'}")
        near = watcher.wait_line(f"flagged {folder / 'small.jpg'}")
    finally:
        watcher.proc.send_signal(signal.SIGTERM)
    code, batches = watcher.finish()
    assert code == 0
    assert exact.rstrip().endswith(f"(exact) as a copy of {original}")
    assert near.rstrip().endswith(f"(derivative) as a copy of {original}")
    flagged = [row for batch in batches for row in batch["flagged"]]
    assert sorted(flagged, key=lambda r: r["path"]) == [
        {"path": str(folder / "backup.jpg"), "relation": "exact", "keeper": str(original)},
        {"path": str(folder / "small.jpg"), "relation": "derivative", "keeper": str(original)}]
    for b in (b for b in batches if b["flagged"]):  # and the batch's summary line counts them
        assert any(f"batch {b['batch']}: " in line and f"{len(b['flagged'])} flagged" in line for line in watcher.err)
