"""The process pool behind hash_paths: the same batches as one process (records, errors,
order), started only for runs big enough, closable halfway, and never outliving a
killed main process. Real photos from the sample library; no mocks."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lumina_plugin.config import Config
from lumina_plugin.engine import Engine
from lumina_plugin.ingest import pool
from lumina_plugin.ingest.pipeline import hash_paths
from lumina_plugin.settings.hashing import HashingSettings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_catalog"


def config(**hashing: object) -> Config:
    settings = {"gpu": "off", "workers": 2, "parallel_min_mb": 0, **hashing}
    return Config(batch_size=5, hashing=HashingSettings(**settings))  # type: ignore[arg-type]


def in_process() -> Config:
    return config(parallel_min_files=10**6)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """17 real photos (JPEG, PNG, WebP, EXIF-rotated) with 4 bad files among them."""
    root = tmp_path_factory.mktemp("mixed")
    photos = sorted(p for p in SAMPLE_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".png", ".webp"})[:17]
    paths = []
    for n, src in enumerate(photos):
        dest = root / f"{n:02d}_{src.name}"
        shutil.copyfile(src, dest)
        paths.append(str(dest))
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("not a photo\n" * 50)
    truncated = root / "truncated.jpg"
    truncated.write_bytes(Path(paths[0]).read_bytes()[:3000])
    paths[3:3] = [str(root / "empty.jpg"), str(root / "missing.jpg")]
    paths[12:12] = [str(root / "notes.jpg"), str(truncated)]
    return paths


def as_rows(batches: list) -> list:
    """Batches as comparable plain data (codes as lists)."""
    return [([{**dataclasses.asdict(r), "codes": [int(c) for c in r.codes]} for r in records], errors)
            for records, errors in batches]


def test_pool_gives_the_same_batches_as_one_process(mixed: list[str]) -> None:
    want = list(hash_paths(mixed, in_process()))
    got = list(hash_paths(mixed, config()))
    assert pool.pool_running()
    assert [len(r) + len(e) for r, e in got] == [5, 5, 5, 5, 1]
    assert as_rows(got) == as_rows(want)
    assert sum(len(e) for _, e in got) == 4


def test_progress_reaches_the_total_in_order(mixed: list[str]) -> None:
    seen: list[tuple[str, int, int]] = []
    list(hash_paths(mixed, config(), lambda *a: seen.append(a)))
    assert seen[-1] == ("hashing", len(mixed), len(mixed))
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)


def test_small_runs_stay_in_this_process(mixed: list[str]) -> None:
    pool.shutdown_pool()
    batches = list(hash_paths(mixed[:6], config(parallel_min_mb=32)))
    assert not pool.pool_running()
    assert as_rows(batches) == as_rows(list(hash_paths(mixed[:6], in_process())))


def test_closing_the_run_halfway_leaves_the_pool_usable(mixed: list[str]) -> None:
    run = hash_paths(mixed, config())
    first = next(run)
    run.close()
    assert as_rows([first]) == as_rows(list(hash_paths(mixed[:5], in_process())))
    assert as_rows(list(hash_paths(mixed, config()))) == as_rows(list(hash_paths(mixed, in_process())))


def test_interrupted_import_keeps_finished_batches_and_resumes(tmp_path: Path, mixed: list[str]) -> None:
    class Stop(KeyboardInterrupt):
        pass

    def stop_midway(phase: str, done: int, total: int) -> None:
        if phase == "hashing" and done >= 11:
            raise Stop

    db = tmp_path / "c.db"
    with pytest.raises(Stop):
        with Engine(db, config(), progress=stop_midway) as engine:
            engine.import_paths(mixed)
    with Engine(db, config()) as engine:
        report = engine.import_paths(mixed)
    assert report.hashed + report.unchanged == len(mixed) - 4 and len(report.errors) == 4
    with Engine(tmp_path / "clean.db", in_process()) as engine:
        clean = engine.import_paths(mixed)
    with Engine(db, config()) as engine:
        again = engine.import_paths(mixed)
    assert again.hashed == 0 and again.unchanged == clean.hashed


def test_workers_exit_when_the_main_process_is_killed(tmp_path: Path, mixed: list[str]) -> None:
    """A SIGKILLed import must not leave workers holding its stdout (a caller waiting for
    the output would hang) nor running on."""
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from lumina_plugin.config import Config
        from lumina_plugin.ingest.pipeline import hash_paths
        from lumina_plugin.settings.hashing import HashingSettings
        cfg = Config(batch_size=5, hashing=HashingSettings(gpu="off", workers=2, parallel_min_mb=0))
        run = hash_paths({mixed!r}, cfg)
        next(run)
        print("first batch done", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and "first batch done" in proc.stdout


def test_pool_codes_equal_one_process_on_a_camera_sized_photo(tmp_path: Path, big_photo: Path) -> None:
    paths = []
    for n in range(3):
        dest = tmp_path / f"big{n}.jpg"
        shutil.copyfile(big_photo, dest)
        paths.append(str(dest))
    got = [r for rs, _ in hash_paths(paths, config()) for r in rs]
    want = [r for rs, _ in hash_paths(paths, in_process()) for r in rs]
    np.testing.assert_array_equal(np.stack([r.codes for r in got]), np.stack([r.codes for r in want]))
    assert [(r.width, r.height) for r in got] == [(3000, 2000)] * 3


def _blas_threads() -> list[int]:
    """Threads of the BLAS that NumPy's matrix products run on, in this process (other
    packages, such as SciPy through imagehash in a test, may load BLAS copies of their own)."""
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]


def test_workers_run_their_matrix_products_on_one_thread() -> None:
    """The thumbnails' row pass is a matrix product: N workers each running a BLAS thread
    per core would oversubscribe the machine N times over."""
    executor = pool.get_pool(2)
    assert _blas_threads(), "NumPy's BLAS not found"
    assert set(executor.submit(_blas_threads).result(timeout=60)) == {1}
