"""Settings: Background folder watching (lumina-dedup watch).

A section of :class:`lumina_plugin.config.Config` (its TOML table is ``[watch]``).
Fields must have defaults and simple types (bool, int, float, str, tuple of str).
Command-line flags of ``lumina-dedup watch`` override them.

    [watch]
    folders = ["/media/card-dump", "/home/me/Phone"]
    batch_size = 256
    max_wait = 0.25
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WatchSettings:
    """How the watcher decides that a file is complete and when a batch is imported."""

    #: Folders watched when none are given on the command line.
    folders: tuple[str, ...] = ()
    #: Poll the folders instead of using inotify: for network shares (inotify does not
    #: see writes made by other machines) and where inotify watches run out.
    polling: bool = False
    #: Seconds between two snapshots of the folders when polling.
    poll_interval: float = 1.0
    #: A batch closes when it holds this many files...
    batch_size: int = 256
    #: ...or this many seconds after the last file joined it, whichever comes first...
    max_wait: float = 0.25
    #: ...and in any case this many seconds after its first file joined it, so that a
    #: steady stream of photos is imported while it flows, not only once it stops.
    max_age: float = 0.5
    #: Where no close-after-write event tells that a file is complete (polling, files
    #: moved in from elsewhere, the start-up scan), a file is complete once its size and
    #: modification time have not changed for this many seconds.
    stable_seconds: float = 1.0
    #: A file seen being written whose writer never closes it (a stalled copy) is taken
    #: after this many quiet seconds anyway; decoding then tells whether it is whole.
    write_timeout: float = 300.0
    #: Names ending so are a writer's temporary files: ignored until renamed.
    temp_suffixes: tuple[str, ...] = (".part", ".partial", ".tmp", ".temp", "~", ".crdownload",
                                      ".download", ".filepart", ".!sync", ".swp")
    #: Names starting so are ignored (dotfiles, rsync's ``.name.XXXXXX`` temporaries,
    #: office lock files); a folder named so is ignored with all it holds.
    hidden_prefixes: tuple[str, ...] = (".", "~$")
    #: Compare the folders with the catalog again every this many seconds, to catch
    #: what the observer missed (0 = only at start and after a lost-events warning).
    rescan_seconds: float = 600.0
    #: The watcher's own host starts the hashing worker pool with its first batch (it sets
    #: ``[hashing] parallel_min_mb = 0`` unless the configuration sets that): a watcher runs
    #: for days, so the pool's start is paid once and every later batch, however small,
    #: hashes on every core.
    warm_pool: bool = True
    #: After a batch failed (catalog in use by another process), wait this long to retry.
    retry_seconds: float = 5.0
