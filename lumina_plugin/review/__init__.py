"""The review report: static HTML pages a person looks at before deciding.

:func:`write_review` turns the groups of a run (``RunReport.as_json()["groups"]``) into
``index.html``, ``page-2.html``, ... in one folder: :data:`PAGE_SIZE` groups a page,
the most space to save first, thumbnails embedded. Static pages, because they open
from ``file://`` in any browser, on a phone too, with no server and no script needed,
and 10,000 groups are 100 small pages instead of one huge one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..model import ImageInfo
from .html import group_card, page_name, render_page
from .model import GroupView, group_views, totals
from .thumbs import ThumbCache, thumbnails

__all__ = ["PAGE_SIZE", "ReviewError", "ReviewResult", "check_out_dir", "write_review"]

PAGE_SIZE = 100


class ReviewError(Exception):
    """The report cannot be written where asked (inside a photo folder)."""


@dataclass(frozen=True)
class ReviewResult:
    index: Path
    groups: int
    pages: int
    savable_bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"report": str(self.index), "groups": self.groups, "pages": self.pages}


def check_out_dir(out_dir: Path, photos: Iterable[str]) -> None:
    """Refuse a report folder that is, lies inside, or contains a folder of these photos:
    the report never adds files where photos live (photo managers and scans walk there)."""
    out = Path(os.path.realpath(out_dir))
    for folder in sorted({Path(os.path.realpath(d)) for d in {os.path.dirname(p) for p in photos}}):
        if out.is_relative_to(folder) or folder.is_relative_to(out):
            raise ReviewError(f"{out_dir} is or holds the photo folder {folder}; "
                              "choose a report folder elsewhere with --out")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    # A name that is not UTF-8 (an old FAT or code-page archive) shows escaped, as on the terminal.
    tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
    os.replace(tmp, path)


def write_review(groups: Iterable[Mapping[str, Any]], out_dir: Path, catalog: str | os.PathLike[str],
                 facts: Mapping[str, ImageInfo] | None = None,
                 progress: Callable[[str, int, int], None] = lambda phase, done, total: None,
                 page_size: int = PAGE_SIZE, thumbs: bool = True) -> ReviewResult:
    """Write the report for ``groups`` into ``out_dir`` and return where it is.

    ``facts`` (path -> ImageInfo, e.g. from ``RunReport.images``) fills what the JSON
    lacks; ``catalog`` goes into the decide commands the cards show. Pages are written
    one at a time (thumbnails of one page in memory at once); each page replaces the old
    one atomically, and pages left from a longer earlier report are removed.
    ``progress("thumbnails", done, total)`` reports the thumbnail work.
    """
    views = group_views(groups, facts or {})
    check_out_dir(out_dir, (m.path for g in views for m in g.members))
    out_dir.mkdir(parents=True, exist_ok=True)
    sums = totals(views)
    pages = max(1, -(-len(views) // max(1, page_size)))
    total_members = sum(len(g.members) for g in views)
    made_at = datetime.now()
    done = 0
    cache = ThumbCache(out_dir / "thumbs.sqlite") if thumbs else None
    finished = False
    try:
        for number in range(1, pages + 1):
            chunk: list[GroupView] = views[(number - 1) * page_size:number * page_size]
            paths = [m.path for g in chunk for m in g.members]

            def tick(n: int) -> None:
                nonlocal done
                done += n
                progress("thumbnails", done, total_members)

            images = thumbnails(paths, cache, on_done=tick) if thumbs else {}
            if not thumbs:
                tick(len(paths))
            cards = [group_card(g, images, os.fspath(catalog)) for g in chunk]
            first = (number - 1) * page_size + 1
            _write_atomic(out_dir / page_name(number),
                          render_page(cards, number, pages, first, sums, os.fspath(catalog), made_at))
            if cache is not None:
                cache.conn.commit()
        finished = True
    finally:
        if cache is not None:
            cache.close(prune=finished)  # an interrupted run keeps what it had
    for old in out_dir.glob("page-*.html"):
        m = re.fullmatch(r"page-(\d+)\.html", old.name)
        if m and int(m.group(1)) > pages:
            old.unlink()
    return ReviewResult(out_dir / page_name(1), len(views), pages, sums["savable_bytes"])
