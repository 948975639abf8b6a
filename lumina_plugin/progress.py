"""Progress on a terminal: a rich bar with count, rate and ETA on stderr, nothing elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Progress


@contextmanager
def terminal_progress(enabled: bool) -> Iterator[Progress]:
    """Yield a progress callback; it draws only if ``enabled`` and stderr is a terminal
    (so ``--json``, pipes and CI logs stay clean)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda phase, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Bar(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total, rate="")
            bar.update(tasks[phase], completed=done, total=total)
            speed = next(t.speed for t in bar.tasks if t.id == tasks[phase])
            bar.update(tasks[phase], rate=f"{speed:.1f}/s" if speed else "")

        yield update
