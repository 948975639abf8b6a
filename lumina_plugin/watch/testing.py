"""A small kit for testing the watcher (and hosts that embed it) on real files.

- :class:`WatcherThread`: run a :class:`WatchService` on a thread for a ``with`` block.
- :func:`wait_for`: wait on a condition with a timeout, never a bare sleep.
- :func:`slow_write`: write a file in pieces with pauses, as a slow copy does.
- :func:`distinct_photos`: many real JPEGs that are not near-copies of one another
  (collages of tiles cut from source photos), for bursts and benchmarks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .host import BatchResult
from .service import WatchService


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.02,
             what: str | Callable[[], str] = "condition") -> object:
    """Poll ``condition`` until it returns something true; AssertionError after ``timeout``.
    ``what`` names what was awaited; a callable is asked at the timeout, so the message
    tells how far it got then, not at the start."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            told = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {told}")
        time.sleep(interval)


def slow_write(dest: str | os.PathLike[str], data: bytes, pieces: int = 8, pause: float = 0.05,
               on_piece: Callable[[int], None] | None = None) -> float:
    """Write ``data`` to ``dest`` in ``pieces`` chunks, flushing each and pausing between
    them; returns the wall-clock time (``time.time()``) at which the file was closed."""
    size = max(1, -(-len(data) // max(1, pieces)))
    with open(dest, "wb") as fh:
        for n, start in enumerate(range(0, len(data), size)):
            if n:
                time.sleep(pause)
            fh.write(data[start:start + size])
            fh.flush()
            if on_piece is not None:
                on_piece(n)
    return time.time()


class WatcherThread:
    """Run ``service`` on a thread: ``with WatcherThread(service) as w: ...``.

    Entering waits until the observer runs and the start-up scan is queued; leaving
    stops the service after its current batch and re-raises what the thread raised.
    ``batches`` collects every committed :class:`BatchResult`.
    """

    def __init__(self, service: WatchService, start_timeout: float = 30.0) -> None:
        self.service = service
        self.batches: list[BatchResult] = []
        self.error: BaseException | None = None
        self.start_timeout = start_timeout
        chained = service.on_batch

        def record(result: BatchResult) -> None:
            self.batches.append(result)
            if chained is not None:
                chained(result)

        service.on_batch = record
        self.thread = threading.Thread(target=self._run, name="watch-service", daemon=True)

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:  # surfaced in __exit__
            self.error = exc

    def __enter__(self) -> WatcherThread:
        self.thread.start()
        wait_for(lambda: self.service.started.is_set() or not self.thread.is_alive(), self.start_timeout,
                 what="the watcher to start")
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.stop()
        self.thread.join(60)
        if self.thread.is_alive():
            raise AssertionError("the watcher did not stop within 60 s")
        if self.error is not None and exc[0] is None:
            raise self.error

    # -- what was done -------------------------------------------------------------------------
    def imported(self) -> list[str]:
        return [p for b in self.batches for p in b.imported]

    def hashed(self) -> int:
        return sum(b.hashed for b in self.batches)

    def errors(self) -> list[dict[str, str]]:
        return [e for b in self.batches for e in b.errors]

    def wait_hashed(self, count: int, timeout: float = 30.0) -> None:
        """Wait until batches report ``count`` files hashed in all."""
        wait_for(lambda: self.hashed() >= count or self.error is not None, timeout,
                 what=lambda: f"{count} files hashed (have {self.hashed()} in {len(self.batches)} batches)")
        if self.error is not None:
            raise self.error

    def wait_batches(self, condition: Callable[[list[BatchResult]], object], timeout: float = 30.0,
                     what: str = "batches") -> None:
        wait_for(lambda: condition(self.batches) or self.error is not None, timeout, what=what)
        if self.error is not None:
            raise self.error


def distinct_photos(dest: str | os.PathLike[str], count: int, sources: Sequence[str | os.PathLike[str]],
                    size: tuple[int, int] = (64, 48), tiles: int = 4, quality: int = 85, noise: float = 0.0,
                    seed: int = 7, prefix: str = "IMG_") -> list[Path]:
    """Write ``count`` JPEGs into ``dest``: each a ``tiles`` x ``tiles`` collage of random
    crops of the ``sources`` photos (random source, place, zoom and mirror), so that their
    hashes are far apart and none is a near-copy of another; ``noise`` adds Gaussian
    noise of that sigma (camera-like file sizes). Returns the paths, in order."""
    import numpy as np
    from PIL import Image, ImageOps

    rng = np.random.default_rng(seed)
    width, height = size
    tw, th = -(-width // tiles), -(-height // tiles)
    # Each source at a few zooms, so that a tile is a plain crop (no resize per tile).
    pyramid: list[np.ndarray] = []
    for src in sources:
        with Image.open(src) as im:
            pic = ImageOps.exif_transpose(im).convert("RGB")
        for zoom in (0.5, 0.7, 0.9):  # the tile spans this fraction of the source's height
            scale = th / (zoom * pic.height)
            w, h = max(tw, round(pic.width * scale)), max(th, round(pic.height * scale))
            pyramid.append(np.asarray(pic.resize((w, h), Image.Resampling.BILINEAR)))
    out_dir = Path(dest)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    n_tiles = tiles * tiles
    draws = rng.random((count, n_tiles, 4)).tolist()  # level, y, x, mirror per tile, drawn at once
    canvas = np.empty((th * tiles, tw * tiles, 3), np.uint8)
    # One noise field drawn once; each photo takes a window of it at a random offset.
    grain = rng.normal(0.0, noise, (height + 64, width + 64, 3)).astype(np.int16) if noise else None
    for n in range(count):
        for t, (u_level, u_y, u_x, u_flip) in enumerate(draws[n]):
            level = pyramid[int(u_level * len(pyramid))]
            y0 = int(u_y * (level.shape[0] - th + 1))
            x0 = int(u_x * (level.shape[1] - tw + 1))
            tile = level[y0:y0 + th, x0:x0 + tw]
            ty, tx = divmod(t, tiles)
            canvas[ty * th:(ty + 1) * th, tx * tw:(tx + 1) * tw] = tile[:, ::-1] if u_flip < 0.5 else tile
        pixels = canvas[:height, :width]
        if grain is not None:
            dy, dx = (int(v) for v in rng.integers(0, 64, 2))
            pixels = np.clip(pixels + grain[dy:dy + height, dx:dx + width], 0, 255).astype(np.uint8)
        path = out_dir / f"{prefix}{n:05d}.jpg"
        Image.fromarray(np.ascontiguousarray(pixels)).save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


def photo_sources(sample_dir: str | os.PathLike[str]) -> list[Path]:
    """The photos of a sample library (``sample_catalog/``), sorted."""
    exts = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"}
    return sorted(p for p in Path(sample_dir).rglob("*") if p.suffix.lower() in exts)

