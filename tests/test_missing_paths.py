"""A command given only paths that do not exist says so in one line, exits 1 and writes nothing
(issue 18, item 3): no catalog, no lock file, no index folder appear. Some missing among
existing ones are the run's per-file errors, as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumina_plugin.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog" / "2021" / "2021-03-14" / "IMG_0412.jpg"


@pytest.mark.parametrize("command", [["find-duplicates"], ["import"], ["hash"], ["watch"]])
def test_nothing_that_exists_is_one_line_exit_1_and_nothing_written(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    catalog = tmp_path / "cat" / "c.db"
    missing = tmp_path / "no" / "such.jpg"
    args = [*command, str(missing)] + ([] if command == ["hash"] else ["--catalog", str(catalog)])
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and str(missing) in err[0]
    assert not (tmp_path / "cat").exists()  # no catalog, lock file or index was created
    assert not (tmp_path / "home").exists()


def test_a_missing_path_beside_an_existing_one_is_a_per_file_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    missing = tmp_path / "gone.jpg"
    code = main(["find-duplicates", str(SAMPLE), str(missing), "--catalog", str(tmp_path / "c.db"), "--no-gpu"])
    err = capsys.readouterr().err
    assert code == 0 and str(missing) in err
    assert (tmp_path / "c.db").exists()
