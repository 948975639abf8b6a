"""The peer benchmark (benchmarks/vs_peers.py, issue 19 item 5) measures what it says, on real files.

A tiny library is built from two of sample_catalog's photos (one enlarged to 2400x1600 so that
it gives a large original and tiles, one kept small), every original with planted copies;
the checks decode the written files: a copy must show its original's picture (upright, for the
copies rotated by tag), originals must be different pictures, and truth.json's groups must
say exactly that. Then the scoring, and one run of the benchmark with our CLI as a subprocess.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _peer_library  # noqa: E402
import vs_peers  # noqa: E402

SAMPLE = ROOT / "sample_catalog"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    src = tmp_path_factory.mktemp("src")
    with Image.open(SAMPLE / "2018/2018-10-14/DSC00388.jpg") as im:
        ImageOps.exif_transpose(im).convert("RGB").resize((2400, 1800), Image.Resampling.BICUBIC).save(
            src / "big.jpg", quality=92)
    given = [{"id": "big", "path": str(src / "big.jpg"), "origin": "test"},
             {"id": "small", "path": str(SAMPLE / "2021/2021-12-24/IMG_3307.jpg"), "origin": "test"}]
    out = tmp_path_factory.mktemp("lib") / "library"
    truth = _peer_library.build(out, files=10_000, copy_share=1.0, jobs=1, given=given)
    return out, truth


def upright(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("L"), dtype=np.float32)


def thumb(a: np.ndarray, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def test_library_has_large_originals_tiles_and_every_copy_kind(library: tuple[Path, dict]) -> None:
    out, truth = library
    kinds = {f["kind"] for f in truth["files"].values()}
    assert {"camera_12mp", "scan", "small_photo"} <= kinds
    assert set(_peer_library.COPY_KINDS) - {"png"} <= kinds  # png only for small pictures: chosen at random
    camera = next(p for p, f in truth["files"].items() if f["kind"] == "camera_12mp")
    with Image.open(out / camera) as im:
        assert sorted(im.size) == [3000, 4000]  # 12 MP, turned to the part of the frame it came from
        assert im.getexif()[0x0110]  # a camera model, as a camera writes it
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"truth.json"}
    assert on_disk == set(truth["files"])


def test_every_copy_shows_its_original_and_originals_differ(library: tuple[Path, dict]) -> None:
    out, truth = library
    files = truth["files"]
    assert all(sum(files[f]["role"] == "original" for f in g) == 1 for g in truth["groups"])
    originals = {f["group"]: rel for rel, f in files.items() if f["role"] == "original"}
    for rel, f in files.items():
        if f["role"] != "copy":
            continue
        orig = out / originals[f["group"]]
        if f["kind"] == "byte_copy":
            assert (out / rel).read_bytes() == orig.read_bytes()
            continue
        a, b = upright(orig), upright(out / rel)
        if f["kind"] == "rotated_tag":
            with Image.open(out / rel) as im:
                assert im.getexif()[0x0112] in (6, 8)
                assert im.size == (a.shape[0], a.shape[1])  # stored turned, shown upright
        assert abs(a.shape[1] / a.shape[0] - b.shape[1] / b.shape[0]) < 0.12, rel
        assert np.abs(thumb(a) - thumb(b)).mean() < 8, rel
    tiles = [thumb(upright(out / rel)) for rel, f in files.items() if f["role"] == "original"]
    for i in range(len(tiles)):
        for j in range(i + 1, len(tiles)):
            assert np.abs(tiles[i] - tiles[j]).mean() > 3  # disjoint parts of the frame: different pictures


def test_score_library_counts_pairs() -> None:
    truth = {"files": {n: {"source": s, "kind": k, "role": r} for n, s, k, r in (
        ("a.jpg", "x", "scan", "original"), ("a2.jpg", "x", "resized", "copy"), ("a3.jpg", "x", "cropped", "copy"),
        ("b.jpg", "x", "scan", "original"), ("c.jpg", "y", "scan", "original"))},
        "groups": [["a.jpg", "a2.jpg", "a3.jpg"]]}
    found = vs_peers.score_library(truth, {frozenset(p) for p in (("a.jpg", "a2.jpg"), ("a.jpg", "b.jpg"))})
    assert (found["precision"], found["recall"]) == (0.5, pytest.approx(1 / 3))
    assert found["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert (found["false"], found["false_same_source"]) == (1, 1)
    assert found["missed_original_copy_by_kind"] == {"cropped": 1}


def test_one_run_scores_ours_and_notes_a_missing_peer(library: tuple[Path, dict], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = library
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    # This interpreter without its site-packages: imagededup is missing there even where a
    # developer installed it beside the project.
    bare = tmp_path / "python-without-site-packages"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    bare.chmod(0o755)
    code = vs_peers.main(["--library", str(out), "--no-corpus", "--tools", "ours,imagededup",
                          "--imagededup-python", str(bare), "--out", str(md), "--json", str(js)])
    assert code == 0
    result = json.loads(js.read_text())["library"]
    assert list(result) == ["ours"]  # imagededup is not importable there: skipped, with a note
    assert result["ours"]["score"]["recall"] >= 0.9 and result["ours"]["score"]["precision"] == 1.0
    text = md.read_text()
    assert "| ours |" in text and "imagededup PHash: not run (not importable" in text


def test_ours_runs_byte_compiled_as_an_installed_wheel_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every module of the package has its bytecode before ours is timed (an editable install
    under PYTHONDONTWRITEBYTECODE=1 would compile the whole package in each timed run)."""
    import lumina_plugin

    folder = vs_peers.byte_compile_ours()
    assert folder == Path(lumina_plugin.__file__).parent
    import importlib.util

    sources = sorted(folder.rglob("*.py"))
    assert sources
    missing = [s for s in sources if not Path(importlib.util.cache_from_source(str(s))).exists()]
    assert not missing
