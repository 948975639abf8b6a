"""Background folder watching: observer, readiness of files, batches, durable queue.

``lumina-dedup watch`` and any host run :class:`WatchService`; each module has one job:

- :mod:`.observer`  watchdog observer whose handler only enqueues; checks and restarts
- :mod:`.compat`    what the installed watchdog can do (3.0 to the newest)
- :mod:`.inotify`   inotify limits and watches, read from ``/proc``
- :mod:`.readiness` when a file is complete; temporary and hidden names
- :mod:`.batcher`   debounced batches of operations (N files or S seconds)
- :mod:`.queue`     the durable queue file beside the catalog
- :mod:`.scan`      the start-up (and periodic) comparison of folders and catalog
- :mod:`.host`      the PluginHost it fires events on; what a batch did
- :mod:`.service`   the loop that ties them together
- :mod:`.testing`   a kit for tests and benchmarks on real files
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import WatchError

if TYPE_CHECKING:
    from .host import BatchResult
    from .service import WatchService


def __getattr__(name: str) -> Any:
    # The service and the host load NumPy, watchdog and the engine; the command line imports
    # this package for WatchError alone and must answer --help before any of that loads.
    if name == "WatchService":
        from .service import WatchService
        return WatchService
    if name == "BatchResult":
        from .host import BatchResult
        return BatchResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BatchResult", "WatchError", "WatchService"]
