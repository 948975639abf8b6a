"""A folder that is not there now (an unplugged disk, an unmounted share) is not a deletion: its
photos are left out of the run's groups but keep their rows and decisions, and come back when the
folder does. A file deleted from a folder that is still there is gone (test_vanished_photos.py).
Also: a name that is not UTF-8 on Lumina's catalog is one error line, and the plugin's dry run
makes no catalog."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import write_photo
from test_lumina_support import lumina, lumina_db, pg_database  # noqa: F401  (the PostgreSQL fixtures)
from test_vanished_photos import OTHER, catalogued, groups, run


@pytest.fixture()
def two_disks(tmp_path: Path) -> tuple[Path, Path]:
    """lib/a.jpg (the keeper) and lib/y.jpg; on the "external disk" ext/: a's export b.jpg and
    y's export z.jpg."""
    lib, ext = tmp_path / "lib", tmp_path / "ext"
    write_photo(lib / "a.jpg", size=(640, 400))
    write_photo(lib / "y.jpg", source=OTHER, size=(640, 400))
    write_photo(ext / "b.jpg", size=(320, 200))
    write_photo(ext / "z.jpg", source=OTHER, size=(320, 200))
    return lib, ext


def test_an_unplugged_folder_keeps_its_rows_and_decisions(tmp_path: Path, two_disks: tuple[Path, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    lib, ext = two_disks
    catalog = tmp_path / "c.db"
    code, data = run(capsys, catalog, "find-duplicates", str(lib), str(ext), "--no-gpu")
    assert code == 0 and groups(data) == [{"a.jpg": "keeper", "b.jpg": "derivative"},
                                          {"y.jpg": "keeper", "z.jpg": "derivative"}]
    assert run(capsys, catalog, "decide", "keeper", str(ext / "z.jpg"))[0] == 0
    unplugged = tmp_path / "ext-unplugged"
    ext.rename(unplugged)  # the disk is gone; nothing on it was deleted

    code, data = run(capsys, catalog, "find-duplicates", "--no-gpu")
    assert code == 0
    assert data["groups"] == []  # nothing advised on photos that cannot be seen
    assert sorted(Path(p).name for p in data["unavailable"]) == ["b.jpg", "z.jpg"]
    assert data["vanished"] == []
    assert catalogued(catalog) == {"a.jpg", "b.jpg", "y.jpg", "z.jpg"}  # rows kept
    code, review = run(capsys, catalog, "review", "--out", str(tmp_path / "report"))
    assert code == 0 and review["groups"] == 0 and len(review["unavailable"]) == 2

    unplugged.rename(ext)  # plugged in again: the groups and the decision are back
    code, data = run(capsys, catalog, "find-duplicates", "--no-gpu")
    assert code == 0 and data["unavailable"] == []
    assert groups(data) == [{"a.jpg": "keeper", "b.jpg": "derivative"}, {"z.jpg": "keeper", "y.jpg": "derivative"}]


def test_a_deleted_folder_can_be_forgotten(tmp_path: Path, two_disks: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    lib, ext = two_disks
    catalog = tmp_path / "c.db"
    assert run(capsys, catalog, "find-duplicates", str(lib), str(ext), "--no-gpu")[0] == 0
    shutil.rmtree(ext)
    code, data = run(capsys, catalog, "find-duplicates", "--no-gpu")
    assert code == 0 and len(data["unavailable"]) == 2
    assert main_text(capsys, catalog, "find-duplicates", "--no-gpu").count("forget") == 1  # it says how
    assert run(capsys, catalog, "forget", str(ext))[0] == 0
    assert catalogued(catalog) == {"a.jpg", "y.jpg"}
    code, data = run(capsys, catalog, "find-duplicates", "--no-gpu")
    assert code == 0 and data["unavailable"] == [] and data["groups"] == []


def main_text(capsys: pytest.CaptureFixture[str], catalog: Path, *args: str) -> str:
    from lumina_plugin.cli import main
    assert main([*args, "--catalog", str(catalog)]) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_plugin_dry_run_makes_no_catalog(tmp_path: Path) -> None:
    from lumina_hooks import HostContext

    from lumina_plugin import plugin
    write_photo(tmp_path / "lib" / "a.jpg", size=(640, 400))
    shutil.copy2(tmp_path / "lib" / "a.jpg", tmp_path / "lib" / "c.jpg")
    catalog = tmp_path / "nowhere" / "c.db"
    host = HostContext(name="test", catalog=str(catalog))
    answer = plugin.lumina_run_action(host, plugin.FIND_DUPLICATES, {"paths": [str(tmp_path / "lib")], "dry_run": True})
    assert answer is not None and answer.details["summary"]["groups"] == 1
    assert not (tmp_path / "nowhere").exists()


def test_a_name_that_is_not_utf8_on_luminas_catalog_is_one_error_line(tmp_path: Path,
                                                                      lumina: tuple[str, str]) -> None:
    from test_lumina_support import scan_as_lumina

    from lumina_plugin.engine import Engine
    url, cid = lumina
    lib = tmp_path / "lib"
    write_photo(lib / "a.jpg", size=(640, 400))
    scan_as_lumina(url, cid, [lib / "a.jpg"])  # Lumina stores what it can; the odd name it cannot
    shutil.copyfile(lib / "a.jpg", os.fsencode(lib) + b"/caf\xe9.jpg")
    with Engine(url) as engine:
        report = engine.import_paths([str(lib)])
    assert [Path(e.path).name for e in report.errors] == [os.fsdecode(b"caf\xe9.jpg")]
    assert "UTF-8" in report.errors[0].error
    assert report.hashed == 1
