"""The pixel looks of the geometric search shared out over the worker pool give the verdicts
the calling process gives, pair for pair (issue 19: the looks were the cost of a run on a
library of many look-alikes, one at a time in the main process)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lumina_plugin.grouping import second_look
from lumina_plugin.grouping.second_look import pixel_look

SAMPLE = Path(__file__).resolve().parents[1] / "sample_catalog"
SOURCES = sorted(SAMPLE.glob("20*/*/*.jpg"))[:9]


def mild_crops(tmp_path: Path, side: int) -> tuple[dict[int, tuple[str, int, int]], list[tuple[int, int, int]]]:
    """Photos 2k (a sample photo at ``side`` pixels) and 2k+1 (a mild crop of it, re-encoded);
    the pairs: each photo with its crop, then each photo with the next one (two different
    photos)."""
    photos: dict[int, tuple[str, int, int]] = {}
    pairs: list[tuple[int, int, int]] = []
    for k, src in enumerate(SOURCES):
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.thumbnail((side, side))
            w, h = im.size
            crop = im.crop((int(0.03 * w), int(0.02 * h), w - int(0.05 * w), h - int(0.01 * h)))  # a mild crop
            im.save(tmp_path / f"{k}.jpg", quality=92)
            crop.save(tmp_path / f"{k}-crop.jpg", quality=88)
            photos[2 * k] = (str(tmp_path / f"{k}.jpg"), w, h)
            photos[2 * k + 1] = (str(tmp_path / f"{k}-crop.jpg"), crop.width, crop.height)
        pairs.append((2 * k, 2 * k + 1, 0))  # a copy
    pairs += [(2 * k, 2 * ((k + 1) % len(SOURCES)), 0) for k in range(len(SOURCES))]  # two different photos
    return photos, pairs


def test_pooled_looks_equal_the_serial_ones(tmp_path: Path) -> None:
    photos, pairs = mild_crops(tmp_path, 900)
    assert len(pairs) >= second_look.POOL_MIN_PAIRS  # enough for the pool to take them

    serial = pixel_look(photos.get, 250_000_000, workers=1)(pairs)
    pooled = pixel_look(photos.get, 250_000_000, workers=2)(pairs)
    assert pooled == serial
    copies, others = serial[:len(SOURCES)], serial[len(SOURCES):]
    assert sum(v != 0 for v in copies) >= len(SOURCES) - 1  # mild crops are seen as crops
    assert not any(others)  # different photos never are


def test_a_photo_that_cannot_be_read_is_no_match_in_the_pool_too(tmp_path: Path) -> None:
    good = tmp_path / "a.jpg"
    with Image.open(SOURCES[0]) as im:
        im.convert("RGB").resize((600, 400)).save(good)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    photos = {1: (str(good), 600, 400), 2: (str(tmp_path / "broken.jpg"), 600, 400),
              3: (str(tmp_path / "gone.jpg"), 600, 400)}
    pairs = [(1, 2, 0), (1, 3, 0), (2, 3, 0), (1, 4, 0)] * 5  # 4: a photo the catalog does not know
    assert pixel_look(photos.get, 250_000_000, workers=2)(pairs) == [0] * len(pairs)


def test_a_worker_killed_before_the_looks_leaves_the_verdicts_to_this_process(tmp_path: Path,
                                                                              caplog) -> None:
    """A pool worker killed (out of memory, by hand) between the import and the looks: the
    run goes on in this process with the same verdicts, and says so once."""
    import os
    import signal
    import time

    from lumina_plugin.ingest import pool

    photos, pairs = mild_crops(tmp_path, 600)
    serial = pixel_look(photos.get, 250_000_000, workers=1)(pairs)

    executor = pool.get_pool(2)
    executor.submit(int, 0).result()  # the workers are up
    for pid in list(executor._processes):  # noqa: SLF001 - the test kills a real worker process
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not executor._broken and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.05)
    with caplog.at_level("WARNING"):
        assert pixel_look(photos.get, 250_000_000, workers=2)(pairs) == serial
    assert any("worker pool stopped" in r.getMessage() for r in caplog.records)
    assert not pool.pool_running()  # the next run starts a fresh pool
    copies, others = serial[:len(SOURCES)], serial[len(SOURCES):]
    assert copies.count(0) <= 1 and not any(others)


def test_the_looks_are_cut_into_runs_that_shrink_toward_the_end() -> None:
    """Every look goes to exactly one run, in order; the runs shrink (large ones keep a
    photo's pairs together, small ones last let the workers end together) and never below
    the smallest run, except the remainder."""
    order = [7 * k % 399 for k in range(399)]  # any order: the runs keep it
    for workers in (1, 2, 3, 8):
        parts = second_look.guided_parts(order, workers)
        assert [k for part in parts for k in part] == order
        sizes = [len(p) for p in parts]
        assert sizes == sorted(sizes, reverse=True)
        assert all(n >= 8 for n in sizes[:-1]) and sizes[-1] >= 1
        assert sizes[0] == -(-len(order) // (2 * workers))  # half a worker's even share first
    assert second_look.guided_parts([], 2) == []
    assert [len(p) for p in second_look.guided_parts(list(range(5)), 2)] == [5]
