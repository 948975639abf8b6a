"""Thumbnails for the review: small upright JPEGs, made once and kept in a cache.

Each thumbnail is the photo as a viewer shows it (EXIF orientation applied), at most
:data:`THUMB_SIDE` pixels on its long side, JPEG quality 70: about 5-15 kB. They are
embedded in the pages as ``data:`` URIs, so a report is whole without a server or
network and leaves no image files behind that a photo manager could import. The cache
(``thumbs.sqlite`` in the report folder) is keyed by path, size and modification time,
so a second ``review`` after a few decisions decodes nothing it decoded before.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

log = logging.getLogger(__name__)

THUMB_SIDE = 240
QUALITY = 70
#: (path, size, mtime_ns): what makes a cached thumbnail still right.
Key = tuple[str | bytes, int, int]  # a path that is not UTF-8: its bytes (catalog/sqlite_paths.py)


def make_thumbnail(path: str | os.PathLike[str], side: int = THUMB_SIDE, quality: int = QUALITY) -> bytes:
    """The JPEG bytes of an upright thumbnail of ``path``. Raises OSError or a Pillow error
    if the photo cannot be decoded (a RAW or HEIC without a plug-in, a damaged file)."""
    with Image.open(path) as opened:
        opened.draft("RGB", (side * 2, side * 2))  # JPEG: decode at 1/2..1/8 scale, much faster
        pic: Image.Image = ImageOps.exif_transpose(opened)
        pic.thumbnail((side, side), Image.Resampling.LANCZOS)
        if pic.mode in ("RGBA", "LA", "P", "PA"):  # transparent: flatten onto white
            rgba = pic.convert("RGBA")
            pic = Image.new("RGB", rgba.size, (255, 255, 255))
            pic.paste(rgba, mask=rgba.getchannel("A"))
        elif pic.mode != "RGB":
            pic = pic.convert("RGB")
        out = io.BytesIO()
        pic.save(out, "JPEG", quality=quality, optimize=True)
        return out.getvalue()


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def file_key(path: str) -> Key | None:
    """The cache key of a file, or None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    from ..catalog.sqlite_paths import to_db
    return (to_db(path), st.st_size, st.st_mtime_ns)


class ThumbCache:
    """Thumbnails by (path, size, mtime) in one SQLite file; entries not used by a run are
    dropped at :meth:`close`, so the cache follows the catalog instead of growing."""

    def __init__(self, path: Path, side: int = THUMB_SIDE) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.conn.execute("CREATE TABLE IF NOT EXISTS thumbs (path TEXT, size INTEGER, mtime_ns INTEGER, "
                          "side INTEGER, jpeg BLOB, PRIMARY KEY (path, size, mtime_ns, side))")
        self.side = side
        self.used: set[Key] = set()

    def get(self, key: Key) -> bytes | None:
        self.used.add(key)
        row = self.conn.execute("SELECT jpeg FROM thumbs WHERE path=? AND size=? AND mtime_ns=? AND side=?",
                                (*key, self.side)).fetchone()
        return row[0] if row else None

    def put(self, key: Key, jpeg: bytes) -> None:
        self.used.add(key)
        self.conn.execute("INSERT OR REPLACE INTO thumbs VALUES (?, ?, ?, ?, ?)", (*key, self.side, jpeg))

    def close(self, prune: bool = True) -> None:
        with self.conn:
            if prune:
                self.conn.execute("CREATE TEMP TABLE keep (path TEXT, size INTEGER, mtime_ns INTEGER)")
                self.conn.executemany("INSERT INTO keep VALUES (?, ?, ?)", list(self.used))
                self.conn.execute("DELETE FROM thumbs WHERE side != ? OR NOT EXISTS (SELECT 1 FROM keep k "
                                  "WHERE k.path = thumbs.path AND k.size = thumbs.size "
                                  "AND k.mtime_ns = thumbs.mtime_ns)", (self.side,))
        self.conn.close()


def thumbnails(paths: Iterable[str], cache: ThumbCache | None, workers: int = 0,
               on_done: Callable[[int], None] = lambda n: None) -> dict[str, str | None]:
    """A ``data:`` URI per path (None where the photo cannot be decoded or is gone).

    Decoding runs on ``workers`` threads (Pillow releases the GIL while it decodes and
    resizes); the cache is read and written on the calling thread only. ``on_done(n)``
    is called as thumbnails finish, with how many finished since the last call.
    """
    todo: dict[str, Key | None] = {p: file_key(p) for p in dict.fromkeys(paths)}
    out: dict[str, str | None] = {}
    missing: list[tuple[str, Key]] = []
    for path, key in todo.items():
        jpeg = cache.get(key) if cache is not None and key is not None else None
        if key is None or jpeg is not None:
            out[path] = data_uri(jpeg) if jpeg else None
            on_done(1)
        else:
            missing.append((path, key))

    def make(item: tuple[str, Key]) -> tuple[str, Key, bytes | None]:
        try:
            return item[0], item[1], make_thumbnail(item[0], cache.side if cache else THUMB_SIDE)
        except Exception as exc:  # any decode failure: the card shows "no preview"
            log.info("no thumbnail for %s: %s", item[0], exc)
            return item[0], item[1], None

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for path, key, jpeg in pool.map(make, missing):
            if jpeg is not None and cache is not None:
                cache.put(key, jpeg)
            out[path] = data_uri(jpeg) if jpeg else None
            on_done(1)
    return out
